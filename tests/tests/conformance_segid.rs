//! `rsm_get_segmentid_range` (spec §4.2, §9.31): the segment-id configuration comes from the
//! embedder (`Config::segid_conf`) in the `/etc/rsm/rsm.segmentid` text format.

use rsm_core::capi::rsm_get_segmentid_range;
use rsm_core::segid::SegidRange;
use rsm_core::{Config, ControllerHandle, CreateFlags, Rsm, RsmError};
use rsm_hal::fake::FakePlatform;

const CONF: &str = "\
# rsm.segmentid: keyword appid baseid length
reserved SUNWrsm 0x600000 4096

reserve  myapp   0x700000 16
";

fn node(conf: Option<&'static str>) -> Rsm<FakePlatform> {
    let config = Config {
        segid_conf: conf,
        ..Config::default()
    };
    Rsm::new(FakePlatform::new(), config)
}

/// §4.2: the range of a listed appid, with either keyword (§9.31), case-insensitively.
#[test]
fn listed_appids_get_their_range() {
    let n = node(Some(CONF));
    assert_eq!(
        n.get_segmentid_range("SUNWrsm"),
        Ok(SegidRange {
            base: 0x600000,
            length: 4096
        })
    );
    assert_eq!(
        n.get_segmentid_range("MYAPP"),
        Ok(SegidRange {
            base: 0x700000,
            length: 16
        })
    );
}

/// §4.2: no line for the appid → 43 (`RSMERR_BAD_APPID`); no configuration at all → 44
/// (`RSMERR_BAD_CONF`, illumos: the file cannot be opened); a malformed line → 44.
#[test]
fn unknown_appid_missing_or_malformed_conf() {
    assert_eq!(
        node(Some(CONF)).get_segmentid_range("other"),
        Err(RsmError::BadAppid)
    );
    assert_eq!(
        node(None).get_segmentid_range("SUNWrsm"),
        Err(RsmError::BadConf)
    );
    let bad = node(Some("reserved SUNWrsm 0x600000\n"));
    assert_eq!(bad.get_segmentid_range("SUNWrsm"), Err(RsmError::BadConf));
}

/// §4.2 C form: any NULL argument → 16 (`RSMERR_BAD_ADDR`); success stores both values.
#[test]
fn c_form_null_arguments_and_success() {
    let n = node(Some(CONF));
    let (mut base, mut len) = (0u32, 0u32);
    assert_eq!(
        rsm_get_segmentid_range(&n, None, Some(&mut base), Some(&mut len)),
        16
    );
    assert_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), None, Some(&mut len)),
        16
    );
    assert_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), Some(&mut base), None),
        16
    );
    assert_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), Some(&mut base), Some(&mut len)),
        0
    );
    assert_eq!((base, len), (0x600000, 4096));
    assert_eq!(
        rsm_get_segmentid_range(&n, Some("nope"), Some(&mut base), Some(&mut len)),
        43
    );
}

/// §2.3: ids from an application's reserved range are publishable (they lie in the user
/// range 0x400000..=0x7FFFFFFF).
#[test]
fn reserved_range_ids_publish() {
    let n = node(Some(CONF));
    let range = n.get_segmentid_range("SUNWrsm").unwrap();
    let ctrl: ControllerHandle = n.get_controller(Some("rsmnet0")).unwrap();
    let mem = n.platform().alloc(4096);
    let seg = n.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    assert_eq!(
        n.export_publish(seg, range.base + 7, &[]),
        Ok(range.base + 7)
    );
    n.export_destroy(seg).unwrap();
}

/// §4.2, §9.31: a host embedder loads the file format from disk into the configuration.
#[test]
fn host_embedder_loads_the_file() {
    let path = std::env::temp_dir().join(format!("rsm.segmentid.{}", std::process::id()));
    std::fs::write(&path, CONF).unwrap();
    let conf = rsm_host::load_segid_conf(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let n = node(Some(conf));
    assert_eq!(
        n.get_segmentid_range("myapp"),
        Ok(SegidRange {
            base: 0x700000,
            length: 16
        })
    );
    assert!(rsm_host::load_segid_conf("/nonexistent/rsm.segmentid").is_err());
}

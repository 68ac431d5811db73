//! Host-backend tests of the segment-id configuration (spec §4.2, §9.31), kept out of the
//! single-node conformance table (`rsm-conformance`, `conformance/src/export.rs`): their
//! subject is the host embedder itself — `rsm_host::load_segid_conf` reading the
//! `/etc/rsm/rsm.segmentid` file format from disk with std files — not a platform-generic
//! check the unikernel image could run.

use rsm_core::segid::SegidRange;
use rsm_core::{Config, Rsm};
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

//! Host nodes with their runtime (issue 10): each node's driver thread sleeps on its UDP
//! socket and its eventfd; application threads only make RSMAPI calls. Nodes talk through
//! the L2 switch library on 127.0.0.1.

use rsm_core::{CreateFlags, IoVec, Permission, RsmError, ScatGath};
use rsm_host::{HostNode, HostPlatform, LinkSpec, NodeConfig, PinnedBuf, UdpPeers};
use rsm_switch::{Switch, SwitchConfig};
use rsm_tests::with_watchdog;
use std::time::{Duration, Instant};

const SEG: u32 = 0x40_6001;
const LEN: usize = 1 << 20;

fn node(id: u32, sw: &Switch, incarnation: u64) -> HostNode {
    HostNode::start_on(
        NodeConfig {
            node_id: id,
            link: LinkSpec::Udp {
                bind: "127.0.0.1:0".parse().unwrap(),
                peers: UdpPeers::Switch(sw.addr()),
            },
            max_frame: 65_507,
            incarnation,
        },
        HostPlatform::without_mlock(),
    )
    .unwrap()
}

#[test]
fn putv_getv_through_the_switch_with_driver_threads() {
    with_watchdog("host cluster putv/getv", Duration::from_secs(60), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (exp, imp) = (node(1, &sw, 1), node(2, &sw, 1));
        let seg_mem = PinnedBuf::new(LEN).unwrap();
        let e = exp.rsm();
        let ctrl = e.get_controller(Some("rsmnet0")).unwrap();
        let seg = e
            .export_create(ctrl, seg_mem.region(), CreateFlags::empty())
            .unwrap();
        e.export_publish(seg, SEG, &[]).unwrap();

        let i = imp.rsm();
        let c = i.get_controller(Some("rsmnet0")).unwrap();
        let h = i.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
        let mut src = PinnedBuf::new(LEN).unwrap();
        let pattern: Vec<u8> = (0..LEN).map(|k| (k * 13 % 253) as u8).collect();
        src.as_mut_slice().unwrap().copy_from_slice(&pattern);
        let s = src.region();
        let put: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| IoVec::va(&s, k * 65536, k * 65536, 65536))
            .collect();
        let t = Instant::now();
        i.putv(&mut ScatGath::new(h, &put)).unwrap();
        let put_time = t.elapsed();
        let mut got = vec![0u8; LEN];
        seg_mem.read(0, &mut got).unwrap();
        assert!(got == pattern, "exported memory after putv");
        let dst = PinnedBuf::new(LEN).unwrap();
        let d = dst.region();
        let get: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| IoVec::va(&d, k * 65536, k * 65536, 65536))
            .collect();
        i.getv(&mut ScatGath::new(h, &get)).unwrap();
        dst.read(0, &mut got).unwrap();
        assert!(got == pattern, "local memory after getv");
        println!(
            "1 MiB putv through the switch in {put_time:?}; socket buffers {:?}",
            imp.socket_buffers()
        );
        i.import_disconnect(h).unwrap();
        let st = sw.stop();
        // 65 507-byte frames: 1 MiB is about 17 data frames per direction.
        let sent = st
            .port_of(rsm_host::runtime::node_mac(2))
            .unwrap()
            .counters
            .rx_frames;
        assert!(sent < 400, "importer sent {sent} frames");
    });
}

#[test]
fn a_clean_exporter_exit_aborts_imports_at_once() {
    with_watchdog("clean exit", Duration::from_secs(60), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (exp, imp) = (node(1, &sw, 1), node(2, &sw, 1));
        let seg_mem = PinnedBuf::new(4096).unwrap();
        let e = exp.rsm();
        let ctrl = e.get_controller(Some("rsmnet0")).unwrap();
        let seg = e
            .export_create(ctrl, seg_mem.region(), CreateFlags::empty())
            .unwrap();
        e.export_publish(seg, SEG, &[]).unwrap();
        let i = imp.rsm();
        let c = i.get_controller(Some("rsmnet0")).unwrap();
        let h = i.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
        let mut local = PinnedBuf::new(4096).unwrap();
        local.as_mut_slice().unwrap()[..5].copy_from_slice(b"alive");
        let l = local.region();
        let one = [IoVec::va(&l, 0, 0, 5)];
        i.putv(&mut ScatGath::new(h, &one)).unwrap();
        let t = Instant::now();
        exp.shutdown();
        // The importer learns at once: within 1 s its calls fail with CONN_ABORTED (not
        // REMOTE_NODE_UNREACHABLE after 5 s).
        let mut r = Ok(());
        while t.elapsed() < Duration::from_secs(1) {
            r = i.putv(&mut ScatGath::new(h, &one));
            if r.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r, Err(RsmError::ConnAborted));
        println!(
            "import aborted {:?} after the exporter's clean exit",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn the_switch_capture_reads_back_with_tcpdump_and_our_decoder() {
    with_watchdog("capture", Duration::from_secs(60), || {
        let dir = std::env::temp_dir().join(format!("rsm-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("run.pcap");
        let sw = Switch::start(SwitchConfig {
            pcap: Some(pcap.clone()),
            snaplen: 128,
            ..SwitchConfig::default()
        })
        .unwrap();
        let (exp, imp) = (node(1, &sw, 1), node(2, &sw, 1));
        let seg_mem = PinnedBuf::new(256 * 1024).unwrap();
        let e = exp.rsm();
        let ctrl = e.get_controller(Some("rsmnet0")).unwrap();
        let seg = e
            .export_create(ctrl, seg_mem.region(), CreateFlags::empty())
            .unwrap();
        e.export_publish(seg, SEG, &[]).unwrap();
        let i = imp.rsm();
        let c = i.get_controller(Some("rsmnet0")).unwrap();
        let h = i.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
        let buf = PinnedBuf::new(256 * 1024).unwrap();
        let b = buf.region();
        let v: Vec<IoVec<'_, _>> = (0..4)
            .map(|k| IoVec::va(&b, k * 65536, k * 65536, 65536))
            .collect();
        i.putv(&mut ScatGath::new(h, &v)).unwrap();
        i.getv(&mut ScatGath::new(h, &v)).unwrap();
        i.import_disconnect(h).unwrap();
        drop(imp);
        drop(exp);
        let st = sw.stop();

        // Our decoder (rsm-core's wire parser) over the capture.
        let mut text = String::new();
        let sum = rsm_runner::decode::decode(&pcap, &mut text).unwrap();
        assert_eq!(sum.frames, st.captured, "every captured frame decoded");
        assert_eq!(
            sum.frames,
            st.rx_frames(),
            "the switch captured every frame it received"
        );
        let n = |k: &str| sum.counts.get(k).copied().unwrap_or(0);
        assert_eq!(n("ConnectRequest"), 1, "{text}");
        assert_eq!(n("ConnectReply"), 1);
        assert_eq!(n("GetRequest"), 4);
        assert!(n("PutData") >= 4 && n("GetData") >= 4, "{:?}", sum.counts);
        assert!(n("Ack") >= 4 && n("Hello") >= 2 && n("NotImporting") == 1);
        assert_eq!(n("malformed") + n("other EtherType"), 0);

        // A reader other than ours: tcpdump (installed by the test command's set-up).
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&pcap)
            .output()
            .expect("tcpdump runs (cargo rsm test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One line per record (tcpdump adds indented hex lines for an unknown EtherType).
        let stdout = String::from_utf8_lossy(&out.stdout);
        let records: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .collect();
        assert_eq!(
            records.len() as u64,
            st.captured,
            "tcpdump reads every record"
        );
        assert!(records.iter().all(|l| l.contains("0x88b5")), "{stdout}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

//! The QEMU suite (issue 11): image nodes booted by the runner's cluster, through the
//! switch library. The image must have been built (`cargo rsm test` does it in its
//! `image build` step, once); without it, or without QEMU, these tests fail with the reason
//! — they never skip. Scenarios run one at a time (a lock), since two clusters on two cores
//! would measure nothing and time out.

use rsm_core::{Barrier, BarrierType, IoVec, Permission, RsmError, ScatGath, SegmentRef};
use rsm_host::{HostNode, HostPlatform, LinkSpec, NodeConfig, PinnedBuf, UdpPeers};
use rsm_runner::cluster::{Cluster, ClusterRun, NodePlan};
use rsm_runner::qemu::STATUS_PASS;
use rsm_runner::{demo, image_path};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One QEMU scenario at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn image() -> PathBuf {
    let p = image_path();
    assert!(
        p.is_file(),
        "no image at {} — build it first (`cargo rsm test` does, in its `image build` step)",
        p.display()
    );
    p
}

/// The demo, run once for the tests that look at it.
fn demo_run() -> &'static ClusterRun {
    static RUN: OnceLock<ClusterRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = serial();
        let dir = demo::run_dir("test-demo");
        let mut quiet = |_: &str| {};
        demo::run(&image(), &dir, demo::ROUNDS, &mut quiet)
            .unwrap_or_else(|e| panic!("the demo could not run: {e}"))
    })
}

fn log(run: &ClusterRun, id: u8) -> String {
    run.nodes
        .iter()
        .find(|n| n.id == id)
        .map(|n| n.lines.join("\n"))
        .unwrap_or_default()
}

#[test]
fn demo_moves_and_verifies_every_byte_both_ways_and_reports() {
    let run = demo_run();
    let problems = demo::problems(run, demo::ROUNDS);
    assert!(
        problems.is_empty(),
        "{problems:?}\nnode 1:\n{}\nnode 2:\n{}",
        log(run, 1),
        log(run, 2)
    );
    let want = u64::from(demo::ROUNDS) * demo::ROUND_BYTES;
    let imp = run.nodes.iter().find(|n| n.id == 2).expect("node 2");
    let r = imp.report().expect("importer report");
    assert_eq!(r["role"], "importer");
    assert_eq!(r["ops"], (2 * demo::ROUNDS).to_string());
    assert_eq!(r["bytes"], (2 * want).to_string());
    assert_eq!(r["verified"], want.to_string());
    assert_eq!(r["errors"], "none");
    assert_eq!(r["residual"], "0");
    let num = |k: &str| r[k].parse::<u64>().unwrap_or(0);
    assert!(num("throughput_kbs") > 0, "{r:?}");
    for k in ["putv", "getv"] {
        let (p50, p99) = (num(&format!("{k}_p50_us")), num(&format!("{k}_p99_us")));
        assert!(p50 > 0 && p50 <= p99, "{k}: p50 {p50} p99 {p99}");
    }
    // Every vector length 1..=16 ran.
    for n in 1..=16 {
        assert!(
            imp.lines
                .iter()
                .any(|l| l.starts_with("ROUND ") && l.contains(&format!(" entries={n} "))),
            "no round with {n} entries"
        );
    }
    let exp = run.nodes.iter().find(|n| n.id == 1).expect("node 1");
    let e = exp.report().expect("exporter report");
    assert_eq!(e["role"], "exporter");
    assert_eq!(e["verified"], want.to_string());
    assert_eq!(e["ops"], demo::ROUNDS.to_string());
    assert!(e["throughput_kbs"].parse::<u64>().unwrap_or(0) > 0, "{e:?}");
    assert_eq!(e["errors"], "none");
    // The frames went through the switch and its capture.
    assert!(run.switch.forwarded > 2 * want / 9014, "{:?}", run.switch);
    assert_eq!(run.switch.captured, run.switch.rx_frames());
    let json = demo::json(run);
    assert_eq!(json.matches("\"exit_status\":33").count(), 2, "{json}");
    assert_eq!(
        json.matches(&format!("\"verified\":{want}")).count(),
        2,
        "{json}"
    );
    assert!(
        json.contains("\"nic_tx_dropped\":") && json.contains("\"retransmits\":"),
        "{json}"
    );
    let report = demo::report(run);
    for needle in ["importer", "exporter", "µs", "pass", "capture"] {
        assert!(report.contains(needle), "{needle} missing from\n{report}");
    }
}

#[test]
fn a_blocking_wait_with_a_timeout_completes_on_the_one_vcpu() {
    // The importer's calls all block on a single vCPU with no helper thread (the image has
    // none): connect, putv, get and signal waits. Its probe wait, with nobody posting, must
    // end in RSMERR_TIMEOUT after its 300 ms — not hang, not return early — and the node
    // must carry on (the demo's rounds follow it).
    let run = demo_run();
    let imp = log(run, 2);
    let line = imp
        .lines()
        .find(|l| l.starts_with("WAITED "))
        .unwrap_or_else(|| panic!("no WAITED line:\n{imp}"));
    let field = |k: &str| {
        line.split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field("result="), "RSMERR_TIMEOUT", "{line}");
    let took: u64 = field("took_ms=").parse().expect("took_ms");
    assert!((300..1000).contains(&took), "{line}");
    assert!(imp.contains("CONNECTED"), "{imp}");
    assert!(
        imp.contains(&format!("ROUND {} ", demo::ROUNDS - 1)),
        "{imp}"
    );
}

/// The image's data pattern (app/src/demo.rs `pattern`).
fn pattern(round: u32, i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ (round as u8).wrapping_mul(37) ^ 0x5a
}

#[test]
fn a_host_node_and_an_image_node_exchange_putv_getv_through_the_switch() {
    const SEG: u32 = demo::SEG_ID;
    const LEN: usize = demo::ROUND_BYTES as usize;
    const ROUNDS: u32 = 4;
    let _one = serial();
    let image = image();
    let dir = demo::run_dir("test-host-image");
    let cluster = Cluster::start(&dir).expect("switch");
    let host = HostNode::start_on(
        NodeConfig {
            node_id: 3,
            link: LinkSpec::Udp {
                bind: "127.0.0.1:0".parse().expect("addr"),
                peers: UdpPeers::Switch(cluster.switch_addr()),
            },
            max_frame: 9014,
            incarnation: 1,
        },
        HostPlatform::without_mlock(),
    )
    .expect("host node");
    cluster.bind_host(rsm_core::node_mac(3), host.local_addr().expect("host addr"));
    // The host node is the importer, on a thread of the test, while the cluster runs the
    // image's exporter (published to node 3).
    let importer = std::thread::scope(|s| {
        let rsm = host.rsm();
        let t = s.spawn(move || -> Result<u64, String> {
            let ctrl = rsm.get_controller(Some("rsmnet0")).map_err(|e| e.name())?;
            let end = Instant::now() + Duration::from_secs(30);
            let h = loop {
                match rsm.import_connect(ctrl, 1, SEG, Permission::RDWR) {
                    Ok(h) => break h,
                    Err(RsmError::SegNotPublished | RsmError::RemoteNodeUnreachable)
                        if Instant::now() < end =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => return Err(format!("connect: {}", e.name())),
                }
            };
            let mut barrier = Barrier::default();
            rsm.init_barrier(h, BarrierType::SEGMENT, &mut barrier)
                .map_err(|e| e.name())?;
            let local = PinnedBuf::new(LEN).map_err(|e| e.to_string())?;
            let tag = PinnedBuf::new(4096).map_err(|e| e.to_string())?;
            let lh = rsm
                .create_localmemory_handle(ctrl, local.region())
                .map_err(|e| e.name())?;
            let (l, t) = (local.region(), tag.region());
            let mut verified = 0;
            for round in 0..ROUNDS {
                let data: Vec<u8> = (0..LEN).map(|i| pattern(round, i)).collect();
                local.write(0, &data).map_err(|e| e.to_string())?;
                // 4 entries: HANDLE, VA, HANDLE, VA over quarters.
                let q = LEN / 4;
                let v: Vec<IoVec<'_, rsm_host::MemRegion>> = (0..4)
                    .map(|k| {
                        if k % 2 == 0 {
                            IoVec::handle(lh, k * q, k * q, q)
                        } else {
                            IoVec::va(&l, k * q, k * q, q)
                        }
                    })
                    .collect();
                rsm.open_barrier(&mut barrier).map_err(|e| e.name())?;
                rsm.putv(&mut ScatGath::new(h, &v)).map_err(|e| e.name())?;
                rsm.close_barrier(&mut barrier).map_err(|e| e.name())?;
                let tagv = u64::from(round) + 1;
                tag.write(0, &tagv.to_le_bytes())
                    .map_err(|e| e.to_string())?;
                let tv = [IoVec::va(&t, 0, LEN, 8)];
                rsm.putv(&mut ScatGath::new(h, &tv)).map_err(|e| e.name())?;
                rsm.intr_signal_post(SegmentRef::Import(h), rsm_core::SigpostFlags::empty())
                    .map_err(|e| e.name())?;
                let end = Instant::now() + Duration::from_secs(30);
                loop {
                    let mut b = [0u8; 8];
                    rsm.get(h, (3 * LEN) as i64, &mut b).map_err(|e| e.name())?;
                    if u64::from_le_bytes(b) == tagv {
                        break;
                    }
                    if Instant::now() > end {
                        return Err(format!("no reply to round {round}"));
                    }
                    let _ = rsm.intr_signal_wait(SegmentRef::Import(h), 500);
                }
                local.write(0, &vec![0; LEN]).map_err(|e| e.to_string())?;
                let v: Vec<IoVec<'_, rsm_host::MemRegion>> = (0..4)
                    .map(|k| {
                        if k % 2 == 1 {
                            IoVec::handle(lh, k * q, 2 * LEN + k * q, q)
                        } else {
                            IoVec::va(&l, k * q, 2 * LEN + k * q, q)
                        }
                    })
                    .collect();
                rsm.getv(&mut ScatGath::new(h, &v)).map_err(|e| e.name())?;
                let got = local.to_vec();
                let bad = (0..LEN).filter(|&i| got[i] != !data[i]).count();
                if bad != 0 {
                    return Err(format!("round {round}: {bad} reply bytes differ"));
                }
                verified += LEN as u64;
            }
            tag.write(0, &u64::MAX.to_le_bytes())
                .map_err(|e| e.to_string())?;
            let tv = [IoVec::va(&t, 0, LEN, 8)];
            rsm.putv(&mut ScatGath::new(h, &tv)).map_err(|e| e.name())?;
            rsm.intr_signal_post(SegmentRef::Import(h), rsm_core::SigpostFlags::empty())
                .map_err(|e| e.name())?;
            rsm.destroy_barrier(&mut barrier).map_err(|e| e.name())?;
            rsm.import_disconnect(h).map_err(|e| e.name())?;
            rsm.free_localmemory_handle(ctrl, lh)
                .map_err(|e| e.name())?;
            Ok(verified)
        });
        let plans = [NodePlan {
            id: 1,
            append: "scenario=demo role=exporter peer=3".into(),
        }];
        let mut quiet = |_: &str| {};
        let run = cluster
            .run(&image, &plans, Duration::from_secs(90), &mut quiet)
            .unwrap_or_else(|e| panic!("cluster: {e}"));
        (t.join().expect("importer thread"), run)
    });
    let (verified, run) = importer;
    let exp = &run.nodes[0];
    let lines = exp.lines.join("\n");
    assert_eq!(
        verified,
        Ok(u64::from(ROUNDS) * LEN as u64),
        "image log:\n{lines}"
    );
    assert_eq!(exp.status, Some(STATUS_PASS), "{lines}");
    let r = exp.report().unwrap_or_default();
    assert_eq!(
        r.get("verified").map(String::as_str),
        Some((u64::from(ROUNDS) * LEN as u64).to_string().as_str()),
        "{lines}"
    );
    let host_port = run
        .switch
        .port_of(rsm_core::node_mac(3))
        .expect("host port");
    assert!(host_port.counters.rx_frames > 0 && host_port.counters.tx_frames > 0);
    let _ = host.shutdown();
}

/// The QEMU processes whose command line mentions `needle`.
fn qemu_processes(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("qemu-system-x86_64") && cmd.contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn sigint_mid_scenario_leaves_no_qemu_process() {
    let _one = serial();
    let _ = image();
    let dir = demo::run_dir("test-sigint");
    let needle = dir.join("node-").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsm-runner"))
        .args(["qemu-demo", "--rounds", "256", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let mut seen = Vec::new();
    // Wait (bounded by the demo's own timeout) until the importer is mid-scenario.
    let mut mid = false;
    for l in lines.by_ref().map_while(Result::ok).take(10_000) {
        let hit = l.contains("ROUND 2 ");
        seen.push(l);
        if hit {
            mid = true;
            break;
        }
    }
    assert!(mid, "the demo never got to round 2:\n{}", seen.join("\n"));
    // Keep draining the runner's output so that it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let before = qemu_processes(&needle);
    assert_eq!(before.len(), 2, "two QEMU nodes running: {before:?}");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let left = qemu_processes(&needle);
    // Clean up whatever a failure left, then judge.
    for pid in &left {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let status = status.expect("the runner did not exit within 20 s of SIGINT");
    let _ = drain.join();
    assert_eq!(status.code(), Some(130), "runner exit");
    assert!(left.is_empty(), "QEMU processes survived: {left:?}");
    // It was mid-scenario: the importer had not finished.
    assert!(!seen.iter().any(|l| l.contains("REPORT")));
}

/// The `Needs` the image's conformance harness supports (`targets/kernel/app/src/
/// conformance.rs`): its platform's global pin counts and pin limit.
const IMAGE_SUPPORTS: rsm_conformance::Needs =
    rsm_conformance::Needs::PIN_COUNT.union(rsm_conformance::Needs::PIN_QUOTA);

/// Issue 12: the image runs the whole single-node conformance table (the same crate
/// `cargo test` runs over the fake) and reports it: every check of the table is either run
/// or excluded for a need the image lacks — exactly the checks the host computes from the
/// table — and every check that ran passed, with no frame left pinned after any check.
#[test]
fn image_runs_the_conformance_table_and_every_check_it_runs_passes() {
    use rsm_conformance::{checks, fake::FakeHarness};
    let _one = serial();
    let dir = demo::run_dir("test-conformance");
    std::fs::create_dir_all(&dir).expect("run directory");
    let r = rsm_runner::conformance::run(&image(), &dir.join("node-1.serial"))
        .unwrap_or_else(|e| panic!("the conformance image could not run: {e}"));
    let report = rsm_runner::conformance::report(&r);
    assert!(r.reported(), "no CONFORMANCE line:\n{}", r.serial);
    assert_eq!(r.status, Some(STATUS_PASS), "{report}\n{}", r.serial);
    assert!(r.failures.is_empty(), "{report}");
    assert_eq!(r.leaks, 0, "{report}");
    assert_eq!(
        r.supports,
        IMAGE_SUPPORTS.bits(),
        "the image's harness changed"
    );

    let table: Vec<_> = checks::<FakeHarness>().collect();
    let expected: Vec<&str> = table
        .iter()
        .filter(|c| !IMAGE_SUPPORTS.contains(c.needs))
        .map(|c| c.name)
        .collect();
    let excluded: Vec<&str> = r.exclusions.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(r.total, table.len(), "the image runs the whole table");
    assert_eq!(excluded, expected, "exclusions");
    assert_eq!(r.excluded, expected.len());
    assert_eq!(
        r.ran,
        table.len() - expected.len(),
        "ran = table length - exclusions"
    );
    assert_eq!(r.passed, r.ran, "passed = ran");
    assert!(
        r.exclusions
            .iter()
            .all(|(_, need, why)| !need.is_empty() && !why.is_empty()),
        "every exclusion names its need and reason: {:?}",
        r.exclusions
    );
}

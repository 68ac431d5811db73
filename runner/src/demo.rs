//! The main job: two QEMU nodes through the switch. Node 1 exports a segment, node 2
//! imports it and runs putv/getv rounds of 1..16 mixed HANDLE/VA entries, every byte
//! verified both ways (the image's `scenario=demo`); then the report.

use crate::cluster::{Cluster, ClusterRun, NodePlan};
use crate::qemu::{BootError, STATUS_PASS};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes the importer moves each way per round (its local buffer, `LOCAL_LEN` in the image).
pub const ROUND_BYTES: u64 = 64 * 1024;
/// Rounds of the demo: every vector length 1..=16, twice.
pub const ROUNDS: u32 = 32;
/// The segment id the image's exporter publishes (`SEG_ID` in the image's demo).
pub const SEG_ID: u32 = 0x40_8000;
/// Most rounds the image takes.
pub const MAX_ROUNDS: u32 = 256;
/// The demo's time limit.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The two nodes of the demo.
pub fn plans(rounds: u32) -> Vec<NodePlan> {
    vec![
        NodePlan {
            id: 1,
            append: "scenario=demo role=exporter peer=2".into(),
        },
        NodePlan {
            id: 2,
            append: format!("scenario=demo role=importer peer=1 rounds={rounds}"),
        },
    ]
}

/// Where a run's files go: `target/runs/<name>`.
pub fn run_dir(name: &str) -> PathBuf {
    crate::workspace_root()
        .join("target")
        .join("runs")
        .join(name)
}

/// Boot the demo's two nodes from `image` and wait for them.
///
/// # Errors
/// As [`Cluster::run`]; also when the switch cannot start.
pub fn run(
    image: &Path,
    dir: &Path,
    rounds: u32,
    show: &mut dyn FnMut(&str),
) -> Result<ClusterRun, BootError> {
    let cluster = Cluster::start(dir).map_err(BootError::Io)?;
    cluster.run(image, &plans(rounds), TIMEOUT, show)
}

/// Everything wrong with a demo run (empty = it passed): both nodes exited with the pass
/// code, both printed a report, the importer verified `rounds × ROUND_BYTES` bytes coming
/// back and moved twice that, the exporter verified as many arriving, no residuals.
pub fn problems(run: &ClusterRun, rounds: u32) -> Vec<String> {
    let mut p = Vec::new();
    if run.timed_out {
        p.push(format!("timed out after {TIMEOUT:?}"));
    }
    let want = u64::from(rounds) * ROUND_BYTES;
    for n in &run.nodes {
        if n.status != Some(STATUS_PASS) {
            p.push(format!(
                "node {} exited with {:?} (want {STATUS_PASS}; None = killed)",
                n.id, n.status
            ));
        }
        let Some(r) = n.report() else {
            p.push(format!("node {} printed no REPORT", n.id));
            continue;
        };
        let num = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok());
        if num("verified") != Some(want) {
            p.push(format!(
                "node {}: verified {:?} bytes, want {want}",
                n.id,
                r.get("verified")
            ));
        }
        if num("residual") != Some(0) {
            p.push(format!("node {}: residual {:?}", n.id, r.get("residual")));
        }
        if n.id == 2 && num("bytes") != Some(2 * want) {
            p.push(format!(
                "node 2: moved {:?} bytes, want {}",
                r.get("bytes"),
                2 * want
            ));
        }
    }
    p
}

/// The readable report of a run.
pub fn report(run: &ClusterRun) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rsm-rs demo report (2 QEMU nodes, TCG, virtio-net through the switch)"
    );
    let _ = writeln!(
        s,
        "{:<5} {:<9} {:>5} {:>9} {:>10} {:>14} {:>14} {:>8} {:<24} {:>8}",
        "node",
        "role",
        "ops",
        "bytes",
        "MB/s",
        "putv p50/p99",
        "getv p50/p99",
        "residual",
        "errors",
        "exit"
    );
    for n in &run.nodes {
        let r = n.report().unwrap_or_default();
        let g = |k: &str| r.get(k).cloned().unwrap_or_else(|| "-".into());
        let mbs = r
            .get("throughput_kbs")
            .and_then(|v| v.parse::<f64>().ok())
            .map_or("-".into(), |k| format!("{:.2}", k / 1000.0));
        let lat = |a: &str, b: &str| match (r.get(a), r.get(b)) {
            (Some(x), Some(y)) => format!("{x}/{y} µs"),
            _ => "-".into(),
        };
        let exit = match n.status {
            Some(STATUS_PASS) => "pass".to_string(),
            Some(c) => format!("status {c}"),
            None => "killed".into(),
        };
        let _ = writeln!(
            s,
            "{:<5} {:<9} {:>5} {:>9} {:>10} {:>14} {:>14} {:>8} {:<24} {:>8}",
            n.id,
            g("role"),
            g("ops"),
            g("bytes"),
            mbs,
            lat("putv_p50_us", "putv_p99_us"),
            lat("getv_p50_us", "getv_p99_us"),
            g("residual"),
            g("errors"),
            exit
        );
    }
    for n in &run.nodes {
        if let Some(f) = n.lines.iter().find(|l| l.starts_with("FRAMES ")) {
            let _ = writeln!(s, "node {} {}", n.id, f.to_lowercase());
        }
        if let Some(t) = n.first_frame {
            let _ = writeln!(
                s,
                "node {}: first frame at the switch {} ms after spawn, exit after {} ms",
                n.id,
                t.as_millis(),
                n.elapsed.as_millis()
            );
        }
    }
    let _ = writeln!(
        s,
        "switch: {} frames in, {} forwarded, {} flooded; capture {} ({} frames, snap length {})",
        run.switch.rx_frames(),
        run.switch.forwarded,
        run.switch.flooded,
        run.pcap.display(),
        run.switch.captured,
        crate::cluster::SNAPLEN
    );
    s
}

/// The run as JSON: per node its exit, its REPORT fields and its FRAMES counters (engine
/// frames, retransmits, malformed; NIC drops by reason; interrupts), and the switch's counters.
pub fn json(run: &ClusterRun) -> String {
    fn obj(m: &std::collections::BTreeMap<String, String>) -> String {
        let fields: Vec<String> = m
            .iter()
            .map(|(k, v)| match v.parse::<u64>() {
                Ok(n) => format!("{k:?}:{n}"),
                Err(_) => format!("{k:?}:{v:?}"),
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
    let mut nodes = Vec::new();
    for n in &run.nodes {
        let frames: std::collections::BTreeMap<String, String> = n
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("FRAMES "))
            .map(|l| {
                l.split_ascii_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        nodes.push(format!(
            "{{\"node\":{},\"exit_status\":{},\"boot_to_first_frame_ms\":{},\"report\":{},\"frames\":{}}}",
            n.id,
            n.status.map_or("null".into(), |c| c.to_string()),
            n.first_frame.map_or("null".into(), |d| d.as_millis().to_string()),
            obj(&n.report().unwrap_or_default()),
            obj(&frames)
        ));
    }
    let sw = &run.switch;
    let spoofed: u64 = sw.ports.iter().map(|p| p.counters.spoofed).sum();
    let unbound: u64 = sw.ports.iter().map(|p| p.counters.unbound).sum();
    format!(
        "{{\"timed_out\":{},\"nodes\":[{}],\"switch\":{{\"frames_in\":{},\"forwarded\":{},\"flooded\":{},\"captured\":{},\"send_dropped\":{},\"spoofed\":{},\"unbound\":{}}}}}\n",
        run.timed_out,
        nodes.join(","),
        sw.rx_frames(),
        sw.forwarded,
        sw.flooded,
        sw.captured,
        sw.send_dropped,
        spoofed,
        unbound
    )
}

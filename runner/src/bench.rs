//! `cargo rsm bench`: image nodes against the limit of the same emulated link, every ratio
//! measured in one run.
//!
//! * **Throughput**: putv between two image nodes (16 × 64 KiB back to back, `role=bench`)
//!   vs. the best delivered raw-frame throughput of the image's raw mode between the same two
//!   nodes through the same switch (`scenario=raw`, a window sweep), at 1514-byte frames and
//!   at the largest (65 507). Goal ≥ 0.9×.
//! * **Round trip**: a 64-byte putv vs. a 64-byte raw ping-pong, p50 and p99. Goal ≤ 1.2×.
//!   Also against the same putv round trips with both nodes polling (`irq=off`, no NIC
//!   interrupt): what halting changed.
//! * **Profile**: where each node's time went during the putv loop (`PROFILE phase=putv`:
//!   halted, CRC, copies, NIC receive, NIC transmit, the rest), as shares of the loop.
//! * **Boot to ready**: QEMU spawn → the node's first frame at the switch, vs. the same image
//!   told `bare` (it exits at once after entering long mode): spawn → exit. Goal ≤ 1.5×.
//! * **Image size**: the `-kernel` file, the loaded bytes, `.bss` apart. Goal ≤ 1 MiB loaded.
//! * **Static memory** at the image's capacities, as the image reports it (`MEMORY`): the
//!   node (RSM tables, engine state, wire records), NIC buffers, DMA pool, pin table.
//! * **Idle CPU**: host CPU of each QEMU process while its node is connected and idle
//!   (`idle_ms`), from `/proc/<pid>/stat`. Goal ≤ 2 % of a core.
//!
//! Captures use the cluster's 256-byte snap length. Every run directory gets the pcaps, the
//! decoded logs (`node-N.log`) and `bench.json`.

use crate::cluster::{Cluster, ClusterRun, NodePlan, NodeRun};
use crate::qemu::{boot, BootError, STATUS_PASS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long each phase runs.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Milliseconds per throughput phase (raw window, putv loop).
    pub ms: u64,
    /// Round-trip samples.
    pub pings: u32,
    /// Milliseconds a connected node stays idle for the CPU figure.
    pub idle_ms: u64,
    /// Bare boots for the boot-time baseline.
    pub bare_boots: u32,
}

impl Opts {
    /// The full bench: 2 s phases, 1000 round trips, 10 s idle.
    pub const FULL: Opts = Opts {
        ms: 2000,
        pings: 1000,
        idle_ms: 10_000,
        bare_boots: 5,
    };
    /// The test command's smoke run: every row measured, short.
    pub const SMOKE: Opts = Opts {
        ms: 300,
        pings: 100,
        idle_ms: 1500,
        bare_boots: 2,
    };
}

/// Raw windows swept at each frame size.
pub const WINDOWS_1514: &str = "4,8,16,32,64";
/// Raw windows swept at the largest frame.
pub const WINDOWS_MAX: &str = "1,2,4,8";
/// The largest frame (QEMU's dgram netdev carries one UDP datagram).
pub const MAX_FRAME: u32 = 65_507;

/// One row of the result.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub name: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// The limit it is compared with, if any.
    pub limit: Option<f64>,
    /// Unit of value and limit.
    pub unit: &'static str,
    /// value / limit (or value alone for absolute goals).
    pub ratio: Option<f64>,
    /// The goal as text, and whether it is met.
    pub goal: Option<(&'static str, bool)>,
}

fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_ascii_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(m: &BTreeMap<String, String>, k: &str) -> Option<f64> {
    m.get(k)?.parse().ok()
}

/// Everything wrong with a cluster run of the bench (every node must pass).
fn check(run: &ClusterRun, what: &str) -> Result<(), String> {
    if run.timed_out {
        return Err(format!("{what}: timed out"));
    }
    for n in &run.nodes {
        if n.status != Some(STATUS_PASS) {
            return Err(format!(
                "{what}: node {} exited with {:?}:\n{}",
                n.id,
                n.status,
                n.lines.join("\n")
            ));
        }
    }
    Ok(())
}

/// Run `plans` as a cluster in `dir`; every node must pass ([`check`], named `what`).
fn cluster(
    image: &Path,
    dir: &Path,
    plans: &[NodePlan],
    what: &str,
    show: &mut dyn FnMut(&str),
) -> Result<ClusterRun, String> {
    let c = Cluster::start(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let run = c
        .run(image, plans, Duration::from_secs(300), show)
        .map_err(|e: BootError| e.to_string())?;
    check(&run, what)?;
    Ok(run)
}

/// The fields of the first line of `node`'s log that starts with `prefix`.
fn line_fields(node: &NodeRun, prefix: &str) -> Result<BTreeMap<String, String>, String> {
    node.lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .map(|l| fields(l))
        .ok_or_else(|| {
            format!(
                "no `{prefix}` line in node {}'s log:\n{}",
                node.id,
                node.lines.join("\n")
            )
        })
}

/// The parts of a node's `PROFILE phase=putv` line, as (field, what).
const PROFILE_PARTS: [(&str, &str); 6] = [
    ("halted_us", "halted (waiting)"),
    ("crc_us", "CRC-32C"),
    ("copy_us", "copies (platform)"),
    ("nic_rx_us", "NIC receive"),
    ("nic_tx_us", "NIC transmit"),
    ("other_us", "engine + application"),
];

/// Rows of where one node's time went during the putv loop (share of the phase, %), from
/// its `PROFILE phase=putv` line.
fn profile_rows(rows: &mut Vec<Row>, size: u32, side: &str, node: &NodeRun) -> Result<(), String> {
    let f = line_fields(node, "PROFILE phase=putv")?;
    let elapsed = num(&f, "elapsed_us")
        .filter(|e| *e > 0.0)
        .ok_or("PROFILE elapsed_us")?;
    for (k, what) in PROFILE_PARTS {
        let v = num(&f, k).ok_or_else(|| format!("PROFILE field {k} missing"))?;
        rows.push(Row {
            name: format!("putv loop, {size} B, {side}: {what}"),
            value: 100.0 * v / elapsed,
            limit: None,
            unit: "% time",
            ratio: None,
            goal: None,
        });
    }
    Ok(())
}

/// Loaded bytes and `.bss` of an ELF64 image (sum of PT_LOAD file sizes, and memory
/// beyond them).
pub fn image_sizes(elf: &[u8]) -> Option<(u64, u64)> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let (mut loaded, mut bss) = (0, 0);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? == 1 {
            let (filesz, memsz) = (u64_at(ph + 0x20)?, u64_at(ph + 0x28)?);
            loaded += filesz;
            bss += memsz.saturating_sub(filesz);
        }
    }
    Some((loaded, bss))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Run the whole bench; `show` gets progress and the nodes' log lines.
///
/// # Errors
/// A node that failed, a missing line, or QEMU/image problems.
pub fn run(
    image: &Path,
    dir: &Path,
    o: Opts,
    show: &mut dyn FnMut(&str),
) -> Result<Vec<Row>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut quiet = |_: &str| {};

    // Image size.
    let elf = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let (loaded, bss) = image_sizes(&elf).ok_or("the image is not an ELF64 file")?;
    rows.push(Row {
        name: "image file (-kernel)".into(),
        value: elf.len() as f64,
        limit: None,
        unit: "B",
        ratio: None,
        goal: None,
    });
    rows.push(Row {
        name: format!("image loaded bytes (.bss {bss} B apart)"),
        value: loaded as f64,
        limit: Some(1_048_576.0),
        unit: "B",
        ratio: Some(loaded as f64 / 1_048_576.0),
        goal: Some(("≤ 1 MiB", loaded <= 1_048_576)),
    });

    // Bare boots.
    show("==> bare boots (the image exits at once)");
    let mut bare = Vec::new();
    for k in 0..o.bare_boots {
        let b = boot(
            image,
            "bare",
            &dir.join(format!("bare-{k}.serial")),
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())?;
        if b.status != Some(STATUS_PASS) {
            return Err(format!("bare boot: status {:?}", b.status));
        }
        bare.push(b.elapsed.as_secs_f64() * 1000.0);
    }

    let mut ready = Vec::new();
    let mut raw_best = BTreeMap::new();
    let mut raw_rtt = (0.0, 0.0);
    for (size, windows, pings) in [
        (1514u32, WINDOWS_1514, o.pings),
        (MAX_FRAME, WINDOWS_MAX, 0),
    ] {
        show(&format!("==> raw frames, {size} B, windows {windows}"));
        let plans = [
            NodePlan {
                id: 1,
                append: "scenario=raw role=sink peer=2".into(),
            },
            NodePlan {
                id: 2,
                append: format!(
                    "scenario=raw role=source peer=1 size={size} windows={windows} ms={} pings={pings}",
                    o.ms
                ),
            },
        ];
        let run = cluster(
            image,
            &dir.join(format!("raw-{size}")),
            &plans,
            "raw",
            &mut quiet,
        )?;
        ready.extend(
            run.nodes
                .iter()
                .filter_map(|n| n.first_frame)
                .map(|d| d.as_secs_f64() * 1000.0),
        );
        let src = &run.nodes[1];
        let mut best: f64 = 0.0;
        for l in src.lines.iter().filter(|l| l.starts_with("RAW ")) {
            let f = fields(l);
            let kbs = num(&f, "delivered_kbs").unwrap_or(0.0);
            show(&format!(
                "    window {:>3}: {:.1} MB/s delivered",
                f.get("window").map_or("?", String::as_str),
                kbs / 1000.0
            ));
            best = best.max(kbs / 1000.0);
        }
        if best <= 0.0 {
            return Err(format!("raw {size}: no phase delivered anything"));
        }
        raw_best.insert(size, best);
        if pings > 0 {
            let f = line_fields(src, "RAWRTT ")?;
            raw_rtt = (
                num(&f, "p50_us").unwrap_or(0.0),
                num(&f, "p99_us").unwrap_or(0.0),
            );
        }
    }

    let mut idle = Vec::new();
    let mut rtt = (0.0, 0.0);
    for size in [1514u32, MAX_FRAME] {
        show(&format!("==> putv between image nodes, {size} B frames"));
        let idle_ms = if size == MAX_FRAME { o.idle_ms } else { 0 };
        let plans = [
            NodePlan {
                id: 1,
                append: format!("scenario=demo role=bench-exporter peer=2 frame={size}"),
            },
            NodePlan {
                id: 2,
                append: format!(
                    "scenario=demo role=bench peer=1 frame={size} ms={} pings={} idle_ms={idle_ms}",
                    o.ms, o.pings
                ),
            },
        ];
        let run = cluster(
            image,
            &dir.join(format!("rsm-{size}")),
            &plans,
            "rsm",
            &mut quiet,
        )?;
        ready.extend(
            run.nodes
                .iter()
                .filter_map(|n| n.first_frame)
                .map(|d| d.as_secs_f64() * 1000.0),
        );
        let imp = &run.nodes[1];
        let f = line_fields(imp, "BENCH ")?;
        if size == MAX_FRAME {
            let m = line_fields(imp, "MEMORY ")?;
            for (k, what) in [
                ("node", "static memory: the node (all of it)"),
                ("rsm_tables", "static memory: RSM tables"),
                ("engine", "static memory: wire engine state"),
                ("wire_records", "static memory: wire records"),
                ("nic_buffers", "static memory: NIC buffers"),
                ("dma_pool", "static memory: virtqueue DMA pool"),
                ("pin_table", "static memory: pin table"),
            ] {
                rows.push(Row {
                    name: what.into(),
                    value: num(&m, k).ok_or("MEMORY field missing")?,
                    limit: None,
                    unit: "B",
                    ratio: None,
                    goal: None,
                });
            }
        }
        let mbs = num(&f, "putv_kbs").unwrap_or(0.0) / 1000.0;
        let limit = raw_best.get(&size).copied().unwrap_or(0.0);
        show(&format!("    putv {mbs:.1} MB/s, raw best {limit:.1} MB/s"));
        let ratio = mbs / limit.max(1e-9);
        rows.push(Row {
            name: format!("putv throughput, {size} B frames (vs raw best)"),
            value: mbs,
            limit: Some(limit),
            unit: "MB/s",
            ratio: Some(ratio),
            goal: Some(("≥ 0.9×", ratio >= 0.9)),
        });
        for (side, node) in [("sender", imp), ("receiver", &run.nodes[0])] {
            profile_rows(&mut rows, size, side, node)?;
        }
        if size == 1514 {
            rtt = (
                num(&f, "rtt_p50_us").unwrap_or(0.0),
                num(&f, "rtt_p99_us").unwrap_or(0.0),
            );
        }
        if idle_ms > 0 {
            for n in &run.nodes {
                let from = imp.time_of("IDLE begin").ok_or("no IDLE begin")?;
                let to = imp.time_of("IDLE end").ok_or("no IDLE end")?;
                let share = n.cpu_share(from, to).ok_or("no CPU samples")?;
                idle.push((n.id, share * 100.0, (to - from).as_secs_f64()));
            }
        }
    }
    // The same round trips with both nodes polling instead of halting (no NIC interrupt):
    // what `hlt` changed.
    show("==> putv round trips between image nodes polling (irq=off), 1514 B frames");
    let plans = [
        NodePlan {
            id: 1,
            append: "scenario=demo role=bench-exporter peer=2 frame=1514 irq=off".into(),
        },
        NodePlan {
            id: 2,
            append: format!(
                "scenario=demo role=bench peer=1 frame=1514 irq=off ms=10 pings={} idle_ms=0",
                o.pings
            ),
        },
    ];
    let run = cluster(
        image,
        &dir.join("rsm-polling"),
        &plans,
        "rsm polling",
        &mut quiet,
    )?;
    let f = line_fields(&run.nodes[1], "BENCH ")?;
    let polled = (
        num(&f, "rtt_p50_us").ok_or("polling: rtt_p50_us")?,
        num(&f, "rtt_p99_us").ok_or("polling: rtt_p99_us")?,
    );
    for (which, halting, polling) in [("p50", rtt.0, polled.0), ("p99", rtt.1, polled.1)] {
        rows.push(Row {
            name: format!("64 B round trip {which}, halting (vs both nodes polling)"),
            value: halting,
            limit: Some(polling),
            unit: "µs",
            ratio: Some(halting / polling.max(1e-9)),
            goal: None,
        });
    }
    for (which, putv, raw) in [("p50", rtt.0, raw_rtt.0), ("p99", rtt.1, raw_rtt.1)] {
        let ratio = putv / raw.max(1e-9);
        rows.push(Row {
            name: format!("64 B round trip {which} (putv vs raw ping-pong)"),
            value: putv,
            limit: Some(raw),
            unit: "µs",
            ratio: Some(ratio),
            goal: Some(("≤ 1.2×", ratio <= 1.2)),
        });
    }
    let (r, b) = (median(&mut ready), median(&mut bare));
    let ratio = r / b.max(1e-9);
    rows.push(Row {
        name: "boot to ready (spawn → first frame) vs bare (spawn → exit), medians".into(),
        value: r,
        limit: Some(b),
        unit: "ms",
        ratio: Some(ratio),
        goal: Some(("≤ 1.5×", ratio <= 1.5)),
    });
    for (id, pct, secs) in idle {
        rows.push(Row {
            name: format!("idle host CPU, node {id} connected ({secs:.1} s)"),
            value: pct,
            limit: None,
            unit: "% core",
            ratio: None,
            goal: Some(("≤ 2 %", pct <= 2.0)),
        });
    }
    let _ = std::fs::write(dir.join("bench.json"), json(&rows));
    Ok(rows)
}

/// The rows as JSON.
pub fn json(rows: &[Row]) -> String {
    let f = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.4}"));
    let mut s = String::from("{\"rows\":[\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "  {{\"name\":{:?},\"value\":{:.4},\"limit\":{},\"unit\":{:?},\"ratio\":{},\"goal\":{},\"met\":{}}}{}",
            r.name,
            r.value,
            f(r.limit),
            r.unit,
            f(r.ratio),
            r.goal.map_or("null".into(), |(g, _)| format!("{g:?}")),
            r.goal.map_or("null".into(), |(_, m)| m.to_string()),
            if i + 1 < rows.len() { ",\n" } else { "\n" }
        );
    }
    s.push_str("]}\n");
    s
}

/// The rows as a table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<66} {:>12} {:>12} {:>8}  goal",
        "measure", "value", "limit", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<66} {:>12} {:>12} {:>8}  {}",
            r.name,
            format!("{:.1} {}", r.value, r.unit),
            r.limit.map_or("-".into(), |l| format!("{l:.1} {}", r.unit)),
            r.ratio.map_or("-".into(), |x| format!("{x:.2}×")),
            r.goal.map_or(String::new(), |(g, m)| format!(
                "{g} {}",
                if m { "met" } else { "MISSED" }
            ))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with `loads` PT_LOAD entries of (filesz, memsz).
    fn elf(loads: &[(u64, u64)]) -> Vec<u8> {
        let mut e = vec![0u8; 64];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for &(f, m) in loads {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&1u32.to_le_bytes());
            ph[0x20..0x28].copy_from_slice(&f.to_le_bytes());
            ph[0x28..0x30].copy_from_slice(&m.to_le_bytes());
            e.extend(ph);
        }
        e
    }

    #[test]
    fn image_sizes_sum_the_loadable_segments() {
        assert_eq!(
            image_sizes(&elf(&[(100, 100), (20, 4116)])),
            Some((120, 4096))
        );
        assert_eq!(image_sizes(b"not an elf"), None);
        assert_eq!(image_sizes(&elf(&[(1, 1)])[..70]), None, "truncated");
    }

    #[test]
    fn the_json_has_every_row_and_verdict() {
        let rows = [Row {
            name: "x \"y\"".into(),
            value: 1.5,
            limit: Some(3.0),
            unit: "MB/s",
            ratio: Some(0.5),
            goal: Some(("≥ 0.9×", false)),
        }];
        let j = json(&rows);
        assert!(j.contains("\"name\":\"x \\\"y\\\"\""), "{j}");
        assert!(
            j.contains("\"ratio\":0.5000") && j.contains("\"met\":false"),
            "{j}"
        );
        assert!(table(&rows).contains("MISSED"));
    }
}

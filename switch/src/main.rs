//! `rsm-switch`: the L2 switch as a command.
//!
//! ```text
//! rsm-switch [--bind ADDR] [--pcap FILE] [--snaplen N] [--seed N] [--no-learn]
//!            [--drop PCT] [--dup PCT] [--corrupt PCT] [--reorder PCT] [--reorder-window N]
//!            [--delay-us N] [--jitter-us N] [--port ID=ADDR]... [--for SECS]
//! ```
//! Prints the address it listens on, forwards until stdin closes (or `--for` seconds pass),
//! then prints each port's counters.

#![forbid(unsafe_code)]

use rsm_switch::{Switch, SwitchConfig};
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

fn usage(why: &str) -> ! {
    eprintln!("rsm-switch: {why}");
    eprintln!(
        "usage: rsm-switch [--bind ADDR] [--pcap FILE] [--snaplen N] [--seed N] [--no-learn] \
         [--drop PCT] [--dup PCT] [--corrupt PCT] [--reorder PCT] [--reorder-window N] \
         [--delay-us N] [--jitter-us N] [--port ID=ADDR]... [--for SECS]"
    );
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| usage(&format!("{flag} needs a number")))
}

fn main() {
    let mut cfg = SwitchConfig::default();
    let mut ports: Vec<(u32, SocketAddr)> = Vec::new();
    let mut run_for: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => cfg.bind = num("--bind", args.next()),
            "--pcap" => cfg.pcap = Some(args.next().unwrap_or_else(|| usage("--pcap FILE")).into()),
            "--snaplen" => cfg.snaplen = num("--snaplen", args.next()),
            "--seed" => cfg.seed = num("--seed", args.next()),
            "--no-learn" => cfg.learn = false,
            "--drop" => cfg.faults.drop_pct = num("--drop", args.next()),
            "--dup" => cfg.faults.duplicate_pct = num("--dup", args.next()),
            "--corrupt" => cfg.faults.corrupt_pct = num("--corrupt", args.next()),
            "--reorder" => cfg.faults.reorder_pct = num("--reorder", args.next()),
            "--reorder-window" => cfg.faults.reorder_window = num("--reorder-window", args.next()),
            "--delay-us" => cfg.faults.delay_ns = num::<u64>("--delay-us", args.next()) * 1000,
            "--jitter-us" => cfg.faults.jitter_ns = num::<u64>("--jitter-us", args.next()) * 1000,
            "--port" => {
                let v = args.next().unwrap_or_else(|| usage("--port ID=ADDR"));
                let (id, addr) = v.split_once('=').unwrap_or_else(|| usage("--port ID=ADDR"));
                ports.push((
                    num("--port ID", Some(id.into())),
                    num("--port ADDR", Some(addr.into())),
                ));
            }
            "--for" => run_for = Some(num("--for", args.next())),
            "-h" | "--help" => usage("the L2 switch of an rsm-rs cluster over UDP"),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let sw = Switch::start(cfg).unwrap_or_else(|e| usage(&format!("cannot start: {e}")));
    for (id, addr) in ports {
        sw.bind_port(rsm_host::runtime::node_mac(id), addr);
    }
    println!("rsm-switch listening on {}", sw.addr());
    let st = sw.stats();
    println!(
        "socket buffers granted: receive {} B, send {} B",
        st.buffers.0, st.buffers.1
    );
    match run_for {
        Some(s) => std::thread::sleep(Duration::from_secs_f64(s.max(0.0))),
        None => {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
    }
    let st = sw.stop();
    println!(
        "frames: captured {}, flooded {}, forwarded {}, send dropped {}",
        st.captured, st.flooded, st.forwarded, st.send_dropped
    );
    for p in &st.ports {
        let c = &p.counters;
        let mac = p.mac.map_or("unbound".to_string(), |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        });
        println!(
            "port {} ({mac}): rx {} frames {} B, tx {} frames {} B, spoofed {}, unbound {}, \
             dropped {}, duplicated {}, corrupted {}, reordered {}",
            p.addr,
            c.rx_frames,
            c.rx_bytes,
            c.tx_frames,
            c.tx_bytes,
            c.spoofed,
            c.unbound,
            c.faults.dropped,
            c.faults.duplicated,
            c.faults.corrupted,
            c.faults.reordered
        );
    }
}

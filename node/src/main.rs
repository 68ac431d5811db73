//! `rsm-node`: a Linux process as a node of an rsm-rs cluster over UDP.
//!
//! ```text
//! rsm-node exporter [--importers 2,3] [--rounds N] [--unpublish-after-entry K]
//! rsm-node importer [--exporter 1] [--rounds N] [--reconnect]
//! rsm-node waiter   [--exporter 1]
//! rsm-node bulk     [--exporter 1]
//! rsm-node bench    [--smoke] [--frames 1514,65000]
//! ```
//! The node's id and link come from `RSM_NODE_ID`, `RSM_LINK`, `RSM_MAX_FRAME` and
//! `RSM_INCARNATION` (see `rsm_host::runtime`). The story roles print one line per step
//! (`READY`, `ROUND`, `ACL`, `DONE`, `LOST`, `FAIL` …) and exit 0 only if every check held;
//! see [`story`] for what each role does and [`bench`] for the benchmarks.
//!
//! Two terminals, no switch (direct peers):
//! ```text
//! RSM_NODE_ID=1 RSM_LINK=udp:127.0.0.1:7001,peer=2@127.0.0.1:7002 rsm-node exporter
//! RSM_NODE_ID=2 RSM_LINK=udp:127.0.0.1:7002,peer=1@127.0.0.1:7001 rsm-node importer
//! ```

#![forbid(unsafe_code)]

mod bench;
mod story;

use std::process::exit;

/// Print why the arguments are wrong and exit with status 2.
pub(crate) fn usage(why: &str) -> ! {
    eprintln!("rsm-node: {why}");
    eprintln!(
        "usage: rsm-node exporter [--importers 2,3] [--rounds N] [--unpublish-after-entry K]\n\
         \x20      rsm-node importer [--exporter 1] [--rounds N] [--reconnect]\n\
         \x20      rsm-node waiter   [--exporter 1]\n\
         \x20      rsm-node bulk     [--exporter 1]\n\
         \x20      rsm-node bench    [--smoke] [--frames 1514,65000]\n\
         node id and link: RSM_NODE_ID, RSM_LINK=udp:<bind>,switch=<addr> | \
         udp:<bind>,peer=<id>@<addr>[,peer=…]"
    );
    exit(2)
}

/// The value after a flag, parsed.
pub(crate) fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_else(|| usage("which role?"));
    let rest: Vec<String> = args.collect();
    let code = match role.as_str() {
        "exporter" | "importer" | "waiter" | "bulk" => story::main(&role, rest),
        "bench" | "bench-sink" | "bench-source" | "bench-exporter" | "bench-importer" => {
            bench::main(&role, rest)
        }
        "-h" | "--help" => usage("a host node of an rsm-rs cluster"),
        other => usage(&format!("unknown role `{other}`")),
    };
    exit(code)
}

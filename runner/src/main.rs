//! `rsm-runner`: the thin CLI behind `cargo rsm demo` and `cargo rsm test`.
//! All logic lives in the library (`rsm_runner`).

use std::process::ExitCode;

fn main() -> ExitCode {
    rsm_runner::main_with_args(std::env::args_os().skip(1))
}

//! The benchmarks (filled in below).

/// Run a bench role; returns the exit status.
pub fn main(_role: &str, _args: Vec<String>) -> i32 {
    crate::usage("bench: not built yet")
}

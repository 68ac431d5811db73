//! The conformance table's host harness (defined in `rsm-conformance`, feature `fake`).

pub use rsm_conformance::fake::FakeHarness;

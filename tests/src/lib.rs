//! Shared helpers for the integration tests in `tests/tests/`.
//!
//! The suites run against two platforms: [`rsm_hal::fake::FakePlatform`] (deterministic,
//! catches misuse, has a pin quota) and the real host backend [`rsm_host::HostPlatform`]
//! (mlock pinning).

pub use rsm_core;
pub use rsm_hal;
pub use rsm_host;

//! Host-backend checks of §4.1 / local memory handles, kept out of the `rsm-conformance`
//! table: their subject is `rsm_host::HostPlatform` itself (its `with_pin_quota` limit and
//! `PinnedBuf` mlocked buffers), not a platform-generic behaviour, so they cannot run over
//! another platform's harness. Moved verbatim from `tests/tests/conformance.rs`; the generic
//! pin-quota check (`create_local_pin_quota_exhausted_is_insufficient_mem`) is in the table.

use rsm_core::capi;
use rsm_core::{Config, LocalMemHandle, Rsm, RsmError};
use rsm_hal::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE;

/// §10 Local memory handles: pin-quota exhaustion → 32 on the host backend
/// (`HostPlatform::with_pin_quota`).
#[test]
fn create_local_host_pin_quota_exhausted_is_insufficient_mem() {
    use rsm_host::{HostPlatform, PinnedBuf};
    let platform = HostPlatform::with_pin_quota(2 * PAGE);
    let sys_page = platform.page_size();
    let n: Rsm<HostPlatform> = Rsm::new(platform, Config::default());
    let c = n.get_controller(None).unwrap();
    let quota = n.platform().pin_quota().unwrap();
    let over = PinnedBuf::new(quota + sys_page).unwrap();
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), over.region()),
        32
    );
    assert_eq!(
        n.create_localmemory_handle(c, over.region()),
        Err(RsmError::InsufficientMem)
    );
    assert_eq!(n.platform().pinned_pages(), 0);
    let fits = PinnedBuf::new(quota).unwrap();
    let a = n.create_localmemory_handle(c, fits.region()).unwrap();
    let extra = PinnedBuf::new(sys_page).unwrap();
    assert_eq!(
        n.create_localmemory_handle(c, extra.region()),
        Err(RsmError::InsufficientMem)
    );
    n.free_localmemory_handle(c, a).unwrap();
    let b = n.create_localmemory_handle(c, extra.region()).unwrap();
    n.free_localmemory_handle(c, b).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

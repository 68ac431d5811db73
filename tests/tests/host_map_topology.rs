//! Host-backend tests of mapping (spec §4.7) and lazy library initialisation (§9.32), kept
//! out of the conformance table (`rsm-conformance`, `conformance/src/map_topology.rs`).
//!
//! Their subject is the host backend itself — a mapping over `rsm_host::HostPlatform` and
//! its `PinnedBuf`/`MemRegion` memory, and `static` `LazyRsm`s over `HostPlatform`
//! initialised from racing std threads — not a platform-generic single-node check, so they
//! cannot run over the table's harness (or inside the unikernel image). Moved verbatim from
//! the old `conformance_map_topology.rs`.

use rsm_core::capi;
use rsm_core::lazy::LazyRsm;
use rsm_core::{Config, CreateFlags, IoVec, MapAttr, Permission, Rsm, ScatGath};
use rsm_hal::{Memory, PAGE_SIZE};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = PAGE_SIZE;

// The C return value of a typed call.
use rsm_core::capi::code as rc;

/// The same on the host platform: the window is the exporter's buffer (same address), and
/// bytes stored through it are read back by getv and by the exporter.
#[test]
fn host_mapping_is_the_exported_buffer() {
    let n: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
    let ctrl = n.get_controller(None).unwrap();
    let buf = PinnedBuf::new(2 * PAGE).unwrap();
    let seg = n
        .export_create(ctrl, buf.region(), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n
        .import_connect(ctrl, n.node_id(), id, Permission::RDWR)
        .unwrap();
    let w: MemRegion = n
        .import_map(
            imp,
            MapAttr::None,
            Permission::RDWR,
            PAGE as i64,
            PAGE,
            None,
        )
        .unwrap();
    assert_eq!(w.as_ptr() as usize, buf.as_ptr() as usize + PAGE);
    Memory::write(n.platform(), &w, 16, b"through the window").unwrap();
    let mut seen = [0u8; 18];
    buf.read(PAGE + 16, &mut seen).unwrap();
    assert_eq!(&seen, b"through the window");
    let dst = PinnedBuf::new(18).unwrap();
    let dst_r = dst.region();
    let iov = [IoVec::va(&dst_r, 0, PAGE + 16, 18)];
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(capi::rsm_memseg_import_getv(&n, Some(&mut sg)), 0);
    assert_eq!(dst.to_vec(), b"through the window");
    // putv → visible through the window.
    let src = PinnedBuf::new(5).unwrap();
    src.write(0, b"hello").unwrap();
    let src_r = src.region();
    let iov = [IoVec::va(&src_r, 0, PAGE + 100, 5)];
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(capi::rsm_memseg_import_putv(&n, Some(&mut sg)), 0);
    let mut back = [0u8; 5];
    Memory::read(n.platform(), &w, 100, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    assert_eq!(rc(n.import_disconnect(imp)), 10);
    assert_eq!(rc(n.import_unmap(imp)), 0);
    assert_eq!(rc(n.import_disconnect(imp)), 0);
    assert_eq!(rc(n.export_destroy(seg)), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
}

// =============================================================================================
// §9.32 Lazy initialisation
// =============================================================================================

static HOST_INITS: AtomicUsize = AtomicUsize::new(0);

fn host_init() -> Option<(HostPlatform, Config)> {
    HOST_INITS.fetch_add(1, Ordering::SeqCst);
    // Slow the first call down so that the second thread really races it.
    std::thread::sleep(std::time::Duration::from_millis(50));
    Some((HostPlatform::new(), Config::default()))
}

static HOST_RSM: LazyRsm<HostPlatform> = LazyRsm::new(host_init);

/// A `static` LazyRsm over the host platform initialises once: two threads get the same
/// instance; it is node 0 and works.
#[test]
fn lazy_rsm_initialises_once() {
    assert!(HOST_RSM.get_if_initialized().is_none());
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(|| HOST_RSM.get().map(|r| r as *const _ as usize)))
        .collect();
    let addrs: Vec<usize> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert_eq!(addrs[0], addrs[1]);
    assert_eq!(HOST_INITS.load(Ordering::SeqCst), 1);
    let rsm = HOST_RSM.get().unwrap();
    assert_eq!(rsm as *const _ as usize, addrs[0]);
    assert_eq!(HOST_INITS.load(Ordering::SeqCst), 1);
    assert_eq!(rsm.node_id(), 0);
    let ctrl = rsm.get_controller(Some("rsmnet0")).unwrap();
    assert_eq!(rc(rsm.release_controller(ctrl)), 0);
    assert!(HOST_RSM.get_if_initialized().is_some());
}

static FAILED_INITS: AtomicUsize = AtomicUsize::new(0);

fn failing_init() -> Option<(HostPlatform, Config)> {
    FAILED_INITS.fetch_add(1, Ordering::SeqCst);
    None
}

static FAILING_RSM: LazyRsm<HostPlatform> = LazyRsm::new(failing_init);

/// A failed initialisation → 4 (RSMERR_CTLR_NOT_PRESENT) on every call; not retried.
#[test]
fn lazy_rsm_failed_init_is_ctlr_not_present() {
    for _ in 0..3 {
        assert_eq!(rc(FAILING_RSM.get()), 4);
    }
    assert_eq!(FAILED_INITS.load(Ordering::SeqCst), 1);
    assert!(FAILING_RSM.get_if_initialized().is_none());
}

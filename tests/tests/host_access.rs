//! Host-backend test moved out of the old `conformance_access.rs`: put64/get64 word
//! atomicity (§4.5, rsm-hal `Memory::write`/`read`) on the real host backend
//! (`rsm_host::HostPlatform` over `PinnedBuf` memory, real threads). (Puts racing an
//! unpublish moved into the table: `puts_racing_unpublish_are_ok_or_conn_aborted`.)
//!
//! It is kept out of the `no_std` conformance table (`rsm-conformance`) because its subject
//! is the host backend itself — its copies of whole words between threads and its pinned
//! buffers — not a platform-generic single-node check; the access checks that are
//! platform-generic live in `conformance/src/access.rs`.

use rsm_core::barrier::Barrier;
use rsm_core::capi;
use rsm_core::{BarrierType, Config, CreateFlags, Permission, Rsm};
use rsm_hal::PAGE_SIZE;
use rsm_host::{HostPlatform, PinnedBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;

const PAGE: usize = PAGE_SIZE;

// Error codes (spec §2.2), spelled out so the assertions read like the spec.
const OK: i32 = 0;

/// A byte buffer whose start is 16-aligned (so it can stand for a C `uint64_t *`), with a
/// spare byte so that a deliberately misaligned view fits too.
struct Buf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let v = vec![0u8; len + 17];
        let off = v.as_ptr().align_offset(16);
        assert!(off < 16, "cannot align a test buffer");
        Buf { v, off, len }
    }
    fn from(data: &[u8]) -> Buf {
        let mut b = Buf::new(data.len());
        b.bytes_mut().copy_from_slice(data);
        b
    }
    fn bytes(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

// =============================================================================================
// Word atomicity on the host backend (§4.5, rsm-hal `Memory::write`/`read`)
// =============================================================================================

/// §4.5 put64/get64 on the real host backend: while one thread put64s whole 4 KiB patterns
/// (every word 0x1111…11, then every word 0x2222…22, alternating, through the Rust API and
/// the C layer), another get64s the window and checks that every word is one of the two
/// patterns — a torn word (half of each) would fail. Bounded by iteration counts.
#[test]
fn put64_get64_are_word_atomic_on_the_host() {
    const WORDS: usize = PAGE / 8;
    const WRITES: usize = 3000;
    const A: u64 = 0x1111_1111_1111_1111;
    const B: u64 = 0x2222_2222_2222_2222;

    let node: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
    let ctrl = node.get_controller(None).unwrap();
    let buf = PinnedBuf::new(PAGE).unwrap();
    let seg = node
        .export_create(ctrl, buf.region(), CreateFlags::empty())
        .unwrap();
    let id = node.export_publish(seg, 0, &[]).unwrap();
    let imp = node
        .import_connect(ctrl, node.node_id(), id, Permission::RDWR)
        .unwrap();
    let mut barrier = Barrier::default();
    node.init_barrier(imp, BarrierType::SEGMENT, &mut barrier)
        .unwrap();
    node.put64(imp, 0, &[A; WORDS]).unwrap();

    /// Sets the flag when dropped, so a panicking writer still stops the reader.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    let done = AtomicBool::new(false);
    let mixed = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let _done = Done(&done);
            let a_bytes = Buf::from(&[0x11; PAGE]);
            let b_bytes = Buf::from(&[0x22; PAGE]);
            for k in 0..WRITES {
                let (words, bytes) = if k % 2 == 0 {
                    (&[B; WORDS], &b_bytes)
                } else {
                    (&[A; WORDS], &a_bytes)
                };
                if k % 4 < 2 {
                    node.put64(imp, 0, words).unwrap();
                } else {
                    let rc = capi::rsm_memseg_import_put64(
                        &node,
                        imp,
                        0,
                        Some(bytes.bytes()),
                        WORDS as u64,
                    );
                    assert_eq!(rc, OK);
                }
            }
        });
        s.spawn(|| {
            let mut words = [0u64; WORDS];
            let mut bytes = Buf::new(PAGE);
            let mut reads = 0usize;
            loop {
                let finished = done.load(SeqCst);
                if reads % 2 == 0 {
                    node.get64(imp, 0, &mut words).unwrap();
                } else {
                    let rc = capi::rsm_memseg_import_get64(
                        &node,
                        imp,
                        0,
                        Some(bytes.bytes_mut()),
                        WORDS as u64,
                    );
                    assert_eq!(rc, OK);
                    for (w, b) in words.iter_mut().zip(bytes.bytes().chunks_exact(8)) {
                        *w = u64::from_ne_bytes(b.try_into().unwrap());
                    }
                }
                for (k, &w) in words.iter().enumerate() {
                    assert!(
                        w == A || w == B,
                        "read {reads}: word {k} is torn: {w:#018x}"
                    );
                }
                if words.contains(&A) && words.contains(&B) {
                    mixed.fetch_add(1, SeqCst);
                }
                reads += 1;
                if finished {
                    break;
                }
            }
            assert!(reads > 0);
        });
    });
    // Mixed windows (some words old, some new) are allowed and show the threads overlapped;
    // their number depends on scheduling, so it is only reported.
    eprintln!("windows with both patterns: {}", mixed.load(SeqCst));
    let mut last = [0u64; WORDS];
    node.get64(imp, 0, &mut last).unwrap();
    assert!(
        last.iter().all(|&w| w == A),
        "the last write (A) is what stays"
    );
    node.destroy_barrier(&mut barrier).unwrap();
    node.import_disconnect(imp).unwrap();
    node.export_destroy(seg).unwrap();
    node.release_controller(ctrl).unwrap();
    assert_eq!(node.slots_in_use(), (0, 0, 0));
}

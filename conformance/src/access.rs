//! RSMAPI conformance: put/get (spec §4.5), barriers and barrier modes (§4.8), forced
//! disconnect (§6.4) — every §10 "Import" case about put/get/barriers/modes, the check order
//! of every one of these functions (a call failing two checks at once gets the earlier one,
//! §4.5 "Validation order", §9.10) and each rsm-rs choice documented in the rustdoc
//! (§9.1, §9.12, §9.18, §9.24, §9.33, zero length, aborted connections do no I/O, destroyed
//! barrier storage is uninitialised).
//!
//! Numeric codes go through the C-shaped entry points of `rsm_core::capi` (the only way to pass
//! NULL or misaligned data pointers); typed `RsmError`s through the Rust API. The data checks
//! compare the exported bytes as the exporter sees them (on the fake platform any
//! out-of-range copy also panics). Puts racing an unpublish need two threads (`THREADS`); the
//! word-atomicity test exercises the host backend itself and stays a host test
//! (`tests/tests/host_access.rs`).

use crate::{
    check, check_eq, fail, node, pat, read_bytes, Bytes, Fail, Harness, Must, Needs, Outcome,
};
use core::slice::SliceIndex;
use rsm_core::barrier::Barrier;
use rsm_core::capi;
use rsm_core::{BarrierMode, BarrierType, CreateFlags, ImportHandle, Permission, Rsm, RsmError};
use rsm_hal::{Platform, PAGE_SIZE};

crate::table! {
    read_only_connect_get_succeeds_and_put_is_perm_denied,
    put_get_before_init_barrier_is_barrier_uninitialized: Needs::PIN_COUNT,
    misaligned_offsets_are_bad_mem_alignment,
    out_of_range_accesses_are_bad_offset,
    exporter_unpublish_aborts_put_get_and_close_barrier: Needs::PIN_COUNT,
    exporter_destroy_then_next_put_is_conn_aborted: Needs::PIN_COUNT,
    set_mode_7_is_bad_mode,
    explicit_mode_needs_no_barrier,
    barriers_and_modes_are_per_import,
    close_or_order_without_open_is_barrier_not_opened,
    uninitialised_barrier_is_barrier_uninitialized_and_null_is_bad_barrier_ptr,
    destroyed_barrier_later_use_is_barrier_uninitialized,
    init_on_two_barriers_last_wins,
    destroy_of_current_barrier_makes_implicit_put_uninitialized_again,
    barrier_type_is_ignored,
    barrier_on_an_aborted_connection_fails_at_close,
    put_get_check_order,
    c_put_get_check_order,
    init_barrier_check_order,
    open_order_close_destroy_check_order,
    set_mode_and_get_mode_check_order,
    round_trips_every_width,
    c_round_trips_every_width,
    zero_length_is_a_validated_no_op: Needs::PIN_COUNT,
    put_get_follow_a_rebind,
    put_get_leave_no_references_behind: Needs::PIN_COUNT,
    puts_racing_unpublish_are_ok_or_conn_aborted: Needs::THREADS,
}

const PAGE: usize = PAGE_SIZE;
const EXPLICIT: u32 = 0;
const IMPLICIT: u32 = 1;

// Error codes (spec §2.2), spelled out so the assertions read like the spec.
const OK: i32 = 0;
const BAD_SEG_HNDL: i32 = 5;
const BAD_BARRIER_PTR: i32 = 13;
const BAD_ADDR: i32 = 16;
const BAD_MEM_ALIGNMENT: i32 = 17;
const BAD_OFFSET: i32 = 18;
const BAD_LENGTH: i32 = 20;
const BAD_MODE: i32 = 25;
const PERM_DENIED: i32 = 27;
const BARRIER_UNINITIALIZED: i32 = 35;
const BARRIER_NOT_OPENED: i32 = 37;
const CONN_ABORTED: i32 = 40;

// The C return value of a typed call.
use rsm_core::capi::code as rc;

/// The part `r` of `b`, or a failure at the caller when `r` runs outside it.
#[track_caller]
fn part<R: SliceIndex<[u8], Output = [u8]>>(b: &[u8], r: R) -> Result<&[u8], Fail> {
    match b.get(r) {
        Some(s) => Ok(s),
        None => Err(Fail::new("range outside the buffer")),
    }
}

/// Room in a [`Buf`]: the longest test buffer (256 bytes) plus the spare byte of a
/// misaligned view, rounded up to the alignment.
const BUF_CAP: usize = 272;

/// Storage whose start is 16-aligned.
#[repr(C, align(16))]
struct Aligned([u8; BUF_CAP]);

/// A byte buffer (on the stack) whose start is 16-aligned (so it can stand for a C
/// `uint64_t *`), with a spare byte so that a deliberately misaligned view fits too.
struct Buf {
    v: Aligned,
    len: usize,
}

impl Buf {
    /// `len` zero bytes (`len` below [`BUF_CAP`]).
    #[track_caller]
    fn new(len: usize) -> Result<Buf, Fail> {
        if len >= BUF_CAP {
            return Err(Fail::new("test buffer longer than BUF_CAP"));
        }
        Ok(Buf {
            v: Aligned([0; BUF_CAP]),
            len,
        })
    }
    /// A copy of `data`.
    #[track_caller]
    fn from(data: &[u8]) -> Result<Buf, Fail> {
        let mut b = Buf::new(data.len())?;
        b.bytes_mut().copy_from_slice(data);
        Ok(b)
    }
    fn bytes(&self) -> &[u8] {
        &self.v.0[..self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.v.0[..self.len]
    }
    /// The same length starting one byte later: aligned to nothing but 1.
    fn misaligned(&mut self) -> &mut [u8] {
        &mut self.v.0[1..1 + self.len]
    }
    fn misaligned_ref(&self) -> &[u8] {
        &self.v.0[1..1 + self.len]
    }
    /// Bytes 4..12 of the storage: 4-aligned but not 8-aligned.
    fn four_aligned(&mut self) -> &mut [u8] {
        &mut self.v.0[4..12]
    }
}

/// The shared fixture ([`crate::fixture::Fx`]: one published segment, one connection to
/// it) with this module's constructors and helpers.
struct Fx<'h, H: Harness>(crate::fixture::Fx<'h, H>);

impl<'h, H: Harness> core::ops::Deref for Fx<'h, H> {
    type Target = crate::fixture::Fx<'h, H>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'h, H: Harness> Fx<'h, H> {
    /// Loopback controller, `len` bytes exported with `RSM_ALLOW_REBIND` and filled with
    /// `pat(len, 0x40)`, published with an automatic id, connected with `p`. No barrier yet.
    fn new(h: &'h H, len: usize, p: Permission) -> Result<Self, Fail> {
        let fx = crate::fixture::Fx::new(h, len, p)?;
        fx.fill_seg(0x40)?;
        Ok(Fx(fx))
    }

    /// [`Fx::new`] with a barrier initialised on the import (so implicit mode works).
    fn ready(h: &'h H, len: usize, p: Permission) -> Result<(Self, Barrier), Fail> {
        let fx = Fx::new(h, len, p)?;
        let mut b = Barrier::default();
        fx.n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
        Ok((fx, b))
    }

    /// Copies the platform has performed so far.
    #[track_caller]
    fn copies(&self) -> Result<u64, Fail> {
        Ok(self.h.counters(self.n.platform()).must()?.1)
    }

    /// A handle of an import that was connected and then disconnected.
    fn stale_import(&self) -> Result<ImportHandle, Fail> {
        let h = self
            .n
            .import_connect(self.ctrl, self.n.node_id(), self.id, Permission::RDWR)?;
        self.n.import_disconnect(h)?;
        Ok(h)
    }

    /// A second connection to the same segment.
    fn connect(&self, p: Permission) -> Result<ImportHandle, Fail> {
        Ok(self
            .n
            .import_connect(self.ctrl, self.n.node_id(), self.id, p)?)
    }
}

/// Every put form of the C layer on `imp` at `offset` with 8 aligned bytes of 0xA5; returns
/// the five codes (put, put8, put16, put32, put64).
fn c_puts<P: Platform>(n: &Rsm<P>, imp: ImportHandle, offset: i64) -> Result<[i32; 5], Fail> {
    let b = Buf::from(&[0xA5; 8])?;
    let d = Some(b.bytes());
    Ok([
        capi::rsm_memseg_import_put(n, imp, offset, d, 8),
        capi::rsm_memseg_import_put8(n, imp, offset, d, 8),
        capi::rsm_memseg_import_put16(n, imp, offset, d, 4),
        capi::rsm_memseg_import_put32(n, imp, offset, d, 2),
        capi::rsm_memseg_import_put64(n, imp, offset, d, 1),
    ])
}

/// Every get form of the C layer on `imp` at `offset` into 8 aligned bytes; returns the five
/// codes (get, get8, get16, get32, get64) and whether the buffer stayed untouched.
fn c_gets<P: Platform>(
    n: &Rsm<P>,
    imp: ImportHandle,
    offset: i64,
) -> Result<([i32; 5], bool), Fail> {
    let mut b = Buf::from(&[0x5A; 8])?;
    let codes = [
        capi::rsm_memseg_import_get(n, imp, offset, Some(b.bytes_mut()), 8),
        capi::rsm_memseg_import_get8(n, imp, offset, Some(b.bytes_mut()), 8),
        capi::rsm_memseg_import_get16(n, imp, offset, Some(b.bytes_mut()), 4),
        capi::rsm_memseg_import_get32(n, imp, offset, Some(b.bytes_mut()), 2),
        capi::rsm_memseg_import_get64(n, imp, offset, Some(b.bytes_mut()), 1),
    ];
    Ok((codes, b.bytes() == [0x5A; 8]))
}

/// Every typed put form of the Rust API at `offset` (8 bytes each).
fn rust_puts<P: Platform>(n: &Rsm<P>, imp: ImportHandle, offset: i64) -> [i32; 5] {
    [
        rc(n.put(imp, offset, &[1; 8])),
        rc(n.put8(imp, offset, &[1; 8])),
        rc(n.put16(imp, offset, &[1; 4])),
        rc(n.put32(imp, offset, &[1; 2])),
        rc(n.put64(imp, offset, &[1; 1])),
    ]
}

/// Every typed get form of the Rust API at `offset` (8 bytes each).
fn rust_gets<P: Platform>(n: &Rsm<P>, imp: ImportHandle, offset: i64) -> [i32; 5] {
    [
        rc(n.get(imp, offset, &mut [0; 8])),
        rc(n.get8(imp, offset, &mut [0; 8])),
        rc(n.get16(imp, offset, &mut [0; 4])),
        rc(n.get32(imp, offset, &mut [0; 2])),
        rc(n.get64(imp, offset, &mut [0; 1])),
    ]
}

/// A C put form (`rsm_memseg_import_put8` … `put64`).
type Put<P> = fn(&Rsm<P>, ImportHandle, i64, Option<&[u8]>, u64) -> i32;
/// A C get form (`rsm_memseg_import_get8` … `get64`).
type Get<P> = fn(&Rsm<P>, ImportHandle, i64, Option<&mut [u8]>, u64) -> i32;
/// A C width form: item size in bytes, its put, its get.
type Form<P> = (usize, Put<P>, Get<P>);

// =============================================================================================
// §10 Import checklist
// =============================================================================================

/// §10 Import, §9.33: a read-only connection can get (illumos would fail with 26 through its
/// implicit read+write map) and put → 27 (RSMERR_PERM_DENIED), in every form; a write-only
/// connection is the mirror image.
fn read_only_connect_get_succeeds_and_put_is_perm_denied<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::READ)?;
    let before = fx.seg_bytes()?;
    let mut got = [0u8; 16];
    fx.n.get(fx.imp, 32, &mut got)?;
    check_eq!(&got[..], part(&before, 32..48)?);
    let (codes, _) = c_gets(&fx.n, fx.imp, 8)?;
    check_eq!(codes, [OK; 5], "every get form works read-only");
    check_eq!(c_puts(&fx.n, fx.imp, 8)?, [PERM_DENIED; 5]);
    check_eq!(rust_puts(&fx.n, fx.imp, 8), [PERM_DENIED; 5]);
    check_eq!(fx.seg_bytes()?, before, "a denied put writes nothing");

    let wo = fx.connect(Permission::WRITE)?;
    fx.n.set_mode(wo, EXPLICIT)?;
    check_eq!(c_puts(&fx.n, wo, 8)?, [OK; 5]);
    check_eq!(&fx.seg_read(8, 8)?[..], &[0xA5; 8][..], "the C puts landed");
    let (codes, untouched) = c_gets(&fx.n, wo, 8)?;
    check_eq!(codes, [PERM_DENIED; 5]);
    check!(untouched, "a denied get leaves the buffer alone");
    check_eq!(rust_gets(&fx.n, wo, 8), [PERM_DENIED; 5]);

    let none = fx.connect(Permission::empty())?;
    fx.n.set_mode(none, EXPLICIT)?;
    check_eq!(rust_gets(&fx.n, none, 0), [PERM_DENIED; 5]);
    check_eq!(rust_puts(&fx.n, none, 0), [PERM_DENIED; 5]);
    Ok(())
}

/// §10 Import, §9.1: a new import is in implicit mode and has no barrier: every put/get form
/// → 35 (RSMERR_BARRIER_UNINITIALIZED), nothing moves; after init_barrier they work.
fn put_get_before_init_barrier_is_barrier_uninitialized<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let before = fx.seg_bytes()?;
    let copies = fx.copies()?;
    check_eq!(c_puts(&fx.n, fx.imp, 0)?, [BARRIER_UNINITIALIZED; 5]);
    let (codes, untouched) = c_gets(&fx.n, fx.imp, 0)?;
    check_eq!(codes, [BARRIER_UNINITIALIZED; 5]);
    check!(untouched);
    check_eq!(rust_puts(&fx.n, fx.imp, 0), [BARRIER_UNINITIALIZED; 5]);
    check_eq!(rust_gets(&fx.n, fx.imp, 0), [BARRIER_UNINITIALIZED; 5]);
    check_eq!(fx.seg_bytes()?, before);
    check_eq!(fx.copies()?, copies, "no copy was attempted");

    let mut b = Barrier::default();
    fx.n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
    check_eq!(c_puts(&fx.n, fx.imp, 0)?, [OK; 5]);
    check_eq!(rust_gets(&fx.n, fx.imp, 0), [OK; 5]);
    Ok(())
}

/// §10 Import, §4.5 step 4, §9.12: an offset that is not a multiple of N/8 → 17
/// (RSMERR_BAD_MEM_ALIGNMENT) — not 18 and not 19 — for every width, also when the offset is
/// negative or beyond the end (alignment is checked first).
fn misaligned_offsets_are_bad_mem_alignment<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let i = fx.imp;
    check_eq!(
        rc(n.get32(i, 2, &mut [0; 1])),
        BAD_MEM_ALIGNMENT,
        "get32 @2"
    );
    check_eq!(rc(n.get32(i, 4, &mut [0; 1])), OK, "get32 @4");
    check_eq!(rc(n.get16(i, 1, &mut [0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.get64(i, 4, &mut [0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.put16(i, 3, &[0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.put32(i, 6, &[0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.put64(i, 12, &[0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(
        rc(n.get32(i, -3, &mut [0; 1])),
        BAD_MEM_ALIGNMENT,
        "negative"
    );
    check_eq!(rc(n.get64(i, i64::MAX, &mut [0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.put32(i, 4097 * 4 + 2, &[0; 1])), BAD_MEM_ALIGNMENT);
    let mut b = Buf::new(8)?;
    check_eq!(
        capi::rsm_memseg_import_get32(n, i, 2, Some(b.bytes_mut()), 1),
        BAD_MEM_ALIGNMENT
    );
    // Bytes have no alignment requirement.
    check_eq!(rc(n.get8(i, 1, &mut [0; 3])), OK);
    check_eq!(rc(n.put(i, 7, &[0; 3])), OK);
    Ok(())
}

/// §10 Import, §4.5 step 8, §9.12: an access that leaves the segment → 18
/// (RSMERR_BAD_OFFSET): past the end, straddling the end, negative, `i64::MAX`, `i64::MIN`;
/// an access ending exactly at the end is fine.
fn out_of_range_accesses_are_bad_offset<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let i = fx.imp;
    let before = fx.seg_bytes()?;
    let end = PAGE as i64;
    check_eq!(rc(n.get(i, end - 4, &mut [0; 8])), BAD_OFFSET, "straddles");
    check_eq!(rc(n.get(i, end, &mut [0; 1])), BAD_OFFSET, "at the end");
    check_eq!(rc(n.get64(i, end, &mut [0; 1])), BAD_OFFSET);
    check_eq!(rc(n.get64(i, end - 8, &mut [0; 2])), BAD_OFFSET);
    check_eq!(rc(n.put32(i, end - 4, &[0; 2])), BAD_OFFSET);
    check_eq!(rc(n.get(i, -1, &mut [0; 1])), BAD_OFFSET, "negative");
    check_eq!(rc(n.put64(i, -8, &[0; 1])), BAD_OFFSET, "negative, aligned");
    check_eq!(rc(n.get(i, i64::MAX, &mut [0; 1])), BAD_OFFSET, "i64::MAX");
    check_eq!(rc(n.put8(i, i64::MAX, &[0; 1])), BAD_OFFSET);
    check_eq!(rc(n.get64(i, i64::MAX - 7, &mut [0; 1])), BAD_OFFSET);
    check_eq!(rc(n.put64(i, i64::MIN, &[0; 1])), BAD_OFFSET, "i64::MIN");
    check_eq!(rc(n.put(i, 1, &[0; PAGE])), BAD_OFFSET, "one too long");
    let (codes, untouched) = c_gets(n, i, end)?;
    check_eq!(codes, [BAD_OFFSET; 5]);
    check!(untouched);
    check_eq!(c_puts(n, i, i64::MAX - 7)?, [BAD_OFFSET; 5]);
    check_eq!(fx.seg_bytes()?, before, "nothing written");
    // Exactly up to the end is in range; so is the whole segment.
    check_eq!(rc(n.get64(i, end - 8, &mut [0; 1])), OK);
    let mut all = [0u8; PAGE];
    check_eq!(rc(n.get(i, 0, &mut all)), OK);
    check_eq!(&all[..], &before[..]);
    Ok(())
}

/// §10 Import, §6.4: the exporter unpublishes → the importer's next put/get → 40
/// (RSMERR_CONN_ABORTED), in every form and in both modes, and the open barrier's close → 40.
/// Our choice: an aborted access does no I/O at all (illumos: trash page). The connection
/// stays aborted after a republish.
fn exporter_unpublish_aborts_put_get_and_close_barrier<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    fx.n.open_barrier(&mut b)?;
    fx.n.put(fx.imp, 0, b"before")?;
    fx.n.export_unpublish(fx.seg)?;
    let before = fx.seg_bytes()?;
    let copies = fx.copies()?;
    check_eq!(c_puts(&fx.n, fx.imp, 0)?, [CONN_ABORTED; 5]);
    let (codes, untouched) = c_gets(&fx.n, fx.imp, 0)?;
    check_eq!(codes, [CONN_ABORTED; 5]);
    check!(
        untouched,
        "an aborted get writes nothing into the caller's buffer"
    );
    check_eq!(rust_puts(&fx.n, fx.imp, 0), [CONN_ABORTED; 5]);
    check_eq!(rust_gets(&fx.n, fx.imp, 0), [CONN_ABORTED; 5]);
    check_eq!(fx.n.order_barrier(&mut b), Err(RsmError::ConnAborted));
    check_eq!(
        capi::rsm_memseg_import_close_barrier(&fx.n, Some(&mut b)),
        CONN_ABORTED
    );
    check!(!b.is_open(), "the failed close still closed the scope");
    check_eq!(fx.n.close_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    fx.n.set_mode(fx.imp, EXPLICIT)?;
    check_eq!(
        rust_puts(&fx.n, fx.imp, 0),
        [CONN_ABORTED; 5],
        "explicit mode"
    );
    check_eq!(rust_gets(&fx.n, fx.imp, 0), [CONN_ABORTED; 5]);
    check_eq!(fx.seg_bytes()?, before);
    check_eq!(fx.copies()?, copies, "no copy was attempted");

    // Republishing starts a new epoch: the old connection stays aborted, a new one works.
    let id = fx.n.export_publish(fx.seg, 0, &[])?;
    check_eq!(rc(fx.n.put(fx.imp, 0, b"x")), CONN_ABORTED);
    fx.n.open_barrier(&mut b)?;
    check_eq!(fx.n.close_barrier(&mut b), Err(RsmError::ConnAborted));
    let fresh =
        fx.n.import_connect(fx.ctrl, fx.n.node_id(), id, Permission::RDWR)?;
    fx.n.set_mode(fresh, EXPLICIT)?;
    fx.n.put(fresh, 0, b"after")?;
    check_eq!(&fx.seg_read(0, 5)?[..], b"after");
    // The aborted handle is still a handle: it disconnects normally.
    fx.n.import_disconnect(fx.imp)?;
    fx.n.import_disconnect(fresh)?;
    Ok(())
}

/// §6.4, §4.3: the exporter destroys the segment → the importer's next put → 40, get → 40,
/// close and order of an open barrier → 40; the handle still disconnects and nothing leaks.
fn exporter_destroy_then_next_put_is_conn_aborted<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    fx.n.put64(fx.imp, 0, &[7; 4])?;
    fx.n.open_barrier(&mut b)?;
    fx.n.export_destroy(fx.seg)?;
    check_eq!(fx.n.put(fx.imp, 0, b"x"), Err(RsmError::ConnAborted));
    check_eq!(
        fx.n.get64(fx.imp, 0, &mut [0; 4]),
        Err(RsmError::ConnAborted)
    );
    check_eq!(c_puts(&fx.n, fx.imp, 0)?, [CONN_ABORTED; 5]);
    check_eq!(fx.n.order_barrier(&mut b), Err(RsmError::ConnAborted));
    check_eq!(fx.n.close_barrier(&mut b), Err(RsmError::ConnAborted));
    fx.n.destroy_barrier(&mut b)?;
    fx.n.import_disconnect(fx.imp)?;
    fx.n.release_controller(fx.ctrl)?;
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    check_eq!(h.pinned_pages(fx.n.platform()).must()?, 0);
    Ok(())
}

/// §10 Import, §4.8: set_mode(7) → 25 (RSMERR_BAD_MODE), as does any value but 0 and 1; the
/// mode is unchanged.
fn set_mode_7_is_bad_mode<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    for bad in [7, 2, 0x100, u32::MAX] {
        check_eq!(
            capi::rsm_memseg_import_set_mode(&fx.n, fx.imp, bad),
            BAD_MODE,
            "{bad}"
        );
        check_eq!(fx.n.set_mode(fx.imp, bad), Err(RsmError::BadMode));
    }
    check_eq!(fx.n.get_mode(fx.imp), Ok(BarrierMode::Implicit));
    check_eq!(
        capi::rsm_memseg_import_set_mode(&fx.n, fx.imp, EXPLICIT),
        OK
    );
    check_eq!(fx.n.set_mode(fx.imp, 7), Err(RsmError::BadMode));
    check_eq!(fx.n.get_mode(fx.imp), Ok(BarrierMode::Explicit));
    Ok(())
}

// =============================================================================================
// Barrier modes (§2.6, §4.8, §9.1)
// =============================================================================================

/// §2.6, §9.1: new imports are implicit; explicit mode needs no barrier; switching back to
/// implicit mode needs one again. get_mode reports what set_mode set (Rust and C layer).
fn explicit_mode_needs_no_barrier<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    check_eq!(fx.n.get_mode(fx.imp), Ok(BarrierMode::Implicit));
    check_eq!(rc(fx.n.put(fx.imp, 0, b"nope")), BARRIER_UNINITIALIZED);
    fx.n.set_mode(fx.imp, EXPLICIT)?;
    let mut m = BarrierMode::Implicit;
    check_eq!(
        capi::rsm_memseg_import_get_mode(&fx.n, fx.imp, Some(&mut m)),
        OK
    );
    check_eq!(m, BarrierMode::Explicit);
    fx.n.put(fx.imp, 100, b"explicit")?;
    check_eq!(&fx.seg_read(100, 8)?[..], b"explicit");
    let mut back = [0u8; 8];
    fx.n.get(fx.imp, 100, &mut back)?;
    check_eq!(&back, b"explicit");
    fx.n.set_mode(fx.imp, IMPLICIT)?;
    check_eq!(fx.n.get_mode(fx.imp), Ok(BarrierMode::Implicit));
    check_eq!(rc(fx.n.get(fx.imp, 100, &mut back)), BARRIER_UNINITIALIZED);
    Ok(())
}

/// §4.8, §9.1: the implicit-mode barrier belongs to one import: a barrier initialised on one
/// connection does not serve another connection to the same segment; modes are per import.
fn barriers_and_modes_are_per_import<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let other = fx.connect(Permission::RDWR)?;
    fx.n.put(fx.imp, 0, b"a")?;
    check_eq!(rc(fx.n.put(other, 0, b"b")), BARRIER_UNINITIALIZED);
    fx.n.set_mode(other, EXPLICIT)?;
    check_eq!(fx.n.get_mode(fx.imp), Ok(BarrierMode::Implicit));
    fx.n.put(other, 1, b"b")?;
    check_eq!(&fx.seg_read(0, 2)?[..], b"ab");
    Ok(())
}

// =============================================================================================
// Barrier state machine (§4.8, §9.12, §9.24)
// =============================================================================================

/// §4.8, §9.12 (our choice): close or order without open → 37 (RSMERR_BARRIER_NOT_OPENED);
/// open → order (any number of times) → close; re-opening an open barrier restarts the scope.
fn close_or_order_without_open_is_barrier_not_opened<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    check!(b.is_initialized() && !b.is_open());
    check_eq!(b.segment(), Some(fx.imp));
    check_eq!(
        capi::rsm_memseg_import_close_barrier(n, Some(&mut b)),
        BARRIER_NOT_OPENED
    );
    check_eq!(
        capi::rsm_memseg_import_order_barrier(n, Some(&mut b)),
        BARRIER_NOT_OPENED
    );
    check_eq!(capi::rsm_memseg_import_open_barrier(n, Some(&mut b)), OK);
    check!(b.is_open());
    n.put(fx.imp, 0, b"one")?;
    check_eq!(capi::rsm_memseg_import_order_barrier(n, Some(&mut b)), OK);
    n.put(fx.imp, 3, b"two")?;
    check_eq!(n.order_barrier(&mut b), Ok(()));
    check!(b.is_open(), "order keeps the scope open");
    check_eq!(capi::rsm_memseg_import_close_barrier(n, Some(&mut b)), OK);
    check!(!b.is_open());
    check_eq!(n.close_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    check_eq!(n.order_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    // Open twice: the second open restarts the scope; one close ends it.
    n.open_barrier(&mut b)?;
    n.open_barrier(&mut b)?;
    n.close_barrier(&mut b)?;
    check_eq!(n.close_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    // A copy of the storage opens and closes on its own.
    let mut copy = b.clone();
    n.open_barrier(&mut copy)?;
    check!(copy.is_open() && !b.is_open());
    n.close_barrier(&mut copy)?;
    check_eq!(&fx.seg_read(0, 6)?[..], b"onetwo");
    Ok(())
}

/// §3.5, §4.8: uninitialised storage (zeroed C storage = `Barrier::default()`) → 35 from
/// open/order/close/destroy; a NULL barrier pointer → 13 (RSMERR_BAD_BARRIER_PTR) first.
fn uninitialised_barrier_is_barrier_uninitialized_and_null_is_bad_barrier_ptr<H: Harness>(
    h: &H,
) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let mut b = Barrier::default();
    check!(!b.is_initialized());
    check_eq!(b.segment(), None);
    check_eq!(
        capi::rsm_memseg_import_open_barrier(n, Some(&mut b)),
        BARRIER_UNINITIALIZED
    );
    check_eq!(
        capi::rsm_memseg_import_order_barrier(n, Some(&mut b)),
        BARRIER_UNINITIALIZED
    );
    check_eq!(
        capi::rsm_memseg_import_close_barrier(n, Some(&mut b)),
        BARRIER_UNINITIALIZED
    );
    check_eq!(
        capi::rsm_memseg_import_destroy_barrier(n, Some(&mut b)),
        BARRIER_UNINITIALIZED
    );
    check_eq!(
        capi::rsm_memseg_import_open_barrier(n, None),
        BAD_BARRIER_PTR
    );
    check_eq!(
        capi::rsm_memseg_import_order_barrier(n, None),
        BAD_BARRIER_PTR
    );
    check_eq!(
        capi::rsm_memseg_import_close_barrier(n, None),
        BAD_BARRIER_PTR
    );
    check_eq!(
        capi::rsm_memseg_import_destroy_barrier(n, None),
        BAD_BARRIER_PTR
    );
    check_eq!(
        capi::rsm_memseg_import_init_barrier(n, fx.imp, 1, None),
        BAD_BARRIER_PTR
    );
    Ok(())
}

/// §4.8 (our choice): destroy makes the storage uninitialised: every later open/order/close/
/// destroy → 35; it can be initialised again.
fn destroyed_barrier_later_use_is_barrier_uninitialized<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    n.open_barrier(&mut b)?;
    check_eq!(
        capi::rsm_memseg_import_destroy_barrier(n, Some(&mut b)),
        OK,
        "destroy of an open barrier"
    );
    check!(!b.is_initialized());
    check_eq!(n.open_barrier(&mut b), Err(RsmError::BarrierUninitialized));
    check_eq!(n.order_barrier(&mut b), Err(RsmError::BarrierUninitialized));
    check_eq!(n.close_barrier(&mut b), Err(RsmError::BarrierUninitialized));
    check_eq!(
        n.destroy_barrier(&mut b),
        Err(RsmError::BarrierUninitialized)
    );
    n.init_barrier(fx.imp, BarrierType::NODE, &mut b)?;
    n.open_barrier(&mut b)?;
    n.close_barrier(&mut b)?;
    Ok(())
}

/// §4.8 "last one wins": with two barriers initialised on one import, destroying the older
/// one leaves implicit put/get working; destroying the newer (current) one → 35 again; a new
/// init restores them.
fn init_on_two_barriers_last_wins<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let (mut b1, mut b2) = (Barrier::default(), Barrier::default());
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b1)?;
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b2)?;
    n.put(fx.imp, 0, b"1")?;
    n.destroy_barrier(&mut b1)?;
    check_eq!(rc(n.put(fx.imp, 0, b"2")), OK, "b2 is still the barrier");
    n.destroy_barrier(&mut b2)?;
    check_eq!(rc(n.put(fx.imp, 0, b"3")), BARRIER_UNINITIALIZED);
    let mut b3 = Barrier::default();
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b3)?;
    n.put(fx.imp, 1, b"4")?;
    check_eq!(&fx.seg_read(0, 2)?[..], b"24");

    // Destroying the older barrier *after* a newer one replaced it changes nothing either.
    let mut b4 = Barrier::default();
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b4)?;
    n.destroy_barrier(&mut b3)?;
    n.put(fx.imp, 0, b"5")?;
    Ok(())
}

/// §9.1, §4.8: destroying the import's current barrier → put/get in implicit mode → 35
/// again (explicit mode unaffected).
fn destroy_of_current_barrier_makes_implicit_put_uninitialized_again<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    fx.n.put(fx.imp, 0, b"ok")?;
    fx.n.destroy_barrier(&mut b)?;
    check_eq!(rust_puts(&fx.n, fx.imp, 0), [BARRIER_UNINITIALIZED; 5]);
    check_eq!(rust_gets(&fx.n, fx.imp, 0), [BARRIER_UNINITIALIZED; 5]);
    fx.n.set_mode(fx.imp, EXPLICIT)?;
    check_eq!(rust_puts(&fx.n, fx.imp, 0), [OK; 5]);
    Ok(())
}

/// §9.24: the barrier type is ignored, whatever its value (no error code exists for it).
fn barrier_type_is_ignored<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    for ty in [0, 0x01, 0x02, 0x11, 0x12, 0xDEAD, u32::MAX] {
        let mut b = Barrier::default();
        check_eq!(
            capi::rsm_memseg_import_init_barrier(&fx.n, fx.imp, ty, Some(&mut b)),
            OK,
            "type {ty:#x}"
        );
        fx.n.open_barrier(&mut b)?;
        fx.n.close_barrier(&mut b)?;
        fx.n.put(fx.imp, 0, b"t")?;
    }
    Ok(())
}

/// §6.4: a barrier initialised and opened on a connection that is already aborted: init and
/// open succeed (a same-node open never fails), the close reports 40.
fn barrier_on_an_aborted_connection_fails_at_close<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    fx.n.export_unpublish(fx.seg)?;
    let mut b = Barrier::default();
    fx.n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
    fx.n.open_barrier(&mut b)?;
    check_eq!(fx.n.close_barrier(&mut b), Err(RsmError::ConnAborted));
    check_eq!(rc(fx.n.put(fx.imp, 0, b"x")), CONN_ABORTED);
    Ok(())
}

// =============================================================================================
// Check orders (§4.5 "Validation order", §4.8 "Impl", §9.10)
// =============================================================================================

/// §4.5 validation order on the Rust API, pairwise: 1 NULL handle < 4 offset alignment <
/// 5 handle state < 7 permission < 8 range < 9 barrier < 10 connection aborted.
fn put_get_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::READ)?;
    let n = &fx.n;
    let stale = fx.stale_import()?;
    let wrong_kind = ImportHandle::from_raw(fx.seg.into_raw());
    let foreign = {
        let other = node(h);
        let c = other.get_controller(None)?;
        let m = h.alloc(other.platform(), PAGE)?;
        let s = other.export_create(c, m, CreateFlags::empty())?;
        let id = other.export_publish(s, 0, &[])?;
        other.import_connect(c, other.node_id(), id, Permission::RDWR)?
    };
    // 1 < 4: NULL handle and a misaligned offset.
    check_eq!(
        rc(n.get64(ImportHandle::NULL, 3, &mut [0; 1])),
        BAD_SEG_HNDL
    );
    // 4 < 5: a misaligned offset on a stale handle.
    check_eq!(rc(n.get64(stale, 3, &mut [0; 1])), BAD_MEM_ALIGNMENT);
    check_eq!(rc(n.put16(stale, -1, &[0; 1])), BAD_MEM_ALIGNMENT);
    // 5 < 7 < 8 < …: stale, wrong-kind and foreign handles with everything else wrong too.
    for handle in [stale, wrong_kind, foreign] {
        check_eq!(rc(n.put(handle, -1, &[0; 8])), BAD_SEG_HNDL, "{handle:?}");
        check_eq!(
            rc(n.get(handle, i64::MAX, &mut [0; 8])),
            BAD_SEG_HNDL,
            "{handle:?}"
        );
    }
    // 7 < 8: a read-only import putting out of range (and without a barrier).
    check_eq!(rc(n.put(fx.imp, -1, &[0; 8])), PERM_DENIED);
    check_eq!(rc(n.put64(fx.imp, PAGE as i64, &[0; 1])), PERM_DENIED);
    // 8 < 9: out of range without a barrier.
    check_eq!(rc(n.get(fx.imp, PAGE as i64, &mut [0; 1])), BAD_OFFSET);
    check_eq!(rc(n.get(fx.imp, -8, &mut [0; 1])), BAD_OFFSET);
    // 9 < 10: no barrier on an aborted connection.
    fx.n.export_unpublish(fx.seg)?;
    check_eq!(rc(n.get(fx.imp, 0, &mut [0; 8])), BARRIER_UNINITIALIZED);
    // 8 < 10 and 7 < 10 on the aborted connection.
    check_eq!(rc(n.get(fx.imp, PAGE as i64, &mut [0; 8])), BAD_OFFSET);
    check_eq!(rc(n.put(fx.imp, 0, &[0; 8])), PERM_DENIED);
    // 10 alone, also for a zero-length access (zero length is validated).
    let mut b = Barrier::default();
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
    check_eq!(rc(n.get(fx.imp, 0, &mut [0; 8])), CONN_ABORTED);
    check_eq!(rc(n.get(fx.imp, 0, &mut [])), CONN_ABORTED);
    n.set_mode(fx.imp, EXPLICIT)?;
    check_eq!(rc(n.get64(fx.imp, 0, &mut [0; 1])), CONN_ABORTED);
    Ok(())
}

/// §4.5 steps 1–4 on the C layer, then our buffer-length check, pairwise: NULL handle <
/// NULL datap < datap alignment = offset alignment < datap too short < the Rust order; a
/// `rep_cnt × N` overflow is 20 (RSMERR_BAD_LENGTH) at the range step.
fn c_put_get_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::READ)?;
    let n = &fx.n;
    let stale = fx.stale_import()?;
    let mut buf = Buf::new(64)?;
    // 1 < 2: NULL handle and NULL datap.
    check_eq!(
        capi::rsm_memseg_import_get64(n, ImportHandle::NULL, 3, None, 1),
        BAD_SEG_HNDL
    );
    check_eq!(
        capi::rsm_memseg_import_put(n, ImportHandle::NULL, 0, None, 1),
        BAD_SEG_HNDL
    );
    // 2 < 4, 2 < 5: NULL datap with a misaligned offset / a stale handle; also rep_cnt 0.
    check_eq!(
        capi::rsm_memseg_import_get64(n, fx.imp, 3, None, 1),
        BAD_ADDR
    );
    check_eq!(
        capi::rsm_memseg_import_put32(n, stale, 0, None, 1),
        BAD_ADDR
    );
    check_eq!(capi::rsm_memseg_import_get(n, fx.imp, 0, None, 0), BAD_ADDR);
    check_eq!(
        capi::rsm_memseg_import_put8(n, fx.imp, 0, None, 0),
        BAD_ADDR
    );
    // 3 < 5: a misaligned datap on a stale handle, for each width with an alignment.
    check_eq!(
        capi::rsm_memseg_import_get16(n, stale, 0, Some(buf.misaligned()), 1),
        BAD_MEM_ALIGNMENT
    );
    check_eq!(
        capi::rsm_memseg_import_get32(n, stale, 0, Some(buf.misaligned()), 1),
        BAD_MEM_ALIGNMENT
    );
    check_eq!(
        capi::rsm_memseg_import_get64(n, stale, 0, Some(buf.misaligned()), 1),
        BAD_MEM_ALIGNMENT
    );
    check_eq!(
        capi::rsm_memseg_import_put64(n, stale, 0, Some(buf.misaligned_ref()), 1),
        BAD_MEM_ALIGNMENT
    );
    // A 4-aligned but not 8-aligned datap: fine for get32, not for get64.
    let four = buf.four_aligned();
    check_eq!(
        capi::rsm_memseg_import_get64(n, fx.imp, 0, Some(four), 1),
        BAD_MEM_ALIGNMENT
    );
    // Bytes have no pointer alignment requirement.
    check_eq!(
        capi::rsm_memseg_import_put8(n, stale, 0, Some(buf.misaligned_ref()), 1),
        BAD_SEG_HNDL
    );
    // 4 < the length check < 5: misaligned offset with a short buffer; short buffer on a
    // stale handle, on a read-only import putting, without a barrier.
    check_eq!(
        capi::rsm_memseg_import_get64(n, fx.imp, 4, Some(buf.bytes_mut()), 100),
        BAD_MEM_ALIGNMENT
    );
    check_eq!(
        capi::rsm_memseg_import_get64(n, stale, 0, Some(buf.bytes_mut()), 9),
        BAD_ADDR
    );
    check_eq!(
        capi::rsm_memseg_import_put32(n, fx.imp, 0, Some(buf.bytes()), 17),
        BAD_ADDR
    );
    check_eq!(
        capi::rsm_memseg_import_get(n, fx.imp, 0, Some(buf.bytes_mut()), 65),
        BAD_ADDR
    );
    check_eq!(
        capi::rsm_memseg_import_get8(n, fx.imp, 0, Some(buf.bytes_mut()), u64::MAX),
        BAD_ADDR,
        "u64::MAX bytes is representable: the buffer is just short"
    );
    // The exact length is fine (the check is about the buffer, not about the segment).
    check_eq!(
        capi::rsm_memseg_import_get64(n, stale, 0, Some(buf.bytes_mut()), 8),
        BAD_SEG_HNDL
    );
    // rep_cnt × N overflows usize: 5 < 7 < 20 < 9 < 10, and 20 before 18.
    let huge = 1u64 << 63; // × 2, 4 or 8 bytes overflows
    check_eq!(
        capi::rsm_memseg_import_get64(n, stale, 0, Some(buf.bytes_mut()), huge),
        BAD_SEG_HNDL
    );
    check_eq!(
        capi::rsm_memseg_import_put16(n, fx.imp, 0, Some(buf.bytes()), huge),
        PERM_DENIED
    );
    check_eq!(
        capi::rsm_memseg_import_get64(n, fx.imp, -8, Some(buf.bytes_mut()), huge),
        BAD_LENGTH
    );
    check_eq!(
        capi::rsm_memseg_import_get32(n, fx.imp, 0, Some(buf.bytes_mut()), u64::MAX),
        BAD_LENGTH,
        "no barrier either: 20 comes first"
    );
    fx.n.export_unpublish(fx.seg)?;
    fx.n.set_mode(fx.imp, EXPLICIT)?;
    check_eq!(
        capi::rsm_memseg_import_get16(n, fx.imp, 0, Some(buf.bytes_mut()), huge),
        BAD_LENGTH,
        "aborted connection: 20 comes first"
    );
    check_eq!(
        capi::rsm_memseg_import_get16(n, fx.imp, 0, Some(buf.bytes_mut()), 1),
        CONN_ABORTED
    );
    Ok(())
}

/// §4.8 Impl: init_barrier checks the handle (NULL → 5) before the barrier pointer (→ 13);
/// a stale or wrong-kind handle → 5 and leaves the storage as it was.
fn init_barrier_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let stale = fx.stale_import()?;
    check_eq!(
        capi::rsm_memseg_import_init_barrier(n, ImportHandle::NULL, 1, None),
        BAD_SEG_HNDL
    );
    check_eq!(
        capi::rsm_memseg_import_init_barrier(n, stale, 1, None),
        BAD_BARRIER_PTR,
        "only the NULL handle is checked before the pointer"
    );
    let mut b = Barrier::default();
    check_eq!(
        capi::rsm_memseg_import_init_barrier(n, stale, 1, Some(&mut b)),
        BAD_SEG_HNDL
    );
    let wrong_kind = ImportHandle::from_raw(fx.seg.into_raw());
    check_eq!(
        n.init_barrier(wrong_kind, BarrierType::SEGMENT, &mut b),
        Err(RsmError::BadSegHndl)
    );
    check!(
        !b.is_initialized(),
        "a failed init leaves the storage alone"
    );
    // …and a failed init of initialised storage keeps it initialised for its import.
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
    check_eq!(
        n.init_barrier(stale, BarrierType::SEGMENT, &mut b),
        Err(RsmError::BadSegHndl)
    );
    check_eq!(b.segment(), Some(fx.imp));
    n.put(fx.imp, 0, b"ok")?;
    Ok(())
}

/// §4.8 Impl and our order for open/order/close/destroy: NULL (13) < uninitialised (35) <
/// import gone (5) < not opened (37) < connection aborted (40); destroy succeeds when the
/// import is gone.
fn open_order_close_destroy_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    // Import gone (5) before not opened (37).
    let gone = fx.connect(Permission::RDWR)?;
    let mut g = Barrier::default();
    n.init_barrier(gone, BarrierType::SEGMENT, &mut g)?;
    let mut g_open = g.clone();
    n.open_barrier(&mut g_open)?;
    n.import_disconnect(gone)?;
    check_eq!(n.open_barrier(&mut g), Err(RsmError::BadSegHndl));
    check_eq!(n.order_barrier(&mut g), Err(RsmError::BadSegHndl));
    check_eq!(n.close_barrier(&mut g), Err(RsmError::BadSegHndl));
    check_eq!(n.close_barrier(&mut g_open), Err(RsmError::BadSegHndl));
    check_eq!(capi::rsm_memseg_import_destroy_barrier(n, Some(&mut g)), OK);
    check_eq!(n.destroy_barrier(&mut g_open), Ok(()));
    // Not opened (37) before aborted (40).
    let mut b = Barrier::default();
    n.init_barrier(fx.imp, BarrierType::SEGMENT, &mut b)?;
    n.export_unpublish(fx.seg)?;
    check_eq!(n.order_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    check_eq!(n.close_barrier(&mut b), Err(RsmError::BarrierNotOpened));
    n.open_barrier(&mut b)?;
    check_eq!(n.order_barrier(&mut b), Err(RsmError::ConnAborted));
    check_eq!(n.close_barrier(&mut b), Err(RsmError::ConnAborted));
    // Uninitialised (35) before everything else; destroy of aborted storage succeeds.
    check_eq!(n.destroy_barrier(&mut b), Ok(()));
    check_eq!(n.close_barrier(&mut b), Err(RsmError::BarrierUninitialized));
    Ok(())
}

/// §4.8 Impl: set_mode checks the handle (5) before the mode (25); get_mode checks the NULL
/// handle (5), then the NULL out-pointer (16, our choice), then the handle's state (5).
fn set_mode_and_get_mode_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let stale = fx.stale_import()?;
    check_eq!(
        capi::rsm_memseg_import_set_mode(n, ImportHandle::NULL, 7),
        BAD_SEG_HNDL
    );
    check_eq!(capi::rsm_memseg_import_set_mode(n, stale, 7), BAD_SEG_HNDL);
    check_eq!(capi::rsm_memseg_import_set_mode(n, stale, 0), BAD_SEG_HNDL);
    let mut m = BarrierMode::Explicit;
    check_eq!(
        capi::rsm_memseg_import_get_mode(n, ImportHandle::NULL, None),
        BAD_SEG_HNDL
    );
    check_eq!(
        capi::rsm_memseg_import_get_mode(n, ImportHandle::NULL, Some(&mut m)),
        BAD_SEG_HNDL
    );
    check_eq!(capi::rsm_memseg_import_get_mode(n, stale, None), BAD_ADDR);
    check_eq!(capi::rsm_memseg_import_get_mode(n, fx.imp, None), BAD_ADDR);
    check_eq!(
        capi::rsm_memseg_import_get_mode(n, stale, Some(&mut m)),
        BAD_SEG_HNDL
    );
    check_eq!(m, BarrierMode::Explicit, "nothing stored on failure");
    check_eq!(n.get_mode(stale), Err(RsmError::BadSegHndl));
    check_eq!(
        capi::rsm_memseg_import_get_mode(n, fx.imp, Some(&mut m)),
        OK
    );
    check_eq!(m, BarrierMode::Implicit);
    Ok(())
}

// =============================================================================================
// Data (§4.5, §9.18)
// =============================================================================================

/// The native-endian bytes of `words` (`N` bytes each), in order.
fn ne_bytes<const N: usize, T: Copy>(words: &[T], to: fn(T) -> [u8; N]) -> Result<Bytes, Fail> {
    let mut out = Bytes::new();
    for &w in words {
        out.extend_from_slice(&to(w)).must()?;
    }
    Ok(out)
}

/// §4.5, §9.18: data round trips for every width through the Rust API, at a non-zero offset,
/// larger than the internal conversion chunk; items are stored native-endian (no swapping);
/// bytes outside the range are untouched; put64 read back with get8 gives the native bytes.
fn round_trips_every_width<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, 2 * PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let i = fx.imp;
    let orig = fx.seg_bytes()?;

    // Bytes: put / put8 and get / get8.
    let data = pat(1000, 3);
    n.put(i, 5, &data)?;
    let mut back = [0u8; 1000];
    n.get8(i, 5, &mut back)?;
    check_eq!(&back[..], &data[..]);
    n.put8(i, 1500, &data)?;
    n.get(i, 1500, &mut back)?;
    check_eq!(&back[..], &data[..]);

    // 16 bits: 700 items (1400 bytes, several chunks) at offset 2502.
    let w16: [u16; 700] = core::array::from_fn(|k| (k as u16).wrapping_mul(0x9E37) ^ 0x1234);
    n.put16(i, 2502, &w16)?;
    let mut r16 = [0u16; 700];
    n.get16(i, 2502, &mut r16)?;
    check_eq!(r16, w16);
    let ne16 = ne_bytes(&w16, u16::to_ne_bytes)?;
    check_eq!(fx.seg_read(2502, 1400)?, ne16);

    // 32 bits: 300 items at offset 4100.
    let w32: [u32; 300] = core::array::from_fn(|k| (k as u32).wrapping_mul(0x9E37_79B9));
    n.put32(i, 4100, &w32)?;
    let mut r32 = [0u32; 300];
    n.get32(i, 4100, &mut r32)?;
    check_eq!(r32, w32);
    let ne32 = ne_bytes(&w32, u32::to_ne_bytes)?;
    check_eq!(fx.seg_read(4100, 1200)?, ne32);

    // 64 bits: 300 items at offset 5304 (up to the end is 8192).
    let w64: [u64; 300] = core::array::from_fn(|k| (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    n.put64(i, 5304, &w64)?;
    let mut r64 = [0u64; 300];
    n.get64(i, 5304, &mut r64)?;
    check_eq!(r64, w64);
    let ne64 = ne_bytes(&w64, u64::to_ne_bytes)?;
    let seg = fx.seg_bytes()?;
    check_eq!(part(&seg, 5304..5304 + 2400)?, &ne64[..]);
    // Bytes outside every range written are as the exporter left them.
    check_eq!(part(&seg, ..5)?, part(&orig, ..5)?);
    check_eq!(part(&seg, 1005..1500)?, part(&orig, 1005..1500)?);
    check_eq!(part(&seg, 2500..2502)?, part(&orig, 2500..2502)?);
    check_eq!(part(&seg, 3902..4100)?, part(&orig, 3902..4100)?);
    check_eq!(part(&seg, 5300..5304)?, part(&orig, 5300..5304)?);
    check_eq!(part(&seg, 7704..)?, part(&orig, 7704..)?);

    // Cross-width: bytes written by one width read by another, native order.
    n.put64(i, 8184, &[0x0102_0304_0506_0708])?;
    let mut b8 = [0u8; 8];
    n.get8(i, 8184, &mut b8)?;
    check_eq!(b8, 0x0102_0304_0506_0708u64.to_ne_bytes());
    let mut h32 = [0u32; 2];
    n.get32(i, 8184, &mut h32)?;
    let [lo, _] = h32;
    check_eq!(&lo.to_ne_bytes()[..], &b8[..4]);
    Ok(())
}

/// §4.5 on the C layer: every width round-trips through byte buffers; only the first
/// `rep_cnt × N/8` bytes of a longer buffer are used.
fn c_round_trips_every_width<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    let n = &fx.n;
    let i = fx.imp;
    let src = Buf::from(&pat(256, 9))?;
    let forms: [Form<H::P>; 4] = [
        (
            1,
            capi::rsm_memseg_import_put8,
            capi::rsm_memseg_import_get8,
        ),
        (
            2,
            capi::rsm_memseg_import_put16,
            capi::rsm_memseg_import_get16,
        ),
        (
            4,
            capi::rsm_memseg_import_put32,
            capi::rsm_memseg_import_get32,
        ),
        (
            8,
            capi::rsm_memseg_import_put64,
            capi::rsm_memseg_import_get64,
        ),
    ];
    for (k, (size, put, get)) in forms.into_iter().enumerate() {
        let off = 1024 * k as i64 + 8;
        let rep = (200 / size) as u64;
        let len = rep as usize * size;
        let before = fx.seg_bytes()?;
        check_eq!(
            put(n, i, off, Some(src.bytes()), rep),
            OK,
            "put{}",
            size * 8
        );
        let seg = fx.seg_bytes()?;
        let o = off as usize;
        check_eq!(
            part(&seg, o..o + len)?,
            part(src.bytes(), ..len)?,
            "put{}",
            size * 8
        );
        check_eq!(
            part(&seg, o + len..)?,
            part(&before, o + len..)?,
            "only rep_cnt items written"
        );
        let mut dst = Buf::from(&[0xEE; 256])?;
        check_eq!(get(n, i, off, Some(dst.bytes_mut()), rep), OK);
        check_eq!(part(dst.bytes(), ..len)?, part(src.bytes(), ..len)?);
        check!(
            part(dst.bytes(), len..)?.iter().all(|&b| b == 0xEE),
            "rest untouched"
        );
    }
    // The untyped forms, with length shorter than the buffer.
    check_eq!(
        capi::rsm_memseg_import_put(n, i, 3000, Some(src.bytes()), 77),
        OK
    );
    let mut dst = Buf::new(100)?;
    check_eq!(
        capi::rsm_memseg_import_get(n, i, 3000, Some(dst.bytes_mut()), 77),
        OK
    );
    check_eq!(part(dst.bytes(), ..77)?, part(src.bytes(), ..77)?);
    check_eq!(part(dst.bytes(), 77..)?, &[0u8; 23][..]);
    Ok(())
}

/// §4.5 (our choice): zero length / rep_cnt 0 is a validated no-op — no copy happens, but
/// every check still applies (range, permission, barrier).
fn zero_length_is_a_validated_no_op<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::READ)?;
    let n = &fx.n;
    let i = fx.imp;
    let copies = fx.copies()?;
    n.get(i, 0, &mut [0; 8])?;
    let copies_after_gets = fx.copies()?;
    check!(copies_after_gets > copies, "the counter counts copies");
    check_eq!(n.get(i, 0, &mut []), Ok(()));
    check_eq!(n.get64(i, 8, &mut []), Ok(()));
    check_eq!(n.get16(i, PAGE as i64, &mut []), Ok(()), "at the very end");
    let mut buf = Buf::new(8)?;
    check_eq!(
        capi::rsm_memseg_import_get64(n, i, 0, Some(buf.bytes_mut()), 0),
        OK
    );
    check_eq!(
        capi::rsm_memseg_import_get(n, i, 0, Some(buf.bytes_mut()), 0),
        OK
    );
    check_eq!(fx.copies()?, copies_after_gets, "no copy for zero length");
    // Still validated.
    check_eq!(n.get(i, PAGE as i64 + 1, &mut []), Err(RsmError::BadOffset));
    check_eq!(n.get(i, -1, &mut []), Err(RsmError::BadOffset));
    check_eq!(n.get32(i, 2, &mut []), Err(RsmError::BadMemAlignment));
    check_eq!(n.put(i, 0, &[]), Err(RsmError::PermDenied));
    check_eq!(
        capi::rsm_memseg_import_put64(n, i, 0, Some(buf.bytes()), 0),
        PERM_DENIED
    );
    let other = fx.connect(Permission::RDWR)?;
    check_eq!(n.put64(other, 0, &[]), Err(RsmError::BarrierUninitialized));
    check_eq!(
        n.get(ImportHandle::NULL, 0, &mut []),
        Err(RsmError::BadSegHndl)
    );
    Ok(())
}

/// §4.3 rebind (§9.17): put/get follow a rebind of the exported segment transparently — the
/// next put lands in the new pages, the old pages are no longer written.
fn put_get_follow_a_rebind<H: Harness>(h: &H) -> Outcome {
    let (fx, _b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    fx.n.put(fx.imp, 0, b"old")?;
    let new = h.alloc(fx.n.platform(), PAGE)?;
    fx.n.export_rebind(fx.seg, new.clone())?;
    fx.n.put(fx.imp, 0, b"new")?;
    check_eq!(&read_bytes(h, fx.n.platform(), &new, 0, 3)?[..], b"new");
    check_eq!(&fx.seg_read(0, 3)?[..], b"old");
    let mut back = [0u8; 3];
    fx.n.get(fx.imp, 0, &mut back)?;
    check_eq!(&back, b"new");
    Ok(())
}

/// §4.4, §9.7: busy references taken by put/get are all released — disconnect, destroy and
/// controller release succeed afterwards and nothing stays pinned or allocated.
fn put_get_leave_no_references_behind<H: Harness>(h: &H) -> Outcome {
    let (fx, mut b) = Fx::ready(h, PAGE, Permission::RDWR)?;
    for k in 0..10 {
        fx.n.put64(fx.imp, 8 * k, &[k as u64])?;
        let mut w = [0u64];
        fx.n.get64(fx.imp, 8 * k, &mut w)?;
        let [got] = w;
        check_eq!(got, k as u64);
    }
    let _ = rust_puts(&fx.n, fx.imp, PAGE as i64); // failing calls take no references either
    fx.n.destroy_barrier(&mut b)?;
    fx.n.import_disconnect(fx.imp)?;
    check_eq!(rc(fx.n.put(fx.imp, 0, b"x")), BAD_SEG_HNDL, "disconnected");
    fx.n.export_destroy(fx.seg)?;
    fx.n.release_controller(fx.ctrl)?;
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    check_eq!(h.pinned_pages(fx.n.platform()).must()?, 0);
    Ok(())
}

/// §6.4, §7: puts racing an unpublish return success or 40 — never anything else — the
/// unpublish returns (it waits only for transfers in flight, which wake it), and every put
/// that starts after it returned is 40. (Was a host-platform test; any platform with two
/// threads runs it.) Bounded: a million puts at most, and the unpublishing side stops
/// waiting once the putting side has ended.
fn puts_racing_unpublish_are_ok_or_conn_aborted<H: Harness>(h: &H) -> Outcome {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    const WORDS: usize = PAGE / 8;
    for round in 0..4usize {
        let n = node(h);
        let ctrl = n.get_controller(None)?;
        let mem = h.alloc(n.platform(), PAGE)?;
        let seg = n.export_create(ctrl, mem, CreateFlags::empty())?;
        let id = n.export_publish(seg, 0, &[])?;
        let imp = n.import_connect(ctrl, n.node_id(), id, Permission::RDWR)?;
        n.set_mode(imp, EXPLICIT)?;
        let unpublished = AtomicBool::new(false);
        let putter_done = AtomicBool::new(false);
        let puts = AtomicUsize::new(0);
        let words = [round as u64; WORDS];
        let putting = || -> Outcome {
            for _ in 0..1_000_000 {
                let after = unpublished.load(SeqCst);
                let r = n.put64(imp, 0, &words);
                puts.fetch_add(1, SeqCst);
                if after {
                    check_eq!(r, Err(RsmError::ConnAborted), "round {round}");
                    return Ok(());
                }
                check!(
                    r == Ok(()) || r == Err(RsmError::ConnAborted),
                    "round {round}: {r:?}"
                );
            }
            fail!("round {round}: the unpublish never finished");
        };
        h.concurrently(
            &|| {
                let r = putting();
                putter_done.store(true, SeqCst);
                r
            },
            &|| {
                while puts.load(SeqCst) < 1 + round * 10 && !putter_done.load(SeqCst) {
                    core::hint::spin_loop();
                }
                n.export_unpublish(seg)?;
                unpublished.store(true, SeqCst);
                Ok(())
            },
        )?;
        n.import_disconnect(imp)?;
        n.export_destroy(seg)?;
        n.release_controller(ctrl)?;
        check_eq!(n.slots_in_use(), (0, 0, 0));
    }
    Ok(())
}

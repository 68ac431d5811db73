//! Race-free access to memory that RSM transfers may write at any time.
//!
//! Memory handed to the RSM layer is shared in the C sense: a remote put arriving on the
//! driver thread, a same-node putv on another thread and the application's own reads may touch
//! the same bytes at once. In Rust's memory model two such accesses are a data race (undefined
//! behaviour) unless both are atomic, so every access to region memory — the platform's
//! copies, [`crate::PinnedBuf`]'s and [`crate::MemRegion`]'s accessors — goes through the two
//! functions here, which use relaxed atomic loads and stores only.
//!
//! # The word grid
//! Racing atomic accesses of *different sizes* to the same bytes are not allowed either, so
//! each byte of a memory span is always accessed with one size: bytes of an aligned 8-byte
//! word that lies wholly inside the span are always accessed as that whole `AtomicU64` (a
//! partial write is a compare-and-swap loop that changes only its bytes), and bytes of a word
//! that straddles an end of the span as single `AtomicU8`s. Every region carries the span of
//! the memory it came from (the whole allocation of a [`crate::PinnedBuf`], the slice of
//! [`crate::MemRegion::from_static`], the range of [`crate::MemRegion::from_raw_parts`]) and
//! its sub-regions inherit it, so all accesses to one memory agree on the grid.
//!
//! Written here rather than taken from a crate: `atomic-memcpy` (the kept crate for this)
//! copies one value of a fixed-size type, not a run of bytes of any length with a grid shared
//! by all accesses.
//!
//! The aligned 8-byte stores of whole words also give `Memory::write` its word atomicity.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// The addresses `[lo, hi)` of the memory an access belongs to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// First address of the memory.
    pub(crate) lo: usize,
    /// One past its last address.
    pub(crate) hi: usize,
}

const W: usize = 8;

impl Span {
    /// `true` if the aligned word at address `w` lies wholly inside the span.
    fn holds_word(&self, w: usize) -> bool {
        w >= self.lo && w.checked_add(W).is_some_and(|e| e <= self.hi)
    }
}

/// The atomic word at `p`.
///
/// # Safety
/// `p` is 8-aligned, valid for reads and writes of 8 bytes for `'a`, and those bytes are only
/// accessed atomically as this same word meanwhile.
#[inline(always)]
unsafe fn word<'a>(p: *mut u8) -> &'a AtomicU64 {
    // SAFETY: forwarded to the caller.
    unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }
}

/// Copy `out.len()` bytes from `src` into `out` with atomic loads on the grid of `span`.
///
/// # Safety
/// `src .. src + out.len()` lies inside `span`, and the whole of `span` is valid for reads
/// (and writes) for the duration of the call and is accessed concurrently only through this
/// module (atomically, on the same grid); `src` carries the provenance of that memory.
pub(crate) unsafe fn load(span: Span, src: *const u8, out: &mut [u8]) {
    let a = src as usize;
    let n = out.len();
    let first = a.next_multiple_of(W) - a; // bytes before the first aligned word
    if first + W > n {
        // No whole word inside the range.
        // SAFETY: forwarded.
        unsafe { load_partial(span, src, out) };
        return;
    }
    let body = (n - first) & !(W - 1);
    let (head, rest) = out.split_at_mut(first);
    let (mid, tail) = rest.split_at_mut(body);
    // SAFETY: the head lies inside the range (forwarded).
    unsafe { load_partial(span, src, head) };
    let p = src.wrapping_add(first).cast_mut();
    let words = body / W;
    let into = mid.as_mut_ptr();
    // SAFETY: from `p` (8-aligned: the first aligned address of the range) on, `words` words
    // lie inside the range, hence the span: words of the grid, valid by the caller's promise
    // and accessed concurrently only atomically as whole u64s; `mid` is this call's own
    // buffer of `body` bytes (no alignment needed on that side, and no other access to it).
    unsafe {
        move_words_forward(into, p, words, || {
            for (k, chunk) in mid.chunks_exact_mut(W).enumerate() {
                chunk.copy_from_slice(&word(p.wrapping_add(k * W)).load(Relaxed).to_ne_bytes());
            }
        })
    };
    // SAFETY: the tail lies inside the range (forwarded).
    unsafe { load_partial(span, p.wrapping_add(body), tail) };
}

/// [`load`] for a range of any length, word by word with checks (the edges of a range).
///
/// # Safety
/// As for [`load`].
unsafe fn load_partial(span: Span, src: *const u8, out: &mut [u8]) {
    let a = src as usize;
    let n = out.len();
    let mut i = 0;
    while i < n {
        let addr = a + i;
        let w = addr & !(W - 1);
        let k = addr - w;
        if span.holds_word(w) {
            let take = (W - k).min(n - i);
            // SAFETY: the aligned word at `w` lies inside `span` (checked), valid for reads
            // by the caller's promise and accessed concurrently only atomically as this same
            // u64; the pointer is derived from `src` (same memory, in bounds of the span).
            let word = unsafe { word(src.wrapping_add(i).wrapping_sub(k).cast_mut()) };
            let bytes = word.load(Relaxed).to_ne_bytes();
            out[i..i + take].copy_from_slice(&bytes[k..k + take]);
            i += take;
        } else {
            // SAFETY: `addr` lies inside `[src, src + n)` ⊂ span, valid for reads; the byte's
            // word straddles an end of the span, so it is only ever accessed as an AtomicU8.
            let byte = unsafe { AtomicU8::from_ptr(src.wrapping_add(i).cast_mut()) };
            out[i] = byte.load(Relaxed);
            i += 1;
        }
    }
}

/// Copy `data` to `dst` with atomic stores on the grid of `span`; whole aligned words are
/// stored with one 8-byte store each.
///
/// # Safety
/// As for [`load`], with `dst .. dst + data.len()` inside `span` and valid for writes.
pub(crate) unsafe fn store(span: Span, dst: *mut u8, data: &[u8]) {
    let a = dst as usize;
    let n = data.len();
    let first = a.next_multiple_of(W) - a;
    if first + W > n {
        // SAFETY: forwarded.
        unsafe { store_partial(span, dst, data) };
        return;
    }
    let body = (n - first) & !(W - 1);
    let (head, rest) = data.split_at(first);
    let (mid, tail) = rest.split_at(body);
    // SAFETY: the head lies inside the range (forwarded).
    unsafe { store_partial(span, dst, head) };
    let p = dst.wrapping_add(first);
    let words = body / W;
    // SAFETY: as in `load`: `words` aligned words of the range from `p`, for writes; `mid`
    // is the caller's data, only read.
    unsafe {
        move_words_forward(p, mid.as_ptr(), words, || {
            for (k, chunk) in mid.chunks_exact(W).enumerate() {
                let mut b = [0u8; W];
                b.copy_from_slice(chunk);
                word(p.wrapping_add(k * W)).store(u64::from_ne_bytes(b), Relaxed);
            }
        })
    };
    // SAFETY: the tail lies inside the range (forwarded).
    unsafe { store_partial(span, p.wrapping_add(body), tail) };
}

/// [`store`] for a range of any length, word by word with checks (the edges of a range).
///
/// # Safety
/// As for [`store`].
unsafe fn store_partial(span: Span, dst: *mut u8, data: &[u8]) {
    let a = dst as usize;
    let n = data.len();
    let mut i = 0;
    while i < n {
        let addr = a + i;
        let w = addr & !(W - 1);
        let k = addr - w;
        if span.holds_word(w) {
            let take = (W - k).min(n - i);
            // SAFETY: as in `load_partial`: an aligned word inside the span, only accessed
            // atomically as this u64, valid for writes by the caller's promise.
            let word = unsafe { word(dst.wrapping_add(i).wrapping_sub(k)) };
            let part = &data[i..i + take];
            if take == W {
                let mut b = [0u8; W];
                b.copy_from_slice(part);
                word.store(u64::from_ne_bytes(b), Relaxed);
            } else {
                // Only some bytes of the word are ours: change them and keep the others, even
                // if another thread writes those meanwhile.
                let _ = word.fetch_update(Relaxed, Relaxed, |old| {
                    let mut b = old.to_ne_bytes();
                    b[k..k + take].copy_from_slice(part);
                    Some(u64::from_ne_bytes(b))
                });
            }
            i += take;
        } else {
            // SAFETY: as in `load_partial`'s byte case, for writes.
            let byte = unsafe { AtomicU8::from_ptr(dst.wrapping_add(i)) };
            byte.store(data[i], Relaxed);
            i += 1;
        }
    }
}

/// Bytes moved per step of [`copy`] through its bounce buffer on the stack.
const CHUNK: usize = 4096;
/// Copies up to this length use a small bounce buffer (clearing 4 KiB costs more than they do).
const SMALL: usize = 64;

/// Copy `len` bytes from `src` (in `src_span`) to `dst` (in `dst_span`) with memmove semantics.
///
/// When both have the same offset within a word, whole words go straight from one to the
/// other; otherwise through a bounce buffer. Either way the pieces go in the order that never
/// overwrites source bytes not yet loaded (forward when `dst` is below `src`, else backward),
/// and each piece is loaded whole before it is stored.
///
/// # Safety
/// As for [`load`] for `src .. src + len` and as for [`store`] for `dst .. dst + len`.
pub(crate) unsafe fn copy(
    dst_span: Span,
    dst: *mut u8,
    src_span: Span,
    src: *const u8,
    len: usize,
) {
    let (d, s) = (dst as usize, src as usize);
    // Backward only where it matters: `dst` inside the source range.
    let backward = d > s && d - s < len;
    let first = d.next_multiple_of(W) - d;
    if (d ^ s) % W != 0 || first + W > len {
        // SAFETY: forwarded.
        unsafe { copy_bounced(dst_span, dst, src_span, src, len, backward) };
        return;
    }
    let body = (len - first) & !(W - 1);
    let words = body / W;
    let piece = |off: usize, n: usize| {
        // SAFETY: `off + n <= len`: inside both ranges (forwarded).
        unsafe {
            copy_bounced(
                dst_span,
                dst.wrapping_add(off),
                src_span,
                src.wrapping_add(off),
                n,
                backward,
            )
        }
    };
    let (dw, sw) = (dst.wrapping_add(first), src.wrapping_add(first).cast_mut());
    let move_word = |k: usize| {
        // SAFETY: words `k < words` of the body are aligned (same offset in a word on both
        // sides, `first` brings both to a boundary) and inside both ranges, hence words of
        // both grids, accessed only atomically.
        unsafe {
            let v = word(sw.wrapping_add(k * W)).load(Relaxed);
            word(dw.wrapping_add(k * W)).store(v, Relaxed);
        }
    };
    if backward {
        piece(first + body, len - first - body);
        (0..words).rev().for_each(move_word);
        piece(0, first);
    } else {
        piece(0, first);
        // SAFETY: as for `move_word`, for all `words` words of the body; forward is the
        // memmove-safe direction here (`dst` is not inside the source range).
        unsafe { move_words_forward(dw, sw, words, || (0..words).for_each(move_word)) };
        piece(first + body, len - first - body);
    }
}

/// Below this many words the loop beats `rep movsq`'s start-up cost.
const REP_MIN_WORDS: usize = 32;

/// Move `words` 8-byte words from `src` to `dst`, lowest first, each as one relaxed atomic
/// load (if `src` is shared memory) and one relaxed atomic store (if `dst` is) of that word —
/// what `fallback` does word by word.
///
/// On x86_64 one `rep movsq`: the Intel SDM (vol. 1 §7.3.9.3) guarantees atomicity of each
/// native-size element of a string operation that lies in one cache line — every aligned
/// quadword of the shared side — and leaves only the order of the stores open, which relaxed
/// atomics allow; so the instruction is exactly the word-by-word atomic copy, at the speed of
/// the processor's fast-string copies (memcpy's, measured) instead of one 8-byte load and
/// store per iteration. For fewer than [`REP_MIN_WORDS`] words, and elsewhere, `fallback`.
///
/// # Safety
/// Both ranges of `words * 8` bytes are valid; on the shared side(s) they are 8-aligned
/// words of the grid, accessed concurrently only atomically as whole words; a private side
/// is not accessed by anyone else; `dst` is not inside the source range if they overlap.
#[inline(always)]
unsafe fn move_words_forward(dst: *mut u8, src: *const u8, words: usize, fallback: impl FnOnce()) {
    #[cfg(target_arch = "x86_64")]
    if words >= REP_MIN_WORDS {
        // SAFETY: the ranges are valid and aligned (caller); `rep movsq` reads `words`
        // quadwords at `rsi` and writes them at `rdi`, ascending (the direction flag is
        // clear on entry to an asm block), each quadword atomically (see above); it touches
        // no other memory, no stack, and no flags.
        unsafe {
            core::arch::asm!(
                "rep movsq",
                inout("rcx") words => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (dst, src);
    fallback();
}

/// [`copy`] through a bounce buffer, chunk by chunk, in the given direction.
///
/// # Safety
/// As for [`copy`].
unsafe fn copy_bounced(
    dst_span: Span,
    dst: *mut u8,
    src_span: Span,
    src: *const u8,
    len: usize,
    backward: bool,
) {
    if len == 0 {
        return;
    }
    if len <= SMALL {
        // The edges of a word-aligned copy, and small copies: no large buffer to clear.
        let mut small = [0u8; SMALL];
        // SAFETY: the whole range is one piece (forwarded).
        unsafe {
            load(src_span, src, &mut small[..len]);
            store(dst_span, dst, &small[..len]);
        }
        return;
    }
    let mut bounce = [0u8; CHUNK];
    let chunks = len.div_ceil(CHUNK);
    for c in 0..chunks {
        let c = if backward { chunks - 1 - c } else { c };
        let off = c * CHUNK;
        let n = CHUNK.min(len - off);
        // SAFETY: `off + n <= len`, so both ranges lie inside what the caller vouched for.
        unsafe {
            load(src_span, src.wrapping_add(off), &mut bounce[..n]);
            store(dst_span, dst.wrapping_add(off), &bounce[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backing memory for the tests, 8-aligned.
    #[repr(align(8))]
    struct Mem([u8; 64]);

    fn span_of(m: &mut Mem, lo: usize, hi: usize) -> (Span, *mut u8) {
        let base = m.0.as_mut_ptr();
        (
            Span {
                lo: base as usize + lo,
                hi: base as usize + hi,
            },
            base,
        )
    }

    #[test]
    fn every_offset_and_length_round_trips_with_any_span() {
        // Spans that start and end on and off the word grid.
        for (lo, hi) in [(0, 64), (3, 61), (8, 40), (1, 2)] {
            for off in lo..hi {
                for len in 0..=(hi - off) {
                    let mut m = Mem([0xEE; 64]);
                    let (span, base) = span_of(&mut m, lo, hi);
                    let data: Vec<u8> = (0..len as u8).map(|x| x.wrapping_mul(7) ^ 0x55).collect();
                    let mut back = vec![0u8; len];
                    // SAFETY: off..off+len lies inside the span, which lies inside `m`, alive
                    // and accessed only through this module for the duration.
                    unsafe {
                        store(span, base.add(off), &data);
                        load(span, base.add(off), &mut back);
                    }
                    assert_eq!(back, data, "span {lo}..{hi} off {off} len {len}");
                    // Bytes outside the range are unchanged.
                    for (j, &b) in m.0.iter().enumerate() {
                        if j < off || j >= off + len {
                            assert_eq!(b, 0xEE, "byte {j} changed (off {off} len {len})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn copy_is_memmove_in_both_directions() {
        // Larger than one chunk, overlapping both ways, at unaligned offsets.
        let len = 3 * CHUNK + 17;
        let total = len + 2 * CHUNK;
        let mut v: Vec<u64> = vec![0; total / 8 + 1];
        let base = v.as_mut_ptr().cast::<u8>();
        let span = Span {
            lo: base as usize,
            hi: base as usize + total,
        };
        for (s, d) in [
            (5usize, 1000usize),
            (1000, 5),
            (3, 3),
            (0, 4097),
            (1, 9),
            (9, 1),
            (2, 4098),
            (4099, 3),
            (0, 8),
            (8, 0),
        ] {
            let pattern: Vec<u8> = (0..total).map(|x| (x * 31 % 251) as u8).collect();
            let mut want = pattern.clone();
            want.copy_within(s..s + len, d);
            let mut got = vec![0u8; total];
            // SAFETY: all ranges lie inside `v` (total bytes), accessed only through this module.
            unsafe {
                store(span, base, &pattern);
                copy(span, base.add(d), span, base.add(s), len);
                load(span, base, &mut got);
            }
            assert!(got == want, "copy {s} -> {d}");
        }
    }

    #[test]
    fn whole_words_never_tear_under_concurrent_copies() {
        // A writer stores words whose 8 bytes are all equal (a new value each round) into `a`
        // with `store`; meanwhile a reader copies `a` to `b` (`copy`) and loads `b` and `a`
        // (`load`): every word it sees has 8 equal bytes, whatever the fast path moved.
        const N: usize = 64 * 1024;
        let mut a = vec![0u64; N / 8];
        let mut b = vec![0u64; N / 8];
        let (pa, pb) = (a.as_mut_ptr() as usize, b.as_mut_ptr() as usize);
        let sa = Span { lo: pa, hi: pa + N };
        let sb = Span { lo: pb, hi: pb + N };
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut data = vec![0u8; N];
                for round in (0..2000u32).map(|r| r as u8) {
                    data.fill(round);
                    // SAFETY: `a` outlives the scope; all accesses are through this module.
                    unsafe { store(sa, pa as *mut u8, &data) };
                }
                done.store(true, Relaxed);
            });
            let mut out = vec![0u8; N];
            let mut checks = 0;
            while !done.load(Relaxed) || checks < 3 {
                // SAFETY: as above, for `a` and `b`.
                unsafe {
                    copy(sb, pb as *mut u8, sa, pa as *const u8, N);
                    load(sb, pb as *const u8, &mut out);
                }
                for w in out.chunks_exact(8) {
                    assert!(w.iter().all(|&x| x == w[0]), "torn word {w:?}");
                }
                // SAFETY: as above.
                unsafe { load(sa, pa as *const u8, &mut out) };
                for w in out.chunks_exact(8) {
                    assert!(w.iter().all(|&x| x == w[0]), "torn word {w:?}");
                }
                checks += 1;
            }
        });
    }

    #[test]
    fn partial_word_writes_keep_concurrent_neighbours() {
        // Two threads write alternate bytes of the same words; neither loses the other's.
        let mut v = vec![0u64; 16];
        let base = v.as_mut_ptr().cast::<u8>();
        let span = Span {
            lo: base as usize,
            hi: base as usize + 128,
        };
        let addr = base as usize;
        std::thread::scope(|s| {
            for t in 0..2usize {
                s.spawn(move || {
                    let base = addr as *mut u8;
                    for round in 0..2000u32 {
                        for i in (t..128).step_by(2) {
                            // SAFETY: byte i lies in the span over `v`, which outlives the
                            // scope; all accesses are through this module.
                            unsafe { store(span, base.add(i), &[(round as u8) | 1]) };
                        }
                    }
                });
            }
        });
        let mut out = [0u8; 128];
        // SAFETY: as above; the writers have finished.
        unsafe { load(span, base, &mut out) };
        assert!(out.iter().all(|&b| b == ((1999u32 as u8) | 1)), "{out:?}");
    }
}

//! putv/getv data round trips on the real host backend ([`HostPlatform::new`], `mlock` pinning).
//!
//! Every test writes position-dependent bytes (a per-test seed), keeps a byte-exact model of
//! every buffer involved — including the bytes no entry touches (guard bytes) — and compares
//! the real memory with the model after each call. It also checks the call's bookkeeping:
//! `io_residual_count` 0 after success (preset to garbage before), `flags` unchanged.
//!
//! Covered: 1 and 16 entries; mixed `RSM_HANDLE_TYPE` / `RSM_VA_TYPE`; entry lengths 0, 1,
//! 4095, 4097 and 1 MiB; local handles of non-page-multiple length; unaligned local and remote
//! offsets; entries ending exactly at a handle's requested length; overlapping source and
//! destination (a local handle over the exported buffer itself: memmove semantics, modelled
//! with `copy_within`); VA entries over a plain `Vec<u8>` via `MemRegion::from_raw_parts`.

use rsm_core::{
    Config, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, LocalMemHandle,
    Permission, Rsm, RsmError, ScatGath, SgFlags, PAGE_SIZE,
};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};

const MIB: usize = 1 << 20;
/// Byte the exported segment is filled with before a test writes it.
const SEG_GUARD: u8 = 0xC3;
/// Byte local destination buffers are filled with before a getv.
const DST_GUARD: u8 = 0x5A;
/// Lengths the entries cycle through: around a page, and a large one.
const LENGTHS: [usize; 5] = [0, 1, PAGE_SIZE - 1, PAGE_SIZE + 1, MIB];

/// Position-dependent bytes: `len` bytes for `seed`, different for every seed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mix = seed.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29) | 1;
    (0..len as u64)
        .map(|i| ((i ^ mix).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

use rsm_tests::assert_bytes;

/// One node on the host platform with one exported, published segment and an import
/// connection to it (same node), plus a model of the segment's bytes.
struct Node {
    rsm: Rsm<HostPlatform>,
    ctrl: ControllerHandle,
    seg_buf: PinnedBuf,
    seg: ExportHandle,
    imp: ImportHandle,
    seg_model: Vec<u8>,
}

impl Node {
    fn new(seg_len: usize) -> Node {
        let rsm: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
        let ctrl = rsm.get_controller(Some("rsmnet0")).unwrap();
        let seg_buf = PinnedBuf::new(seg_len).unwrap();
        seg_buf.fill(SEG_GUARD);
        let seg = rsm
            .export_create(ctrl, seg_buf.region(), CreateFlags::empty())
            .unwrap();
        let id = rsm.export_publish(seg, 0, &[]).unwrap();
        let imp = rsm
            .import_connect(ctrl, rsm.node_id(), id, Permission::RDWR)
            .unwrap();
        Node {
            rsm,
            ctrl,
            seg_buf,
            seg,
            imp,
            seg_model: vec![SEG_GUARD; seg_len],
        }
    }

    #[track_caller]
    fn check_segment(&self, what: &str) {
        assert_bytes(&self.seg_buf.to_vec(), &self.seg_model, what);
    }

    /// Run a putv over `iov` with `flags`; assert success, residual 0 and flags unchanged.
    #[track_caller]
    fn putv_ok(&self, iov: &[IoVec<'_, MemRegion>], flags: SgFlags) {
        let mut sg = ScatGath::new(self.imp, iov);
        sg.flags = flags;
        sg.io_residual_count = 0xDEAD;
        assert_eq!(self.rsm.putv(&mut sg), Ok(()));
        assert_eq!(sg.io_residual_count, 0, "residual after a successful putv");
        assert_eq!(sg.flags, flags, "putv changed flags");
        assert_eq!(sg.io_request_count, iov.len() as u64);
    }

    /// Run a getv over `iov` with `flags`; assert success, residual 0 and flags unchanged.
    #[track_caller]
    fn getv_ok(&self, iov: &[IoVec<'_, MemRegion>], flags: SgFlags) {
        let mut sg = ScatGath::new(self.imp, iov);
        sg.flags = flags;
        sg.io_residual_count = 0xBEEF;
        assert_eq!(self.rsm.getv(&mut sg), Ok(()));
        assert_eq!(sg.io_residual_count, 0, "residual after a successful getv");
        assert_eq!(sg.flags, flags, "getv changed flags");
    }

    /// Tear down and prove nothing leaked (slots and pinned pages).
    fn finish(self) {
        let Node {
            rsm,
            ctrl,
            seg,
            imp,
            seg_buf,
            ..
        } = self;
        rsm.import_disconnect(imp).unwrap();
        rsm.export_destroy(seg).unwrap();
        rsm.release_controller(ctrl).unwrap();
        assert_eq!(rsm.slots_in_use(), (0, 0, 0));
        assert_eq!(rsm.platform().pinned_pages(), 0);
        drop(seg_buf);
    }
}

/// A local buffer, a local memory handle over it, and a model of its bytes.
struct Local {
    buf: PinnedBuf,
    region: MemRegion,
    handle: LocalMemHandle,
    model: Vec<u8>,
}

impl Local {
    /// `len` bytes: the pattern for `seed`, or all `DST_GUARD` when `seed` is `None`.
    fn new(node: &Node, len: usize, seed: Option<u64>) -> Local {
        let buf = PinnedBuf::new(len).unwrap();
        let model = match seed {
            Some(s) => pattern(s, len),
            None => vec![DST_GUARD; len],
        };
        buf.write(0, &model).unwrap();
        let region = buf.region();
        let handle = node
            .rsm
            .create_localmemory_handle(node.ctrl, region.clone())
            .unwrap();
        Local {
            buf,
            region,
            handle,
            model,
        }
    }

    #[track_caller]
    fn check(&self, what: &str) {
        assert_bytes(&self.buf.to_vec(), &self.model, what);
    }

    fn free(self, node: &Node) {
        node.rsm
            .free_localmemory_handle(node.ctrl, self.handle)
            .unwrap();
    }
}

/// One entry in a test's vector: which local buffer, through a handle or as a VA.
#[derive(Debug, Clone, Copy)]
struct Ent {
    local: usize,
    handle: bool,
    local_off: usize,
    remote_off: usize,
    len: usize,
}

fn iovecs<'a>(locals: &'a [Local], ents: &[Ent]) -> Vec<IoVec<'a, MemRegion>> {
    ents.iter()
        .map(|e| {
            let l = &locals[e.local];
            if e.handle {
                IoVec::handle(l.handle, e.local_off, e.remote_off, e.len)
            } else {
                IoVec::va(&l.region, e.local_off, e.remote_off, e.len)
            }
        })
        .collect()
}

/// What a putv of `ents` does to the segment model, entry by entry in vector order.
fn model_put(seg: &mut [u8], locals: &[Local], ents: &[Ent]) {
    for e in ents {
        let src = &locals[e.local].model[e.local_off..e.local_off + e.len];
        seg[e.remote_off..e.remote_off + e.len].copy_from_slice(src);
    }
}

/// What a getv of `ents` does to the local models, entry by entry in vector order.
fn model_get(seg: &[u8], locals: &mut [Local], ents: &[Ent]) {
    for e in ents {
        let src = &seg[e.remote_off..e.remote_off + e.len];
        locals[e.local].model[e.local_off..e.local_off + e.len].copy_from_slice(src);
    }
}

#[test]
fn one_entry_of_every_length_through_handle_and_va() {
    let mut node = Node::new(2 * MIB + PAGE_SIZE);
    let mut seed = 0x51_0000;
    for (n, &len) in LENGTHS.iter().enumerate() {
        for handle in [true, false] {
            seed += 1;
            // Unaligned offsets on both sides, different per case; lengths of the local
            // buffers (and so of their handles) are not page multiples.
            let local_off = 5 + 3 * n;
            let remote_off = 4099 + 1000 * n + usize::from(handle) * 7;
            let dst_off = 11 + n;
            let src_len = local_off + len + 100;
            let dst_len = dst_off + len + 33;
            assert_ne!(src_len % PAGE_SIZE, 0);
            assert_ne!(dst_len % PAGE_SIZE, 0);
            let mut locals = [
                Local::new(&node, src_len, Some(seed)),
                Local::new(&node, dst_len, None),
            ];
            let what = format!("len {len}, handle {handle}");

            let put = [Ent {
                local: 0,
                handle,
                local_off,
                remote_off,
                len,
            }];
            node.putv_ok(&iovecs(&locals, &put), SgFlags::empty());
            model_put(&mut node.seg_model, &locals, &put);
            node.check_segment(&format!("segment after putv ({what})"));
            locals[0].check(&format!("putv source unchanged ({what})"));

            let get = [Ent {
                local: 1,
                local_off: dst_off,
                ..put[0]
            }];
            node.getv_ok(&iovecs(&locals, &get), SgFlags::empty());
            model_get(&node.seg_model, &mut locals, &get);
            locals[1].check(&format!("getv destination ({what})"));
            node.check_segment(&format!("segment unchanged by getv ({what})"));
            if len > 0 {
                // The data really went through the segment (not trivially equal).
                assert_eq!(
                    locals[1].model[dst_off..dst_off + len],
                    locals[0].model[local_off..local_off + len]
                );
            }
            for l in locals {
                l.free(&node);
            }
        }
    }
    node.finish();
}

#[test]
fn sixteen_mixed_entries_round_trip() {
    let seg_len = 4 * MIB;
    let mut node = Node::new(seg_len);
    let mut locals = vec![
        // Sources: three handles' buffers of non-page-multiple length.
        Local::new(&node, 3 * PAGE_SIZE + 100, Some(0x16_0001)),
        Local::new(&node, MIB + 17, Some(0x16_0002)),
        Local::new(&node, PAGE_SIZE + 1, Some(0x16_0003)),
    ];
    // 16 entries alternating HANDLE / VA, lengths cycling through LENGTHS, unaligned offsets,
    // disjoint remote ranges separated by guard gaps.
    let mut put = Vec::new();
    let mut remote = 3;
    for k in 0..16 {
        let len = LENGTHS[k % LENGTHS.len()];
        // Pick a source big enough; local offsets are odd and vary.
        let (local, local_off) = match len {
            MIB => (1, 1 + k),
            0 | 1 => (2, 2 * k + 1),
            _ => (k % 2, 7 * k + 1),
        };
        put.push(Ent {
            local,
            handle: k % 2 == 0,
            local_off,
            remote_off: remote,
            len,
        });
        remote += len + 37 + k;
    }
    assert!(remote < seg_len);
    assert_eq!(put.iter().filter(|e| e.handle).count(), 8);

    let events_before = node.rsm.export_pending_events(node.seg).unwrap();
    let flags = SgFlags::IMPLICIT_SIGPOST;
    node.putv_ok(&iovecs(&locals, &put), flags);
    model_put(&mut node.seg_model, &locals, &put);
    node.check_segment("segment after a 16-entry putv");
    for (i, l) in locals.iter().enumerate() {
        l.check(&format!("local {i} unchanged by putv"));
    }
    assert_eq!(
        node.rsm.export_pending_events(node.seg).unwrap(),
        events_before + 1,
        "IMPLICIT_SIGPOST rings the exporter exactly once"
    );

    // Get every range back, alternating the other way round (VA first), packed into the two
    // destination buffers at unaligned offsets.
    let mut get = Vec::new();
    let mut off = [5usize, 9];
    for (k, e) in put.iter().enumerate() {
        let which = if e.len == MIB { k % 2 } else { (k / 2) % 2 };
        get.push(Ent {
            local: 3 + which,
            handle: k % 2 == 1,
            local_off: off[which],
            ..*e
        });
        off[which] += e.len + 3;
    }
    // Two guard-filled destinations, a little longer than needed, of non-page-multiple length.
    locals.push(Local::new(&node, off[0] + 123, None));
    locals.push(Local::new(&node, off[1] + 4001, None));
    node.getv_ok(&iovecs(&locals, &get), SgFlags::empty());
    model_get(&node.seg_model, &mut locals, &get);
    for (i, l) in locals.iter().enumerate() {
        l.check(&format!("local {i} after the 16-entry getv"));
    }
    node.check_segment("segment unchanged by getv");
    // What came back is what went in, entry by entry.
    for (p, g) in put.iter().zip(&get) {
        assert_eq!(
            locals[g.local].model[g.local_off..g.local_off + g.len],
            locals[p.local].model[p.local_off..p.local_off + p.len],
        );
    }
    for l in locals {
        l.free(&node);
    }
    node.finish();
}

#[test]
fn entries_end_exactly_at_the_requested_handle_length() {
    let mut node = Node::new(64 * 1024);
    // Handle lengths that are not page multiples; entries that end at the very last byte.
    let mut locals = vec![
        Local::new(&node, PAGE_SIZE + 1, Some(0xE0_0001)),
        Local::new(&node, 2 * PAGE_SIZE - 1, None),
    ];
    let put = [Ent {
        local: 0,
        handle: true,
        local_off: 1,
        remote_off: 999,
        len: PAGE_SIZE,
    }];
    node.putv_ok(&iovecs(&locals, &put), SgFlags::empty());
    model_put(&mut node.seg_model, &locals, &put);
    node.check_segment("segment after a putv up to the handle's end");
    let get = [Ent {
        local: 1,
        local_off: PAGE_SIZE - 1,
        ..put[0]
    }];
    node.getv_ok(&iovecs(&locals, &get), SgFlags::empty());
    model_get(&node.seg_model, &mut locals, &get);
    locals[1].check("getv up to the handle's end");

    // One byte further (into the pinned but not requested part of the page) is refused before
    // anything moves: RSMERR_BAD_LENGTH, residual = count, no byte changed.
    let over = [
        put[0],
        Ent {
            remote_off: 20_000,
            local_off: 2,
            ..put[0]
        },
    ];
    let iov = iovecs(&locals, &over);
    let mut sg = ScatGath::new(node.imp, &iov);
    assert_eq!(node.rsm.putv(&mut sg), Err(RsmError::BadLength));
    assert_eq!(sg.io_residual_count, 2);
    node.check_segment("segment unchanged by a refused vector");
    for l in locals {
        l.free(&node);
    }
    node.finish();
}

#[test]
fn local_handle_over_the_exported_buffer_has_memmove_semantics() {
    let seg_len = 16 * PAGE_SIZE;
    let mut node = Node::new(seg_len);
    let data = pattern(0x0E_0001, seg_len);
    node.seg_buf.write(0, &data).unwrap();
    node.seg_model.copy_from_slice(&data);
    // Two handles over the exported memory itself: the whole buffer, and from page 2 on with a
    // non-page-multiple length.
    let whole = node.seg_buf.region();
    let tail_base = 2 * PAGE_SIZE;
    let tail = node
        .seg_buf
        .subregion(tail_base, 9 * PAGE_SIZE + 77)
        .unwrap();
    let h_whole = node
        .rsm
        .create_localmemory_handle(node.ctrl, whole.clone())
        .unwrap();
    let h_tail = node
        .rsm
        .create_localmemory_handle(node.ctrl, tail.clone())
        .unwrap();

    // (handle or VA, local region's base in the segment, local_off, remote_off, len)
    // Local and remote ranges overlap in memory; each entry is run once as putv and once as
    // getv, so both copy directions occur. Distances are between absolute segment offsets.
    let overlapping = [
        (Some(h_whole), 0, 100, 200, 5000), // 100 bytes apart
        (Some(h_whole), 0, 300, 250, 6000), // 50 bytes apart, the other way
        (None, 0, 4096, 4096, 3000),        // identical ranges
        (Some(h_tail), tail_base, 1, tail_base + 6, 4097), // 5 apart, via the offset handle
        (None, tail_base, 8000, tail_base + 7999, 12345), // 1 byte apart
        (Some(h_whole), 0, 0, 1, 0),        // zero length
        (Some(h_tail), tail_base, 9 * PAGE_SIZE + 76, 0, 1), // the handle's last byte
    ];
    // putv: remote (dst) ← local (src); getv: local (dst) ← remote (src).
    for put in [true, false] {
        let iov: Vec<IoVec<'_, MemRegion>> = overlapping
            .iter()
            .map(|&(h, base, lo, ro, len)| match h {
                Some(h) => IoVec::handle(h, lo, ro, len),
                None if base == 0 => IoVec::va(&whole, lo, ro, len),
                None => IoVec::va(&tail, lo, ro, len),
            })
            .collect();
        if put {
            node.putv_ok(&iov, SgFlags::empty());
        } else {
            node.getv_ok(&iov, SgFlags::empty());
        }
        for &(_, base, lo, ro, len) in &overlapping {
            let (src, dst) = if put {
                (base + lo, ro)
            } else {
                (ro, base + lo)
            };
            node.seg_model.copy_within(src..src + len, dst);
        }
        node.check_segment(if put {
            "overlapping putv vs copy_within"
        } else {
            "overlapping getv vs copy_within"
        });
    }
    assert_ne!(node.seg_model, data, "the test moved bytes");
    node.rsm
        .free_localmemory_handle(node.ctrl, h_whole)
        .unwrap();
    node.rsm.free_localmemory_handle(node.ctrl, h_tail).unwrap();
    node.finish();
}

#[test]
fn va_entries_over_a_plain_vec() {
    let mut node = Node::new(32 * PAGE_SIZE);
    let src_data = pattern(0x7A_0001, 3 * PAGE_SIZE + 5);
    let mut src = src_data.clone();
    let mut dst = vec![DST_GUARD; 3 * PAGE_SIZE + 50];
    // (local_off, remote_off, len): unaligned, including 0, 1, 4095 and 4097 bytes.
    let put = [
        (1, 3, 4097),
        (0, 9000, 1),
        (7, 12_001, 4095),
        (4, 20_000, 0),
    ];
    let get = [
        (13, 3, 4097),
        (4200, 9000, 1),
        (5000, 12_001, 4095),
        (0, 20_000, 0),
    ];
    {
        // SAFETY: `src` and `dst` outlive both regions, which are used only inside this block
        // by the synchronous putv/getv below; no Rust reference to either vector is used while
        // the regions exist (the vectors are read only after the block).
        let (src_r, dst_r) = unsafe {
            (
                MemRegion::from_raw_parts(src.as_mut_ptr(), src.len()),
                MemRegion::from_raw_parts(dst.as_mut_ptr(), dst.len()),
            )
        };
        let iov: Vec<_> = put
            .iter()
            .map(|&(lo, ro, len)| IoVec::va(&src_r, lo, ro, len))
            .collect();
        node.putv_ok(&iov, SgFlags::empty());
        let iov: Vec<_> = get
            .iter()
            .map(|&(lo, ro, len)| IoVec::va(&dst_r, lo, ro, len))
            .collect();
        node.getv_ok(&iov, SgFlags::empty());
    }
    let mut dst_model = vec![DST_GUARD; dst.len()];
    for (&(slo, ro, len), &(dlo, _, _)) in put.iter().zip(&get) {
        node.seg_model[ro..ro + len].copy_from_slice(&src_data[slo..slo + len]);
        dst_model[dlo..dlo + len].copy_from_slice(&src_data[slo..slo + len]);
    }
    node.check_segment("segment after putv from a Vec");
    assert_bytes(&src, &src_data, "source Vec unchanged");
    assert_bytes(&dst, &dst_model, "destination Vec after getv");
    node.finish();
}

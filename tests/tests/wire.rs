//! Wire format: parse/emit round trips for every message, typed rejection of every malformed
//! input, and "parse never panics".

use proptest::prelude::*;
use rsm_core::wire::{
    self, Ack, Bell, ConnectReply, ConnectRequest, Disconnect, EthernetFrame, Fragments, Frame,
    GetData, GetRequest, Header, HeaderRepr, Hello, ImportNotice, Message, PutData, Reassembled,
    Reassembly, Republish, WireError, ETHERNET_MIN_FRAME, ETHERTYPE_RSM, FRAME_OVERHEAD,
    HEADER_LEN, MAX_FRAME, NODE_BROADCAST, WIRE_VERSION,
};

const ALL_TYPES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 16, 17, 18, 19, 20];

fn hdr(src: u8, dst: u8, inc: u64) -> HeaderRepr {
    HeaderRepr {
        flags: wire::FLAG_ACK,
        src_node: src,
        dst_node: dst,
        incarnation: inc,
        peer_incarnation: inc + 1,
        seq: 7,
        ack: 6,
    }
}

fn sample_messages(data: &[u8]) -> Vec<Message<'_>> {
    vec![
        Message::ConnectRequest(ConnectRequest {
            segment_id: 0x1234_5678,
            request_id: 9,
            import_id: 3,
            permission: 0o666,
        }),
        Message::ConnectReply(ConnectReply {
            request_id: 9,
            status: 0,
            permission: 0o640,
            segment_id: 0x1234_5678,
            segment_len: 1 << 33,
            owner_uid: 1000,
            owner_gid: 100,
        }),
        Message::Disconnect(Disconnect {
            segment_id: 1,
            import_id: 2,
            generation: 3,
            forced: true,
        }),
        Message::Importing(ImportNotice {
            segment_id: 1,
            import_id: 2,
        }),
        Message::NotImporting(ImportNotice {
            segment_id: 1,
            import_id: 2,
        }),
        Message::Bell(Bell {
            segment_id: 1,
            import_id: 2,
            flags: wire::BELL_TO_EXPORTER,
            op_id: 3,
        }),
        Message::Republish(Republish {
            segment_id: 1,
            permission: 0o600,
        }),
        Message::PutData(PutData {
            import_id: 1,
            segment_id: 2,
            op_id: 3,
            entry: 4,
            remote_offset: 4096,
            frag_offset: 0,
            total_len: data.len() as u32,
            data,
        }),
        Message::GetRequest(GetRequest {
            import_id: 1,
            segment_id: 2,
            op_id: 3,
            entry: 4,
            remote_offset: 64,
            length: 5000,
        }),
        Message::GetData(GetData {
            op_id: 3,
            entry: 4,
            status: 0,
            frag_offset: 0,
            total_len: data.len() as u32,
            data,
        }),
        Message::Ack(Ack {
            op_id: 3,
            entry: 4,
            status: 0,
            done_len: 100,
        }),
        Message::Hello(Hello {
            incarnation: 42,
            max_frame: 1514,
        }),
    ]
}

fn emit_vec(h: &HeaderRepr, m: &Message<'_>) -> Vec<u8> {
    let f = Frame {
        header: *h,
        message: *m,
    };
    let mut buf = vec![0u8; f.buffer_len()];
    let n = f.emit(&mut buf).expect("emit");
    assert_eq!(n, buf.len());
    buf
}

/// Re-emits `frame` after patching a header field and fixing up the checksum.
fn patch_header(frame: &mut [u8], f: impl FnOnce(&mut Header<&mut [u8]>)) {
    let mut h = Header::new_unchecked(&mut frame[14..]);
    f(&mut h);
    // Recompute the checksum only if the announced payload fits.
    if Header::new_checked(&*h.into_inner()).is_ok() {
        let mut h = Header::new_unchecked(&mut frame[14..]);
        h.fill_checksum();
    }
}

#[test]
fn every_sample_round_trips() {
    let data: Vec<u8> = (0..200u8).collect();
    for m in sample_messages(&data) {
        let h = hdr(3, 5, 42);
        let buf = emit_vec(&h, &m);
        assert!(buf.len() >= ETHERNET_MIN_FRAME);
        let (h2, m2) = wire::parse(&buf).unwrap();
        assert_eq!(h2, h);
        assert_eq!(m2, m);
        let eth = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(eth.ethertype(), ETHERTYPE_RSM);
        assert_eq!(eth.src_addr(), wire::node_mac(3));
        assert_eq!(eth.dst_addr(), wire::node_mac(5));
        assert_eq!(wire::mac_node(eth.src_addr()), Some(3));
    }
}

#[test]
fn broadcast_hello_uses_broadcast_mac() {
    let h = hdr(0, NODE_BROADCAST, 42);
    let m = Message::Hello(Hello {
        incarnation: 42,
        max_frame: 9000,
    });
    let buf = emit_vec(&h, &m);
    assert_eq!(
        EthernetFrame::new_unchecked(&buf[..]).dst_addr(),
        wire::MAC_BROADCAST
    );
    assert_eq!(wire::parse(&buf).unwrap().1, m);
}

#[test]
fn every_truncation_is_rejected() {
    let data = [0xabu8; 100];
    for m in sample_messages(&data) {
        let buf = emit_vec(&hdr(1, 2, 42), &m);
        let used = FRAME_OVERHEAD + m.buffer_len();
        // Cutting off padding only is not a truncation.
        for len in used..buf.len() {
            assert_eq!(wire::parse(&buf[..len]).unwrap().1, m);
        }
        for len in 0..used {
            let r = wire::parse(&buf[..len]);
            assert!(r.is_err(), "{m:?} truncated to {len} parsed");
            let e = r.unwrap_err();
            if len < FRAME_OVERHEAD {
                assert_eq!(e, WireError::Truncated, "len {len}");
            } else {
                // Past the headers a short frame is truncated, or (inside the 60-byte
                // padding window) a body that no longer matches the checksum.
                assert!(
                    matches!(e, WireError::Truncated | WireError::BadChecksum),
                    "len {len}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn wrong_ethertype_version_and_unknown_type() {
    let m = sample_messages(&[])[0];
    let good = emit_vec(&hdr(1, 2, 42), &m);

    let mut b = good.clone();
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    assert_eq!(wire::parse(&b), Err(WireError::BadEtherType));

    for v in [0u8, WIRE_VERSION + 1, 5, 0xff] {
        let mut b = good.clone();
        patch_header(&mut b, |h| h.set_version(v));
        assert_eq!(wire::parse(&b), Err(WireError::BadVersion), "version {v}");
    }

    for t in 0..=255u8 {
        if ALL_TYPES.contains(&t) {
            continue;
        }
        let mut b = good.clone();
        patch_header(&mut b, |h| h.set_msg_type(t));
        assert_eq!(wire::parse(&b), Err(WireError::UnknownType), "type {t}");
    }
}

#[test]
fn bad_fields_are_rejected() {
    let m = sample_messages(&[])[0];
    let good = emit_vec(&hdr(1, 2, 42), &m);
    for case in 0..4 {
        let mut b = good.clone();
        patch_header(&mut b, |h| match case {
            0 => h.set_src_node(64),
            1 => h.set_src_node(NODE_BROADCAST),
            2 => h.set_dst_node(64),
            _ => h.set_flags(0x8000),
        });
        assert_eq!(wire::parse(&b), Err(WireError::BadField), "case {case}");
    }
    // Emit refuses what parse would refuse.
    let mut buf = [0u8; 128];
    let mut h = hdr(64, 2, 42);
    assert_eq!(wire::emit(&h, &m, &mut buf), Err(WireError::BadField));
    h.src_node = 1;
    let bad_perm = Message::Republish(Republish {
        segment_id: 1,
        permission: 0o1000,
    });
    assert_eq!(
        wire::emit(&h, &bad_perm, &mut buf),
        Err(WireError::BadField)
    );
    let bad_frag = Message::PutData(PutData {
        import_id: 0,
        segment_id: 0,
        op_id: 0,
        entry: 0,
        remote_offset: 0,
        frag_offset: 10,
        total_len: 10,
        data: &[1],
    });
    assert_eq!(
        wire::emit(&h, &bad_frag, &mut buf),
        Err(WireError::BadField)
    );
    let hello_mismatch = Message::Hello(Hello {
        incarnation: 41,
        max_frame: 1514,
    });
    assert_eq!(
        wire::emit(&h, &hello_mismatch, &mut buf),
        Err(WireError::BadField)
    );
    let small_hello = Message::Hello(Hello {
        incarnation: 42,
        max_frame: 60,
    });
    assert_eq!(
        wire::emit(&h, &small_hello, &mut buf),
        Err(WireError::BadField)
    );
    // A forced flag other than 0/1, with a valid checksum.
    let d = sample_messages(&[])[2];
    let mut b = emit_vec(&h, &d);
    b[FRAME_OVERHEAD + 10] = 2;
    patch_header(&mut b, |_| {});
    assert_eq!(wire::parse(&b), Err(WireError::BadField));
}

#[test]
fn length_field_larger_or_smaller_than_frame() {
    let data = [7u8; 100];
    for m in sample_messages(&data) {
        let good = emit_vec(&hdr(1, 2, 42), &m);
        let body = good.len() - FRAME_OVERHEAD;
        let real = m.buffer_len();
        for delta in [1i32, 2, 100, 65535] {
            // Larger than the frame.
            let mut b = good.clone();
            let l = (real as i32 + delta).min(65535) as u16;
            Header::new_unchecked(&mut b[14..]).set_payload_len(l);
            let e = wire::parse(&b).unwrap_err();
            if usize::from(l) > body {
                assert_eq!(e, WireError::Truncated, "{m:?} +{delta}");
            } else {
                assert!(matches!(e, WireError::BadChecksum), "{m:?} +{delta}: {e:?}");
            }
            // Larger, checksum fixed: still a typed error.
            let mut b = good.clone();
            b.extend_from_slice(&[0u8; 200]);
            patch_header(&mut b, |h| h.set_payload_len((real + 1) as u16));
            let e = wire::parse(&b).unwrap_err();
            assert!(
                matches!(e, WireError::BadLength | WireError::BadField),
                "{e:?}"
            );
        }
        // Smaller than the body (checksum fixed): the frame has trailing bytes or the body
        // is too short for its type.
        if real > 0 {
            let mut b = good.clone();
            patch_header(&mut b, |h| h.set_payload_len((real - 1) as u16));
            let e = wire::parse(&b).unwrap_err();
            assert!(
                matches!(e, WireError::BadLength | WireError::BadField),
                "{m:?}: {e:?}"
            );
        }
        // Trailing bytes beyond padding.
        let mut b = good.clone();
        b.resize(b.len().max(ETHERNET_MIN_FRAME) + 1, 0);
        assert_eq!(wire::parse(&b), Err(WireError::BadLength));
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let data: Vec<u8> = (0..64u8).collect();
    for m in sample_messages(&data) {
        let good = emit_vec(&hdr(1, 2, 42), &m);
        let used = FRAME_OVERHEAD + m.buffer_len();
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[byte] ^= 1 << bit;
                match wire::parse(&b) {
                    Ok((h, m2)) => {
                        // Only MAC bits and padding bits are outside the checksum; they must
                        // not change the content.
                        assert!(byte < 12 || byte >= used, "flip {byte}.{bit} accepted");
                        assert_eq!((h, m2), wire::parse(&good).unwrap());
                    }
                    Err(e) => assert_ne!(e, WireError::BufferTooSmall),
                }
            }
        }
    }
}

#[test]
fn emit_into_small_buffer_is_an_error() {
    let data = [1u8; 300];
    for m in sample_messages(&data) {
        let f = Frame {
            header: hdr(1, 2, 42),
            message: m,
        };
        for len in 0..f.buffer_len() {
            let mut buf = vec![0u8; len];
            assert_eq!(f.emit(&mut buf), Err(WireError::BufferTooSmall));
        }
    }
    // A body over 65535 bytes cannot be announced.
    let big = vec![0u8; 70_000];
    let m = Message::PutData(PutData {
        import_id: 0,
        segment_id: 0,
        op_id: 0,
        entry: 0,
        remote_offset: 0,
        frag_offset: 0,
        total_len: big.len() as u32,
        data: &big,
    });
    let mut buf = vec![0u8; MAX_FRAME + 10_000];
    assert_eq!(
        wire::emit(&hdr(1, 2, 3), &m, &mut buf),
        Err(WireError::BadLength)
    );
}

#[test]
fn header_view_accessors() {
    let m = sample_messages(&[])[10];
    let buf = emit_vec(&hdr(1, 2, 0xdead_beef_0000_0001), &m);
    let h = Header::new_checked(&buf[14..]).unwrap();
    assert_eq!(h.version(), WIRE_VERSION);
    assert_eq!(h.msg_type(), 19);
    assert_eq!(h.src_node(), 1);
    assert_eq!(h.dst_node(), 2);
    assert_eq!(h.incarnation(), 0xdead_beef_0000_0001);
    assert_eq!(h.seq(), 7);
    assert_eq!(h.ack(), 6);
    assert_eq!(usize::from(h.payload_len()), m.buffer_len());
    assert!(h.verify_checksum());
    assert_eq!(
        Header::new_checked(&buf[14..14 + HEADER_LEN - 1]),
        Err(WireError::Truncated)
    );
    assert_eq!(
        WireError::BadChecksum.to_string(),
        "checksum mismatch".to_string()
    );
}

#[test]
fn fragment_and_reassemble() {
    let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let chunk = wire::put_data_capacity(1514);
    assert_eq!(chunk, 1514 - FRAME_OVERHEAD - wire::PUT_DATA_FIXED_LEN);
    let mut out = vec![0u8; src.len()];
    let mut r = Reassembly::new(&mut out);
    let mut frames = 0;
    for (off, len) in Fragments::new(src.len(), chunk) {
        let m = Message::PutData(PutData {
            import_id: 1,
            segment_id: 2,
            op_id: 3,
            entry: 0,
            remote_offset: 0,
            frag_offset: off as u32,
            total_len: src.len() as u32,
            data: &src[off..off + len],
        });
        let buf = emit_vec(&hdr(1, 2, 3), &m);
        assert!(buf.len() <= 1514);
        let Message::PutData(p) = wire::parse(&buf).unwrap().1 else {
            panic!()
        };
        let st = r.push(p.frag_offset, p.total_len, p.data).unwrap();
        // Duplicates are ignored.
        assert_eq!(
            r.push(p.frag_offset, p.total_len, p.data).unwrap(),
            Reassembled::Duplicate
        );
        frames += 1;
        assert_eq!(st == Reassembled::Complete, off + len == src.len());
    }
    assert_eq!(frames, src.len().div_ceil(chunk));
    assert!(r.is_complete());
    assert_eq!(out, src);

    let mut out = vec![0u8; 10];
    let mut r = Reassembly::new(&mut out);
    assert_eq!(r.push(5, 10, &[1; 5]).unwrap(), Reassembled::OutOfOrder);
    assert_eq!(r.push(0, 11, &[1; 5]), Err(WireError::BadField));
    assert_eq!(r.push(8, 10, &[1; 5]), Err(WireError::BadField));
    assert_eq!(Fragments::new(0, 100).collect::<Vec<_>>(), vec![(0, 0)]);
    assert_eq!(Fragments::new(10, 0).count(), 0);
}

fn arb_header() -> impl Strategy<Value = HeaderRepr> {
    (
        0..=wire::FLAGS_KNOWN,
        0..=63u8,
        prop_oneof![0..=63u8, Just(NODE_BROADCAST)],
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(flags, src_node, dst_node, incarnation, peer_incarnation, seq, ack)| HeaderRepr {
                flags,
                src_node,
                dst_node,
                incarnation,
                peer_incarnation,
                seq,
                ack,
            },
        )
}

/// Random fields for every message type (index `k` picks the type); data messages take
/// their bytes from `data`.
fn build<'a>(k: u8, f: &[u64; 8], data: &'a [u8], inc: u64) -> Message<'a> {
    let u32_ = |i: usize| f[i] as u32;
    let u16_ = |i: usize| f[i] as u16;
    let perm = |i: usize| (f[i] % 0o1000) as u16;
    let dlen = data.len() as u32;
    let total = dlen.saturating_add(u32_(6) % 1000);
    let frag = (total - dlen).min(u32_(7));
    match k % 12 {
        0 => Message::ConnectRequest(ConnectRequest {
            segment_id: u32_(0),
            request_id: u32_(1),
            import_id: u32_(2),
            permission: perm(3),
        }),
        1 => Message::ConnectReply(ConnectReply {
            request_id: u32_(0),
            status: u16_(1),
            permission: perm(2),
            segment_id: u32_(3),
            segment_len: f[4],
            owner_uid: u32_(5),
            owner_gid: u32_(6),
        }),
        2 => Message::Disconnect(Disconnect {
            segment_id: u32_(0),
            import_id: u32_(1),
            generation: u16_(2),
            forced: f[3] & 1 == 1,
        }),
        3 => Message::Importing(ImportNotice {
            segment_id: u32_(0),
            import_id: u32_(1),
        }),
        4 => Message::NotImporting(ImportNotice {
            segment_id: u32_(0),
            import_id: u32_(1),
        }),
        5 => Message::Bell(Bell {
            segment_id: u32_(0),
            import_id: u32_(1),
            flags: u16_(2) & wire::BELL_FLAGS_KNOWN,
            op_id: u32_(3),
        }),
        6 => Message::Republish(Republish {
            segment_id: u32_(0),
            permission: perm(1),
        }),
        7 => Message::PutData(PutData {
            import_id: u32_(0),
            segment_id: u32_(1),
            op_id: u32_(2),
            entry: u16_(3),
            remote_offset: f[4] >> 1,
            frag_offset: frag,
            total_len: total,
            data,
        }),
        8 => Message::GetRequest(GetRequest {
            import_id: u32_(0),
            segment_id: u32_(1),
            op_id: u32_(2),
            entry: u16_(3),
            remote_offset: f[4] >> 1,
            length: u32_(5),
        }),
        9 => Message::GetData(GetData {
            op_id: u32_(0),
            entry: u16_(1),
            status: u16_(2),
            frag_offset: frag,
            total_len: total,
            data,
        }),
        10 => Message::Ack(Ack {
            op_id: u32_(0),
            entry: u16_(1),
            status: u16_(2),
            done_len: u32_(3),
        }),
        _ => Message::Hello(Hello {
            incarnation: inc,
            max_frame: u16_(0).max(wire::MIN_MAX_FRAME),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip_every_message(
        k in 0..12u8,
        h in arb_header(),
        f in any::<[u64; 8]>(),
        data in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let m = build(k, &f, &data, h.incarnation);
        prop_assert!(m.validate().is_ok());
        let buf = emit_vec(&h, &m);
        let (h2, m2) = wire::parse(&buf).unwrap();
        prop_assert_eq!(h2, h);
        prop_assert_eq!(m2, m);
        // Round trip through a larger buffer gives the same bytes.
        let mut big = vec![0xeeu8; buf.len() + 17];
        let n = wire::emit(&h, &m, &mut big).unwrap();
        prop_assert_eq!(&big[..n], &buf[..]);
    }

    #[test]
    fn prop_corruption_never_changes_content(
        k in 0..12u8,
        h in arb_header(),
        f in any::<[u64; 8]>(),
        data in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((any::<usize>(), 1..=255u8), 1..4),
    ) {
        let m = build(k, &f, &data, h.incarnation);
        let good = emit_vec(&h, &m);
        let mut b = good.clone();
        for (at, x) in flips {
            let n = b.len();
            b[at % n] ^= x;
        }
        if let Ok((h2, m2)) = wire::parse(&b) {
            prop_assert_eq!((h2, m2), (h, m));
        }
    }

    #[test]
    fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = wire::parse(&bytes);
        let _ = Header::new_checked(&bytes[..]).map(|h| HeaderRepr::parse(&h));
        for t in ALL_TYPES {
            let _ = Message::parse(wire::MessageType::from_u8(t).unwrap(), &bytes);
        }
    }

    #[test]
    fn prop_parse_never_panics_with_valid_prefix(
        ty in proptest::sample::select(&ALL_TYPES[..]),
        len in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..120),
        fix_crc in any::<bool>(),
    ) {
        // A well-formed header with a valid checksum and a random body: exercises the body
        // parsers behind the checksum.
        let mut b = vec![0u8; FRAME_OVERHEAD + body.len()];
        {
            let mut e = EthernetFrame::new_unchecked(&mut b[..]);
            e.set_ethertype(ETHERTYPE_RSM);
        }
        b[FRAME_OVERHEAD..].copy_from_slice(&body);
        let mut h = Header::new_unchecked(&mut b[14..]);
        h.set_version(WIRE_VERSION);
        h.set_msg_type(ty);
        h.set_src_node(1);
        h.set_dst_node(2);
        h.set_payload_len(if fix_crc { body.len() as u16 } else { len });
        if fix_crc {
            h.fill_checksum();
        }
        if let Ok((_, m)) = wire::parse(&b) {
            prop_assert_eq!(m.msg_type() as u8, ty);
        }
    }
}

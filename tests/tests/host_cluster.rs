//! Host nodes with their runtime (issue 10): each node's driver thread sleeps on its UDP
//! socket and its eventfd; application threads only make RSMAPI calls. Nodes talk through
//! the L2 switch library on 127.0.0.1.

use rsm_core::{CreateFlags, IoVec, Permission, RsmError, ScatGath};
use rsm_host::{HostNode, HostPlatform, LinkSpec, NodeConfig, PinnedBuf, UdpPeers};
use rsm_switch::{Switch, SwitchConfig};
use rsm_tests::with_watchdog;
use std::time::{Duration, Instant};

const SEG: u32 = 0x40_6001;
const LEN: usize = 1 << 20;

fn node(id: u32, sw: &Switch, incarnation: u64) -> HostNode {
    HostNode::start_on(
        NodeConfig {
            node_id: id,
            link: LinkSpec::Udp {
                bind: "127.0.0.1:0".parse().unwrap(),
                peers: UdpPeers::Switch(sw.addr()),
            },
            max_frame: 65_507,
            incarnation,
        },
        HostPlatform::without_mlock(),
    )
    .unwrap()
}

/// Nodes 1 (exporter of a `len`-byte segment published as [`SEG`]) and 2 (connected to it
/// read+write) on `sw`.
fn connected(
    sw: &Switch,
    len: usize,
) -> (
    HostNode,
    HostNode,
    PinnedBuf,
    rsm_core::ExportHandle,
    rsm_core::ImportHandle,
) {
    let (exp, imp) = (node(1, sw, 1), node(2, sw, 1));
    let seg_mem = PinnedBuf::new(len).unwrap();
    let e = exp.rsm();
    let ctrl = e.get_controller(Some("rsmnet0")).unwrap();
    let seg = e
        .export_create(ctrl, seg_mem.region(), CreateFlags::empty())
        .unwrap();
    e.export_publish(seg, SEG, &[]).unwrap();
    let i = imp.rsm();
    let c = i.get_controller(Some("rsmnet0")).unwrap();
    let h = i.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
    (exp, imp, seg_mem, seg, h)
}

#[test]
fn putv_getv_through_the_switch_with_driver_threads() {
    with_watchdog("host cluster putv/getv", Duration::from_secs(60), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (_exp, imp, seg_mem, _seg, h) = connected(&sw, LEN);
        let i = imp.rsm();
        let mut src = PinnedBuf::new(LEN).unwrap();
        let pattern: Vec<u8> = (0..LEN).map(|k| (k * 13 % 253) as u8).collect();
        src.as_mut_slice().unwrap().copy_from_slice(&pattern);
        let s = src.region();
        let put: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| IoVec::va(&s, k * 65536, k * 65536, 65536))
            .collect();
        let t = Instant::now();
        i.putv(&mut ScatGath::new(h, &put)).unwrap();
        let put_time = t.elapsed();
        let mut got = vec![0u8; LEN];
        seg_mem.read(0, &mut got).unwrap();
        assert!(got == pattern, "exported memory after putv");
        let dst = PinnedBuf::new(LEN).unwrap();
        let d = dst.region();
        let get: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| IoVec::va(&d, k * 65536, k * 65536, 65536))
            .collect();
        i.getv(&mut ScatGath::new(h, &get)).unwrap();
        dst.read(0, &mut got).unwrap();
        assert!(got == pattern, "local memory after getv");
        println!(
            "1 MiB putv through the switch in {put_time:?}; socket buffers {:?}",
            imp.socket_buffers()
        );
        i.import_disconnect(h).unwrap();
        let st = sw.stop();
        // 65 507-byte frames: 1 MiB is about 17 data frames per direction.
        let sent = st
            .port_of(rsm_host::runtime::node_mac(2))
            .unwrap()
            .counters
            .rx_frames;
        assert!(sent < 400, "importer sent {sent} frames");
    });
}

#[test]
fn a_clean_exporter_exit_aborts_imports_at_once() {
    with_watchdog("clean exit", Duration::from_secs(60), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (exp, imp, _seg_mem, _seg, h) = connected(&sw, 4096);
        let i = imp.rsm();
        let mut local = PinnedBuf::new(4096).unwrap();
        local.as_mut_slice().unwrap()[..5].copy_from_slice(b"alive");
        let l = local.region();
        let one = [IoVec::va(&l, 0, 0, 5)];
        i.putv(&mut ScatGath::new(h, &one)).unwrap();
        let t = Instant::now();
        exp.shutdown();
        // The importer learns at once: within 1 s its calls fail with CONN_ABORTED (not
        // REMOTE_NODE_UNREACHABLE after 5 s).
        let mut r = Ok(());
        while t.elapsed() < Duration::from_secs(1) {
            r = i.putv(&mut ScatGath::new(h, &one));
            if r.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r, Err(RsmError::ConnAborted));
        println!(
            "import aborted {:?} after the exporter's clean exit",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn the_switch_capture_reads_back_with_tcpdump_and_our_decoder() {
    with_watchdog("capture", Duration::from_secs(60), || {
        let dir = std::env::temp_dir().join(format!("rsm-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("run.pcap");
        let sw = Switch::start(SwitchConfig {
            pcap: Some(pcap.clone()),
            snaplen: 128,
            ..SwitchConfig::default()
        })
        .unwrap();
        let (exp, imp, _seg_mem, _seg, h) = connected(&sw, 256 * 1024);
        let i = imp.rsm();
        let buf = PinnedBuf::new(256 * 1024).unwrap();
        let b = buf.region();
        let v: Vec<IoVec<'_, _>> = (0..4)
            .map(|k| IoVec::va(&b, k * 65536, k * 65536, 65536))
            .collect();
        i.putv(&mut ScatGath::new(h, &v)).unwrap();
        i.getv(&mut ScatGath::new(h, &v)).unwrap();
        i.import_disconnect(h).unwrap();
        drop(imp);
        drop(exp);
        let st = sw.stop();

        // Our decoder (rsm-core's wire parser) over the capture.
        let mut text = String::new();
        let sum = rsm_runner::decode::decode(&pcap, &mut text).unwrap();
        assert_eq!(sum.frames, st.captured, "every captured frame decoded");
        assert_eq!(
            sum.frames,
            st.rx_frames(),
            "the switch captured every frame it received"
        );
        let n = |k: &str| sum.counts.get(k).copied().unwrap_or(0);
        assert_eq!(n("ConnectRequest"), 1, "{text}");
        assert_eq!(n("ConnectReply"), 1);
        assert_eq!(n("GetRequest"), 4);
        assert!(n("PutData") >= 4 && n("GetData") >= 4, "{:?}", sum.counts);
        assert!(
            n("Ack") >= 4 && n("Hello") >= 2 && n("NotImporting") == 1,
            "{:?}\n{text}",
            sum.counts
        );
        assert_eq!(n("malformed") + n("other EtherType"), 0);

        // A reader other than ours: tcpdump (installed by the test command's set-up).
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&pcap)
            .output()
            .expect("tcpdump runs (cargo rsm test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One line per record (tcpdump adds indented hex lines for an unknown EtherType).
        let stdout = String::from_utf8_lossy(&out.stdout);
        let records: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .collect();
        assert_eq!(
            records.len() as u64,
            st.captured,
            "tcpdump reads every record"
        );
        assert!(records.iter().all(|l| l.contains("0x88b5")), "{stdout}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A hand-made node on a raw UDP socket: node [`ATTACKER`], its own MAC, talking to node 1
/// through the switch with frames made by rsm-core's wire emitter.
struct Attacker {
    sock: std::net::UdpSocket,
    sw: std::net::SocketAddr,
    inc: u64,
    victim_inc: u64,
    /// Next sequence number to send; next one expected from the victim.
    seq: u32,
    ack: u32,
}

const ATTACKER: u8 = 5;

impl Attacker {
    fn header(&self) -> rsm_core::wire::HeaderRepr {
        rsm_core::wire::HeaderRepr {
            flags: rsm_core::wire::FLAG_ACK,
            src_node: ATTACKER,
            dst_node: 1,
            incarnation: self.inc,
            peer_incarnation: self.victim_inc,
            seq: self.seq,
            ack: self.ack,
        }
    }

    fn frame(h: &rsm_core::wire::HeaderRepr, m: &rsm_core::wire::Message<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let n = rsm_core::wire::emit(h, m, &mut buf).expect("a valid frame");
        buf.truncate(n);
        buf
    }

    fn send(&self, f: &[u8]) {
        self.sock.send_to(f, self.sw).unwrap();
    }

    /// A pure acknowledgement of everything received (a unicast hello, seq = no SACK bits).
    fn pure_ack(&self) {
        let mut h = self.header();
        h.seq = 0;
        self.send(&Self::frame(
            &h,
            &rsm_core::wire::Message::Hello(rsm_core::wire::Hello {
                incarnation: self.inc,
                max_frame: 1514,
            }),
        ));
    }

    /// The next in-order message to node 1.
    fn send_seq(&mut self, m: &rsm_core::wire::Message<'_>) {
        let f = Self::frame(&self.header(), m);
        self.send(&f);
        self.seq += 1;
    }

    /// Read frames until an in-order message from node 1 satisfies `want` (its status), for
    /// at most 2 s; acknowledge it.
    fn answer(&mut self, want: impl Fn(&rsm_core::wire::Message<'_>) -> Option<u16>) -> u16 {
        use rsm_core::wire::Message;
        let end = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 70_000];
        while Instant::now() < end {
            self.sock
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let Ok((h, m)) = rsm_core::wire::parse(&buf[..n]) else {
                continue;
            };
            if h.src_node != 1 || h.dst_node != ATTACKER {
                continue;
            }
            self.victim_inc = h.incarnation;
            if matches!(m, Message::Hello(_)) || h.seq != self.ack {
                continue;
            }
            self.ack += 1;
            self.pure_ack();
            if let Some(status) = want(&m) {
                return status;
            }
        }
        panic!("no answer from node 1 within 2 s");
    }
}

/// An exporter flooded with crafted frames from a raw UDP socket keeps serving an honest
/// importer; each class of bad frame is counted in exactly its own counter; memory outside
/// what was granted (and written by the honest importer) is unchanged byte for byte.
#[test]
fn a_flooded_exporter_keeps_serving_and_counts_each_class() {
    use rsm_core::wire::{ConnectRequest, Message, PutData};
    use rsm_core::AccessEntry;
    with_watchdog("flood", Duration::from_secs(120), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (exp, imp) = (node(1, &sw, 1), node(2, &sw, 1));
        let e = exp.rsm();
        let ctrl = e.get_controller(Some("rsmnet0")).unwrap();
        let pat = |k: usize, i: usize| (i.wrapping_mul(31 + 2 * k) ^ (i >> 8) ^ (0x5a + k)) as u8;
        // A: the honest importer's (read+write for node 2); B: nobody's but node 2's;
        // C: read+write for the attacker, so its crafted puts reach the range check.
        let lens = [65536usize, 16384, 8192];
        let acls = [
            vec![AccessEntry::new(2, 0o600)],
            vec![AccessEntry::new(2, 0o600)],
            vec![AccessEntry::new(u32::from(ATTACKER), 0o600)],
        ];
        let mut mems = Vec::new();
        for k in 0..3 {
            let m = PinnedBuf::new(lens[k]).unwrap();
            let bytes: Vec<u8> = (0..lens[k]).map(|i| pat(k, i)).collect();
            m.write(0, &bytes).unwrap();
            let s = e
                .export_create(ctrl, m.region(), CreateFlags::empty())
                .unwrap();
            e.export_publish(s, SEG + k as u32, &acls[k]).unwrap();
            mems.push(m);
        }

        // The attacker makes itself known and imports C (its own crafted connect), once the
        // switch knows where node 1 is.
        let t = Instant::now();
        while sw.stats().port_of(rsm_host::runtime::node_mac(1)).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "node 1 never said hello"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut a = Attacker {
            sock: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            sw: sw.addr(),
            inc: 1000,
            victim_inc: e.net_incarnation(),
            seq: 1,
            ack: 1,
        };
        a.pure_ack();
        a.send_seq(&Message::ConnectRequest(ConnectRequest {
            segment_id: SEG + 2,
            request_id: 77,
            import_id: 0xA77A,
            permission: 0o600,
        }));
        let status = a.answer(|m| match m {
            Message::ConnectReply(r) if r.request_id == 77 => Some(r.status),
            _ => None,
        });
        assert_eq!(status, 0, "the attacker's import of C");

        // The honest importer works meanwhile: putv/getv of 16 KiB of A, checked.
        let honest = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let i = imp.rsm();
                let c = i.get_controller(Some("rsmnet0")).unwrap();
                let h = i.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
                let buf = PinnedBuf::new(16384).unwrap();
                let b = buf.region();
                let v: Vec<IoVec<'_, _>> = (0..4)
                    .map(|k| IoVec::va(&b, k * 4096, k * 4096, 4096))
                    .collect();
                let mut rounds = 0;
                for r in 0..40u8 {
                    let data: Vec<u8> = (0..16384).map(|j| (j as u8) ^ r).collect();
                    buf.write(0, &data).unwrap();
                    i.putv(&mut ScatGath::new(h, &v)).unwrap();
                    buf.write(0, &[0u8; 16384]).unwrap();
                    i.getv(&mut ScatGath::new(h, &v)).unwrap();
                    let mut got = vec![0u8; 16384];
                    buf.read(0, &mut got).unwrap();
                    assert!(got == data, "round {r}");
                    rounds += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                i.import_disconnect(h).unwrap();
                rounds
            });

            let before = e.net_stats();
            // At least 300 of each class, and until the honest importer is finished: it is
            // served during the flood.
            let mut n: u64 = 0;
            let put = |op_id: u64, import_id, segment_id, off: u64, data: &'static [u8]| {
                Message::PutData(PutData {
                    import_id,
                    segment_id,
                    op_id: op_id as u32,
                    entry: 0,
                    remote_offset: off,
                    frag_offset: 0,
                    total_len: data.len() as u32,
                    data,
                })
            };
            let mut rng = rsm_tests::Rng::new(99);
            loop {
                let k = n;
                if (k >= 300 && worker.is_finished()) || k >= 20_000 {
                    break;
                }
                n += 1;
                // 1. A wrong node/MAC pair: node 2's id from the attacker's MAC.
                let mut h = a.header();
                h.src_node = 2;
                h.seq = 0;
                let mut f = Attacker::frame(&h, &put(k, 1, SEG, 0, &[0xEE; 64]));
                f[6..12].copy_from_slice(&rsm_host::runtime::node_mac(u32::from(ATTACKER)));
                a.send(&f);
                // 2. A stale incarnation of the attacker.
                let mut h = a.header();
                h.incarnation = a.inc - 1;
                a.send(&Attacker::frame(
                    &h,
                    &put(k, 0xA77A, SEG + 2, 0, &[0xEE; 64]),
                ));
                // 3. Garbage after a good Ethernet header.
                let len = 20 + (rng.next_u64() % 300) as usize;
                let mut g: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                g[..6].copy_from_slice(&rsm_host::runtime::node_mac(1));
                g[6..12].copy_from_slice(&rsm_host::runtime::node_mac(u32::from(ATTACKER)));
                g[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
                a.send(&g);
                // 4. Out-of-range offsets through the attacker's own import of C:
                //    crossing the end, far beyond it, and at 2^63.
                let off = [8192 - 32, 1 << 40, 1 << 63][(k % 3) as usize];
                a.send_seq(&put(1000 + k, 0xA77A, SEG + 2, off, &[0xEE; 64]));
                let status = a.answer(|m| match m {
                    Message::Ack(ack) if u64::from(ack.op_id) == 1000 + k => Some(ack.status),
                    _ => None,
                });
                assert_eq!(status as i32, RsmError::BadOffset.code(), "frame {k}");
            }
            let after = e.net_stats();
            let d = |f: fn(&rsm_core::proto::NetStats) -> u64| f(&after) - f(&before);
            println!("exporter counters moved: {before:?} -> {after:?}");
            println!("{n} frames of each class");
            assert_eq!(d(|s| s.spoofed), n, "wrong node/MAC pairs");
            assert_eq!(d(|s| s.stale), n, "stale incarnations");
            assert_eq!(d(|s| s.malformed), n, "garbage");
            assert_eq!(d(|s| s.rejected), n, "out-of-range offsets");
            worker.join().unwrap()
        });
        assert_eq!(honest, 40, "the honest importer was served throughout");
        // A: the honest importer's last round in [0, 16384), the rest unchanged; B and C
        // unchanged.
        for k in 0..3 {
            let mut got = vec![0u8; lens[k]];
            mems[k].read(0, &mut got).unwrap();
            let from = if k == 0 { 16384 } else { 0 };
            let bad = (from..lens[k]).filter(|&i| got[i] != pat(k, i)).count();
            assert_eq!(bad, 0, "segment {k}: {bad} bytes changed outside the grant");
        }
        let st = sw.stop();
        let att = st
            .port_of(rsm_host::runtime::node_mac(u32::from(ATTACKER)))
            .unwrap();
        assert_eq!(
            att.counters.spoofed, 0,
            "the switch let every frame through"
        );
    });
}

/// While one thread of the importer sleeps in a bell wait (it watches the socket and drives
/// the link; the driver thread leaves it alone then), another thread's non-blocking
/// `start_putv` still goes out at once: the kick wakes the watching caller.
#[test]
fn a_non_blocking_start_goes_out_while_another_thread_waits() {
    use rsm_core::SegmentRef;
    with_watchdog("start while waiting", Duration::from_secs(60), || {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        let (exp, imp, seg_mem, seg, h) = connected(&sw, 4096);
        let (e, i) = (exp.rsm(), imp.rsm());
        let local = PinnedBuf::new(4096).unwrap();
        local.write(0, b"kicked").unwrap();
        let l = local.region();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| i.intr_signal_wait(SegmentRef::Import(h), 10_000));
            // Let the waiter settle in its wait.
            std::thread::sleep(Duration::from_millis(100));
            let mut worst = Duration::ZERO;
            for k in 0..20u8 {
                local.write(0, &[k]).unwrap();
                let one = [IoVec::va(&l, 0, 0, 6)];
                let t = Instant::now();
                let op = i.start_putv(&ScatGath::new(h, &one)).unwrap();
                let done = loop {
                    if let Some(d) = i.take_completion(op) {
                        break d;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(5),
                        "put {k} never completed"
                    );
                    std::thread::sleep(Duration::from_micros(200));
                };
                assert_eq!(done.result, Ok(()));
                worst = worst.max(t.elapsed());
            }
            println!("worst start_putv completion while another thread waits: {worst:?}");
            // Well under the 250 ms heartbeat that would otherwise carry the frames.
            assert!(worst < Duration::from_millis(50), "{worst:?}");
            e.intr_signal_post(SegmentRef::Export(seg), rsm_core::SigpostFlags::empty())
                .unwrap();
            assert_eq!(waiter.join().unwrap(), Ok(()));
        });
        let mut got = [0u8; 6];
        seg_mem.read(0, &mut got).unwrap();
        assert_eq!(&got, &[19, b'i', b'c', b'k', b'e', b'd']);
    });
}

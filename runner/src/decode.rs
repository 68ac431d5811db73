//! `cargo rsm decode FILE.pcap`: every captured frame's header and message, decoded with
//! rsm-core's own wire parser (tcpdump knows nothing of EtherType 0x88B5).

use pcap_file::pcap::PcapReader;
use rsm_core::wire::{Frame, Header, Message, MessageType, ETHERNET_HEADER_LEN, ETHERTYPE_RSM};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// What a capture held: frames per message type name (plus `"other EtherType"`,
/// `"malformed"` and `"cut"` for frames cut at the snap length whose header was readable).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Frames per kind.
    pub counts: BTreeMap<String, u64>,
    /// All frames.
    pub frames: u64,
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A message in one line (data as its length, not its bytes).
pub fn describe(m: &Message<'_>) -> String {
    match m {
        Message::PutData(p) => format!(
            "PutData import {} seg {:#x} op {:#x} entry {} offset {} frag {} of {} ({} B)",
            p.import_id,
            p.segment_id,
            p.op_id,
            p.entry,
            p.remote_offset,
            p.frag_offset,
            p.total_len,
            p.data.len()
        ),
        Message::GetData(g) => format!(
            "GetData op {:#x} entry {} status {} frag {} of {} ({} B)",
            g.op_id,
            g.entry,
            g.status,
            g.frag_offset,
            g.total_len,
            g.data.len()
        ),
        other => format!("{other:?}"),
    }
}

fn kind(m: &Message<'_>) -> String {
    let d = format!("{m:?}");
    d.split(['(', ' ', '{']).next().unwrap_or("?").to_string()
}

/// Decode `path`, writing one line per frame to `out`.
///
/// # Errors
/// The file cannot be read or is not a pcap file.
pub fn decode(path: &Path, out: &mut String) -> Result<Summary, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = PcapReader::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sum = Summary::default();
    let mut first = None;
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.map_err(|e| format!("{}: {e}", path.display()))?;
        sum.frames += 1;
        let t0 = *first.get_or_insert(pkt.timestamp);
        let t = pkt.timestamp.saturating_sub(t0).as_secs_f64();
        let data: &[u8] = &pkt.data;
        let n = sum.frames;
        let mut line = format!("#{n} {t:.6}s ");
        let k = if data.len() < ETHERNET_HEADER_LEN {
            line.push_str("runt");
            "malformed".to_string()
        } else if u16::from_be_bytes([data[12], data[13]]) != ETHERTYPE_RSM {
            let _ = write!(
                line,
                "{} -> {} other EtherType",
                mac(&data[6..12]),
                mac(&data[..6])
            );
            "other EtherType".to_string()
        } else if (pkt.orig_len as usize) > data.len() {
            // Cut at the snap length: the header is there, the body is not whole.
            let h = Header::new_unchecked(&data[ETHERNET_HEADER_LEN..]);
            let ty = MessageType::from_u8(h.msg_type());
            let _ = write!(
                line,
                "node {} -> {} seq {} ack {} flags {:#x} {:?} (cut: {} of {} B captured)",
                h.src_node(),
                h.dst_node(),
                h.seq(),
                h.ack(),
                h.flags(),
                ty,
                data.len(),
                pkt.orig_len
            );
            ty.map_or("malformed".to_string(), |t| format!("{t:?}"))
        } else {
            match Frame::parse(data) {
                Ok(f) => {
                    let h = f.header;
                    let _ = write!(
                        line,
                        "node {} -> {} inc {} peer-inc {} seq {} ack {} flags {:#x} {}",
                        h.src_node,
                        h.dst_node,
                        h.incarnation,
                        h.peer_incarnation,
                        h.seq,
                        h.ack,
                        h.flags,
                        describe(&f.message)
                    );
                    kind(&f.message)
                }
                Err(e) => {
                    let _ = write!(line, "malformed ({e:?})");
                    "malformed".to_string()
                }
            }
        };
        *sum.counts.entry(k).or_default() += 1;
        out.push_str(&line);
        out.push('\n');
    }
    let _ = writeln!(out, "{} frames:", sum.frames);
    for (k, v) in &sum.counts {
        let _ = writeln!(out, "  {k}: {v}");
    }
    Ok(sum)
}

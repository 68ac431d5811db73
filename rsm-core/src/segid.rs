//! Segment-id ranges reserved for applications (`rsm_get_segmentid_range`, spec §4.2, §9.31).
//!
//! illumos reads `/etc/rsm/rsm.segmentid`; a unikernel has no file system, so the embedder
//! gives the file's text (or a static string in the same format) in [`Config::segid_conf`].
//! The format: one entry per line, `keyword appid baseid length`, separated by blanks; `baseid`
//! is hexadecimal (with or without `0x`), `length` decimal; lines whose first non-blank
//! character is `#` are comments.
//!
//! Our choices where illumos is odd (spec §9.31): both keywords `reserved` (what the library
//! accepts) and `reserve` (what the Programming Interfaces Guide writes) are accepted,
//! case-insensitively; blank lines are skipped (illumos fails the whole lookup on them). A
//! non-comment line with fewer than four fields is malformed (`RSMERR_BAD_CONF`), as are extra
//! fields, a wrong keyword, bad numbers or a range that overflows 32 bits on the line of the
//! matching appid. Appids match case-insensitively; the first matching line wins.
//!
//! [`Config::segid_conf`]: crate::Config::segid_conf

use crate::error::{RsmError, RsmResult};
use crate::types::SegmentId;

/// A reserved range: ids `base .. base + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegidRange {
    /// First id of the range.
    pub base: SegmentId,
    /// Number of ids.
    pub length: u32,
}

fn parse_hex(s: &str) -> Option<u32> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Look `appid` up in configuration text `conf` (format in the module docs).
///
/// Errors: `RSMERR_BAD_CONF` for a malformed line met before the match or on the matching
/// line; `RSMERR_BAD_APPID` when no line names `appid`.
pub fn lookup(conf: &str, appid: &str) -> RsmResult<SegidRange> {
    for line in conf.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(keyword), Some(app), Some(base), Some(length)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(RsmError::BadConf);
        };
        if !app.eq_ignore_ascii_case(appid) {
            continue;
        }
        let keyword_ok =
            keyword.eq_ignore_ascii_case("reserved") || keyword.eq_ignore_ascii_case("reserve");
        let base = parse_hex(base);
        let length: Option<u32> = length.parse().ok();
        return match (keyword_ok, base, length, fields.next()) {
            (true, Some(base), Some(length), None)
                if u64::from(base) + u64::from(length) <= 1 << 32 =>
            {
                Ok(SegidRange { base, length })
            }
            _ => Err(RsmError::BadConf),
        };
    }
    Err(RsmError::BadAppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "\
# rsm.segmentid
#keyword   appid    baseid    length
reserved   SUNWfoo  0x600000  100

  # indented comment
RESERVE    bar      700000    16
reserved   broken   zz        1
reserved   extra    0x800000  1   junk
";

    #[test]
    fn finds_ranges_with_both_keywords_case_insensitively() {
        assert_eq!(
            lookup(CONF, "SUNWfoo"),
            Ok(SegidRange {
                base: 0x600000,
                length: 100
            })
        );
        assert_eq!(
            lookup(CONF, "sunwFOO"),
            Ok(SegidRange {
                base: 0x600000,
                length: 100
            })
        );
        assert_eq!(
            lookup(CONF, "bar"),
            Ok(SegidRange {
                base: 0x700000,
                length: 16
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(lookup(CONF, "nobody"), Err(RsmError::BadAppid));
        assert_eq!(lookup(CONF, "broken"), Err(RsmError::BadConf));
        assert_eq!(lookup(CONF, "extra"), Err(RsmError::BadConf));
        assert_eq!(lookup("", "x"), Err(RsmError::BadAppid));
        assert_eq!(
            lookup("reserved x 0x10\nreserved y 0x20 1", "y"),
            Err(RsmError::BadConf)
        );
        assert_eq!(lookup("other y 0x20 1", "y"), Err(RsmError::BadConf));
        assert_eq!(
            lookup("reserved y 0xFFFFFFFF 2", "y"),
            Err(RsmError::BadConf)
        );
        assert_eq!(
            lookup("reserved y 0xFFFFFFFF 1", "y"),
            Ok(SegidRange {
                base: u32::MAX,
                length: 1
            })
        );
        assert_eq!(lookup("reserved y 0x 1", "y"), Err(RsmError::BadConf));
    }
}

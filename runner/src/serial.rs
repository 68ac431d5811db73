//! Reading a node's COM1 log as it grows: new bytes since the last read, cut into lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Turns a node's serial bytes into log lines.
pub struct SerialDecoder {
    pending: Vec<u8>,
}

impl SerialDecoder {
    /// A decoder for the log of a node booted from `image` (the ELF the logs refer to).
    pub fn new(_image: &Path) -> SerialDecoder {
        SerialDecoder {
            pending: Vec::new(),
        }
    }

    /// Feed bytes; returns the lines they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            lines.push(
                String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
        lines
    }

    /// Read what `path` gained after byte `*seen` and return the lines completed.
    pub fn read_new(&mut self, path: &Path, seen: &mut u64) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(*seen)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        *seen += buf.len() as u64;
        self.push(&buf)
    }

    /// Whatever is left without a final newline (a node killed mid-line).
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = String::from_utf8_lossy(&self.pending).to_string();
        self.pending.clear();
        Some(rest)
    }
}

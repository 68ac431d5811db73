//! Reading a node's COM1 log as it grows: the image logs with `defmt` 1.x (rzCOBS frames,
//! see the board's `log` module); this decodes the frames with `defmt-decoder` and the
//! image's ELF into text lines. `println!` frames become the line as written (the machine
//! lines the runner parses: `READY`, `ROUND`, `REPORT`, …); leveled frames get their
//! timestamp and level: `[0.123456] INFO  …`.
//!
//! Without a readable image or defmt table, every line is one error line saying so (the
//! run then fails its checks, loudly).

use defmt_decoder::{DecodeError, StreamDecoder, Table};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The defmt tables of the images this process decoded, parsed once each (an image's
/// table lives as long as the process: a few KB).
fn table_of(image: &Path) -> Result<&'static Table, String> {
    static TABLES: Mutex<Option<HashMap<PathBuf, &'static Table>>> = Mutex::new(None);
    let mut g = TABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(t) = map.get(image) {
        return Ok(t);
    }
    let elf = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let table = Table::parse(&elf)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .ok_or_else(|| format!("{}: no defmt table in the ELF", image.display()))?;
    let t: &'static Table = Box::leak(Box::new(table));
    map.insert(image.to_path_buf(), t);
    Ok(t)
}

/// Turns a node's serial bytes into log lines.
pub struct SerialDecoder {
    decoder: Result<Box<dyn StreamDecoder + Send + Sync>, String>,
    malformed: u64,
}

impl SerialDecoder {
    /// A decoder for the log of a node booted from `image` (the ELF holding the format
    /// strings).
    pub fn new(image: &Path) -> SerialDecoder {
        SerialDecoder {
            decoder: table_of(image).map(Table::new_stream_decoder),
            malformed: 0,
        }
    }

    /// Frames that could not be decoded (skipped: rzCOBS resynchronises at the next frame).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Feed bytes; returns the lines they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let dec = match &mut self.decoder {
            Ok(d) => d,
            Err(why) => {
                if !bytes.is_empty() {
                    lines.push(format!("ERROR cannot decode the log: {why}"));
                }
                return lines;
            }
        };
        dec.received(bytes);
        loop {
            match dec.decode() {
                Ok(frame) => {
                    let msg = frame.display_message().to_string();
                    lines.push(match frame.level() {
                        None => msg,
                        Some(level) => {
                            let ts = frame
                                .display_timestamp()
                                .map(|t| t.to_string())
                                .unwrap_or_default();
                            format!("[{ts}] {:<5} {msg}", level.as_str().to_uppercase())
                        }
                    });
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => {
                    self.malformed += 1;
                    lines.push("ERROR malformed defmt frame (skipped)".into());
                }
            }
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
}

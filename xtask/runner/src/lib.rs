//! `splitrx-runner`: runs the ARM images and reads their defmt logs.
//!
//! - [`qemu::run`]: an image under QEMU with semihosting (defmt bytes on QEMU's stdout, the
//!   exit code through semihosting), with a timeout and no orphaned QEMU.
//! - [`probe`]: a board's probe-rs target (a built-in chip or the board's own target
//!   description), the image's loadable data staged in probe-rs's `FlashLoader` against that
//!   memory map without a probe ([`probe::plan`]), and flashing and running on a real board
//!   ([`probe::flash_and_run`]: download, reset, defmt over RTT, semihosting exit).
//! - [`Log`]: defmt frames decoded with `defmt-decoder` against the image's symbol table.
//!
//! `cargo xtask test` and `cargo xtask flash` build and call it; it is its own workspace so
//! probe-rs is built once.

pub mod probe;
pub mod qemu;

use anyhow::{bail, Context, Result};
use defmt_decoder::{DecodeError, Locations, StreamDecoder, Table};

/// The defmt table of an image, for decoding its log stream.
pub struct Log {
    table: Table,
    locations: Option<Locations>,
}

impl Log {
    /// Reads the defmt table of an ELF; an image without one is an error.
    pub fn from_elf(elf: &[u8]) -> Result<Log> {
        let Some(table) = Table::parse(elf).context("reading the image's defmt table")? else {
            bail!("the image has no defmt table (not linked with defmt.x?)");
        };
        let locations = table.get_locations(elf).ok().filter(|l| !l.is_empty());
        Ok(Log { table, locations })
    }

    /// A stream decoder that hands each decoded frame to `out` as a text line (level, message,
    /// and `file:line` for warnings and errors).
    pub fn decoder(&self) -> LogStream<'_> {
        LogStream {
            log: self,
            dec: self.table.new_stream_decoder(),
            malformed: 0,
        }
    }
}

/// Decodes a defmt byte stream that arrives in pieces.
pub struct LogStream<'a> {
    log: &'a Log,
    dec: Box<dyn StreamDecoder + Send + Sync + 'a>,
    /// Frames that could not be decoded (corrupt stream).
    pub malformed: u64,
}

impl LogStream<'_> {
    /// Feeds bytes; returns the lines of every frame completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.dec.received(bytes);
        let mut lines = Vec::new();
        loop {
            match self.dec.decode() {
                Ok(frame) => {
                    let mut line = format!("{}", frame.display(false));
                    let loud = matches!(
                        frame.level(),
                        Some(defmt_parser::Level::Warn | defmt_parser::Level::Error)
                    );
                    if let (true, Some(loc)) = (
                        loud,
                        self.log
                            .locations
                            .as_ref()
                            .and_then(|l| l.get(&frame.index())),
                    ) {
                        line += &format!("  ({}:{})", loc.file.display(), loc.line);
                    }
                    lines.push(line);
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => {
                    self.malformed += 1;
                    // rzcobs frames resynchronise at the next frame; raw encodings cannot.
                    if !self.log.table.encoding().can_recover() {
                        lines.push("(defmt stream corrupt: stopped decoding)".into());
                        break;
                    }
                }
            }
        }
        lines
    }
}

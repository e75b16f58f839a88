//! The image's `defmt` log: QEMU writes the PL011 UART's bytes to a file; they are rzcobs
//! frames the image's ELF (its `.defmt` table) decodes.

use std::path::Path;

/// Decodes `uart` (the UART's bytes) with the table of `elf`: one line per log record
/// (`LEVEL timestamp message`). Undecodable input ends the list with a line saying so.
pub fn decode(elf: &Path, uart: &[u8]) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("reading {}: {e}", elf.display()))?;
    let table = defmt_decoder::Table::parse(&bytes)
        .map_err(|e| format!("{}: {e}", elf.display()))?
        .ok_or_else(|| format!("{} has no defmt table", elf.display()))?;
    let mut dec = table.new_stream_decoder();
    dec.received(uart);
    let mut out = Vec::new();
    loop {
        match dec.decode() {
            Ok(f) => {
                let level = f
                    .level()
                    .map_or("-".to_string(), |l| l.as_str().to_uppercase());
                let ts = f
                    .display_timestamp()
                    .map_or(String::new(), |t| format!("{t} "));
                out.push(format!("{level:<5} {ts}{}", f.display_message()));
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => {
                out.push("(malformed defmt frame; rest of the log skipped)".into());
                break;
            }
        }
    }
    Ok(out)
}

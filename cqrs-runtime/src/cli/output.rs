//! Plain tables and JSON documents.

use std::io::Write;

use serde::Serialize;

use super::CliError;

/// Writes `rows` under `headers`, columns padded to their widest cell (the last one not padded).
pub(crate) fn table(
    out: &mut (dyn Write + Send),
    headers: &[&str],
    rows: &[Vec<String>],
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> Result<(), CliError> {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end()).map_err(CliError::io("writing the output"))
    };
    line(&mut headers.iter().copied())?;
    for row in rows {
        line(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Writes `value` as one pretty-printed JSON document and a newline.
pub(crate) fn json<T: Serialize>(out: &mut (dyn Write + Send), value: &T) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out).map_err(CliError::io("writing the output"))
}

/// Writes one line.
pub(crate) fn line(out: &mut (dyn Write + Send), text: &str) -> Result<(), CliError> {
    writeln!(out, "{text}").map_err(CliError::io("writing the output"))
}

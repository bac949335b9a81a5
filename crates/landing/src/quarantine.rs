//! Records that could not be read, and why.

use polars::prelude::*;

use crate::Result;

/// One landing record that was not ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The landing file it came from (relative to its source folder).
    pub source_file: String,
    /// 1-based line number in that file.
    pub line: u64,
    /// The raw text of the record.
    pub raw: String,
    /// Why it was refused.
    pub reason: String,
}

/// The good rows of a landing file and its quarantined records.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Typed rows, one per good record.
    pub rows: DataFrame,
    /// Records that failed, in file order.
    pub quarantined: Vec<Quarantined>,
}

/// Quarantined records as a frame (`table`, `source_file`, `line`, `raw`, `reason`), ready to
/// be stamped with a load time.
pub fn quarantine_frame(table: &str, records: &[Quarantined]) -> Result<DataFrame> {
    let n = records.len();
    Ok(DataFrame::new(
        n,
        vec![
            Column::new("table".into(), vec![table; n]),
            Column::new("source_file".into(), records.iter().map(|r| r.source_file.as_str()).collect::<Vec<_>>()),
            Column::new("line".into(), records.iter().map(|r| r.line as i64).collect::<Vec<_>>()),
            Column::new("raw".into(), records.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>()),
            Column::new("reason".into(), records.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>()),
        ],
    )?)
}

/// Iterates the non-blank lines of a text with their 1-based line numbers.
pub fn numbered_lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// The UTF-8 byte-order mark that spreadsheet exports put at the start of a file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// How much of an oversized record the quarantine keeps.
pub const RAW_PREFIX_BYTES: usize = 1024;

/// A record over `max_bytes` as a quarantined one: its first [`RAW_PREFIX_BYTES`] bytes, and a
/// reason with its length and SHA-256 (to find the original in the landing file).
pub fn oversized(source_file: &str, line: u64, bytes: &[u8], max_bytes: usize, what: &str) -> Quarantined {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Quarantined {
        source_file: source_file.to_string(),
        line,
        raw: String::from_utf8_lossy(&bytes[..bytes.len().min(RAW_PREFIX_BYTES)]).into_owned(),
        reason: format!("{what} of {} bytes is over the limit of {max_bytes} bytes (sha256 {hex})", bytes.len()),
    }
}

/// A line as text, or the quarantine reason when it is not UTF-8.
pub fn utf8_line(bytes: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("line is not valid UTF-8 (at byte {})", e.valid_up_to()))
}

/// An Int64 column of epoch microseconds as a naive (UTC) microsecond datetime column.
pub fn datetime_column(name: &str, micros: Vec<Option<i64>>) -> Result<Column> {
    Ok(micros_column(Int64Chunked::from_iter_options(name.into(), micros.into_iter())))
}

/// Epoch microseconds as a naive (UTC) microsecond datetime column (the same values, labelled:
/// no cast pass).
pub(crate) fn micros_column(micros: Int64Chunked) -> Column {
    micros.into_datetime(TimeUnit::Microseconds, None).into_column()
}

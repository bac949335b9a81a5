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

/// An Int64 column of epoch microseconds as a naive (UTC) microsecond datetime column.
pub fn datetime_column(name: &str, micros: Vec<Option<i64>>) -> Result<Column> {
    Ok(Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?)
}

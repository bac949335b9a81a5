//! The meeting point of Polars and Arrow in fitlake.
//!
//! - [`interop`]: zero-copy conversion between Polars [`DataFrame`](polars::prelude::DataFrame)s
//!   and arrow-rs [`RecordBatch`](arrow::record_batch::RecordBatch)es through the Arrow C Data
//!   Interface, cast to a Delta table's Arrow schema on the way out.
//! - [`merge`]: the pure copy-on-write MERGE planner: new rows plus the affected target rows in,
//!   rows to add and data files to remove out; and the key joins around it (semi and anti
//!   joins on a [`packed_key`](merge::packed_key), stored rows within the [`Spans`](merge::Spans)
//!   of new ones).

pub mod interop;
pub mod merge;
pub mod table;

pub use interop::{frame_schema, from_record_batches, to_record_batches};
pub use merge::{anti_join, by_names, plan_merge, plan_sync, semi_join, sync_changes, MergePlan, FILE_COLUMN};
pub use table::{delta_type_name, TableDef};

/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the frame crate. Every variant is a bug or a schema mismatch, never bad input data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polars refused an operation.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    /// arrow-rs refused an operation.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A frame lacks a column that the target schema requires.
    #[error("column {column:?} is required by the target schema but missing from the frame")]
    MissingColumn {
        /// The missing column.
        column: String,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable plain-text rendering of a frame (a header line naming each column and its type,
/// then one comma-separated line per row), for snapshots and logs: unlike Polars' table format
/// it does not depend on the terminal, and a column whose type changes shows in review.
///
/// ```
/// use fitlake_frame::polars::prelude::*;
/// let df = df!("user_id" => [1i64], "city" => [None::<&str>])?;
/// assert_eq!(fitlake_frame::to_text(&df), "user_id: i64,city: str\n1,null\n");
/// # Ok::<(), PolarsError>(())
/// ```
pub fn to_text(df: &polars::prelude::DataFrame) -> String {
    let mut out = df.columns().iter().map(|c| format!("{}: {}", c.name(), c.dtype())).collect::<Vec<_>>().join(",");
    out.push('\n');
    for i in 0..df.height() {
        let row: Vec<String> = df
            .columns()
            .iter()
            .map(|c| match c.get(i) {
                Ok(polars::prelude::AnyValue::Null) => "null".to_string(),
                Ok(v) => v.get_str().map_or_else(|| v.to_string(), str::to_string),
                Err(_) => "?".to_string(),
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

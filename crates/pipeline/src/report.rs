//! What a run did, per table: printed as a table for people and as one final line (or JSON)
//! for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use polars::prelude::*;
use serde::Serialize;

/// What one step did to its table.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StepReport {
    /// `layer.table`.
    pub table: String,
    /// New source rows the step read.
    pub rows_read: u64,
    /// Rows written to new data files (inserts, updates and rewritten survivors).
    pub rows_written: u64,
    /// Rows inserted by a MERGE (or appended).
    pub inserted: u64,
    /// Rows updated by a MERGE.
    pub updated: u64,
    /// Rows deleted by a MERGE.
    pub deleted: u64,
    /// Records sent to the quarantine table.
    pub quarantined: u64,
    /// Table version after the step (`None` when nothing was committed).
    pub version: Option<i64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl StepReport {
    /// This report followed by `later` (a step committed in parts): counts add up, the
    /// version is the last one committed.
    pub fn then(self, later: StepReport) -> StepReport {
        StepReport {
            table: self.table,
            rows_read: self.rows_read + later.rows_read,
            rows_written: self.rows_written + later.rows_written,
            inserted: self.inserted + later.inserted,
            updated: self.updated + later.updated,
            deleted: self.deleted + later.deleted,
            quarantined: self.quarantined + later.quarantined,
            version: later.version.or(self.version),
            seconds: self.seconds + later.seconds,
        }
    }
}

/// Every step of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Steps in the order they ran.
    pub steps: Vec<StepReport>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

impl RunReport {
    /// Adds a step.
    pub fn push(&mut self, step: StepReport) {
        self.steps.push(step);
    }

    /// Sets the total duration.
    pub fn finish(&mut self, elapsed: Duration) {
        self.seconds = elapsed.as_secs_f64();
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<32} {:>10} {:>10} {:>9} {:>8} {:>8} {:>11} {:>8} {:>8}",
            "table", "read", "written", "inserted", "updated", "deleted", "quarantined", "version", "seconds"
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "{:<32} {:>10} {:>10} {:>9} {:>8} {:>8} {:>11} {:>8} {:>8.3}",
                s.table,
                s.rows_read,
                s.rows_written,
                s.inserted,
                s.updated,
                s.deleted,
                s.quarantined,
                s.version.map_or("-".to_string(), |v| v.to_string()),
                s.seconds
            );
        }
        out
    }

    /// The final line a script can parse: `fitlake-run: ok steps=… rows_read=… rows_written=…
    /// quarantined=… seconds=…`.
    pub fn summary_line(&self) -> String {
        let sum = |f: fn(&StepReport) -> u64| self.steps.iter().map(f).sum::<u64>();
        format!(
            "fitlake-run: ok steps={} rows_read={} rows_written={} quarantined={} seconds={:.3}",
            self.steps.len(),
            sum(|s| s.rows_read),
            sum(|s| s.rows_written),
            sum(|s| s.quarantined),
            self.seconds
        )
    }
}

/// The `fitlake quality` report over `bronze.quality_events`: totals per table and
/// expectation, then the `limit` most recent events (of `table` only, when given), and a final
/// line `fitlake-quality: ok events=… failed_rows=…`.
pub fn quality_report(events: &DataFrame, table: Option<&str>, limit: usize) -> crate::Result<String> {
    let events = match table {
        Some(t) => events.clone().lazy().filter(col("table").eq(lit(t.to_string()))).collect()?,
        None => events.clone(),
    };
    let totals = events
        .clone()
        .lazy()
        .group_by([col("table"), col("expectation"), col("action")])
        .agg([
            col("rows_checked").sum(),
            col("rows_passed").sum(),
            col("rows_failed").sum(),
            col("run_time").max().alias("last_run"),
        ])
        .sort(["table", "expectation"], SortMultipleOptions::default())
        .collect()?;
    let recent = events
        .clone()
        .lazy()
        .sort(["run_time", "table", "expectation"], SortMultipleOptions::default().with_order_descending(true))
        .limit(limit as IdxSize)
        .collect()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<32} {:<6} {:>12} {:>12} {:>10}  last run",
        "table", "expectation", "action", "checked", "passed", "failed"
    );
    for row in rows_of(&totals)? {
        let _ = writeln!(
            out,
            "{:<22} {:<32} {:<6} {:>12} {:>12} {:>10}  {}",
            row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        );
    }
    let _ = writeln!(out, "\nmost recent {} events:", recent.height());
    for row in rows_of(
        &recent.select(
            ["run_time", "table", "expectation", "action", "rows_checked", "rows_failed", "table_version"]
                .map(PlSmallStr::from),
        )?,
    )? {
        let _ = writeln!(
            out,
            "{} {:<22} {:<32} {:<6} checked {:>10} failed {:>8} version {}",
            row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        );
    }
    let failed: i64 = events.column("rows_failed")?.i64()?.sum().unwrap_or(0);
    let _ = writeln!(out, "fitlake-quality: ok events={} failed_rows={failed}", events.height());
    Ok(out)
}

/// The rows of a frame as display strings (nulls as `-`).
fn rows_of(df: &DataFrame) -> crate::Result<Vec<Vec<String>>> {
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        out.push(
            row.0
                .iter()
                .map(|v| match v {
                    AnyValue::Null => "-".to_string(),
                    AnyValue::String(s) => s.to_string(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    Ok(out)
}

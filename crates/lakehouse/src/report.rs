//! What a run did, per table: printed as a table for people and as one final line (or JSON)
//! for scripts.

use std::fmt::Write as _;
use std::time::Duration;

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

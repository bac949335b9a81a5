//! Streaming mode: the steps of the chosen layers as micro-batches on a processing-time
//! trigger, until asked to stop.
//!
//! Each micro-batch is a batch run on what is new (see [`crate::run::run_once`]): every step
//! consumes what its sources committed since the version recorded with its own last commit,
//! so state across micro-batches lives in the Delta tables, not in the process, and a crash
//! loses nothing. A stop request is honoured between micro-batches: the running one finishes
//! and commits first.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fitlake_catalog::TableId;
use fitlake_config::Layer;
use fitlake_storage::FileEntry;
use serde::Serialize;
use tokio::sync::watch;

use crate::maintenance::AutoCompact;
use crate::report::RunReport;
use crate::steps::{bronze, Context};
use crate::Result;

/// How the stream is paced and stamped.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Time from the start of one micro-batch to the start of the next (the next starts at once
    /// when a micro-batch takes longer).
    pub trigger: Duration,
    /// The as-of date given on the command line; `None` follows the UTC date of each micro-batch.
    pub fixed_as_of: Option<chrono::NaiveDate>,
    /// Compaction after a micro-batch of the tables it wrote that gathered many small files
    /// (`None`: off). A stream at a 1 s trigger otherwise adds a file per table and second.
    pub auto_compact: Option<AutoCompact>,
}

/// What one micro-batch did.
#[derive(Debug, Clone, Serialize)]
pub struct MicroBatch {
    /// Micro-batch number in this process, from 1.
    pub number: u64,
    /// The steps' reports.
    pub report: RunReport,
    /// Landing files not yet committed to bronze when the micro-batch ended.
    pub backlog: bronze::Backlog,
    /// Seconds since the oldest landing file not yet in bronze landed (0 when none is waiting).
    pub lag_seconds: f64,
    /// For each landing file this micro-batch committed: seconds from the file landing to the
    /// end of the micro-batch, when its rows had gone through every layer this runner runs.
    pub landing_latencies: Vec<f64>,
}

impl MicroBatch {
    /// The status line: `fitlake-stream: batch=… seconds=… rows_in=… rows_out=… pending_files=…
    /// lag_seconds=… latency_max_seconds=… tables=<table>:<in>><out>,…` (tables with no rows in
    /// or out are left out).
    pub fn status_line(&self) -> String {
        let steps = &self.report.steps;
        let tables: Vec<String> = steps
            .iter()
            .filter(|s| s.rows_read > 0 || s.rows_written > 0)
            .map(|s| format!("{}:{}>{}", s.table, s.rows_read, s.rows_written))
            .collect();
        format!(
            "fitlake-stream: batch={} seconds={:.3} rows_in={} rows_out={} pending_files={} lag_seconds={:.3} \
             latency_max_seconds={:.3} tables={}",
            self.number,
            self.report.seconds,
            steps.iter().map(|s| s.rows_read).sum::<u64>(),
            steps.iter().map(|s| s.rows_written).sum::<u64>(),
            self.backlog.files,
            self.lag_seconds,
            self.landing_latencies.iter().copied().fold(0.0, f64::max),
            if tables.is_empty() { "-".to_string() } else { tables.join(",") }
        )
    }
}

/// The landing files of every bronze table, committed or pending.
async fn landing_files(ctx: &Context) -> Result<bronze::LandingState> {
    let mut all = bronze::LandingState::default();
    for table in TableId::INGESTED {
        let state = bronze::landing_state(ctx, table).await?;
        all.committed.extend(
            state.committed.into_iter().map(|f| FileEntry { name: format!("{}/{}", table.name(), f.name), ..f }),
        );
        all.pending.extend(state.pending);
    }
    Ok(all)
}

fn seconds_between(from_micros: i64, to_micros: i64) -> f64 {
    (to_micros - from_micros).max(0) as f64 / 1e6
}

/// Runs micro-batches of `layers` until `stop` turns true; calls `on_batch` after each.
/// Returns the number of micro-batches run. An error ends the stream (after the last
/// committed micro-batch, so a restart resumes where it stopped).
pub async fn run_stream(
    mut ctx: Context,
    layers: &[Layer],
    options: &StreamOptions,
    mut stop: watch::Receiver<bool>,
    mut on_batch: impl FnMut(&MicroBatch),
) -> Result<u64> {
    let mut number = 0;
    let mut committed: HashSet<String> = landing_files(&ctx).await?.committed.into_iter().map(|f| f.name).collect();
    ctx.options.streaming = true;
    while !*stop.borrow() {
        let started = Instant::now();
        let now = chrono::Utc::now();
        ctx.options.load_time_micros = now.timestamp_micros();
        ctx.options.as_of = options.fixed_as_of.unwrap_or_else(|| now.date_naive());
        number += 1;
        let report = crate::run::run_once(&ctx, layers).await?;
        if let Some(auto) = &options.auto_compact {
            crate::maintenance::auto_compact(&ctx, &report, auto).await?;
        }
        let ended = chrono::Utc::now().timestamp_micros();
        let files = landing_files(&ctx).await?;
        let backlog = files.backlog();
        let lag_seconds = backlog.oldest_landed_micros.map_or(0.0, |t| seconds_between(t, ended));
        let mut landing_latencies = Vec::new();
        for file in files.committed {
            if !committed.contains(&file.name) {
                landing_latencies.push(seconds_between(file.modified_micros, ended));
                committed.insert(file.name);
            }
        }
        on_batch(&MicroBatch { number, report, backlog, lag_seconds, landing_latencies });
        let next = tokio::time::Instant::from_std(started + options.trigger);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            Ok(_) = stop.wait_for(|stopped| *stopped) => {}
        }
    }
    Ok(number)
}

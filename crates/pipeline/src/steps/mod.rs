//! One incremental step per table. Each step reads what is new in its sources, calls its
//! layer's pure transform, and commits the result together with its progress (see
//! [`crate::progress`]), so that a crash at any point and a rerun neither lose nor duplicate
//! anything.

pub mod bronze;
pub mod gold;
pub mod quality;
pub mod silver;

use std::time::Instant;

use fitlake_catalog::TableId;
use fitlake_storage::{DataFile, Table};
use polars::prelude::*;

pub use crate::context::Context;
use crate::context::RunOptions;
use crate::meter::Meter;
use crate::progress::app_id;
use crate::report::StepReport;
use crate::Error;
use crate::Result;
use fitlake_quality::Expectations;

/// An upstream Delta table of a step, with how far the step has consumed it.
pub struct Source {
    /// The upstream table at its current version.
    pub table: Table,
    /// The `txn` application id of this (target, source) pair.
    pub app_id: String,
    /// The source version consumed by the last committed run, if any.
    pub from: Option<i64>,
}

/// What the step of one table receives, and all it can reach: its source tables as the
/// catalog declares them ([`TableId::sources`]), the tables its expectations reference, the
/// quarantine, the run's options (its clock: the as-of date and the load time), the
/// data-quality sink and the progress meter. The target table is passed beside it (`&mut`).
/// A step that asks for a table it does not declare gets an error saying it is a bug: the
/// catalog's dependency graph, which orders the run, is the one the steps follow.
#[derive(Clone, Copy)]
pub struct StepEnv<'a> {
    ctx: &'a Context,
    table: TableId,
}

impl<'a> StepEnv<'a> {
    /// The environment of `table`'s step in the run `ctx`.
    pub fn new(ctx: &'a Context, table: TableId) -> StepEnv<'a> {
        StepEnv { ctx, table }
    }

    /// The table the step writes.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// The run's options: as-of date, load time, memory budget.
    pub fn options(&self) -> &'a RunOptions {
        &self.ctx.options
    }

    /// Where the step says how far it is.
    pub fn meter(&self) -> &'a dyn Meter {
        self.ctx.meter()
    }

    /// The step's source `source`, with how far `target` has consumed it.
    pub async fn source(&self, target: &Table, source: TableId) -> Result<Source> {
        if !self.table.sources().contains(&source) {
            return Err(Error::Internal(
                format!(
                    "bug: the step of {} reads {source}, which the catalog does not list as its source",
                    self.table
                )
                .into(),
            ));
        }
        Source::open(self.ctx, target, source).await
    }

    /// The quarantine table.
    pub async fn quarantine(&self) -> Result<Table> {
        self.ctx.open(TableId::Quarantine).await
    }

    /// `bronze.date_lookup`, the calendar bronze stamps multiplex rows with.
    pub(crate) async fn calendar(&self) -> Result<Table> {
        self.ctx.open(TableId::DateLookup).await
    }

    /// The data-quality expectations of the run.
    pub(crate) fn expectations(&self) -> &'a Expectations {
        self.ctx.expectations()
    }

    /// A table the step's expectations reference (`reference` expectations).
    pub(crate) async fn referenced(&self, table: TableId) -> Result<Table> {
        let declared = self.expectations().references_of(self.table.name()).iter().any(|(t, _)| *t == table.name());
        if !declared {
            return Err(Error::Internal(
                format!("bug: the step of {} reads {table}, which none of its expectations references", self.table)
                    .into(),
            ));
        }
        self.ctx.open(table).await
    }

    /// The run whose quality outcomes the step records.
    pub(crate) fn run(&self) -> &'a Context {
        self.ctx
    }
}

impl Source {
    /// Opens `source` as an upstream of `target`.
    async fn open(ctx: &Context, target: &Table, source: TableId) -> Result<Source> {
        let table = ctx.open(source).await?;
        let app_id = app_id(target.id(), source.name());
        let from = target.progress(&app_id).await?;
        Ok(Source { table, app_id, from })
    }

    /// The version this run consumes up to.
    pub fn to(&self) -> i64 {
        self.table.version()
    }

    /// True when the source has commits the target has not consumed.
    pub fn moved(&self) -> bool {
        self.from != Some(self.to())
    }

    /// True when the source's unconsumed commits added or removed rows (not only progress).
    pub async fn data_changed(&self) -> Result<bool> {
        Ok(self.moved() && self.table.data_changed_since(self.from).await?)
    }

    /// The progress to commit with the target: consumed up to [`Source::to`].
    pub fn txn(&self) -> (String, i64) {
        (self.app_id.clone(), self.to())
    }

    /// Files the source added since the consumed version, optionally only those of one
    /// partition value, with ranges of `stats_column`.
    pub async fn new_files(
        &self,
        partition: Option<(&str, &str)>,
        stats_column: Option<&str>,
    ) -> Result<Vec<DataFile>> {
        let files = self.table.files_added_since(self.from, stats_column).await?;
        Ok(match partition {
            None => files,
            Some((column, value)) => files
                .into_iter()
                .filter(|f| f.partition_values.get(column).cloned().flatten().as_deref() == Some(value))
                .collect(),
        })
    }

    /// The rows the source added since the consumed version.
    pub async fn new_rows(&self, partition: Option<(&str, &str)>) -> Result<DataFrame> {
        let files = self.new_files(partition, None).await?;
        Ok(self.table.scan().files(files).collect().await?)
    }
}

/// `files` in order, in groups of at most `bytes` (a larger file is a group of its own): the
/// parts a step takes its new input in, so its memory follows the group, not the input.
pub fn in_groups(files: Vec<DataFile>, bytes: u64) -> Vec<Vec<DataFile>> {
    let mut groups: Vec<Vec<DataFile>> = Vec::new();
    let mut size = 0u64;
    for file in files {
        let file_size = file.size.max(0) as u64;
        match groups.last_mut() {
            Some(group) if size + file_size <= bytes => group.push(file),
            _ => {
                groups.push(vec![file]);
                size = 0;
            }
        }
        size += file_size;
    }
    groups
}

/// Files whose `range` overlaps `[lo, hi]` (files without stats are kept).
pub fn overlapping(files: Vec<DataFile>, lo: i64, hi: i64) -> Vec<DataFile> {
    files.into_iter().filter(|f| f.range.is_none_or(|(min, max)| max >= lo && min <= hi)).collect()
}

/// The smallest and largest value of a datetime or integer column, as integers.
pub fn range_of(df: &DataFrame, column: &str) -> Result<Option<(i64, i64)>> {
    if df.height() == 0 {
        return Ok(None);
    }
    let values = df.column(column)?.to_physical_repr().cast(&DataType::Int64)?;
    let values = values.i64()?;
    Ok(values.min().zip(values.max()))
}

/// Times a step and fills in the common parts of its report.
pub struct StepTimer {
    started: Instant,
    table: String,
}

impl StepTimer {
    /// Starts timing the step of `table` (`what` says where it reads from, when not obvious).
    pub fn start(table: TableId, what: Option<&str>) -> Self {
        let table = match what {
            Some(what) => format!("{table} ({what})"),
            None => table.to_string(),
        };
        tracing::info!(step = %table, "step started");
        Self { started: Instant::now(), table }
    }

    /// The report with the table name and duration filled in.
    pub fn report(&self, fill: impl FnOnce(&mut StepReport)) -> StepReport {
        let mut report = StepReport { table: self.table.clone(), ..Default::default() };
        fill(&mut report);
        report.seconds = self.started.elapsed().as_secs_f64();
        report
    }
}

/// Runs the step of `table` on what is new: the one place that says which function updates
/// which table (each named after its table).
pub async fn run_step_of(ctx: &Context, table: TableId) -> Result<StepReport> {
    use TableId::*;
    if let RegisteredUsersBz | GymLoginsBz | KafkaMultiplexBz = table {
        return bronze::run(ctx, table).await;
    }
    let timer = StepTimer::start(table, None);
    let mut target = ctx.open(table).await?;
    let (env, t) = (&StepEnv::new(ctx, table), &mut target);
    let report = match table {
        Users => silver::users(env, t).await?,
        GymLogs => silver::gym_logs(env, t).await?,
        UserProfile => silver::user_profile(env, t).await?,
        Workouts => silver::timed_events(env, t, fitlake_landing::topics::WORKOUT, fitlake_silver::workouts).await?,
        HeartRate => silver::heart_rate(env, t).await?,
        UserBins => silver::user_bins(env, t).await?,
        CompletedWorkouts => silver::completed_workouts(env, t).await?,
        WorkoutBpm => silver::workout_bpm(env, t).await?,
        WorkoutBpmSummary => gold::workout_bpm_summary(env, t).await?,
        GymSummary => gold::gym_summary(env, t).await?,
        // Loaded by setup, or written by the steps of other tables.
        RegisteredUsersBz | GymLoginsBz | KafkaMultiplexBz | DateLookup | LandingFiles | Quarantine | QualityEvents => {
            return Err(Error::Internal(format!("{table} has no step of its own").into()))
        }
    };
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

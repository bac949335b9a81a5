//! One incremental step per table. Each step reads what is new in its sources, calls its
//! layer's pure transform, and commits the result together with its progress (see
//! [`crate::progress`]), so that a crash at any point and a rerun neither lose nor duplicate
//! anything.

pub mod bronze;
pub mod gold;
pub mod quality;
pub mod silver;

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use fitlake_config::Lakehouse;
use fitlake_frame::TableDef;
use fitlake_quality::Expectations;
use polars::prelude::*;

use crate::access::Access;
use crate::delta::{DataFile, Table};
use crate::postgres::PgSource;
use crate::progress::{app_id, PlanCache};
use crate::report::StepReport;
use crate::{Error, Result};

/// What every step needs to know about the run.
#[derive(Debug, Clone)]
pub struct Context {
    /// The lakehouse.
    pub lakehouse: Lakehouse,
    /// Who the run is for; every table and zone access asks it.
    pub access: Access,
    /// The data-quality expectations the steps check before they commit.
    pub expectations: Arc<Expectations>,
    /// The date ages are computed at.
    pub as_of: NaiveDate,
    /// The run's load time, epoch microseconds (stamped on bronze rows).
    pub load_time_micros: i64,
    /// Threads for parsing.
    pub threads: usize,
    /// Most landing bytes one bronze batch takes (at least one file is always taken).
    pub max_batch_bytes: u64,
    /// Print a line as each step starts.
    pub verbose: bool,
    /// Streaming mode: a bronze step takes at most one batch (of `max_batch_bytes`) per
    /// micro-batch, like Spark's `maxBytesPerTrigger`, so downstream tables follow sooner.
    pub streaming: bool,
    /// The operational database, when registrations and gym logins come from it instead of
    /// landing files.
    pub postgres: Option<PgSource>,
    /// The Kafka cluster, when the multiplex comes from its topics instead of landing files.
    pub kafka: Option<crate::kafka::KafkaSource>,
    /// Data-quality outcomes of this run, written when it ends.
    pub events: quality::PendingEvents,
    /// Bronze batch plans this process has read (shared by its micro-batches).
    pub plans: PlanCache,
    /// Take each table's lock file before its step, so concurrent runners on a local lakehouse
    /// take turns per table instead of racing to commit (see [`crate::lock`]).
    pub table_locks: bool,
}

/// The definition of a table by name, from any layer.
pub fn table_def(name: &str) -> Result<TableDef> {
    all_tables().into_iter().find(|t| t.name == name).ok_or_else(|| Error::Config(format!("unknown table {name:?}")))
}

/// Every managed table, bronze to gold.
pub fn all_tables() -> Vec<TableDef> {
    let mut all = fitlake_bronze::tables();
    all.extend(fitlake_silver::tables());
    all.extend(fitlake_gold::tables());
    all
}

/// Opens a table by name.
pub async fn open(ctx: &Context, name: &str) -> Result<Table> {
    Table::open(&ctx.access, &table_def(name)?).await
}

/// An upstream Delta table of a step, with how far the step has consumed it.
pub struct Source {
    /// The upstream table at its current version.
    pub table: Table,
    /// The `txn` application id of this (target, source) pair.
    pub app_id: String,
    /// The source version consumed by the last committed run, if any.
    pub from: Option<i64>,
}

impl Source {
    /// Opens `source` as an upstream of `target`.
    pub async fn open(ctx: &Context, target: &Table, source: &str) -> Result<Source> {
        let table = open(ctx, source).await?;
        let app_id = app_id(target.def.name, source);
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
        self.table.read(&files, None, false).await
    }
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
    /// Starts timing the step of `table`.
    pub fn start(ctx: &Context, table: &str) -> Self {
        if ctx.verbose {
            eprintln!("fitlake: {table} ...");
        }
        Self { started: Instant::now(), table: table.to_string() }
    }

    /// The report with the table name and duration filled in.
    pub fn report(&self, fill: impl FnOnce(&mut StepReport)) -> StepReport {
        let mut report = StepReport { table: self.table.clone(), ..Default::default() };
        fill(&mut report);
        report.seconds = self.started.elapsed().as_secs_f64();
        report
    }
}

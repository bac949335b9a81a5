//! What a run is configured with: who it runs as, its expectations, its record sources and
//! its options. Time enters only here, as arguments ([`RunOptions::as_of`],
//! [`RunOptions::load_time_micros`]): the steps never read a clock.

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use fitlake_catalog::TableId;
use fitlake_quality::Expectations;
use fitlake_sources::RecordSource;
use fitlake_storage::{Access, Table};

use fitlake_quality::Outcome;

use crate::progress::PlanCache;
use crate::Result;

/// How a run runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The date ages are computed at.
    pub as_of: NaiveDate,
    /// The run's load time, epoch microseconds (stamped on bronze rows and quality events).
    pub load_time_micros: i64,
    /// Threads for parsing.
    pub threads: usize,
    /// Most landing bytes one bronze batch takes (at least one file is always taken).
    pub max_batch_bytes: u64,
    /// Take each table's lock file before its step, so concurrent runners on a local lakehouse
    /// take turns per table instead of racing to commit (see [`fitlake_storage::lock`]).
    pub table_locks: bool,
    /// Streaming mode: a bronze step takes at most one batch (of `max_batch_bytes`) per
    /// micro-batch, like Spark's `maxBytesPerTrigger`, so downstream tables follow sooner.
    pub streaming: bool,
}

impl RunOptions {
    /// Batch-mode options at `as_of`, loading at `load_time_micros`: one parsing thread per
    /// core, batches of up to 1 GiB, table locks on.
    pub fn new(as_of: NaiveDate, load_time_micros: i64) -> RunOptions {
        RunOptions {
            as_of,
            load_time_micros,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_batch_bytes: 1 << 30,
            table_locks: true,
            streaming: false,
        }
    }
}

/// What every step of a run may use.
#[derive(Debug, Clone)]
pub struct Context {
    access: Access,
    expectations: Arc<Expectations>,
    sources: Vec<Arc<dyn RecordSource>>,
    /// The run's options.
    pub options: RunOptions,
    /// Data-quality outcomes of this run, written when it ends.
    pub(crate) events: PendingEvents,
    /// Bronze batch plans this process has read (shared by its micro-batches).
    pub(crate) plans: PlanCache,
}

impl Context {
    /// A run as `access`'s principal, checking `expectations`, with `options`; bronze reads
    /// landing files until [`Context::with_source`] adds a source.
    pub fn new(access: Access, expectations: Expectations, options: RunOptions) -> Context {
        Context {
            access,
            expectations: Arc::new(expectations),
            sources: Vec::new(),
            options,
            events: Default::default(),
            plans: Default::default(),
        }
    }

    /// The same run, with `source` feeding the bronze tables it feeds instead of landing files.
    pub fn with_source(mut self, source: Arc<dyn RecordSource>) -> Context {
        self.sources.push(source);
        self
    }

    /// Who the run is for; every table and zone access asks it.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The lakehouse.
    pub fn lakehouse(&self) -> &fitlake_config::Lakehouse {
        &self.access.lakehouse
    }

    /// The data-quality expectations the steps check before they commit.
    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }

    /// The source feeding the bronze table `table`, when it is not landing files.
    pub fn source_of(&self, table: TableId) -> Option<&Arc<dyn RecordSource>> {
        self.sources.iter().find(|s| s.feeds(table.name()))
    }

    /// Opens a table.
    pub async fn open(&self, table: TableId) -> Result<Table> {
        Ok(Table::open(&self.access, table).await?)
    }
}

/// The outcomes of the steps of one run, written to `bronze.quality_events` in one commit when
/// the run ends (one small file per run rather than per step keeps the log cheap to open in a
/// long stream).
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingEvents(pub(crate) Arc<Mutex<Vec<StepOutcomes>>>);

/// The outcomes of one step commit: table, outcomes, committed version.
pub(crate) type StepOutcomes = (TableId, Vec<Outcome>, Option<i64>);

impl PendingEvents {
    pub(crate) fn take(&self) -> Vec<StepOutcomes> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

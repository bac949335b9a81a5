//! What a run is configured with: who it runs as, its expectations, its record sources and
//! its options. Time enters only here, as arguments ([`RunOptions::as_of`],
//! [`RunOptions::load_time_micros`]): the steps never read a clock.

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use fitlake_catalog::TableId;
use fitlake_landing::{ReadOptions, TimeWindow};
use fitlake_quality::Expectations;
use fitlake_sources::RecordSource;
use fitlake_storage::{Access, Table};

use fitlake_quality::Outcome;

use crate::meter::{Meter, NoMeter};
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
    /// Event times outside this window are quarantined.
    pub window: TimeWindow,
    /// A landing line (or CSV record) longer than this is quarantined.
    pub max_line_bytes: usize,
    /// A landing file modified less than this long before the run's load time waits for a
    /// later batch (a writer may still be appending to it), microseconds.
    pub min_file_age_micros: i64,
    /// A landing file larger than this is quarantined whole (its prefix and SHA-256), never
    /// read into memory.
    pub max_file_bytes: u64,
    /// About how much memory the large steps aim to stay within, whatever the size of their
    /// input: landing files are parsed in chunks of a 32nd of it, and the silver and gold steps
    /// fed by readings take their new input in groups of files of a 16th of it.
    pub memory_budget: u64,
}

impl RunOptions {
    /// Batch-mode options at `as_of`, loading at `load_time_micros`: one parsing thread per
    /// core, batches of up to 1 GiB, table locks on, times from 2000 to 2100, lines of at most
    /// 1 MiB, files of at most 2 GiB.
    pub fn new(as_of: NaiveDate, load_time_micros: i64) -> RunOptions {
        RunOptions {
            as_of,
            load_time_micros,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_batch_bytes: 1 << 30,
            table_locks: true,
            streaming: false,
            window: TimeWindow::default(),
            max_line_bytes: ReadOptions::default().max_line_bytes,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            min_file_age_micros: 0,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }

    /// Bytes of whole landing lines parsed and written at a time.
    pub fn landing_chunk_bytes(&self) -> usize {
        (self.memory_budget / 32).max(1 << 20) as usize
    }

    /// Bytes of source data files a step that reads readings takes at a time.
    pub fn group_bytes(&self) -> u64 {
        (self.memory_budget / 16).max(1)
    }

    /// How landing records are read in this run.
    pub fn read(&self) -> ReadOptions {
        ReadOptions { window: self.window, max_line_bytes: self.max_line_bytes, threads: self.threads }
    }
}

/// The default memory budget: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

/// Largest landing file read by default: 2 GiB (real files are 100-300 MB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 << 30;

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
    meter: Arc<dyn Meter>,
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
            meter: Arc::new(NoMeter),
        }
    }

    /// The same run, its long steps reporting how far they are to `meter`.
    pub fn with_meter(mut self, meter: Arc<dyn Meter>) -> Context {
        self.meter = meter;
        self
    }

    /// Where long steps say how far they are.
    pub fn meter(&self) -> &dyn Meter {
        self.meter.as_ref()
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

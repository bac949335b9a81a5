//! How incremental steps remember what they have processed, exactly once.
//!
//! - A step whose sources are Delta tables records, in the same commit as its output, one
//!   `txn` action per source: application id `fitlake/<target>/<source>`, version = the source
//!   table version it has consumed. New input is what the source committed after that version.
//! - Bronze reads files, not tables. Like Spark's offset log, it first records the batch plan
//!   (the landing files of batch `n`) in the Delta table `bronze.landing_files`, with `txn`
//!   `fitlake/landing_files/<table>` = `n`, then commits the batch's rows with `txn` version `n`.
//!   After a crash, a plan without its commit is redone with exactly the same files; files
//!   listed in committed plans are never read again. A plan is recorded only if none exists
//!   for its batch (the `txn` says), and of two runners racing for batch `n` the second's
//!   commit conflicts and it takes the first's plan. Progress thus lives in the Delta tables
//!   alone: the pipeline only reads the checkpoint zone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use fitlake_catalog::TableId;
use fitlake_storage::{Access, Table};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Result;

/// The `txn` application id under which `target` records its progress through `source` (an
/// upstream table's name, or a source and stream such as `kafka/bpm/0`).
pub fn app_id(target: TableId, source: &str) -> String {
    format!("fitlake/{}/{source}", target.name())
}

fn plan_error(message: String) -> crate::Error {
    fitlake_storage::Error::Checkpoint { location: TableId::LandingFiles.qualified_name(), message }.into()
}

/// The landing files of one bronze batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    /// Batch number, the `txn` version of its commit.
    pub batch: i64,
    /// Landing files, relative to the source folder.
    pub files: Vec<String>,
    /// Size and modification time of each file when it was planned (plans recorded before
    /// fitlake kept them have none).
    #[serde(default)]
    pub stamps: BTreeMap<String, FileStamp>,
}

/// What a landing file was when a plan took it: a file whose stamp differs later has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, epoch microseconds.
    pub modified_micros: i64,
}

impl BatchPlan {
    /// A plan of `files` (name, stamp) for batch `batch`.
    pub fn new(batch: i64, files: impl IntoIterator<Item = (String, Option<FileStamp>)>) -> BatchPlan {
        let mut plan = BatchPlan { batch, files: Vec::new(), stamps: BTreeMap::new() };
        for (name, stamp) in files {
            if let Some(stamp) = stamp {
                plan.stamps.insert(name.clone(), stamp);
            }
            plan.files.push(name);
        }
        plan
    }
}

/// Plans already read by this process, of every bronze table, with the `landing_files` version
/// they were read at (the table is append-only, so later versions only add plans). One read
/// serves the three bronze steps of a run: each used to read the whole log for its own rows.
#[derive(Debug, Clone)]
pub struct PlanCache(Arc<Mutex<(i64, HashMap<String, Plans>)>>);

impl Default for PlanCache {
    /// Nothing read yet (no version, not even the table's first).
    fn default() -> Self {
        PlanCache(Arc::new(Mutex::new((-1, HashMap::new()))))
    }
}

impl PlanCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, (i64, HashMap<String, Plans>)> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Plans by batch number.
pub type Plans = BTreeMap<i64, BatchPlan>;

/// The plans of one bronze table, in `bronze.landing_files`.
#[derive(Debug, Clone)]
pub struct PlanLog {
    access: Access,
    cache: PlanCache,
    table: TableId,
}

impl PlanLog {
    /// The plan log of bronze table `table`, remembering plans in `cache`.
    pub fn new(access: &Access, cache: PlanCache, table: TableId) -> Self {
        Self { access: access.clone(), cache, table }
    }

    async fn open(&self) -> Result<Table> {
        Ok(Table::open(&self.access, TableId::LandingFiles).await?)
    }

    fn app_id(&self) -> String {
        app_id(TableId::LandingFiles, self.table.name())
    }

    /// Every recorded plan by batch number.
    pub async fn load(&self) -> Result<BTreeMap<i64, BatchPlan>> {
        let log = self.open().await?;
        let since = {
            let cache = self.cache.lock();
            if cache.0 >= log.version() {
                return Ok(cache.1.get(self.table.name()).cloned().unwrap_or_default());
            }
            cache.0
        };
        let files = log.files_added_since((since >= 0).then_some(since), None).await?;
        let rows = log
            .scan()
            .files(files)
            .collect()
            .await?
            .lazy()
            .sort(["table", "batch", "position"], SortMultipleOptions::default())
            .collect()?;
        let tables = rows.column("table")?.str()?;
        let batches = rows.column("batch")?.i64()?;
        let names = rows.column("file")?.str()?;
        let sizes = rows.column("size")?.i64()?;
        let modified = rows.column("modified")?.to_physical_repr();
        let modified = modified.i64()?;
        let mut read: HashMap<&str, Plans> = HashMap::new();
        for (i, ((table, batch), file)) in tables.iter().zip(batches.iter()).zip(names.iter()).enumerate() {
            let (Some(table), Some(batch), Some(file)) = (table, batch, file) else {
                return Err(plan_error("a plan row of bronze.landing_files has no table, batch or file".to_string()));
            };
            let plan = read.entry(table).or_default().entry(batch).or_insert_with(|| BatchPlan::new(batch, []));
            plan.files.push(file.to_string());
            if let (Some(size), Some(modified_micros)) = (sizes.get(i), modified.get(i)) {
                plan.stamps.insert(file.to_string(), FileStamp { size: size.max(0) as u64, modified_micros });
            }
        }
        let mut cache = self.cache.lock();
        // Another load may have taken some of these commits in meanwhile: a batch's plan is
        // recorded whole in one commit, so a batch already kept is the same plan.
        for (table, plans) in read {
            let kept = cache.1.entry(table.to_string()).or_default();
            for (batch, plan) in plans {
                kept.entry(batch).or_insert(plan);
            }
        }
        cache.0 = cache.0.max(log.version());
        Ok(cache.1.get(self.table.name()).cloned().unwrap_or_default())
    }

    /// Records a plan unless one is recorded for its batch already (by a run that crashed
    /// before committing it, or by another runner); returns the plan that is recorded.
    pub async fn write(&self, plan: &BatchPlan) -> Result<BatchPlan> {
        let mut log = self.open().await?;
        let recorded = |plans: BTreeMap<i64, BatchPlan>| {
            plans.get(&plan.batch).cloned().ok_or_else(|| {
                plan_error(format!("batch {} of {} is recorded as planned but has no files", plan.batch, self.table))
            })
        };
        if log.progress(&self.app_id()).await?.is_some_and(|done| done >= plan.batch) {
            return recorded(self.load().await?);
        }
        let n = plan.files.len();
        let rows = DataFrame::new(
            n,
            vec![
                Column::new("table".into(), vec![self.table.name(); n]),
                Column::new("batch".into(), vec![plan.batch; n]),
                Column::new("position".into(), (0..n as i64).collect::<Vec<_>>()),
                Column::new("file".into(), plan.files.iter().map(String::as_str).collect::<Vec<_>>()),
                Column::new(
                    "size".into(),
                    plan.files.iter().map(|f| plan.stamps.get(f).map(|s| s.size as i64)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "modified".into(),
                    plan.files.iter().map(|f| plan.stamps.get(f).map(|s| s.modified_micros)).collect::<Vec<_>>(),
                )
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?,
            ],
        )?;
        match log.commit().rows(&rows).progress([(self.app_id(), plan.batch)]).await {
            Ok(_) => Ok(plan.clone()),
            Err(e) if e.is_commit_conflict() => recorded(self.load().await?),
            Err(e) => Err(e.into()),
        }
    }
}

//! How incremental steps remember what they have processed, exactly once.
//!
//! - A step whose sources are Delta tables records, in the same commit as its output, one
//!   `txn` action per source: application id `fitlake/<target>/<source>`, version = the source
//!   table version it has consumed. New input is what the source committed after that version.
//! - Bronze reads files, not tables. Like Spark's offset log, it first writes the batch plan
//!   (the list of landing files of batch `n`) to the checkpoint zone, then commits the batch's
//!   rows with `txn` version `n`. After a crash, a plan without its commit is redone with
//!   exactly the same files; files listed in committed plans are never read again. Plans are
//!   written only if absent, so two runners racing for batch `n` end up with one plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::storage::Folder;
use crate::{Error, Result};

/// The `txn` application id under which `target` records its progress through `source`.
pub fn app_id(target: &str, source: &str) -> String {
    format!("fitlake/{target}/{source}")
}

/// The landing files of one bronze batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    /// Batch number, the `txn` version of its commit.
    pub batch: i64,
    /// Landing files, relative to the source folder.
    pub files: Vec<String>,
}

/// Plans already read by this process, by plan log URL. Plans never change once written, so a
/// streaming runner reads each one once instead of every micro-batch.
#[derive(Debug, Clone, Default)]
pub struct PlanCache(Arc<Mutex<HashMap<String, BTreeMap<i64, BatchPlan>>>>);

/// The plans of one bronze table, in `checkpoint_zone/bronze/<table>/offsets/`.
#[derive(Debug, Clone)]
pub struct PlanLog {
    folder: Folder,
    cache: PlanCache,
}

impl PlanLog {
    /// The plan log in `folder`, remembering plans in `cache`.
    pub fn new(folder: Folder, cache: PlanCache) -> Self {
        Self { folder, cache }
    }

    fn cached(&self) -> BTreeMap<i64, BatchPlan> {
        let cache = self.cache.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(self.folder.url().as_str()).cloned().unwrap_or_default()
    }

    fn remember(&self, plans: &BTreeMap<i64, BatchPlan>) {
        let mut cache = self.cache.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.insert(self.folder.url().to_string(), plans.clone());
    }

    /// Every stored plan by batch number.
    pub async fn load(&self) -> Result<BTreeMap<i64, BatchPlan>> {
        let mut plans = self.cached();
        for entry in self.folder.list().await? {
            let Ok(batch) = entry.name.parse::<i64>() else { continue };
            if plans.contains_key(&batch) {
                continue;
            }
            let bytes = self.folder.read(&entry.name).await?;
            let plan: BatchPlan = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
                location: format!("{}{}", self.folder.url(), entry.name),
                message: e.to_string(),
            })?;
            if plan.batch != batch {
                return Err(Error::Checkpoint {
                    location: format!("{}{}", self.folder.url(), entry.name),
                    message: format!("holds batch {} under the name of batch {batch}", plan.batch),
                });
            }
            plans.insert(batch, plan);
        }
        self.remember(&plans);
        Ok(plans)
    }

    /// Stores a plan (atomically) unless another runner stored one for the same batch first;
    /// returns the plan that is now stored.
    pub async fn write(&self, plan: &BatchPlan) -> Result<BatchPlan> {
        let bytes = serde_json::to_vec_pretty(plan).map_err(|e| Error::Internal(e.to_string()))?;
        if self.folder.create(&plan.batch.to_string(), bytes).await? {
            return Ok(plan.clone());
        }
        self.load().await?.remove(&plan.batch).ok_or_else(|| Error::Checkpoint {
            location: format!("{}{}", self.folder.url(), plan.batch),
            message: "exists but could not be read back".into(),
        })
    }
}

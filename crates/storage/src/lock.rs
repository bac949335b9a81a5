//! Table locks: concurrent runners on one lakehouse take turns per table.
//!
//! Correctness never depends on them: every step commits its output together with its
//! progress (`txn` actions), so of two runners that processed the same input, Delta's conflict
//! checker lets only the first commit in and the second retries from the new state (the
//! pipeline's `run_step`). The locks only save the second runner that wasted work. On a local
//! lakehouse a lock is an OS file lock on `<table>/_fitlake.lock` (Delta ignores files whose
//! name starts with `_`), released by the kernel when its process ends, even by `kill -9`.
//! Object stores have no such lock; there the optimistic path alone applies.

use std::fs::{File, OpenOptions, TryLockError};
use std::time::Duration;

use fitlake_catalog::TableId;
use fitlake_config::Lakehouse;

use crate::{Error, Result};

/// How often a runner waiting for a table checks the lock again.
const POLL: Duration = Duration::from_millis(20);

/// A held table lock; dropping it releases the table.
#[derive(Debug)]
pub struct TableLock {
    _file: File,
}

impl TableLock {
    /// Waits until this process holds `table`'s lock in `lakehouse`. `None` when the lakehouse
    /// is not on a local file system (or the table is not set up: its step says so).
    pub async fn acquire(lakehouse: &Lakehouse, table: TableId) -> Result<Option<TableLock>> {
        let url = lakehouse.table_url(table.layer(), table.name());
        let Some(dir) = fitlake_config::local_path(&url) else {
            return Ok(None);
        };
        if !dir.is_dir() {
            return Ok(None);
        }
        let path = dir.join("_fitlake.lock");
        let storage_error = |e: std::io::Error| Error::storage(path.display(), e);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(storage_error)?;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(TableLock { _file: file })),
                Err(TryLockError::WouldBlock) => {
                    if !told {
                        tracing::info!(table = %table, "being updated by another runner; waiting");
                        told = true;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(TryLockError::Error(e)) => return Err(storage_error(e)),
            }
        }
    }
}

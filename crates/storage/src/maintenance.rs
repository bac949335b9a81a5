//! Keeping tables fast and small, as Delta on Databricks does: compaction (`OPTIMIZE`, with
//! optional Z-order clustering) committed with `dataChange = false`, and `VACUUM` of the data
//! files no version within the retention needs, with the expired log files after a checkpoint.

use std::collections::{BTreeMap, HashMap};

use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;
use futures::TryStreamExt;
use polars::prelude::*;

use fitlake_catalog::TableId;

use crate::access::Access;
use crate::delta::{DataFile, Operation, Table};
use crate::{Error, Result};

/// The size `optimize` packs files into by default: 128 MiB.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 << 20;

/// How `optimize` rewrites a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// Small files of a partition are packed into files of about this size; files at least
    /// this large are left as they are.
    pub target_file_bytes: u64,
    /// Cluster the rows by these columns (a Z-order curve over their ranks; a plain sort for
    /// one column), so that files hold narrow ranges of them and reads that filter on them skip
    /// more files. Every file of a partition with more than one is then rewritten, in bins of
    /// up to four target sizes sorted in memory.
    pub zorder_by: Vec<String>,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions { target_file_bytes: DEFAULT_TARGET_FILE_BYTES, zorder_by: Vec::new() }
    }
}

/// What one `optimize` of a table did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OptimizeReport {
    /// The table.
    pub table: String,
    /// Partitions (one for an unpartitioned table) that had files rewritten.
    pub partitions: u64,
    /// Files replaced, and their bytes.
    pub files_removed: u64,
    /// Bytes of the files replaced.
    pub bytes_removed: u64,
    /// Files written.
    pub files_added: u64,
    /// Bytes of the files written.
    pub bytes_added: u64,
    /// Rows rewritten (the same rows, in fewer files).
    pub rows: u64,
    /// The version committed (`None`: nothing to do).
    pub version: Option<i64>,
}

/// The bins `optimize` rewrites, each becoming about one new file (a few with Z-order): per
/// partition, the files smaller than the target in the order they were written (so that
/// time-ordered data stays time-ordered), packed greedily up to the target size. A bin of one
/// file is left alone: rewriting it alone gains nothing. With `zorder_by`, every file of a
/// partition holding more than one is taken, packed up to four target sizes.
pub fn compaction_bins(files: Vec<DataFile>, options: &OptimizeOptions) -> Vec<Vec<DataFile>> {
    let mut partitions: BTreeMap<Vec<(String, Option<String>)>, Vec<DataFile>> = BTreeMap::new();
    for file in files {
        let mut key: Vec<(String, Option<String>)> =
            file.partition_values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        key.sort();
        partitions.entry(key).or_default().push(file);
    }
    let clustering = !options.zorder_by.is_empty();
    let bin_bytes = if clustering { options.target_file_bytes.saturating_mul(4) } else { options.target_file_bytes };
    let mut bins = Vec::new();
    for (_, mut files) in partitions {
        files.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        if clustering && files.len() < 2 {
            continue;
        }
        let mut bin: Vec<DataFile> = Vec::new();
        let mut size = 0u64;
        for file in files {
            let file_size = file.size.max(0) as u64;
            if !clustering && file_size >= options.target_file_bytes {
                continue;
            }
            if !bin.is_empty() && size + file_size > bin_bytes {
                bins.push(std::mem::take(&mut bin));
                size = 0;
            }
            size += file_size;
            bin.push(file);
        }
        bins.push(bin);
    }
    bins.retain(|bin| bin.len() >= 2 || (clustering && bin.len() == 1));
    bins
}

/// The Z-order key of each row over `columns`: each column's dense rank (nulls first), scaled
/// to `64 / columns` bits, the bits interleaved from the highest. Sorting by it keeps rows
/// close in every column close in the file order.
pub fn zorder_key(df: &DataFrame, columns: &[String]) -> PolarsResult<UInt64Chunked> {
    if columns.is_empty() || columns.len() > 64 {
        polars_bail!(ComputeError: "Z-order takes 1 to 64 columns, got {}", columns.len());
    }
    let bits = 64 / columns.len() as u32;
    let mut ranks: Vec<Vec<u64>> = Vec::with_capacity(columns.len());
    for name in columns {
        let rank = dense_ranks(df.column(name)?.as_materialized_series())?;
        let max = rank.iter().copied().max().unwrap_or(0).max(1) as u128;
        let top = if bits >= 64 { u64::MAX as u128 } else { (1u128 << bits) - 1 };
        ranks.push(rank.into_iter().map(|r| ((r as u128 * top) / max) as u64).collect());
    }
    let keys = (0..df.height()).map(|row| {
        let mut key = 0u64;
        for bit in (0..bits).rev() {
            for column in &ranks {
                key = (key << 1) | ((column[row] >> bit) & 1);
            }
        }
        key
    });
    Ok(UInt64Chunked::from_iter_values("zorder".into(), keys))
}

/// Each value's dense rank from 1 (nulls first, equal values share a rank).
fn dense_ranks(values: &Series) -> PolarsResult<Vec<u64>> {
    let order = values.arg_sort(SortOptions::default());
    let sorted = values.take(&order)?;
    let changed = sorted.not_equal_missing(&sorted.shift(1))?;
    let mut ranks = vec![0u64; values.len()];
    let mut rank = 0u64;
    for (position, (row, changed)) in order.into_no_null_iter().zip(changed.iter()).enumerate() {
        if position == 0 || changed.unwrap_or(true) {
            rank += 1;
        }
        ranks[row as usize] = rank;
    }
    Ok(ranks)
}

/// Compacts `id` (see [`compaction_bins`]) in one `dataChange = false` commit: readers and
/// fitlake's incremental steps see no new data. A commit that loses a race with a writer (a
/// MERGE that removed one of the files meanwhile) is planned again from the new version.
pub async fn optimize(access: &Access, id: TableId, options: &OptimizeOptions) -> Result<OptimizeReport> {
    if options.target_file_bytes == 0 {
        return Err(Error::Config("--target-file-size must be at least 1 byte".into()));
    }
    for column in &options.zorder_by {
        if !id.def().schema.fields().iter().any(|f| f.name() == column) {
            return Err(Error::Config(format!("--zorder-by {column}: {id} has no such column")));
        }
    }
    let mut attempt = 0;
    loop {
        let mut table = Table::open(access, id).await?;
        match optimize_once(&mut table, options).await {
            Err(e) if e.is_commit_conflict() && attempt < 5 => {
                attempt += 1;
                tracing::warn!(table = %id, attempt, "another writer committed meanwhile; planning the compaction again");
            }
            done => return done,
        }
    }
}

async fn optimize_once(table: &mut Table, options: &OptimizeOptions) -> Result<OptimizeReport> {
    let id = table.id();
    let files = table.files(None)?;
    let before: std::collections::HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    let bins = compaction_bins(files, options);
    let mut report = OptimizeReport { table: id.to_string(), ..Default::default() };
    if bins.is_empty() {
        return Ok(report);
    }
    let mut staged = table.stage_sized(options.target_file_bytes)?;
    let mut removed = Vec::new();
    let mut partitions = std::collections::HashSet::new();
    for bin in bins {
        let mut key: Vec<_> = bin[0].partition_values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        key.sort();
        partitions.insert(key.join("/"));
        if options.zorder_by.is_empty() {
            // One file at a time: memory holds a file and the writer's buffer, not the bin.
            for file in &bin {
                let rows = table.scan().files(vec![file.clone()]).collect().await?;
                staged.write(&rows).await?;
            }
        } else {
            let rows = table.scan().files(bin.clone()).collect().await?;
            let key = zorder_key(&rows, &options.zorder_by).map_err(|e| Error::Internal(e.into()))?;
            let order = key.arg_sort(SortOptions::default());
            let rows = rows.take(&order).map_err(|e| Error::Internal(e.into()))?;
            staged.write(&rows).await?;
        }
        report.files_removed += bin.len() as u64;
        report.bytes_removed += bin.iter().map(|f| f.size.max(0) as u64).sum::<u64>();
        removed.extend(bin.into_iter().map(|f| f.path));
    }
    report.rows = staged.rows();
    report.partitions = partitions.len() as u64;
    report.version = table.commit().staged(staged).remove(removed).operation(Operation::Compact).await?;
    for file in table.files(None)? {
        if !before.contains(&file.path) {
            report.files_added += 1;
            report.bytes_added += file.size.max(0) as u64;
        }
    }
    Ok(report)
}

/// How `vacuum` cleans a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumOptions {
    /// Files removed from the table longer ago than this are deleted (`None`: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days unless set).
    pub retain: Option<std::time::Duration>,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Allow a retention shorter than the table's `delta.deletedFileRetentionDuration` (a
    /// reader or a lagging step still on an older version then fails on a missing file).
    pub force: bool,
}

/// What one `vacuum` of a table did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VacuumReport {
    /// The table.
    pub table: String,
    /// Data files deleted (or to delete), relative to the table root.
    pub files: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Expired log files deleted (JSON commits and checkpoints older than the last checkpoint
    /// within `delta.logRetentionDuration`).
    pub log_files: u64,
    /// True when nothing was deleted.
    pub dry_run: bool,
}

/// Deletes the data files of `id` that no version within the retention references: files
/// removed (by a MERGE, a sync or a compaction) longer ago than the retention, and files in
/// the table folder the log never referenced (a write that died before its commit), older
/// than the retention. Then the log files that expired under `delta.logRetentionDuration`
/// before the last checkpoint go, as Delta's log cleanup does.
pub async fn vacuum(access: &Access, id: TableId, options: &VacuumOptions) -> Result<VacuumReport> {
    let table = Table::open(access, id).await?;
    table.check_modify()?;
    // Delta's retention check, made here on the table's own property rather than by reading
    // deltalake's error text.
    let minimum = table
        .delta
        .snapshot()
        .map_err(|e| Error::Delta { table: id.to_string(), version: table.version(), source: Box::new(e) })?
        .table_config()
        .deleted_file_retention_duration();
    if let Some(retain) = options.retain.filter(|r| !options.force && *r < minimum) {
        return Err(Error::Config(format!(
            "{id}: --retain {retain:?} is shorter than the table's delta.deletedFileRetentionDuration ({minimum:?}): \
             it deletes files a reader or a lagging step of an older version may still need; pass --force to do \
             it anyway, or lower delta.deletedFileRetentionDuration"
        )));
    }
    let store = table.delta.log_store().object_store(None);
    let sizes: HashMap<String, u64> = store
        .list(None)
        .map_ok(|meta| (meta.location.to_string(), meta.size))
        .try_collect()
        .await
        .map_err(|e| Error::storage(id.to_string(), e))?;
    let mut builder = table
        .delta
        .clone()
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_dry_run(options.dry_run)
        .with_enforce_retention_duration(!options.force)
        .with_commit_properties(
            deltalake::kernel::transaction::CommitProperties::default().with_metadata(access.commit_identity()),
        );
    if let Some(retain) = options.retain {
        let retain = chrono::Duration::from_std(retain)
            .map_err(|_| Error::Config(format!("--retain {retain:?} is too long")))?;
        builder = builder.with_retention_period(retain);
    }
    let (vacuumed, metrics) = builder.await.map_err(|e| Error::Delta {
        table: id.to_string(),
        version: table.version(),
        source: Box::new(e),
    })?;
    let bytes = metrics.files_deleted.iter().filter_map(|f| sizes.get(f.trim_start_matches('/'))).sum();
    let mut report = VacuumReport {
        table: id.to_string(),
        files: metrics.files_deleted,
        bytes,
        log_files: 0,
        dry_run: options.dry_run,
    };
    if !options.dry_run {
        report.log_files = deltalake::checkpoints::cleanup_metadata(&vacuumed, None)
            .await
            .map_err(|e| Error::Delta { table: id.to_string(), version: table.version(), source: Box::new(e) })?
            as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: i64, modified: i64, day: Option<&str>) -> DataFile {
        DataFile {
            path: path.into(),
            size,
            partition_values: day.map(|d| [("date".to_string(), Some(d.to_string()))].into()).unwrap_or_default(),
            range: None,
            modified,
        }
    }

    fn paths(bins: &[Vec<DataFile>]) -> Vec<Vec<&str>> {
        bins.iter().map(|b| b.iter().map(|f| f.path.as_str()).collect()).collect()
    }

    #[test]
    fn bins_pack_small_files_per_partition_in_write_order_and_skip_lone_and_large_ones() {
        let options = OptimizeOptions { target_file_bytes: 100, zorder_by: vec![] };
        let files = vec![
            file("c", 40, 3, Some("d1")),
            file("a", 40, 1, Some("d1")),
            file("b", 40, 2, Some("d1")),
            file("big", 100, 0, Some("d1")),
            file("lone", 10, 5, Some("d2")),
            file("x", 30, 7, Some("d3")),
            file("y", 30, 6, Some("d3")),
        ];
        // d1: a+b fit 100, c starts a bin of its own (dropped: one file); big is at the target;
        // d2: one file; d3: y then x (write order).
        assert_eq!(paths(&compaction_bins(files.clone(), &options)), [vec!["a", "b"], vec!["y", "x"]]);
        // Z-order takes every file of a partition with more than one, up to 4 targets a bin.
        let zorder = OptimizeOptions { target_file_bytes: 100, zorder_by: vec!["time".into()] };
        assert_eq!(paths(&compaction_bins(files, &zorder)), [vec!["big", "a", "b", "c"], vec!["y", "x"]]);
    }

    #[test]
    fn zorder_keys_interleave_ranks_and_one_column_is_its_order() {
        let df =
            DataFrame::new(4, vec![Column::new("a".into(), [0i64, 0, 1, 1]), Column::new("b".into(), [0i64, 1, 0, 1])])
                .expect("frame");
        let key = zorder_key(&df, &["a".into(), "b".into()]).expect("key");
        let keys: Vec<u64> = key.into_no_null_iter().collect();
        // Ranks 1 and 2 scale to 0x7fff_ffff and 0xffff_ffff; the top bits interleave a, b.
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| keys[i]);
        assert_eq!(order, [0, 1, 2, 3], "{keys:x?}");
        assert_eq!(keys[3], u64::MAX);
        assert!(keys[1] > keys[0] && keys[2] > keys[1], "{keys:x?}");
        let one = zorder_key(&df, &["b".into()]).expect("key").into_no_null_iter().collect::<Vec<_>>();
        assert_eq!(one[0], one[2]);
        assert!(one[1] > one[0]);
        assert!(zorder_key(&df, &[]).is_err());
    }
}

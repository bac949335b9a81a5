//! Delta tables: create, open, scan files into frames, and commit a step's adds, removes and
//! progress (`txn` actions) in one commit.
//!
//! Reads and commits are builders, as in delta-rs:
//! `table.scan().files(files).columns(&["user_id"]).collect().await` and
//! `table.commit().rows(&df).remove(paths).progress(txns).operation(Operation::Merge).await`.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::DataType as ArrowType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake::logstore::get_actions;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::basic::{Compression, Encoding};
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError, ObjectStore, Path, TableProperty};
use fitlake_catalog::TableId;
use fitlake_frame::{from_record_batches, to_record_batches, TableDef, FILE_COLUMN};
use fitlake_governance::Privilege;
use futures::{StreamExt, TryStreamExt};
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use polars::prelude::*;
use tracing::Instrument;

use crate::access::{Access, Need};
use crate::fault;
use crate::{Error, Result};

/// Commits between two Delta checkpoints of a table fitlake creates (`delta.checkpointInterval`).
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// How a commit changes its table, for the Delta history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// Rows appended (bronze, insert-only merges).
    #[default]
    Append,
    /// A copy-on-write MERGE (files removed and rewritten).
    Merge,
    /// A rewrite of the same rows into other files (OPTIMIZE: compaction): every add and
    /// remove carries `dataChange = false`, so readers of changes see nothing new.
    Compact,
}

/// An open managed table.
pub struct Table {
    id: TableId,
    /// The deltalake handle, at the latest version loaded.
    pub delta: DeltaTable,
    /// Who uses it: commits ask the policy for `MODIFY`.
    access: Access,
}

/// Brings an existing table's schema up to its definition, as `ALTER TABLE` would: columns the
/// definition added (all nullable) are added, and columns it made nullable lose `NOT NULL`
/// (`user_profile.dob` since unreadable dates of birth are kept). Nothing else changes; a
/// table already up to date gets no commit.
async fn migrate(id: TableId, mut table: DeltaTable, wanted: &StructType) -> Result<DeltaTable> {
    let version = table.version().map_or(-1, |v| v as i64);
    let current = table.snapshot().map_err(delta_error(id, version))?.schema();
    let added: Vec<_> = wanted.fields().filter(|f| current.field(f.name()).is_none()).cloned().collect();
    let relaxed: Vec<String> = wanted
        .fields()
        .filter(|f| f.is_nullable() && current.field(f.name()).is_some_and(|c| !c.is_nullable()))
        .map(|f| f.name().to_string())
        .collect();
    if !added.is_empty() {
        if let Some(required) = added.iter().find(|f| !f.is_nullable()) {
            return Err(Error::Internal(
                format!("{id}: a new column {} must be nullable to be added to existing rows", required.name()).into(),
            ));
        }
        let names: Vec<String> = added.iter().map(|f| f.name().to_string()).collect();
        table = table.add_columns().with_fields(added).await.map_err(delta_error(id, version))?;
        tracing::info!(table = %id, columns = ?names, "added columns");
    }
    for column in relaxed {
        let version = table.version().map_or(-1, |v| v as i64);
        table = table.drop_column_not_null().with_column(column.clone()).await.map_err(delta_error(id, version))?;
        tracing::info!(table = %id, column, "dropped NOT NULL");
    }
    Ok(table)
}

/// The first table feature of `properties` that fitlake cannot read correctly (it reads
/// parquet files whole and by physical column name), if any: a table another engine (a
/// Databricks `ALTER TABLE … SET TBLPROPERTIES`) gave deletion vectors or column mapping fails
/// with a clear error instead of giving wrong rows.
fn unsupported_feature(deletion_vectors: Option<bool>, column_mapping: Option<String>) -> Option<String> {
    if deletion_vectors == Some(true) {
        return Some("deletion vectors (delta.enableDeletionVectors = true)".into());
    }
    match column_mapping.map(|m| m.to_ascii_lowercase()) {
        Some(mode) if mode != "none" => Some(format!("column mapping (delta.columnMapping.mode = {mode})")),
        _ => None,
    }
}

/// One data file of a table, as its `add` action describes it.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to the table root, as in the log (URI-encoded).
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// Partition column values.
    pub partition_values: HashMap<String, Option<String>>,
    /// Minimum and maximum of the stats column asked for, in its physical integer form
    /// (microseconds for timestamps), when the file has stats.
    pub range: Option<(i64, i64)>,
    /// When the file was written, epoch milliseconds (0 when unknown).
    pub modified: i64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({}@{:?})", self.id, self.delta.version())
    }
}

fn delta_error(id: TableId, version: i64) -> impl Fn(DeltaTableError) -> Error {
    move |source| Error::Delta { table: id.qualified_name(), version, source: Box::new(source) }
}

fn rows_error(id: TableId) -> impl Fn(fitlake_frame::Error) -> Error {
    move |e| Error::Rows { table: id.qualified_name(), source: e.into() }
}

fn polars_error(id: TableId) -> impl Fn(PolarsError) -> Error {
    move |e| Error::Rows { table: id.qualified_name(), source: e.into() }
}

impl Table {
    /// Creates the table if it does not exist (idempotent; `CREATE TABLE` on its schema) and
    /// opens it.
    pub async fn create(access: &Access, id: TableId) -> Result<Table> {
        let def = id.def();
        access.check(&Need::CreateTable(def.layer))?;
        let url = location(access, id);
        if let Some(path) = fitlake_config::local_path(&url) {
            std::fs::create_dir_all(&path).map_err(|e| Error::storage(path.display(), e))?;
        }
        let table = access.stores.delta_table(&url).await.map_err(delta_error(id, -1))?;
        let schema: StructType = def.schema.as_ref().try_into_kernel().map_err(|e| Error::Internal(e.into()))?;
        if table.version().is_some() {
            let delta = migrate(id, table, &schema).await?;
            return Ok(Table { id, delta, access: access.clone() });
        }
        let created = table
            .create()
            .with_table_name(def.name)
            .with_comment(def.description)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(def.partition_columns.iter().map(|c| c.to_string()))
            // Streaming commits often; a checkpoint every few commits keeps opening a table
            // (which replays the JSON commits since the last checkpoint) cheap.
            .with_configuration_property(TableProperty::CheckpointInterval, Some(CHECKPOINT_INTERVAL.to_string()))
            .with_save_mode(SaveMode::Ignore)
            .with_commit_properties(CommitProperties::default().with_metadata(access.commit_identity()))
            .await
            .map_err(delta_error(id, -1))?;
        tracing::info!(table = %id, "created table");
        Ok(Table { id, delta: created, access: access.clone() })
    }

    /// Opens an existing table to read it (`SELECT`); a missing one is a "run setup first"
    /// error.
    pub async fn open(access: &Access, id: TableId) -> Result<Table> {
        access.check_table(id, Privilege::Select)?;
        let url = location(access, id);
        let not_set_up = || Error::NotSetUp { table: id.qualified_name(), location: url.to_string() };
        if fitlake_config::local_path(&url).is_some_and(|p| !p.join("_delta_log").is_dir()) {
            return Err(not_set_up());
        }
        let table = match access.stores.latest_table(&url).await {
            Ok(table) => table,
            Err(DeltaTableError::InvalidTableLocation(_) | DeltaTableError::NotATable(_)) => return Err(not_set_up()),
            Err(e) => return Err(delta_error(id, -1)(e)),
        };
        if table.version().is_none() {
            return Err(not_set_up());
        }
        let version = table.version().map_or(-1, |v| v as i64);
        let state = table.snapshot().map_err(delta_error(id, version))?;
        let config = state.table_config();
        let mapping = config.column_mapping_mode.map(|m| format!("{m:?}"));
        if let Some(feature) = unsupported_feature(config.enable_deletion_vectors, mapping) {
            return Err(Error::Unsupported { table: id.qualified_name(), feature });
        }
        Ok(Table { id, delta: table, access: access.clone() })
    }

    /// Loads the latest snapshot of `id` into the process's snapshots unless one is kept
    /// already ([`Stores::preload`](crate::Stores::preload)); a later [`Table::open`] then only
    /// reads the commits since. Nothing is checked here that the open would not check again.
    pub async fn preload(access: &Access, id: TableId) -> Result<()> {
        access.check_table(id, Privilege::Select)?;
        access.stores.preload(&location(access, id)).await.map_err(delta_error(id, -1))
    }

    /// Which table this is.
    pub fn id(&self) -> TableId {
        self.id
    }

    /// Its definition (schema, partitioning, keys).
    pub fn def(&self) -> &'static TableDef {
        self.id.def()
    }

    /// The loaded version.
    pub fn version(&self) -> i64 {
        self.delta.version().map_or(-1, |v| v as i64)
    }

    fn err(&self) -> impl Fn(DeltaTableError) -> Error {
        delta_error(self.id, self.version())
    }

    /// The last version a step recorded under `app_id` in this table, if any.
    pub async fn progress(&self, app_id: &str) -> Result<Option<i64>> {
        let state = self.delta.snapshot().map_err(self.err())?;
        state.transaction_version(self.delta.log_store().as_ref(), app_id).await.map_err(self.err())
    }

    /// The log's `add` actions of the active files as a frame (`path`, `size_bytes`,
    /// `num_records`, `min.*`, `max.*`, `partition.*`).
    fn file_index(&self) -> Result<DataFrame> {
        let state = self.delta.snapshot().map_err(self.err())?;
        let actions = state.add_actions_table(true).map_err(self.err())?;
        from_record_batches(&actions.schema(), std::slice::from_ref(&actions)).map_err(rows_error(self.id))
    }

    /// The active data files, with the range of `stats_column` (an integer or timestamp column)
    /// when asked.
    pub fn files(&self, stats_column: Option<&str>) -> Result<Vec<DataFile>> {
        self.files_inner(stats_column).map_err(polars_error(self.id))
    }

    fn files_inner(&self, stats_column: Option<&str>) -> PolarsResult<Vec<DataFile>> {
        let index = self.file_index().map_err(|e| polars_err!(ComputeError: "{e}"))?;
        let paths: Vec<String> =
            index.column("path")?.str()?.iter().map(|p| p.unwrap_or_default().to_string()).collect();
        let sizes: Vec<i64> = index.column("size_bytes")?.i64()?.iter().map(|s| s.unwrap_or(0)).collect();
        let mut partitions: Vec<HashMap<String, Option<String>>> = vec![HashMap::new(); paths.len()];
        for column in &self.def().partition_columns {
            if let Ok(values) = index.column(&format!("partition.{column}")) {
                let values = values.cast(&DataType::String)?;
                for (i, v) in values.str()?.iter().enumerate() {
                    partitions[i].insert(column.to_string(), v.map(str::to_string));
                }
            }
        }
        let range_of = |prefix: &str| -> PolarsResult<Vec<Option<i64>>> {
            let name = format!("{prefix}.{}", stats_column.unwrap_or_default());
            match (stats_column, index.column(&name)) {
                (Some(_), Ok(c)) => Ok(c.to_physical_repr().cast(&DataType::Int64)?.i64()?.iter().collect()),
                _ => Ok(vec![None; paths.len()]),
            }
        };
        let (mins, maxs) = (range_of("min")?, range_of("max")?);
        let modified: Vec<i64> = match index.column("modification_time") {
            Ok(c) => c.to_physical_repr().cast(&DataType::Int64)?.i64()?.iter().map(|t| t.unwrap_or(0)).collect(),
            Err(_) => vec![0; paths.len()],
        };
        Ok(paths
            .into_iter()
            .zip(sizes)
            .zip(partitions)
            .enumerate()
            .map(|(i, ((path, size), partition_values))| DataFile {
                path,
                size,
                partition_values,
                range: mins[i].zip(maxs[i]),
                modified: modified[i],
            })
            .collect())
    }

    /// When the table's latest version was committed (ms since the epoch): the time of its
    /// commit file, as Delta's history reports it.
    pub fn committed_ms(&self) -> Option<i64> {
        let version = self.delta.version()?;
        self.delta.snapshot().ok()?.version_timestamp(version)
    }

    /// Number of rows in the table, from the log's file statistics.
    pub fn row_count(&self) -> Result<u64> {
        let index = self.file_index()?;
        let sum = || -> PolarsResult<i64> {
            let counts = index.column("num_records")?.cast(&DataType::Int64)?;
            Ok(counts.i64()?.sum().unwrap_or(0))
        };
        Ok(sum().map_err(polars_error(self.id))?.max(0) as u64)
    }

    /// Number of rows in some of the table's files, from the log's file statistics (files no
    /// longer active, or without statistics, count nothing).
    pub fn row_count_of(&self, files: &[DataFile]) -> Result<u64> {
        let index = self.file_index()?;
        let wanted: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let sum = || -> PolarsResult<i64> {
            let paths = index.column("path")?.str()?.clone();
            let counts = index.column("num_records")?.cast(&DataType::Int64)?;
            Ok(paths
                .iter()
                .zip(counts.i64()?.iter())
                .filter(|(p, _)| p.is_some_and(|p| wanted.contains(p)))
                .map(|(_, n)| n.unwrap_or(0))
                .sum())
        };
        Ok(sum().map_err(polars_error(self.id))?.max(0) as u64)
    }

    /// The `add` and `remove` actions of the commits after `version` up to the loaded one
    /// (from the first commit when `version` is `None`).
    async fn data_actions_since(&self, version: Option<i64>) -> Result<Vec<Action>> {
        let log_store = self.delta.log_store();
        let mut actions = Vec::new();
        for v in (version.unwrap_or(-1) + 1)..=self.version() {
            let Some(bytes) = log_store.read_commit_entry(v as u64).await.map_err(delta_error(self.id, v))? else {
                return Err(Error::Checkpoint {
                    location: format!("{} version {v}", self.id),
                    message: "the commit is gone from the log (cleaned up?); the step cannot tell what is new".into(),
                });
            };
            let entry = get_actions(v as u64, &bytes).map_err(delta_error(self.id, v))?;
            actions.extend(entry.into_iter().filter(|a| matches!(a, Action::Add(_) | Action::Remove(_))));
        }
        Ok(actions)
    }

    /// True when a commit after `version` removed rows' files as a data change: a MERGE replaced
    /// or deleted stored rows (a plain append, a progress-only commit or a compaction removes
    /// none).
    pub async fn rows_replaced_since(&self, version: Option<i64>) -> Result<bool> {
        Ok(self.data_actions_since(version).await?.iter().any(|a| matches!(a, Action::Remove(r) if r.data_change)))
    }

    /// True when a commit after `version` added or removed data (commits that only record a
    /// step's progress change no rows, nor do `dataChange = false` rewrites such as a
    /// Databricks OPTIMIZE or ZORDER).
    pub async fn data_changed_since(&self, version: Option<i64>) -> Result<bool> {
        Ok(self.data_actions_since(version).await?.iter().any(|a| match a {
            Action::Add(add) => add.data_change,
            Action::Remove(remove) => remove.data_change,
            _ => false,
        }))
    }

    /// The files whose rows are new since `version` (all active files when `version` is
    /// `None`), with the range of `stats_column` as in [`Table::files`]: those added with
    /// `dataChange = true` after `version` and not removed by a data change since. A file that a
    /// `dataChange = false` rewrite (OPTIMIZE, ZORDER) has compacted away since is still the one
    /// read (it stays in storage until a vacuum past the retention), and the compacted file is
    /// not new input, so another engine's compaction neither duplicates nor hides rows.
    pub async fn files_added_since(&self, version: Option<i64>, stats_column: Option<&str>) -> Result<Vec<DataFile>> {
        let active = self.files(stats_column)?;
        if version.is_none() {
            return Ok(active);
        }
        let mut added: Vec<DataFile> = Vec::new();
        for action in self.data_actions_since(version).await? {
            match action {
                Action::Add(add) if add.data_change => added.push(DataFile {
                    path: add.path,
                    size: add.size,
                    partition_values: add.partition_values.into_iter().collect(),
                    range: None,
                    modified: add.modification_time,
                }),
                Action::Remove(remove) if remove.data_change => added.retain(|f| f.path != remove.path),
                _ => {}
            }
        }
        let active: HashMap<String, DataFile> = active.into_iter().map(|f| (f.path.clone(), f)).collect();
        Ok(added.into_iter().map(|f| active.get(&f.path).cloned().unwrap_or(f)).collect())
    }

    /// A read of the table: every active file and column unless narrowed.
    pub fn scan(&self) -> Scan<'_> {
        Scan { table: self, files: None, columns: None, tag_files: false, each_file: None }
    }

    /// A writer for new data files of this table; nothing is visible until committed with
    /// [`Table::commit`].
    pub fn stage(&self) -> Result<Staged> {
        // Files roll at a size, so that a step reading them later can take them a few at a time.
        self.stage_sized(STAGED_FILE_BYTES)
    }

    /// A writer for new data files that roll at `file_bytes` (compaction's target size).
    pub fn stage_sized(&self, file_bytes: u64) -> Result<Staged> {
        self.check_modify()?;
        let writer = RecordBatchWriter::for_table(&self.delta)
            .map_err(self.err())?
            .with_target_file_size(file_bytes)
            .with_writer_properties(writer_properties(self.id.def()));
        Ok(Staged { writer, id: self.id, version: self.version(), rows: 0, flushed: Vec::new() })
    }

    /// Fails unless the principal may change the table (`MODIFY`).
    pub fn check_modify(&self) -> Result<()> {
        self.access.check_table(self.id, Privilege::Modify)
    }

    /// A commit to the table: staged files or rows to add, files to remove and step progress,
    /// in one Delta commit.
    pub fn commit(&mut self) -> Commit<'_> {
        Commit {
            table: self,
            staged: None,
            rows: Vec::new(),
            removes: Vec::new(),
            txns: Vec::new(),
            operation: Operation::Append,
            metrics: Vec::new(),
        }
    }
}

/// Where table `id` lives in `access`'s lakehouse: the key its snapshots are kept under too.
fn location(access: &Access, id: TableId) -> url::Url {
    let def = id.def();
    access.lakehouse.table_url(def.layer, def.name)
}

/// The Parquet properties of a table's new files: delta-rs's (Snappy, its `created_by`), with
/// no dictionary for the columns whose values are nearly all distinct, integer ones of those
/// (times, offsets) written as the differences between neighbours (`DELTA_BINARY_PACKED`,
/// small for them: a third less to compress and store), neither dictionary nor statistics for
/// payload columns, and row groups of [`ROW_GROUP_ROWS`].
fn writer_properties(def: &TableDef) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_created_by(format!("delta-rs version {}", deltalake::crate_version()))
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    let builder = def
        .distinct_columns
        .iter()
        .chain(&def.payload_columns)
        .fold(builder, |builder, column| builder.set_column_dictionary_enabled(ColumnPath::from(*column), false));
    let integers = def.distinct_columns.iter().filter(|column| {
        def.schema.field_with_name(column).is_ok_and(|field| {
            matches!(
                field.data_type(),
                ArrowType::Int32 | ArrowType::Int64 | ArrowType::Date32 | ArrowType::Timestamp(_, _)
            )
        })
    });
    let builder = integers.fold(builder, |builder, column| {
        builder.set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED)
    });
    def.payload_columns
        .iter()
        .fold(builder, |builder, column| {
            builder.set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None)
        })
        .build()
}

/// The rows of `rows` split by the values of their partition `columns` (strings, as every
/// partitioned table of fitlake's has them), rows of a partition in order. Runs of rows of one
/// partition are taken as slices, which copy nothing: the frame itself when every row has the
/// same values (a landing chunk of one topic and week), a few slices when the rows come
/// grouped (the multiplex parser groups each piece's rows by topic). Rows that alternate more
/// often are gathered into one frame per combination.
fn by_partition(rows: &DataFrame, columns: &[&str]) -> PolarsResult<Vec<DataFrame>> {
    let keys: Vec<StringChunked> =
        columns.iter().map(|name| Ok(rows.column(name)?.str()?.rechunk().into_owned())).collect::<PolarsResult<_>>()?;
    // The combination of each row, as an index into `seen` (a chunk holds a handful).
    let mut seen: Vec<Vec<Option<&str>>> = Vec::new();
    let mut group = Vec::with_capacity(rows.height());
    // Where each run of one combination starts.
    let mut runs: Vec<usize> = Vec::new();
    let mut iters: Vec<_> = keys.iter().map(|k| k.iter()).collect();
    let mut row: Vec<Option<&str>> = Vec::with_capacity(columns.len());
    for i in 0..rows.height() {
        row.clear();
        for it in &mut iters {
            row.push(it.next().flatten());
        }
        let at = match seen.iter().position(|s| *s == row) {
            Some(at) => at,
            None => {
                seen.push(row.clone());
                seen.len() - 1
            }
        };
        if group.last() != Some(&(at as u32)) {
            runs.push(i);
        }
        group.push(at as u32);
    }
    if seen.len() <= 1 {
        return Ok(vec![rows.clone()]);
    }
    // Slices while runs are few and long (each becomes a batch of its partition's file); a
    // gather otherwise, so that a partition is not written in many tiny batches.
    if runs.len() <= MAX_PARTITION_RUNS && rows.height() >= runs.len() * MIN_PARTITION_RUN_ROWS {
        runs.push(rows.height());
        return Ok(runs.windows(2).map(|run| rows.slice(run[0] as i64, run[1] - run[0])).collect());
    }
    let group = UInt32Chunked::from_vec("".into(), group);
    (0..seen.len() as u32).map(|g| rows.filter(&group.equal(g))).collect()
}

/// Most runs of one partition a written frame is split into by slicing, and the fewest rows
/// they must average (see [`by_partition`]).
const MAX_PARTITION_RUNS: usize = 64;
/// See [`MAX_PARTITION_RUNS`].
const MIN_PARTITION_RUN_ROWS: usize = 1024;

/// The partition values of a batch whose rows all share them, as the Delta writer names its
/// partition folders (the writer's own split reads them the same way).
fn partition_values<S: ScalarExt>(batch: &RecordBatch, columns: &[&str]) -> Result<IndexMap<String, S>> {
    columns
        .iter()
        .map(|name| {
            let value = batch
                .column_by_name(name)
                .and_then(|array| S::from_array(array.as_ref(), 0))
                .ok_or_else(|| Error::Internal(format!("partition column {name} is missing or unreadable").into()))?;
            Ok((name.to_string(), value))
        })
        .collect()
}

/// Rows per Parquet row group. A writer holds its open row group's encoded pages in memory,
/// one per partition it writes (Parquet's default of 1,048,576 rows was about 60 MB for a bronze
/// `bpm` file); smaller groups also give readers finer statistics to skip by.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Size at which a [`Staged`] writer starts a new data file (bronze batches of a GiB of landing
/// data become several files, which the silver steps consume in groups).
pub const STAGED_FILE_BYTES: u64 = 64 << 20;

/// Writers that encode one commit's rows side by side (the machine this was measured on has
/// two cores): encoding Parquet is CPU work, and one writer kept one core busy while the
/// other waited.
pub const WRITE_LANES: usize = 2;

/// Fewest rows a commit's rows are split across the [`WRITE_LANES`] at (fewer are written by
/// one writer: its files would only be smaller).
pub const LANE_ROWS: usize = 64 * 1024;

/// A read of some files and columns of a table ([`Table::scan`]).
#[must_use = "a scan reads nothing until collected"]
pub struct Scan<'a> {
    table: &'a Table,
    files: Option<Vec<DataFile>>,
    columns: Option<Vec<String>>,
    tag_files: bool,
    each_file: Option<EachFile>,
}

/// A transform applied to each file's rows as it is read (see [`Scan::each_file`]).
pub type EachFile = Arc<dyn Fn(DataFrame) -> PolarsResult<DataFrame> + Send + Sync>;

impl Scan<'_> {
    /// Reads only these files (all active files otherwise).
    pub fn files(mut self, files: impl Into<Vec<DataFile>>) -> Self {
        self.files = Some(files.into());
        self
    }

    /// Reads only these columns (all columns of the table schema otherwise).
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Adds the column [`FILE_COLUMN`] naming each row's data file (what a MERGE plan needs to
    /// know which files to rewrite).
    pub fn with_file_column(mut self) -> Self {
        self.tag_files = true;
        self
    }

    /// Transforms each file's rows as soon as the file is read, before the files are put
    /// together: a filter or partial aggregate here keeps memory at one file plus what
    /// survives, not the whole scan.
    pub fn each_file(self, transform: impl Fn(LazyFrame) -> LazyFrame + Send + Sync + 'static) -> Self {
        self.each_frame(move |rows| transform(rows.lazy()).collect())
    }

    /// [`Scan::each_file`] with a transform of the file's frame itself (one that is not a Polars
    /// query, such as a walk over rows in key order).
    pub fn each_frame(
        mut self,
        transform: impl Fn(DataFrame) -> PolarsResult<DataFrame> + Send + Sync + 'static,
    ) -> Self {
        self.each_file = Some(Arc::new(transform));
        self
    }

    /// Reads the files into one frame, adding partition columns. Files are fetched and
    /// decoded up to 4 at a time, decoding on blocking threads.
    pub async fn collect(self) -> Result<DataFrame> {
        self.read()?.await
    }

    /// Starts [`collect`](Scan::collect)ing now, on a task of its own, for the caller to await
    /// later: the read goes on while the caller does other work (commits what it read before).
    pub fn spawn(self) -> Result<tokio::task::JoinHandle<Result<DataFrame>>> {
        Ok(tokio::spawn(self.read()?))
    }

    /// The read, owning all it needs of the table.
    fn read(self) -> Result<impl Future<Output = Result<DataFrame>> + Send + 'static> {
        let table = self.table;
        let def = table.def();
        let files = match self.files {
            Some(files) => files,
            None => table.files(None)?,
        };
        let span = tracing::debug_span!("scan", table = %table.id, files = files.len());
        let store = table.delta.log_store().object_store(None);
        let wanted: Vec<String> = def
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| self.columns.as_ref().is_none_or(|c| c.contains(n)))
            .collect();
        let tag_files = self.tag_files;
        let id = table.id;
        let each_file = self.each_file;
        Ok(async move { read_files(store, id, files, wanted, tag_files, each_file).instrument(span).await })
    }
}

/// Reads `files` (their `wanted` columns, each through `each_file`, tagged with their file
/// when `tag_files`) into one frame: [`Scan::collect`].
async fn read_files(
    store: Arc<dyn ObjectStore>,
    id: TableId,
    files: Vec<DataFile>,
    wanted: Vec<String>,
    tag_files: bool,
    each_file: Option<EachFile>,
) -> Result<DataFrame> {
    let def = id.def();
    let frames: Vec<DataFrame> = futures::stream::iter(files)
        .map(|file| {
            let store = store.clone();
            let wanted = wanted.clone();
            let each_file = each_file.clone();
            tokio::spawn(async move {
                let rows = read_file(store, id, &file, &wanted, tag_files).await?;
                match each_file {
                    None => Ok(rows),
                    Some(transform) => tokio::task::spawn_blocking(move || transform(rows))
                        .await
                        .map_err(|e| Error::Internal(e.into()))?
                        .map_err(polars_error(id)),
                }
            })
        })
        .buffered(4)
        .map(|joined| joined.map_err(|e| Error::Internal(e.into()))?)
        .try_collect()
        .await?;
    let polars = polars_error(id);
    if frames.is_empty() {
        let schema = Arc::new(deltalake::arrow::datatypes::Schema::new(
            def.schema.fields().iter().filter(|f| wanted.contains(f.name())).cloned().collect::<Vec<_>>(),
        ));
        let mut df = from_record_batches(&schema, &[]).map_err(rows_error(id))?;
        if tag_files {
            df.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new())).map_err(&polars)?;
        }
        if let Some(transform) = &each_file {
            df = transform(df).map_err(&polars)?;
        }
        return Ok(df);
    }
    let df = match <[DataFrame; 1]>::try_from(frames) {
        // One file (most reads of a small run): its frame as it is, without a query to plan.
        Ok([df]) => df,
        Err(frames) => {
            let lazy: Vec<LazyFrame> = frames.into_iter().map(|f| f.lazy()).collect();
            concat(lazy, UnionArgs::default()).and_then(|l| l.collect()).map_err(&polars)?
        }
    };
    tracing::debug!(table = %id, rows = df.height(), "scanned");
    Ok(df)
}

/// A commit being assembled ([`Table::commit`]); `.await` it to commit. With nothing to add or
/// remove and no progress, nothing is committed and the result is `None`; otherwise the new
/// version.
#[must_use = "a commit does nothing until awaited"]
pub struct Commit<'a> {
    table: &'a mut Table,
    staged: Option<Staged>,
    rows: Vec<&'a DataFrame>,
    removes: Vec<String>,
    txns: Vec<(String, i64)>,
    operation: Operation,
    metrics: Vec<(&'static str, u64)>,
}

impl<'a> Commit<'a> {
    /// Adds the files written through a [`Staged`] writer.
    pub fn staged(mut self, staged: Staged) -> Self {
        self.staged = Some(staged);
        self
    }

    /// Adds rows (any column order; columns are matched by name and cast to the table schema).
    pub fn rows(mut self, rows: &'a DataFrame) -> Self {
        self.rows.push(rows);
        self
    }

    /// Removes these data files (paths as in the log).
    pub fn remove(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        self.removes.extend(paths);
        self
    }

    /// Records step progress: `txn` actions `(application id, version)`.
    pub fn progress(mut self, txns: impl IntoIterator<Item = (String, i64)>) -> Self {
        self.txns.extend(txns);
        self
    }

    /// How the commit appears in the table history (default [`Operation::Append`]).
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }

    /// Rows a MERGE inserted, updated and deleted, for the history's `operationMetrics`.
    pub fn merge_counts(mut self, inserted: u64, updated: u64, deleted: u64) -> Self {
        self.metrics.extend([
            ("numTargetRowsInserted", inserted),
            ("numTargetRowsUpdated", updated),
            ("numTargetRowsDeleted", deleted),
        ]);
        self
    }

    async fn execute(self) -> Result<Option<i64>> {
        let Commit { table, staged, rows, removes, txns, operation, mut metrics } = self;
        table.access.check_table(table.id, Privilege::Modify)?;
        let staged = match staged {
            Some(staged) => staged,
            None => table.stage()?,
        };
        let mut staged = write_in_lanes(table, staged, &rows).await?;
        let err = table.err();
        let written = staged.rows;
        let mut files = std::mem::take(&mut staged.flushed);
        files.extend(staged.writer.flush().await.map_err(&err)?);
        let mut adds: Vec<Action> = files.into_iter().map(Action::Add).collect();
        if adds.is_empty() && removes.is_empty() && txns.is_empty() {
            return Ok(None);
        }
        let added_files = adds.len() as u64;
        let added_bytes: u64 =
            adds.iter().map(|a| if let Action::Add(add) = a { add.size.max(0) as u64 } else { 0 }).sum();
        fault::point("after-write", table.id.name());
        let now = chrono::Utc::now().timestamp_millis();
        let known: HashMap<String, DataFile> = if removes.is_empty() {
            HashMap::new()
        } else {
            table.files(None)?.into_iter().map(|f| (f.path.clone(), f)).collect()
        };
        let removed_files = removes.len() as u64;
        let data_change = operation != Operation::Compact;
        if !data_change {
            for action in &mut adds {
                if let Action::Add(add) = action {
                    add.data_change = false;
                }
            }
        }
        for path in removes {
            let file = known.get(&path);
            adds.push(Action::Remove(Remove {
                path,
                data_change,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: file.map(|f| f.partition_values.clone()),
                size: file.map(|f| f.size),
                ..Default::default()
            }));
        }
        let def = table.def();
        let partition_by =
            (!def.partition_columns.is_empty()).then(|| def.partition_columns.iter().map(|c| c.to_string()).collect());
        let delta_operation = match operation {
            Operation::Append => DeltaOperation::Write { mode: SaveMode::Append, partition_by, predicate: None },
            Operation::Merge => DeltaOperation::Merge {
                predicate: None,
                merge_predicate: Some(format!("key ({})", def.keys.join(", "))),
                matched_predicates: vec![MergePredicate { action_type: "update".into(), predicate: None }],
                not_matched_predicates: vec![MergePredicate { action_type: "insert".into(), predicate: None }],
                not_matched_by_source_predicates: vec![],
            },
            Operation::Compact => DeltaOperation::Optimize { predicate: None, target_size: added_bytes as i64 },
        };
        // Spark writes operationMetrics values as strings; Databricks' DESCRIBE HISTORY shows them.
        metrics.extend(match operation {
            Operation::Append => {
                [("numFiles", added_files), ("numOutputRows", written), ("numOutputBytes", added_bytes)]
            }
            Operation::Merge => [
                ("numTargetFilesAdded", added_files),
                ("numTargetFilesRemoved", removed_files),
                ("numOutputRows", written),
            ],
            Operation::Compact => {
                [("numAddedFiles", added_files), ("numRemovedFiles", removed_files), ("numAddedBytes", added_bytes)]
            }
        });
        let metrics: serde_json::Map<String, serde_json::Value> =
            metrics.into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
        let mut info = vec![("operationMetrics".to_string(), serde_json::Value::Object(metrics))];
        info.extend(table.access.commit_identity());
        let snapshot = table.delta.snapshot().map_err(&err)?;
        let properties = CommitProperties::default()
            .with_metadata(info)
            .with_application_transactions(txns.iter().map(|(app, v)| Transaction::new(app, *v)).collect())
            .with_cleanup_expired_logs(Some(cleans_up_logs(snapshot.version() + 1, snapshot)));
        let finalized = CommitBuilder::from(properties)
            .with_actions(adds)
            .build(Some(snapshot), table.delta.log_store(), delta_operation)
            .await
            .map_err(&err)?;
        let version = finalized.version() as i64;
        table.delta.state = Some(finalized.snapshot());
        // The snapshot after this commit is the one the next open of the table (the steps that
        // read it) starts from: it then reads no commit back, only looks for newer ones.
        table.access.stores.remember(&location(&table.access, table.id), &table.delta).await;
        tracing::info!(table = %table.id, version, rows = written, files_added = added_files, files_removed = removed_files, "committed");
        fault::point("after-commit", table.id.name());
        Ok(Some(version))
    }
}

/// Writes `rows` with `staged` and, when they are [`LANE_ROWS`] or more, with more writers of
/// `table` beside it, [`WRITE_LANES`] in all, on a task each; one writer holding all their
/// files. Lane `i` takes the `i`-th share of the rows in order ([`lane_shares`]), so rows in
/// key order (as a MERGE's new rows of `heart_rate` are) make files of disjoint key ranges.
async fn write_in_lanes(table: &Table, mut staged: Staged, rows: &[&DataFrame]) -> Result<Staged> {
    let total: usize = rows.iter().map(|frame| frame.height()).sum();
    if total < LANE_ROWS {
        for frame in rows {
            staged.write(frame).await?;
        }
        return Ok(staged);
    }
    let mut writers = vec![staged];
    for _ in 1..WRITE_LANES {
        writers.push(table.stage()?);
    }
    let lanes: Vec<_> = writers
        .into_iter()
        .zip(lane_shares(rows, WRITE_LANES))
        .map(|(mut writer, slices)| {
            let task = async move {
                for slice in &slices {
                    writer.write(slice).await?;
                }
                Ok::<_, Error>(writer)
            };
            tokio::spawn(task.in_current_span())
        })
        .collect();
    let mut all: Option<Staged> = None;
    for lane in lanes {
        let writer = lane.await.map_err(|e| Error::Internal(e.into()))??;
        match &mut all {
            Some(all) => all.absorb(writer).await?,
            None => all = Some(writer),
        }
    }
    all.ok_or_else(|| Error::Internal(format!("a commit of {} without writers", table.id).into()))
}

/// The rows of `frames`, taken one after the other, in `lanes` shares of about equal rows, in
/// order: share `i` holds the `i`-th part, as slices of the frames it overlaps (no row is
/// copied; a share of no rows is empty).
pub fn lane_shares(frames: &[&DataFrame], lanes: usize) -> Vec<Vec<DataFrame>> {
    let total: usize = frames.iter().map(|frame| frame.height()).sum();
    let share = total.div_ceil(lanes.max(1));
    (0..lanes)
        .map(|lane| {
            // The lane's rows [from, to) of all the frames.
            let (from, to) = (lane * share, ((lane + 1) * share).min(total));
            let mut start = 0;
            let mut slices = Vec::new();
            for frame in frames {
                let end = start + frame.height();
                let (lo, hi) = (from.max(start), to.min(end));
                if lo < hi {
                    slices.push(frame.slice((lo - start) as i64, hi - lo));
                }
                start = end;
            }
            slices
        })
        .collect()
}

/// True when the commit of `version` should remove the log files older than the log retention
/// (when `delta.enableExpiredLogCleanup` is on): only the commits that write a checkpoint, as
/// Spark does. delta-rs would otherwise list the whole `_delta_log` after every commit, a
/// listing that grows with the table's history (a stream's commits of the last 30 days), and
/// one more request per commit on ADLS.
fn cleans_up_logs(version: u64, state: &deltalake::table::state::DeltaTableState) -> bool {
    use deltalake::table::config::TablePropertiesExt;
    let config = state.table_config();
    let interval = config.checkpoint_interval().get();
    config.enable_expired_log_cleanup() && (version + 1).is_multiple_of(interval)
}

impl<'a> IntoFuture for Commit<'a> {
    type Output = Result<Option<i64>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

/// New data files of a table being written, not yet committed.
pub struct Staged {
    writer: RecordBatchWriter,
    id: TableId,
    version: i64,
    rows: u64,
    /// Files of other writers of the same commit ([`Staged::absorb`]), already written.
    flushed: Vec<Add>,
}

impl Staged {
    /// Writes rows (any column order; columns are matched by name and cast to the table
    /// schema).
    pub async fn write(&mut self, rows: &DataFrame) -> Result<()> {
        if rows.height() == 0 {
            return Ok(());
        }
        let def = self.id.def();
        if def.partition_columns.is_empty() {
            for batch in to_record_batches(rows, &def.schema).map_err(rows_error(self.id))? {
                self.writer.write(batch).await.map_err(delta_error(self.id, self.version))?;
            }
        } else {
            // Split by partition here, where a string moves as a 16-byte view (and a chunk of
            // one partition, the common case, does not move at all), and hand each part to its
            // partition's file: the writer's own split sorts the rows and copies every value.
            // The partition columns are not in the files: they are not exported either.
            let (partitions, in_files): (Vec<_>, Vec<_>) =
                def.schema.fields().iter().cloned().partition(|f| def.partition_columns.contains(&f.name().as_str()));
            let (partitions, in_files) = (
                Arc::new(deltalake::arrow::datatypes::Schema::new(partitions)),
                Arc::new(deltalake::arrow::datatypes::Schema::new(in_files)),
            );
            for part in by_partition(rows, &def.partition_columns).map_err(polars_error(self.id))? {
                // The part's values, from its first row.
                let first = to_record_batches(&part.head(Some(1)), &partitions).map_err(rows_error(self.id))?;
                let Some(first) = first.first() else { continue };
                let values = partition_values(first, &def.partition_columns)?;
                for batch in to_record_batches(&part, &in_files).map_err(rows_error(self.id))? {
                    self.writer
                        .write_partition(batch, &values, WriteMode::Default)
                        .await
                        .map_err(delta_error(self.id, self.version))?;
                }
            }
        }
        self.rows += rows.height() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Takes in the files of `other`, a writer of the same table that wrote in parallel with
    /// this one (its open files are finished now): they are committed with this one's.
    pub async fn absorb(&mut self, mut other: Staged) -> Result<()> {
        if other.id != self.id {
            return Err(Error::Internal(format!("a writer of {} cannot take in one of {}", self.id, other.id).into()));
        }
        let adds = other.writer.flush().await.map_err(delta_error(other.id, other.version))?;
        self.flushed.extend(other.flushed);
        self.flushed.extend(adds);
        self.rows += other.rows;
        Ok(())
    }
}

async fn read_file(
    store: Arc<dyn ObjectStore>,
    id: TableId,
    file: &DataFile,
    wanted: &[String],
    tag_files: bool,
) -> Result<DataFrame> {
    let def = id.def();
    let location = Path::from_url_path(&file.path).unwrap_or_else(|_| Path::from(file.path.as_str()));
    let where_ = format!("{id}/{}", file.path);
    let bytes = match store.get(&location).await {
        Ok(got) => got.bytes().await.map_err(|e| Error::storage(&where_, e))?,
        Err(e) => return Err(Error::storage(&where_, e)),
    };
    let in_file: Vec<String> =
        wanted.iter().filter(|n| !def.partition_columns.contains(&n.as_str())).cloned().collect();
    // Decoding is CPU work: keep it off the async workers.
    let names = in_file.clone();
    let batches = tokio::task::spawn_blocking(move || {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), names.iter().map(String::as_str));
        builder.with_projection(mask).with_batch_size(65_536).build()?.collect::<std::result::Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
    .map_err(|e| Error::storage(&where_, e))?;
    let file_schema = Arc::new(deltalake::arrow::datatypes::Schema::new(
        in_file.iter().filter_map(|n| def.schema.field_with_name(n).ok().cloned()).collect::<Vec<_>>(),
    ));
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = file_schema
                .fields()
                .iter()
                .map(|f| {
                    let Some(c) = b.column_by_name(f.name()) else {
                        // A nullable column added to the table after this file was written
                        // (schema evolution) reads as nulls, as in every Delta reader.
                        if f.is_nullable() {
                            return Ok(deltalake::arrow::array::new_null_array(f.data_type(), b.num_rows()));
                        }
                        return Err(Error::storage(&where_, format!("column {} missing", f.name())));
                    };
                    deltalake::arrow::compute::cast(c, f.data_type()).map_err(|e| Error::storage(&where_, e))
                })
                .collect::<Result<Vec<_>>>()?;
            deltalake::arrow::record_batch::RecordBatch::try_new(file_schema.clone(), columns)
                .map_err(|e| Error::storage(&where_, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut df = from_record_batches(&file_schema, &batches).map_err(rows_error(id))?;
    let height = df.height();
    let polars = polars_error(id);
    for column in &def.partition_columns {
        if wanted.iter().any(|w| w == column) {
            // One value for the whole file: stored once, each row a view of it.
            let values = match file.partition_values.get(*column).cloned().flatten() {
                Some(value) => StringChunked::full((*column).into(), &value, height),
                None => StringChunked::full_null((*column).into(), height),
            };
            df.with_column(values.into_column()).map_err(&polars)?;
        }
    }
    if tag_files {
        // Likewise: a MERGE that rewrites files holds every surviving row with its file, and a
        // path copied into each row would cost more than the row.
        let files = StringChunked::full(FILE_COLUMN.into(), &file.path, height);
        df.with_column(files.into_column()).map_err(&polars)?;
    }
    // Keep the table's column order.
    let mut order: Vec<&str> = wanted.iter().map(String::as_str).collect();
    if tag_files {
        order.push(FILE_COLUMN);
    }
    df.select(order).map_err(polars)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
mod tests {
    use super::*;

    fn frame(topics: &[&str], weeks: &[&str]) -> DataFrame {
        let n = topics.len() as i64;
        df!("topic" => topics, "week_part" => weeks, "offset" => (0..n).collect::<Vec<_>>()).unwrap()
    }

    fn offsets(df: &DataFrame) -> Vec<i64> {
        df.column("offset").unwrap().i64().unwrap().into_no_null_iter().collect()
    }

    #[test]
    fn distinct_integers_are_delta_encoded_and_payloads_have_no_statistics() {
        use fitlake_frame::table::{int64, string, timestamp};
        let def = TableDef::new(
            fitlake_config::Layer::Bronze,
            "t",
            "a table",
            vec![string("value"), int64("offset"), timestamp("time"), string("id"), string("key")],
        )
        .distinct_valued(&["offset", "time", "id"])
        .payloads(&["value"]);
        let props = writer_properties(&def);
        let path = |name: &str| ColumnPath::from(name);
        for name in ["offset", "time"] {
            assert!(!props.dictionary_enabled(&path(name)), "{name}");
            assert_eq!(props.encoding(&path(name)), Some(Encoding::DELTA_BINARY_PACKED), "{name}");
        }
        // A distinct string has no dictionary and its default encoding (deltas are for integers).
        assert!(!props.dictionary_enabled(&path("id")));
        assert_eq!(props.encoding(&path("id")), None);
        assert!(!props.dictionary_enabled(&path("value")));
        assert_eq!(props.statistics_enabled(&path("value")), EnabledStatistics::None);
        assert_ne!(props.statistics_enabled(&path("offset")), EnabledStatistics::None);
        assert!(props.dictionary_enabled(&path("key")));
    }

    #[test]
    fn lane_shares_take_the_rows_in_order_across_frames() {
        let (first, second) = (frame(&["bpm"; 5], &["w"; 5]), frame(&["bpm"; 2], &["w"; 2]));
        let shares = lane_shares(&[&first, &second], 2);
        let rows = |share: &Vec<DataFrame>| share.iter().map(offsets).collect::<Vec<_>>();
        // Seven rows: four, then three (the first frame's last row and the second frame).
        assert_eq!(rows(&shares[0]), [vec![0, 1, 2, 3]]);
        assert_eq!(rows(&shares[1]), [vec![4], vec![0, 1]]);
        // More lanes than rows: the lanes past the rows get none.
        let shares = lane_shares(&[&second], 3);
        assert_eq!(shares.iter().map(|share| share.len()).collect::<Vec<_>>(), [1, 1, 0]);
    }

    #[test]
    fn a_chunk_of_one_partition_is_not_split() {
        let rows = frame(&["bpm"; 4], &["2023-10"; 4]);
        let parts = by_partition(&rows, &["topic", "week_part"]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(offsets(&parts[0]), [0, 1, 2, 3]);
    }

    #[test]
    fn mixed_partitions_split_in_row_order() {
        let rows = frame(
            &["bpm", "workout", "bpm", "bpm", "workout", "bpm"],
            &["2023-10", "2023-10", "2023-11", "2023-10", "2023-10", "2023-11"],
        );
        let parts = by_partition(&rows, &["topic", "week_part"]).unwrap();
        let got: Vec<(String, String, Vec<i64>)> = parts
            .iter()
            .map(|p| {
                let first = |c: &str| p.column(c).unwrap().str().unwrap().get(0).unwrap().to_string();
                let same = |c: &str| p.column(c).unwrap().str().unwrap().n_unique().unwrap();
                assert_eq!((same("topic"), same("week_part")), (1, 1));
                (first("topic"), first("week_part"), offsets(p))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("bpm".into(), "2023-10".into(), vec![0, 3]),
                ("workout".into(), "2023-10".into(), vec![1, 4]),
                ("bpm".into(), "2023-11".into(), vec![2, 5]),
            ]
        );
    }

    #[test]
    fn partitions_in_long_runs_are_sliced_not_gathered() {
        let topics: Vec<&str> = [("bpm", 3000), ("workout", 1500), ("bpm", 2000)]
            .iter()
            .flat_map(|&(topic, n)| std::iter::repeat_n(topic, n))
            .collect();
        let rows = frame(&topics, &vec!["2023-10"; topics.len()]);
        let parts = by_partition(&rows, &["topic", "week_part"]).unwrap();
        let spans: Vec<(String, i64, usize)> = parts
            .iter()
            .map(|p| (p.column("topic").unwrap().str().unwrap().get(0).unwrap().to_string(), offsets(p)[0], p.height()))
            .collect();
        assert_eq!(spans, [("bpm".into(), 0, 3000), ("workout".into(), 3000, 1500), ("bpm".into(), 4500, 2000)]);
        // The same rows alternating: one gathered frame per partition.
        let alternating: Vec<&str> = (0..6500).map(|i| if i % 2 == 0 { "bpm" } else { "workout" }).collect();
        let parts = by_partition(&frame(&alternating, &vec!["2023-10"; 6500]), &["topic", "week_part"]).unwrap();
        assert_eq!(parts.iter().map(DataFrame::height).collect::<Vec<_>>(), [3250, 3250]);
    }
}

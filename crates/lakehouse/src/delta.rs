//! Delta tables: create, open, read files into frames, and commit a step's adds, removes and
//! progress (`txn` actions) in one commit.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Remove, StructType, Transaction};
use deltalake::logstore::get_actions;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError, ObjectStore, Path, TableProperty};
use fitlake_frame::{from_record_batches, to_record_batches, TableDef, FILE_COLUMN};
use fitlake_governance::Privilege;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use polars::prelude::*;

use crate::access::{Access, Need};
use crate::fault;
use crate::{Error, Result};

/// Commits between two Delta checkpoints of a table fitlake creates (`delta.checkpointInterval`).
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// How a commit changes its table, for the Delta history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Rows appended (bronze, insert-only merges).
    Append,
    /// A copy-on-write MERGE (files removed and rewritten).
    Merge,
}

/// An open managed table.
pub struct Table {
    /// What the table is.
    pub def: TableDef,
    /// The deltalake handle, at the latest version loaded.
    pub delta: DeltaTable,
    /// Who uses it: commits ask the policy for `MODIFY`.
    access: Access,
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
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({}@{:?})", self.def.qualified_name(), self.delta.version())
    }
}

fn delta_error(def: &TableDef) -> impl Fn(DeltaTableError) -> Error + '_ {
    move |source| Error::Delta { table: def.qualified_name(), source }
}

impl Table {
    /// Creates the table if it does not exist (idempotent; `CREATE TABLE` on its schema) and
    /// opens it.
    pub async fn create(access: &Access, def: &TableDef) -> Result<Table> {
        access.check(&Need::CreateTable(def.layer))?;
        let url = access.lakehouse.table_url(def.layer, def.name);
        if let Some(path) = fitlake_config::local_path(&url) {
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::Storage { location: path.display().to_string(), message: e.to_string() })?;
        }
        let table = access.stores.delta_table(&url).await.map_err(delta_error(def))?;
        if table.version().is_some() {
            return Ok(Table { def: def.clone(), delta: table, access: access.clone() });
        }
        let schema: StructType = def.schema.as_ref().try_into_kernel().map_err(|e| Error::Internal(e.to_string()))?;
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
            .await
            .map_err(delta_error(def))?;
        Ok(Table { def: def.clone(), delta: created, access: access.clone() })
    }

    /// Opens an existing table to read it (`SELECT`); a missing one is a "run setup first"
    /// error.
    pub async fn open(access: &Access, def: &TableDef) -> Result<Table> {
        access.check_table(def, Privilege::Select)?;
        let url = access.lakehouse.table_url(def.layer, def.name);
        let not_set_up = || Error::NotSetUp { table: def.qualified_name(), location: url.to_string() };
        if fitlake_config::local_path(&url).is_some_and(|p| !p.join("_delta_log").is_dir()) {
            return Err(not_set_up());
        }
        let table = match access.stores.delta_table(&url).await {
            Ok(table) => table,
            Err(DeltaTableError::InvalidTableLocation(_) | DeltaTableError::NotATable(_)) => return Err(not_set_up()),
            Err(e) => return Err(delta_error(def)(e)),
        };
        if table.version().is_none() {
            return Err(not_set_up());
        }
        Ok(Table { def: def.clone(), delta: table, access: access.clone() })
    }

    /// The loaded version.
    pub fn version(&self) -> i64 {
        self.delta.version().map_or(-1, |v| v as i64)
    }

    /// Loads the newest version.
    pub async fn refresh(&mut self) -> Result<()> {
        self.delta.update_state().await.map_err(delta_error(&self.def))
    }

    /// The last version a step recorded under `app_id` in this table, if any.
    pub async fn progress(&self, app_id: &str) -> Result<Option<i64>> {
        let state = self.delta.snapshot().map_err(delta_error(&self.def))?;
        state.transaction_version(self.delta.log_store().as_ref(), app_id).await.map_err(delta_error(&self.def))
    }

    /// The log's `add` actions of the active files as a frame (`path`, `size_bytes`,
    /// `num_records`, `min.*`, `max.*`, `partition.*`).
    fn file_index(&self) -> Result<DataFrame> {
        let state = self.delta.snapshot().map_err(delta_error(&self.def))?;
        let actions = state.add_actions_table(true).map_err(delta_error(&self.def))?;
        Ok(from_record_batches(&actions.schema(), std::slice::from_ref(&actions))?)
    }

    /// The active data files, with the range of `stats_column` (an integer or timestamp column)
    /// when asked.
    pub fn files(&self, stats_column: Option<&str>) -> Result<Vec<DataFile>> {
        let index = self.file_index()?;
        let paths: Vec<String> =
            index.column("path")?.str()?.iter().map(|p| p.unwrap_or_default().to_string()).collect();
        let sizes: Vec<i64> = index.column("size_bytes")?.i64()?.iter().map(|s| s.unwrap_or(0)).collect();
        let mut partitions: Vec<HashMap<String, Option<String>>> = vec![HashMap::new(); paths.len()];
        for column in &self.def.partition_columns {
            if let Ok(values) = index.column(&format!("partition.{column}")) {
                let values = values.cast(&DataType::String)?;
                for (i, v) in values.str()?.iter().enumerate() {
                    partitions[i].insert(column.to_string(), v.map(str::to_string));
                }
            }
        }
        let range_of = |prefix: &str| -> Result<Vec<Option<i64>>> {
            let name = format!("{prefix}.{}", stats_column.unwrap_or_default());
            match (stats_column, index.column(&name)) {
                (Some(_), Ok(c)) => Ok(c.to_physical_repr().cast(&DataType::Int64)?.i64()?.iter().collect()),
                _ => Ok(vec![None; paths.len()]),
            }
        };
        let (mins, maxs) = (range_of("min")?, range_of("max")?);
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
            })
            .collect())
    }

    /// Number of rows in the table, from the log's file statistics.
    pub fn row_count(&self) -> Result<u64> {
        let index = self.file_index()?;
        let counts = index.column("num_records")?.cast(&DataType::Int64)?;
        Ok(counts.i64()?.sum().unwrap_or(0).max(0) as u64)
    }

    /// The `add` and `remove` actions of the commits after `version` up to the loaded one
    /// (from the first commit when `version` is `None`).
    async fn data_actions_since(&self, version: Option<i64>) -> Result<Vec<Action>> {
        let log_store = self.delta.log_store();
        let mut actions = Vec::new();
        for v in (version.unwrap_or(-1) + 1)..=self.version() {
            let Some(bytes) = log_store.read_commit_entry(v as u64).await.map_err(delta_error(&self.def))? else {
                return Err(Error::Checkpoint {
                    location: format!("{} version {v}", self.def.qualified_name()),
                    message: "the commit is gone from the log (cleaned up?); the step cannot tell what is new".into(),
                });
            };
            let entry = get_actions(v as u64, &bytes).map_err(delta_error(&self.def))?;
            actions.extend(entry.into_iter().filter(|a| matches!(a, Action::Add(_) | Action::Remove(_))));
        }
        Ok(actions)
    }

    /// True when a commit after `version` added or removed data files (commits that only
    /// record a step's progress change no rows).
    pub async fn data_changed_since(&self, version: Option<i64>) -> Result<bool> {
        Ok(!self.data_actions_since(version).await?.is_empty())
    }

    /// The active files added by the commits after `version` (all active files when `version`
    /// is `None`), with the range of `stats_column` as in [`Table::files`].
    pub async fn files_added_since(&self, version: Option<i64>, stats_column: Option<&str>) -> Result<Vec<DataFile>> {
        let active = self.files(stats_column)?;
        if version.is_none() {
            return Ok(active);
        }
        let added: std::collections::HashSet<String> = self
            .data_actions_since(version)
            .await?
            .into_iter()
            .filter_map(|a| match a {
                Action::Add(add) => Some(add.path),
                _ => None,
            })
            .collect();
        Ok(active.into_iter().filter(|f| added.contains(&f.path)).collect())
    }

    /// Reads `files` (all columns of the table schema, or `columns`), adding partition columns
    /// and, when `tag_files`, the [`FILE_COLUMN`] naming each row's file.
    pub async fn read(&self, files: &[DataFile], columns: Option<&[&str]>, tag_files: bool) -> Result<DataFrame> {
        let store = self.delta.log_store().object_store(None);
        let wanted: Vec<String> = self
            .def
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| columns.is_none_or(|c| c.contains(&n.as_str())))
            .collect();
        let frames: Vec<DataFrame> = futures::stream::iter(files.iter().cloned())
            .map(|file| {
                let store = store.clone();
                let def = self.def.clone();
                let wanted = wanted.clone();
                tokio::spawn(async move { read_file(store, &def, &file, &wanted, tag_files).await })
            })
            .buffered(4)
            .map(|joined| joined.map_err(|e| Error::Internal(e.to_string()))?)
            .try_collect()
            .await?;
        let empty = || -> Result<DataFrame> {
            let schema = Arc::new(deltalake::arrow::datatypes::Schema::new(
                self.def.schema.fields().iter().filter(|f| wanted.contains(f.name())).cloned().collect::<Vec<_>>(),
            ));
            let mut df = from_record_batches(&schema, &[])?;
            if tag_files {
                df.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
            }
            Ok(df)
        };
        if frames.is_empty() {
            return empty();
        }
        let lazy: Vec<LazyFrame> = frames.into_iter().map(|f| f.lazy()).collect();
        Ok(concat(lazy, UnionArgs::default())?.collect()?)
    }

    /// Reads the whole table.
    pub async fn read_all(&self, tag_files: bool) -> Result<DataFrame> {
        let files = self.files(None)?;
        self.read(&files, None, tag_files).await
    }

    /// A writer for new data files of this table; nothing is visible until [`Table::commit`].
    pub fn stage(&self) -> Result<Staged> {
        self.access.check_table(&self.def, Privilege::Modify)?;
        let writer = RecordBatchWriter::for_table(&self.delta).map_err(delta_error(&self.def))?;
        Ok(Staged { writer, schema: self.def.schema.clone(), table: self.def.qualified_name(), rows: 0 })
    }

    /// Writes `rows` as new data files and commits them with the removal of `removes` and the
    /// step progress `txns`, in one Delta commit (see [`Table::commit`]).
    pub async fn commit_rows(
        &mut self,
        rows: &DataFrame,
        removes: &[String],
        txns: &[(String, i64)],
        operation: Operation,
    ) -> Result<Option<i64>> {
        let mut staged = self.stage()?;
        staged.write(rows).await?;
        self.commit(staged, removes, txns, operation).await
    }

    /// Commits the staged files with the removal of `removes` and the step progress `txns`,
    /// in one Delta commit. With nothing to add or remove and no progress, nothing is
    /// committed. Returns the new version, if any.
    pub async fn commit(
        &mut self,
        mut staged: Staged,
        removes: &[String],
        txns: &[(String, i64)],
        operation: Operation,
    ) -> Result<Option<i64>> {
        self.access.check_table(&self.def, Privilege::Modify)?;
        let err = delta_error(&self.def);
        let mut adds: Vec<Action> = staged.writer.flush().await.map_err(&err)?.into_iter().map(Action::Add).collect();
        if adds.is_empty() && removes.is_empty() && txns.is_empty() {
            return Ok(None);
        }
        fault::point("after-write", self.def.name);
        let now = chrono::Utc::now().timestamp_millis();
        let known: HashMap<String, DataFile> = if removes.is_empty() {
            HashMap::new()
        } else {
            self.files(None)?.into_iter().map(|f| (f.path.clone(), f)).collect()
        };
        for path in removes {
            let file = known.get(path);
            adds.push(Action::Remove(Remove {
                path: path.clone(),
                data_change: true,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: file.map(|f| f.partition_values.clone()),
                size: file.map(|f| f.size),
                ..Default::default()
            }));
        }
        let partition_by = (!self.def.partition_columns.is_empty())
            .then(|| self.def.partition_columns.iter().map(|c| c.to_string()).collect());
        let operation = match operation {
            Operation::Append => DeltaOperation::Write { mode: SaveMode::Append, partition_by, predicate: None },
            Operation::Merge => DeltaOperation::Merge {
                predicate: None,
                merge_predicate: Some(format!("key ({})", self.def.keys.join(", "))),
                matched_predicates: vec![MergePredicate { action_type: "update".into(), predicate: None }],
                not_matched_predicates: vec![MergePredicate { action_type: "insert".into(), predicate: None }],
                not_matched_by_source_predicates: vec![],
            },
        };
        let properties = CommitProperties::default()
            .with_application_transactions(txns.iter().map(|(app, v)| Transaction::new(app, *v)).collect());
        let snapshot = self.delta.snapshot().map_err(&err)?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(adds)
            .build(Some(snapshot), self.delta.log_store(), operation)
            .await
            .map_err(&err)?;
        let version = finalized.version() as i64;
        self.delta.state = Some(finalized.snapshot());
        fault::point("after-commit", self.def.name);
        Ok(Some(version))
    }
}

/// New data files of a table being written, not yet committed.
pub struct Staged {
    writer: RecordBatchWriter,
    schema: deltalake::arrow::datatypes::SchemaRef,
    table: String,
    rows: u64,
}

impl Staged {
    /// Writes rows (any column order; columns are matched by name and cast to the table
    /// schema).
    pub async fn write(&mut self, rows: &DataFrame) -> Result<()> {
        if rows.height() == 0 {
            return Ok(());
        }
        for batch in to_record_batches(rows, &self.schema)? {
            self.writer.write(batch).await.map_err(|source| Error::Delta { table: self.table.clone(), source })?;
        }
        self.rows += rows.height() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

async fn read_file(
    store: Arc<dyn ObjectStore>,
    def: &TableDef,
    file: &DataFile,
    wanted: &[String],
    tag_files: bool,
) -> Result<DataFrame> {
    let location = Path::from_url_path(&file.path).unwrap_or_else(|_| Path::from(file.path.as_str()));
    let storage_error = |e: &dyn std::fmt::Display| Error::Storage {
        location: format!("{}/{}", def.qualified_name(), file.path),
        message: e.to_string(),
    };
    let bytes =
        store.get(&location).await.map_err(|e| storage_error(&e))?.bytes().await.map_err(|e| storage_error(&e))?;
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
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| storage_error(&e))?;
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
                    let c = b
                        .column_by_name(f.name())
                        .ok_or_else(|| storage_error(&format!("column {} missing", f.name())))?;
                    Ok(deltalake::arrow::compute::cast(c, f.data_type())?)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(deltalake::arrow::record_batch::RecordBatch::try_new(file_schema.clone(), columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut df = from_record_batches(&file_schema, &batches)?;
    let height = df.height();
    for column in &def.partition_columns {
        if wanted.iter().any(|w| w == column) {
            let value = file.partition_values.get(*column).cloned().flatten();
            df.with_column(Column::new((*column).into(), vec![value; height]))?;
        }
    }
    if tag_files {
        df.with_column(Column::new(FILE_COLUMN.into(), vec![file.path.as_str(); height]))?;
    }
    // Keep the table's column order.
    let mut order: Vec<&str> = wanted.iter().map(String::as_str).collect();
    if tag_files {
        order.push(FILE_COLUMN);
    }
    Ok(df.select(order)?)
}

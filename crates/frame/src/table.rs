//! What a managed table is: its layer, name, Arrow schema, partitioning and merge keys.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use fitlake_config::Layer;

/// The definition of one managed Delta table.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The layer (schema) it belongs to.
    pub layer: Layer,
    /// The table name, also its directory.
    pub name: &'static str,
    /// One sentence on what a row means.
    pub description: &'static str,
    /// The Arrow schema of its rows, partition columns included.
    pub schema: SchemaRef,
    /// Partition columns, in order.
    pub partition_columns: Vec<&'static str>,
    /// The columns that identify a row (its MERGE key); empty for append-only tables.
    pub keys: Vec<&'static str>,
    /// Columns whose values are nearly all distinct (times, offsets): written without a Parquet
    /// dictionary, which for them is built, found too large and dropped on every row group;
    /// integer ones as the differences between neighbouring values (`DELTA_BINARY_PACKED`),
    /// which for times and offsets are small.
    pub distinct_columns: Vec<&'static str>,
    /// Columns holding raw payloads (bronze's `value`): besides having no dictionary, written
    /// without min/max statistics, which for them cost a comparison of long texts per row and
    /// prune nothing (Delta's `delta.dataSkippingStatsColumns` leaves such columns out too).
    pub payload_columns: Vec<&'static str>,
}

impl TableDef {
    /// A table definition from its parts.
    pub fn new(layer: Layer, name: &'static str, description: &'static str, fields: Vec<Field>) -> Self {
        Self {
            layer,
            name,
            description,
            schema: Arc::new(Schema::new(fields)),
            partition_columns: Vec::new(),
            keys: Vec::new(),
            distinct_columns: Vec::new(),
            payload_columns: Vec::new(),
        }
    }

    /// The same table, with `columns` written without a dictionary (see
    /// [`TableDef::distinct_columns`]).
    pub fn distinct_valued(mut self, columns: &[&'static str]) -> Self {
        self.distinct_columns = columns.to_vec();
        self
    }

    /// The same table, with `columns` written as payloads: no dictionary and no statistics (see
    /// [`TableDef::payload_columns`]).
    pub fn payloads(mut self, columns: &[&'static str]) -> Self {
        self.payload_columns = columns.to_vec();
        self
    }

    /// The same table, partitioned by `columns`.
    pub fn partitioned_by(mut self, columns: &[&'static str]) -> Self {
        self.partition_columns = columns.to_vec();
        self
    }

    /// The same table, keyed by `columns`.
    pub fn keyed_by(mut self, columns: &[&'static str]) -> Self {
        self.keys = columns.to_vec();
        self
    }

    /// `layer.name`, as analysts write it.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.layer, self.name)
    }

    /// The Polars type of each column, as a frame of the table's rows has it (times as naive
    /// `datetime[μs]`: fitlake stores UTC only).
    pub fn polars_schema(&self) -> polars::prelude::Schema {
        self.schema.fields().iter().map(|f| (f.name().as_str().into(), polars_type(f.data_type()))).collect()
    }

    /// Checks that `df` holds the table's rows: every column of the schema, with its Polars
    /// type, and no null in a required column. Extra columns are allowed (a transform's input
    /// may carry the file column of a MERGE). The error names the first column that is
    /// missing, mistyped or null.
    ///
    /// ```
    /// use fitlake_config::Layer;
    /// use fitlake_frame::table::{int64, string, TableDef};
    /// use polars::prelude::*;
    ///
    /// let def = TableDef::new(Layer::Silver, "users", "One row per user.", vec![int64("user_id"), string("mac_address")]);
    /// assert!(def.validate(&df!("user_id" => [1i64], "mac_address" => ["m"])?).is_ok());
    /// let err = def.validate(&df!("user_id" => ["1"], "mac_address" => ["m"])?).unwrap_err();
    /// assert_eq!(err.to_string(), "silver.users: column user_id is str, expected i64");
    /// let err = def.validate(&df!("user_id" => [1i64])?).unwrap_err();
    /// assert_eq!(err.to_string(), "silver.users: column mac_address (str) is missing");
    /// # Ok::<(), PolarsError>(())
    /// ```
    pub fn validate(&self, df: &polars::prelude::DataFrame) -> Result<(), SchemaMismatch> {
        let mismatch = |problem: String| SchemaMismatch { table: self.qualified_name(), problem };
        for field in self.schema.fields() {
            let want = polars_type(field.data_type());
            let Ok(column) = df.column(field.name()) else {
                return Err(mismatch(format!("column {} ({want}) is missing", field.name())));
            };
            let same = match (column.dtype(), &want) {
                (polars::prelude::DataType::Datetime(a, _), polars::prelude::DataType::Datetime(b, _)) => a == b,
                (got, want) => got == want,
            };
            if !same {
                return Err(mismatch(format!("column {} is {}, expected {want}", field.name(), column.dtype())));
            }
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(mismatch(format!(
                    "column {} is required but has {} nulls",
                    field.name(),
                    column.null_count()
                )));
            }
        }
        Ok(())
    }
}

/// A frame that does not hold a table's rows ([`TableDef::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: {problem}")]
pub struct SchemaMismatch {
    /// The qualified table name.
    pub table: String,
    /// The first column that is missing, mistyped or null.
    pub problem: String,
}

/// The Polars type a frame gives an Arrow column of a Delta table.
fn polars_type(data_type: &DataType) -> polars::prelude::DataType {
    use polars::prelude::{DataType as P, TimeUnit as U};
    match data_type {
        DataType::Int64 => P::Int64,
        DataType::Int32 => P::Int32,
        DataType::Float64 => P::Float64,
        DataType::Boolean => P::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => P::String,
        DataType::Date32 => P::Date,
        DataType::Timestamp(TimeUnit::Microsecond, _) => P::Datetime(U::Microseconds, None),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => P::Datetime(U::Nanoseconds, None),
        DataType::Timestamp(TimeUnit::Millisecond, _) => P::Datetime(U::Milliseconds, None),
        // fitlake's tables use none of the others; the catalog's test checks every column maps.
        _ => P::Unknown(polars::prelude::UnknownKind::Any),
    }
}

/// A required 64-bit integer column.
pub fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

/// A nullable 64-bit integer column.
pub fn int64_null(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

/// A 32-bit integer column.
pub fn int32(name: &str) -> Field {
    Field::new(name, DataType::Int32, false)
}

/// A required string column.
pub fn string(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

/// A nullable string column.
pub fn string_null(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// A double column.
pub fn float64(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// A boolean column.
pub fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, false)
}

/// A date column.
pub fn date(name: &str) -> Field {
    Field::new(name, DataType::Date32, true)
}

/// The Delta `TIMESTAMP` type: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A required timestamp column.
pub fn timestamp(name: &str) -> Field {
    Field::new(name, timestamp_type(), false)
}

/// A nullable timestamp column.
pub fn timestamp_null(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}

/// The Delta type name (as in the log's `schemaString`; Spark SQL shows `long` as `bigint` and
/// `integer` as `int`) of an Arrow type fitlake's tables use.
///
/// ```
/// use arrow::datatypes::{DataType, TimeUnit};
/// assert_eq!(fitlake_frame::delta_type_name(&DataType::Int64), "long");
/// assert_eq!(fitlake_frame::delta_type_name(&DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))), "timestamp");
/// ```
pub fn delta_type_name(data_type: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType::*;
    match data_type {
        Boolean => "boolean".into(),
        Int8 => "byte".into(),
        Int16 => "short".into(),
        Int32 => "integer".into(),
        Int64 => "long".into(),
        Float32 => "float".into(),
        Float64 => "double".into(),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView => "binary".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(_, Some(_)) => "timestamp".into(),
        Timestamp(_, None) => "timestamp_ntz".into(),
        Decimal128(precision, scale) => format!("decimal({precision},{scale})"),
        List(field) | LargeList(field) => format!("array<{}>", delta_type_name(field.data_type())),
        other => other.to_string(),
    }
}

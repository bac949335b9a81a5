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
        }
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

//! Polars <-> arrow-rs through the Arrow C Data Interface.
//!
//! Polars exports string views and may hold many chunks; Delta tables want `Utf8` and
//! `Timestamp(Microsecond, "UTC")`. Frames in fitlake hold times as naive UTC datetimes;
//! the UTC label is added on the way to Arrow and dropped on the way back.

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use polars::prelude::{Column, CompatLevel, DataFrame, IntoColumn, PlSmallStr, Series};
use polars_arrow::ffi as pl_ffi;

use crate::{Error, Result};

/// Converts a frame to record batches with exactly the columns and types of `schema`.
///
/// Columns are matched by name; a column missing from the frame is filled with nulls when the
/// schema allows it and is an error otherwise. Extra frame columns are ignored.
pub fn to_record_batches(df: &DataFrame, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let mut df = df.clone();
    df.align_chunks_par();
    let n_chunks = if df.width() == 0 { 1 } else { df.first_col_n_chunks().max(1) };
    let mut batches = Vec::with_capacity(n_chunks);
    for chunk in 0..n_chunks {
        // Each column as row ranges of arrays (one range but for strings left in place).
        let mut columns: Vec<Vec<(usize, ArrayRef)>> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let pieces = match df.column(field.name()) {
                Ok(column) => {
                    let series = column.as_materialized_series();
                    let exported = export_series_chunk(series, chunk)?;
                    match strings_in_place(&exported, field.data_type()) {
                        Some(pieces) => pieces,
                        None => vec![(0, conform(&exported, field.data_type())?)],
                    }
                }
                Err(_) if field.is_nullable() => {
                    let len = chunk_len(&df, chunk);
                    vec![(0, new_null_array(field.data_type(), len))]
                }
                Err(_) => return Err(Error::MissingColumn { column: field.name().clone() }),
            };
            columns.push(pieces);
        }
        let rows = columns.first().map_or_else(|| chunk_len(&df, chunk), |c| c.iter().map(|(_, a)| a.len()).sum());
        // A batch wherever some column's pieces begin, so that each is a slice of one piece.
        let mut starts: Vec<usize> = columns.iter().flatten().map(|(start, _)| *start).filter(|s| *s < rows).collect();
        starts.push(0);
        starts.sort_unstable();
        starts.dedup();
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(rows);
            let arrays = columns.iter().map(|pieces| {
                let at = pieces.partition_point(|(first, _)| *first <= start) - 1;
                let (first, array) = &pieces[at];
                if start == *first && array.len() == end - start {
                    array.clone()
                } else {
                    array.slice(start - first, end - start)
                }
            });
            let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(end - start));
            batches.push(RecordBatch::try_new_with_options(schema.clone(), arrays.collect(), &options)?);
        }
    }
    Ok(batches.into_iter().filter(|b| b.num_rows() > 0 || n_chunks == 1).collect())
}

/// A string-view array as plain `Utf8` without copying a value, when its values lie end to end
/// in its data buffers (as a builder appends them and a filter that keeps every row leaves
/// them): one array per buffer, each with its first row. `None` when they do not (a value
/// inlined in its view, rows taken out or reordered), and then a cast copies them.
fn strings_in_place(array: &ArrayRef, target: &DataType) -> Option<Vec<(usize, ArrayRef)>> {
    use arrow::array::{AsArray, ByteView, StringArray, MAX_INLINE_VIEW_LEN};
    use arrow::buffer::{OffsetBuffer, ScalarBuffer};
    if !(array.data_type() == &DataType::Utf8View && target == &DataType::Utf8) || array.is_empty() {
        return None;
    }
    let strings = array.as_string_view();
    let buffers = strings.data_buffers();
    let mut pieces = Vec::new();
    // The piece being built: its first row, buffer, first byte and offsets so far.
    let (mut first_row, mut buffer, mut base, mut end) = (0, None::<usize>, 0usize, 0usize);
    let mut offsets: Vec<i32> = vec![0];
    let close =
        |first_row: usize, row: usize, buffer: Option<usize>, base: usize, end: usize, offsets: &mut Vec<i32>| {
            let values = buffer.map_or_else(
                || arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
                |b| buffers[b].slice_with_length(base, end - base),
            );
            let nulls = strings.nulls().map(|n| n.slice(first_row, row - first_row));
            let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
            // SAFETY: the offsets rise from 0 to the values' length (checked by `OffsetBuffer::new`
            // above), and each range between two of them is one whole value of a valid string
            // array, so every value is valid UTF-8.
            let piece = unsafe { StringArray::new_unchecked(offsets, values, nulls) };
            (first_row, std::sync::Arc::new(piece) as ArrayRef)
        };
    for (row, &view) in strings.views().iter().enumerate() {
        let view = ByteView::from(view);
        let length = view.length as usize;
        if length > 0 && strings.is_valid(row) {
            if view.length <= MAX_INLINE_VIEW_LEN {
                return None;
            }
            let (at, offset) = (view.buffer_index as usize, view.offset as usize);
            match buffer {
                Some(b) if b == at && offset == end => {}
                Some(b) if b == at => return None,
                _ => {
                    if row > 0 {
                        pieces.push(close(first_row, row, buffer, base, end, &mut offsets));
                    }
                    (first_row, buffer, base, end) = (row, Some(at), offset, offset);
                }
            }
            end += length;
        }
        offsets.push(i32::try_from(end - base).ok()?);
    }
    pieces.push(close(first_row, strings.len(), buffer, base, end, &mut offsets));
    Some(pieces)
}

/// The Arrow schema a frame's columns export as, strings and binaries as plain `Utf8` and
/// `Binary` (what every Arrow writer reads): with [`to_record_batches`], any frame, such as a
/// query result, becomes record batches for a CSV, JSON or Parquet writer.
pub fn frame_schema(df: &DataFrame) -> Result<SchemaRef> {
    let mut fields = Vec::with_capacity(df.width());
    for column in df.columns() {
        let field = column.field().to_arrow(CompatLevel::newest());
        let c_schema = pl_ffi::export_field_to_c(&field);
        // SAFETY: see `export_series_chunk`; the layout is fixed by the C Data Interface.
        let c_schema = unsafe { std::mem::transmute::<pl_ffi::ArrowSchema, FFI_ArrowSchema>(c_schema) };
        let field = arrow::datatypes::Field::try_from(&c_schema)?;
        let plain = match field.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            other => other.clone(),
        };
        fields.push(field.with_data_type(plain).with_nullable(true));
    }
    Ok(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)))
}

/// Casts an array to `target`; a naive microsecond timestamp only gets the UTC label (frames
/// hold UTC), which costs nothing, where a cast would convert through the time-zone database.
fn conform(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    use arrow::array::AsArray;
    use arrow::datatypes::{TimeUnit, TimestampMicrosecondType};
    match (array.data_type(), target) {
        (DataType::Timestamp(TimeUnit::Microsecond, None), DataType::Timestamp(TimeUnit::Microsecond, Some(tz)))
            if tz.as_ref() == "UTC" =>
        {
            Ok(std::sync::Arc::new(array.as_primitive::<TimestampMicrosecondType>().clone().with_timezone(tz.clone())))
        }
        _ => Ok(cast(array, target)?),
    }
}

fn chunk_len(df: &DataFrame, chunk: usize) -> usize {
    df.columns()
        .first()
        .map(|c| c.as_materialized_series().chunks().get(chunk).map_or(0, |a| a.len()))
        .unwrap_or(df.height())
}

fn export_series_chunk(series: &Series, chunk: usize) -> Result<ArrayRef> {
    let array = series.to_arrow(chunk, CompatLevel::newest());
    let field = series.field().to_arrow(CompatLevel::newest());
    let c_array = pl_ffi::export_array_to_c(array);
    let c_schema = pl_ffi::export_field_to_c(&field);
    // SAFETY: both crates implement the Arrow C Data Interface: the structs are `#[repr(C)]`
    // with the layout fixed by the specification, so the bytes mean the same on both sides;
    // ownership (the release callback) moves with the value.
    let (c_array, c_schema) = unsafe {
        (
            std::mem::transmute::<pl_ffi::ArrowArray, FFI_ArrowArray>(c_array),
            std::mem::transmute::<pl_ffi::ArrowSchema, FFI_ArrowSchema>(c_schema),
        )
    };
    // SAFETY: the structs were produced by a conforming exporter just above.
    let data = unsafe { arrow::ffi::from_ffi(c_array, &c_schema) }?;
    Ok(arrow::array::make_array(data))
}

/// Converts record batches (all with the same schema) to one frame.
///
/// `Timestamp` columns lose their time-zone label (fitlake stores UTC only) and become naive
/// Polars datetimes of the same unit.
pub fn from_record_batches(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<DataFrame> {
    let mut columns: Vec<Column> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let plain_type = strip_time_zone(field.data_type());
        let mut chunks: Vec<Box<dyn polars_arrow::array::Array>> = Vec::with_capacity(batches.len());
        for batch in batches {
            let array = batch.column(i);
            let array = if array.data_type() == &plain_type { array.clone() } else { cast(array, &plain_type)? };
            chunks.push(import_array(&array)?);
        }
        let series = if chunks.is_empty() {
            let empty = new_null_array(&plain_type, 0);
            Series::from_arrow(PlSmallStr::from(field.name().as_str()), import_array(&empty)?)?
        } else {
            Series::from_arrow_chunks(PlSmallStr::from(field.name().as_str()), chunks)?
        };
        columns.push(series.into_column());
    }
    let height = batches.iter().map(|b| b.num_rows()).sum();
    Ok(DataFrame::new(height, columns)?)
}

fn strip_time_zone(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, None),
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}

fn import_array(array: &ArrayRef) -> Result<Box<dyn polars_arrow::array::Array>> {
    let (c_array, c_schema) = arrow::ffi::to_ffi(&array.to_data())?;
    // SAFETY: see `export_series_chunk`; the layouts are fixed by the C Data Interface.
    let (c_array, c_schema) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowArray, pl_ffi::ArrowArray>(c_array),
            std::mem::transmute::<FFI_ArrowSchema, pl_ffi::ArrowSchema>(c_schema),
        )
    };
    // SAFETY: produced by arrow-rs' conforming exporter just above.
    let field = unsafe { pl_ffi::import_field_from_c(&c_schema) }?;
    // SAFETY: as above; the array matches the schema it was exported with.
    let imported = unsafe { pl_ffi::import_array_from_c(c_array, field.dtype().clone()) }?;
    Ok(imported)
}

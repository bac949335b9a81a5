//! What `fitlake sql` and `fitlake report` write: a query's rows as a text table, CSV, JSON or
//! Parquet; the report's page and PNG charts.

use std::io::Write;
use std::path::Path;

use fitlake_pipeline::Error;
use polars::prelude::DataFrame;

use crate::cli::SqlFormat;

/// Writes a query's rows to `out` (standard output when `None`) in `format`; the text table
/// shows at most `limit` rows (set through `POLARS_FMT_MAX_ROWS` at start-up).
pub fn write(rows: &DataFrame, format: SqlFormat, out: Option<&Path>, limit: usize) -> Result<(), Error> {
    let bytes = render(rows, format, limit)?;
    let io = |what: &str, e: std::io::Error| Error::Config(format!("sql: cannot write {what}: {e}"));
    match out {
        Some(path) => std::fs::write(path, bytes).map_err(|e| io(&path.display().to_string(), e)),
        None if format == SqlFormat::Parquet => {
            Err(Error::Config("sql: --format parquet writes a file: give --out FILE".into()))
        }
        None => std::io::stdout().lock().write_all(&bytes).map_err(|e| io("standard output", e)),
    }
}

/// Writes `DIR/index.html` and, with `png`, `DIR/<chart>.png` for every chart.
pub fn write_report(report: &fitlake_report::Report, dir: &Path, png: bool) -> Result<(), Error> {
    let io = |path: &Path, e: std::io::Error| Error::Config(format!("report: cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let page = dir.join("index.html");
    std::fs::write(&page, &report.html).map_err(|e| io(&page, e))?;
    if png {
        for (id, chart) in &report.charts {
            let bytes = chart.png().map_err(|e| Error::Internal(e.into()))?;
            let path = dir.join(format!("{id}.png"));
            std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

/// The bytes of `rows` in `format`.
pub fn render(rows: &DataFrame, format: SqlFormat, limit: usize) -> Result<Vec<u8>, Error> {
    if format == SqlFormat::Table {
        return Ok(format!("{} ({} rows)\n", rows.head(Some(limit)), rows.height()).into_bytes());
    }
    let bug = |e: &dyn std::fmt::Display| Error::Internal(format!("writing a query result: {e}").into());
    let schema = fitlake_frame::frame_schema(rows).map_err(|e| bug(&e))?;
    let batches = fitlake_frame::to_record_batches(rows, &schema).map_err(|e| bug(&e))?;
    let mut bytes = Vec::new();
    match format {
        SqlFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut bytes);
            for batch in &batches {
                writer.write(batch).map_err(|e| bug(&e))?;
            }
        }
        SqlFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut bytes);
            for batch in &batches {
                writer.write(batch).map_err(|e| bug(&e))?;
            }
            writer.finish().map_err(|e| bug(&e))?;
            if bytes.is_empty() {
                bytes.extend_from_slice(b"[]");
            }
            bytes.push(b'\n');
        }
        SqlFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, Some(props)).map_err(|e| bug(&e))?;
            for batch in &batches {
                writer.write(batch).map_err(|e| bug(&e))?;
            }
            writer.close().map_err(|e| bug(&e))?;
        }
        SqlFormat::Table => unreachable!("returned above"),
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
mod tests {
    use super::*;
    use polars::prelude::*;

    fn rows() -> DataFrame {
        let login = chrono::NaiveDate::from_ymd_opt(2023, 3, 14).unwrap().and_hms_milli_opt(8, 0, 1, 250).unwrap();
        let df = df!(
            "gym" => [1i64, 2],
            "mac" => [Some("aa:bb"), None],
            "minutes" => [12.5f64, 0.0],
            "login" => [login, login],
        )
        .unwrap();
        df.lazy().with_column(col("login").cast(DataType::Datetime(TimeUnit::Microseconds, None))).collect().unwrap()
    }

    #[test]
    fn csv_and_json_carry_every_row_and_exact_times() {
        let csv = String::from_utf8(render(&rows(), SqlFormat::Csv, 1).unwrap()).unwrap();
        insta::assert_snapshot!(csv, @r"
        gym,mac,minutes,login
        1,aa:bb,12.5,2023-03-14T08:00:01.250
        2,,0.0,2023-03-14T08:00:01.250
        ");
        let json = String::from_utf8(render(&rows(), SqlFormat::Json, 1).unwrap()).unwrap();
        insta::assert_snapshot!(json, @r#"[{"gym":1,"mac":"aa:bb","minutes":12.5,"login":"2023-03-14T08:00:01.250"},{"gym":2,"minutes":0.0,"login":"2023-03-14T08:00:01.250"}]"#);
        let empty = rows().head(Some(0));
        assert_eq!(render(&empty, SqlFormat::Json, 1).unwrap(), b"[]\n");
    }

    #[test]
    fn parquet_reads_back_as_the_same_rows() {
        let bytes = render(&rows(), SqlFormat::Parquet, 1).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let back = fitlake_frame::from_record_batches(&batches[0].schema(), &batches).unwrap();
        assert!(back.equals_missing(&rows()), "{back}");
    }
}

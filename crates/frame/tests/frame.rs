//! Interop round trips and the MERGE planner.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::Schema;
use fitlake_frame::table::{boolean, date, float64, int32, int64, string_null, timestamp};
use fitlake_frame::{from_record_batches, plan_merge, to_record_batches, to_text, FILE_COLUMN};
use polars::prelude::*;

#[test]
fn arrow_frame_arrow_round_trip_keeps_values_and_types() {
    let schema = Arc::new(Schema::new(vec![
        int64("id"),
        int32("n"),
        string_null("name"),
        float64("x"),
        boolean("ok"),
        date("day"),
        timestamp("at"),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Int32Array::from(vec![7, 8, 9])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
            Arc::new(Float64Array::from(vec![0.5, -1.0, 2.25])),
            Arc::new(BooleanArray::from(vec![true, false, true])),
            Arc::new(Date32Array::from(vec![19_427, 0, -1])),
            Arc::new(TimestampMicrosecondArray::from(vec![1_678_524_300_123_456, 0, -1]).with_timezone("UTC")),
        ],
    )
    .expect("batch");
    let df = from_record_batches(&schema, &[batch.clone(), batch.slice(1, 2)]).expect("to frame");
    assert_eq!(df.height(), 5);
    insta::assert_snapshot!(to_text(&df), @r"
        id: i64,n: i32,name: str,x: f64,ok: bool,day: date,at: datetime[μs]
        1,7,a,0.5,true,2023-03-11,2023-03-11 08:45:00.123456
        2,8,null,-1.0,false,1970-01-01,1970-01-01 00:00:00
        3,9,ccc,2.25,true,1969-12-31,1969-12-31 23:59:59.999999
        2,8,null,-1.0,false,1970-01-01,1970-01-01 00:00:00
        3,9,ccc,2.25,true,1969-12-31,1969-12-31 23:59:59.999999
    ");
    let back = to_record_batches(&df, &schema).expect("to arrow");
    let rows: usize = back.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);
    assert_eq!(back[0].schema(), schema);
    let again = arrow::compute::concat_batches(&schema, &back).expect("concat");
    assert_eq!(again.slice(0, 3), batch);
    assert_eq!(again.column(2).null_count(), 2);
}

#[test]
fn a_required_column_missing_from_the_frame_is_an_error() {
    let schema = Arc::new(Schema::new(vec![int64("id"), string_null("name")]));
    let df = DataFrame::new(1, vec![Column::new("name".into(), ["x"])]).expect("frame");
    let err = to_record_batches(&df, &schema).expect_err("id is required");
    assert!(err.to_string().contains("\"id\""), "{err}");
}

#[test]
fn merge_rewrites_only_files_with_changed_keys() {
    let target = DataFrame::new(
        4,
        vec![
            Column::new("k".into(), [1i64, 2, 3, 4]),
            Column::new("v".into(), ["a", "b", "c", "d"]),
            Column::new(FILE_COLUMN.into(), ["f1", "f1", "f2", "f3"]),
        ],
    )
    .expect("target");
    let upserts = DataFrame::new(2, vec![Column::new("k".into(), [2i64, 5]), Column::new("v".into(), ["B", "e"])])
        .expect("upserts");
    let deletes = DataFrame::new(1, vec![Column::new("k".into(), [4i64])]).expect("deletes");
    let plan = plan_merge(&target, &upserts, Some(&deletes), &["k"]).expect("plan");
    let rows = plan.rows_to_add.sort(["k"], SortMultipleOptions::default()).expect("sort");
    insta::assert_snapshot!(format!(
        "remove {:?}; inserted {} updated {} deleted {}\n{}",
        plan.files_to_remove,
        plan.inserted,
        plan.updated,
        plan.deleted,
        to_text(&rows)
    ),
        @r#"
        remove ["f1", "f3"]; inserted 1 updated 1 deleted 1
        k: i64,v: str
        1,a
        2,B
        5,e
        "#
    );
}

#[test]
fn key_joins_with_an_empty_side_keep_the_source_schema() -> Result<(), Box<dyn std::error::Error>> {
    let rows = df!("id" => [1i64, 2], "t" => [10i64, 20], "x" => [0.5f64, 1.5])?;
    let keys = df!("id" => [2i64], "t" => [20i64])?;
    let (no_rows, no_keys) = (rows.clear(), keys.clear());
    for (source, target, semi, anti) in
        [(&rows, &keys, 1, 1), (&rows, &no_keys, 0, 2), (&no_rows, &keys, 0, 0), (&no_rows, &no_keys, 0, 0)]
    {
        let shared = fitlake_frame::semi_join(source, target, &["id", "t"])?;
        let new = fitlake_frame::anti_join(source, target, &["id", "t"])?;
        assert_eq!((shared.height(), new.height()), (semi, anti));
        assert_eq!((shared.schema(), new.schema()), (rows.schema(), rows.schema()));
    }
    // A key missing from either side is still an error.
    assert!(fitlake_frame::semi_join(&rows, &no_keys, &["id", "day"]).is_err());
    assert!(fitlake_frame::anti_join(&no_rows, &keys, &["x"]).is_err());
    Ok(())
}

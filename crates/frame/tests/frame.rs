//! Interop round trips and the MERGE planner.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::Schema;
use fitlake_frame::merge::{SortedKeys, Spans};
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

/// The reference: Polars' join on the key columns themselves.
fn column_join(source: &DataFrame, target: &DataFrame, keys: &[&str], how: JoinType) -> PolarsResult<DataFrame> {
    let on: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    source.clone().lazy().join(target.clone().lazy().select(on.clone()), on.clone(), on, JoinArgs::new(how)).collect()
}

/// `(id, t)` keys with nulls, as frames with an extra column.
fn keyed(rows: &[(Option<i64>, i64)], spread: i64) -> PolarsResult<DataFrame> {
    let ids: Vec<Option<i64>> = rows.iter().map(|r| r.0.map(|id| id * spread)).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.1 * spread).collect();
    let x: Vec<f64> = (0..rows.len()).map(|i| i as f64).collect();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("id".into(), ids),
            Column::new("t".into(), times).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?,
            Column::new("x".into(), x),
        ],
    )
}

proptest::proptest! {
    /// Semi and anti joins give the rows, in the order, of Polars' join on the key columns,
    /// whether the keys pack into one (small spread) or not (a spread past 2^62 together),
    /// whether both sides come in key order without nulls (matched in one pass) or not, and
    /// whether the other side is few rows (looked up in hash sets) or many (each row repeated).
    #[test]
    fn key_joins_match_the_join_on_the_columns(
        source in proptest::collection::vec((proptest::option::of(0i64..5), -3i64..4), 1..40),
        target in proptest::collection::vec((proptest::option::of(0i64..5), -3i64..4), 1..40),
        wide in proptest::bool::ANY,
        in_key_order in proptest::bool::ANY,
        many in proptest::bool::ANY,
    ) {
        let fail = |e: &dyn std::fmt::Display| proptest::test_runner::TestCaseError::fail(e.to_string());
        let spread = if wide { 1 << 40 } else { 1 };
        let ordered = |mut rows: Vec<(Option<i64>, i64)>| {
            if in_key_order {
                rows.retain(|(id, _)| id.is_some());
                rows.sort();
            }
            rows
        };
        let (source, target) = (ordered(source), ordered(target));
        // Past the few rows looked up in hash sets (1,024): each target row 100 times, in place.
        let target: Vec<_> = target.into_iter().flat_map(|row| std::iter::repeat_n(row, if many { 100 } else { 1 })).collect();
        let (source, target) = (keyed(&source, spread).map_err(|e| fail(&e))?, keyed(&target, spread).map_err(|e| fail(&e))?);
        let keys = ["id", "t"];
        let packs = fitlake_frame::merge::packed_key(&[&source, &target], &keys, "k").map_err(|e| fail(&e))?.is_some();
        // Both nulls-only key columns and a spread past 2^62 fall back to the columns.
        proptest::prop_assert!(packs || wide || source.column("id").map_err(|e| fail(&e))?.null_count() == source.height()
            || target.column("id").map_err(|e| fail(&e))?.null_count() == target.height());
        let semi = fitlake_frame::semi_join(&source, &target, &keys).map_err(|e| fail(&e))?;
        let anti = fitlake_frame::anti_join(&source, &target, &keys).map_err(|e| fail(&e))?;
        proptest::prop_assert_eq!(semi, column_join(&source, &target, &keys, JoinType::Semi).map_err(|e| fail(&e))?);
        proptest::prop_assert_eq!(anti, column_join(&source, &target, &keys, JoinType::Anti).map_err(|e| fail(&e))?);
    }
}

#[test]
fn only_integer_keys_of_one_type_pack() -> Result<(), Box<dyn std::error::Error>> {
    let ints = df!("a" => [1i64, 2], "s" => ["x", "y"], "f" => [0.5f64, 1.5], "b" => [1i32, 2])?;
    let pack = |frames: &[&DataFrame], keys: &[&str]| fitlake_frame::merge::packed_key(frames, keys, "k");
    assert!(pack(&[&ints], &["a", "b"])?.is_some());
    assert!(pack(&[&ints], &["a", "s"])?.is_none(), "strings");
    assert!(pack(&[&ints], &["a", "f"])?.is_none(), "floats");
    let other = df!("a" => [1i32], "b" => [1i32])?;
    assert!(pack(&[&ints, &other], &["a", "b"])?.is_none(), "Int64 in one frame, Int32 in the other");
    let wide = df!("a" => [i64::MIN, i64::MAX], "b" => [0i64, 1])?;
    assert!(pack(&[&wide], &["a", "b"])?.is_none(), "a range past 2^62");
    let nulls = df!("a" => [None::<i64>, None], "b" => [1i64, 2])?;
    assert!(pack(&[&nulls], &["a", "b"])?.is_none(), "a key column of nulls only");
    Ok(())
}

#[test]
fn stored_rows_within_the_new_rows_spans() -> Result<(), Box<dyn std::error::Error>> {
    let new =
        df!("device_id" => [Some(1i64), Some(1), None, Some(2)], "time" => [Some(10i64), Some(20), Some(99), None])?;
    let stored = df!(
        "device_id" => [Some(1i64), Some(1), Some(1), Some(2), None, Some(3)],
        "time" => [Some(10i64), Some(21), Some(15), Some(5), Some(15), Some(15)]
    )?;
    let spans = Spans::of(&new, "device_id", "time")?.ok_or("integer columns have spans")?;
    let near = spans.within(&stored)?;
    // Device 1's new readings span 10..=20; device 2's only new reading has no time; nulls match nothing.
    assert_eq!(near.column("time")?.i64()?.to_vec(), [Some(10), Some(15)]);
    // Group values far apart are looked up by hash, with the same answer.
    let far = new.clone().lazy().with_column(col("device_id") * lit(1i64 << 40)).collect()?;
    let far_stored = stored.clone().lazy().with_column(col("device_id") * lit(1i64 << 40)).collect()?;
    let far_spans = Spans::of(&far, "device_id", "time")?.ok_or("integer columns have spans")?;
    assert_eq!(far_spans.within(&far_stored)?.column("time")?.i64()?.to_vec(), [Some(10), Some(15)]);
    // A group value outside the new rows' range, below or above it, is in no span.
    let outside = df!("device_id" => [0i64, 5, i64::MIN, i64::MAX], "time" => [10i64, 10, 10, 10])?;
    assert_eq!(spans.within(&outside)?.height(), 0);
    // A column that is not an integer has no spans, and leaves stored rows whole.
    let named = df!("device_id" => ["a"], "time" => [1i64])?;
    assert!(Spans::of(&named, "device_id", "time")?.is_none());
    assert_eq!(spans.within(&named)?.height(), 1);
    Ok(())
}

proptest::proptest! {
    /// Two frames in key order share the rows of Polars' semi join, found in one walk, with
    /// repeated keys on either side and values near the ends of `i64`; a frame out of order, with
    /// a null key, or whose key types differ is refused (`None`), for the caller to join.
    #[test]
    fn keys_in_order_share_the_rows_of_the_join(
        new in proptest::collection::vec((-3i64..4, -3i64..4), 0..40),
        stored in proptest::collection::vec((-3i64..4, -3i64..4), 0..40),
        spread in proptest::sample::select(vec![1i64, 1 << 61]),
        shuffle in proptest::bool::ANY,
    ) {
        let fail = |e: &dyn std::fmt::Display| proptest::test_runner::TestCaseError::fail(e.to_string());
        let frame = |mut rows: Vec<(i64, i64)>, sort: bool| {
            if sort {
                rows.sort();
            }
            keyed(&rows.iter().map(|&(id, t)| (Some(id), t)).collect::<Vec<_>>(), spread)
        };
        let keys = ["id", "t"];
        let new_rows = frame(new.clone(), true).map_err(|e| fail(&e))?;
        let in_order = SortedKeys::of(&new_rows, &keys).map_err(|e| fail(&e))?;
        let in_order = in_order.ok_or_else(|| fail(&"sorted integer keys"))?;
        let stored_rows = frame(stored.clone(), !shuffle).map_err(|e| fail(&e))?;
        let shared = in_order.shared_by(&stored_rows).map_err(|e| fail(&e))?;
        let mut sorted = stored.clone();
        sorted.sort();
        if shuffle && sorted != stored {
            proptest::prop_assert!(shared.is_none(), "rows out of order are refused");
        } else {
            let expected = column_join(&stored_rows, &new_rows, &keys, JoinType::Semi).map_err(|e| fail(&e))?;
            proptest::prop_assert_eq!(shared, Some(expected));
        }
        // A null key, or a key of another type, is refused.
        let nulls = keyed(&[(None, 1)], spread).map_err(|e| fail(&e))?;
        proptest::prop_assert!(in_order.shared_by(&nulls).map_err(|e| fail(&e))?.is_none());
        let other = stored_rows.clone().lazy().with_column(col("t").cast(DataType::Int64)).collect().map_err(|e| fail(&e))?;
        proptest::prop_assert!(in_order.shared_by(&other).map_err(|e| fail(&e))?.is_none());
    }
}

proptest::proptest! {
    /// Strings reach Arrow as they were, whether left in place (long values end to end in the
    /// frame's buffers, several buffers after a vertical stack) or copied by a cast (short
    /// values inlined in their views, rows filtered out), with nulls, empty values, slices and
    /// several chunks.
    #[test]
    fn strings_reach_arrow_as_they_were(
        parts in proptest::collection::vec(
            proptest::collection::vec(proptest::option::of("[a-z\"{}:,0-9]{0,30}"), 0..20), 1..4),
        long in proptest::bool::ANY,
        keep in proptest::collection::vec(proptest::bool::ANY, 0..80),
        rechunk in proptest::bool::ANY,
        slice in 0usize..5,
    ) {
        let fail = |e: &dyn std::fmt::Display| proptest::test_runner::TestCaseError::fail(e.to_string());
        // Long values only: none is inlined, so each part stays in place.
        let parts: Vec<Vec<Option<String>>> = parts
            .into_iter()
            .map(|p| p.into_iter().map(|v| v.map(|v| if long { format!("{{\"long enough\":{v}}}") } else { v })).collect())
            .collect();
        let mut df = DataFrame::empty();
        let mut n = 0i64;
        for part in &parts {
            let ids: Vec<i64> = (n..n + part.len() as i64).collect();
            n += part.len() as i64;
            let piece = DataFrame::new(part.len(), vec![
                Column::new("s".into(), part.clone()),
                Column::new("id".into(), ids),
            ]).map_err(|e| fail(&e))?;
            df = if df.width() == 0 { piece } else { df.vstack(&piece).map_err(|e| fail(&e))? };
        }
        let mut expected: Vec<(i64, Option<String>)> = parts.concat().into_iter().enumerate().map(|(i, v)| (i as i64, v)).collect();
        let filtered = keep.len() >= expected.len() && !keep.iter().take(expected.len()).all(|k| *k);
        if filtered {
            let mask = BooleanChunked::from_slice("keep".into(), &keep[..expected.len()]);
            df = df.filter(&mask).map_err(|e| fail(&e))?;
            expected = expected.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(row, _)| row).collect();
        }
        if rechunk {
            df.rechunk_mut_par();
        }
        let from = slice.min(expected.len());
        df = df.slice(from as i64, expected.len());
        expected.drain(..from);
        let schema = Arc::new(Schema::new(vec![string_null("s"), int64("id")]));
        let batches = to_record_batches(&df, &schema).map_err(|e| fail(&e))?;
        let mut got = Vec::new();
        for batch in &batches {
            let s = batch.column(0).as_any().downcast_ref::<StringArray>().ok_or_else(|| fail(&"not Utf8"))?;
            let id = batch.column(1).as_any().downcast_ref::<Int64Array>().ok_or_else(|| fail(&"not Int64"))?;
            for i in 0..batch.num_rows() {
                got.push((id.value(i), s.is_valid(i).then(|| s.value(i).to_string())));
            }
        }
        proptest::prop_assert_eq!(&got, &expected);
        // Left in place, a stack of parts each with values is one batch per part.
        let with_values = parts.iter().filter(|p| p.iter().any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))).count();
        if long && !filtered && slice == 0 && with_values > 1 {
            proptest::prop_assert!(batches.len() >= with_values, "{} batches for {with_values} parts", batches.len());
        }
    }
}

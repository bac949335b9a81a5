//! Gold transforms on small frames, snapshotted.

use fitlake_frame::{to_text, FILE_COLUMN};
use polars::prelude::*;

fn ts(name: &str, seconds: &[i64]) -> Column {
    Column::new(name.into(), seconds.iter().map(|s| s * 1_000_000).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .expect("cast")
}

fn frame(columns: Vec<Column>) -> DataFrame {
    let height = columns.first().map_or(0, |c| c.len());
    DataFrame::new(height, columns).expect("frame")
}

#[test]
fn workout_bpm_summary_replaces_touched_sessions_and_refreshes_bins() {
    let readings = frame(vec![
        Column::new("user_id".into(), [1i64, 1, 1, 2]),
        Column::new("workout_id".into(), [1i64; 4]),
        Column::new("session_id".into(), [2i64, 2, 2, 1]),
        Column::new("heartrate".into(), [90.0f64, 100.0, 110.0, 70.0]),
    ]);
    let stats = fitlake_gold::session_stats(&readings).expect("stats");
    let target = frame(vec![
        Column::new("user_id".into(), [1i64, 1]),
        Column::new("workout_id".into(), [1i64, 1]),
        Column::new("session_id".into(), [1i64, 2]),
        Column::new("age".into(), [None::<&str>, None]),
        Column::new("gender".into(), [None::<&str>, None]),
        Column::new("city".into(), [None::<&str>, None]),
        Column::new("state".into(), [None::<&str>, None]),
        Column::new("min_bpm".into(), [60.0f64, 90.0]),
        Column::new("avg_bpm".into(), [65.0f64, 95.0]),
        Column::new("max_bpm".into(), [70.0f64, 100.0]),
        Column::new("num_recordings".into(), [2i64, 2]),
        Column::new(FILE_COLUMN.into(), ["f1", "f1"]),
    ]);
    let bins = frame(vec![
        Column::new("user_id".into(), [1i64]),
        Column::new("age".into(), ["25-35"]),
        Column::new("gender".into(), ["F"]),
        Column::new("city".into(), ["Gardena"]),
        Column::new("state".into(), ["CA"]),
    ]);
    let plan = fitlake_gold::workout_bpm_summary(&target, &stats, &bins).expect("summary");
    let rows = plan.rows_to_add.sort(["user_id", "session_id"], SortMultipleOptions::default()).expect("sort");
    insta::assert_snapshot!(format!(
        "remove {:?}; inserted {} updated {}\n{}",
        plan.files_to_remove,
        plan.inserted,
        plan.updated,
        to_text(&rows)
    ),
        @r#"
        remove ["f1"]; inserted 1 updated 2
        user_id: i64,workout_id: i64,session_id: i64,age: str,gender: str,city: str,state: str,min_bpm: f64,avg_bpm: f64,max_bpm: f64,num_recordings: i64
        1,1,1,25-35,F,Gardena,CA,60.0,65.0,70.0,2
        1,1,2,25-35,F,Gardena,CA,90.0,100.0,110.0,3
        2,1,1,null,null,null,null,70.0,70.0,70.0,1
        "#
    );
}

#[test]
fn gym_summary_joins_sessions_started_during_the_visit() {
    let gym_logs = frame(vec![
        Column::new("mac_address".into(), ["m1", "m1", "m2"]),
        Column::new("gym".into(), [1i64, 5, 3]),
        ts("login", &[1_678_524_000, 1_678_562_880, 1_678_522_500]),
        ts("logout", &[1_678_528_500, 1_678_567_200, 1_678_527_000]),
    ]);
    let sessions = frame(vec![
        Column::new("user_id".into(), [10i64, 10, 20]),
        Column::new("workout_id".into(), [1i64, 1, 1]),
        Column::new("session_id".into(), [1i64, 2, 1]),
        ts("start_time", &[1_678_524_300, 1_678_563_120, 1_678_527_001]),
        ts("end_time", &[1_678_528_200, 1_678_566_900, 1_678_528_000]),
    ]);
    let users =
        frame(vec![Column::new("user_id".into(), [10i64, 20]), Column::new("mac_address".into(), ["m1", "m2"])]);
    let empty = frame(vec![
        Column::new("date".into(), Vec::<i32>::new()).cast(&DataType::Date).expect("date"),
        Column::new("gym".into(), Vec::<i64>::new()),
        Column::new("mac_address".into(), Vec::<&str>::new()),
        ts("login", &[]),
        Column::new("workout_id".into(), Vec::<i64>::new()),
        Column::new("session_id".into(), Vec::<i64>::new()),
        Column::new("minutes_in_gym".into(), Vec::<f64>::new()),
        Column::new("minutes_exercising".into(), Vec::<f64>::new()),
        Column::new(FILE_COLUMN.into(), Vec::<&str>::new()),
    ]);
    let plan = fitlake_gold::gym_summary(&gym_logs, &sessions, &users, &empty).expect("gym_summary");
    insta::assert_snapshot!(to_text(&plan.rows_to_add), @r"
        date: date,gym: i64,mac_address: str,login: datetime[μs],workout_id: i64,session_id: i64,minutes_in_gym: f64,minutes_exercising: f64
        2023-03-11,1,m1,2023-03-11 08:40:00,1,1,75.0,65.0
        2023-03-11,5,m1,2023-03-11 19:28:00,1,2,72.0,63.0
    ");
}

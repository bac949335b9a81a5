//! Every silver transform on small frames, snapshotted.

use chrono::NaiveDate;
use fitlake_frame::{to_text, MergePlan, FILE_COLUMN};
use polars::prelude::*;

fn ts(name: &str, seconds: &[i64]) -> Column {
    Column::new(name.into(), seconds.iter().map(|s| s * 1_000_000).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .expect("cast")
}

fn ts_opt(name: &str, seconds: &[Option<i64>]) -> Column {
    Column::new(name.into(), seconds.iter().map(|s| s.map(|s| s * 1_000_000)).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .expect("cast")
}

fn frame(columns: Vec<Column>) -> DataFrame {
    let height = columns.first().map_or(0, |c| c.len());
    DataFrame::new(height, columns).expect("frame")
}

fn sorted(df: &DataFrame, by: &[&str]) -> DataFrame {
    df.sort(by.iter().map(|s| s.to_string()).collect::<Vec<_>>(), SortMultipleOptions::default()).expect("sort")
}

fn plan_text(plan: &MergePlan, by: &[&str]) -> String {
    format!(
        "remove {:?}; inserted {} updated {} deleted {}\n{}",
        plan.files_to_remove,
        plan.inserted,
        plan.updated,
        plan.deleted,
        to_text(&sorted(&plan.rows_to_add, by))
    )
}

#[test]
fn users_keeps_the_earliest_registration_in_a_batch_and_across_batches() {
    let bronze = frame(vec![
        Column::new("user_id".into(), [1i64, 2, 2, 3]),
        Column::new("device_id".into(), [10i64, 20, 21, 30]),
        Column::new("mac_address".into(), ["a", "b", "b2", "c"]),
        ts("registration_timestamp", &[100, 300, 200, 400]),
        Column::new("source_file".into(), ["f"; 4]),
    ]);
    // User 3 is stored with a later registration: the new, earlier one replaces it. User 2's
    // stored registration (at 150) comes first: nothing to write.
    let stored = frame(vec![
        Column::new("user_id".into(), [2i64, 3]),
        Column::new("device_id".into(), [22i64, 33]),
        Column::new("mac_address".into(), ["b3", "c3"]),
        ts("registration_timestamp", &[150, 500]),
    ]);
    let users = fitlake_silver::users(&bronze, &stored).expect("users");
    insta::assert_snapshot!(to_text(&sorted(&users, &["user_id"])), @r"
        user_id: i64,device_id: i64,mac_address: str,registration_timestamp: datetime[μs]
        1,10,a,1970-01-01 00:01:40
        3,30,c,1970-01-01 00:06:40
    ");
}

#[test]
fn gym_logs_a_later_logout_updates_the_visit_an_earlier_one_does_not() {
    let target = frame(vec![
        Column::new("mac_address".into(), ["a", "b", "c"]),
        Column::new("gym".into(), [1i64, 1, 2]),
        ts("login", &[100, 100, 100]),
        ts_opt("logout", &[Some(200), Some(500), None]),
        Column::new(FILE_COLUMN.into(), ["f1", "f2", "f3"]),
    ]);
    let bronze = frame(vec![
        Column::new("mac_address".into(), ["a", "b", "c", "d", "d"]),
        Column::new("gym".into(), [1i64, 1, 2, 3, 3]),
        ts("login", &[100, 100, 100, 100, 100]),
        ts_opt("logout", &[Some(300), Some(400), None, None, Some(150)]),
    ]);
    let plan = fitlake_silver::gym_logs(&bronze, &target).expect("gym_logs");
    insta::assert_snapshot!(plan_text(&plan, &["mac_address"]), @r#"
        remove ["f1"]; inserted 1 updated 1 deleted 0
        mac_address: str,gym: i64,login: datetime[μs],logout: datetime[μs]
        a,1,1970-01-01 00:01:40,1970-01-01 00:05:00
        d,3,1970-01-01 00:01:40,1970-01-01 00:02:30
    "#);
}

fn profile_events(rows: &[(i64, &str, i64, &str)]) -> DataFrame {
    let n = rows.len();
    frame(vec![
        Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new("update_type".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
        ts("updated", &rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("dob".into(), vec![Some(10_000i32); n]).cast(&DataType::Date).expect("date"),
        Column::new("sex".into(), vec!["F"; n]),
        Column::new("gender".into(), vec!["F"; n]),
        Column::new("first_name".into(), vec!["Ann"; n]),
        Column::new("last_name".into(), vec!["Lee"; n]),
        Column::new("street_address".into(), vec!["1 Main"; n]),
        Column::new("city".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new("state".into(), vec!["CA"; n]),
        Column::new("zip".into(), vec![Some(90000i64); n]),
    ])
}

#[test]
fn user_profile_latest_change_wins_older_never_overwrites_delete_leaves_a_tombstone() {
    let mut target = profile_events(&[(1, "new", 100, "Old Town"), (2, "new", 500, "Keep"), (3, "new", 100, "Gone")]);
    target.with_column(Column::new(FILE_COLUMN.into(), ["f1", "f1", "f2"])).expect("tag");
    let events = profile_events(&[
        (1, "update", 300, "Newest"),
        (1, "update", 200, "Middle"),
        (2, "update", 400, "Older than target"),
        (3, "update", 150, "Before delete"),
        (3, "delete", 200, ""),
        (4, "new", 100, "Fresh"),
        (5, "delete", 100, ""),
    ]);
    let fitlake_silver::ProfileChanges { plan, deleted_users: deleted } =
        fitlake_silver::user_profile(&events, &target).expect("user_profile");
    let text = plan_text(&plan, &["user_id"]);
    insta::assert_snapshot!(format!("{text}deleted users: {}", to_text(&deleted)));
}

#[test]
fn workouts_and_heart_rate_deduplicate_and_skip_known_keys() {
    let events = frame(vec![
        Column::new("user_id".into(), [1i64, 1, 1, 2]),
        Column::new("workout_id".into(), [1i64, 1, 1, 1]),
        ts("time", &[100, 100, 200, 100]),
        Column::new("action".into(), ["start", "start", "stop", "start"]),
        Column::new("session_id".into(), [1i64, 1, 1, 1]),
    ]);
    // User 2's stored event at 100 comes first (a start of workout 0): nothing to write.
    let known = frame(vec![
        Column::new("user_id".into(), [2i64]),
        Column::new("workout_id".into(), [0i64]),
        ts("time", &[100]),
        Column::new("action".into(), ["start"]),
        Column::new("session_id".into(), [1i64]),
    ]);
    let workouts = fitlake_silver::workouts(&events, &known).expect("workouts");
    let readings = frame(vec![
        Column::new("device_id".into(), [7i64, 7, 7, 8]),
        ts("time", &[1, 1, 2, 1]),
        Column::new("heartrate".into(), [80.0f64, 81.0, 0.0, -1.0]),
    ]);
    let stored = frame(vec![
        Column::new("device_id".into(), [7i64, 8]),
        ts("time", &[2, 1]),
        Column::new("heartrate".into(), [0.0f64, 50.0]),
    ]);
    // Device 7 at 1: 81 beats 80. At 2 the stored 0.0 is not replaced by an equal reading;
    // device 8's stored 50 beats the new -1.
    let heart_rate = fitlake_silver::heart_rate(&readings, &stored).expect("heart_rate");
    insta::assert_snapshot!(format!(
        "{}\n{}",
        to_text(&sorted(&workouts, &["user_id", "time"])),
        to_text(&sorted(&heart_rate, &["device_id", "time"]))
    ),
        @r"
        user_id: i64,workout_id: i64,time: datetime[μs],action: str,session_id: i64
        1,1,1970-01-01 00:01:40,start,1
        1,1,1970-01-01 00:03:20,stop,1

        device_id: i64,time: datetime[μs],heartrate: f64,valid: bool
        7,1970-01-01 00:00:01,81.0,true
        "
    );
}

#[test]
fn user_bins_bands_ages_at_the_as_of_date() {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
    let dobs = ["2005-03-16", "2005-03-15", "1998-03-15", "1928-03-15", "1939-07-25"];
    let days: Vec<i32> = dobs
        .iter()
        .map(|d| (NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date") - epoch).num_days() as i32)
        .collect();
    let profile = frame(vec![
        Column::new("user_id".into(), [1i64, 2, 3, 4, 5]),
        Column::new("dob".into(), days).cast(&DataType::Date).expect("date"),
        Column::new("gender".into(), ["F", "M", "F", "M", "F"]),
        Column::new("city".into(), [Some("A"), Some("B"), None, Some("D"), Some("E")]),
        Column::new("state".into(), ["CA"; 5]),
    ]);
    let target = frame(vec![
        Column::new("user_id".into(), [2i64, 9]),
        Column::new("age".into(), ["18-25", "25-35"]),
        Column::new("gender".into(), ["M", "F"]),
        Column::new("city".into(), ["B", "Z"]),
        Column::new("state".into(), ["CA", "CA"]),
        Column::new(FILE_COLUMN.into(), ["f1", "f1"]),
    ]);
    let as_of = NaiveDate::from_ymd_opt(2023, 3, 15).expect("date");
    let plan = fitlake_silver::user_bins(&profile, &target, as_of).expect("user_bins");
    insta::assert_snapshot!(plan_text(&plan, &["user_id"]), @r#"
        remove ["f1"]; inserted 4 updated 0 deleted 1
        user_id: i64,age: str,gender: str,city: str,state: str
        1,under 18,F,A,CA
        2,18-25,M,B,CA
        3,25-35,F,null,CA
        4,95+,M,D,CA
        5,75-85,F,E,CA
    "#);
}

#[test]
fn completed_workouts_pair_a_start_with_its_stop_within_three_hours() {
    let h = 3600;
    let events = frame(vec![
        Column::new("user_id".into(), [1i64, 1, 2, 2, 3, 3, 4, 5]),
        Column::new("workout_id".into(), [1i64; 8]),
        ts("time", &[0, 3 * h - 1, 0, 3 * h, 100, 50, 0, 10]),
        Column::new("action".into(), ["start", "stop", "start", "stop", "start", "stop", "start", "stop"]),
        Column::new("session_id".into(), [1i64; 8]),
    ]);
    let none = frame(vec![
        Column::new("user_id".into(), Vec::<i64>::new()),
        Column::new("workout_id".into(), Vec::<i64>::new()),
        Column::new("session_id".into(), Vec::<i64>::new()),
        ts("start_time", &[]),
        ts("end_time", &[]),
    ]);
    let sessions = fitlake_silver::completed_workouts(&events, &none).expect("completed_workouts");
    insta::assert_snapshot!(to_text(&sessions), @r"
        user_id: i64,workout_id: i64,session_id: i64,start_time: datetime[μs],end_time: datetime[μs]
        1,1,1,1970-01-01 00:00:00,1970-01-01 02:59:59
    ");
}

#[test]
fn workout_bpm_takes_valid_readings_with_start_before_time_up_to_end() {
    let sessions = frame(vec![
        Column::new("user_id".into(), [1i64]),
        Column::new("workout_id".into(), [1i64]),
        Column::new("session_id".into(), [1i64]),
        ts("start_time", &[100]),
        ts("end_time", &[103]),
    ]);
    let users = frame(vec![Column::new("user_id".into(), [1i64]), Column::new("device_id".into(), [7i64])]);
    let readings = frame(vec![
        Column::new("device_id".into(), [7i64, 7, 7, 7, 7, 8]),
        ts("time", &[100, 101, 102, 103, 104, 101]),
        Column::new("heartrate".into(), [90.0f64, 91.0, 0.0, 93.0, 94.0, 99.0]),
        Column::new("valid".into(), [true, true, false, true, true, true]),
    ]);
    let bpm = fitlake_silver::workout_bpm(&sessions, &users, &readings).expect("workout_bpm");
    insta::assert_snapshot!(to_text(&sorted(&bpm, &["time"])), @r"
        user_id: i64,workout_id: i64,session_id: i64,start_time: datetime[μs],end_time: datetime[μs],time: datetime[μs],heartrate: f64
        1,1,1,1970-01-01 00:01:40,1970-01-01 00:01:43,1970-01-01 00:01:41,91.0
        1,1,1,1970-01-01 00:01:40,1970-01-01 00:01:43,1970-01-01 00:01:43,93.0
    ");
}

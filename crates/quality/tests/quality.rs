//! Expectations: parsing rules and each check and action on small frames.

use std::collections::HashMap;

use chrono::NaiveDate;
use fitlake_quality::{evaluate, Action, Expectations, SHIPPED_EXPECTATIONS};
use polars::prelude::*;

const KNOWN: [&str; 4] = ["users", "workouts", "heart_rate", "gym_logs"];
const APPEND_ONLY: [&str; 3] = ["users", "workouts", "heart_rate"];

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 3, 15).expect("date")
}

fn micros(day: u32, hour: u32) -> i64 {
    NaiveDate::from_ymd_opt(2023, 3, day)
        .and_then(|d| d.and_hms_opt(hour, 0, 0))
        .expect("time")
        .and_utc()
        .timestamp_micros()
}

fn readings() -> DataFrame {
    let time = Column::new("time".into(), vec![micros(13, 8), micros(13, 9), micros(13, 9), micros(20, 8)])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .expect("cast");
    DataFrame::new(
        4,
        vec![
            Column::new("device_id".into(), vec![Some(1i64), Some(1), Some(1), None]),
            time,
            Column::new("heartrate".into(), vec![72.0, 300.0, -1.0, 80.0]),
            Column::new("valid".into(), vec![true, true, false, true]),
        ],
    )
    .expect("frame")
}

fn parse(text: &str) -> Expectations {
    Expectations::parse(text, &KNOWN, &APPEND_ONLY).expect("valid expectations")
}

#[test]
fn each_check_counts_checked_passed_failed_and_drop_quarantines_with_the_reason() {
    let e = parse(
        r#"
[[expectation]]
table = "heart_rate"
name = "in_range"
check = "range"
column = "heartrate"
min = 0
max = 250
when = "valid"
action = "drop"

[[expectation]]
table = "heart_rate"
name = "device_present"
check = "not_null"
column = "device_id"
action = "warn"

[[expectation]]
table = "heart_rate"
name = "plausible_time"
check = "time_window"
column = "time"
not_before = "2020-01-01"
max_days_ahead = 1
action = "warn"

[[expectation]]
table = "heart_rate"
name = "one_reading_per_device_and_time"
check = "unique"
columns = ["device_id", "time"]
action = "warn"
"#,
    );
    let rows = readings();
    let out = evaluate(&e.of("heart_rate"), &rows, &HashMap::new(), as_of()).expect("evaluate");
    let counts: Vec<(&str, u64, u64, u64)> =
        out.outcomes.iter().map(|o| (o.expectation.as_str(), o.checked, o.passed, o.failed)).collect();
    assert_eq!(
        counts,
        vec![
            ("in_range", 3, 2, 1), // the invalid -1 reading is not checked
            ("device_present", 4, 3, 1),
            ("plausible_time", 4, 3, 1),                  // March 20 is past as-of + 1 day
            ("one_reading_per_device_and_time", 4, 2, 2), // device 1 twice at 09:00
        ]
    );
    assert_eq!(out.kept.height(), 3, "only the drop expectation removes rows");
    insta::assert_snapshot!(fitlake_frame::to_text(&out.dropped), @r"
        device_id: i64,time: datetime[μs],heartrate: f64,valid: bool,reason: str
        1,2023-03-13 09:00:00,300.0,true,expectation in_range failed
    ");
    assert!(out.failures().is_empty(), "no fail expectation");
}

#[test]
fn fail_expectations_are_reported_and_references_use_the_given_keys() {
    let e = parse(
        r#"
[[expectation]]
table = "workouts"
name = "known_user"
check = "references"
column = "user_id"
ref_table = "users"
ref_column = "user_id"
action = "fail"
"#,
    );
    let workouts =
        DataFrame::new(3, vec![Column::new("user_id".into(), vec![Some(1i64), Some(7), None])]).expect("frame");
    let users = DataFrame::new(2, vec![Column::new("user_id".into(), vec![1i64, 2])]).expect("frame");
    let refs = HashMap::from([(("users".to_string(), "user_id".to_string()), users)]);
    let out = evaluate(&e.of("workouts"), &workouts, &refs, as_of()).expect("evaluate");
    assert_eq!((out.outcomes[0].checked, out.outcomes[0].failed), (2, 1), "nulls are not checked");
    assert_eq!(out.failures(), vec!["expectation \"known_user\" on workouts: 1 of 2 rows failed".to_string()]);
    assert_eq!(out.kept.height(), 3, "fail keeps rows: the caller commits nothing");
    assert_eq!(out.outcomes[0].action, Action::Fail);

    let passing = DataFrame::new(1, vec![Column::new("user_id".into(), vec![2i64])]).expect("frame");
    assert!(evaluate(&e.of("workouts"), &passing, &refs, as_of()).expect("evaluate").failures().is_empty());
}

#[test]
fn bad_expectation_files_are_refused_with_what_to_fix() {
    let cases = [
        ("table = \"nope\"\nname = \"x\"\ncheck = \"not_null\"\ncolumn = \"a\"\naction = \"warn\"", "no such table"),
        (
            "table = \"gym_logs\"\nname = \"x\"\ncheck = \"not_null\"\ncolumn = \"a\"\naction = \"drop\"",
            "`drop` only works on append-only tables",
        ),
        ("table = \"users\"\nname = \"x\"\ncheck = \"range\"\ncolumn = \"a\"\nmin = 5\nmax = 1\naction = \"warn\"", "above max"),
        ("table = \"users\"\nname = \"x\"\ncheck = \"sometimes\"\ncolumn = \"a\"\naction = \"warn\"", "unknown variant"),
        ("table = \"users\"\nname = \"x\"\ncheck = \"not_null\"\ncolumn = \"a\"\naction = \"shrug\"", "unknown variant"),
        (
            "table = \"users\"\nname = \"x\"\ncheck = \"references\"\ncolumn = \"a\"\nref_table = \"ghosts\"\nref_column = \"id\"\naction = \"warn\"",
            "referenced table \"ghosts\"",
        ),
    ];
    for (body, expected) in cases {
        let err = Expectations::parse(&format!("[[expectation]]\n{body}\n"), &KNOWN, &APPEND_ONLY)
            .expect_err(expected)
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}

#[test]
fn the_shipped_expectations_parse() {
    let known = [
        "users",
        "gym_logs",
        "user_profile",
        "workouts",
        "heart_rate",
        "user_bins",
        "completed_workouts",
        "workout_bpm",
        "workout_bpm_summary",
        "gym_summary",
    ];
    let append_only = ["users", "workouts", "heart_rate", "completed_workouts", "workout_bpm"];
    let e = Expectations::parse(SHIPPED_EXPECTATIONS, &known, &append_only).expect("shipped");
    assert!(e.all.len() >= 10);
    for action in [Action::Warn, Action::Drop, Action::Fail] {
        assert!(e.all.iter().any(|x| x.action == action), "the shipped file uses {action:?}");
    }
}

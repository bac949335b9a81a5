//! End-to-end tests of the `fitlake` binary on local Delta tables.

#[cfg(feature = "azure")]
mod azure;
mod expected;
mod governance;
mod harness;
mod kafka;
mod maintenance;
mod messy;
mod pipeline;
mod postgres;
mod serve;
mod sql;
mod stream;

use std::collections::BTreeMap;

use harness::{assert_same_tables, testdata, Lake};
use polars::prelude::*;

const ORIGINAL_TABLES: [&str; 11] = [
    "registered_users_bz",
    "gym_logins_bz",
    "user_info",
    "workout",
    "users",
    "gym_logs",
    "user_profile",
    "workouts",
    "user_bins",
    "completed_workouts",
    "gym_summary",
];

/// The counts the original batch test checks, multiplex topics counted from bronze.
pub(crate) fn original_counts(lake: &Lake) -> Vec<u64> {
    let multiplex = lake.table("kafka_multiplex_bz");
    let topic = |t: &str| {
        multiplex.column("topic").expect("topic").str().expect("str").iter().filter(|v| *v == Some(t)).count() as u64
    };
    let counts = lake.counts();
    ORIGINAL_TABLES
        .iter()
        .map(|n| match *n {
            "user_info" | "workout" => topic(n),
            other => counts[other],
        })
        .collect()
}

pub(crate) fn bpm_counts_of(lake: &Lake) -> expected::BpmCounts {
    let multiplex = lake.table("kafka_multiplex_bz");
    let bpm =
        multiplex.column("topic").expect("topic").str().expect("str").iter().filter(|v| *v == Some("bpm")).count();
    let c = lake.counts();
    expected::BpmCounts {
        multiplex_bpm: bpm as u64,
        heart_rate: c["heart_rate"],
        workout_bpm: c["workout_bpm"],
        workout_bpm_summary: c["workout_bpm_summary"],
    }
}

#[test]
fn original_batch_test() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    assert_eq!(lake.counts()["date_lookup"], 365);

    lake.fitlake(&["produce", "--set", "1"]);
    let out = lake.run_once();
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("fitlake-run: ok steps=13 ")));
    assert_eq!(original_counts(&lake), vec![5, 8, 7, 16, 5, 8, 5, 16, 5, 8, 8]);
    let landing = lake.landing("kafka_multiplex_bz");
    let want = expected::bpm_counts(&testdata(), &landing, 1);
    assert!(want.workout_bpm > 0 && want.heart_rate > want.workout_bpm, "derivation found readings: {want:?}");
    assert_eq!(bpm_counts_of(&lake), want);

    lake.fitlake(&["produce", "--set", "2"]);
    lake.run_once();
    assert_eq!(original_counts(&lake), vec![10, 16, 13, 32, 10, 16, 10, 32, 10, 16, 16]);
    assert_eq!(bpm_counts_of(&lake), expected::bpm_counts(&testdata(), &landing, 2));

    insta::assert_snapshot!("gold_gym_summary_after_set_2", fitlake_frame::to_text(&lake.table("gym_summary")));
    insta::assert_snapshot!(
        "gold_workout_bpm_summary_after_set_2",
        fitlake_frame::to_text(&lake.table("workout_bpm_summary"))
    );
}

#[test]
fn exact_times_no_float32_rounding() {
    let lake = Lake::after_set_1();
    let text = fitlake_frame::to_text(&lake.table("gym_summary"));
    // mac 57:24:ac:8c:75:ea, gym 1, session 1: 75.0 minutes in gym, 65.0 exercising (the
    // original's 66.13 came from its 32-bit float cast).
    assert!(
        text.lines().any(|l| l.contains(",1,57:24:ac:8c:75:ea,") && l.contains(",1,1,75.0,65.0")),
        "gym_summary:\n{text}"
    );
}

#[test]
fn rerun_with_nothing_new_changes_nothing() {
    let lake = Lake::after_set_1();
    let before = lake.versions_and_counts();
    let out = lake.run_once();
    assert_eq!(lake.versions_and_counts(), before, "a rerun committed something");
    assert!(String::from_utf8_lossy(&out.stdout).contains("rows_written=0"));
    // Setup again is idempotent too.
    lake.fitlake(&["setup"]);
    assert_eq!(lake.versions_and_counts(), before, "a second setup committed something");
}

/// A multiplex line of one reading of device 1 at `time` (epoch seconds as the payload writes
/// them), Kafka offset `offset`.
fn readings_line(offset: i64, time: &str) -> String {
    format!(
        r#"{{"key":"1","value":"{{\"device_id\": 1, \"time\": {time}, \"heartrate\": 70.0}}","topic":"bpm","partition":0,"offset":{offset},"timestamp":1678521600500}}"#
    ) + "\n"
}

/// A multiplex file of readings only moves bronze without a profile change: `user_profile`
/// records the progress (nothing is left behind for it) and its rows stay as they were.
#[test]
fn readings_alone_record_user_profile_progress_without_changing_profiles() {
    let lake = Lake::after_set_1();
    let before = lake.versions_and_counts();
    let text: String = (1..=3).map(|i| readings_line(i, &format!("1678521600.{i}"))).collect();
    std::fs::write(lake.landing("kafka_multiplex_bz").join("readings-only.json"), text).expect("land");
    lake.run_once();
    let after = lake.versions_and_counts();
    assert_eq!(after["kafka_multiplex_bz"].1, before["kafka_multiplex_bz"].1 + 3);
    assert_eq!(
        after["user_profile"],
        (before["user_profile"].0 + 1, before["user_profile"].1),
        "one progress commit, no row"
    );
    assert!(lake.caught_up(), "a step is behind: {:#?}", lake.status());
}

/// A batch's last chunk is written by both write lanes, half each (nothing else is left to
/// overlap with its writing): one file of 20,000 readings lands as two bronze files.
#[test]
fn a_batch_last_chunk_is_split_across_the_write_lanes() {
    let lake = Lake::after_set_1();
    let before = lake.versions_and_counts();
    let text: String = (1..=20_000).map(|i| readings_line(i, &(1_678_521_600 + i).to_string())).collect();
    std::fs::write(lake.landing("kafka_multiplex_bz").join("readings.json"), text).expect("land");
    lake.run_once();
    let after = lake.versions_and_counts();
    assert_eq!(after["kafka_multiplex_bz"].1, before["kafka_multiplex_bz"].1 + 20_000);
    let version = after["kafka_multiplex_bz"].0;
    let log = lake.root.join("managed/bronze/kafka_multiplex_bz/_delta_log").join(format!("{version:020}.json"));
    let commit = std::fs::read_to_string(&log).expect("commit");
    let adds = commit.lines().filter(|l| l.starts_with(r#"{"add""#)).count();
    assert_eq!(adds, 2, "{commit}");
    assert!(lake.caught_up(), "a step is behind: {:#?}", lake.status());
}

pub(crate) fn reference_run() -> BTreeMap<String, polars::prelude::DataFrame> {
    let lake = Lake::after_set_1();
    lake.fitlake(&["produce", "--set", "2"]);
    lake.run_once();
    lake.all_tables()
}

#[test]
fn killed_runs_then_rerun_equal_an_uninterrupted_run() {
    let reference = reference_run();
    // Each scenario: faults for the runs after set 1, then a clean run after set 2.
    let scenarios: [&[&str]; 10] = [
        &["after-plan:kafka_multiplex_bz"],
        &["after-write:kafka_multiplex_bz"],
        &["after-commit:kafka_multiplex_bz"],
        &["after-write:registered_users_bz", "after-write:heart_rate"],
        &["after-commit:heart_rate"],
        &["after-write:user_profile", "after-commit:user_bins"],
        &["after-write:completed_workouts"],
        &["after-commit:workout_bpm", "after-write:workout_bpm_summary"],
        &["after-write:gym_summary"],
        &["after-plan:gym_logins_bz", "after-commit:gym_logs", "after-commit:workout_bpm_summary"],
    ];
    for faults in scenarios {
        let lake = Lake::new();
        lake.fitlake(&["setup"]);
        lake.fitlake(&["produce", "--set", "1"]);
        for fault in faults {
            let out = lake.fitlake_env(&["run", "--once", "--as-of", harness::AS_OF], &[("FITLAKE_FAULT", fault)]);
            assert!(!out.status.success(), "fault {fault} did not stop the run");
            assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"), "fault {fault} not reached");
        }
        lake.fitlake(&["produce", "--set", "2"]);
        lake.run_once();
        assert_same_tables(&reference, &lake.all_tables(), &format!("after faults {faults:?}"));
    }
}

/// Commits in a table's Delta log.
fn commits(lake: &Lake, layer: &str, table: &str) -> usize {
    let log = lake.root.join("managed").join(layer).join(table).join("_delta_log");
    std::fs::read_dir(&log)
        .map(|entries| entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

#[test]
fn steps_killed_between_their_groups_then_rerun_equal_an_uninterrupted_run() {
    let reference = reference_run();
    // A tiny memory budget (groups of 1 KiB), and one landing file per bronze batch:
    // `heart_rate` takes its new bronze files in several groups and `workout_bpm` its sessions
    // in several parts, each committed on its own, the progress with the last.
    let run: &[&str] =
        &["run", "--once", "--as-of", harness::AS_OF, "--memory-budget", "16384", "--max-batch-bytes", "1"];
    for (fault, layer, table) in
        [("after-commit:heart_rate", "silver", "heart_rate"), ("after-commit:workout_bpm", "silver", "workout_bpm")]
    {
        let lake = Lake::new();
        lake.fitlake(&["setup"]);
        lake.fitlake(&["produce", "--set", "1"]);
        lake.fitlake(&["produce", "--set", "2"]);
        let before = commits(&lake, layer, table);
        let out = lake.fitlake_env(run, &[("FITLAKE_FAULT", fault)]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"), "fault {fault} not reached");
        assert_eq!(commits(&lake, layer, table), before + 1, "{fault}: one group committed, then killed");
        lake.fitlake(run);
        assert!(commits(&lake, layer, table) >= before + 2, "{table} was not taken in several groups");
        assert_same_tables(&reference, &lake.all_tables(), &format!("after {fault} between groups"));
    }
}

#[test]
fn bad_records_are_quarantined_and_the_run_goes_on() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    std::fs::write(
        lake.landing("registered_users_bz").join("bad_users.csv"),
        "user_id,device_id,mac_address,registration_timestamp\n\
         1,10,aa:bb,1678451168\n\
         \n\
         x,11,cc:dd,1678451168\n\
         3,12,ee:ff\n\
         4,13,gg:hh,yesterday\n\
         5,14,ii:jj,2023-03-10T12:00:00Z\n",
    )
    .expect("write");
    std::fs::write(
        lake.landing("kafka_multiplex_bz").join("bad_events.json"),
        concat!(
            r#"{"key":"1","value":"{\"device_id\": 10, \"time\": 1678451170.5, \"heartrate\": 80.0}","topic":"bpm","partition":0,"offset":1,"timestamp":1678451170500}"#,
            "\n\n",
            "{not json\n",
            r#"{"key":"1","value":"{}","topic":"weather","partition":0,"offset":2,"timestamp":1678451170}"#,
            "\n",
            r#"{"key":"1","value":"{\"device_id\": 10, \"time\": 1678451171, \"heartrate\": \"high\"}","topic":"bpm","partition":0,"offset":3,"timestamp":1678451171}"#,
            "\n",
            r#"{"key":"1","value":"{\"user_id\": 1, \"workout_id\": 1, \"action\": \"start\", \"session_id\": 1}","topic":"workout","partition":0,"offset":4,"timestamp":1678451171}"#,
            "\n",
            r#"{"key":"1","value":"{\"user_id\": 1, \"update_type\": \"new\", \"timestamp\": 1678451168, \"dob\": \"13/45/1990\"}","topic":"user_info","partition":0,"offset":5,"timestamp":1678451168}"#,
            "\n",
            r#"{"key":"1","value":"{\"device_id\": 10, \"time\": \"2023-03-10T12:30:00Z\", \"heartrate\": -1}","topic":"bpm","partition":0,"offset":6,"timestamp":"2023-03-10T12:30:00Z"}"#,
            "\n"
        ),
    )
    .expect("write");
    let out = lake.fitlake(&["run", "--once", "--as-of", harness::AS_OF, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let quarantined: u64 =
        report["steps"].as_array().expect("steps").iter().map(|s| s["quarantined"].as_u64().unwrap_or(0)).sum();
    assert_eq!(quarantined, 7);
    let counts = lake.counts();
    assert_eq!(counts["registered_users_bz"], 2);
    assert_eq!(counts["users"], 2);
    assert_eq!(counts["heart_rate"], 2);
    assert_eq!(counts["quarantine"], 7);
    // An unreadable date of birth is an unusable optional field: the profile is kept, its age
    // band is `invalid age`, and the field is counted as a `warn`.
    assert_eq!(counts["user_profile"], 1);
    let bins = lake.table("user_bins");
    assert_eq!(bins.column("age").expect("age").str().expect("str").get(0), Some("invalid age"));
    let events = lake.table("quality_events");
    let warned = events
        .lazy()
        .filter(col("expectation").eq(lit("value.dob is usable (else null)")).and(col("action").eq(lit("warn"))))
        .select([col("rows_failed").sum()])
        .collect()
        .expect("warns");
    assert_eq!(warned.column("rows_failed").expect("sum").i64().expect("i64").get(0), Some(1));
    let quarantine = lake.table("quarantine");
    insta::assert_snapshot!(fitlake_frame::to_text(&quarantine), @r#"
        table: str,source_file: str,line: i64,raw: str,reason: str
        kafka_multiplex_bz,bad_events.json,3,{not json,envelope: key must be a string at line 1 column 2
        kafka_multiplex_bz,bad_events.json,4,{"key":"1","value":"{}","topic":"weather","partition":0,"offset":2,"timestamp":1678451170},unknown topic "weather"; expected one of user_info, workout, bpm
        kafka_multiplex_bz,bad_events.json,5,{"key":"1","value":"{\"device_id\": 10, \"time\": 1678451171, \"heartrate\": \"high\"}","topic":"bpm","partition":0,"offset":3,"timestamp":1678451171},value: invalid type: string "high", expected f64 at line 1 column 57
        kafka_multiplex_bz,bad_events.json,6,{"key":"1","value":"{\"user_id\": 1, \"workout_id\": 1, \"action\": \"start\", \"session_id\": 1}","topic":"workout","partition":0,"offset":4,"timestamp":1678451171},value: missing field `timestamp` at line 1 column 67
        registered_users_bz,bad_users.csv,4,x,11,cc:dd,1678451168,user_id: "x" is not an integer
        registered_users_bz,bad_users.csv,5,3,12,ee:ff,expected 4 fields, found 3
        registered_users_bz,bad_users.csv,6,4,13,gg:hh,yesterday,registration_timestamp: "yesterday" is neither epoch seconds nor an ISO-8601 time
    "#);
}

#[test]
fn missing_landing_is_nothing_new_and_bad_roots_fail_clearly() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    std::fs::remove_dir_all(lake.landing("kafka_multiplex_bz")).expect("remove landing");
    let out = lake.run_once();
    assert!(String::from_utf8_lossy(&out.stdout).contains("rows_read=0"));

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let root = file.join("lakehouse");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitlake"))
        .args(["--lakehouse", root.to_str().expect("utf-8"), "--principal", "pipeline", "setup"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-dir"), "error does not name the path: {stderr}");

    let out = lake.fitlake_env(&["run", "--once", "--as-of", "2023-13-45"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));

    let out = lake.fitlake_env(&["run"], &[]);
    assert_eq!(out.status.code(), Some(2), "run without --once must say what to pass");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stream"), "the message names both modes");

    let out = lake.fitlake_env(&["run", "--stream", "--trigger", "5 parsecs"], &[]);
    assert_eq!(out.status.code(), Some(2), "a bad trigger is a configuration error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trigger"));

    let fresh = Lake::new();
    let out = fresh.fitlake_env(&["run", "--once"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fitlake setup"), "a missing table must point to setup");
}

#[test]
fn per_layer_binaries_build_the_same_tables() {
    let reference = reference_run();
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let root = lake.root.to_str().expect("utf-8").to_string();
    for set in ["1", "2"] {
        lake.fitlake(&["produce", "--set", set]);
        for bin in [
            env!("CARGO_BIN_EXE_fitlake-bronze"),
            env!("CARGO_BIN_EXE_fitlake-silver"),
            env!("CARGO_BIN_EXE_fitlake-gold"),
        ] {
            let out = std::process::Command::new(bin)
                .args(["--lakehouse", &root, "--principal", "pipeline", "--once", "--as-of", harness::AS_OF, "--quiet"])
                .output()
                .expect("run layer");
            assert!(out.status.success(), "{bin}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert_same_tables(&reference, &lake.all_tables(), "per-layer binaries");
}

#[test]
fn late_readings_correct_the_gold_summary() {
    let lake = Lake::after_set_1();
    let session = |lake: &Lake| {
        let text = fitlake_frame::to_text(&lake.table("workout_bpm_summary"));
        text.lines().find(|l| l.starts_with("12227,1,1,")).map(str::to_string).expect("session 12227/1/1")
    };
    let before = session(&lake);
    // Three late readings of user 12227's device inside session 1 (08:45 to 09:50 UTC), at
    // microsecond times no generated reading has, one of them invalid.
    let late: String = [(1_678_524_400.000_001, 200.5), (1_678_524_500.000_002, 30.25), (1_678_524_600.000_003, 0.0)]
        .iter()
        .enumerate()
        .map(|(i, (t, hr))| {
            format!(
                "{{\"key\":\"114131\",\"value\":\"{{\\\"device_id\\\": 114131, \\\"time\\\": {t:.6}, \\\"heartrate\\\": {hr}}}\",\"topic\":\"bpm\",\"partition\":0,\"offset\":{},\"timestamp\":{}}}\n",
                9_000_000 + i,
                (*t as i64) * 1000
            )
        })
        .collect();
    std::fs::write(lake.landing("kafka_multiplex_bz").join("late-bpm.json"), late).expect("write");
    lake.run_once();
    let after = session(&lake);
    let field = |line: &str, i: usize| line.split(',').nth(i).expect("field").to_string();
    let count = |line: &str| field(line, 10).parse::<u64>().expect("count");
    assert_eq!(count(&after), count(&before) + 2, "before: {before}\nafter: {after}");
    assert_eq!(field(&after, 9), "200.5", "max_bpm takes the late reading");
    assert_eq!(field(&after, 7), "30.25", "min_bpm takes the late reading");
    assert_eq!(lake.counts()["workout_bpm_summary"], 8, "no session is added or lost");
}

#[test]
fn progress_bars_show_long_steps_bytes_and_rows_when_asked_and_nothing_otherwise() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    lake.fitlake(&["produce", "--set", "1"]);
    // Into a pipe, `auto` (the default) draws nothing.
    let quiet_lake = Lake::new();
    quiet_lake.fitlake(&["setup"]);
    quiet_lake.fitlake(&["produce", "--set", "1"]);
    let out = quiet_lake.run_once();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("rows written"), "a bar was drawn into a pipe");

    let out = lake.fitlake(&["run", "--once", "--as-of", harness::AS_OF, "--progress", "always"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for bar in ["bronze.kafka_multiplex_bz batch 0: ", "silver.heart_rate: ", "silver.workout_bpm: "] {
        assert!(stderr.contains(bar), "no bar {bar:?} in {stderr}");
    }
    // Landing bytes read (indicatif's units) and rows written.
    assert!(stderr.contains("KiB/") && stderr.contains("rows written"), "{stderr}");
    // The tables are the same as without bars.
    assert_eq!(lake.counts(), quiet_lake.counts());
}

#[test]
fn no_config_or_context_struct_prints_a_secret() {
    use fitlake_config::Secret;
    use fitlake_storage::azure::AzureAuth;
    let lake = Lake::new();
    let lakehouse = fitlake_config::Lakehouse::from_root(lake.root.to_str().expect("utf-8"), std::path::Path::new("/"))
        .expect("lakehouse");
    let policy = fitlake_governance::Policy::shipped().expect("policy");
    let stores = fitlake_storage::Stores::with_azure(AzureAuth::AccountKey(Secret::new("c2VjcmV0LWtleS1odW50ZXIy")));
    let access = fitlake_storage::Access::new(lakehouse, policy, "pipeline").expect("access").with_stores(stores);
    let options = fitlake_pipeline::RunOptions::new(chrono::NaiveDate::from_ymd_opt(2023, 3, 15).expect("date"), 0);
    let expectations = fitlake_quality::Expectations::default();
    let dsn = "postgresql://fitlake:hunter2-pw@db.example.com/gym";
    let pg_password = Some(Secret::new("pg-file-pw"));
    let pg = fitlake_sources::postgres::PgSource {
        password: pg_password,
        ..fitlake_sources::postgres::PgSource::new(Secret::new(dsn))
    };
    let mut kafka = fitlake_sources::kafka::KafkaSource::parse("broker.servicebus.windows.net:9093").expect("brokers");
    kafka.security = fitlake_sources::kafka::KafkaSecurity {
        tls: Some(None),
        sasl: Some(fitlake_sources::kafka::Sasl {
            mechanism: fitlake_sources::kafka::SaslMechanism::Plain,
            username: "$ConnectionString".into(),
            password: Secret::new("Endpoint=sb://x/;SharedAccessKey=eventhubs-key"),
        }),
    };
    let ctx = fitlake_pipeline::Context::new(access, expectations, options)
        .with_source(std::sync::Arc::new(pg))
        .with_source(std::sync::Arc::new(kafka));
    let shown = format!("{ctx:?}");
    assert!(shown.contains("PgSource") && shown.contains("AccountKey") && shown.contains("KafkaSecurity"), "{shown}");
    for secret in ["hunter2-pw", "c2VjcmV0LWtleS1odW50ZXIy", "pg-file-pw", "eventhubs-key"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

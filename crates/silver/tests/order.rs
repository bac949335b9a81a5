//! Order never changes the answer: random event sequences (profile CDC with deletes and ties,
//! duplicate and conflicting readings, workout sessions whose start and stop land in different
//! batches), split into random batches in random orders and merged batch by batch into an
//! in-memory table, give the table that one batch of all of them gives.

use fitlake_frame::{MergePlan, FILE_COLUMN};
use fitlake_silver::polars::prelude::*;
use proptest::prelude::*;

fn times(name: &str, seconds: &[i64]) -> Column {
    let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
    Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).expect("datetime")
}

/// A profile change: user, type, time, city, and whether its dob is unreadable (null).
type Change = (i64, &'static str, i64, &'static str, bool);

fn changes_frame(rows: &[Change]) -> DataFrame {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new("update_type".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            times("updated", &rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            Column::new("dob".into(), rows.iter().map(|r| (!r.4).then_some(10_000i32)).collect::<Vec<_>>())
                .cast(&DataType::Date)
                .expect("date"),
            Column::new("sex".into(), vec![Some("F"); n]),
            Column::new("gender".into(), vec![Some("F"); n]),
            Column::new("first_name".into(), vec![Some("Ann"); n]),
            Column::new("last_name".into(), vec![Some("Lee"); n]),
            Column::new("street_address".into(), vec![None::<&str>; n]),
            Column::new("city".into(), rows.iter().map(|r| Some(r.3)).collect::<Vec<_>>()),
            Column::new("state".into(), vec![Some("CA"); n]),
            Column::new("zip".into(), vec![Some(90000i64); n]),
        ],
    )
    .expect("frame")
}

/// Applies a MERGE plan to an in-memory table whose rows carry [`FILE_COLUMN`]: the removed
/// files' rows go, the plan's rows come as one new file.
fn apply(table: &DataFrame, plan: &MergePlan, file: &str) -> DataFrame {
    let removed = Series::new("f".into(), plan.files_to_remove.clone());
    let kept = table.clone().lazy().filter(col(FILE_COLUMN).is_in(lit(removed).implode(false), false).not());
    let added = plan.rows_to_add.clone().lazy().with_column(lit(file.to_string()).alias(FILE_COLUMN));
    concat([kept, added], UnionArgs::default()).expect("concat").collect().expect("collect")
}

/// The table's rows without their files, in a canonical order.
fn canonical(table: &DataFrame, keys: &[&str]) -> String {
    let rows = table.drop(FILE_COLUMN).unwrap_or_else(|_| table.clone());
    let rows = rows.sort(keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(), Default::default()).expect("sort");
    fitlake_frame::to_text(&rows)
}

/// Splits `items` (already shuffled) into batches at `cuts`.
fn batches<T: Clone>(items: &[T], cuts: &[usize]) -> Vec<Vec<T>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (items.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([items.len()]) {
        out.push(items[start..cut.max(start)].to_vec());
        start = cut.max(start);
    }
    out
}

fn profile_run(batches: &[Vec<Change>]) -> String {
    let mut table =
        changes_frame(&[]).lazy().select(fitlake_silver::PROFILE_COLUMNS.map(col)).collect().expect("empty");
    table.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new())).expect("file column");
    for (i, batch) in batches.iter().enumerate() {
        let changes = fitlake_silver::user_profile(&changes_frame(batch), &table).expect("user_profile");
        table = apply(&table, &changes.plan, &format!("b{i}"));
    }
    canonical(&table, &["user_id"])
}

fn change() -> impl Strategy<Value = Change> {
    (
        1i64..4,
        prop::sample::select(vec!["new", "update", "delete"]),
        1i64..5,
        prop::sample::select(vec!["Boston", "Salem", "Lynn"]),
        any::<bool>(),
    )
}

/// A reading: device, time, heartrate (some invalid).
type Reading = (i64, i64, f64);

fn readings_frame(rows: &[Reading]) -> DataFrame {
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("device_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            times("time", &rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new("heartrate".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        ],
    )
    .expect("frame")
}

fn heart_rate_run(batches: &[Vec<Reading>]) -> String {
    let empty = fitlake_silver::heart_rate(&readings_frame(&[]), &readings_frame(&[])).expect("empty");
    let mut table = empty.clone();
    table.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new())).expect("file column");
    for (i, batch) in batches.iter().enumerate() {
        let upserts = fitlake_silver::heart_rate(&readings_frame(batch), &table).expect("heart_rate");
        let plan = fitlake_frame::plan_merge(&table, &upserts, None, &["device_id", "time"]).expect("plan");
        table = apply(&table, &plan, &format!("b{i}"));
    }
    canonical(&table, &["device_id", "time"])
}

/// A workout event: user, time, action, session.
type Event = (i64, i64, &'static str, i64);

fn events_frame(rows: &[Event]) -> DataFrame {
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new("workout_id".into(), vec![1i64; rows.len()]),
            times("time", &rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new("action".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            Column::new("session_id".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        ],
    )
    .expect("frame")
}

/// Merges upserts into an in-memory table, as the steps' MERGE does.
fn upsert(table: &DataFrame, rows: &DataFrame, keys: &[&str], file: &str) -> DataFrame {
    let mut tagged = table.clone();
    if tagged.column(FILE_COLUMN).is_err() {
        tagged.with_column(Column::new(FILE_COLUMN.into(), vec!["b"; tagged.height()])).expect("file column");
    }
    let plan = fitlake_frame::plan_merge(&tagged, rows, None, keys).expect("plan");
    apply(&tagged, &plan, file)
}

/// `workouts` then `completed_workouts`, batch by batch, as the steps chain them: each batch's
/// events are upserted, then sessions are paired over every stored event and upserted.
fn sessions_run(batches: &[Vec<Event>]) -> String {
    let mut workouts = events_frame(&[]);
    let empty = events_frame(&[]);
    let mut sessions = empty
        .lazy()
        .select([
            col("user_id"),
            col("workout_id"),
            col("session_id"),
            col("time").alias("start_time"),
            col("time").alias("end_time"),
        ])
        .collect()
        .expect("empty");
    for (i, batch) in batches.iter().enumerate() {
        let fresh = fitlake_silver::workouts(&events_frame(batch), &workouts).expect("workouts");
        workouts = upsert(&workouts, &fresh, &["user_id", "time"], &format!("w{i}")).drop(FILE_COLUMN).expect("drop");
        let paired = fitlake_silver::completed_workouts(&workouts, &sessions).expect("sessions");
        sessions = upsert(&sessions, &paired, &["user_id", "workout_id", "session_id"], &format!("s{i}"))
            .drop(FILE_COLUMN)
            .expect("drop");
    }
    canonical(&sessions, &["user_id", "workout_id", "session_id"])
}

/// A registration: user, device, time.
type Registration = (i64, i64, i64);

fn users_run(batches: &[Vec<Registration>]) -> String {
    let frame = |rows: &[Registration]| {
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("device_id".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                Column::new("mac_address".into(), rows.iter().map(|r| format!("m{}", r.1)).collect::<Vec<_>>()),
                times("registration_timestamp", &rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ],
        )
        .expect("frame")
    };
    let mut table = frame(&[]);
    for (i, batch) in batches.iter().enumerate() {
        let rows = fitlake_silver::users(&frame(batch), &table).expect("users");
        table = upsert(&table, &rows, &["user_id"], &format!("b{i}")).drop(FILE_COLUMN).expect("drop");
    }
    canonical(&table, &["user_id"])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn user_profile_is_the_same_however_changes_are_split_and_ordered(
        changes in prop::collection::vec(change(), 1..12),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in prop::collection::vec(0usize..16, 0..5),
    ) {
        let mut shuffled = changes.clone();
        shuffle(&mut shuffled, order);
        prop_assert_eq!(profile_run(&batches(&shuffled, &cuts)), profile_run(&[changes]));
    }

    #[test]
    fn heart_rate_is_the_same_however_readings_are_split_and_ordered(
        readings in prop::collection::vec((1i64..3, 1i64..4, prop::sample::select(vec![-1.0, 0.0, 60.0, 80.0, 81.0])), 1..12),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in prop::collection::vec(0usize..16, 0..5),
    ) {
        let mut shuffled = readings.clone();
        shuffle(&mut shuffled, order);
        prop_assert_eq!(heart_rate_run(&batches(&shuffled, &cuts)), heart_rate_run(&[readings]));
    }

    #[test]
    fn users_are_the_same_however_registrations_are_split_and_ordered(
        registrations in prop::collection::vec((1i64..3, 1i64..4, 1i64..4), 1..10),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in prop::collection::vec(0usize..16, 0..4),
    ) {
        let mut shuffled = registrations.clone();
        shuffle(&mut shuffled, order);
        prop_assert_eq!(users_run(&batches(&shuffled, &cuts)), users_run(&[registrations]));
    }

    #[test]
    fn sessions_are_the_same_however_start_and_stop_are_split_even_with_reused_keys(
        sessions in prop::collection::vec((1i64..3, 1i64..4, 0i64..3), 1..5),
        duplicates in 0usize..3,
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in prop::collection::vec(0usize..16, 0..4),
    ) {
        // Each entry starts at its own time and stops 10 minutes later; entries may reuse a
        // (user, session) key, so one key has several candidate pairs, and the same events
        // may land twice.
        let mut events: Vec<Event> = Vec::new();
        for (i, (user, session, _)) in sessions.iter().enumerate() {
            let start = 1_000 + 100_000 * *session + 1_000 * i as i64;
            events.push((*user, start, "start", *session));
            events.push((*user, start + 600, "stop", *session));
        }
        let copies: Vec<Event> = events.iter().take(duplicates).cloned().collect();
        events.extend(copies);
        let mut shuffled = events.clone();
        shuffle(&mut shuffled, order);
        prop_assert_eq!(sessions_run(&batches(&shuffled, &cuts)), sessions_run(&[events]));
    }
}

/// A deterministic Fisher-Yates shuffle from `seed`.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

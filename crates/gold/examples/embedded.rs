//! fitlake's silver and gold transforms embedded in a small service, on in-memory frames: no
//! Delta tables, no IO, no clock. A gym app keeps its tables as Polars frames and folds each
//! batch of events into them with the same functions the fitlake pipeline runs.
//!
//! `cargo run -p fitlake-gold --example embedded`

use fitlake_frame::FILE_COLUMN;
use fitlake_gold::polars::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The service's tables, each an in-memory frame of the silver table's schema.
struct Service {
    users: DataFrame,
    workouts: DataFrame,
    heart_rate: DataFrame,
    completed_workouts: DataFrame,
    workout_bpm: DataFrame,
    user_bins: DataFrame,
}

/// An empty frame of a silver table's schema.
fn empty(table: &str) -> DataFrame {
    let def = fitlake_silver::tables().into_iter().find(|t| t.name == table).map(|t| t.polars_schema());
    DataFrame::empty_with_schema(&def.unwrap_or_default())
}

fn times(name: &str, seconds: &[i64]) -> Result<Column> {
    let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
    Ok(Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?)
}

fn append(table: &mut DataFrame, rows: &DataFrame) -> Result<()> {
    table.vstack_mut(&rows.select(table.get_column_names_owned())?)?;
    Ok(())
}

/// Replaces the rows of `table` whose `keys` are in `rows` by `rows` (an upsert).
fn upsert(table: &mut DataFrame, rows: &DataFrame, keys: &[&str]) -> Result<()> {
    *table = fitlake_frame::anti_join(table, rows, keys)?;
    append(table, rows)
}

impl Service {
    fn new() -> Service {
        Service {
            users: empty("users"),
            workouts: empty("workouts"),
            heart_rate: empty("heart_rate"),
            completed_workouts: empty("completed_workouts"),
            workout_bpm: empty("workout_bpm"),
            user_bins: empty("user_bins"),
        }
    }

    /// Folds one batch of registrations, workout events and readings into the tables, as the
    /// pipeline's silver steps do (each table keeps, per key, the first row by its rule, so a
    /// late duplicate never depends on arrival order; `workout_bpm` follows).
    fn ingest(&mut self, registrations: &DataFrame, events: &DataFrame, readings: &DataFrame) -> Result<()> {
        let new_users = fitlake_silver::users(registrations, &self.users)?;
        upsert(&mut self.users, &new_users, &["user_id"])?;
        let new_events = fitlake_silver::workouts(events, &self.workouts)?;
        upsert(&mut self.workouts, &new_events, &["user_id", "time"])?;
        let new_readings = fitlake_silver::heart_rate(readings, &self.heart_rate)?;
        upsert(&mut self.heart_rate, &new_readings, &["device_id", "time"])?;
        let sessions = fitlake_silver::completed_workouts(&self.workouts, &self.completed_workouts)?;
        upsert(&mut self.completed_workouts, &sessions, &["user_id", "workout_id", "session_id"])?;
        // Small in memory: every session's rows are recomputed.
        self.workout_bpm = fitlake_silver::workout_bpm(&self.completed_workouts, &self.users, &self.heart_rate)?;
        Ok(())
    }

    /// Age bands of the profiles, at `as_of`.
    fn profiles(&mut self, profiles: &DataFrame, as_of: chrono::NaiveDate) -> Result<()> {
        let mut current = self.user_bins.clone();
        current.with_column(Column::new(FILE_COLUMN.into(), vec!["memory"; current.height()]))?;
        self.user_bins = fitlake_silver::user_bins(profiles, &current, as_of)?.rows_to_add;
        Ok(())
    }

    /// `gold.workout_bpm_summary`, recomputed over every session.
    fn summary(&self) -> Result<DataFrame> {
        let stats = fitlake_gold::session_stats(&self.workout_bpm)?;
        let mut none = DataFrame::empty_with_schema(
            &fitlake_gold::tables()
                .into_iter()
                .find(|t| t.name == "workout_bpm_summary")
                .map(|t| t.polars_schema())
                .unwrap_or_default(),
        );
        none.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
        let plan = fitlake_gold::workout_bpm_summary(&none, &stats, &self.user_bins)?;
        Ok(plan.rows_to_add.sort(["user_id", "session_id"], SortMultipleOptions::default())?)
    }
}

/// Two users, one session each, readings every second, one reading sent twice.
fn run() -> Result<DataFrame> {
    let mut service = Service::new();
    let registrations = DataFrame::new(
        2,
        vec![
            Column::new("user_id".into(), [1i64, 2]),
            Column::new("device_id".into(), [100i64, 200]),
            Column::new("mac_address".into(), ["aa", "bb"]),
            times("registration_timestamp", &[0, 0])?,
        ],
    )?;
    let events = DataFrame::new(
        4,
        vec![
            Column::new("user_id".into(), [1i64, 1, 2, 2]),
            Column::new("workout_id".into(), [7i64, 7, 8, 8]),
            times("time", &[1000, 1004, 2000, 2003])?,
            Column::new("action".into(), ["start", "stop", "start", "stop"]),
            Column::new("session_id".into(), [1i64, 1, 1, 1]),
        ],
    )?;
    let readings = DataFrame::new(
        7,
        vec![
            Column::new("device_id".into(), [100i64, 100, 100, 100, 200, 200, 200]),
            times("time", &[1001, 1002, 1003, 1003, 2001, 2002, 2003])?,
            Column::new("heartrate".into(), [90.0f64, 110.0, 100.0, 100.0, 70.0, 80.0, 90.0]),
        ],
    )?;
    service.ingest(&registrations, &events, &readings)?;
    // The same batch again changes nothing: keys already held are skipped.
    service.ingest(&registrations, &events, &readings)?;
    let profiles = DataFrame::new(
        1,
        vec![
            Column::new("user_id".into(), [1i64]),
            Column::new("dob".into(), [Some("1990-05-01")]).cast(&DataType::Date)?,
            Column::new("gender".into(), [Some("F")]),
            Column::new("city".into(), [Some("Boston")]),
            Column::new("state".into(), [Some("MA")]),
        ],
    )?;
    service.profiles(&profiles, chrono::NaiveDate::from_ymd_opt(2023, 3, 15).ok_or("date")?)?;
    service.summary()
}

fn main() -> Result<()> {
    println!("{}", run()?);
    Ok(())
}

#[test]
fn the_embedded_service_summarises_each_session_once() -> Result<()> {
    let summary = run()?;
    assert_eq!(summary.height(), 2);
    let avg: Vec<Option<f64>> = summary.column("avg_bpm")?.f64()?.iter().collect();
    assert_eq!(avg, [Some(100.0), Some(80.0)], "{summary}");
    let readings: Vec<Option<i64>> = summary.column("num_recordings")?.i64()?.iter().collect();
    assert_eq!(readings, [Some(3), Some(3)], "a reading sent twice counts once: {summary}");
    let age: Vec<Option<&str>> = summary.column("age")?.str()?.iter().collect();
    assert_eq!(age, [Some("25-35"), None], "{summary}");
    Ok(())
}

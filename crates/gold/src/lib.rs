//! Gold layer: tables for analysts.
//!
//! - `workout_bpm_summary`: one row for every completed session with valid readings: min, avg
//!   and max bpm and the number of readings, with the user's bins (null when the user has no
//!   profile). Corrected when more readings arrive.
//! - `gym_summary`: one row per gym visit and workout session started during it: the date of
//!   login (UTC), gym, device MAC, minutes in the gym and minutes exercising, to 2 decimals.
//!
//! Both are small (a row per session) and planned as a sync of the whole table, so a change
//! anywhere upstream (a late reading, a new profile) is reflected exactly.

use fitlake_config::Layer;
use fitlake_frame::merge::{plan_sync, MergePlan};
use fitlake_frame::table::{self as t, TableDef};
use polars::prelude::*;

/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the gold layer: bugs or schema mismatches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polars refused an operation.
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    /// The merge planner failed.
    #[error(transparent)]
    Frame(#[from] fitlake_frame::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Table `gold.workout_bpm_summary`.
pub const WORKOUT_BPM_SUMMARY: &str = "workout_bpm_summary";
/// Table `gold.gym_summary`.
pub const GYM_SUMMARY: &str = "gym_summary";

/// The key of a workout session.
pub const SESSION_KEY: [&str; 3] = ["user_id", "workout_id", "session_id"];

/// Every gold table.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new(
            Layer::Gold,
            WORKOUT_BPM_SUMMARY,
            "One row per completed session with valid readings: bpm statistics and the user's bins.",
            vec![
                t::int64("user_id"),
                t::int64("workout_id"),
                t::int64("session_id"),
                t::string_null("age"),
                t::string_null("gender"),
                t::string_null("city"),
                t::string_null("state"),
                t::float64("min_bpm"),
                t::float64("avg_bpm"),
                t::float64("max_bpm"),
                t::int64("num_recordings"),
            ],
        )
        .keyed_by(&SESSION_KEY),
        TableDef::new(
            Layer::Gold,
            GYM_SUMMARY,
            "One row per gym visit and workout session started in it, with minutes in gym and exercising.",
            vec![
                t::date("date"),
                t::int64("gym"),
                t::string("mac_address"),
                t::timestamp("login"),
                t::int64("workout_id"),
                t::int64("session_id"),
                t::float64("minutes_in_gym"),
                t::float64("minutes_exercising"),
            ],
        )
        .keyed_by(&["mac_address", "gym", "login", "workout_id", "session_id"]),
    ]
}

fn cols(names: &[&str]) -> Vec<Expr> {
    names.iter().map(|n| col(*n)).collect()
}

/// Per session: `min_bpm`, `avg_bpm`, `max_bpm`, `num_recordings` of `workout_bpm` rows.
/// ```
/// # use fitlake_gold::polars::prelude::*;
/// let bpm = df!("user_id" => [1i64, 1], "workout_id" => [7i64, 7], "session_id" => [1i64, 1], "heartrate" => [60.0, 80.0])?;
/// let stats = fitlake_gold::session_stats(&bpm)?;
/// assert_eq!(stats.column("avg_bpm")?.f64()?.get(0), Some(70.0));
/// assert_eq!(stats.column("num_recordings")?.i64()?.get(0), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn session_stats(workout_bpm: &DataFrame) -> Result<DataFrame> {
    combine_session_stats(&partial_session_stats(workout_bpm.clone().lazy()).collect()?)
}

/// Per session, the parts of [`session_stats`] that combine across any split of the rows:
/// minimum, maximum, sum and count of `heartrate` (`part_min`, `part_max`, `part_sum`,
/// `part_count`). Computed per data file as it is read, then put together with
/// [`combine_session_stats`], the statistics of millions of readings need only one file's rows
/// in memory at a time.
/// ```
/// # use fitlake_gold::polars::prelude::*;
/// let a = df!("user_id" => [1i64], "workout_id" => [7i64], "session_id" => [1i64], "heartrate" => [60.0])?;
/// let b = df!("user_id" => [1i64, 1], "workout_id" => [7i64, 7], "session_id" => [1i64, 1], "heartrate" => [80.0, 100.0])?;
/// let parts = fitlake_gold::partial_session_stats(a.lazy())
///     .collect()?
///     .vstack(&fitlake_gold::partial_session_stats(b.lazy()).collect()?)?;
/// let stats = fitlake_gold::combine_session_stats(&parts)?;
/// assert_eq!(stats.column("avg_bpm")?.f64()?.get(0), Some(80.0));
/// assert_eq!(stats.column("num_recordings")?.i64()?.get(0), Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn partial_session_stats(workout_bpm: LazyFrame) -> LazyFrame {
    workout_bpm.group_by(cols(&SESSION_KEY)).agg([
        col("heartrate").min().alias("part_min"),
        col("heartrate").max().alias("part_max"),
        col("heartrate").sum().alias("part_sum"),
        col("heartrate").count().cast(DataType::Int64).alias("part_count"),
    ])
}

/// [`session_stats`] from the parts [`partial_session_stats`] gave for any split of the rows.
pub fn combine_session_stats(parts: &DataFrame) -> Result<DataFrame> {
    Ok(parts
        .clone()
        .lazy()
        .group_by(cols(&SESSION_KEY))
        .agg([
            col("part_min").min().alias("min_bpm"),
            (col("part_sum").sum() / col("part_count").sum().cast(DataType::Float64)).alias("avg_bpm"),
            col("part_max").max().alias("max_bpm"),
            col("part_count").sum().alias("num_recordings"),
        ])
        .collect()?)
}

/// `workout_bpm_summary`: the current summary with the statistics of the sessions in
/// `fresh_stats` replaced (see [`session_stats`]; they must be computed over all of those
/// sessions' readings) and every row's bins taken from `user_bins`.
/// ```
/// # use fitlake_gold::polars::prelude::*;
/// # use fitlake_frame::FILE_COLUMN;
/// let bpm = df!("user_id" => [1i64], "workout_id" => [7i64], "session_id" => [1i64], "heartrate" => [60.0])?;
/// let stats = fitlake_gold::session_stats(&bpm)?;
/// let bins = df!("user_id" => [1i64], "age" => ["25-35"], "gender" => ["F"], "city" => ["Boston"], "state" => ["MA"])?;
/// let mut target = stats.clear().lazy().join(bins.clear().lazy(), [col("user_id")], [col("user_id")], JoinArgs::new(JoinType::Left)).collect()?;
/// target.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
/// let plan = fitlake_gold::workout_bpm_summary(&target, &stats, &bins)?;
/// assert_eq!((plan.inserted, plan.rows_to_add.column("age")?.str()?.get(0)), (1, Some("25-35")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn workout_bpm_summary(target: &DataFrame, fresh_stats: &DataFrame, user_bins: &DataFrame) -> Result<MergePlan> {
    let stats_columns = ["user_id", "workout_id", "session_id", "min_bpm", "avg_bpm", "max_bpm", "num_recordings"];
    let kept = target.clone().lazy().select(cols(&stats_columns)).join(
        fresh_stats.clone().lazy().select(cols(&SESSION_KEY)),
        cols(&SESSION_KEY),
        cols(&SESSION_KEY),
        JoinArgs::new(JoinType::Anti),
    );
    let desired = concat([kept, fresh_stats.clone().lazy().select(cols(&stats_columns))], UnionArgs::default())?
        .join(
            user_bins.clone().lazy().select(cols(&["user_id", "age", "gender", "city", "state"])),
            [col("user_id")],
            [col("user_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select(cols(&[
            "user_id",
            "workout_id",
            "session_id",
            "age",
            "gender",
            "city",
            "state",
            "min_bpm",
            "avg_bpm",
            "max_bpm",
            "num_recordings",
        ]))
        .sort(SESSION_KEY, SortMultipleOptions::default())
        .collect()?;
    Ok(plan_sync(target, &desired, &SESSION_KEY)?)
}

fn minutes_between(end: &str, start: &str) -> Expr {
    ((col(end).cast(DataType::Int64) - col(start).cast(DataType::Int64)).cast(DataType::Float64) / lit(60_000_000.0))
        .round(2, RoundMode::HalfAwayFromZero)
}

/// `gym_summary`: every visit joined to the sessions its device's user started during it
/// (`login <= start_time <= logout`), planned as a sync of the whole table.
/// ```
/// # use fitlake_gold::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// # use fitlake_frame::FILE_COLUMN;
/// let visits = DataFrame::new(1, vec![
///     Column::new("mac_address".into(), ["aa"]), Column::new("gym".into(), [3i64]),
///     times("login", &[0])?, times("logout", &[3600])?,
/// ])?;
/// let sessions = DataFrame::new(1, vec![
///     Column::new("user_id".into(), [1i64]), Column::new("workout_id".into(), [7i64]),
///     Column::new("session_id".into(), [1i64]), times("start_time", &[600])?, times("end_time", &[1800])?,
/// ])?;
/// let users = df!("user_id" => [1i64], "mac_address" => ["aa"])?;
/// let mut target = df!("date" => Vec::<i32>::new())?.lazy().with_column(col("date").cast(DataType::Date)).collect()?;
/// target.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
/// # let target = target.lazy().with_columns([lit(NULL).cast(DataType::Int64).alias("gym"), lit(NULL).cast(DataType::String).alias("mac_address"), lit(NULL).cast(DataType::Datetime(TimeUnit::Microseconds, None)).alias("login"), lit(NULL).cast(DataType::Int64).alias("workout_id"), lit(NULL).cast(DataType::Int64).alias("session_id"), lit(NULL).cast(DataType::Float64).alias("minutes_in_gym"), lit(NULL).cast(DataType::Float64).alias("minutes_exercising")]).collect()?;
/// let plan = fitlake_gold::gym_summary(&visits, &sessions, &users, &target)?;
/// let row = &plan.rows_to_add;
/// assert_eq!(row.column("minutes_in_gym")?.f64()?.get(0), Some(60.0));
/// assert_eq!(row.column("minutes_exercising")?.f64()?.get(0), Some(20.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gym_summary(
    gym_logs: &DataFrame,
    completed_workouts: &DataFrame,
    users: &DataFrame,
    target: &DataFrame,
) -> Result<MergePlan> {
    let sessions = completed_workouts.clone().lazy().join(
        users.clone().lazy().select([col("user_id"), col("mac_address")]),
        [col("user_id")],
        [col("user_id")],
        JoinArgs::new(JoinType::Inner),
    );
    let desired = gym_logs
        .clone()
        .lazy()
        .join(sessions, [col("mac_address")], [col("mac_address")], JoinArgs::new(JoinType::Inner))
        .filter(col("start_time").gt_eq(col("login")).and(col("start_time").lt_eq(col("logout"))))
        .select([
            col("login").dt().date().alias("date"),
            col("gym"),
            col("mac_address"),
            col("login"),
            col("workout_id"),
            col("session_id"),
            minutes_between("logout", "login").alias("minutes_in_gym"),
            minutes_between("end_time", "start_time").alias("minutes_exercising"),
        ])
        .unique_stable(None, UniqueKeepStrategy::First)
        .sort(["date", "gym", "mac_address", "login", "workout_id", "session_id"], SortMultipleOptions::default())
        .collect()?;
    Ok(plan_sync(target, &desired, &["mac_address", "gym", "login", "workout_id", "session_id"])?)
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

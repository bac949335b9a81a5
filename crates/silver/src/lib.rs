//! Silver layer: cleaned, deduplicated, merged entities.
//!
//! Each table has one function named after it that turns new upstream rows (and, where the
//! MERGE needs them, the affected target rows) into a [`MergePlan`] or the rows to insert.
//! Nothing here reads or writes storage, or looks at a clock: the caller reads the inputs,
//! passes the "as of" date, and commits the plan.
//!
//! | table | key | rule |
//! |---|---|---|
//! //! | `gym_logs` | `mac_address, gym, login` | a later, greater logout updates the visit |
//! | `users` | `user_id` | the earliest registration (then the lowest device, MAC), in one batch or across batches |
//! | `user_profile` | `user_id` | CDC: the greatest change wins (see [`change_order`]); a winning `delete` leaves a tombstone |
//! | `workouts` | `user_id, time` | the least (action, workout, session), in one batch or across batches |
//! | `heart_rate` | `device_id, time` | `valid = heartrate > 0`; among duplicates the greatest heartrate, in one batch or across batches (a later greater one updates) |
//! | `user_bins` | `user_id` | recomputed from the live (not tombstoned) `user_profile` rows at the as-of date |
//! | `completed_workouts` | `user_id, workout_id, session_id` | a start joined to its stop within 3 hours; the least (start, end) pair |
//! | `workout_bpm` | `user_id, workout_id, session_id, time` | valid readings of the user's device with start < time <= end; a session's rows are synced whenever it, its user or its readings change |

pub mod age;
pub mod decode;
mod packed;

use fitlake_config::Layer;
use fitlake_frame::merge::{plan_merge, plan_sync, MergePlan};
use fitlake_frame::table::{self as t, TableDef};
use polars::prelude::*;

pub use decode::{decode_topic, typed_bpm, DecodedTopic, TYPED_BPM_COLUMNS};
/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the silver layer: bugs or schema mismatches, never bad records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polars refused an operation.
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    /// The merge planner failed.
    #[error(transparent)]
    Frame(#[from] fitlake_frame::Error),
    /// Decoding payloads failed.
    #[error(transparent)]
    Landing(#[from] fitlake_landing::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Table `silver.users`.
pub const USERS: &str = "users";
/// Table `silver.gym_logs`.
pub const GYM_LOGS: &str = "gym_logs";
/// Table `silver.user_profile`.
pub const USER_PROFILE: &str = "user_profile";
/// Table `silver.workouts`.
pub const WORKOUTS: &str = "workouts";
/// Table `silver.heart_rate`.
pub const HEART_RATE: &str = "heart_rate";
/// Table `silver.user_bins`.
pub const USER_BINS: &str = "user_bins";
/// Table `silver.completed_workouts`.
pub const COMPLETED_WORKOUTS: &str = "completed_workouts";
/// Table `silver.workout_bpm`.
pub const WORKOUT_BPM: &str = "workout_bpm";

/// Longest workout session: a stop later than this after its start is not its stop.
pub const MAX_SESSION_MICROS: i64 = 3 * 3600 * 1_000_000;

/// Every silver table.
pub fn tables() -> Vec<TableDef> {
    let session = || {
        vec![
            t::int64("user_id"),
            t::int64("workout_id"),
            t::int64("session_id"),
            t::timestamp("start_time"),
            t::timestamp("end_time"),
        ]
    };
    vec![
        TableDef::new(
            Layer::Silver,
            USERS,
            "One row per registered user and device.",
            vec![
                t::int64("user_id"),
                t::int64("device_id"),
                t::string("mac_address"),
                t::timestamp("registration_timestamp"),
            ],
        )
        .keyed_by(&["user_id"]),
        TableDef::new(
            Layer::Silver,
            GYM_LOGS,
            "One row per gym visit of a device; logout is the latest seen.",
            vec![t::string("mac_address"), t::int64("gym"), t::timestamp("login"), t::timestamp_null("logout")],
        )
        .keyed_by(&["mac_address", "gym", "login"]),
        TableDef::new(
            Layer::Silver,
            USER_PROFILE,
            "The current profile of each user (latest change wins).",
            vec![
                t::int64("user_id"),
                t::date("dob"),
                t::string_null("sex"),
                t::string_null("gender"),
                t::string_null("first_name"),
                t::string_null("last_name"),
                t::string_null("street_address"),
                t::string_null("city"),
                t::string_null("state"),
                t::int64_null("zip"),
                t::timestamp("updated"),
                t::string("update_type"),
            ],
        )
        .keyed_by(&["user_id"]),
        TableDef::new(
            Layer::Silver,
            WORKOUTS,
            "One row per workout start or stop event.",
            vec![
                t::int64("user_id"),
                t::int64("workout_id"),
                t::timestamp("time"),
                t::string("action"),
                t::int64("session_id"),
            ],
        )
        .keyed_by(&["user_id", "time"]),
        TableDef::new(
            Layer::Silver,
            HEART_RATE,
            "One row per heart-rate reading of a device; valid when heartrate > 0.",
            vec![t::int64("device_id"), t::timestamp("time"), t::float64("heartrate"), t::boolean("valid")],
        )
        .keyed_by(&["device_id", "time"])
        .distinct_valued(&["time"]),
        TableDef::new(
            Layer::Silver,
            USER_BINS,
            "One row per profile: age band at the as-of date, gender, city, state.",
            vec![
                t::int64("user_id"),
                t::string_null("age"),
                t::string_null("gender"),
                t::string_null("city"),
                t::string_null("state"),
            ],
        )
        .keyed_by(&["user_id"]),
        TableDef::new(
            Layer::Silver,
            COMPLETED_WORKOUTS,
            "One row per workout session with both its start and its stop.",
            session(),
        )
        .keyed_by(&["user_id", "workout_id", "session_id"]),
        TableDef::new(Layer::Silver, WORKOUT_BPM, "One row per valid reading inside a completed session.", {
            let mut f = session();
            f.extend([t::timestamp("time"), t::float64("heartrate")]);
            f
        })
        .keyed_by(&["user_id", "workout_id", "session_id", "time"])
        .distinct_valued(&["time"]),
    ]
}

fn cols(names: &[&str]) -> Vec<Expr> {
    names.iter().map(|n| col(*n)).collect()
}

/// Keeps the first row (in input order) of each key; the output order is not kept.
fn least_per_key(df: LazyFrame, keys: &[&str], order: &[&str], descending: bool) -> Result<LazyFrame> {
    let by: Vec<&str> = keys.iter().chain(order).copied().collect();
    let directions: Vec<bool> = keys.iter().map(|_| false).chain(order.iter().map(|_| descending)).collect();
    let frame = df.collect()?;
    if let Some(first) = packed::first_per_key(&frame, &by, keys.len(), &directions)? {
        return Ok(first.lazy());
    }
    sorted_first_per_key(frame, keys, &by, directions)
}

/// [`least_per_key`] by Polars' multi-column sort, for any column types.
fn sorted_first_per_key(frame: DataFrame, keys: &[&str], by: &[&str], directions: Vec<bool>) -> Result<LazyFrame> {
    let sorted = frame
        .lazy()
        .sort(
            by.iter().copied(),
            SortMultipleOptions::default().with_order_descending_multi(directions).with_nulls_last(true),
        )
        .collect()?;
    if keys.iter().any(|k| sorted.column(k).map_or(true, |c| c.null_count() > 0)) {
        return Ok(sorted.lazy().unique_stable(Some(fitlake_frame::by_names(keys)), UniqueKeepStrategy::First));
    }
    // Sorted by key, a key's rows are adjacent: its first row is the one whose key differs from
    // the row before (no hash table over the keys).
    let new_key = keys.iter().fold(lit(false), |new, k| new.or(col(*k).neq_missing(col(*k).shift(lit(1)))));
    Ok(sorted.lazy().filter(new_key))
}

/// `users`: the registrations to upsert: per user the earliest registration (then the lowest
/// device id and MAC) of the new ones, where it comes before the `stored` one (a late, earlier
/// registration replaces the stored row) or the user has none.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// let bronze = DataFrame::new(3, vec![
///     Column::new("user_id".into(), [1i64, 1, 2]),
///     Column::new("device_id".into(), [10i64, 11, 20]),
///     Column::new("mac_address".into(), ["a", "a2", "b"]),
///     times("registration_timestamp", &[200, 100, 300])?,
/// ])?;
/// let stored = bronze.slice(2, 1); // user 2, registered at 300 as stored
/// let users = fitlake_silver::users(&bronze, &stored)?;
/// assert_eq!(users.column("device_id")?.i64()?.get(0), Some(11), "the earliest registration");
/// assert_eq!(users.height(), 1, "user 2 is stored as it is");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn users(registered_users_bz: &DataFrame, stored: &DataFrame) -> Result<DataFrame> {
    upserts(
        registered_users_bz.clone().lazy().select(cols(&[
            "user_id",
            "device_id",
            "mac_address",
            "registration_timestamp",
        ])),
        stored,
        &["user_id"],
        &["registration_timestamp", "device_id", "mac_address"],
        false,
    )
}

/// `gym_logs`: new login records merged by visit; a visit's logout only ever moves later
/// (a missing logout never erases a known one).
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// # use fitlake_frame::FILE_COLUMN;
/// let target = DataFrame::new(1, vec![
///     Column::new("mac_address".into(), ["a"]), Column::new("gym".into(), [1i64]),
///     times("login", &[100])?, times("logout", &[200])?, Column::new(FILE_COLUMN.into(), ["f1"]),
/// ])?;
/// let new = DataFrame::new(1, vec![
///     Column::new("mac_address".into(), ["a"]), Column::new("gym".into(), [1i64]),
///     times("login", &[100])?, times("logout", &[500])?,
/// ])?;
/// let plan = fitlake_silver::gym_logs(&new, &target)?;
/// assert_eq!((plan.updated, plan.files_to_remove.clone()), (1, vec!["f1".to_string()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gym_logs(gym_logins_bz: &DataFrame, target: &DataFrame) -> Result<MergePlan> {
    let keys = ["mac_address", "gym", "login"];
    // The greatest logout per visit (a missing one is least), where it is later than the stored.
    let candidates = gym_logins_bz.clone().lazy().select(cols(&["mac_address", "gym", "login", "logout"]));
    let upserts = upserts(candidates, target, &keys, &["logout"], true)?;
    Ok(plan_merge(target, &upserts, None, &keys)?)
}

/// The stored version of each key of `stored` with its `order` columns prefixed `stored_`, to
/// join to new candidates.
fn stored_order(stored: &DataFrame, keys: &[&str], order: &[&str]) -> LazyFrame {
    stored.clone().lazy().select(
        keys.iter()
            .map(|k| col(*k))
            .chain(order.iter().map(|c| col(*c).alias(format!("stored_{c}"))))
            .chain([lit(true).alias("stored")])
            .collect::<Vec<_>>(),
    )
}

/// True where the row comes before its stored version (columns prefixed `stored_`) in the
/// order of `order`: ascending, or descending when `descending`; nulls last either way, as
/// [`least_per_key`] sorts. Equal rows do not come before.
fn precedes(order: &[&str], descending: bool) -> Expr {
    let mut result = lit(false);
    for c in order.iter().rev() {
        let (new, old) = (col(*c), col(format!("stored_{c}")));
        let before = if descending { new.clone().gt(old.clone()) } else { new.clone().lt(old.clone()) };
        let before = new.clone().is_not_null().and(old.clone().is_null().or(before));
        let tie = new.clone().eq(old.clone()).fill_null(lit(false)).or(new.is_null().and(old.is_null()));
        result = before.or(tie.and(result));
    }
    result
}

/// The winner per key among `candidates` (least by `order`, or greatest when `descending`)
/// that comes before its stored version in `stored`, or has none: the rows to upsert so that
/// the table holds, per key, the first row by that order of everything it was ever given.
fn upserts(
    candidates: LazyFrame,
    stored: &DataFrame,
    keys: &[&str],
    order: &[&str],
    descending: bool,
) -> Result<DataFrame> {
    before_stored(least_per_key(candidates, keys, order, descending)?, stored, keys, order, descending)
}

/// The rows of `winners` (one per key) that come before their stored version in `stored` in the
/// order of `order` (or after, when `descending`), or have none. Only the winners sharing a key
/// with a stored row (usually few) are compared; those that do not come first are then taken
/// out, so a large batch against a few stored rows is two joins on the keys of the few.
fn before_stored(
    winners: LazyFrame,
    stored: &DataFrame,
    keys: &[&str],
    order: &[&str],
    descending: bool,
) -> Result<DataFrame> {
    let winners = winners.collect()?;
    if stored.height() == 0 {
        return Ok(winners);
    }
    let contested = fitlake_frame::semi_join(&winners, stored, keys)?;
    if contested.height() == 0 {
        return Ok(winners);
    }
    let beaten = contested
        .lazy()
        .join(stored_order(stored, keys, order), cols(keys), cols(keys), JoinArgs::new(JoinType::Inner))
        .filter(precedes(order, descending).not())
        .select(cols(keys))
        .collect()?;
    Ok(fitlake_frame::anti_join(&winners, &beaten, keys)?)
}

/// Rank of an update type when two events of a user carry the same time: a delete wins over an
/// update, an update over a new.
fn update_rank(column: &str) -> Expr {
    when(col(column).eq(lit("delete"))).then(lit(2)).when(col(column).eq(lit("update"))).then(lit(1)).otherwise(lit(0))
}

/// The profile columns of `user_profile`, in table order.
pub const PROFILE_COLUMNS: [&str; 12] = [
    "user_id",
    "dob",
    "sex",
    "gender",
    "first_name",
    "last_name",
    "street_address",
    "city",
    "state",
    "zip",
    "updated",
    "update_type",
];

/// The columns a tombstone keeps; the rest of its profile is null.
const TOMBSTONE_COLUMNS: [&str; 3] = ["user_id", "updated", "update_type"];

/// The one order of profile changes, used within a batch and against the stored profile alike:
/// the later `updated` wins; at the same time `delete` beats `update` beats `new`; two
/// different changes of the same type at the same time are settled by their content, column
/// by column in table order (greater wins, null least), so no listing order or batch split
/// changes the winner. These are the columns compared, in order, after `change_rank`.
pub const CHANGE_ORDER: [&str; 10] =
    ["updated", "dob", "sex", "gender", "first_name", "last_name", "street_address", "city", "state", "zip"];

/// What [`user_profile`] decided.
#[derive(Debug, Clone)]
pub struct ProfileChanges {
    /// The MERGE plan: profiles and tombstones to write, files to remove.
    pub plan: MergePlan,
    /// The `user_id`s a `delete` tombstones now.
    pub deleted_users: DataFrame,
}

/// `user_profile`: change events merged per user, by the one order of [`change_order`]. The
/// greatest new change replaces the stored row only when it is greater than it. A winning
/// `delete` writes a tombstone (the user, `updated`, `update_type = 'delete'`, the rest null),
/// as Databricks' APPLY CHANGES keeps one, so that an older update arriving later cannot bring
/// the profile back; readers of live profiles skip `update_type = 'delete'` rows. Tombstones are
/// kept for ever (one small row per deleted user).
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// # use fitlake_frame::FILE_COLUMN;
/// let events = DataFrame::new(2, vec![
///     Column::new("user_id".into(), [1i64, 1]),
///     Column::new("dob".into(), [None::<i32>, None]).cast(&DataType::Date)?,
///     Column::new("sex".into(), [None::<&str>, None]), Column::new("gender".into(), ["F", "F"]),
///     Column::new("first_name".into(), ["Ann", "Ann"]), Column::new("last_name".into(), ["Lee", "Lee"]),
///     Column::new("street_address".into(), [None::<&str>, None]), Column::new("city".into(), ["Boston", "Salem"]),
///     Column::new("state".into(), ["MA", "MA"]), Column::new("zip".into(), [None::<i64>, None]),
///     times("updated", &[100, 200])?, Column::new("update_type".into(), ["new", "update"]),
/// ])?;
/// let mut target = events.clear();
/// target.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
/// let changes = fitlake_silver::user_profile(&events, &target)?;
/// assert_eq!(changes.plan.rows_to_add.column("city")?.str()?.get(0), Some("Salem"), "the latest wins");
/// assert_eq!(changes.deleted_users.height(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn user_profile(user_info: &DataFrame, target: &DataFrame) -> Result<ProfileChanges> {
    let is_delete = col("update_type").eq(lit("delete"));
    // A delete's row is its tombstone: the same row whether it is new or stored.
    let changes = user_info.clone().lazy().select(
        PROFILE_COLUMNS
            .iter()
            .map(|c| match TOMBSTONE_COLUMNS.contains(c) {
                true => col(*c),
                false => when(is_delete.clone())
                    .then(lit(NULL).cast(user_info_type(user_info, c)))
                    .otherwise(col(*c))
                    .alias(*c),
            })
            .collect::<Vec<_>>(),
    );
    let mut order = vec!["updated", "change_rank"];
    order.extend(&CHANGE_ORDER[1..]);
    let rank = update_rank("update_type").alias("change_rank");
    let stored = target.clone().lazy().with_column(rank.clone()).collect()?;
    let winners = upserts(changes.with_column(rank), &stored, &["user_id"], &order, true)?
        .lazy()
        .select(cols(&PROFILE_COLUMNS))
        .collect()?;
    let deleted_users = winners.clone().lazy().filter(is_delete).select([col("user_id")]).collect()?;
    Ok(ProfileChanges { plan: plan_merge(target, &winners, None, &["user_id"])?, deleted_users })
}

/// The type of `column` in `frame` (null when it is missing, which the select then reports).
fn user_info_type(frame: &DataFrame, column: &str) -> DataType {
    frame.schema().get(column).cloned().unwrap_or(DataType::Null)
}

/// `workouts`: the start/stop events to upsert, one per user and time: the least (action,
/// workout, session) among the new ones, where it comes before the `stored` event or there is
/// none.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// let events = DataFrame::new(3, vec![
///     Column::new("user_id".into(), [1i64, 1, 1]), Column::new("workout_id".into(), [7i64, 7, 7]),
///     times("time", &[10, 10, 50])?, Column::new("action".into(), ["start", "start", "stop"]),
///     Column::new("session_id".into(), [1i64, 1, 1]),
/// ])?;
/// assert_eq!(fitlake_silver::workouts(&events, &events.clear())?.height(), 2, "one event per user and time");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn workouts(workout_events: &DataFrame, stored: &DataFrame) -> Result<DataFrame> {
    upserts(
        workout_events.clone().lazy().select(cols(&["user_id", "workout_id", "time", "action", "session_id"])),
        stored,
        &["user_id", "time"],
        &["action", "workout_id", "session_id"],
        false,
    )
}

/// `heart_rate`: the readings to upsert, one per device and time: among duplicates the
/// greatest heartrate wins, whether they come in one batch or in several (a greater reading
/// arriving later replaces the stored one; a lesser one is ignored), with
/// `valid = heartrate > 0`. `stored` holds the target rows (at least `device_id`, `time`,
/// `heartrate`) that may share a key with `readings`.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// let readings = DataFrame::new(3, vec![
///     Column::new("device_id".into(), [5i64, 5, 5]), times("time", &[1, 2, 3])?,
///     Column::new("heartrate".into(), [72.5f64, -1.0, 60.0]),
/// ])?;
/// let stored = DataFrame::new(1, vec![
///     Column::new("device_id".into(), [5i64]), times("time", &[3])?, Column::new("heartrate".into(), [80.0f64]),
/// ])?;
/// let rows = fitlake_silver::heart_rate(&readings, &stored)?;
/// let valid: Vec<Option<bool>> = rows.sort(["time"], Default::default())?.column("valid")?.bool()?.iter().collect();
/// assert_eq!(valid, [Some(true), Some(false)], "the stored 80 at time 3 beats the new 60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn heart_rate(readings: &DataFrame, stored: &DataFrame) -> Result<DataFrame> {
    heart_rate_upserts(&heart_rate_winners(readings)?, stored)
}

/// The greatest reading per device and time among `readings` (`device_id`, `time`,
/// `heartrate`): the half of [`heart_rate`] that needs no stored row, so it can be done for one
/// batch while the one before is compared with the table.
pub fn heart_rate_winners(readings: &DataFrame) -> Result<DataFrame> {
    // Only the compared columns: the dedupe's winners are then rebuilt from its sorted words,
    // not gathered row by row.
    let readings = readings.clone().lazy().select([col("device_id"), col("time"), col("heartrate")]);
    Ok(least_per_key(readings, &HEART_RATE_KEYS, &["heartrate"], true)?.collect()?)
}

/// The other half of [`heart_rate`]: the `winners` (one per device and time, from
/// [`heart_rate_winners`]) that beat their version in `stored` or have none, with `valid`.
pub fn heart_rate_upserts(winners: &DataFrame, stored: &DataFrame) -> Result<DataFrame> {
    let upserts = before_stored(winners.clone().lazy(), stored, &HEART_RATE_KEYS, &["heartrate"], true)?;
    Ok(upserts.lazy().with_column(col("heartrate").gt(lit(0.0)).alias("valid")).collect()?)
}

/// The key of `heart_rate`.
const HEART_RATE_KEYS: [&str; 2] = ["device_id", "time"];

/// The rows of `user_profile` that are profiles, not tombstones of deleted users (a frame
/// without `update_type` is taken as all live).
pub fn live_profiles(user_profile: &DataFrame) -> Result<DataFrame> {
    if user_profile.schema().get("update_type").is_none() {
        return Ok(user_profile.clone());
    }
    Ok(user_profile.clone().lazy().filter(col("update_type").neq(lit("delete"))).collect()?)
}

/// `user_bins`: the whole table as it must be for the live profiles of `user_profile` at
/// `as_of`, planned as a MERGE against the current `target`. A missing, unreadable or
/// implausible date of birth gives the band `invalid age`, as the original's `ELSE` did.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # use fitlake_frame::FILE_COLUMN;
/// let profiles = df!("user_id" => [1i64], "gender" => ["F"], "city" => ["Boston"], "state" => ["MA"])?
///     .lazy().with_column(lit("1990-05-01").cast(DataType::Date).alias("dob")).collect()?;
/// let mut target = profiles.clear().lazy().select([col("user_id"), lit("").alias("age"), col("gender"), col("city"), col("state")]).collect()?;
/// target.with_column(Column::new(FILE_COLUMN.into(), Vec::<String>::new()))?;
/// let as_of = chrono::NaiveDate::from_ymd_opt(2023, 3, 15).ok_or("date")?;
/// let plan = fitlake_silver::user_bins(&profiles, &target, as_of)?;
/// assert_eq!(plan.rows_to_add.column("age")?.str()?.get(0), Some("25-35"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn user_bins(user_profile: &DataFrame, target: &DataFrame, as_of: chrono::NaiveDate) -> Result<MergePlan> {
    let live = live_profiles(user_profile)?;
    let ages = age::age_bands(live.column("dob")?, as_of)?;
    let desired = live
        .lazy()
        .with_column(lit(ages).alias("age"))
        .select(cols(&["user_id", "age", "gender", "city", "state"]))
        .sort(["user_id"], SortMultipleOptions::default())
        .collect()?;
    Ok(plan_sync(target, &desired, &["user_id"])?)
}

/// `completed_workouts`: the sessions to upsert: each start joined to its stop (same user,
/// workout and session, stop after start and less than 3 hours later), per session the pair
/// with the least (start, end), where it comes before the `stored` pair or there is none.
/// `workouts` must hold every event of the sessions to pair: the new events and the stored
/// events within 3 hours of them (a pair lies within 3 hours, so the least pair of all events is
/// the least of the stored one and those).
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// let events = DataFrame::new(4, vec![
///     Column::new("user_id".into(), [1i64, 1, 2, 2]), Column::new("workout_id".into(), [7i64, 7, 7, 7]),
///     Column::new("session_id".into(), [1i64, 1, 1, 1]),
///     // user 2 stops 4 hours after starting: no session.
///     times("time", &[0, 600, 0, 4 * 3600])?, Column::new("action".into(), ["start", "stop", "start", "stop"]),
/// ])?;
/// let stored = DataFrame::new(0, vec![
///     Column::new("user_id".into(), Vec::<i64>::new()), Column::new("workout_id".into(), Vec::<i64>::new()),
///     Column::new("session_id".into(), Vec::<i64>::new()), times("start_time", &[])?, times("end_time", &[])?,
/// ])?;
/// let sessions = fitlake_silver::completed_workouts(&events, &stored)?;
/// assert_eq!(sessions.column("user_id")?.i64()?.to_vec(), [Some(1)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn completed_workouts(workouts: &DataFrame, stored: &DataFrame) -> Result<DataFrame> {
    let keys = ["user_id", "workout_id", "session_id"];
    let events = workouts.clone().lazy();
    let starts = events.clone().filter(col("action").eq(lit("start"))).select([
        col("user_id"),
        col("workout_id"),
        col("session_id"),
        col("time").alias("start_time"),
    ]);
    let stops = events.filter(col("action").eq(lit("stop"))).select([
        col("user_id"),
        col("workout_id"),
        col("session_id"),
        col("time").alias("end_time"),
    ]);
    let max_session = lit(MAX_SESSION_MICROS);
    let paired = starts.join(stops, cols(&keys), cols(&keys), JoinArgs::new(JoinType::Inner)).filter(
        col("end_time")
            .gt(col("start_time"))
            .and(col("end_time").cast(DataType::Int64).lt(col("start_time").cast(DataType::Int64) + max_session)),
    );
    Ok(upserts(paired, stored, &keys, &["start_time", "end_time"], false)?
        .sort(["start_time", "user_id"], SortMultipleOptions::default())?)
}

/// `workout_bpm`: the rows `sessions` must have: the valid readings of each session's user's
/// device with `start_time < time <= end_time`. The caller syncs the stored rows of those
/// sessions to them (a session's pairing, its user's device or a reading may have changed).
/// `readings` must hold every reading of the sessions' devices in the sessions' time span.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// # fn times(name: &str, seconds: &[i64]) -> PolarsResult<Column> {
/// #     let micros: Vec<i64> = seconds.iter().map(|s| s * 1_000_000).collect();
/// #     Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))
/// # }
/// let sessions = DataFrame::new(1, vec![
///     Column::new("user_id".into(), [1i64]), Column::new("workout_id".into(), [7i64]),
///     Column::new("session_id".into(), [1i64]), times("start_time", &[10])?, times("end_time", &[20])?,
/// ])?;
/// let users = df!("user_id" => [1i64], "device_id" => [5i64])?;
/// let readings = DataFrame::new(3, vec![
///     Column::new("device_id".into(), [5i64, 5, 5]), times("time", &[10, 15, 20])?,
///     Column::new("heartrate".into(), [60.0f64, 70.0, 80.0]), Column::new("valid".into(), [true, true, true]),
/// ])?;
/// let bpm = fitlake_silver::workout_bpm(&sessions, &users, &readings)?;
/// assert_eq!(bpm.height(), 2, "start < time <= end");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn workout_bpm(sessions: &DataFrame, users: &DataFrame, readings: &DataFrame) -> Result<DataFrame> {
    session_readings(&sessions_with_devices(sessions, users)?, readings)
}

/// [`workout_bpm`] for `sessions` that already have their `device_id`
/// ([`sessions_with_devices`]): a step reading the readings file by file calls this on each
/// file's rows (a reading is in one file), with the sessions' devices looked up once.
///
/// Readings in `(device_id, time)` order (as `heart_rate` writes its files) are taken as they
/// are; others (a file a MERGE rewrote, or another engine wrote) are narrowed to the sessions'
/// span and sorted first; each session's readings are then the rows between two binary
/// searches in its device's run, found without a join: a device's readings are not paired
/// with each of its sessions, and nothing outside a session is compared row by row. Rows come
/// session by session, in the sessions' order, each session's by time.
pub fn session_readings(sessions: &DataFrame, readings: &DataFrame) -> Result<DataFrame> {
    let readings =
        readings.select(["device_id", "time", "heartrate", "valid"])?.drop_nulls(Some(&["device_id", "time"]))?;
    let keys = |readings: &DataFrame| -> Result<_> {
        Ok((physical_i64(readings, "device_id")?, physical_i64(readings, "time")?))
    };
    let (mut devices, mut times) = keys(&readings)?;
    let in_order = {
        let (devices, times) = (devices.cont_slice()?, times.cont_slice()?);
        (1..devices.len()).all(|i| (devices[i - 1], times[i - 1]) <= (devices[i], times[i]))
    };
    let (session_devices, starts, ends) = (
        physical_i64(sessions, "device_id")?,
        physical_i64(sessions, "start_time")?,
        physical_i64(sessions, "end_time")?,
    );
    let readings = if in_order {
        readings
    } else {
        // Only the rows within the sessions' span (a file rewritten by a MERGE spans more than
        // a part's sessions), sorted by a permutation of the two key slices (Polars'
        // multi-column sort compares through every chunk of a file's many record batches:
        // seconds for a million rows).
        let (lo, hi) = (starts.min().unwrap_or(i64::MAX), ends.max().unwrap_or(i64::MIN));
        let (d, t) = (devices.cont_slice()?, times.cont_slice()?);
        let mut order: Vec<IdxSize> =
            (0..d.len() as IdxSize).filter(|&row| t[row as usize] > lo && t[row as usize] <= hi).collect();
        order.sort_unstable_by_key(|&row| (d[row as usize], t[row as usize]));
        let sorted = readings.take(&IdxCa::from_vec("row".into(), order))?;
        (devices, times) = keys(&sorted)?;
        sorted
    };
    let (devices, times) = (devices.cont_slice()?, times.cont_slice()?);
    let mut session_rows: Vec<IdxSize> = Vec::new();
    let mut reading_rows: Vec<IdxSize> = Vec::new();
    for (row, ((device, start), end)) in session_devices.iter().zip(starts.iter()).zip(ends.iter()).enumerate() {
        let (Some(device), Some(start), Some(end)) = (device, start, end) else { continue };
        // The device's run, then start < time <= end within it.
        let run = devices.partition_point(|d| *d < device)..devices.partition_point(|d| *d <= device);
        let in_run = &times[run.clone()];
        let first = run.start + in_run.partition_point(|t| *t <= start);
        let last = run.start + in_run.partition_point(|t| *t <= end);
        session_rows.extend(std::iter::repeat_n(row as IdxSize, last.saturating_sub(first)));
        reading_rows.extend((first..last.max(first)).map(|r| r as IdxSize));
    }
    let mut rows = sessions
        .select(["user_id", "workout_id", "session_id", "start_time", "end_time"])?
        .take(&IdxCa::from_vec("row".into(), session_rows))?;
    let taken = readings.select(["time", "heartrate", "valid"])?.take(&IdxCa::from_vec("row".into(), reading_rows))?;
    rows.hstack_mut(taken.columns())?;
    // A filter keeps neither false nor null.
    let valid = rows.column("valid")?.bool()?.clone();
    Ok(rows.filter(&valid)?.drop("valid")?)
}

/// A column's physical values as `i64`s in one chunk (times as µs, whatever their unit).
fn physical_i64(frame: &DataFrame, name: &str) -> Result<Int64Chunked> {
    let column = frame.column(name)?;
    let column = match column.dtype() {
        DataType::Datetime(unit, zone) if *unit != TimeUnit::Microseconds => {
            column.cast(&DataType::Datetime(TimeUnit::Microseconds, zone.clone()))?
        }
        _ => column.clone(),
    };
    Ok(column.to_physical_repr().cast(&DataType::Int64)?.i64()?.rechunk().into_owned())
}

/// `sessions` with the `device_id` of each one's user (sessions of unknown users left out):
/// whose readings [`workout_bpm`] takes.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// let sessions = df!("user_id" => [1i64, 2], "session_id" => [1i64, 1])?;
/// let users = df!("user_id" => [1i64], "device_id" => [5i64])?;
/// let with = fitlake_silver::sessions_with_devices(&sessions, &users)?;
/// assert_eq!(with.column("device_id")?.i64()?.to_vec(), [Some(5)], "user 2 is unknown");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sessions_with_devices(sessions: &DataFrame, users: &DataFrame) -> Result<DataFrame> {
    Ok(sessions
        .clone()
        .lazy()
        .join(
            users.clone().lazy().select([col("user_id"), col("device_id")]),
            [col("user_id")],
            [col("user_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .collect()?)
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

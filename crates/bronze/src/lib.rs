//! Bronze layer: one append-only row per landing record.
//!
//! Every bronze row carries `load_time` (when the run ingested it) and `source_file` (the
//! landing file, relative to its source folder). `kafka_multiplex_bz` also gets the `date` of
//! its Kafka timestamp (UTC) and that date's `week_part` from `date_lookup`, and is partitioned by
//! `topic` and `week_part`. The transforms are pure: the caller passes the load time.

use fitlake_config::Layer;
use fitlake_frame::table::{self as t, TableDef};
use fitlake_landing::calendar::CalendarDay;
use polars::prelude::*;

/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the bronze layer: bugs or schema mismatches (bad records are quarantined earlier).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polars refused an operation.
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Table `bronze.registered_users_bz`.
pub const REGISTERED_USERS_BZ: &str = "registered_users_bz";
/// Table `bronze.gym_logins_bz`.
pub const GYM_LOGINS_BZ: &str = "gym_logins_bz";
/// Table `bronze.kafka_multiplex_bz`.
pub const KAFKA_MULTIPLEX_BZ: &str = "kafka_multiplex_bz";
/// Table `bronze.date_lookup`.
pub const DATE_LOOKUP: &str = "date_lookup";
/// Table `bronze.quarantine`.
pub const QUARANTINE: &str = "quarantine";
/// Table `bronze.landing_files`: which landing files each bronze batch takes.
pub const LANDING_FILES: &str = "landing_files";
/// Table `bronze.quality_events`: the data-quality event log.
pub const QUALITY_EVENTS: &str = "quality_events";

/// Every bronze table.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new(
            Layer::Bronze,
            REGISTERED_USERS_BZ,
            "One row per user registration record as it landed.",
            vec![
                t::int64("user_id"),
                t::int64("device_id"),
                t::string("mac_address"),
                t::timestamp("registration_timestamp"),
                t::timestamp("load_time"),
                t::string("source_file"),
            ],
        ),
        TableDef::new(
            Layer::Bronze,
            GYM_LOGINS_BZ,
            "One row per gym login/logout record as it landed.",
            vec![
                t::string("mac_address"),
                t::int64("gym"),
                t::timestamp("login"),
                t::timestamp_null("logout"),
                t::timestamp("load_time"),
                t::string("source_file"),
            ],
        ),
        TableDef::new(
            Layer::Bronze,
            KAFKA_MULTIPLEX_BZ,
            "One row per Kafka envelope (topics user_info, workout, bpm) as it landed, a bpm payload also typed.",
            vec![
                t::string_null("key"),
                t::string("value"),
                t::string("topic"),
                t::int64("partition"),
                t::int64("offset"),
                t::timestamp("timestamp"),
                t::date("date"),
                t::string("week_part"),
                t::timestamp("load_time"),
                t::string("source_file"),
                // A `bpm` payload, typed when bronze validated it (null for other topics and
                // in rows written before these columns existed).
                t::int64_null("bpm_device_id"),
                t::timestamp_null("bpm_time"),
                t::float64("bpm_heartrate"),
            ],
        )
        .partitioned_by(&["topic", "week_part"])
        .distinct_valued(&["offset", "timestamp", "bpm_time"])
        .payloads(&["value"]),
        TableDef::new(
            Layer::Bronze,
            DATE_LOOKUP,
            "One row per calendar day with its week partition.",
            vec![
                t::date("date"),
                t::int32("dayofmonth"),
                t::int32("dayofweek"),
                t::int32("dayofyear"),
                t::int32("month"),
                t::int32("week"),
                t::int32("year"),
                t::string("week_part"),
            ],
        )
        .keyed_by(&["date"]),
        TableDef::new(
            Layer::Bronze,
            QUARANTINE,
            "One row per record that could not be ingested, with where it came from and why.",
            vec![
                t::string("table"),
                t::string("source_file"),
                t::int64("line"),
                t::string("raw"),
                t::string("reason"),
                t::timestamp("load_time"),
            ],
        ),
        TableDef::new(
            Layer::Bronze,
            LANDING_FILES,
            "One row per landing file a bronze batch takes: the batch plan (with each file's size and modification time), committed before the batch's rows.",
            vec![
                t::string("table"),
                t::int64("batch"),
                t::int64("position"),
                t::string("file"),
                t::int64_null("size"),
                t::timestamp_null("modified"),
            ],
        ),
        TableDef::new(
            Layer::Bronze,
            QUALITY_EVENTS,
            "One row per table, data-quality expectation and step run: rows checked, passed and failed.",
            vec![
                t::timestamp("run_time"),
                t::string("table"),
                t::string("expectation"),
                t::string("action"),
                t::int64("rows_checked"),
                t::int64("rows_passed"),
                t::int64("rows_failed"),
                t::int64_null("table_version"),
            ],
        ),
    ]
}

fn load_time_expr(load_time_micros: i64) -> Expr {
    lit(load_time_micros).cast(DataType::Datetime(TimeUnit::Microseconds, None)).alias("load_time")
}

/// Stamps parsed landing rows (registrations, gym logins or quarantined records) with their
/// load time and, when given, source file.
/// ```
/// # use fitlake_bronze::polars::prelude::*;
/// let rows = df!("user_id" => [1i64])?;
/// let stamped = fitlake_bronze::stamp(&rows, 1_678_000_000_000_000, Some("1-registered_users_1.csv"))?;
/// assert_eq!(stamped.get_column_names(), ["user_id", "load_time", "source_file"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn stamp(rows: &DataFrame, load_time_micros: i64, source_file: Option<&str>) -> Result<DataFrame> {
    let mut extra = vec![load_time_expr(load_time_micros)];
    if let Some(file) = source_file {
        extra.push(lit(file.to_string()).alias("source_file"));
    }
    Ok(rows.clone().lazy().with_columns(extra).collect()?)
}

/// `kafka_multiplex_bz` rows: parsed envelopes with `date` (UTC) and `week_part` from
/// `date_lookup`. A date missing from the lookup gets its week partition from the calendar
/// rules of [`CalendarDay`], so real data past the loaded calendar is never left unpartitioned.
/// ```
/// # use fitlake_bronze::polars::prelude::*;
/// let text = r#"{"key":"1","value":"{\"device_id\": 1, \"time\": 1678521600.5, \"heartrate\": 70.0}","topic":"bpm","partition":0,"offset":1,"timestamp":1678521600500}"#;
/// let parsed = fitlake_landing::multiplex::parse_kafka_multiplex(text.as_bytes(), "3-bpm_1.json", &Default::default())?;
/// let no_calendar = fitlake_landing::calendar::calendar_frame(&[])?;
/// let rows = fitlake_bronze::kafka_multiplex_bz(&parsed.rows, &no_calendar, 0, "3-bpm_1.json")?;
/// // 2023-03-11 is in week 10 of 2023 (Sunday-start weeks), from the calendar rules.
/// assert_eq!(rows.column("week_part")?.str()?.get(0), Some("2023-10"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn kafka_multiplex_bz(
    envelopes: &DataFrame,
    date_lookup: &DataFrame,
    load_time_micros: i64,
    source_file: &str,
) -> Result<DataFrame> {
    let mut rows = envelopes.clone().lazy().with_column(col("timestamp").dt().date().alias("date")).collect()?;
    let days = rows.column("date")?.date()?.physical().clone();
    let week_part = week_parts(&days, date_lookup)?;
    rows.with_column(week_part.into_column())?;
    Ok(rows
        .lazy()
        .with_columns([load_time_expr(load_time_micros), lit(source_file.to_string()).alias("source_file")])
        .collect()?)
}

/// The `week_part` of each day in `days` (days since 1970-01-01): from `date_lookup`, or from
/// the calendar rules for days it lacks. Looked up row by row rather than joined, so that the
/// column comes in the same chunks as the rows (a join's output, or a column of one chunk among
/// columns of several, would have every column copied into one chunk before writing).
fn week_parts(days: &Int32Chunked, date_lookup: &DataFrame) -> Result<StringChunked> {
    let known: std::collections::HashMap<i32, &str> = date_lookup
        .column("date")?
        .date()?
        .physical()
        .iter()
        .zip(date_lookup.column("week_part")?.str()?.iter())
        .filter_map(|(day, week)| Some((day?, week?)))
        .collect();
    // Each distinct day once; rows come in runs of one day, so the last day's week is at hand.
    let mut weeks: std::collections::HashMap<i32, String> = std::collections::HashMap::new();
    let mut last: Option<i32> = None;
    for day in days.iter().flatten() {
        if last != Some(day) && !weeks.contains_key(&day) {
            let week = match known.get(&day) {
                Some(week) => week.to_string(),
                None => {
                    // Parsing admits only times within the plausible window, whose ends are
                    // calendar dates: a day outside the calendar here is a bug, not data.
                    let date = day
                        .checked_add(EPOCH_DAYS_FROM_CE)
                        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                        .ok_or_else(|| {
                            PolarsError::ComputeError(
                                format!("bug: day {day} is outside the calendar, past the time window").into(),
                            )
                        })?;
                    CalendarDay::of(date).week_part
                }
            };
            weeks.insert(day, week);
        }
        last = Some(day);
    }
    let week_of = |day: i32| weeks.get(&day).map(String::as_str);
    let mut week_part = StringChunked::full_null("week_part".into(), 0);
    for chunk in days.downcast_iter() {
        // A chunk of one day (the usual case) is that day's week throughout.
        let values = chunk.values();
        if chunk.validity().is_none_or(|valid| valid.unset_bits() == 0)
            && values.first().is_some_and(|first| values.iter().all(|d| d == first))
        {
            let week = values.first().and_then(|day| week_of(*day));
            let part = match week {
                Some(week) => StringChunked::full("week_part".into(), week, chunk.len()),
                None => StringChunked::full_null("week_part".into(), chunk.len()),
            };
            week_part.append_owned(part)?;
            continue;
        }
        let mut last: Option<(i32, Option<&str>)> = None;
        let part: StringChunked = chunk
            .iter()
            .map(|day| {
                let day = *day?;
                match last {
                    Some((d, week)) if d == day => week,
                    _ => {
                        let week = week_of(day);
                        last = Some((day, week));
                        week
                    }
                }
            })
            .collect();
        week_part.append_owned(part)?;
    }
    Ok(week_part)
}

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

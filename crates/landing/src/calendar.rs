//! The `date_lookup` calendar: one row per day with its week partition (`week_part`).
//!
//! Weeks run Sunday to Saturday; week 1 is the week that holds January 1st (so 2023-12-31, a
//! Sunday, is week 53 of 2023), and `dayofweek` counts Sunday as 1, as Spark does. The seed file
//! `6-date-lookup.json` (2023) follows these rules, and [`generate_calendar`] extends them to any
//! range of dates.

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use serde::Deserialize;

use crate::quarantine::{numbered_lines, Quarantined};
use crate::{Error, Result};

/// One calendar day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    /// The date.
    pub date: NaiveDate,
    /// Day of the month, 1-31.
    pub dayofmonth: i32,
    /// Day of the week, Sunday = 1 to Saturday = 7.
    pub dayofweek: i32,
    /// Day of the year, 1-366.
    pub dayofyear: i32,
    /// Month, 1-12.
    pub month: i32,
    /// Week of the year, 1-54, weeks starting on Sunday, week 1 holding January 1st.
    pub week: i32,
    /// The year.
    pub year: i32,
    /// `"<year>-<week>"`, the partition value of `kafka_multiplex_bz`.
    pub week_part: String,
}

impl CalendarDay {
    /// The calendar facts of one date.
    pub fn of(date: NaiveDate) -> Self {
        let dayofweek = date.weekday().num_days_from_sunday() as i32 + 1;
        let dayofyear = date.ordinal() as i32;
        let jan1 = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date);
        let jan1_offset = jan1.weekday().num_days_from_sunday() as i32;
        let week = (dayofyear - 1 + jan1_offset) / 7 + 1;
        Self {
            date,
            dayofmonth: date.day() as i32,
            dayofweek,
            dayofyear,
            month: date.month() as i32,
            week,
            year: date.year(),
            week_part: format!("{}-{week}", date.year()),
        }
    }
}

/// Every day from `start` to `end` inclusive.
pub fn generate_calendar(start: NaiveDate, end: NaiveDate) -> Result<Vec<CalendarDay>> {
    if end < start {
        return Err(Error::InvalidArgument(format!("calendar end {end} is before start {start}")));
    }
    Ok(start.iter_days().take_while(|d| *d <= end).map(CalendarDay::of).collect())
}

#[derive(Deserialize)]
struct RawDay {
    date: String,
    dayofmonth: serde_json::Value,
    dayofweek: serde_json::Value,
    dayofyear: serde_json::Value,
    month: serde_json::Value,
    week: serde_json::Value,
    year: serde_json::Value,
    week_part: String,
}

fn int_field(v: &serde_json::Value, name: &str) -> std::result::Result<i32, String> {
    let n = match v {
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| format!("{name}: {v} is not an integer"))
}

/// The days of a `date_lookup` file, and the lines that are not days.
#[derive(Debug, Clone, Default)]
pub struct ParsedCalendar {
    /// The days, in file order.
    pub days: Vec<CalendarDay>,
    /// The unreadable lines.
    pub quarantined: Vec<Quarantined>,
}

/// Parses a `date_lookup` JSON-lines file (all fields may be strings, as in the seed file).
///
/// ```
/// let calendar = fitlake_landing::calendar::parse_date_lookup(fitlake_landing::seed::SEED_DATE_LOOKUP, "6-date-lookup.json");
/// assert_eq!((calendar.days.len(), calendar.quarantined.len()), (365, 0));
/// let frame = fitlake_landing::calendar::calendar_frame(&calendar.days)?;
/// assert!(frame.get_column_names().iter().any(|c| c.as_str() == "week_part"));
/// # Ok::<(), fitlake_landing::Error>(())
/// ```
pub fn parse_date_lookup(text: &str, source_file: &str) -> ParsedCalendar {
    let mut days = Vec::new();
    let mut bad = Vec::new();
    // A byte-order mark at the start is not part of the first record.
    for (line, raw) in numbered_lines(text.strip_prefix('\u{feff}').unwrap_or(text)) {
        let parsed = (|| {
            let r: RawDay = serde_json::from_str(raw).map_err(|e| e.to_string())?;
            Ok::<_, String>(CalendarDay {
                date: NaiveDate::parse_from_str(&r.date, "%Y-%m-%d")
                    .map_err(|_| format!("date: {:?} is not YYYY-MM-DD", r.date))?,
                dayofmonth: int_field(&r.dayofmonth, "dayofmonth")?,
                dayofweek: int_field(&r.dayofweek, "dayofweek")?,
                dayofyear: int_field(&r.dayofyear, "dayofyear")?,
                month: int_field(&r.month, "month")?,
                week: int_field(&r.week, "week")?,
                year: int_field(&r.year, "year")?,
                week_part: r.week_part,
            })
        })();
        match parsed {
            Ok(d) => days.push(d),
            Err(reason) => bad.push(Quarantined { source_file: source_file.into(), line, raw: raw.into(), reason }),
        }
    }
    ParsedCalendar { days, quarantined: bad }
}

/// The calendar as a frame with the `date_lookup` columns.
pub fn calendar_frame(days: &[CalendarDay]) -> Result<DataFrame> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let ints = |f: fn(&CalendarDay) -> i32| days.iter().map(f).collect::<Vec<i32>>();
    Ok(DataFrame::new(
        days.len(),
        vec![
            Column::new("date".into(), days.iter().map(|d| (d.date - epoch).num_days() as i32).collect::<Vec<_>>())
                .cast(&DataType::Date)?,
            Column::new("dayofmonth".into(), ints(|d| d.dayofmonth)),
            Column::new("dayofweek".into(), ints(|d| d.dayofweek)),
            Column::new("dayofyear".into(), ints(|d| d.dayofyear)),
            Column::new("month".into(), ints(|d| d.month)),
            Column::new("week".into(), ints(|d| d.week)),
            Column::new("year".into(), ints(|d| d.year)),
            Column::new("week_part".into(), days.iter().map(|d| d.week_part.as_str()).collect::<Vec<_>>()),
        ],
    )?)
}

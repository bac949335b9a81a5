//! Age bands as the original notebooks computed them: whole years as Spark's
//! `floor(months_between(as_of, dob) / 12)`, then bands `under 18`, `18-25`, `25-35`, …,
//! `85-95`, `95+`.

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

use crate::Result;

/// Spark's `months_between(end, start)` for dates: whole months when the days of month match
/// or both are month ends, otherwise with the day difference over 31, rounded to 8 digits.
pub fn months_between(end: NaiveDate, start: NaiveDate) -> f64 {
    let months = f64::from((end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32);
    let last_day = |d: NaiveDate| d.succ_opt().is_none_or(|n| n.month() != d.month());
    if end.day() == start.day() || (last_day(end) && last_day(start)) {
        return months;
    }
    let value = months + (f64::from(end.day() as i32 - start.day() as i32)) / 31.0;
    (value * 1e8).round() / 1e8
}

/// Whole years between `dob` and `as_of`, as the original computed them.
pub fn age_in_years(dob: NaiveDate, as_of: NaiveDate) -> i64 {
    (months_between(as_of, dob) / 12.0).floor() as i64
}

/// The age band of an age in whole years.
pub fn age_band(age: i64) -> &'static str {
    match age {
        a if a < 18 => "under 18",
        18..=24 => "18-25",
        25..=34 => "25-35",
        35..=44 => "35-45",
        45..=54 => "45-55",
        55..=64 => "55-65",
        65..=74 => "65-75",
        75..=84 => "75-85",
        85..=94 => "85-95",
        _ => "95+",
    }
}

/// The band of a missing, unreadable or implausible date of birth (the original's `ELSE`).
pub const INVALID_AGE: &str = "invalid age";

/// Oldest plausible age, in whole years.
pub const MAX_AGE: i64 = 120;

/// The age band of a date of birth at `as_of`: [`INVALID_AGE`] when it is missing, after
/// `as_of`, or more than [`MAX_AGE`] years before it.
pub fn dob_band(dob: Option<NaiveDate>, as_of: NaiveDate) -> &'static str {
    match dob.map(|d| (d, age_in_years(d, as_of))) {
        Some((d, age)) if d <= as_of && age <= MAX_AGE => age_band(age),
        _ => INVALID_AGE,
    }
}

/// The age band of each date of birth (days since the epoch) at `as_of`.
pub fn age_bands(dob: &Column, as_of: NaiveDate) -> Result<Series> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let bands: Vec<&str> = dob
        .date()?
        .physical()
        .iter()
        .map(|days| dob_band(days.and_then(|d| epoch.checked_add_signed(chrono::Duration::days(i64::from(d)))), as_of))
        .collect();
    Ok(Series::new("age".into(), bands))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn birthday_boundaries_follow_spark() {
        assert_eq!(age_in_years(d(2000, 3, 15), d(2018, 3, 15)), 18);
        assert_eq!(age_in_years(d(2000, 3, 15), d(2018, 3, 14)), 17);
        assert_eq!(age_in_years(d(2000, 2, 29), d(2018, 2, 28)), 18, "both month ends count as whole months");
        assert_eq!(age_band(17), "under 18");
        assert_eq!(age_band(18), "18-25");
        assert_eq!(age_band(25), "25-35");
        assert_eq!(age_band(94), "85-95");
        assert_eq!(age_band(95), "95+");
        assert_eq!(dob_band(None, d(2023, 3, 15)), INVALID_AGE);
        assert_eq!(dob_band(Some(d(2024, 1, 1)), d(2023, 3, 15)), INVALID_AGE, "born after the as-of date");
        assert_eq!(dob_band(Some(d(1890, 1, 1)), d(2023, 3, 15)), INVALID_AGE, "133 years old");
        assert_eq!(dob_band(Some(d(2023, 3, 15)), d(2023, 3, 15)), "under 18");
    }
}

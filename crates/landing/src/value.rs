//! The `value` payloads of the Kafka multiplex, one schema per topic.
//!
//! Bronze validates every value with [`validate_value`] so that a malformed payload is
//! quarantined with its file and line; silver decodes whole columns of values into typed frames
//! with the `decode_*` functions.

use chrono::NaiveDate;
use polars::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use std::collections::BTreeMap;

use crate::quarantine::datetime_column;
use crate::scan::Number;
use crate::time::{event_time_json_to_micros_wide, TimeWindow, Unit};
use crate::{topics, ReadOptions, Result};

/// A heart-rate reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bpm {
    /// The device that measured it.
    pub device_id: i64,
    /// When, in epoch microseconds.
    pub time: i64,
    /// Beats per minute; zero or less means the sensor had no reading.
    pub heartrate: f64,
}

/// A workout start or stop event.
#[derive(Debug, Clone, PartialEq)]
pub struct Workout {
    /// The user.
    pub user_id: i64,
    /// The workout (per user).
    pub workout_id: i64,
    /// When, in epoch microseconds.
    pub time: i64,
    /// `start` or `stop`.
    pub action: String,
    /// The session within the workout.
    pub session_id: i64,
}

/// A profile change event.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// The user.
    pub user_id: i64,
    /// `new`, `update` or `delete`.
    pub update_type: String,
    /// When the change happened, in epoch microseconds.
    pub updated: i64,
    /// Date of birth, in days since the epoch.
    pub dob: Option<i32>,
    /// Sex as recorded.
    pub sex: Option<String>,
    /// Gender as recorded.
    pub gender: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Street address.
    pub street_address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// ZIP code.
    pub zip: Option<i64>,
    /// Optional fields that were present but unusable, read as null (counted as `warn`s).
    pub unusable: Vec<&'static str>,
}

#[derive(Deserialize)]
struct RawBpm<'a> {
    device_id: i64,
    #[serde(borrow)]
    time: &'a RawValue,
    heartrate: f64,
}

#[derive(Deserialize)]
struct RawWorkout<'a> {
    user_id: i64,
    workout_id: i64,
    #[serde(borrow)]
    timestamp: &'a RawValue,
    action: String,
    session_id: i64,
}

/// An optional field as it came: any JSON value, checked field by field so that one bad
/// optional field becomes null instead of refusing the record.
type Optional<'a> = Option<&'a RawValue>;

#[derive(Deserialize)]
struct RawAddress<'a> {
    #[serde(borrow, default)]
    street_address: Optional<'a>,
    #[serde(borrow, default)]
    city: Optional<'a>,
    #[serde(borrow, default)]
    state: Optional<'a>,
    #[serde(borrow, default)]
    zip: Optional<'a>,
}

#[derive(Deserialize)]
struct RawUserInfo<'a> {
    user_id: i64,
    update_type: String,
    #[serde(borrow)]
    timestamp: &'a RawValue,
    #[serde(borrow, default)]
    dob: Optional<'a>,
    #[serde(borrow, default)]
    sex: Optional<'a>,
    #[serde(borrow, default)]
    gender: Optional<'a>,
    #[serde(borrow, default)]
    first_name: Optional<'a>,
    #[serde(borrow, default)]
    last_name: Optional<'a>,
    #[serde(borrow, default)]
    address: Optional<'a>,
}

fn json_error(e: serde_json::Error) -> String {
    format!("value: {e}")
}

/// A time field's raw JSON text in epoch microseconds, in `window`.
fn time_of(raw: &str, field: &str, window: &TimeWindow) -> std::result::Result<i64, String> {
    time_of_number(Number::of(raw), field, window)
}

/// [`time_of`] a number the scanner read (a plain decimal is scaled without reading it again).
fn time_of_number(time: Number<'_>, field: &str, window: &TimeWindow) -> std::result::Result<i64, String> {
    let raw = time.text;
    let micros = time
        .plain
        .and_then(|plain| plain.scaled(6))
        .or_else(|| event_time_json_to_micros_wide(raw))
        .ok_or_else(|| format!("value.{field}: {raw} is neither epoch seconds nor an ISO-8601 time"))?;
    window.check(format_args!("value.{field}"), micros, raw, Unit::Seconds)
}

/// Reads an optional field with `read`; a value that is present, not null and unreadable
/// becomes `None` and is noted in `unusable` under `field`.
fn optional<'a, T>(
    raw: Optional<'a>,
    field: &'static str,
    unusable: &mut Vec<&'static str>,
    read: impl FnOnce(&'a str) -> Option<T>,
) -> Option<T> {
    let text = raw.map(RawValue::get).filter(|t| *t != "null")?;
    let value = read(text);
    if value.is_none() {
        unusable.push(field);
    }
    value
}

/// A JSON string's text.
fn json_string(raw: &str) -> Option<String> {
    serde_json::from_str::<String>(raw).ok()
}

/// A ZIP code: a JSON integer, or a string of digits (`"02134"`).
fn zip_code(raw: &str) -> Option<i64> {
    let digits = match json_string(raw) {
        Some(text) => text.trim().to_string(),
        None => raw.to_string(),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Days since the epoch of a date of birth written `MM/dd/yyyy` (as in the source) or ISO.
pub fn parse_dob(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%m/%d/%Y")
        .or_else(|_| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d"))
        .ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// The fields of a `bpm` value by the general path (serde): device, the time's raw JSON, heart
/// rate.
pub(crate) fn general_bpm(value: &str) -> std::result::Result<(i64, Number<'_>, f64), String> {
    let raw: RawBpm = serde_json::from_str(value).map_err(json_error)?;
    Ok((raw.device_id, Number::of(raw.time.get()), raw.heartrate))
}

/// Decodes a `bpm` value; its time must lie in `window`.
pub fn decode_bpm(value: &str, window: &TimeWindow) -> std::result::Result<Bpm, String> {
    // The common shape by the scanner, anything else by serde (see `crate::scan`).
    let (device_id, time, heartrate) = match crate::scan::bpm(value) {
        Some(fields) => fields,
        None => general_bpm(value)?,
    };
    if !heartrate.is_finite() {
        return Err("value.heartrate is not a finite number".into());
    }
    Ok(Bpm { device_id, time: time_of_number(time, "time", window)?, heartrate })
}

/// Decodes a `workout` value; its time must lie in `window`.
pub fn decode_workout(value: &str, window: &TimeWindow) -> std::result::Result<Workout, String> {
    let raw: RawWorkout = serde_json::from_str(value).map_err(json_error)?;
    let action = raw.action.to_ascii_lowercase();
    if action != "start" && action != "stop" {
        return Err(format!("value.action: {:?} is neither start nor stop", raw.action));
    }
    Ok(Workout {
        user_id: raw.user_id,
        workout_id: raw.workout_id,
        time: time_of(raw.timestamp.get(), "timestamp", window)?,
        action,
        session_id: raw.session_id,
    })
}

/// Decodes a `user_info` value. The user, the change type and its time (in `window`) must be
/// usable; any other field that is present but unusable (a `dob` that is not a date, a `zip`
/// that is neither a number nor a string of digits, a name that is not a string, an address
/// that is not an object) is read as null and named in [`UserInfo::unusable`], as the
/// original's casts read such values as null and kept the rest of the change.
pub fn decode_user_info(value: &str, window: &TimeWindow) -> std::result::Result<UserInfo, String> {
    let raw: RawUserInfo = serde_json::from_str(value).map_err(json_error)?;
    let update_type = raw.update_type.to_ascii_lowercase();
    if !matches!(update_type.as_str(), "new" | "update" | "delete") {
        return Err(format!("value.update_type: {:?} is not new, update or delete", raw.update_type));
    }
    let updated = time_of(raw.timestamp.get(), "timestamp", window)?;
    let mut unusable = Vec::new();
    let dob = optional(raw.dob, "value.dob", &mut unusable, |t| json_string(t).as_deref().and_then(parse_dob));
    let mut text = |raw: Optional<'_>, field: &'static str| optional(raw, field, &mut unusable, json_string);
    let (sex, gender) = (text(raw.sex, "value.sex"), text(raw.gender, "value.gender"));
    let (first_name, last_name) = (text(raw.first_name, "value.first_name"), text(raw.last_name, "value.last_name"));
    let address = optional(raw.address, "value.address", &mut unusable, |t| serde_json::from_str::<RawAddress>(t).ok());
    let address = address.unwrap_or(RawAddress { street_address: None, city: None, state: None, zip: None });
    let mut text = |raw: Optional<'_>, field: &'static str| optional(raw, field, &mut unusable, json_string);
    let (street_address, city, state) = (
        text(address.street_address, "value.address.street_address"),
        text(address.city, "value.address.city"),
        text(address.state, "value.address.state"),
    );
    let zip = optional(address.zip, "value.address.zip", &mut unusable, zip_code);
    Ok(UserInfo {
        user_id: raw.user_id,
        updated,
        update_type,
        dob,
        sex,
        gender,
        first_name,
        last_name,
        street_address,
        city,
        state,
        zip,
        unusable,
    })
}

/// Checks a value against its topic's schema, with times in `window`; unknown topics are
/// refused.
pub fn validate_value(topic: &str, value: &str, window: &TimeWindow) -> std::result::Result<(), String> {
    match topic {
        topics::BPM => decode_bpm(value, window).map(|_| ()),
        topics::WORKOUT => decode_workout(value, window).map(|_| ()),
        topics::USER_INFO => decode_user_info(value, window).map(|_| ()),
        other => Err(format!("unknown topic {other:?}; expected one of {}", topics::ALL.join(", "))),
    }
}

/// Typed rows decoded from a column of values, and the positions that failed with why.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// One row per good value, with the input position in `row`.
    pub rows: DataFrame,
    /// (input position, reason) of every value that failed.
    pub failures: Vec<(usize, String)>,
    /// How many decoded rows had each optional field unusable (read as null).
    pub unusable: BTreeMap<&'static str, u64>,
}

/// Decoded values with their input positions, and (position, reason) of the failures.
type Decodes<T> = (Vec<(u32, T)>, Vec<(usize, String)>);

/// Runs `decode` over `values` on up to `threads` threads, keeping input order.
fn decode_all<T: Send>(
    values: &[Option<&str>],
    threads: usize,
    decode: impl Fn(&str) -> std::result::Result<T, String> + Sync,
) -> Decodes<T> {
    let chunk = values.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Decodes<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = values
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let decode = &decode;
                s.spawn(move || {
                    let mut ok = Vec::with_capacity(part.len());
                    let mut bad = Vec::new();
                    for (i, v) in part.iter().enumerate() {
                        let pos = c * chunk + i;
                        match v.map(decode) {
                            Some(Ok(t)) => ok.push((pos as u32, t)),
                            Some(Err(e)) => bad.push((pos, e)),
                            None => bad.push((pos, "value is null".to_string())),
                        }
                    }
                    (ok, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut ok = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for (o, b) in parts {
        ok.extend(o);
        bad.extend(b);
    }
    (ok, bad)
}

/// Decodes `bpm` values into `row`, `device_id`, `time`, `heartrate`.
pub fn decode_bpm_values(values: &[Option<&str>], options: &ReadOptions) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, options.threads, |v| decode_bpm(v, &options.window));
    let n = ok.len();
    let rows = DataFrame::new(
        n,
        vec![
            Column::new("row".into(), ok.iter().map(|(i, _)| *i).collect::<Vec<_>>()),
            Column::new("device_id".into(), ok.iter().map(|(_, b)| b.device_id).collect::<Vec<_>>()),
            datetime_column("time", ok.iter().map(|(_, b)| Some(b.time)).collect())?,
            Column::new("heartrate".into(), ok.iter().map(|(_, b)| b.heartrate).collect::<Vec<_>>()),
        ],
    )?;
    Ok(Decoded { rows, failures, unusable: BTreeMap::new() })
}

/// Decodes `workout` values into `row`, `user_id`, `workout_id`, `time`, `action`, `session_id`.
pub fn decode_workout_values(values: &[Option<&str>], options: &ReadOptions) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, options.threads, |v| decode_workout(v, &options.window));
    let n = ok.len();
    let rows = DataFrame::new(
        n,
        vec![
            Column::new("row".into(), ok.iter().map(|(i, _)| *i).collect::<Vec<_>>()),
            Column::new("user_id".into(), ok.iter().map(|(_, w)| w.user_id).collect::<Vec<_>>()),
            Column::new("workout_id".into(), ok.iter().map(|(_, w)| w.workout_id).collect::<Vec<_>>()),
            datetime_column("time", ok.iter().map(|(_, w)| Some(w.time)).collect())?,
            Column::new("action".into(), ok.iter().map(|(_, w)| w.action.as_str()).collect::<Vec<_>>()),
            Column::new("session_id".into(), ok.iter().map(|(_, w)| w.session_id).collect::<Vec<_>>()),
        ],
    )?;
    Ok(Decoded { rows, failures, unusable: BTreeMap::new() })
}

/// Decodes `user_info` values into `row`, `user_id`, `update_type`, `updated`, `dob`, `sex`,
/// `gender`, `first_name`, `last_name`, `street_address`, `city`, `state`, `zip`.
pub fn decode_user_info_values(values: &[Option<&str>], options: &ReadOptions) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, options.threads, |v| decode_user_info(v, &options.window));
    let mut unusable = BTreeMap::new();
    for field in ok.iter().flat_map(|(_, u)| u.unusable.iter()) {
        *unusable.entry(*field).or_insert(0) += 1;
    }
    let n = ok.len();
    let text = |f: fn(&UserInfo) -> Option<&str>| ok.iter().map(|(_, u)| f(u)).collect::<Vec<_>>();
    let rows = DataFrame::new(
        n,
        vec![
            Column::new("row".into(), ok.iter().map(|(i, _)| *i).collect::<Vec<_>>()),
            Column::new("user_id".into(), ok.iter().map(|(_, u)| u.user_id).collect::<Vec<_>>()),
            Column::new("update_type".into(), ok.iter().map(|(_, u)| u.update_type.as_str()).collect::<Vec<_>>()),
            datetime_column("updated", ok.iter().map(|(_, u)| Some(u.updated)).collect())?,
            Column::new("dob".into(), ok.iter().map(|(_, u)| u.dob).collect::<Vec<_>>()).cast(&DataType::Date)?,
            Column::new("sex".into(), text(|u| u.sex.as_deref())),
            Column::new("gender".into(), text(|u| u.gender.as_deref())),
            Column::new("first_name".into(), text(|u| u.first_name.as_deref())),
            Column::new("last_name".into(), text(|u| u.last_name.as_deref())),
            Column::new("street_address".into(), text(|u| u.street_address.as_deref())),
            Column::new("city".into(), text(|u| u.city.as_deref())),
            Column::new("state".into(), text(|u| u.state.as_deref())),
            Column::new("zip".into(), ok.iter().map(|(_, u)| u.zip).collect::<Vec<_>>()),
        ],
    )?;
    Ok(Decoded { rows, failures, unusable })
}

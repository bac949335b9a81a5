//! The `value` payloads of the Kafka multiplex, one schema per topic.
//!
//! Bronze validates every value with [`validate_value`] so that a malformed payload is
//! quarantined with its file and line; silver decodes whole columns of values into typed frames
//! with the `decode_*` functions.

use chrono::NaiveDate;
use polars::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::quarantine::datetime_column;
use crate::time::event_time_json_to_micros;
use crate::{topics, Result};

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

#[derive(Deserialize)]
struct RawAddress {
    street_address: Option<String>,
    city: Option<String>,
    state: Option<String>,
    zip: Option<i64>,
}

#[derive(Deserialize)]
struct RawUserInfo<'a> {
    user_id: i64,
    update_type: String,
    #[serde(borrow)]
    timestamp: &'a RawValue,
    dob: Option<String>,
    sex: Option<String>,
    gender: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    address: Option<RawAddress>,
}

fn json_error(e: serde_json::Error) -> String {
    format!("value: {e}")
}

fn time_of(raw: &RawValue, field: &str) -> std::result::Result<i64, String> {
    event_time_json_to_micros(raw.get())
        .ok_or_else(|| format!("value.{field}: {} is neither epoch seconds nor an ISO-8601 time", raw.get()))
}

/// Days since the epoch of a date of birth written `MM/dd/yyyy` (as in the source) or ISO.
pub fn parse_dob(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%m/%d/%Y")
        .or_else(|_| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d"))
        .ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// Decodes a `bpm` value.
pub fn decode_bpm(value: &str) -> std::result::Result<Bpm, String> {
    let raw: RawBpm = serde_json::from_str(value).map_err(json_error)?;
    if !raw.heartrate.is_finite() {
        return Err("value.heartrate is not a finite number".into());
    }
    Ok(Bpm { device_id: raw.device_id, time: time_of(raw.time, "time")?, heartrate: raw.heartrate })
}

/// Decodes a `workout` value.
pub fn decode_workout(value: &str) -> std::result::Result<Workout, String> {
    let raw: RawWorkout = serde_json::from_str(value).map_err(json_error)?;
    let action = raw.action.to_ascii_lowercase();
    if action != "start" && action != "stop" {
        return Err(format!("value.action: {:?} is neither start nor stop", raw.action));
    }
    Ok(Workout {
        user_id: raw.user_id,
        workout_id: raw.workout_id,
        time: time_of(raw.timestamp, "timestamp")?,
        action,
        session_id: raw.session_id,
    })
}

/// Decodes a `user_info` value.
pub fn decode_user_info(value: &str) -> std::result::Result<UserInfo, String> {
    let raw: RawUserInfo = serde_json::from_str(value).map_err(json_error)?;
    let update_type = raw.update_type.to_ascii_lowercase();
    if !matches!(update_type.as_str(), "new" | "update" | "delete") {
        return Err(format!("value.update_type: {:?} is not new, update or delete", raw.update_type));
    }
    let dob = match raw.dob.as_deref() {
        Some(text) => Some(parse_dob(text).ok_or_else(|| format!("value.dob: {text:?} is not a date (MM/dd/yyyy)"))?),
        None if update_type == "delete" => None,
        None => return Err("value.dob is missing".into()),
    };
    let address = raw.address.unwrap_or(RawAddress { street_address: None, city: None, state: None, zip: None });
    Ok(UserInfo {
        user_id: raw.user_id,
        updated: time_of(raw.timestamp, "timestamp")?,
        update_type,
        dob,
        sex: raw.sex,
        gender: raw.gender,
        first_name: raw.first_name,
        last_name: raw.last_name,
        street_address: address.street_address,
        city: address.city,
        state: address.state,
        zip: address.zip,
    })
}

/// Checks a value against its topic's schema; unknown topics are refused.
pub fn validate_value(topic: &str, value: &str) -> std::result::Result<(), String> {
    match topic {
        topics::BPM => decode_bpm(value).map(|_| ()),
        topics::WORKOUT => decode_workout(value).map(|_| ()),
        topics::USER_INFO => decode_user_info(value).map(|_| ()),
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
pub fn decode_bpm_values(values: &[Option<&str>], threads: usize) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, threads, decode_bpm);
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
    Ok(Decoded { rows, failures })
}

/// Decodes `workout` values into `row`, `user_id`, `workout_id`, `time`, `action`, `session_id`.
pub fn decode_workout_values(values: &[Option<&str>], threads: usize) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, threads, decode_workout);
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
    Ok(Decoded { rows, failures })
}

/// Decodes `user_info` values into `row`, `user_id`, `update_type`, `updated`, `dob`, `sex`,
/// `gender`, `first_name`, `last_name`, `street_address`, `city`, `state`, `zip`.
pub fn decode_user_info_values(values: &[Option<&str>], threads: usize) -> Result<Decoded> {
    let (ok, failures) = decode_all(values, threads, decode_user_info);
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
    Ok(Decoded { rows, failures })
}

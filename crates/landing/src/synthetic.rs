//! Deterministic landing data: heart-rate readings for the seed sets (whose original BPM files
//! are lost) and whole synthetic data sets at any scale. The same seed always gives the same
//! bytes.
//!
//! Readings: one per second per device while its user is in the gym. The reading for second `k`
//! of a visit falls in `(login + k, login + k + 1]` (a seeded millisecond jitter), so a visit of
//! `d` whole seconds yields exactly `d` readings, all in `(login, logout]`. About one reading in
//! 200 is invalid (`heartrate` 0 or -1).

use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::csv::{parse_gym_logins, parse_registered_users};
use crate::{Error, Result};

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One gym visit of one device, in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    /// The device worn.
    pub device_id: i64,
    /// Login, epoch seconds.
    pub login: i64,
    /// Logout, epoch seconds.
    pub logout: i64,
}

/// Appends the `bpm` envelopes of `visits` to `out`, one JSON line each, with offsets counting
/// up from `first_offset`; returns the next offset.
pub fn write_bpm_envelopes(visits: &[Visit], seed: u64, first_offset: i64, out: &mut String) -> i64 {
    let mut offset = first_offset;
    for visit in visits {
        let mut rng = SplitMix64::new(seed ^ (visit.device_id as u64).rotate_left(17) ^ (visit.login as u64));
        let mut rate: i64 = 700 + rng.below(300) as i64; // tenths of a beat per minute
        for k in 0..(visit.logout - visit.login).max(0) {
            let jitter_ms = rng.below(1000) as i64;
            let t_ms = (visit.login + k + 1) * 1000 - jitter_ms;
            rate = (rate + rng.below(41) as i64 - 20).clamp(550, 1900);
            let heartrate = match rng.below(200) {
                0 => "0".to_string(),
                1 => "-1".to_string(),
                _ => format!("{}.{}", rate / 10, rate % 10),
            };
            let _ = writeln!(
                out,
                r#"{{"key":"{d}","value":"{{\"device_id\": {d}, \"time\": {s}.{ms:03}, \"heartrate\": {heartrate}}}","topic":"bpm","partition":0,"offset":{offset},"timestamp":{t_ms}}}"#,
                d = visit.device_id,
                s = t_ms / 1000,
                ms = t_ms % 1000,
            );
            offset += 1;
        }
    }
    offset
}

/// The gym visits of a seed set: logins joined to registrations by MAC address. Logins of
/// unknown devices or without a logout yield no readings.
pub fn seed_visits(registered_users_csvs: &[&str], gym_logins_csv: &str) -> Result<Vec<Visit>> {
    use polars::prelude::*;
    let mut devices = std::collections::HashMap::new();
    for text in registered_users_csvs {
        let users = parse_registered_users(text.as_bytes(), "seed", &Default::default())?.rows;
        let macs = users.column("mac_address")?.str()?.clone();
        let ids = users.column("device_id")?.i64()?.clone();
        for (mac, id) in macs.iter().zip(ids.iter()) {
            if let (Some(mac), Some(id)) = (mac, id) {
                devices.insert(mac.to_string(), id);
            }
        }
    }
    let logins = parse_gym_logins(gym_logins_csv.as_bytes(), "seed", &Default::default())?.rows;
    let to_seconds = |c: &Column| -> Result<Vec<Option<i64>>> {
        Ok(c.cast(&DataType::Int64)?.i64()?.iter().map(|v| v.map(|us| us / 1_000_000)).collect())
    };
    let login = to_seconds(logins.column("login")?)?;
    let logout = to_seconds(logins.column("logout")?)?;
    let macs = logins.column("mac_address")?.str()?.clone();
    let mut visits = Vec::new();
    for ((mac, login), logout) in macs.iter().zip(login).zip(logout) {
        if let (Some(mac), Some(login), Some(logout)) = (mac, login, logout) {
            if let Some(&device_id) = devices.get(mac) {
                visits.push(Visit { device_id, login, logout });
            }
        }
    }
    Ok(visits)
}

/// Options of a synthetic data set.
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    /// Number of users.
    pub users: u32,
    /// Number of days; every user visits the gym once a day.
    pub days: u32,
    /// Random seed.
    pub seed: u64,
    /// First day.
    pub start: NaiveDate,
}

/// A synthetic data set: the small landing files as text and the visits whose readings the
/// caller writes in chunks with [`write_bpm_envelopes`].
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    /// `registered_users` CSV.
    pub registered_users_csv: String,
    /// `gym_logins` CSV.
    pub gym_logins_csv: String,
    /// `user_info` and `workout` envelopes, JSON lines.
    pub events_jsonl: String,
    /// Every visit, in login order per day.
    pub visits: Vec<Visit>,
}

const CITIES: [(&str, &str); 6] = [
    ("Los Angeles", "CA"),
    ("Long Beach", "CA"),
    ("Santa Monica", "CA"),
    ("Pasadena", "CA"),
    ("Glendale", "CA"),
    ("Burbank", "CA"),
];
const FIRST_NAMES: [&str; 6] = ["Ana", "Ben", "Chen", "Dana", "Eli", "Fay"];
const LAST_NAMES: [&str; 6] = ["Lee", "Diaz", "Kim", "Moss", "Park", "Ruiz"];

/// Generates a synthetic data set: registrations on the first morning, a `new` profile per
/// user (and an `update` for one in ten), one visit a day per user of 45 to 120 minutes with
/// one or two workout sessions inside it.
pub fn generate(options: Synthetic) -> Result<SyntheticSet> {
    if options.users == 0 || options.days == 0 {
        return Err(Error::InvalidArgument("--users and --days must be at least 1".into()));
    }
    let day0 = options
        .start
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp())
        .ok_or_else(|| Error::InvalidArgument("bad start date".into()))?;
    let mut rng = SplitMix64::new(options.seed);
    let mut registered = String::from("user_id,device_id,mac_address,registration_timestamp\n");
    let mut logins = String::from("mac_address,gym,login,logout\n");
    let mut events = String::new();
    let mut visits = Vec::new();
    let mut offset = 0i64;
    let mut macs = Vec::with_capacity(options.users as usize);
    for u in 0..options.users as i64 {
        let (user_id, device_id) = (100_000 + u, 500_000 + u);
        let mac_bits = rng.next_u64();
        let mac = (0..6).map(|i| format!("{:02x}", (mac_bits >> (i * 8)) & 0xff)).collect::<Vec<_>>().join(":");
        let registered_at = day0 + 6 * 3600 - 3 * 3600 + u;
        let _ = writeln!(registered, "{user_id},{device_id},{mac},{registered_at}");
        let (city, state) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let dob = format!("{:02}/{:02}/{}", 1 + rng.below(12), 1 + rng.below(28), 1940 + rng.below(65));
        let (first, last) = (FIRST_NAMES[rng.below(6) as usize], LAST_NAMES[rng.below(6) as usize]);
        let gender = if rng.below(2) == 0 { "F" } else { "M" };
        let profile = |update_type: &str, at: i64, city: &str, offset: &mut i64, events: &mut String| {
            let value = format!(
                r#"{{"user_id": {user_id}, "update_type": "{update_type}", "timestamp": {at}, "dob": "{dob}", "sex": "{gender}", "gender": "{gender}", "first_name": "{first}", "last_name": "{last}", "address": {{"street_address": "{u} Main St", "city": "{city}", "state": "{state}", "zip": 90000}}}}"#
            );
            let _ = writeln!(
                events,
                r#"{{"key":"{user_id}","value":{},"topic":"user_info","partition":0,"offset":{offset},"timestamp":{ms}}}"#,
                serde_json::Value::String(value),
                offset = *offset,
                ms = at * 1000
            );
            *offset += 1;
        };
        profile("new", registered_at, city, &mut offset, &mut events);
        if u % 10 == 3 {
            profile("update", registered_at + 600, CITIES[(u as usize) % CITIES.len()].0, &mut offset, &mut events);
        }
        macs.push((user_id, device_id, mac));
    }
    for day in 0..options.days as i64 {
        for (user_id, device_id, mac) in &macs {
            let login = day0 + day * 86_400 + 6 * 3600 + rng.below(12 * 3600) as i64;
            let logout = login + 45 * 60 + rng.below(75 * 60) as i64;
            let gym = 1 + rng.below(5);
            let _ = writeln!(logins, "{mac},{gym},{login},{logout}");
            visits.push(Visit { device_id: *device_id, login, logout });
            let mut start = login + 60 + rng.below(600) as i64;
            let sessions = 1 + rng.below(2) as i64;
            for session_id in 1..=sessions {
                let stop = (start + 10 * 60 + rng.below(30 * 60) as i64).min(logout);
                if stop <= start {
                    break;
                }
                for (action, at) in [("start", start), ("stop", stop)] {
                    let value = format!(
                        r#"{{"user_id": {user_id}, "workout_id": {w}, "timestamp": {at}, "action": "{action}", "session_id": {session_id}}}"#,
                        w = day + 1
                    );
                    let _ = writeln!(
                        events,
                        r#"{{"key":"{user_id}","value":{},"topic":"workout","partition":0,"offset":{offset},"timestamp":{ms}}}"#,
                        serde_json::Value::String(value),
                        ms = at * 1000
                    );
                    offset += 1;
                }
                start = stop + 60;
            }
        }
    }
    Ok(SyntheticSet { registered_users_csv: registered, gym_logins_csv: logins, events_jsonl: events, visits })
}

/// The envelope lines of several multiplex texts merged in the order of their `timestamp`
/// (stable: lines with equal timestamps keep their order), as a broker would deliver a live
/// stream. Lines without a trailing integer `timestamp` sort first.
pub fn interleave_by_time<'a>(texts: &[&'a str]) -> Vec<&'a str> {
    let timestamp = |line: &str| {
        line.rsplit_once("\"timestamp\":")
            .and_then(|(_, rest)| rest.trim_end().trim_end_matches('}').parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    };
    let mut lines: Vec<(i64, &str)> =
        texts.iter().flat_map(|t| t.lines()).filter(|l| !l.trim().is_empty()).map(|l| (timestamp(l), l)).collect();
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

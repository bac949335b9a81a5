//! The heart-rate counts the pipeline must produce, derived independently of it: plain Rust
//! over the landed files and the seed sets, with integer milliseconds, no Polars, no fitlake
//! code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Counts of the BPM-derived tables.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BpmCounts {
    /// `bpm` envelopes in the multiplex.
    pub multiplex_bpm: u64,
    /// Distinct (device, time) readings.
    pub heart_rate: u64,
    /// Valid readings inside completed sessions.
    pub workout_bpm: u64,
    /// Completed sessions with at least one such reading.
    pub workout_bpm_summary: u64,
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).expect("valid json in test data")
}

/// Milliseconds of a decimal seconds text such as `1678524000.437` or `1678524000.0`.
fn millis(text: &str) -> i64 {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<3}");
    secs.parse::<i64>().expect("seconds") * 1000 + frac[..3].parse::<i64>().expect("millis")
}

/// The raw text of a number field inside a flat JSON object text.
fn number_field(object: &str, field: &str) -> String {
    let start = object.find(&format!("\"{field}\"")).expect("field present") + field.len() + 2;
    let rest = object[start..].trim_start_matches([':', ' ']);
    rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect()
}

/// Derives the counts for the seed sets `1..=sets` from the landed BPM files in `landing`.
pub fn bpm_counts(testdata: &Path, landing: &Path, sets: usize) -> BpmCounts {
    let mut device_of_user = HashMap::new();
    // (user, workout, session) -> (start times, stop times), in milliseconds.
    type Sessions = BTreeMap<(i64, i64, i64), (Vec<i64>, Vec<i64>)>;
    let mut events = Sessions::new();
    let mut readings: HashMap<i64, Vec<(i64, f64)>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut counts = BpmCounts::default();
    for set in 1..=sets {
        let users =
            std::fs::read_to_string(testdata.join(format!("seed-sets/1-registered_users_{set}.csv"))).expect("users");
        for line in users.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            device_of_user.insert(f[0].parse::<i64>().expect("user"), f[1].parse::<i64>().expect("device"));
        }
        let workouts =
            std::fs::read_to_string(testdata.join(format!("seed-sets/4-workout_{set}.json"))).expect("workouts");
        for line in workouts.lines().filter(|l| !l.trim().is_empty()) {
            let value = json(json(line)["value"].as_str().expect("value"));
            let key = (
                value["user_id"].as_i64().unwrap_or(0),
                value["workout_id"].as_i64().unwrap_or(0),
                value["session_id"].as_i64().unwrap_or(0),
            );
            let at = millis(&number_field(&value.to_string(), "timestamp"));
            let entry = events.entry(key).or_default();
            if value["action"] == "start" {
                entry.0.push(at);
            } else {
                entry.1.push(at);
            }
        }
        let bpm = std::fs::read_to_string(landing.join(format!("3-bpm_{set}.json"))).expect("bpm file");
        for line in bpm.lines().filter(|l| !l.trim().is_empty()) {
            counts.multiplex_bpm += 1;
            let value = json(line)["value"].as_str().expect("value").to_string();
            let device: i64 = number_field(&value, "device_id").parse().expect("device");
            let time = millis(&number_field(&value, "time"));
            let rate: f64 = number_field(&value, "heartrate").parse().expect("rate");
            if seen.insert((device, time)) {
                readings.entry(device).or_default().push((time, rate));
            }
        }
    }
    counts.heart_rate = seen.len() as u64;
    for ((user, _, _), (starts, stops)) in &events {
        let Some(&start) = starts.iter().min() else { continue };
        let Some(&stop) = stops.iter().filter(|&&s| s > start && s < start + 3 * 3600 * 1000).min() else { continue };
        let Some(device) = device_of_user.get(user) else { continue };
        let inside = readings
            .get(device)
            .map_or(0, |r| r.iter().filter(|(t, rate)| *rate > 0.0 && *t > start && *t <= stop).count() as u64);
        counts.workout_bpm += inside;
        counts.workout_bpm_summary += u64::from(inside > 0);
    }
    counts
}

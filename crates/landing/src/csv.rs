//! The CSV sources: user registrations and gym logins.
//!
//! Files start with a header naming the columns (any order); blank lines are skipped. A record
//! with the wrong number of fields, a non-integer id or an unreadable time is quarantined.

use polars::prelude::*;

use crate::quarantine::{datetime_column, numbered_lines, Parsed, Quarantined};
use crate::time::event_time_text_to_micros;
use crate::Result;

/// Columns of a registrations file.
pub const REGISTERED_USERS_COLUMNS: [&str; 4] = ["user_id", "device_id", "mac_address", "registration_timestamp"];
/// Columns of a gym logins file.
pub const GYM_LOGINS_COLUMNS: [&str; 4] = ["mac_address", "gym", "login", "logout"];

/// A CSV file's records, with fields already mapped to the expected column order.
struct Records<'a> {
    rows: Vec<(u64, &'a str, Vec<&'a str>)>,
    quarantined: Vec<Quarantined>,
}

fn split_fields(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"')).collect()
}

fn read_records<'a>(text: &'a str, source_file: &str, expected: &[&str]) -> Records<'a> {
    let mut lines = numbered_lines(text);
    let mut out = Records { rows: Vec::new(), quarantined: Vec::new() };
    let quarantine = |line: u64, raw: &str, reason: String| Quarantined {
        source_file: source_file.to_string(),
        line,
        raw: raw.to_string(),
        reason,
    };
    let Some((header_line, header)) = lines.next() else {
        return out;
    };
    let names = split_fields(header);
    let mut positions = Vec::with_capacity(expected.len());
    for column in expected {
        match names.iter().position(|n| n.eq_ignore_ascii_case(column)) {
            Some(p) => positions.push(p),
            None => {
                out.quarantined.push(quarantine(
                    header_line,
                    header,
                    format!("header lacks column {column:?}; expected {}", expected.join(",")),
                ));
                // Without a usable header no record of the file can be read.
                for (line, raw) in lines {
                    out.quarantined.push(quarantine(line, raw, "file has no usable header".into()));
                }
                return out;
            }
        }
    }
    for (line, raw) in lines {
        let fields = split_fields(raw);
        if fields.len() != names.len() {
            out.quarantined.push(quarantine(
                line,
                raw,
                format!("expected {} fields, found {}", names.len(), fields.len()),
            ));
            continue;
        }
        out.rows.push((line, raw, positions.iter().map(|&p| fields[p]).collect()));
    }
    out
}

fn parse_int(field: &str, column: &str) -> std::result::Result<i64, String> {
    field.parse::<i64>().map_err(|_| format!("{column}: {field:?} is not an integer"))
}

fn parse_time(field: &str, column: &str) -> std::result::Result<i64, String> {
    event_time_text_to_micros(field)
        .ok_or_else(|| format!("{column}: {field:?} is neither epoch seconds nor an ISO-8601 time"))
}

fn non_empty<'a>(field: &'a str, column: &str) -> std::result::Result<&'a str, String> {
    if field.is_empty() {
        Err(format!("{column} is empty"))
    } else {
        Ok(field)
    }
}

/// Parses a registrations file: `user_id`, `device_id`, `mac_address`,
/// `registration_timestamp` (epoch seconds or ISO-8601).
///
/// ```
/// let text = "user_id,device_id,mac_address,registration_timestamp\n1,10,aa,1678521600.25\n2,x,bb,1\n";
/// let parsed = fitlake_landing::csv::parse_registered_users(text, "1-registered_users_1.csv")?;
/// assert_eq!(parsed.rows.column("registration_timestamp")?.to_physical_repr().i64()?.get(0), Some(1_678_521_600_250_000));
/// assert_eq!((parsed.quarantined[0].line, parsed.quarantined[0].reason.as_str()), (3, "device_id: \"x\" is not an integer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_registered_users(text: &str, source_file: &str) -> Result<Parsed> {
    let records = read_records(text, source_file, &REGISTERED_USERS_COLUMNS);
    let mut quarantined = records.quarantined;
    let (mut user_id, mut device_id, mut mac, mut registered) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, raw, f) in records.rows {
        let row = (|| {
            Ok::<_, String>((
                parse_int(f[0], "user_id")?,
                parse_int(f[1], "device_id")?,
                non_empty(f[2], "mac_address")?,
                parse_time(f[3], "registration_timestamp")?,
            ))
        })();
        match row {
            Ok((u, d, m, t)) => {
                user_id.push(u);
                device_id.push(d);
                mac.push(m);
                registered.push(Some(t));
            }
            Err(reason) => {
                quarantined.push(Quarantined { source_file: source_file.into(), line, raw: raw.into(), reason })
            }
        }
    }
    let n = user_id.len();
    let rows = DataFrame::new(
        n,
        vec![
            Column::new("user_id".into(), user_id),
            Column::new("device_id".into(), device_id),
            Column::new("mac_address".into(), mac),
            datetime_column("registration_timestamp", registered)?,
        ],
    )?;
    quarantined.sort_by_key(|q| q.line);
    Ok(Parsed { rows, quarantined })
}

/// Parses a gym logins file: `mac_address`, `gym`, `login`, `logout` (times as epoch seconds or
/// ISO-8601; an empty logout means the visit is still open).
///
/// ```
/// let text = "mac_address,gym,login,logout\naa,3,1678521600,\nbb,3,2023-03-11T08:00:00Z,1678525200\n";
/// let parsed = fitlake_landing::csv::parse_gym_logins(text, "5-gym_logins_1.csv")?;
/// assert_eq!((parsed.rows.height(), parsed.rows.column("logout")?.null_count()), (2, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_gym_logins(text: &str, source_file: &str) -> Result<Parsed> {
    let records = read_records(text, source_file, &GYM_LOGINS_COLUMNS);
    let mut quarantined = records.quarantined;
    let (mut mac, mut gym, mut login, mut logout) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, raw, f) in records.rows {
        let row = (|| {
            let login = parse_time(f[2], "login")?;
            let logout = if f[3].is_empty() { None } else { Some(parse_time(f[3], "logout")?) };
            if logout.is_some_and(|l| l < login) {
                return Err("logout is before login".to_string());
            }
            Ok::<_, String>((non_empty(f[0], "mac_address")?, parse_int(f[1], "gym")?, login, logout))
        })();
        match row {
            Ok((m, g, li, lo)) => {
                mac.push(m);
                gym.push(g);
                login.push(Some(li));
                logout.push(lo);
            }
            Err(reason) => {
                quarantined.push(Quarantined { source_file: source_file.into(), line, raw: raw.into(), reason })
            }
        }
    }
    let n = mac.len();
    let rows = DataFrame::new(
        n,
        vec![
            Column::new("mac_address".into(), mac),
            Column::new("gym".into(), gym),
            datetime_column("login", login)?,
            datetime_column("logout", logout)?,
        ],
    )?;
    quarantined.sort_by_key(|q| q.line);
    Ok(Parsed { rows, quarantined })
}

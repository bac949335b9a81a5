//! The CSV sources: user registrations and gym logins.
//!
//! Files are read by a real CSV reader (RFC 4180 quoting, CRLF or LF, a leading byte-order mark
//! accepted) and start with a header naming the columns (any order, any case); blank lines are
//! skipped. A record with the wrong number of fields, a non-integer id, an unreadable time or a
//! time outside the plausible window, invalid UTF-8 or over the line limit is quarantined; the
//! rest of the file is read.

use polars::prelude::*;

use crate::quarantine::{datetime_column, oversized, strip_bom, Parsed, Quarantined};
use crate::time::{event_time_text_to_micros_wide, TimeWindow, Unit};
use crate::{ReadOptions, Result};

/// Columns of a registrations file.
pub const REGISTERED_USERS_COLUMNS: [&str; 4] = ["user_id", "device_id", "mac_address", "registration_timestamp"];
/// Columns of a gym logins file.
pub const GYM_LOGINS_COLUMNS: [&str; 4] = ["mac_address", "gym", "login", "logout"];

/// A CSV file's records, with fields already mapped to the expected column order.
struct Records {
    rows: Vec<(u64, String, Vec<String>)>,
    quarantined: Vec<Quarantined>,
}

/// One record of the file: its first line, its raw text, and its fields (trimmed), or the
/// reason it cannot be read.
type RawRecord = (u64, Vec<u8>, std::result::Result<Vec<String>, String>);

fn raw_records(bytes: &[u8], max_line_bytes: usize) -> Vec<RawRecord> {
    let mut reader =
        ::csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(::csv::Trim::All).from_reader(bytes);
    let mut out = Vec::new();
    let mut record = ::csv::ByteRecord::new();
    loop {
        let start = reader.position().byte() as usize;
        let read = reader.read_byte_record(&mut record);
        let end = (reader.position().byte() as usize).min(bytes.len());
        // The reader's position before a record is where the blank lines before it start.
        let span = &bytes[start.min(end)..end];
        let leading = span.len() - span.trim_ascii_start().len();
        let skipped = span[..leading].iter().filter(|&&b| b == b'\n').count() as u64;
        let raw = span.trim_ascii().to_vec();
        let line = record.position().map_or(0, |p| p.line()) + skipped;
        match read {
            Ok(false) => break,
            Ok(true) if record.iter().all(|f| f.is_empty()) => continue,
            Ok(true) if raw.len() > max_line_bytes => out.push((line, raw, Err(String::new()))),
            Ok(true) => {
                let fields: std::result::Result<Vec<String>, String> = record
                    .iter()
                    .map(|f| {
                        std::str::from_utf8(f)
                            .map(str::to_string)
                            .map_err(|e| format!("line is not valid UTF-8 (at byte {} of a field)", e.valid_up_to()))
                    })
                    .collect();
                out.push((line, raw, fields));
            }
            // The csv reader reports only I/O errors and invalid UTF-8 for byte records; a slice
            // has no I/O errors. Keep whatever was read as one quarantined record.
            Err(e) => out.push((line, raw, Err(format!("unreadable CSV: {e}")))),
        }
    }
    out
}

fn read_records(bytes: &[u8], source_file: &str, expected: &[&str], options: &ReadOptions) -> Records {
    let mut out = Records { rows: Vec::new(), quarantined: Vec::new() };
    let quarantine = |line: u64, raw: &[u8], reason: String| Quarantined {
        source_file: source_file.to_string(),
        line,
        raw: String::from_utf8_lossy(raw).into_owned(),
        reason,
    };
    let mut records = raw_records(strip_bom(bytes), options.max_line_bytes).into_iter();
    let Some((header_line, header_raw, header)) = records.next() else {
        return out;
    };
    let names = header.unwrap_or_default();
    let mut positions = Vec::with_capacity(expected.len());
    for column in expected {
        match names.iter().position(|n| n.eq_ignore_ascii_case(column)) {
            Some(p) => positions.push(p),
            None => {
                out.quarantined.push(quarantine(
                    header_line,
                    &header_raw[..header_raw.len().min(crate::quarantine::RAW_PREFIX_BYTES)],
                    format!("header lacks column {column:?}; expected {}", expected.join(",")),
                ));
                // Without a usable header no record of the file can be read.
                for (line, raw, _) in records {
                    let raw = &raw[..raw.len().min(crate::quarantine::RAW_PREFIX_BYTES)];
                    out.quarantined.push(quarantine(line, raw, "file has no usable header".into()));
                }
                return out;
            }
        }
    }
    for (line, raw, fields) in records {
        match fields {
            Err(reason) if reason.is_empty() => {
                out.quarantined.push(oversized(source_file, line, &raw, options.max_line_bytes, "record"))
            }
            Err(reason) => out.quarantined.push(quarantine(line, &raw, reason)),
            Ok(fields) if fields.len() != names.len() => out.quarantined.push(quarantine(
                line,
                &raw,
                format!("expected {} fields, found {}", names.len(), fields.len()),
            )),
            Ok(mut fields) => {
                let mapped = positions.iter().map(|&p| std::mem::take(&mut fields[p])).collect();
                out.rows.push((line, String::from_utf8_lossy(&raw).into_owned(), mapped));
            }
        }
    }
    out
}

fn parse_int(field: &str, column: &str) -> std::result::Result<i64, String> {
    field.parse::<i64>().map_err(|_| format!("{column}: {field:?} is not an integer"))
}

fn parse_time(field: &str, column: &str, window: &TimeWindow) -> std::result::Result<i64, String> {
    let micros = event_time_text_to_micros_wide(field)
        .ok_or_else(|| format!("{column}: {field:?} is neither epoch seconds nor an ISO-8601 time"))?;
    window.check(column, micros, field, Unit::Seconds)
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
/// let options = fitlake_landing::ReadOptions::default();
/// let parsed = fitlake_landing::csv::parse_registered_users(text.as_bytes(), "1-registered_users_1.csv", &options)?;
/// assert_eq!(parsed.rows.column("registration_timestamp")?.to_physical_repr().i64()?.get(0), Some(1_678_521_600_250_000));
/// assert_eq!((parsed.quarantined[0].line, parsed.quarantined[0].reason.as_str()), (3, "device_id: \"x\" is not an integer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_registered_users(bytes: &[u8], source_file: &str, options: &ReadOptions) -> Result<Parsed> {
    let records = read_records(bytes, source_file, &REGISTERED_USERS_COLUMNS, options);
    let mut quarantined = records.quarantined;
    let (mut user_id, mut device_id, mut mac, mut registered) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, raw, f) in records.rows {
        let row = (|| {
            Ok::<_, String>((
                parse_int(&f[0], "user_id")?,
                parse_int(&f[1], "device_id")?,
                non_empty(&f[2], "mac_address")?.to_string(),
                parse_time(&f[3], "registration_timestamp", &options.window)?,
            ))
        })();
        match row {
            Ok((u, d, m, t)) => {
                user_id.push(u);
                device_id.push(d);
                mac.push(m);
                registered.push(Some(t));
            }
            Err(reason) => quarantined.push(Quarantined { source_file: source_file.into(), line, raw, reason }),
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
/// let parsed = fitlake_landing::csv::parse_gym_logins(text.as_bytes(), "5-gym_logins_1.csv", &Default::default())?;
/// assert_eq!((parsed.rows.height(), parsed.rows.column("logout")?.null_count()), (2, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_gym_logins(bytes: &[u8], source_file: &str, options: &ReadOptions) -> Result<Parsed> {
    let records = read_records(bytes, source_file, &GYM_LOGINS_COLUMNS, options);
    let mut quarantined = records.quarantined;
    let (mut mac, mut gym, mut login, mut logout) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, raw, f) in records.rows {
        let row = (|| {
            let login = parse_time(&f[2], "login", &options.window)?;
            let logout = if f[3].is_empty() { None } else { Some(parse_time(&f[3], "logout", &options.window)?) };
            if logout.is_some_and(|l| l < login) {
                return Err("logout is before login".to_string());
            }
            Ok::<_, String>((non_empty(&f[0], "mac_address")?.to_string(), parse_int(&f[1], "gym")?, login, logout))
        })();
        match row {
            Ok((m, g, li, lo)) => {
                mac.push(m);
                gym.push(g);
                login.push(Some(li));
                logout.push(lo);
            }
            Err(reason) => quarantined.push(Quarantined { source_file: source_file.into(), line, raw, reason }),
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

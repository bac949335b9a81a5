//! The Kafka multiplex: one JSON envelope per line,
//! `{key, value, topic, partition, offset, timestamp}`.
//!
//! The envelope timestamp is epoch milliseconds (seconds in the seed files; both are accepted).
//! `value` is a JSON string holding the topic's payload (an embedded JSON object is accepted
//! too and kept as its text); it is validated against the topic's schema here so that a bad
//! payload is quarantined with its file and line.

use std::borrow::Cow;

use polars::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::quarantine::{datetime_column, oversized, strip_bom, utf8_line, Parsed, Quarantined};
use crate::time::{kafka_timestamp_to_micros, TimeWindow, Unit, KAFKA_SECONDS_LIMIT};
use crate::value::{decode_bpm, validate_value, Bpm};
use crate::{topics, ReadOptions, Result};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i64,
    offset: i64,
    #[serde(borrow)]
    timestamp: &'a RawValue,
}

/// One valid envelope, borrowing from the text where no unescaping is needed.
pub struct Record<'a> {
    /// The record key's text, if any.
    pub key: Option<Cow<'a, str>>,
    /// The payload's JSON text.
    pub value: Cow<'a, str>,
    /// The topic.
    pub topic: Cow<'a, str>,
    /// The partition the envelope names.
    pub partition: i64,
    /// The offset the envelope names.
    pub offset: i64,
    /// The Kafka timestamp, epoch microseconds.
    pub timestamp: i64,
    /// A `bpm` payload, decoded (bronze keeps it typed next to `value`, so silver never parses
    /// the JSON of the high-volume topic again).
    pub bpm: Option<Bpm>,
}

/// The text of a JSON string (borrowed when it has no escapes) or, for any other JSON value,
/// its raw text; `None` for `null`.
fn text_of(raw: &RawValue) -> std::result::Result<Option<Cow<'_, str>>, String> {
    let text = raw.get();
    if text == "null" {
        Ok(None)
    } else if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if inner.contains('\\') {
            serde_json::from_str::<String>(text).map(|s| Some(Cow::Owned(s))).map_err(|e| e.to_string())
        } else {
            Ok(Some(Cow::Borrowed(inner)))
        }
    } else {
        Ok(Some(Cow::Borrowed(text)))
    }
}

/// One envelope line, its timestamp checked against `window` and its payload validated against
/// its topic's schema; the error is the quarantine reason.
pub fn parse_envelope<'a>(line: &'a str, window: &TimeWindow) -> std::result::Result<Record<'a>, String> {
    let envelope: Envelope = serde_json::from_str(line).map_err(|e| format!("envelope: {e}"))?;
    let value =
        text_of(envelope.value).map_err(|e| format!("value: {e}"))?.ok_or_else(|| "value is null".to_string())?;
    let raw_timestamp = envelope.timestamp.get();
    let timestamp = kafka_timestamp_to_micros(raw_timestamp)
        .ok_or_else(|| format!("timestamp: {raw_timestamp} is not epoch milliseconds or seconds"))?;
    let unit = match raw_timestamp.trim().parse::<f64>() {
        Ok(v) if v.abs() >= KAFKA_SECONDS_LIMIT as f64 => Unit::Milliseconds,
        _ => Unit::Seconds,
    };
    let timestamp = window.check("timestamp", timestamp.into(), raw_timestamp, unit)?;
    let bpm = if envelope.topic == topics::BPM {
        Some(decode_bpm(&value, window)?)
    } else {
        validate_value(&envelope.topic, &value, window)?;
        None
    };
    Ok(Record {
        key: match envelope.key {
            Some(k) => text_of(k).map_err(|e| format!("key: {e}"))?,
            None => None,
        },
        value,
        topic: envelope.topic,
        partition: envelope.partition,
        offset: envelope.offset,
        timestamp,
        bpm,
    })
}

/// The typed `bpm` payload columns of a multiplex frame (null for other topics).
pub const BPM_DEVICE_ID: &str = "bpm_device_id";
/// See [`BPM_DEVICE_ID`].
pub const BPM_TIME: &str = "bpm_time";
/// See [`BPM_DEVICE_ID`].
pub const BPM_HEARTRATE: &str = "bpm_heartrate";

fn records_frame(records: &[Record<'_>]) -> Result<DataFrame> {
    Ok(DataFrame::new(
        records.len(),
        vec![
            StringChunked::from_iter_options("key".into(), records.iter().map(|r| r.key.as_deref())).into_column(),
            StringChunked::from_iter_values("value".into(), records.iter().map(|r| r.value.as_ref())).into_column(),
            StringChunked::from_iter_values("topic".into(), records.iter().map(|r| r.topic.as_ref())).into_column(),
            Column::new("partition".into(), records.iter().map(|r| r.partition).collect::<Vec<_>>()),
            Column::new("offset".into(), records.iter().map(|r| r.offset).collect::<Vec<_>>()),
            datetime_column("timestamp", records.iter().map(|r| Some(r.timestamp)).collect())?,
            Column::new(BPM_DEVICE_ID.into(), records.iter().map(|r| r.bpm.map(|b| b.device_id)).collect::<Vec<_>>()),
            datetime_column(BPM_TIME, records.iter().map(|r| r.bpm.map(|b| b.time)).collect())?,
            Column::new(BPM_HEARTRATE.into(), records.iter().map(|r| r.bpm.map(|b| b.heartrate)).collect::<Vec<_>>()),
        ],
    )?)
}

/// Splits `text` into about `parts` pieces at line boundaries, with the 1-based number of each
/// piece's first line.
fn split_at_lines(text: &[u8], parts: usize, first_line: u64) -> Vec<(u64, &[u8])> {
    let mut out = Vec::with_capacity(parts);
    let target = text.len().div_ceil(parts.max(1)).max(1);
    let mut start = 0;
    let mut line = first_line;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        let piece = &text[start..end];
        out.push((line, piece));
        line += piece.iter().filter(|&&b| b == b'\n').count() as u64;
        start = end;
    }
    out
}

/// Parses a multiplex file on up to `options.threads` threads. A leading byte-order mark and
/// blank lines are skipped; malformed envelopes, bad payloads, unknown topics, times outside
/// the plausible window, lines that are not UTF-8 and lines over the limit are quarantined,
/// each alone.
///
/// ```
/// let text = concat!(
///     r#"{"key":"1","value":"{\"device_id\": 1, \"time\": 1678521600.5, \"heartrate\": 70.0}","topic":"bpm","partition":0,"offset":1,"timestamp":1678521600500}"#,
///     "\n",
///     r#"{"key":"1","value":"{}","topic":"weather","partition":0,"offset":2,"timestamp":1678521600500}"#,
/// );
/// let options = fitlake_landing::ReadOptions { threads: 2, ..Default::default() };
/// let parsed = fitlake_landing::multiplex::parse_kafka_multiplex(text.as_bytes(), "3-bpm_1.json", &options)?;
/// assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (1, 1));
/// # Ok::<(), fitlake_landing::Error>(())
/// ```
pub fn parse_kafka_multiplex(text: &[u8], source_file: &str, options: &ReadOptions) -> Result<Parsed> {
    // Line numbers count from the file's start; the mark is not a line of its own.
    parse_kafka_multiplex_lines(strip_bom(text), source_file, 1, options)
}

/// Parses whole lines of a multiplex file whose first is line `first_line` (a
/// [`Chunk`](crate::chunks::Chunk) of a file read in chunks), as [`parse_kafka_multiplex`] does.
pub fn parse_kafka_multiplex_lines(
    text: &[u8],
    source_file: &str,
    first_line: u64,
    options: &ReadOptions,
) -> Result<Parsed> {
    let pieces = split_at_lines(text, options.threads, first_line);
    let results: Vec<Result<(DataFrame, Vec<Quarantined>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(first_line, piece)| {
                s.spawn(move || {
                    let mut good = Vec::new();
                    let mut bad = Vec::new();
                    for (i, raw) in piece.split(|&b| b == b'\n').enumerate() {
                        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                        let line = first_line + i as u64;
                        if raw.trim_ascii().is_empty() {
                            continue;
                        }
                        if raw.len() > options.max_line_bytes {
                            bad.push(oversized(source_file, line, raw, options.max_line_bytes, "line"));
                            continue;
                        }
                        match utf8_line(raw).and_then(|text| parse_envelope(text, &options.window)) {
                            Ok(r) => good.push(r),
                            Err(reason) => bad.push(Quarantined {
                                source_file: source_file.to_string(),
                                line,
                                raw: String::from_utf8_lossy(raw).into_owned(),
                                reason,
                            }),
                        }
                    }
                    Ok((records_frame(&good)?, bad))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut frames = Vec::with_capacity(results.len());
    let mut quarantined = Vec::new();
    for result in results {
        let (frame, bad) = result?;
        frames.push(frame.lazy());
        quarantined.extend(bad);
    }
    let rows = if frames.is_empty() {
        records_frame(&[])?
    } else {
        concat(frames, UnionArgs { rechunk: false, ..Default::default() })?.collect()?
    };
    Ok(Parsed { rows, quarantined })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_line_numbers() {
        let text = "a\nb\n\nc\nd";
        let pieces = split_at_lines(text.as_bytes(), 3, 1);
        let joined: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        assert_eq!(joined, text.as_bytes());
        for (first, piece) in pieces {
            let piece = std::str::from_utf8(piece).unwrap_or_default();
            let expected = text[..text.find(piece).unwrap_or(0)].matches('\n').count() as u64 + 1;
            assert_eq!(first, expected);
        }
    }
}

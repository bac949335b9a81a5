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

use crate::quarantine::{micros_column, oversized, strip_bom, utf8_line, Parsed, Quarantined};
use crate::scan::{self, EnvelopeFields, Number};
use crate::time::{kafka_number_to_micros, TimeWindow, Unit, KAFKA_SECONDS_LIMIT};
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

/// The fields of an envelope line by the general path: serde, any valid JSON.
fn general_fields(line: &str) -> std::result::Result<EnvelopeFields<'_>, String> {
    let envelope: Envelope = serde_json::from_str(line).map_err(|e| format!("envelope: {e}"))?;
    let value =
        text_of(envelope.value).map_err(|e| format!("value: {e}"))?.ok_or_else(|| "value is null".to_string())?;
    Ok(EnvelopeFields {
        key: match envelope.key {
            Some(k) => text_of(k).map_err(|e| format!("key: {e}"))?,
            None => None,
        },
        value,
        topic: envelope.topic,
        partition: envelope.partition,
        offset: envelope.offset,
        timestamp: Number::of(envelope.timestamp.get()),
    })
}

/// One envelope line, its timestamp checked against `window` and its payload validated against
/// its topic's schema; the error is the quarantine reason. The common shape is taken apart by
/// a scanner ([`crate::scan`]), anything else by serde.
pub fn parse_envelope<'a>(line: &'a str, window: &TimeWindow) -> std::result::Result<Record<'a>, String> {
    let fields = match scan::envelope(line) {
        Some(fields) => fields,
        None => general_fields(line)?,
    };
    let raw_timestamp = fields.timestamp.text;
    let timestamp = kafka_number_to_micros(raw_timestamp, fields.timestamp.plain)
        .ok_or_else(|| format!("timestamp: {raw_timestamp} is not epoch milliseconds or seconds"))?;
    if !window.contains(timestamp) {
        // The unit the number was read in only shapes the refusal's hint.
        let unit = match raw_timestamp.trim().parse::<f64>() {
            Ok(v) if v.abs() >= KAFKA_SECONDS_LIMIT as f64 => Unit::Milliseconds,
            _ => Unit::Seconds,
        };
        window.check("timestamp", timestamp.into(), raw_timestamp, unit)?;
    }
    let bpm = if fields.topic == topics::BPM {
        Some(decode_bpm(&fields.value, window)?)
    } else {
        validate_value(&fields.topic, &fields.value, window)?;
        None
    };
    Ok(Record {
        key: fields.key,
        value: fields.value,
        topic: fields.topic,
        partition: fields.partition,
        offset: fields.offset,
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

/// A multiplex frame's columns, filled one record at a time while the lines are scanned (the
/// record's strings are copied once, into the column's buffer).
struct Columns {
    key: StringChunkedBuilder,
    value: StringChunkedBuilder,
    topic: StringChunkedBuilder,
    partition: Vec<i64>,
    offset: Vec<i64>,
    timestamp: Vec<i64>,
    bpm_device_id: PrimitiveChunkedBuilder<Int64Type>,
    bpm_time: PrimitiveChunkedBuilder<Int64Type>,
    bpm_heartrate: PrimitiveChunkedBuilder<Float64Type>,
}

impl Columns {
    fn with_capacity(rows: usize) -> Self {
        Columns {
            key: StringChunkedBuilder::new("key".into(), rows),
            value: StringChunkedBuilder::new("value".into(), rows),
            topic: StringChunkedBuilder::new("topic".into(), rows),
            partition: Vec::with_capacity(rows),
            offset: Vec::with_capacity(rows),
            timestamp: Vec::with_capacity(rows),
            bpm_device_id: PrimitiveChunkedBuilder::new(BPM_DEVICE_ID.into(), rows),
            bpm_time: PrimitiveChunkedBuilder::new(BPM_TIME.into(), rows),
            bpm_heartrate: PrimitiveChunkedBuilder::new(BPM_HEARTRATE.into(), rows),
        }
    }

    fn push(&mut self, record: &Record<'_>) {
        self.key.append_option(record.key.as_deref());
        self.value.append_value(&record.value);
        self.topic.append_value(&record.topic);
        self.partition.push(record.partition);
        self.offset.push(record.offset);
        self.timestamp.push(record.timestamp);
        self.bpm_device_id.append_option(record.bpm.map(|b| b.device_id));
        self.bpm_time.append_option(record.bpm.map(|b| b.time));
        self.bpm_heartrate.append_option(record.bpm.map(|b| b.heartrate));
    }

    fn frame(self) -> Result<DataFrame> {
        let rows = self.partition.len();
        Ok(DataFrame::new(
            rows,
            vec![
                self.key.finish().into_column(),
                self.value.finish().into_column(),
                self.topic.finish().into_column(),
                Column::new("partition".into(), self.partition),
                Column::new("offset".into(), self.offset),
                micros_column(Int64Chunked::from_vec("timestamp".into(), self.timestamp)),
                self.bpm_device_id.finish().into_column(),
                micros_column(self.bpm_time.finish()),
                self.bpm_heartrate.finish().into_column(),
            ],
        )?)
    }
}

/// Splits `text` into about `parts` pieces at line boundaries.
fn split_at_lines(text: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(parts);
    let target = text.len().div_ceil(parts.max(1)).max(1);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        out.push(&text[start..end]);
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
    let pieces = split_at_lines(text, options.threads);
    // Each piece numbers its lines from 0 and counts its line ends as it finds them; the
    // numbers are made the file's below, from the pieces' counts (no pass counting lines first).
    let results: Vec<Result<(DataFrame, Vec<Quarantined>, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&piece| {
                s.spawn(move || {
                    // About as many rows as the piece has lines (envelopes are rarely shorter),
                    // readings apart from the other topics: the piece's rows come grouped by
                    // topic, so bronze writes each topic's partition from a slice of them
                    // instead of copying every column apart.
                    let mut readings = Columns::with_capacity(piece.len() / 128);
                    let mut others = Columns::with_capacity(0);
                    let mut bad = Vec::new();
                    let mut start = 0;
                    let mut line_ends = 0;
                    let ends = memchr::memchr_iter(b'\n', piece).chain(std::iter::once(piece.len()));
                    for (i, end) in ends.enumerate() {
                        let raw = &piece[start..end];
                        start = end + 1;
                        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                        // The last `end` is the piece's own, not a line end.
                        let line = i as u64;
                        line_ends = line;
                        if raw.trim_ascii().is_empty() {
                            continue;
                        }
                        if raw.len() > options.max_line_bytes {
                            bad.push(oversized(source_file, line, raw, options.max_line_bytes, "line"));
                            continue;
                        }
                        match utf8_line(raw).and_then(|text| parse_envelope(text, &options.window)) {
                            Ok(r) if r.bpm.is_some() => readings.push(&r),
                            Ok(r) => others.push(&r),
                            Err(reason) => bad.push(Quarantined {
                                source_file: source_file.to_string(),
                                line,
                                raw: String::from_utf8_lossy(raw).into_owned(),
                                reason,
                            }),
                        }
                    }
                    let mut rows = readings.frame()?;
                    if !others.partition.is_empty() {
                        rows.vstack_mut_owned(others.frame()?)?;
                    }
                    Ok((rows, bad, line_ends))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut frames = Vec::with_capacity(results.len());
    let mut quarantined = Vec::new();
    let mut piece_first_line = first_line;
    for result in results {
        let (frame, bad, line_ends) = result?;
        frames.push(frame.lazy());
        quarantined.extend(bad.into_iter().map(|q| Quarantined { line: piece_first_line + q.line, ..q }));
        piece_first_line += line_ends;
    }
    let rows = if frames.is_empty() {
        Columns::with_capacity(0).frame()?
    } else {
        concat(frames, UnionArgs { rechunk: false, ..Default::default() })?.collect()?
    };
    Ok(Parsed { rows, quarantined })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON text of one piece of an envelope or payload, valid or not, common or odd.
    fn piece(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
        proptest::sample::select(choices).prop_map(str::to_string)
    }

    fn space() -> impl Strategy<Value = String> {
        piece(&["", "", "", " ", "\t", "  \r\n "])
    }

    /// An object of `fields` (name, value) in a random order, perhaps with one field repeated,
    /// dropped or unknown, and random space between tokens.
    fn object(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> impl Strategy<Value = String> {
        let n = fields.len();
        let values: Vec<BoxedStrategy<(&'static str, String)>> =
            fields.into_iter().map(|(name, v)| v.prop_map(move |v| (name, v)).boxed()).collect();
        (values, proptest::collection::vec(space(), 4 * n + 8), 0..n + 4, any::<u64>()).prop_map(
            move |(mut pairs, spaces, odd, seed)| {
                match odd {
                    o if o < n && seed % 3 == 0 => pairs.push(pairs[o].clone()),
                    o if o < n && seed % 3 == 1 => {
                        pairs.remove(o);
                    }
                    o if o == n => pairs.push(("extra", "1".to_string())),
                    _ => {}
                }
                let len = pairs.len();
                for i in 0..len {
                    pairs.swap(i, (seed as usize / (i + 1)) % len);
                }
                let mut sp = spaces.into_iter().cycle();
                let mut text = format!("{}{{", sp.next().unwrap_or_default());
                for (i, (name, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    let (a, b, c) =
                        (sp.next().unwrap_or_default(), sp.next().unwrap_or_default(), sp.next().unwrap_or_default());
                    text.push_str(&format!("{a}\"{name}\"{b}:{c}{value}"));
                }
                text.push_str(&format!("{}}}{}", sp.next().unwrap_or_default(), sp.next().unwrap_or_default()));
                text
            },
        )
    }

    fn bpm_payload() -> impl Strategy<Value = String> {
        object(vec![
            ("device_id", piece(&["1", "-5", "0", "1.0", "1e3", "01", "9223372036854775808", "\"7\"", "null"]).boxed()),
            (
                "time",
                piece(&[
                    "1678521600.5",
                    "1678521600",
                    "1.6785216e9",
                    "-0",
                    "\"2023-03-11T08:00:00Z\"",
                    "1678521600.",
                    "true",
                ])
                .boxed(),
            ),
            (
                "heartrate",
                piece(&["70", "70.25", "1e400", "-0.0", "\"70\"", "72.123456789012345678", "4.9e-324", "00.5"]).boxed(),
            ),
        ])
    }

    /// A JSON string holding `text`, escaped as Kafka tools write it (or with a `\u` escape).
    fn json_string(text: &str, unicode: bool) -> String {
        let quoted = serde_json::to_string(text).unwrap_or_default();
        if unicode {
            quoted.replacen('{', "\\u007b", 1)
        } else {
            quoted
        }
    }

    fn envelope_line() -> impl Strategy<Value = String> {
        (bpm_payload(), any::<bool>(), 0..6u8).prop_flat_map(|(payload, unicode, value_kind)| {
            let value = match value_kind {
                0 => payload.clone(),
                1 => "null".to_string(),
                _ => json_string(&payload, unicode),
            };
            object(vec![
                ("key", piece(&["\"123\"", "null", "123", "\"a\\\"b\"", "\"\\u0041\"", "\"\\/\""]).boxed()),
                ("value", Just(value).boxed()),
                ("topic", piece(&["\"bpm\"", "\"workout\"", "\"b\\u0070m\"", "7"]).boxed()),
                ("partition", piece(&["0", "3", "-1", "-0", "2.0", "99999999999999999999"]).boxed()),
                ("offset", piece(&["0", "123456", "1e2"]).boxed()),
                (
                    "timestamp",
                    piece(&["1678521600500", "1678521600", "1678521600.5", "\"1678521600500\"", "-0"]).boxed(),
                ),
            ])
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Wherever the scanner answers, serde gives the same fields.
        #[test]
        fn the_scanner_agrees_with_serde(line in envelope_line()) {
            if let Some(fast) = scan::envelope(&line) {
                let general = general_fields(&line);
                prop_assert_eq!(Ok(&fast), general.as_ref(), "{}", line);
            }
        }

        #[test]
        fn the_bpm_scanner_agrees_with_serde(payload in bpm_payload()) {
            if let Some((device, time, heartrate)) = scan::bpm(&payload) {
                let (d, t, h) = crate::value::general_bpm(&payload).map_err(TestCaseError::fail)?;
                prop_assert_eq!((device, time, heartrate.to_bits()), (d, t, h.to_bits()), "{}", payload);
                prop_assert_eq!(time, Number::of(time.text), "{}", payload);
            }
        }
    }

    #[test]
    fn the_scanner_takes_the_common_shapes() {
        let generated = r#"{"key": "1", "value": "{\"device_id\": 1, \"time\": 1678521600.5, \"heartrate\": 70.0}", "topic": "bpm", "partition": 0, "offset": 1, "timestamp": 1678521600500}"#;
        let dense = r#"{"topic":"bpm","partition":3,"offset":7,"timestamp":1678665662000,"key":"200200","value":"{\"device_id\": 200200, \"time\": 1678665662.25, \"heartrate\": 81.5}"}"#;
        for line in [generated, dense] {
            let fields = scan::envelope(line).expect("the common envelope shape");
            assert_eq!(Ok(&fields), general_fields(line).as_ref());
            assert!(scan::bpm(&fields.value).is_some());
        }
    }

    #[test]
    fn split_cuts_at_line_ends_only() {
        let text = "a\nb\n\nc\nd";
        let pieces = split_at_lines(text.as_bytes(), 3);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), text.as_bytes());
        let (last, whole) = pieces.split_last().expect("pieces");
        assert!(whole.iter().all(|piece| piece.ends_with(b"\n")));
        assert!(!last.is_empty());
    }

    /// Each piece's rows come readings first, then the other topics, each in line order (what
    /// lets bronze write a topic's partition from a slice), and no row is lost or duplicated.
    #[test]
    fn a_piece_groups_its_rows_by_topic_in_line_order() {
        let line = |offset: usize| match offset % 5 {
            0 => format!(
                r#"{{"key":"1","value":"{{\"user_id\": 1, \"workout_id\": {offset}, \"timestamp\": 1678521600.0, \"action\": \"start\", \"session_id\": 1}}","topic":"workout","partition":0,"offset":{offset},"timestamp":1678521600000}}"#
            ),
            _ => format!(
                r#"{{"key":"1","value":"{{\"device_id\": 1, \"time\": 1678521600.5, \"heartrate\": 70.0}}","topic":"bpm","partition":0,"offset":{offset},"timestamp":1678521600500}}"#
            ),
        };
        let text: String = (0..40).map(|i| line(i) + "\n").collect();
        let options = ReadOptions { threads: 1, ..Default::default() };
        let parsed = parse_kafka_multiplex(text.as_bytes(), "f.json", &options).expect("parse");
        assert!(parsed.quarantined.is_empty(), "{:?}", parsed.quarantined);
        let topics: Vec<&str> =
            parsed.rows.column("topic").expect("topic").str().expect("strings").iter().flatten().collect();
        let offsets: Vec<i64> =
            parsed.rows.column("offset").expect("offset").i64().expect("integers").into_no_null_iter().collect();
        let bpm: Vec<i64> = (0..40).filter(|i| i % 5 != 0).collect();
        let workout: Vec<i64> = (0..40).filter(|i| i % 5 == 0).collect();
        assert_eq!(offsets, [bpm.clone(), workout.clone()].concat());
        assert_eq!(topics, [vec!["bpm"; bpm.len()], vec!["workout"; workout.len()]].concat());
    }
}

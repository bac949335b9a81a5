//! Device events posted to the HTTP API, turned into multiplex envelopes: one request body (a
//! JSON object, a JSON array of objects, or NDJSON) of one topic in, the envelope lines of its
//! valid records and the reason for each invalid one out. Pure: the caller gives the offsets
//! and the receive time.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::topics;
use crate::value::validate_value;

/// What became of one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelopes {
    /// The envelopes of the valid records, one JSON line each (NDJSON, as landing files are).
    pub ndjson: String,
    /// How many records were valid.
    pub accepted: usize,
    /// (record index from 0, reason) of every invalid record.
    pub rejected: Vec<(usize, String)>,
}

/// The field that keys a topic's envelopes, as in the original producer's files.
fn key_field(topic: &str) -> &'static str {
    match topic {
        topics::BPM => "device_id",
        _ => "user_id",
    }
}

/// The records of a body, as their raw JSON text (never re-serialized, so numbers such as
/// times keep every digit): a JSON array's elements, or one record per non-blank line. A body
/// of more than `max_records` records is refused whole, without holding them all.
fn records(body: &str, max_records: usize) -> Result<Vec<Result<String, String>>, String> {
    let too_many = || format!("more than {max_records} records in one request: send fewer per request");
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let mut deserializer = serde_json::Deserializer::from_str(trimmed);
        let parsed = serde::Deserializer::deserialize_seq(&mut deserializer, AtMost(max_records))
            .and_then(|records| deserializer.end().map(|()| records));
        return match parsed {
            Ok(values) => Ok(values.into_iter().map(Ok).collect()),
            Err(e) if e.to_string().starts_with(TOO_MANY) => Err(too_many()),
            Err(e) => Ok(vec![Err(format!("the body is not a JSON array: {e}"))]),
        };
    }
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        if out.len() == max_records {
            return Err(too_many());
        }
        out.push(
            serde_json::from_str::<Box<RawValue>>(line)
                .map(|v| v.get().to_string())
                .map_err(|e| format!("not JSON: {e}")),
        );
    }
    Ok(out)
}

const TOO_MANY: &str = "too many records";

/// A JSON array's elements as raw text, refused past a count.
struct AtMost(usize);

impl<'de> serde::de::Visitor<'de> for AtMost {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(value) = seq.next_element::<Box<RawValue>>()? {
            if out.len() == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            out.push(value.get().to_string());
        }
        Ok(out)
    }
}

/// Validates the records of `body` for `topic` and wraps the valid ones in envelopes with
/// offsets from `first_offset` and timestamp `received_ms` (epoch milliseconds).
pub fn envelopes(topic: &str, body: &str, first_offset: i64, received_ms: i64) -> Envelopes {
    envelopes_at_most(topic, body, first_offset, received_ms, usize::MAX).unwrap_or_else(|reason| Envelopes {
        ndjson: String::new(),
        accepted: 0,
        rejected: vec![(0, reason)],
    })
}

/// [`envelopes`] of a body of at most `max_records` records; a larger body is refused whole
/// (the reason says how many are allowed).
pub fn envelopes_at_most(
    topic: &str,
    body: &str,
    first_offset: i64,
    received_ms: i64,
    max_records: usize,
) -> Result<Envelopes, String> {
    let mut out = Envelopes { ndjson: String::new(), accepted: 0, rejected: Vec::new() };
    for (index, record) in records(body, max_records)?.into_iter().enumerate() {
        let checked = record.and_then(|text| {
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&text) else {
                return Err("a record must be a JSON object".to_string());
            };
            validate_value(topic, &text, &crate::TimeWindow::default())?;
            let key = match fields.get(key_field(topic)) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => return Err(format!("{} is missing", key_field(topic))),
            };
            Ok((key, text))
        });
        match checked {
            Ok((key, text)) => {
                let envelope = serde_json::json!({
                    "key": key,
                    "value": text,
                    "topic": topic,
                    "partition": 0,
                    "offset": first_offset + out.accepted as i64,
                    "timestamp": received_ms,
                });
                out.ndjson.push_str(&envelope.to_string());
                out.ndjson.push('\n');
                out.accepted += 1;
            }
            Err(reason) => out.rejected.push((index, reason)),
        }
    }
    Ok(out)
}

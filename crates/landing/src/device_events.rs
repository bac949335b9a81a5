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
/// times keep every digit): a JSON array's elements, or one record per non-blank line.
fn records(body: &str) -> Vec<Result<String, String>> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Vec<Box<RawValue>>>(trimmed) {
            Ok(values) => values.into_iter().map(|v| Ok(v.get().to_string())).collect(),
            Err(e) => vec![Err(format!("the body is not a JSON array: {e}"))],
        };
    }
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Box<RawValue>>(l).map(|v| v.get().to_string()).map_err(|e| format!("not JSON: {e}"))
        })
        .collect()
}

/// Validates the records of `body` for `topic` and wraps the valid ones in envelopes with
/// offsets from `first_offset` and timestamp `received_ms` (epoch milliseconds).
pub fn envelopes(topic: &str, body: &str, first_offset: i64, received_ms: i64) -> Envelopes {
    let mut out = Envelopes { ndjson: String::new(), accepted: 0, rejected: Vec::new() };
    for (index, record) in records(body).into_iter().enumerate() {
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
    out
}

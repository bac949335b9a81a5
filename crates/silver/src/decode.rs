//! Typed payloads from `kafka_multiplex_bz` rows of one topic.

use fitlake_landing::value::{decode_bpm_values, decode_user_info_values, decode_workout_values, Decoded};
use fitlake_landing::{topics, Quarantined};
use polars::prelude::*;

use crate::Result;

/// Decodes the `value` of bronze multiplex rows of `topic` into typed rows (columns as in
/// [`fitlake_landing::value`]); values that fail (bronze validated them, so only a foreign
/// writer could cause this) come back as quarantine records located by partition and offset.
pub fn decode_topic(bronze_rows: &DataFrame, topic: &str, threads: usize) -> Result<(DataFrame, Vec<Quarantined>)> {
    let values = bronze_rows.column("value")?.str()?;
    let values: Vec<Option<&str>> = values.iter().collect();
    let Decoded { rows, failures } = match topic {
        topics::BPM => decode_bpm_values(&values, threads)?,
        topics::WORKOUT => decode_workout_values(&values, threads)?,
        _ => decode_user_info_values(&values, threads)?,
    };
    let quarantined = failures
        .into_iter()
        .map(|(i, reason)| {
            let text = |name: &str| {
                bronze_rows
                    .column(name)
                    .ok()
                    .and_then(|c| c.get(i).ok())
                    .map(|v| v.str_value().to_string())
                    .unwrap_or_default()
            };
            Quarantined {
                source_file: text("source_file"),
                line: text("offset").parse().unwrap_or(0),
                raw: text("value"),
                reason: format!("{topic} partition {} offset {}: {reason}", text("partition"), text("offset")),
            }
        })
        .collect();
    Ok((rows.drop("row")?, quarantined))
}

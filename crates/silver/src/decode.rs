//! Typed payloads from `kafka_multiplex_bz` rows of one topic: `bpm` from the typed columns
//! bronze wrote when it validated the payload (parsed once), anything else, and rows written
//! before bronze kept those columns, from the `value` JSON.

use fitlake_landing::multiplex::{BPM_DEVICE_ID, BPM_HEARTRATE, BPM_TIME};
use fitlake_landing::value::{decode_bpm_values, decode_user_info_values, decode_workout_values, Decoded};
use std::collections::BTreeMap;

use fitlake_landing::{topics, Quarantined, ReadOptions};
use polars::prelude::*;

use crate::Result;

/// Decodes the `value` of bronze multiplex rows of `topic` into typed rows (columns as in
/// [`fitlake_landing::value`]); values that fail (bronze validated them, so only a foreign
/// writer could cause this) come back as quarantine records located by partition and offset.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// let bronze = df!(
///     "value" => [r#"{"device_id": 1, "time": 1678521600.5, "heartrate": 70.0}"#, "not json"],
///     "source_file" => ["f", "f"], "partition" => [0i64, 0], "offset" => [1i64, 2],
/// )?;
/// let decoded = fitlake_silver::decode_topic(&bronze, "bpm", &Default::default())?;
/// assert_eq!((decoded.rows.height(), decoded.quarantined.len()), (1, 1));
/// assert!(decoded.quarantined[0].reason.starts_with("bpm partition 0 offset 2"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_topic(bronze_rows: &DataFrame, topic: &str, options: &ReadOptions) -> Result<DecodedTopic> {
    if topic == topics::BPM {
        if let Some(typed) = typed_bpm(bronze_rows)? {
            return Ok(typed);
        }
    }
    let values = bronze_rows.column("value")?.str()?;
    let values: Vec<Option<&str>> = values.iter().collect();
    let Decoded { rows, failures, unusable } = match topic {
        topics::BPM => decode_bpm_values(&values, options)?,
        topics::WORKOUT => decode_workout_values(&values, options)?,
        _ => decode_user_info_values(&values, options)?,
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
    Ok(DecodedTopic { rows: rows.drop("row")?, quarantined, unusable })
}

/// The bronze columns every `bpm` row has since bronze began keeping its payload typed (null
/// in rows an older fitlake wrote, which are decoded from `value`).
pub const TYPED_BPM_COLUMNS: [&str; 3] = [BPM_DEVICE_ID, BPM_TIME, BPM_HEARTRATE];

/// `bpm` rows from the typed payload columns bronze wrote (no JSON parsing), when every row has
/// them; `None` when any row lacks them (written before bronze kept them) or they are absent.
/// ```
/// # use fitlake_silver::polars::prelude::*;
/// let time = Column::new("bpm_time".into(), [1_678_521_600_500_000i64])
///     .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
/// let bronze = DataFrame::new(1, vec![
///     Column::new("bpm_device_id".into(), [1i64]), time, Column::new("bpm_heartrate".into(), [70.0f64]),
/// ])?;
/// let decoded = fitlake_silver::decode_topic(&bronze, "bpm", &Default::default())?;
/// assert_eq!(decoded.rows.get_column_names(), ["device_id", "time", "heartrate"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn typed_bpm(bronze_rows: &DataFrame) -> Result<Option<DecodedTopic>> {
    for name in TYPED_BPM_COLUMNS {
        match bronze_rows.column(name) {
            Ok(column) if column.null_count() == 0 => {}
            _ => return Ok(None),
        }
    }
    let rows = bronze_rows
        .select(TYPED_BPM_COLUMNS)?
        .lazy()
        .rename(TYPED_BPM_COLUMNS, ["device_id", "time", "heartrate"], true)
        .collect()?;
    Ok(Some(DecodedTopic { rows, quarantined: Vec::new(), unusable: BTreeMap::new() }))
}

/// The rows [`decode_topic`] decoded, and the values it could not.
#[derive(Debug, Clone)]
pub struct DecodedTopic {
    /// Typed rows, one per decoded value.
    pub rows: DataFrame,
    /// The values that failed, as quarantine records.
    pub quarantined: Vec<Quarantined>,
    /// How many decoded rows had each optional field unusable (read as null), by field name.
    pub unusable: BTreeMap<&'static str, u64>,
}

//! `fitlake produce`: drops landing files into the landing zone, like the original producer.
//!
//! Every file is written whole under its final name in one atomic put, so a concurrent run
//! never sees half a file.

use std::fmt::Write as _;

use fitlake_governance::policy::Zone;
use fitlake_landing::seed::SEED_SETS;
use fitlake_landing::sources::{GYM_LOGINS, KAFKA_MULTIPLEX, REGISTERED_USERS};
use fitlake_landing::synthetic::{generate, interleave_by_time, seed_visits, write_bpm_envelopes, Synthetic};
use fitlake_pipeline::{Error, Result};
use fitlake_sources::kafka::KafkaSource;
use fitlake_storage::{Access, Folder};

/// Name of the generated BPM file of seed set `set`.
pub fn seed_bpm_file(set: usize) -> String {
    format!("3-bpm_{set}.json")
}

/// The BPM envelopes of seed set `set` (1-based): readings of every visit in its gym logins,
/// devices known from the registrations of sets 1 to `set`.
pub fn seed_bpm(set: usize) -> Result<String> {
    let sets = SEED_SETS.get(..set).filter(|_| set >= 1).ok_or_else(|| no_such_set(set))?;
    let registrations: Vec<&str> = sets.iter().map(|s| s.registered_users.1).collect();
    let visits = seed_visits(&registrations, sets[set - 1].gym_logins.1)?;
    let mut out = String::new();
    write_bpm_envelopes(&visits, set as u64, 1_000_000 * set as i64, &mut out);
    Ok(out)
}

fn no_such_set(set: usize) -> Error {
    Error::Config(format!("there is no seed set {set}; the seed sets are 1 to {}", SEED_SETS.len()))
}

/// Writes seed set `set` (and its generated BPM readings) into the landing zone as `access`'s
/// principal (`WRITE FILES` on landing); returns the files written.
pub async fn produce_seed_set(access: &Access, set: usize, sink: &MultiplexSink) -> Result<Vec<String>> {
    let seed = SEED_SETS.get(set.wrapping_sub(1)).ok_or_else(|| no_such_set(set))?;
    let bpm = seed_bpm(set)?;
    let files = [
        (REGISTERED_USERS, seed.registered_users.0, seed.registered_users.1.to_string()),
        (GYM_LOGINS, seed.gym_logins.0, seed.gym_logins.1.to_string()),
        (KAFKA_MULTIPLEX, seed.user_info.0, seed.user_info.1.to_string()),
        (KAFKA_MULTIPLEX, seed.workouts.0, seed.workouts.1.to_string()),
        (KAFKA_MULTIPLEX, &seed_bpm_file(set), bpm),
    ];
    let mut written = Vec::new();
    for (source, name, text) in files {
        written.push(put(access, sink, source, name, text).await?);
    }
    Ok(written)
}

/// Where produced multiplex records go.
pub enum MultiplexSink {
    /// Files in the landing zone.
    Landing,
    /// The topics of a Kafka cluster (created when missing).
    Kafka(KafkaSource, rskafka::client::Client),
}

impl MultiplexSink {
    /// The topics of the cluster at `source`, creating missing ones with `partitions`
    /// partitions.
    pub async fn kafka(source: KafkaSource, partitions: i32) -> Result<MultiplexSink> {
        if partitions < 1 {
            return Err(Error::Config("--partitions must be at least 1".into()));
        }
        let client = source.connect().await?;
        source.create_topics(&client, partitions).await?;
        Ok(MultiplexSink::Kafka(source, client))
    }
}

/// Writes `text` for `source` as landing file `name`, or publishes it when it is multiplex text
/// and `sink` is Kafka; returns what was done, for the report.
async fn put(access: &Access, sink: &MultiplexSink, source: &str, name: &str, text: String) -> Result<String> {
    match sink {
        MultiplexSink::Kafka(kafka, client) if source == KAFKA_MULTIPLEX => {
            let records = kafka.publish(client, &text).await?;
            Ok(format!("kafka: {records} records from {name}"))
        }
        _ => {
            Folder::zone(access, Zone::Landing, &access.lakehouse.landing_url(source))?
                .write(name, text.into_bytes())
                .await?;
            Ok(format!("{source}/{name}"))
        }
    }
}

/// How generated multiplex records are split into landing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Profile and workout events in one file, BPM readings in files of whole gym visits of
    /// about `readings_per_file` readings (a bulk export).
    ByVisit,
    /// Every multiplex record in event-time order, in files of `readings_per_file` records (a
    /// live stream: each file is the next slice of time across all devices).
    TimeOrdered,
}

/// Writes a synthetic data set into the landing zone, split as `layout` says; returns the
/// files written and the number of BPM readings.
pub async fn produce_synthetic(
    access: &Access,
    sink: &MultiplexSink,
    options: Synthetic,
    readings_per_file: u64,
    layout: Layout,
) -> Result<(Vec<String>, u64)> {
    let set = generate(options)?;
    let tag = format!("gen-{}-{}", options.seed, options.start.format("%Y%m%d"));
    let mut written = Vec::new();
    let mut small = vec![
        (REGISTERED_USERS, format!("{tag}-registered_users.csv"), set.registered_users_csv),
        (GYM_LOGINS, format!("{tag}-gym_logins.csv"), set.gym_logins_csv),
    ];
    let mut readings = 0u64;
    let mut offset = 0i64;
    let mut parts: Vec<String> = Vec::new();
    match layout {
        Layout::ByVisit => {
            small.push((KAFKA_MULTIPLEX, format!("{tag}-events.json"), set.events_jsonl));
            let mut chunk = String::new();
            let mut chunk_readings = 0u64;
            for (i, visit) in set.visits.iter().enumerate() {
                let next = write_bpm_envelopes(std::slice::from_ref(visit), options.seed, offset, &mut chunk);
                chunk_readings += (next - offset) as u64;
                offset = next;
                if chunk_readings >= readings_per_file || i + 1 == set.visits.len() {
                    parts.push(std::mem::take(&mut chunk));
                    readings += chunk_readings;
                    chunk_readings = 0;
                }
            }
        }
        Layout::TimeOrdered => {
            let mut bpm = String::new();
            offset = write_bpm_envelopes(&set.visits, options.seed, 1_000_000_000, &mut bpm);
            readings = (offset - 1_000_000_000) as u64;
            let lines = interleave_by_time(&[&set.events_jsonl, &bpm]);
            for chunk in lines.chunks(readings_per_file.max(1) as usize) {
                let mut text = chunk.join("\n");
                text.push('\n');
                parts.push(text);
            }
        }
    }
    for (source, name, text) in small {
        written.push(put(access, sink, source, &name, text).await?);
    }
    for (part, text) in parts.into_iter().enumerate() {
        let mut name = String::new();
        let _ = write!(name, "{tag}-bpm-{part:05}.json");
        written.push(put(access, sink, KAFKA_MULTIPLEX, &name, text).await?);
    }
    Ok((written, readings))
}

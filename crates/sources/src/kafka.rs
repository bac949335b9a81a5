//! Kafka as the multiplex source (`--source kafka --brokers HOST:PORT`) and as a destination of
//! `fitlake produce --to kafka`.
//!
//! The consumer reads topics `user_info`, `workout` and `bpm`, every partition, and keeps no
//! state of its own: the next offset of each partition is stored in the bronze commit as a `txn`
//! action (`fitlake/kafka_multiplex_bz/kafka/<topic>/<partition>` = next offset), together
//! with the rows, so a consumer killed at any point and restarted neither skips nor repeats a
//! record. Topics and partitions are listed again for every batch, so ones created later are
//! picked up (from their earliest offset). Records are rendered as the landing multiplex's
//! envelopes and parsed by the same parser, so they are validated and quarantined the same
//! way; a quarantined record is named `kafka:<topic>/<partition>` with its offset as the line.
//!
//! The connection is plain, TLS, SASL or SASL over TLS ([`KafkaSecurity`], Kafka's
//! `security.protocol`): TLS through rustls, brokers verified against the system's certificate
//! authorities and a CA file; SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Azure Event Hubs'
//! Kafka endpoint: SASL_SSL, PLAIN, user `$ConnectionString`, the connection string as password).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use fitlake_config::Secret;
use fitlake_landing::topics;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;

use crate::{Error, Part, RecordSource, Result, SourceReader};

/// Where the Kafka cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSource {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// How [`KafkaSource::publish`] compresses its batches (reading takes every codec).
    pub compression: Codec,
    /// How the connection is protected and who fitlake is to the brokers.
    pub security: KafkaSecurity,
}

/// TLS and SASL settings of a Kafka connection, as Kafka's `security.protocol`
/// (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) and `sasl.mechanism` set them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// TLS to every broker: `Some` with an optional PEM file of certificate authorities trusted
    /// besides the system's. Brokers' certificates and names are always verified.
    pub tls: Option<Option<PathBuf>>,
    /// SASL authentication, if any.
    pub sasl: Option<Sasl>,
}

/// A SASL mechanism and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password (for Event Hubs, the connection string).
    pub password: Secret,
}

/// The SASL mechanisms fitlake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (the password itself is sent, so only over TLS).
    Plain,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

impl KafkaSecurity {
    /// Checks the combination: SASL PLAIN sends the password as it is, so it is refused
    /// without TLS; a user name must not be empty.
    pub fn check(&self) -> Result<()> {
        if let Some(sasl) = &self.sasl {
            if sasl.username.is_empty() {
                return Err(Error::Config("Kafka SASL needs a user name (--kafka-username)".into()));
            }
            if sasl.mechanism == SaslMechanism::Plain && self.tls.is_none() {
                return Err(Error::Config(
                    "SASL PLAIN would send the Kafka password unencrypted: use --kafka-security sasl-ssl, or a \
                     SCRAM mechanism"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn sasl_config(&self) -> Option<SaslConfig> {
        self.sasl.as_ref().map(|sasl| {
            let credentials = Credentials::new(sasl.username.clone(), sasl.password.expose().to_string());
            match sasl.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            }
        })
    }
}

/// A Kafka record batch compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Codec {
    /// Uncompressed.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::NoCompression,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

/// How long a Kafka connection or request is retried before the error is reported.
pub const KAFKA_RETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Most bytes one fetch request asks a partition for.
const FETCH_BYTES: i32 = 8 << 20;

/// Most records one produce request carries.
const PRODUCE_BATCH: usize = 5_000;

/// One topic partition.
pub type TopicPartition = (String, i32);

/// The records of one topic partition fetched for a batch, as multiplex envelope lines.
#[derive(Debug, Clone, Default)]
pub struct PartitionRecords {
    /// One envelope per line.
    pub text: String,
    /// The offset of each line (line `i + 1` holds `offsets[i]`).
    pub offsets: Vec<i64>,
    /// The offset to read next.
    pub next_offset: i64,
}

impl PartitionRecords {
    /// The source name rows and quarantine records of this partition carry.
    pub fn source_name((topic, partition): &TopicPartition) -> String {
        format!("kafka:{topic}/{partition}")
    }
}

/// A Kafka client error: retryable, unless the brokers refused fitlake's credentials or TLS
/// handshake, which only a change of configuration can fix.
fn kafka_error(brokers: &[String], e: impl Into<crate::BoxError>) -> Error {
    let source = e.into();
    match refused(source.as_ref()) {
        Some(why) => Error::Config(format!("kafka at {}: {why}", brokers.join(","))),
        None => Error::Kafka { brokers: brokers.join(","), source },
    }
}

/// Why the brokers refused the connection for good (SASL login, TLS handshake), if they did.
/// rskafka keeps the cause of a failed retry in a field that is not an error source, so the
/// cause is found in the message: its own SASL error, rustls' certificate errors.
fn refused(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let text = e.to_string();
    let cause = |marker: &str| text.find(marker).map(|at| text[at..].to_string());
    if let Some(cause) = cause("Sasl handshake failed") {
        return Some(format!(
            "the brokers refused fitlake's SASL login ({cause}); check --kafka-sasl-mechanism, --kafka-username and \
             the password"
        ));
    }
    cause("invalid peer certificate").or_else(|| cause("peer is incompatible")).map(|cause| {
        format!(
            "the TLS handshake failed ({cause}); check --kafka-ca-file and that the broker's certificate names the host \
             in --brokers"
        )
    })
}

impl KafkaSource {
    /// The cluster at `brokers` (`host:port[,host:port…]`); a malformed list is a configuration
    /// error.
    pub fn parse(brokers: &str) -> Result<KafkaSource> {
        let list: Vec<String> = brokers.split(',').map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
        let valid =
            |b: &String| b.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if list.is_empty() || !list.iter().all(valid) {
            return Err(Error::Config(format!(
                "--brokers {brokers:?}: give host:port of one or more brokers, comma-separated, e.g. 127.0.0.1:9092"
            )));
        }
        Ok(KafkaSource { brokers: list, compression: Codec::None, security: KafkaSecurity::default() })
    }

    /// A client of the cluster, connected as [`KafkaSource::security`] says.
    pub async fn connect(&self) -> Result<Client> {
        self.security.check()?;
        // rskafka retries a failing connection or request with backoff, forever by default: a
        // broker that stays unreachable (or refuses the handshake) for this long is reported.
        let backoff = rskafka::BackoffConfig {
            max_backoff: std::time::Duration::from_secs(5),
            deadline: Some(KAFKA_RETRY_DEADLINE),
            ..Default::default()
        };
        let mut builder = ClientBuilder::new(self.brokers.clone()).client_id("fitlake").backoff_config(backoff);
        if let Some(ca_file) = &self.security.tls {
            builder = builder.tls_config(Arc::new(crate::tls::client_config("--kafka-ca-file", ca_file.as_deref())?));
        }
        if let Some(sasl) = self.security.sasl_config() {
            builder = builder.sasl_config(sasl);
        }
        builder.build().await.map_err(|e| kafka_error(&self.brokers, e))
    }

    /// The partitions of the pipeline's topics that exist now.
    pub async fn partitions(&self, client: &Client) -> Result<Vec<TopicPartition>> {
        let listed = client.list_topics().await.map_err(|e| kafka_error(&self.brokers, e))?;
        let mut out: Vec<TopicPartition> = listed
            .into_iter()
            .filter(|t| topics::ALL.contains(&t.name.as_str()))
            .flat_map(|t| t.partitions.into_iter().map(move |p| (t.name.clone(), p)))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn partition_client(&self, client: &Client, (topic, partition): &TopicPartition) -> Result<PartitionClient> {
        client
            .partition_client(topic.clone(), *partition, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| kafka_error(&self.brokers, format!("{topic}/{partition}: {e}")))
    }

    /// The offset after the last record of each partition now (where a batch run stops).
    pub async fn end_offsets(&self, client: &Client) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut ends = BTreeMap::new();
        for tp in self.partitions(client).await? {
            let pc = self.partition_client(client, &tp).await?;
            let latest = pc.get_offset(OffsetAt::Latest).await.map_err(|e| kafka_error(&self.brokers, e))?;
            // The high watermark is what a consumer may read up to. Some brokers (tansu 0.6)
            // answer ListOffsets with the base offset of the last record batch plus one, so
            // the watermark of a fetch at that offset is the end that counts.
            let (_, high_watermark) =
                pc.fetch_records(latest, 1..2, 0).await.map_err(|e| kafka_error(&self.brokers, e))?;
            ends.insert(tp, high_watermark.max(0));
        }
        Ok(ends)
    }

    /// Fetches the records of each partition from its committed offset (its earliest one when
    /// none is committed) up to its end in `ends`, about `max_bytes` of values in all.
    pub async fn fetch(
        &self,
        client: &Client,
        committed: &BTreeMap<TopicPartition, i64>,
        ends: &BTreeMap<TopicPartition, i64>,
        max_bytes: u64,
    ) -> Result<BTreeMap<TopicPartition, PartitionRecords>> {
        let mut out = BTreeMap::new();
        let mut bytes = 0u64;
        for (tp, &end) in ends {
            if bytes >= max_bytes {
                break;
            }
            let pc = self.partition_client(client, tp).await?;
            let start = match committed.get(tp) {
                Some(&offset) => offset,
                None => pc.get_offset(OffsetAt::Earliest).await.map_err(|e| kafka_error(&self.brokers, e))?,
            };
            let mut next = start;
            let mut part = PartitionRecords { next_offset: next, ..Default::default() };
            while next < end && bytes < max_bytes {
                let (records, _high_watermark) =
                    pc.fetch_records(next, 1..FETCH_BYTES, 0).await.map_err(|e| kafka_error(&self.brokers, e))?;
                let Some(last) = records.last().map(|r| r.offset) else { break };
                for r in records.into_iter().filter(|r| r.offset >= next && r.offset < end) {
                    bytes += render_envelope(&mut part.text, &tp.0, tp.1, r.offset, &r.record);
                    part.offsets.push(r.offset);
                }
                next = (last + 1).min(end).max(next + 1);
            }
            part.next_offset = next;
            if part.next_offset > start || !committed.contains_key(tp) && !part.offsets.is_empty() {
                out.insert(tp.clone(), part);
            }
        }
        Ok(out)
    }

    /// Creates the pipeline's topics that do not exist yet, with `partitions` partitions each.
    pub async fn create_topics(&self, client: &Client, partitions: i32) -> Result<()> {
        let existing = self.partitions(client).await?;
        let controller = client.controller_client().map_err(|e| kafka_error(&self.brokers, e))?;
        for topic in topics::ALL {
            if !existing.iter().any(|(t, _)| t == topic) {
                match controller.create_topic(topic, partitions, 1, 10_000).await {
                    Ok(())
                    | Err(rskafka::client::error::Error::ServerError {
                        protocol_error: rskafka::client::error::ProtocolError::TopicAlreadyExists,
                        ..
                    }) => {}
                    Err(e) => return Err(kafka_error(&self.brokers, format!("creating topic {topic}: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// Publishes multiplex envelope lines (a landing multiplex file's text) to their topics,
    /// keyed as in the envelopes, a key always to the same partition ([`partition_of`]);
    /// returns how many records were published. Blank lines are skipped.
    pub async fn publish(&self, client: &Client, text: &str) -> Result<u64> {
        let partitions = self.partitions(client).await?;
        let mut by_partition: BTreeMap<TopicPartition, Vec<Record>> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (topic, record) =
                envelope_record(line).map_err(|e| Error::Config(format!("multiplex line {}: {e}", i + 1)))?;
            let count = partitions.iter().filter(|(t, _)| *t == topic).count();
            if count == 0 {
                return Err(Error::Config(format!("multiplex line {}: topic {topic:?} does not exist", i + 1)));
            }
            let partition = partition_of(record.key.as_deref(), count);
            by_partition.entry((topic, partition)).or_default().push(record);
        }
        let mut published = 0u64;
        for (tp, records) in by_partition {
            let pc = self.partition_client(client, &tp).await?;
            let mut records = records.into_iter().peekable();
            while records.peek().is_some() {
                let chunk: Vec<Record> = records.by_ref().take(PRODUCE_BATCH).collect();
                published += chunk.len() as u64;
                pc.produce(chunk, self.compression.compression()).await.map_err(|e| kafka_error(&self.brokers, e))?;
            }
        }
        Ok(published)
    }
}

/// The stream name of a partition: `topic/partition`.
fn stream_name((topic, partition): &TopicPartition) -> String {
    format!("{topic}/{partition}")
}

#[async_trait::async_trait]
impl RecordSource for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn feeds(&self, landing_source: &str) -> bool {
        landing_source == fitlake_landing::sources::KAFKA_MULTIPLEX
    }

    async fn reader(&self, _landing_source: &str) -> Result<Box<dyn SourceReader>> {
        let client = self.connect().await?;
        let ends = self.end_offsets(&client).await?;
        Ok(Box::new(KafkaReader { source: self.clone(), client, ends }))
    }
}

/// Reads every partition up to the end offsets taken when it was opened.
struct KafkaReader {
    source: KafkaSource,
    client: Client,
    ends: BTreeMap<TopicPartition, i64>,
}

#[async_trait::async_trait]
impl SourceReader for KafkaReader {
    fn streams(&self) -> Vec<String> {
        self.ends.keys().map(stream_name).collect()
    }

    async fn next(&mut self, committed: &BTreeMap<String, i64>, max_bytes: u64) -> Result<Vec<Part>> {
        let committed: BTreeMap<TopicPartition, i64> =
            self.ends.keys().filter_map(|tp| committed.get(&stream_name(tp)).map(|&next| (tp.clone(), next))).collect();
        let fetched = self.source.fetch(&self.client, &committed, &self.ends, max_bytes).await?;
        Ok(fetched
            .into_iter()
            .map(|(tp, records)| Part {
                name: PartitionRecords::source_name(&tp),
                stream: stream_name(&tp),
                next: records.next_offset,
                first_line: 1,
                keys: records.offsets,
                text: records.text,
            })
            .collect())
    }
}

/// The partition of `count` a record with `key` goes to: a stable hash of the key (FNV-1a),
/// so one user's or device's records stay in order; records without a key go to 0.
pub fn partition_of(key: Option<&[u8]>, count: usize) -> i32 {
    let Some(key) = key else { return 0 };
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % count.max(1) as u64) as i32
}

/// A multiplex envelope (validated like a landed one) as the Kafka record it describes:
/// topic and record.
fn envelope_record(line: &str) -> std::result::Result<(String, Record), String> {
    let envelope = fitlake_landing::multiplex::parse_envelope(line, &fitlake_landing::TimeWindow::default())?;
    if envelope.timestamp % 1000 != 0 {
        return Err(format!("timestamp {} µs is finer than Kafka's milliseconds", envelope.timestamp));
    }
    let timestamp = chrono::DateTime::from_timestamp_micros(envelope.timestamp).ok_or("timestamp out of range")?;
    let record = Record {
        key: envelope.key.map(|k| k.into_owned().into_bytes()),
        value: Some(envelope.value.into_owned().into_bytes()),
        headers: BTreeMap::new(),
        timestamp,
    };
    Ok((envelope.topic.into_owned(), record))
}

/// Appends a record as a multiplex envelope line; returns the bytes of its key and value.
fn render_envelope(out: &mut String, topic: &str, partition: i32, offset: i64, record: &Record) -> u64 {
    let json = |bytes: &Option<Vec<u8>>| match bytes {
        Some(b) => serde_json::to_string(&String::from_utf8_lossy(b)).unwrap_or_else(|_| "null".into()),
        None => "null".into(),
    };
    let _ = writeln!(
        out,
        r#"{{"key":{},"value":{},"topic":{},"partition":{partition},"offset":{offset},"timestamp":{}}}"#,
        json(&record.key),
        json(&record.value),
        serde_json::to_string(topic).unwrap_or_default(),
        record.timestamp.timestamp_millis()
    );
    (record.key.as_ref().map_or(0, Vec::len) + record.value.as_ref().map_or(0, Vec::len)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_become_records_and_records_become_the_same_envelopes() {
        let line = r#"{"key":"118440","value":"{\"device_id\": 118440, \"time\": 1678521600.788, \"heartrate\": 93.9}","topic":"bpm","partition":0,"offset":1000000,"timestamp":1678521600788}"#;
        let (topic, record) = envelope_record(line).expect("record");
        assert_eq!(topic, "bpm");
        assert_eq!(record.key.as_deref(), Some(&b"118440"[..]));
        assert_eq!(record.timestamp.timestamp_millis(), 1678521600788);
        let mut out = String::new();
        render_envelope(&mut out, "bpm", 0, 1000000, &record);
        assert_eq!(out, format!("{line}\n"));
        // Seed files carry epoch seconds; Kafka keeps milliseconds, which the parser reads back.
        let workout = r#"{\"user_id\": 1, \"workout_id\": 2, \"timestamp\": 1678451168, \"action\": \"start\", \"session_id\": 3}"#;
        let envelope = |ts: &str| {
            format!(r#"{{"key":"1","value":"{workout}","topic":"workout","partition":0,"offset":5,"timestamp":{ts}}}"#)
        };
        assert_eq!(envelope_record(&envelope("1678451168")).expect("record").1.timestamp.timestamp(), 1678451168);
        let finer = envelope_record(&envelope("1678451168.0001")).expect_err("finer than ms");
        assert!(finer.contains("milliseconds"), "{finer}");
        // Payloads are validated like landed ones before they are published.
        let bad = envelope("1678451168").replace("start", "jump");
        assert!(envelope_record(&bad).expect_err("bad action").contains("neither start nor stop"));
    }

    #[test]
    fn a_key_always_goes_to_the_same_partition_and_keys_spread() {
        let parts: Vec<i32> = (0..1000).map(|k| partition_of(Some(k.to_string().as_bytes()), 4)).collect();
        assert!((0..4).all(|p| parts.iter().filter(|&&x| x == p).count() > 150), "{parts:?}");
        assert_eq!(partition_of(Some(b"118440"), 4), partition_of(Some(b"118440"), 4));
        assert_eq!(partition_of(None, 4), 0);
    }

    #[test]
    fn broker_lists_are_checked() {
        assert_eq!(KafkaSource::parse("127.0.0.1:9092, b:1").expect("ok").brokers, vec!["127.0.0.1:9092", "b:1"]);
        for bad in ["", "127.0.0.1", "host:port", ":9092"] {
            assert!(KafkaSource::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! Kafka as the multiplex source, tested against a tansu broker (a Kafka-protocol broker)
//! started on a loopback port for each test.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use fitlake_sources::kafka::KafkaSource;
use polars::prelude::*;

use crate::harness::{
    assert_same_tables, block_on, free_port, succeeded, testdata, wait_until, Lake, Service, TestCa, AS_OF,
};
use crate::original_counts;

const FITLAKE_BRONZE: &str = env!("CARGO_BIN_EXE_fitlake-bronze");

/// A tansu broker with in-memory storage; stopped when dropped.
pub struct Broker(Service);

impl Broker {
    /// Starts tansu (`$FITLAKE_TANSU` or `tansu` on the PATH).
    pub fn start() -> Broker {
        Broker::advertising(None)
    }

    /// Starts tansu telling clients to reach it at `advertised` (a port in front of it), or at
    /// its own port.
    fn advertising(advertised: Option<u16>) -> Broker {
        Broker(Service::start("FITLAKE_TANSU", "tansu", |port| {
            let url = format!("tcp://127.0.0.1:{port}");
            let advertised = format!("tcp://127.0.0.1:{}", advertised.unwrap_or(port));
            let args = ["broker", "--listener-url", &url, "--advertised-listener-url", &advertised];
            args.iter().chain(&["--storage-engine", "memory://tansu/"]).map(|a| a.to_string()).collect()
        }))
    }

    /// `host:port`, as `--brokers` takes it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.0.port)
    }

    /// How many records each partition of the pipeline's topics holds now.
    fn records_per_partition(&self) -> BTreeMap<(String, i32), i64> {
        block_on(async {
            let source = KafkaSource::parse(&self.address()).expect("brokers");
            let client = source.connect().await.expect("connect");
            source.end_offsets(&client).await.expect("end offsets")
        })
    }
}

/// `fitlake produce --to kafka ARGS…`: registrations and gym logins as landing files, the
/// multiplex to the broker's topics.
fn produce_to_kafka(lake: &Lake, broker: &Broker, args: &[&str]) {
    let mut all = vec!["produce", "--to", "kafka", "--brokers"];
    let address = broker.address();
    all.push(&address);
    all.extend_from_slice(args);
    lake.fitlake(&all);
}

/// `kafka_multiplex_bz`'s rows: (topic, partition, offset) of each, and whether any repeats.
fn consumed(lake: &Lake) -> (usize, BTreeMap<(String, i32), i64>) {
    let rows = lake.table("kafka_multiplex_bz");
    let topic = rows.column("topic").expect("topic").str().expect("str").clone();
    let partition = rows.column("partition").expect("partition").i64().expect("i64").clone();
    let offset = rows.column("offset").expect("offset").i64().expect("i64").clone();
    let mut seen = BTreeSet::new();
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for ((t, p), o) in topic.iter().zip(partition.iter()).zip(offset.iter()) {
        let (t, p, o) = (t.expect("topic").to_string(), p.expect("partition") as i32, o.expect("offset"));
        assert!(seen.insert((t.clone(), p, o)), "record {t}/{p}@{o} is in bronze twice");
        let end = next.entry((t, p)).or_default();
        *end = (*end).max(o + 1);
    }
    (rows.height(), next)
}

/// The multiplex rows without what differs between Kafka and landing files (partition,
/// offset, source, load time), sorted.
fn multiplex_content(lake: &Lake) -> DataFrame {
    lake.table("kafka_multiplex_bz")
        .lazy()
        .select([col("key"), col("value"), col("topic"), col("timestamp"), col("date"), col("week_part")])
        .sort(["topic", "key", "timestamp", "value"], SortMultipleOptions::default())
        .collect()
        .expect("select")
}

/// Every table but `kafka_multiplex_bz` (whose partitions and offsets depend on the source) is
/// the same in a lakehouse fed by landing files and one fed by Kafka.
fn assert_same_but_multiplex(files: &Lake, kafka: &Lake, context: &str) {
    let mut from_files = files.all_tables();
    let mut from_kafka = kafka.all_tables();
    for tables in [&mut from_files, &mut from_kafka] {
        tables.remove("kafka_multiplex_bz");
    }
    assert_same_tables(&from_files, &from_kafka, context);
}

/// Publishes a multiplex file with librdkafka (`scripts/kafka_publish.py` run by
/// `$FITLAKE_KAFKA_CLIENT`, a Python with `confluent-kafka`), compressing with `codec`.
fn publish_with_librdkafka(broker: &Broker, file: &std::path::Path, codec: &str) {
    let python = std::env::var("FITLAKE_KAFKA_CLIENT").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/kafka_publish.py");
    let out = Command::new(&python)
        .args([script, &broker.address(), file.to_str().expect("utf-8"), "--compression", codec])
        .output()
        .unwrap_or_else(|e| panic!("run {python} (scripts/install-services.sh installs confluent-kafka): {e}"));
    crate::harness::succeeded(out, &format!("kafka_publish.py --compression {codec}"));
}

#[test]
fn batches_a_standard_client_compresses_with_any_codec_are_read() {
    let broker = Broker::start();
    let (kafka, files) = (Lake::new(), Lake::new());
    for lake in [&kafka, &files] {
        lake.fitlake(&["setup"]);
    }
    files.fitlake(&["produce", "--set", "1"]);
    // Each multiplex file in four consecutive parts, one per codec: every topic holds batches
    // of every codec, in the file's order.
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let dir = kafka.root.parent().expect("parent").join("parts");
    std::fs::create_dir_all(&dir).expect("parts dir");
    let mut names: Vec<_> = std::fs::read_dir(files.landing("kafka_multiplex_bz"))
        .expect("landing")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for file in names {
        let text = std::fs::read_to_string(&file).expect("multiplex file");
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for (i, part) in lines.chunks(lines.len().div_ceil(codecs.len())).enumerate() {
            let path = dir.join(format!("{}-{i}", file.file_name().expect("name").to_string_lossy()));
            std::fs::write(&path, part.join("\n") + "\n").expect("part");
            publish_with_librdkafka(&broker, &path, codecs[i]);
        }
    }
    files.run_once();
    // The registrations and logins come as landing files in both lakehouses.
    for source in ["registered_users_bz", "gym_logins_bz"] {
        for entry in std::fs::read_dir(files.landing(source)).expect("landing") {
            let path = entry.expect("entry").path();
            std::fs::create_dir_all(kafka.landing(source)).expect("landing dir");
            std::fs::copy(&path, kafka.landing(source).join(path.file_name().expect("name"))).expect("copy");
        }
    }
    kafka.fitlake(&["run", "--once", "--as-of", AS_OF, "--source", "kafka", "--brokers", &broker.address()]);
    assert_eq!(multiplex_content(&files), multiplex_content(&kafka), "what librdkafka published, read back");
    assert_same_but_multiplex(&files, &kafka, "compressed Kafka batches vs landing files");

    // fitlake's own producer compresses too.
    let again = Lake::new();
    again.fitlake(&["setup"]);
    let zstd = Broker::start();
    produce_to_kafka(&again, &zstd, &["--set", "1", "--partitions", "2", "--compression", "zstd"]);
    again.fitlake(&["run", "--once", "--as-of", AS_OF, "--source", "kafka", "--brokers", &zstd.address()]);
    assert_eq!(multiplex_content(&files), multiplex_content(&again), "fitlake's zstd batches");
}

#[test]
fn the_batch_test_counts_hold_with_kafka_as_the_multiplex_source() {
    let broker = Broker::start();
    let (kafka, files) = (Lake::new(), Lake::new());
    for lake in [&kafka, &files] {
        lake.fitlake(&["setup"]);
    }
    let run = ["run", "--once", "--as-of", AS_OF, "--source", "kafka", "--brokers"];
    for (set, counts) in
        [("1", vec![5, 8, 7, 16, 5, 8, 5, 16, 5, 8, 8]), ("2", vec![10, 16, 13, 32, 10, 16, 10, 32, 10, 16, 16])]
    {
        produce_to_kafka(&kafka, &broker, &["--set", set, "--partitions", "3"]);
        let out = kafka.fitlake(&[&run[..], &[broker.address().as_str()]].concat());
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.contains("bronze.kafka_multiplex_bz (kafka)"), "{out}");
        assert!(kafka.landing("kafka_multiplex_bz").read_dir().map_or(true, |mut d| d.next().is_none()));
        files.fitlake(&["produce", "--set", set]);
        files.run_once();

        assert_eq!(original_counts(&kafka), counts, "set {set}");
        let (rows, next) = consumed(&kafka);
        assert_eq!(next, broker.records_per_partition(), "every record of every partition, once");
        assert_eq!(rows as i64, next.values().sum::<i64>());
        assert!(next.keys().filter(|(t, _)| t == "bpm").count() == 3, "{next:?}");
        // Everything downstream of bronze is the same as from landing files.
        assert_same_but_multiplex(&files, &kafka, &format!("Kafka vs landing files, set {set}"));
        assert_eq!(multiplex_content(&files), multiplex_content(&kafka), "set {set}");
    }
}

#[test]
fn a_killed_consumer_neither_skips_nor_repeats_and_later_topics_are_picked_up() {
    let broker = Broker::start();
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    // Only user_info exists at first: its records, published from the seed file.
    block_on(async {
        let source = KafkaSource::parse(&broker.address()).expect("brokers");
        let client = source.connect().await.expect("connect");
        let controller = client.controller_client().expect("controller");
        controller.create_topic("user_info", 1, 1, 10_000).await.expect("create user_info");
        let text = std::fs::read_to_string(testdata().join("seed-sets/2-user_info_1.json")).expect("seed file");
        assert_eq!(source.publish(&client, &text).await.expect("publish"), 7);
    });
    let bronze = |env: &[(&str, &str)]| {
        let address = broker.address();
        let args =
            ["--once", "--as-of", AS_OF, "--source", "kafka", "--brokers", &address, "--max-batch-bytes", "20000"];
        let mut cmd = Command::new(FITLAKE_BRONZE);
        cmd.arg("--lakehouse").arg(&lake.root).args(args).env_remove("FITLAKE_FAULT");
        cmd.env("FITLAKE_PRINCIPAL", "pipeline").envs(env.iter().copied()).output().expect("run fitlake-bronze")
    };
    assert!(bronze(&[]).status.success());
    assert_eq!(consumed(&lake).0, 7);

    // Then workout and bpm appear, with 2 partitions each, and a lot more data.
    produce_to_kafka(&lake, &broker, &["--generate", "--users", "6", "--days", "2", "--partitions", "2"]);
    // Crashes after writing a batch's files, and after committing a batch: each rerun goes on
    // from the offsets committed with the rows.
    for fault in ["after-write:kafka_multiplex_bz", "after-commit:kafka_multiplex_bz"] {
        let before = consumed(&lake).0;
        let out = bronze(&[("FITLAKE_FAULT", fault)]);
        assert!(!out.status.success(), "the fault {fault} must stop the run");
        assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"), "{fault}");
        let after = consumed(&lake).0;
        match fault {
            "after-write:kafka_multiplex_bz" => assert_eq!(after, before, "nothing committed"),
            _ => assert!(after > before, "one batch committed"),
        }
    }
    let out = bronze(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (rows, next) = consumed(&lake);
    let in_kafka = broker.records_per_partition();
    assert_eq!(next, in_kafka, "every record of every partition, once");
    assert_eq!(rows as i64, in_kafka.values().sum::<i64>());
    assert_eq!(in_kafka.keys().filter(|(t, _)| t != "user_info").count(), 4, "{in_kafka:?}");
    assert!(rows > 10_000, "the generated data spans many batches: {rows}");
}

#[test]
fn a_streaming_consumer_follows_the_topics_and_survives_kill_9() {
    let broker = Broker::start();
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let address = broker.address();
    // Small batches, so the generated data takes many micro-batches and a kill lands mid-way.
    let args = ["--stream", "--trigger", "100ms", "--as-of", AS_OF, "--source", "kafka", "--brokers", &address];
    let stream = || lake.spawn(FITLAKE_BRONZE, &[&args[..], &["--max-batch-bytes", "25000", "--quiet"]].concat(), &[]);
    let all_in_bronze = |what: &str| {
        let in_kafka: i64 = broker.records_per_partition().values().sum();
        wait_until(what, Duration::from_secs(180), || consumed(&lake).0 as i64 == in_kafka);
    };
    let runner = stream();
    produce_to_kafka(&lake, &broker, &["--set", "1", "--partitions", "2"]);
    all_in_bronze("set 1 is in bronze");

    // kill -9 while it works through about 180,000 new records, then a new stream goes on. The
    // backlog is several times what the stream commits while the test looks for its progress
    // (with 60,000 the kill once landed after the end; with 120,000 it landed at 40-53 %).
    produce_to_kafka(&lake, &broker, &["--generate", "--users", "18", "--days", "2"]);
    let before = consumed(&lake).0;
    wait_until("the stream is part way", Duration::from_secs(60), || consumed(&lake).0 > before);
    let killed = runner.kill_hard();
    assert!(!killed.status.success());
    let in_kafka: i64 = broker.records_per_partition().values().sum();
    assert!((consumed(&lake).0 as i64) < in_kafka, "the kill must land before the end");
    let runner = stream();
    all_in_bronze("everything is in bronze after the restart");
    let ended = runner.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);
    // consumed() fails on any record seen twice; every offset of every partition is there.
    assert_eq!(consumed(&lake).1, broker.records_per_partition());
}

/// A TLS endpoint in front of a broker (tansu serves plain TCP only): accepts TLS connections
/// with a certificate the test CA signed for 127.0.0.1 and relays their bytes to the broker.
/// Counts completed handshakes; stops with the test process.
struct TlsFront {
    port: u16,
    handshakes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsFront {
    fn start(port: u16, backend: u16, cert: &std::path::Path, key: &std::path::Path) -> TlsFront {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(cert).expect("cert").collect::<Result<_, _>>().expect("certs");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let handshakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = handshakes.clone();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the TLS port");
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let (acceptor, counted) = (acceptor.clone(), counted.clone());
                    tokio::spawn(async move {
                        // A client that does not speak TLS (or distrusts the certificate) ends here.
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                    });
                }
            });
        });
        TlsFront { port, handshakes }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

#[test]
fn a_broker_behind_tls_is_read_and_written_over_verified_tls_only() {
    let files = Lake::new();
    files.fitlake(&["setup"]);
    files.fitlake(&["produce", "--set", "1"]);
    files.run_once();

    let dir = tempfile::tempdir().expect("ca dir");
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.issue("broker", false);
    // The broker advertises the TLS port, so every connection (bootstrap and per partition
    // leader) goes through it.
    let tls_port = free_port();
    let broker = Broker::advertising(Some(tls_port));
    let front = TlsFront::start(tls_port, broker.0.port, &cert, &key);
    let (address, ca_file) = (front.address(), ca.cert());
    let ca_file = ca_file.to_str().expect("utf-8");
    let tls = ["--brokers", &address, "--kafka-security", "ssl", "--kafka-ca-file", ca_file];

    let kafka = Lake::new();
    kafka.fitlake(&["setup"]);
    kafka.fitlake(&[&["produce", "--set", "1", "--to", "kafka"][..], &tls].concat());
    for source in ["registered_users_bz", "gym_logins_bz"] {
        assert!(kafka.landing(source).read_dir().is_ok_and(|mut d| d.next().is_some()), "{source} landed");
    }

    // Refused: a broker certificate the system's authorities did not sign, and plain TCP to a
    // TLS port. No Kafka record is read (the landing files' steps run before).
    let run = ["run", "--once", "--as-of", AS_OF, "--source", "kafka"];
    let untrusted = kafka.fitlake_env(&[&run[..], &["--brokers", &address, "--kafka-security", "ssl"]].concat(), &[]);
    let message = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(
        untrusted.status.code(),
        Some(2),
        "an untrusted broker certificate is the configuration's to fix: {message}"
    );
    assert!(message.contains("TLS handshake failed") && message.contains("certificate"), "{message}");
    let plain = kafka.fitlake_env(&[&run[..], &["--brokers", &address]].concat(), &[]);
    assert!(!plain.status.success(), "plain Kafka to a TLS port succeeded");
    let handshakes = front.handshakes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(handshakes > 0, "fitlake produce did not connect through TLS");

    succeeded(kafka.fitlake_env(&[&run[..], &tls].concat(), &[]), "run over TLS");
    assert!(front.handshakes.load(std::sync::atomic::Ordering::SeqCst) > handshakes, "the run connected through TLS");
    assert_eq!(multiplex_content(&files), multiplex_content(&kafka), "records written and read over TLS");
    assert_same_but_multiplex(&files, &kafka, "Kafka over TLS vs landing files");

    // SASL over TLS reaches the broker's SASL handshake: tansu 0.6 offers no mechanism, so the
    // login is refused, a configuration error (exit 2) naming SASL.
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "secret\n").expect("password file");
    let password = password.to_str().expect("utf-8");
    let scram = ["--kafka-sasl-mechanism", "scram-sha512", "--kafka-username", "u", "--kafka-password-file", password];
    let sasl_ssl = ["--brokers", &address, "--kafka-security", "sasl-ssl", "--kafka-ca-file", ca_file];
    let sasl = kafka.fitlake_env(&[&run[..], &sasl_ssl, &scram].concat(), &[]);
    let message = String::from_utf8_lossy(&sasl.stderr);
    assert_eq!(sasl.status.code(), Some(2), "{message}");
    assert!(
        message.contains("refused fitlake's SASL login") && message.contains("UnsupportedSaslMechanism"),
        "{message}"
    );

    // SASL settings are checked before connecting: PLAIN without TLS and SASL without a
    // password are configuration errors (exit 2).
    let sasl_plain = ["--kafka-security", "sasl-plaintext", "--kafka-username", "u", "--kafka-password-file", password];
    for (args, why) in [
        (&sasl_plain[..], "PLAIN without TLS"),
        (&["--kafka-security", "sasl-ssl", "--kafka-username", "u"][..], "no password"),
    ] {
        let out = kafka.fitlake_env(&[&run[..], &["--brokers", &address], args].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{why}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

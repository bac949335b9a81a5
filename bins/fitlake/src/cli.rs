//! The command line of `fitlake` and of the per-layer binaries `fitlake-bronze`,
//! `fitlake-silver` and `fitlake-gold` (which take the options of `fitlake run`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use fitlake_catalog::TableId;
use fitlake_config::{parse_bytes, parse_date, parse_duration, Lakehouse, Layer};
use fitlake_governance::plan::{plan, Current};
use fitlake_governance::policy::Zone;
use fitlake_governance::{Policy, Privilege};
use fitlake_landing::synthetic::Synthetic;
use fitlake_pipeline::maintenance::AutoCompact;
use fitlake_pipeline::report::RunReport;
use fitlake_pipeline::stream::StreamOptions;
use fitlake_pipeline::{Context, ErrorKind, RunOptions};
use fitlake_quality::Expectations;
use fitlake_sources::kafka::KafkaSource;
use fitlake_sources::postgres::PgSource;
use fitlake_storage::maintenance::{OptimizeOptions, VacuumOptions};
use fitlake_storage::{Access, Need, Table};
use polars::prelude::*;

use crate::logging::{LogFormat, Logging};
use crate::meter::{Bars, ProgressMode};
use crate::produce::{Layout, MultiplexSink};

/// The commands' error: the pipeline's, whose [`ErrorKind`] picks the exit code.
type Error = fitlake_pipeline::Error;
type Result<T, E = Error> = std::result::Result<T, E>;

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Root of the lakehouse: a local directory, file:// URL, or
    /// abfss://container@account.dfs.core.windows.net/path (credentials: see the README).
    #[arg(long, env = "FITLAKE_LAKEHOUSE", default_value = "./lakehouse", global = true)]
    pub lakehouse: String,
    /// Catalog metadata root, when not `<lakehouse>/metastore-root/` (a local path or abfss:// URL).
    #[arg(long, env = "FITLAKE_METASTORE_ROOT", global = true)]
    pub metastore_root: Option<String>,
    /// Root of the managed Delta tables, when not `<lakehouse>/managed/`.
    #[arg(long, env = "FITLAKE_MANAGED_ROOT", global = true)]
    pub managed_root: Option<String>,
    /// Root of the landing and checkpoint zones, when not `<lakehouse>/unmanaged/`.
    #[arg(long, env = "FITLAKE_UNMANAGED_ROOT", global = true)]
    pub unmanaged_root: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but the final line (and warnings and errors).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// How log lines on stderr look: `text` for people, `json` (one object per line) for log
    /// collectors. `RUST_LOG` filters them (e.g. `RUST_LOG=fitlake_pipeline=debug`).
    #[arg(long, value_enum, env = "FITLAKE_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// A progress bar for long steps (landing bytes read, rows written) on stderr: `auto` when
    /// it is a terminal (not for `--stream`, `--quiet` or `--log-format json`), `always`, `never`.
    #[arg(long, value_enum, env = "FITLAKE_PROGRESS", default_value = "auto", global = true)]
    pub progress: ProgressMode,
    /// Concurrent runners on a local lakehouse take turns per table through lock files (`on`),
    /// or rely on Delta's optimistic concurrency alone (`off`, as on object stores).
    #[arg(long, env = "FITLAKE_TABLE_LOCKS", default_value = "on", value_parser = ["on", "off"], global = true)]
    pub table_locks: String,
    /// The principal the command runs as, when not the one the policy maps this identity to
    /// (the OS user; on Azure, the Entra ID token's subject): allowed only where the policy's
    /// may_act_as lets the identity act as it. No default: the shipped development policy maps
    /// every OS user to `developer`, who may act as producer, pipeline or analyst.
    #[arg(long, env = "FITLAKE_PRINCIPAL", global = true)]
    pub principal: Option<String>,
    /// The access policy (TOML); defaults to the shipped crates/governance/policy.toml.
    #[arg(long, env = "FITLAKE_POLICY", global = true)]
    pub policy: Option<PathBuf>,
    /// The data-quality expectations (TOML); defaults to the shipped crates/quality/expectations.toml.
    #[arg(long, env = "FITLAKE_EXPECTATIONS", global = true)]
    pub expectations: Option<PathBuf>,
}

/// Options of a pipeline run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Process everything new, then exit (batch mode).
    #[arg(long, conflicts_with = "stream")]
    pub once: bool,
    /// Run micro-batches on a trigger interval until SIGINT or SIGTERM (streaming mode).
    #[arg(long)]
    pub stream: bool,
    /// Streaming mode: time from the start of one micro-batch to the start of the next
    /// (e.g. 500ms, 5s, 1m).
    #[arg(long, default_value = "5s", requires = "stream")]
    pub trigger: String,
    /// Streaming mode: after a micro-batch, compact each table it wrote that has at least this
    /// many files under 128 MiB (as Databricks' auto compaction; 0 turns it off).
    #[arg(long, default_value_t = 50)]
    pub auto_compact_files: usize,
    /// The date ages are computed at (YYYY-MM-DD); defaults to today (UTC).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Most landing bytes one bronze batch takes (bigger is faster, smaller uses less memory).
    #[arg(long, default_value_t = 1 << 30)]
    pub max_batch_bytes: u64,
    /// About how much memory a run aims to stay within, in bytes, whatever the size of its
    /// input: landing files are parsed in chunks of a 32nd of it, and the reading-heavy steps
    /// take their new input in groups of files of a 16th of it, each group its own commit.
    #[arg(long, default_value_t = fitlake_pipeline::context::DEFAULT_MEMORY_BUDGET)]
    pub memory_budget: u64,
    /// Threads for parsing (defaults to the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A landing file larger than this is quarantined whole (its first KiB and SHA-256), never
    /// read into memory.
    #[arg(long, default_value_t = fitlake_pipeline::context::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// A landing line (or CSV record) longer than this is quarantined (its first KiB, length
    /// and SHA-256).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// A landing file modified less than this long ago waits for a later batch (a writer may
    /// still be appending to it), e.g. 30s.
    #[arg(long, default_value = "0s")]
    pub min_file_age: String,
    /// Earliest plausible event time (YYYY-MM-DD, UTC); earlier times are quarantined.
    #[arg(long, default_value = "2000-01-01")]
    pub plausible_from: String,
    /// End of the plausible event times (YYYY-MM-DD, UTC, exclusive); later times are
    /// quarantined.
    #[arg(long, default_value = "2100-01-01")]
    pub plausible_until: String,
    /// Where bronze reads from (comma-separated): landing `files`; the operational database
    /// `postgres` for registrations and gym logins (give --dsn); `kafka` topics for the
    /// multiplex (give --brokers). Sources not named come from landing files.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "files")]
    pub source: Vec<SourceArg>,
    /// PostgreSQL connection string for --source postgres (`host=… port=… user=… dbname=…`).
    /// Prefer the environment variable: a command line is visible to every local user in `ps`.
    #[arg(long, env = "FITLAKE_POSTGRES_DSN", hide_env_values = true, value_parser = secret)]
    pub dsn: Option<fitlake_config::Secret>,
    /// A file holding the PostgreSQL password, when the DSN has none (the environment variable
    /// FITLAKE_POSTGRES_PASSWORD is read otherwise).
    #[arg(long, env = "FITLAKE_POSTGRES_PASSWORD_FILE")]
    pub pg_password_file: Option<PathBuf>,
    /// A PEM file of certificate authorities that may sign the PostgreSQL server's certificate,
    /// besides the system's (TLS is used unless the DSN says sslmode=disable, and the server's
    /// certificate and name are always verified).
    #[arg(long, env = "FITLAKE_POSTGRES_CA_FILE")]
    pub pg_ca_file: Option<PathBuf>,
    #[command(flatten)]
    /// Where the Kafka cluster is and how to connect to it.
    pub kafka: KafkaArgs,
}

/// Where the Kafka cluster is and how fitlake connects to it (`--source kafka`, `--to kafka`).
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap brokers (`host:port[,host:port…]`).
    #[arg(long, env = "FITLAKE_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// How the Kafka connection is protected, as Kafka's security.protocol: `plaintext`, `ssl`
    /// (TLS), `sasl-plaintext`, `sasl-ssl` (Azure Event Hubs). Brokers' certificates and names
    /// are always verified.
    #[arg(long, value_enum, env = "FITLAKE_KAFKA_SECURITY", default_value = "plaintext")]
    pub kafka_security: KafkaSecurityArg,
    /// The SASL mechanism (Event Hubs: plain, user `$ConnectionString`, the connection string
    /// as password).
    #[arg(long, value_enum, env = "FITLAKE_KAFKA_SASL_MECHANISM", default_value = "plain")]
    pub kafka_sasl_mechanism: SaslMechanismArg,
    /// The SASL user name.
    #[arg(long, env = "FITLAKE_KAFKA_USERNAME")]
    pub kafka_username: Option<String>,
    /// A file holding the SASL password (the environment variable FITLAKE_KAFKA_PASSWORD is read
    /// otherwise; never on the command line, where `ps` shows it).
    #[arg(long, env = "FITLAKE_KAFKA_PASSWORD_FILE")]
    pub kafka_password_file: Option<PathBuf>,
    /// A PEM file of certificate authorities that may sign the brokers' certificates, besides
    /// the system's.
    #[arg(long, env = "FITLAKE_KAFKA_CA_FILE")]
    pub kafka_ca_file: Option<PathBuf>,
}

/// Kafka's security.protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaSecurityArg {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS (SCRAM only: PLAIN would send the password as it is).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanismArg {
    /// PLAIN.
    #[default]
    Plain,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

/// A source bronze can read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    /// Landing files.
    Files,
    /// The operational PostgreSQL database (registrations, gym logins).
    Postgres,
    /// Kafka topics (the multiplex: user_info, workout, bpm).
    Kafka,
}

/// Where `fitlake produce` sends the multiplex records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProduceTo {
    /// Files in the landing zone.
    Landing,
    /// Kafka topics.
    Kafka,
}

/// The Kafka cluster of `--brokers`, connected as the `--kafka-*` options say, which `what` needs.
fn kafka_source(args: &KafkaArgs, what: &str) -> Result<KafkaSource> {
    use fitlake_sources::kafka::{KafkaSecurity, Sasl, SaslMechanism};
    let Some(brokers) = args.brokers.as_deref() else {
        return Err(Error::Config(format!(
            "{what} needs --brokers (or FITLAKE_KAFKA_BROKERS), e.g. --brokers 127.0.0.1:9092"
        )));
    };
    let tls = matches!(args.kafka_security, KafkaSecurityArg::Ssl | KafkaSecurityArg::SaslSsl);
    if !tls && args.kafka_ca_file.is_some() {
        return Err(Error::Config("--kafka-ca-file needs --kafka-security ssl or sasl-ssl".into()));
    }
    let sasl = match args.kafka_security {
        KafkaSecurityArg::SaslPlaintext | KafkaSecurityArg::SaslSsl => Some(Sasl {
            mechanism: match args.kafka_sasl_mechanism {
                SaslMechanismArg::Plain => SaslMechanism::Plain,
                SaslMechanismArg::ScramSha256 => SaslMechanism::ScramSha256,
                SaslMechanismArg::ScramSha512 => SaslMechanism::ScramSha512,
            },
            username: args.kafka_username.clone().unwrap_or_default(),
            password: secret_from(
                "--kafka-password-file",
                args.kafka_password_file.as_deref(),
                "FITLAKE_KAFKA_PASSWORD",
            )?
            .ok_or_else(|| {
                Error::Config("Kafka SASL needs a password: --kafka-password-file or FITLAKE_KAFKA_PASSWORD".into())
            })?,
        }),
        _ => None,
    };
    let security = KafkaSecurity { tls: tls.then(|| args.kafka_ca_file.clone()), sasl };
    security.check()?;
    Ok(KafkaSource { security, ..KafkaSource::parse(brokers)? })
}

/// A secret read from the file `path` names (its last line break removed), else from the
/// environment variable `env`; `option` names the file option in messages.
fn secret_from(option: &str, path: Option<&Path>, env: &str) -> Result<Option<fitlake_config::Secret>> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("{option} {}: {e}", path.display())))?;
            Ok(Some(fitlake_config::Secret::new(text.trim_end_matches(['\n', '\r']))))
        }
        None => Ok(std::env::var(env).ok().map(fitlake_config::Secret::new)),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "fitlake",
    version,
    about = "The fitness lakehouse: landing -> bronze -> silver -> gold on Delta tables."
)]
struct FitlakeCli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the zones and every table (idempotent) and load date_lookup.
    Setup {
        /// Also generate calendar days from this date (YYYY-MM-DD) ...
        #[arg(long, requires = "calendar_to")]
        calendar_from: Option<String>,
        /// ... to this date, inclusive.
        #[arg(long, requires = "calendar_from")]
        calendar_to: Option<String>,
    },
    /// Drop landing data into the landing zone: a seed set, or generated data.
    Produce {
        /// The seed set to drop (1 or 2), with generated BPM readings.
        #[arg(long, conflicts_with = "generate")]
        set: Option<usize>,
        /// Generate synthetic data instead.
        #[arg(long, requires_all = ["users", "days"])]
        generate: bool,
        /// Number of users to generate.
        #[arg(long)]
        users: Option<u32>,
        /// Number of days to generate (one gym visit per user and day).
        #[arg(long)]
        days: Option<u32>,
        /// Random seed of the generated data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// First generated day (YYYY-MM-DD).
        #[arg(long, default_value = "2023-03-13")]
        start: String,
        /// Readings per generated BPM file.
        #[arg(long, default_value_t = 1_000_000)]
        readings_per_file: u64,
        /// Write every multiplex record in event-time order (files are consecutive slices of
        /// time across all devices, like a live stream) instead of files of whole visits.
        #[arg(long, requires = "generate")]
        time_ordered: bool,
        /// Where the multiplex records go: landing files, or the Kafka topics at --brokers
        /// (registrations and gym logins always go to landing files).
        #[arg(long, value_enum, default_value = "landing")]
        to: ProduceTo,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Partitions of each topic --to kafka creates (existing topics are kept as they are).
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// How --to kafka compresses its record batches.
        #[arg(long, value_enum, default_value_t = CompressionArg::None)]
        compression: CompressionArg,
    },
    /// Run the pipeline.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Run only these layers (default: all).
        #[arg(long, value_enum)]
        layer: Vec<LayerArg>,
    },
    /// Print a table's rows, sorted by its key.
    Show {
        /// Table name, e.g. workout_bpm_summary.
        table: String,
        /// Most rows to print.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run a SELECT query over the tables, named `layer.table` (`gold.gym_summary`) or by table
    /// name alone; only the columns the query names are read. Examples: docs/sql.md.
    Sql {
        /// The query, e.g. "SELECT gym, COUNT(*) AS visits FROM gold.gym_summary GROUP BY gym".
        query: String,
        /// Output: a text table, CSV, a JSON array of objects, or Parquet (needs --out).
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// Write the result to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Most rows the text table prints (the other formats write every row).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Write the dashboard: DIR/index.html, one self-contained page (no network needed) with
    /// charts of the gold tables, quarantined records, failed expectations, freshness and
    /// versions, each with its query and numbers.
    Report {
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also write each chart as DIR/<chart>.png.
        #[arg(long)]
        png: bool,
    },
    /// Each table's version and row count, and how far each step is behind its sources.
    Status,
    /// Governance as code: the Unity Catalog SQL and cluster policies of the policy.
    Governance {
        #[command(subcommand)]
        command: GovernanceCommand,
    },
    /// The HTTP API for device events: POST /v1/bpm, /v1/workouts, /v1/profile (JSON or
    /// NDJSON) with a bearer token (or a client certificate); lands accepted events in the
    /// landing zone before answering 202. Runs as a principal that may write the landing zone
    /// (e.g. --principal producer). Refuses to start without --tokens or --client-ca.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The bearer-token file (`fitlake token new NAME --tokens FILE`); read again when it
        /// changes, so revoking needs no restart.
        #[arg(long, env = "FITLAKE_SERVE_TOKENS")]
        tokens: Option<PathBuf>,
        /// TLS: the server's certificate chain (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS: the server's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Mutual TLS: accept clients with a certificate signed by an authority in this PEM file
        /// (without a token).
        #[arg(long)]
        client_ca: Option<PathBuf>,
        /// Most requests landed at once (taken once a body has arrived); more get 503 with
        /// Retry-After.
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        /// Largest request body in bytes; larger get 413.
        #[arg(long, default_value_t = 16 << 20)]
        max_body_bytes: usize,
        /// Most records in one request; more get 413.
        #[arg(long, default_value_t = 100_000)]
        max_records: usize,
        /// Most open connections; more wait to be accepted.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Time a client has to send a request's headers (also the idle keep-alive time).
        #[arg(long, default_value = "10s")]
        header_timeout: String,
        /// Time a client has to send a request's body.
        #[arg(long, default_value = "30s")]
        body_timeout: String,
        /// How long a stopping server waits for requests in flight.
        #[arg(long, default_value = "30s")]
        drain_timeout: String,
    },
    /// Bearer tokens for `fitlake serve`: stored as SHA-256 hashes in the token file.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Compact small files into larger ones (Delta OPTIMIZE), committed with dataChange=false
    /// so readers and the incremental steps see no new data; safe next to a running stream
    /// (a lost commit race is planned again).
    Optimize {
        /// Only this table (default: every table).
        #[arg(long)]
        table: Option<String>,
        /// The size small files are packed into (B, KiB, MiB, GiB; KB, MB, GB).
        #[arg(long, default_value = "128MiB")]
        target_file_size: String,
        /// Cluster the rewritten rows by these columns (Z-order over their ranks; a sort for
        /// one column): every file of a partition is rewritten.
        #[arg(long, value_delimiter = ',')]
        zorder_by: Vec<String>,
    },
    /// Delete data files no table version within the retention needs (Delta VACUUM), then the
    /// log files expired under delta.logRetentionDuration before the last checkpoint.
    Vacuum {
        /// Only this table (default: every table).
        #[arg(long)]
        table: Option<String>,
        /// Keep files removed less than this long ago (ms, s, m, h, d); default: the table's
        /// delta.deletedFileRetentionDuration (168h unless set).
        #[arg(long)]
        retain: Option<String>,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a retention shorter than delta.deletedFileRetentionDuration.
        #[arg(long)]
        force: bool,
    },
    /// The data-quality event log: rows checked, passed and failed per table and expectation.
    Quality {
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// Most recent events to list (totals cover every event).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// `fitlake governance …`.
#[derive(Debug, Subcommand)]
enum GovernanceCommand {
    /// Prints the Unity Catalog SQL (external locations, catalog, schemas, GRANT/REVOKE) and
    /// the cluster policy requests that realise the policy for --lakehouse's storage.
    Plan {
        /// Today's state (JSON: external_locations, catalogs, schemas, grants as SHOW GRANTS
        /// rows, cluster_policies): print only what differs.
        #[arg(long)]
        current: Option<PathBuf>,
    },
    /// Prints a bash script of Azure CLI commands setting the ADLS Gen2 ACLs that give each
    /// principal with entra_ids the file access its privileges stand for (for fitlake jobs that
    /// reach storage as their own Entra identity); idempotent.
    Acls,
}

/// `fitlake token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token named NAME: printed once, only its hash is stored.
    New {
        /// Who holds it (letters, digits, '-', '_', '.').
        name: String,
        /// The token file.
        #[arg(long, env = "FITLAKE_SERVE_TOKENS")]
        tokens: PathBuf,
    },
    /// Revoke the token named NAME (a running server stops taking it within a second or so).
    Revoke {
        /// The token's name.
        name: String,
        /// The token file.
        #[arg(long, env = "FITLAKE_SERVE_TOKENS")]
        tokens: PathBuf,
    },
    /// The names and creation times of the tokens.
    List {
        /// The token file.
        #[arg(long, env = "FITLAKE_SERVE_TOKENS")]
        tokens: PathBuf,
    },
}

/// A Kafka compression codec on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// Uncompressed batches.
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

impl From<CompressionArg> for fitlake_sources::kafka::Codec {
    fn from(arg: CompressionArg) -> Self {
        use fitlake_sources::kafka::Codec;
        match arg {
            CompressionArg::None => Codec::None,
            CompressionArg::Gzip => Codec::Gzip,
            CompressionArg::Snappy => Codec::Snappy,
            CompressionArg::Lz4 => Codec::Lz4,
            CompressionArg::Zstd => Codec::Zstd,
        }
    }
}

/// How `fitlake sql` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// A text table (Polars' format), at most --limit rows.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// A Parquet file (with --out).
    Parquet,
}

/// A layer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerArg {
    /// Bronze.
    Bronze,
    /// Silver.
    Silver,
    /// Gold.
    Gold,
}

impl From<LayerArg> for Layer {
    fn from(l: LayerArg) -> Self {
        match l {
            LayerArg::Bronze => Layer::Bronze,
            LayerArg::Silver => Layer::Silver,
            LayerArg::Gold => Layer::Gold,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Runs one layer of the fitlake pipeline (the one in the binary's name): on everything new, then exits \
             (--once), or as micro-batches following its upstream tables (--stream)."
)]
struct LayerCli {
    #[command(flatten)]
    global: Global,
    #[command(flatten)]
    run: RunArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}").into()))
}

/// The exit code and the message of a command's outcome: 2 for a configuration error, 3 for a
/// refused access, 1 for anything else (the message says whether to fix the data, retry, or
/// report a bug).
fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = fitlake_storage::redact(&fitlake_storage::with_causes(&e));
            let kind = e.kind();
            let hint = match kind {
                ErrorKind::Infrastructure { retryable: true } => " (retryable: running again may succeed)",
                _ => "",
            };
            tracing::error!(kind = ?kind, "{message}");
            eprintln!("fitlake: error: {message}{hint}");
            match kind {
                ErrorKind::Config => ExitCode::from(2),
                ErrorKind::Denied => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// A policy or governance-state file that cannot be used: the user's to fix.
fn config_error(e: fitlake_governance::Error) -> Error {
    Error::Config(e.to_string())
}

fn read_config_file(option: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{option} {}: {e}", path.display())))
}

/// The policy: `--policy FILE`, or the shipped one.
fn policy(global: &Global) -> Result<Policy> {
    let text = match &global.policy {
        Some(path) => read_config_file("--policy", path)?,
        None => fitlake_governance::SHIPPED_POLICY.to_string(),
    };
    Policy::parse(&text).map_err(|e| Error::Config(format!("{e} (in {})", policy_name(global))))
}

fn policy_name(global: &Global) -> String {
    global.policy.as_ref().map_or("the shipped crates/governance/policy.toml".to_string(), |p| p.display().to_string())
}

/// The expectations: `--expectations FILE`, or the shipped ones.
fn expectations(global: &Global) -> Result<Expectations> {
    let (text, name) = match &global.expectations {
        Some(path) => (read_config_file("--expectations", path)?, path.display().to_string()),
        None => {
            (fitlake_quality::SHIPPED_EXPECTATIONS.to_string(), "the shipped crates/quality/expectations.toml".into())
        }
    };
    let known: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
    let insert_only: Vec<&str> = TableId::ALL.iter().filter(|t| t.insert_only()).map(|t| t.name()).collect();
    Expectations::parse(&text, &known, &insert_only).map_err(|e| Error::Config(format!("{e} (in {name})")))
}

/// Entry point of the `fitlake` binary.
pub fn main_fitlake() -> ExitCode {
    let cli = FitlakeCli::parse();
    let streaming = matches!(&cli.command, Command::Run { run, .. } if run.stream);
    Logging::from_global(&cli.global, streaming).install();
    if let Command::Show { limit, .. } | Command::Sql { limit, .. } = &cli.command {
        // Polars reads its print settings from the environment; set them before any thread starts.
        std::env::set_var("POLARS_FMT_MAX_ROWS", limit.to_string());
        std::env::set_var("POLARS_FMT_MAX_COLS", "20");
        std::env::set_var("POLARS_FMT_STR_LEN", "40");
    }
    finish(runtime().and_then(|rt| rt.block_on(fitlake(cli))))
}

/// The layer job this program runs as, when it was started under a layer job's name
/// (`fitlake-bronze`, `fitlake-silver`, `fitlake-gold`: a link to or copy of `fitlake`).
pub fn layer_of_program() -> Option<Layer> {
    let program = std::env::args_os().next()?;
    let name = Path::new(&program).file_stem()?.to_str()?.to_string();
    Layer::ALL.into_iter().find(|l| name == format!("fitlake-{l}"))
}

/// Entry point of a per-layer binary.
pub fn main_layer(layer: Layer) -> ExitCode {
    let cli = LayerCli::parse();
    Logging::from_global(&cli.global, cli.run.stream).install();
    finish(runtime().and_then(|rt| rt.block_on(run(&cli.global, &cli.run, &[layer]))))
}

fn lakehouse(global: &Global) -> Result<Lakehouse> {
    let cwd = std::env::current_dir().map_err(|e| Error::Config(format!("cannot read the current directory: {e}")))?;
    let lakehouse = Lakehouse::from_root(&global.lakehouse, &cwd)?.with_roots(
        global.metastore_root.as_deref(),
        global.managed_root.as_deref(),
        global.unmanaged_root.as_deref(),
        &cwd,
    )?;
    for root in lakehouse.roots() {
        if let Some(location) = fitlake_storage::AzureLocation::parse(root) {
            location?;
        }
    }
    Ok(lakehouse)
}

/// The lakehouse and policy of the options, as the principal this process's authenticated
/// identity is (or may act as, with `--principal`).
async fn access(global: &Global) -> Result<Access> {
    let lakehouse = lakehouse(global)?;
    let stores = fitlake_storage::Stores::from_env();
    let remote = !lakehouse.is_local();
    if remote {
        // Fail fast on unusable credential settings, before any work.
        stores.check_remote()?;
    }
    let identity = stores.identity(remote).await?;
    Ok(Access::authenticated(lakehouse, policy(global)?, stores, identity, global.principal.as_deref())?)
}

async fn context(global: &Global, run: &RunArgs) -> Result<Context> {
    let as_of = match &run.as_of {
        Some(text) => parse_date("--as-of", text)?,
        None => chrono::Utc::now().date_naive(),
    };
    let mut options = RunOptions::new(as_of, chrono::Utc::now().timestamp_micros());
    match run.threads {
        Some(0) => return Err(Error::Config("--threads must be at least 1".into())),
        Some(n) => options.threads = n,
        None => {}
    }
    if run.max_batch_bytes == 0 {
        return Err(Error::Config("--max-batch-bytes must be at least 1".into()));
    }
    options.max_batch_bytes = run.max_batch_bytes;
    if run.memory_budget < 16 << 10 {
        return Err(Error::Config("--memory-budget must be at least 16 KiB (16384)".into()));
    }
    options.memory_budget = run.memory_budget;
    if run.max_file_bytes == 0 || run.max_line_bytes == 0 {
        return Err(Error::Config("--max-file-bytes and --max-line-bytes must be at least 1".into()));
    }
    options.max_file_bytes = run.max_file_bytes;
    options.max_line_bytes = run.max_line_bytes;
    options.min_file_age_micros = parse_duration("--min-file-age", &run.min_file_age)?.as_micros() as i64;
    let (from, until) =
        (parse_date("--plausible-from", &run.plausible_from)?, parse_date("--plausible-until", &run.plausible_until)?);
    options.window = fitlake_landing::TimeWindow::between(from, until)
        .ok_or_else(|| Error::Config(format!("--plausible-from {from} must be before --plausible-until {until}")))?;
    options.table_locks = global.table_locks == "on";
    let mut ctx =
        Context::new(access(global).await?, expectations(global)?, options).with_meter(Arc::new(Bars::installed()));
    if run.source.contains(&SourceArg::Kafka) {
        ctx = ctx.with_source(Arc::new(kafka_source(&run.kafka, "--source kafka")?));
    }
    if run.source.contains(&SourceArg::Postgres) {
        let Some(dsn) = &run.dsn else {
            return Err(Error::Config(
                "--source postgres needs --dsn (or FITLAKE_POSTGRES_DSN), e.g. --dsn 'host=127.0.0.1 port=5432 \
                 user=fitlake dbname=gym'"
                    .into(),
            ));
        };
        let password = secret_from("--pg-password-file", run.pg_password_file.as_deref(), "FITLAKE_POSTGRES_PASSWORD")?;
        let source = PgSource { password, ca_file: run.pg_ca_file.clone(), ..PgSource::new(dsn.clone()) };
        ctx = ctx.with_source(Arc::new(source));
    }
    Ok(ctx)
}

/// Batch or streaming run of `layers`, as the options say.
async fn run(global: &Global, args: &RunArgs, layers: &[Layer]) -> Result<()> {
    if args.once {
        let ctx = context(global, args).await?;
        ctx.access().require(&fitlake_pipeline::run::run_needs(layers, false))?;
        let report = fitlake_pipeline::run::run_once(&ctx, layers).await?;
        print_report(global, &report);
        return Ok(());
    }
    if !args.stream {
        return Err(Error::Config(
            "say how to run: --once (process everything new, then exit) or --stream [--trigger 5s] (micro-batches \
             until SIGINT/SIGTERM)"
                .into(),
        ));
    }
    let options = StreamOptions {
        trigger: parse_duration("--trigger", &args.trigger)?,
        fixed_as_of: args.as_of.as_deref().map(|d| parse_date("--as-of", d)).transpose()?,
        auto_compact: (args.auto_compact_files > 0)
            .then(|| AutoCompact { min_files: args.auto_compact_files, options: OptimizeOptions::default() }),
    };
    let ctx = context(global, args).await?;
    ctx.access().require(&fitlake_pipeline::run::run_needs(layers, true))?;
    let stop = stop_on_signals()?;
    let (json, quiet) = (global.json, global.quiet);
    let batches = fitlake_pipeline::stream::run_stream(ctx, layers, &options, stop, |batch| {
        if json {
            println!("{}", serde_json::to_string(batch).unwrap_or_default());
        } else if !quiet || batch.report.steps.iter().any(|s| s.rows_read > 0 || s.rows_written > 0) {
            println!("{}", batch.status_line());
        }
    })
    .await?;
    if !json {
        println!("fitlake-stream: stopped after {batches} micro-batches");
    }
    Ok(())
}

/// A flag that turns true on the first SIGINT or SIGTERM (the process then finishes its
/// micro-batch instead of dying).
fn stop_on_signals() -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind| signal(kind).map_err(|e| Error::Internal(format!("cannot listen for signals: {e}").into()));
    let (mut interrupt, mut terminate) = (listen(SignalKind::interrupt())?, listen(SignalKind::terminate())?);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("stopping after the current micro-batch");
        let _ = tx.send(true);
        // Keep the sender (and the handlers) alive so later signals are absorbed too.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

fn print_report(global: &Global, report: &RunReport) {
    if global.json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    if !global.quiet {
        print!("{}", report.table());
    }
    println!("{}", report.summary_line());
}

/// A secret option's value (its `Debug` shows `***`).
fn secret(text: &str) -> Result<fitlake_config::Secret, String> {
    Ok(fitlake_config::Secret::new(text))
}

/// The tables `optimize` and `vacuum` work on: the one named, or every table.
fn maintained_tables(table: Option<&str>) -> Result<Vec<TableId>> {
    match table {
        Some(name) => {
            Ok(vec![name.parse().map_err(|e: fitlake_catalog::UnknownTable| Error::Config(e.to_string()))?])
        }
        None => Ok(TableId::ALL.to_vec()),
    }
}

fn default_run_args() -> RunArgs {
    RunArgs {
        once: true,
        stream: false,
        trigger: "5s".into(),
        auto_compact_files: 50,
        as_of: None,
        max_batch_bytes: 1 << 30,
        memory_budget: fitlake_pipeline::context::DEFAULT_MEMORY_BUDGET,
        threads: None,
        max_file_bytes: fitlake_pipeline::context::DEFAULT_MAX_FILE_BYTES,
        max_line_bytes: 1 << 20,
        min_file_age: "0s".into(),
        plausible_from: "2000-01-01".into(),
        plausible_until: "2100-01-01".into(),
        source: vec![SourceArg::Files],
        dsn: None,
        pg_password_file: None,
        pg_ca_file: None,
        kafka: KafkaArgs::default(),
    }
}

async fn fitlake(cli: FitlakeCli) -> Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Setup { calendar_from, calendar_to } => {
            let ctx = context(global, &default_run_args()).await?;
            let calendar = match (calendar_from, calendar_to) {
                (Some(from), Some(to)) => {
                    Some((parse_date("--calendar-from", &from)?, parse_date("--calendar-to", &to)?))
                }
                _ => None,
            };
            if let Some((from, to)) = calendar {
                if to < from {
                    return Err(Error::Config(format!("--calendar-to {to} is before --calendar-from {from}")));
                }
            }
            let report = fitlake_pipeline::setup::setup(&ctx, calendar).await?;
            print_report(global, &report);
        }
        Command::Produce {
            set,
            generate,
            users,
            days,
            seed,
            start,
            readings_per_file,
            time_ordered,
            to,
            kafka,
            partitions,
            compression,
        } => {
            let access = access(global).await?;
            access.require(&[Need::Files(Zone::Landing, Privilege::WriteFiles)])?;
            let sink = match to {
                ProduceTo::Landing => MultiplexSink::Landing,
                ProduceTo::Kafka => {
                    let source = KafkaSource { compression: compression.into(), ..kafka_source(&kafka, "--to kafka")? };
                    MultiplexSink::kafka(source, partitions).await?
                }
            };
            let written = if let Some(set) = set {
                crate::produce::produce_seed_set(&access, set, &sink).await?
            } else if generate {
                let start: NaiveDate = parse_date("--start", &start)?;
                let options = Synthetic { users: users.unwrap_or(0), days: days.unwrap_or(0), seed, start };
                let layout = if time_ordered { Layout::TimeOrdered } else { Layout::ByVisit };
                let (files, readings) =
                    crate::produce::produce_synthetic(&access, &sink, options, readings_per_file.max(1), layout)
                        .await?;
                tracing::info!(readings, "generated BPM readings");
                files
            } else {
                return Err(Error::Config("say what to produce: --set N, or --generate --users U --days D".into()));
            };
            if !global.quiet {
                for f in &written {
                    if f.starts_with("kafka:") {
                        println!("published {f}");
                    } else {
                        println!("landed {f}");
                    }
                }
            }
            println!("fitlake-produce: ok files={}", written.len());
        }
        Command::Run { run: args, layer } => {
            let layers: Vec<Layer> =
                if layer.is_empty() { Layer::ALL.to_vec() } else { layer.into_iter().map(Layer::from).collect() };
            run(global, &args, &layers).await?;
        }
        Command::Show { table, limit } => {
            let access = access(global).await?;
            let id: TableId = table.parse().map_err(|e: fitlake_catalog::UnknownTable| Error::Config(e.to_string()))?;
            let rows = Table::open(&access, id).await?.scan().collect().await?;
            let keys = &id.def().keys;
            let rows = if keys.is_empty() { rows } else { rows.sort(keys.clone(), SortMultipleOptions::default())? };
            println!("{id} ({} rows)\n{}", rows.height(), rows.head(Some(limit)));
        }
        Command::Sql { query, format, out, limit } => {
            let query = fitlake_pipeline::sql::Query::parse(&query)?;
            let rows = query.run(&access(global).await?).await?;
            crate::sql::write(&rows, format, out.as_deref(), limit)?;
        }
        Command::Report { out, png } => {
            let report =
                fitlake_pipeline::dashboard::dashboard(&access(global).await?, chrono::Utc::now().timestamp_millis())
                    .await?;
            crate::sql::write_report(&report, &out, png)?;
            println!("fitlake-report: ok {} charts={}", out.join("index.html").display(), report.charts.len());
        }
        Command::Status => {
            let ctx = context(global, &default_run_args()).await?;
            let mut needs: Vec<Need> = TableId::ALL.iter().map(|&t| Need::Table(t, Privilege::Select)).collect();
            needs.push(Need::Files(Zone::Landing, Privilege::ReadFiles));
            ctx.access().require(&needs)?;
            let tables = fitlake_pipeline::status::status(&ctx).await?;
            if global.json {
                println!("{}", serde_json::to_string_pretty(&tables).unwrap_or_default());
            } else {
                print!("{}", fitlake_pipeline::status::status_table(&tables));
                let behind = tables.iter().filter(|t| !t.caught_up()).count();
                println!("fitlake-status: ok tables={} behind={behind}", tables.len());
            }
        }
        Command::Governance { command: GovernanceCommand::Plan { current } } => {
            let policy = policy(global)?;
            // The plan only prints: storage is not touched.
            let lakehouse = lakehouse(global)?;
            let urls = fitlake_pipeline::setup::zone_urls(&lakehouse)?;
            let current = match current {
                Some(path) => Some(Current::parse(&read_config_file("--current", &path)?).map_err(config_error)?),
                None => None,
            };
            print!("{}", plan(&policy, &urls, current.as_ref()).map_err(config_error)?.render());
        }
        Command::Governance { command: GovernanceCommand::Acls } => {
            let policy = policy(global)?;
            // Printed only: storage is not touched.
            let urls = fitlake_pipeline::setup::zone_urls(&lakehouse(global)?)?;
            let entries = fitlake_governance::acl::storage_acls(&policy, &urls);
            print!("{}", fitlake_governance::acl::render_script(&entries));
        }
        Command::Serve {
            listen,
            tokens,
            tls_cert,
            tls_key,
            client_ca,
            max_in_flight,
            max_body_bytes,
            max_records,
            max_connections,
            header_timeout,
            body_timeout,
            drain_timeout,
        } => {
            let access = access(global).await?;
            access.require(&[Need::Files(Zone::Landing, Privilege::WriteFiles)])?;
            let options = fitlake_sources::serve::ServeOptions {
                max_in_flight,
                max_body_bytes,
                max_records,
                max_connections,
                header_timeout: parse_duration("--header-timeout", &header_timeout)?,
                body_timeout: parse_duration("--body-timeout", &body_timeout)?,
                drain_timeout: parse_duration("--drain-timeout", &drain_timeout)?,
                tokens,
                tls: tls_cert.zip(tls_key),
                client_ca,
                ..fitlake_sources::serve::ServeOptions::new(listen)
            };
            let stop = stop_on_signals()?;
            fitlake_sources::serve::serve(&access, &options, stop, |bound| {
                println!("fitlake-serve: listening on {bound}")
            })
            .await?;
            println!("fitlake-serve: stopped");
        }
        Command::Token { command } => {
            use fitlake_sources::tokens::TokenFile;
            match command {
                TokenCommand::New { name, tokens } => {
                    let mut file = TokenFile::read(&tokens)?;
                    let token = file.add(&name, &chrono::Utc::now().to_rfc3339())?;
                    file.write(&tokens)?;
                    eprintln!("fitlake-token: made {name}; it is shown once, keep it secret:");
                    println!("{}", token.expose());
                }
                TokenCommand::Revoke { name, tokens } => {
                    let mut file = TokenFile::read(&tokens)?;
                    if !file.revoke(&name) {
                        return Err(Error::Config(format!("no token named {name} in {}", tokens.display())));
                    }
                    file.write(&tokens)?;
                    println!("fitlake-token: revoked {name}");
                }
                TokenCommand::List { tokens } => {
                    for token in TokenFile::read(&tokens)?.tokens {
                        println!("{}\t{}", token.name, token.created);
                    }
                }
            }
        }
        Command::Optimize { table, target_file_size, zorder_by } => {
            let options = OptimizeOptions {
                target_file_bytes: parse_bytes("--target-file-size", &target_file_size)?,
                zorder_by: zorder_by.clone(),
            };
            let tables = maintained_tables(table.as_deref())?;
            let ctx = context(global, &default_run_args()).await?;
            ctx.access().require(&tables.iter().map(|&t| Need::Table(t, Privilege::Modify)).collect::<Vec<_>>())?;
            let reports = fitlake_pipeline::maintenance::optimize(&ctx, &tables, &options).await?;
            let (removed, added) = (
                reports.iter().map(|r| r.files_removed).sum::<u64>(),
                reports.iter().map(|r| r.files_added).sum::<u64>(),
            );
            if global.json {
                println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
            } else {
                for r in reports.iter().filter(|r| !global.quiet || r.version.is_some()) {
                    match r.version {
                        Some(v) => println!(
                            "{}: {} files ({} bytes) -> {} files ({} bytes) in {} partitions, {} rows, version {v}",
                            r.table,
                            r.files_removed,
                            r.bytes_removed,
                            r.files_added,
                            r.bytes_added,
                            r.partitions,
                            r.rows
                        ),
                        None => println!("{}: nothing to compact", r.table),
                    }
                }
                println!("fitlake-optimize: ok tables={} files_removed={removed} files_added={added}", reports.len());
            }
        }
        Command::Vacuum { table, retain, dry_run, force } => {
            let options = VacuumOptions {
                retain: retain.as_deref().map(|r| parse_duration("--retain", r)).transpose()?,
                dry_run,
                force,
            };
            let tables = maintained_tables(table.as_deref())?;
            let ctx = context(global, &default_run_args()).await?;
            ctx.access().require(&tables.iter().map(|&t| Need::Table(t, Privilege::Modify)).collect::<Vec<_>>())?;
            let reports = fitlake_pipeline::maintenance::vacuum(&ctx, &tables, &options).await?;
            let files: usize = reports.iter().map(|r| r.files.len()).sum();
            let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
            let logs: u64 = reports.iter().map(|r| r.log_files).sum();
            if global.json {
                println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                for r in reports.iter().filter(|_| !global.quiet) {
                    println!(
                        "{}: {verb} {} files ({} bytes), {} expired log files",
                        r.table,
                        r.files.len(),
                        r.bytes,
                        r.log_files
                    );
                    if dry_run {
                        for file in &r.files {
                            println!("  {file}");
                        }
                    }
                }
                println!(
                    "fitlake-vacuum: ok tables={} files={files} bytes={bytes} log_files={logs} dry_run={dry_run}",
                    reports.len()
                );
            }
        }
        Command::Quality { table, limit } => {
            let access = access(global).await?;
            let events = Table::open(&access, TableId::QualityEvents).await?.scan().collect().await?;
            print!("{}", fitlake_pipeline::report::quality_report(&events, table.as_deref(), limit)?);
        }
    }
    Ok(())
}

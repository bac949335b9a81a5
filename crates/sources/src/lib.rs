//! Where bronze's records come from besides landing files.
//!
//! - [`kafka`] (feature `kafka`): topics `user_info`, `workout` and `bpm`, every partition.
//! - [`postgres`] (feature `postgres`): tables `registrations` and `gym_logins`, by key.
//! - [`serve`] (feature `http`): the HTTP API; it lands accepted events as landing files, so
//!   bronze reads them like any other.
//!
//! Kafka and PostgreSQL are [`RecordSource`]s: a reader renders the next records in the
//! landing layout of the bronze table they feed (so the landing parsers validate and
//! quarantine them like landed files) and says, per stream (a partition; one for a table),
//! the position after them. Sources know nothing of Delta or `txn` actions: the pipeline
//! stores those positions in the bronze commit that holds the rows, which is what makes
//! ingestion exactly once.

use std::collections::BTreeMap;

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "http")]
pub mod serve;
#[cfg(any(feature = "kafka", feature = "postgres", feature = "http"))]
pub mod tls;
#[cfg(feature = "http")]
pub mod tokens;

/// A boxed error, the cause kept for [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; the message says what to fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// The Kafka cluster failed or refused a request (retryable).
    #[error("kafka at {brokers}: {source}")]
    Kafka {
        /// The bootstrap brokers.
        brokers: String,
        /// What the client said.
        #[source]
        source: BoxError,
    },
    /// The database failed or refused a request (retryable).
    #[error("postgres ({target}): {source}")]
    Postgres {
        /// Host and database, never the password.
        target: String,
        /// What the client said.
        #[source]
        source: BoxError,
    },
    /// Landing a file failed.
    #[cfg(feature = "http")]
    #[error(transparent)]
    Storage(#[from] fitlake_storage::Error),
    /// Something that should not happen happened: likely a bug, please report it.
    #[error("internal error (likely a bug): {0}")]
    Internal(#[source] BoxError),
}

impl Error {
    /// True when trying again may succeed (a broker or database that was unreachable or busy,
    /// storage that failed).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kafka { .. } | Error::Postgres { .. } => true,
            #[cfg(feature = "http")]
            Error::Storage(e) => matches!(e.kind(), fitlake_storage::ErrorKind::Infrastructure { retryable: true }),
            _ => false,
        }
    }

    /// True when the configuration is the user's to fix.
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_) => true,
            #[cfg(feature = "http")]
            Error::Storage(e) => matches!(e.kind(), fitlake_storage::ErrorKind::Config),
            _ => false,
        }
    }

    /// True when the error is a bug in fitlake.
    pub fn is_bug(&self) -> bool {
        match self {
            Error::Internal(_) => true,
            #[cfg(feature = "http")]
            Error::Storage(e) => matches!(e.kind(), fitlake_storage::ErrorKind::Bug),
            _ => false,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Records of one stream of a source, rendered in the landing layout of the bronze table they
/// feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// What bronze records as the rows' `source_file` (`kafka:bpm/0`, `postgres:gym_logins#1-9`).
    pub name: String,
    /// The records in the landing layout (CSV with a header, or multiplex envelopes).
    pub text: String,
    /// The stream the records were read from (a `topic/partition`; `""` for a table).
    pub stream: String,
    /// The position to resume the stream from once these records are committed.
    pub next: i64,
    /// The 1-based line of `text` that holds the first record (2 after a CSV header).
    pub first_line: u64,
    /// The source key of each record (Kafka offset, database id), in order.
    pub keys: Vec<i64>,
}

impl Part {
    /// The source key of the record on 1-based `line` of [`Part::text`].
    pub fn key_of_line(&self, line: u64) -> Option<i64> {
        self.keys.get(usize::try_from(line.checked_sub(self.first_line)?).ok()?).copied()
    }
}

/// A source of records for bronze tables, read incrementally by position.
#[async_trait::async_trait]
pub trait RecordSource: Send + Sync + std::fmt::Debug {
    /// The source's name (`kafka`, `postgres`), which the pipeline uses for its progress.
    fn name(&self) -> &'static str;

    /// True when the source feeds the bronze table of landing source `landing_source`.
    fn feeds(&self, landing_source: &str) -> bool;

    /// A reader for one run of the bronze step of `landing_source` (a connection; Kafka also
    /// fixes the end offsets a batch run stops at).
    async fn reader(&self, landing_source: &str) -> Result<Box<dyn SourceReader>>;
}

/// Reads the records of one bronze table from a source, batch by batch.
#[async_trait::async_trait]
pub trait SourceReader: Send {
    /// The streams whose committed positions [`SourceReader::next`] needs.
    fn streams(&self) -> Vec<String>;

    /// The records after the `committed` positions (a stream missing there is read from its
    /// beginning), about `max_bytes` of them; empty when there is nothing new.
    async fn next(&mut self, committed: &BTreeMap<String, i64>, max_bytes: u64) -> Result<Vec<Part>>;
}

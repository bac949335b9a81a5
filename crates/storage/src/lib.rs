//! fitlake's storage IO: everything that reads or writes a table or a zone.
//!
//! - [`access`]: the principal a command runs as; every table and zone access asks the policy.
//! - [`delta`]: opening, creating, scanning and committing Delta tables with deltalake
//!   (`table.scan().files(..).columns(..)`, `table.commit().add(..).remove(..).progress(..)`).
//! - [`folder`]: the unmanaged zones (landing files) through `object_store`.
//! - [`stores`]: where tables and zones live; [`Stores`] reaches any location through one
//!   client per container.
//! - `azure` (cargo feature `azure`): Azure Data Lake Storage credentials and containers.
//! - [`secret`]: the one type every secret is held in, and redaction of messages.
//! - [`maintenance`]: compaction (`OPTIMIZE`, Z-order) and `VACUUM`.
//! - [`lock`]: table locks that let concurrent runners on a local lakehouse take turns.
//! - [`fault`]: the crash-test hook the binaries install.
//!
//! Nothing here knows what a table means: that is the layer crates' and the pipeline's.

pub mod access;
#[cfg(feature = "azure")]
pub mod azure;
pub mod delta;
pub mod fault;
pub mod folder;
pub mod lock;
pub mod maintenance;
pub mod secret;
pub mod stores;

pub use access::{Access, Need};
pub use delta::{lane_shares, DataFile, Operation, Staged, Table, LANE_ROWS, STAGED_FILE_BYTES, WRITE_LANES};
pub use folder::{FileEntry, Folder};
pub use secret::{redact, Secret};
pub use stores::{AzureLocation, ContainerState, Stores};

/// A boxed error, the cause kept for [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of fitlake's storage IO, grouped by whose move it is (see [`Error::kind`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; the message says what to fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// A location could not be read or written (missing, unreachable, no permission).
    #[error("storage error at {location}: {source}")]
    Storage {
        /// The path or URL involved.
        location: String,
        /// What the storage said.
        #[source]
        source: BoxError,
    },
    /// A table has not been created yet.
    #[error("table {table} does not exist at {location}; run `fitlake setup` first")]
    NotSetUp {
        /// The qualified table name.
        table: String,
        /// Where it was looked for.
        location: String,
    },
    /// deltalake refused an operation on a table.
    #[error("delta table {table} (version {version}): {source}")]
    Delta {
        /// The qualified table name.
        table: String,
        /// The table version the operation started from (-1: none loaded).
        version: i64,
        /// The deltalake error (boxed: it is large, and errors travel in every `Result`).
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// A table uses a Delta feature fitlake cannot read correctly.
    #[error(
        "table {table} uses {feature}, which fitlake does not read; turn it off (or copy the table) \
         before running fitlake on it"
    )]
    Unsupported {
        /// The qualified table name.
        table: String,
        /// The feature and the property that turns it on.
        feature: String,
    },
    /// The stored progress of a step is unreadable.
    #[error("checkpoint {location} is unreadable: {message}")]
    Checkpoint {
        /// The table and version holding it.
        location: String,
        /// Why it could not be read.
        message: String,
    },
    /// The policy refuses the principal an access (nothing was written).
    #[error("{0}")]
    Denied(#[from] fitlake_governance::Denied),
    /// The identity running the command is no principal, or may not act as the one asked for.
    #[error("{0}")]
    Identity(#[from] fitlake_governance::identity::Refused),
    /// Converting rows between Polars and the table's Arrow schema failed: likely a bug.
    #[error("internal error (likely a bug) in table {table}: {source}")]
    Rows {
        /// The qualified table name.
        table: String,
        /// The conversion error.
        #[source]
        source: BoxError,
    },
    /// Something that should not happen happened: likely a bug, please report it.
    #[error("internal error (likely a bug): {0}")]
    Internal(#[source] BoxError),
}

/// Whose move an error is: what the person reading it should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Fix the configuration (options, environment, policy, expectations).
    Config,
    /// Ask for a grant: the policy refused an access.
    Denied,
    /// The data broke a `fail` expectation: fix the data or the expectation.
    Data,
    /// Storage, a database or a broker failed; `retryable` when trying again may succeed.
    Infrastructure {
        /// Trying again may succeed (a lost race, a network error, a throttled request).
        retryable: bool,
    },
    /// A bug in fitlake: report it.
    Bug,
}

impl Error {
    /// A storage error at `location` caused by `source`.
    pub fn storage(location: impl ToString, source: impl Into<BoxError>) -> Error {
        Error::Storage { location: location.to_string(), source: source.into() }
    }

    /// True when a commit lost a race with another writer of the same table (the step can be
    /// redone from the table's new state).
    pub fn is_commit_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        use deltalake::DeltaTableError;
        let Error::Delta { source, .. } = self else { return false };
        matches!(
            **source,
            DeltaTableError::VersionAlreadyExists(_)
                | DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)
                }
        )
    }

    /// Whose move the error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::NotSetUp { .. } | Error::Unsupported { .. } => ErrorKind::Config,
            Error::Denied(_) | Error::Identity(_) => ErrorKind::Denied,
            Error::Storage { .. } => ErrorKind::Infrastructure { retryable: true },
            Error::Delta { source, .. } => ErrorKind::Infrastructure {
                retryable: self.is_commit_conflict()
                    || matches!(**source, deltalake::DeltaTableError::ObjectStore { .. }),
            },
            Error::Checkpoint { .. } => ErrorKind::Infrastructure { retryable: false },
            Error::Rows { .. } | Error::Internal(_) => ErrorKind::Bug,
        }
    }
}

/// An error's message followed by those of its causes it does not already quote
/// (`error sending request: … Connection refused`).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = e.source();
    }
    text
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<fitlake_governance::Error> for Error {
    fn from(e: fitlake_governance::Error) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<fitlake_config::ConfigError> for Error {
    fn from(e: fitlake_config::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

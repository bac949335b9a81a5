//! fitlake's IO layer: everything that touches storage or a clock.
//!
//! - [`access`]: the principal a command runs as; every table and zone access asks the policy.
//! - [`storage`]: the unmanaged zones (landing files, checkpoint logs) through `object_store`.
//! - [`delta`]: opening, creating, reading and committing Delta tables with deltalake.
//! - [`progress`]: how each incremental step remembers what it has processed, exactly once.
//! - [`steps`]: one step per table, calling the pure transforms of the layer crates.
//! - [`run`]: running the layers in batch mode, with a report per table.
//! - [`stream`]: streaming mode, micro-batches on a processing-time trigger.
//! - [`lock`]: table locks that let concurrent runners take turns.
//! - [`status`]: each table's version, rows and how far its step is behind its sources.
//! - [`cli`]: the command line shared by `fitlake` and the per-layer binaries.

pub mod access;
pub mod azure;
pub mod cli;
pub mod delta;
pub mod fault;
pub mod kafka;
pub mod lock;
pub mod postgres;
pub mod produce;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod setup;
pub mod status;
pub mod steps;
pub mod storage;
pub mod stream;

/// Errors of fitlake's IO layer, grouped by whose move it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; the message says what to fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// A location could not be read or written (missing, unreachable, no permission).
    #[error("storage error at {location}: {message}")]
    Storage {
        /// The path or URL involved.
        location: String,
        /// What the storage said.
        message: String,
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
    #[error("delta table {table}: {source}")]
    Delta {
        /// The qualified table name.
        table: String,
        /// The deltalake error.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// The stored progress of a step is unreadable.
    #[error("checkpoint {location} is unreadable: {message}")]
    Checkpoint {
        /// The checkpoint file.
        location: String,
        /// Why it could not be read.
        message: String,
    },
    /// The policy refuses the principal an access (nothing was written).
    #[error("{0}")]
    Denied(#[from] fitlake_governance::Denied),
    /// A `fail` data-quality expectation failed: the step committed nothing.
    #[error("data quality: {0}")]
    Quality(String),
    /// A transform failed on data that passed validation: likely a bug, please report it.
    #[error("internal error (likely a bug): {0}")]
    Internal(String),
}

impl Error {
    /// True when a commit lost a race with another writer of the same table (the step can be
    /// redone from the table's new state).
    pub fn is_commit_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        matches!(
            self,
            Error::Delta {
                source: deltalake::DeltaTableError::VersionAlreadyExists(_)
                    | deltalake::DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)
                    },
                ..
            }
        )
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

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Internal(e.to_string())
            }
        }
    )*};
}
internal_from!(
    polars::prelude::PolarsError,
    fitlake_frame::Error,
    fitlake_landing::Error,
    fitlake_bronze::Error,
    fitlake_silver::Error,
    fitlake_gold::Error,
    deltalake::arrow::error::ArrowError
);

impl From<fitlake_governance::Error> for Error {
    fn from(e: fitlake_governance::Error) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<fitlake_quality::Error> for Error {
    fn from(e: fitlake_quality::Error) -> Self {
        match e {
            fitlake_quality::Error::Invalid(_) => Error::Config(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<fitlake_config::ConfigError> for Error {
    fn from(e: fitlake_config::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

//! The fitlake pipeline: one incremental, exactly-once step per table.
//!
//! - [`context`]: what a run is configured with ([`Context`], [`RunOptions`]).
//! - [`steps`]: one step per table, calling the pure transforms of the layer crates;
//!   [`steps::bronze`], [`steps::silver`], [`steps::gold`] hold one function per table, named
//!   after it.
//! - [`progress`]: how each incremental step remembers what it has processed, exactly once.
//! - [`run`]: running the steps of some layers once (batch mode), each under its table lock,
//!   redone when its commit loses a race.
//! - [`stream`]: streaming mode, micro-batches on a processing-time trigger.
//! - [`status`]: each table's version, rows and how far its step is behind its sources.
//! - [`setup`]: the zones, the tables, the catalog registry and `date_lookup`.
//! - [`report`]: what a run did, per table.
//! - `sql` (feature `sql`): SQL over the tables by their qualified names; `dashboard`: the
//!   report's queries and table states, built into a page by [`fitlake_report`].
//!
//! Storage IO is [`fitlake_storage`]'s; Kafka and PostgreSQL are [`fitlake_sources`]'s
//! [`RecordSource`](fitlake_sources::RecordSource)s; tables are named by
//! [`fitlake_catalog::TableId`].

pub mod context;
#[cfg(feature = "sql")]
pub mod dashboard;
pub mod maintenance;
pub mod meter;
pub mod progress;
pub mod report;
pub mod run;
pub mod setup;
#[cfg(feature = "sql")]
pub mod sql;
pub mod status;
pub mod steps;
pub mod stream;

pub use context::{Context, RunOptions};
pub use fitlake_catalog::TableId;
pub use fitlake_storage::{BoxError, ErrorKind};
pub use meter::{Meter, NoMeter, Unit};

/// Errors of a pipeline run, grouped by whose move it is (see [`Error::kind`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; the message says what to fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// Reading or writing a table or zone failed, or the policy refused it.
    #[error(transparent)]
    Storage(#[from] fitlake_storage::Error),
    /// A source (Kafka, PostgreSQL) failed.
    #[error(transparent)]
    Source(#[from] fitlake_sources::Error),
    /// A `fail` data-quality expectation failed: the step committed nothing.
    #[error("data quality: {0}")]
    Quality(String),
    /// A transform failed on data that passed validation: likely a bug, please report it.
    #[error("internal error (likely a bug) in the step of {table}: {source}")]
    Transform {
        /// The table whose step failed.
        table: TableId,
        /// The transform's error.
        #[source]
        source: BoxError,
    },
    /// Something that should not happen happened: likely a bug, please report it.
    #[error("internal error (likely a bug): {0}")]
    Internal(#[source] BoxError),
}

impl Error {
    /// True when a commit lost a race with another writer of the same table.
    pub fn is_commit_conflict(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_commit_conflict())
    }

    /// Whose move the error is: what the person reading it should do.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::Storage(e) => e.kind(),
            Error::Source(e) if e.is_config() => ErrorKind::Config,
            Error::Source(e) if e.is_bug() => ErrorKind::Bug,
            Error::Source(e) => ErrorKind::Infrastructure { retryable: e.is_retryable() },
            Error::Quality(_) => ErrorKind::Data,
            Error::Transform { .. } | Error::Internal(_) => ErrorKind::Bug,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the pure transforms (Polars, the layer crates): on data that passed validation,
/// a bug. [`run::run_step`] turns them into [`Error::Transform`], naming the table whose step
/// failed. A task of a step that panicked or was cancelled (`JoinError`) is a bug too.
macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Internal(e.into())
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
    tokio::task::JoinError
);

impl From<fitlake_quality::Error> for Error {
    fn from(e: fitlake_quality::Error) -> Self {
        match e {
            fitlake_quality::Error::Invalid(_) => Error::Config(e.to_string()),
            other => Error::Internal(other.into()),
        }
    }
}

impl From<fitlake_governance::Denied> for Error {
    fn from(e: fitlake_governance::Denied) -> Self {
        Error::Storage(e.into())
    }
}

impl From<fitlake_config::ConfigError> for Error {
    fn from(e: fitlake_config::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

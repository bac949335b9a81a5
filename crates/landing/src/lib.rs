//! Landing-zone record schemas.
//!
//! Pure functions from the text of a landing file to typed Polars frames, plus a list of the
//! records that could not be read, each with its file, line, raw text and reason (they go to
//! the quarantine table). Also the `date_lookup` calendar and the deterministic producer of
//! seed and synthetic landing data.

pub mod calendar;
pub mod chunks;
pub mod csv;
pub mod device_events;
pub mod multiplex;
pub mod quarantine;
mod scan;
pub mod seed;
pub mod synthetic;
pub mod time;
pub mod value;

pub use quarantine::{Parsed, Quarantined};
pub use time::TimeWindow;

/// How landing records are read: the plausible window of times, the longest record, and the
/// threads to parse on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Times outside it are quarantined.
    pub window: TimeWindow,
    /// A line (or CSV record) longer than this is quarantined, cut to a prefix with its length
    /// and SHA-256.
    pub max_line_bytes: usize,
    /// Threads to parse a file on.
    pub threads: usize,
}

impl Default for ReadOptions {
    /// The default window (2000 to 2100), lines of at most 1 MiB, one thread.
    fn default() -> Self {
        ReadOptions { window: TimeWindow::default(), max_line_bytes: 1 << 20, threads: 1 }
    }
}

/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the landing crate: a bug or an impossible frame, never a bad record (bad records
/// are quarantined, see [`Quarantined`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Polars refused to build a frame.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    /// A value passed by the caller is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The three landing sources, named after the bronze tables they feed.
pub mod sources {
    /// User registrations (CSV).
    pub const REGISTERED_USERS: &str = "registered_users_bz";
    /// Gym login/logout records (CSV).
    pub const GYM_LOGINS: &str = "gym_logins_bz";
    /// Kafka-style JSON envelopes of the topics `user_info`, `workout` and `bpm`.
    pub const KAFKA_MULTIPLEX: &str = "kafka_multiplex_bz";
    /// All landing sources.
    pub const ALL: [&str; 3] = [REGISTERED_USERS, GYM_LOGINS, KAFKA_MULTIPLEX];
}

/// Kafka topics carried by the multiplex.
pub mod topics {
    /// Profile change data capture: new, update, delete.
    pub const USER_INFO: &str = "user_info";
    /// Workout start/stop events.
    pub const WORKOUT: &str = "workout";
    /// Heart-rate readings.
    pub const BPM: &str = "bpm";
    /// All topics the pipeline knows.
    pub const ALL: [&str; 3] = [USER_INFO, WORKOUT, BPM];
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

//! How far a long step is: bronze reading a batch of landing files, `heart_rate` taking its
//! groups of readings files, `workout_bpm` its parts of sessions. Steps report to a [`Meter`];
//! the `fitlake` binary draws one as a progress bar when stderr is a terminal, and the
//! default, [`NoMeter`], shows nothing (an embedding service gets none unless it asks).

/// What a piece of work is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes read (landing files, bronze files).
    Bytes,
    /// Rows taken (sessions of `completed_workouts`).
    Rows,
}

/// Where steps say how far they are.
pub trait Meter: Send + Sync + std::fmt::Debug {
    /// Work of `total` `unit`s starts; `what` names it (`bronze.kafka_multiplex_bz batch 3`).
    fn begin(&self, what: &str, total: u64, unit: Unit);
    /// `done` more units of it are done.
    fn advance(&self, done: u64);
    /// `rows` more rows were written.
    fn written(&self, rows: u64);
    /// The work ended (committed, or nothing left).
    fn end(&self);
}

/// The meter that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMeter;

impl Meter for NoMeter {
    fn begin(&self, _: &str, _: u64, _: Unit) {}
    fn advance(&self, _: u64) {}
    fn written(&self, _: u64) {}
    fn end(&self) {}
}

//! The fitlake commands: the command line (clap), `produce`, log output and the crash-test
//! hook, shared by the `fitlake` binary and the per-layer jobs `fitlake-bronze`,
//! `fitlake-silver` and `fitlake-gold`. This crate is the program, not a library to embed:
//! services embed `fitlake-pipeline` (or the pure layer crates) instead.

pub mod cli;
mod fault;
mod logging;
mod meter;
mod produce;
mod sql;

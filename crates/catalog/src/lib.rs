//! Every fitlake table, named once.
//!
//! [`TableId`] is the one place that lists the managed tables: their layer, their definition
//! (schema, partitioning, keys, from the layer crates), the upstream tables each step consumes
//! and the order a run updates them. Code that needs "which table" takes a `TableId`, never a
//! string, so a table without a step, or a step without a table, is a compile error (`match`
//! on the enum) instead of an `other => Err(..)` arm found at run time. Names arrive as strings
//! only from people (the command line, policy and expectation files) and are parsed once with
//! [`TableId::from_name`].
//!
//! ```
//! use fitlake_catalog::TableId;
//! use fitlake_config::Layer;
//!
//! let t: TableId = "workout_bpm".parse()?;
//! assert_eq!(t.layer(), Layer::Silver);
//! assert_eq!(t.sources(), &[TableId::CompletedWorkouts, TableId::HeartRate, TableId::Users]);
//! assert_eq!(t.qualified_name(), "silver.workout_bpm");
//! assert_eq!(TableId::steps(Layer::Gold).collect::<Vec<_>>(), [TableId::WorkoutBpmSummary, TableId::GymSummary]);
//! # Ok::<(), fitlake_catalog::UnknownTable>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

pub use fitlake_config::Layer;
pub use fitlake_frame::TableDef;

/// Declares [`TableId`] from one list: each table's variant, doc, name constant and layer.
macro_rules! tables {
    ($($(#[$doc:meta])* $id:ident = $name:expr, $layer:ident;)*) => {
        /// A managed table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TableId {
            $($(#[$doc])* $id,)*
        }

        impl TableId {
            /// Every table: bronze, silver, gold; within a layer in the order a run updates them.
            pub const ALL: [TableId; [$(TableId::$id),*].len()] = [$(TableId::$id),*];

            /// The table's name (also its directory).
            pub fn name(self) -> &'static str {
                match self {
                    $(TableId::$id => $name,)*
                }
            }

            /// The layer (schema) it lives in.
            pub fn layer(self) -> Layer {
                match self {
                    $(TableId::$id => Layer::$layer,)*
                }
            }
        }
    };
}

tables! {
    /// `bronze.registered_users_bz`: registrations as landed.
    RegisteredUsersBz = fitlake_bronze::REGISTERED_USERS_BZ, Bronze;
    /// `bronze.gym_logins_bz`: gym logins and logouts as landed.
    GymLoginsBz = fitlake_bronze::GYM_LOGINS_BZ, Bronze;
    /// `bronze.kafka_multiplex_bz`: the multiplex envelopes (user_info, workout, bpm).
    KafkaMultiplexBz = fitlake_bronze::KAFKA_MULTIPLEX_BZ, Bronze;
    /// `bronze.date_lookup`: the calendar.
    DateLookup = fitlake_bronze::DATE_LOOKUP, Bronze;
    /// `bronze.landing_files`: bronze's batch plans (which landing files each batch reads).
    LandingFiles = fitlake_bronze::LANDING_FILES, Bronze;
    /// `bronze.quarantine`: every record that could not be used, with the reason.
    Quarantine = fitlake_bronze::QUARANTINE, Bronze;
    /// `bronze.quality_events`: the outcomes of the data-quality expectations.
    QualityEvents = fitlake_bronze::QUALITY_EVENTS, Bronze;
    /// `silver.users`: one row per registered user and device.
    Users = fitlake_silver::USERS, Silver;
    /// `silver.gym_logs`: one row per gym visit.
    GymLogs = fitlake_silver::GYM_LOGS, Silver;
    /// `silver.user_profile`: each user's current profile.
    UserProfile = fitlake_silver::USER_PROFILE, Silver;
    /// `silver.workouts`: workout start and stop events.
    Workouts = fitlake_silver::WORKOUTS, Silver;
    /// `silver.heart_rate`: bpm readings.
    HeartRate = fitlake_silver::HEART_RATE, Silver;
    /// `silver.user_bins`: each user's age band, gender and place.
    UserBins = fitlake_silver::USER_BINS, Silver;
    /// `silver.completed_workouts`: sessions whose start and stop were both seen.
    CompletedWorkouts = fitlake_silver::COMPLETED_WORKOUTS, Silver;
    /// `silver.workout_bpm`: the readings of each session.
    WorkoutBpm = fitlake_silver::WORKOUT_BPM, Silver;
    /// `gold.workout_bpm_summary`: bpm statistics per session, with the user's bins.
    WorkoutBpmSummary = fitlake_gold::WORKOUT_BPM_SUMMARY, Gold;
    /// `gold.gym_summary`: minutes in the gym and exercising, per visit and session.
    GymSummary = fitlake_gold::GYM_SUMMARY, Gold;
}

use TableId::*;

impl TableId {
    /// The bronze tables fed by a source (landing files, a database, Kafka), in run order.
    pub const INGESTED: [TableId; 3] = [RegisteredUsersBz, GymLoginsBz, KafkaMultiplexBz];

    /// `layer.name`, as analysts write it.
    pub fn qualified_name(self) -> String {
        format!("{}.{}", self.layer(), self.name())
    }

    /// The upstream tables the table's step consumes and records its progress through (empty
    /// for bronze tables, which read sources outside the lakehouse).
    pub fn sources(self) -> &'static [TableId] {
        match self {
            RegisteredUsersBz | GymLoginsBz | KafkaMultiplexBz | DateLookup | LandingFiles | Quarantine
            | QualityEvents => &[],
            Users => &[RegisteredUsersBz],
            GymLogs => &[GymLoginsBz],
            UserProfile | Workouts | HeartRate => &[KafkaMultiplexBz],
            UserBins => &[UserProfile],
            CompletedWorkouts => &[Workouts],
            WorkoutBpm => &[CompletedWorkouts, HeartRate, Users],
            WorkoutBpmSummary => &[WorkoutBpm, UserBins],
            GymSummary => &[GymLogs, CompletedWorkouts, Users],
        }
    }

    /// True when a run has a step for the table: the ingested bronze tables and every silver
    /// and gold table. (`date_lookup` is loaded by setup; the bookkeeping tables are written by
    /// the steps of other tables.)
    pub fn has_step(self) -> bool {
        Self::INGESTED.contains(&self) || self.layer() != Layer::Bronze
    }

    /// True when a `drop` expectation may refuse the table's rows before they are written: its
    /// step inserts new keys or upserts changed rows whose stored version stays when the new
    /// one is refused (`heart_rate`, `workout_bpm`). On a table recomputed as a sync, a dropped
    /// row would delete its stored version.
    pub fn insert_only(self) -> bool {
        matches!(self, Users | Workouts | HeartRate | CompletedWorkouts | WorkoutBpm)
    }

    /// The tables of `layer` that have a step, in the order a run updates them.
    pub fn steps(layer: Layer) -> impl Iterator<Item = TableId> {
        Self::ALL.into_iter().filter(move |t| t.layer() == layer && t.has_step())
    }

    /// The table's definition: schema, partitioning, keys, description.
    pub fn def(self) -> &'static TableDef {
        static DEFS: OnceLock<HashMap<&'static str, TableDef>> = OnceLock::new();
        let defs = DEFS.get_or_init(|| {
            let mut all = fitlake_bronze::tables();
            all.extend(fitlake_silver::tables());
            all.extend(fitlake_gold::tables());
            all.into_iter().map(|d| (d.name, d)).collect()
        });
        match defs.get(self.name()) {
            Some(def) => def,
            // The layer crates define every table this enum names; the catalog's test checks it.
            None => unreachable!("no definition of table {} in its layer crate (a bug)", self.name()),
        }
    }

    /// The table of that name (`heart_rate`, or qualified `silver.heart_rate`).
    pub fn from_name(name: &str) -> Option<TableId> {
        let (layer, bare) = match name.split_once('.') {
            Some((layer, bare)) => (Some(layer), bare),
            None => (None, name),
        };
        Self::ALL.into_iter().find(|t| t.name() == bare && layer.is_none_or(|l| l == t.layer().name()))
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer(), self.name())
    }
}

/// A table name that names no table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTable(pub String);

impl fmt::Display for UnknownTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        write!(f, "unknown table {:?}; the tables are {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownTable {}

impl std::str::FromStr for TableId {
    type Err = UnknownTable;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableId::from_name(s).ok_or_else(|| UnknownTable(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_named_once_and_defined_in_its_layer() {
        let mut names: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TableId::ALL.len());
        for t in TableId::ALL {
            let def = t.def();
            assert_eq!((def.name, def.layer), (t.name(), t.layer()), "{t}");
            assert_eq!(TableId::from_name(t.name()), Some(t));
            assert_eq!(t.qualified_name().parse::<TableId>(), Ok(t));
            for (name, dtype) in def.polars_schema().iter() {
                assert!(!dtype.is_unknown(), "{t}.{name}: no Polars type for its Arrow type");
            }
        }
        let defined = fitlake_bronze::tables().len() + fitlake_silver::tables().len() + fitlake_gold::tables().len();
        assert_eq!(defined, TableId::ALL.len(), "a layer crate defines a table the catalog does not name");
    }

    #[test]
    fn sources_run_before_their_consumers() {
        let position = |t: TableId| TableId::ALL.iter().position(|x| *x == t).unwrap_or(usize::MAX);
        for t in TableId::ALL {
            for s in t.sources() {
                assert!(position(*s) < position(t), "{s} must run before {t}");
                assert!(s.has_step(), "{t} consumes {s}, which no step writes");
            }
        }
        assert_eq!(TableId::steps(Layer::Bronze).collect::<Vec<_>>(), TableId::INGESTED);
        assert_eq!(TableId::steps(Layer::Silver).count(), 8);
        let unknown = "gold.users".parse::<TableId>().expect_err("users is a silver table");
        assert!(unknown.to_string().contains("the tables are registered_users_bz"), "{unknown}");
    }
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

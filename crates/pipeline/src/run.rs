//! Running the pipeline: each step under its table's lock, redone from the new state when its
//! commit loses a race with another runner; batch mode runs every step once.

use std::time::Instant;

use fitlake_catalog::TableId;
use fitlake_config::Layer;
use fitlake_governance::policy::Zone;
use fitlake_governance::Privilege;
use fitlake_quality::Expectations;
use fitlake_storage::lock::TableLock;
use fitlake_storage::Need;
use tracing::Instrument;

use crate::report::{RunReport, StepReport};
use crate::steps::{run_step_of, Context};
use crate::{Error, Result};

/// How many times a step is redone after losing a commit race before the run fails.
const MAX_CONFLICT_RETRIES: usize = 10;

/// Every access a run of `layers` needs, checked before it starts so that a refused run
/// writes nothing. Streaming runs also read the landing zone and bronze for their lag.
pub fn run_needs(layers: &[Layer], streaming: bool) -> Vec<Need> {
    use TableId::{DateLookup, LandingFiles, QualityEvents, Quarantine};
    let read = |t| Need::Table(t, Privilege::Select);
    let write = |t| Need::Table(t, Privilege::Modify);
    let mut needs = Vec::new();
    if streaming || layers.contains(&Layer::Bronze) {
        needs.push(Need::Files(Zone::Landing, Privilege::ReadFiles));
        needs.push(read(LandingFiles));
        needs.extend(TableId::INGESTED.into_iter().map(read));
    }
    if layers.contains(&Layer::Bronze) {
        needs.extend(TableId::INGESTED.into_iter().map(write));
        needs.extend([write(LandingFiles), read(DateLookup), read(Quarantine), write(Quarantine)]);
    }
    for layer in [Layer::Silver, Layer::Gold] {
        if !layers.contains(&layer) {
            continue;
        }
        for table in TableId::steps(layer) {
            needs.extend([read(table), write(table)]);
            needs.extend(table.sources().iter().copied().map(read));
        }
        needs.extend([read(Quarantine), write(Quarantine), read(QualityEvents), write(QualityEvents)]);
    }
    needs
}

/// The lock of `table` when the run takes table locks (see [`RunOptions::table_locks`]),
/// held until dropped.
///
/// [`RunOptions::table_locks`]: crate::context::RunOptions::table_locks
pub(crate) async fn table_lock(ctx: &Context, table: TableId) -> Result<Option<TableLock>> {
    Ok(match ctx.options.table_locks {
        true => TableLock::acquire(ctx.lakehouse(), table).await?,
        false => None,
    })
}

/// Runs the step of `table` on what is new, holding the table's lock.
pub async fn run_step(ctx: &Context, table: TableId) -> Result<StepReport> {
    let span = tracing::info_span!("step", table = %table);
    async {
        let _lock = table_lock(ctx, table).await?;
        let mut retries = 0;
        loop {
            match run_step_of(ctx, table).await {
                Err(e) if e.is_commit_conflict() && retries < MAX_CONFLICT_RETRIES => {
                    retries += 1;
                    tracing::warn!(table = %table, retries, "committed by another runner meanwhile; redoing its step");
                }
                // A transform failing is a bug in this table's step: say which.
                Err(Error::Internal(source)) => return Err(Error::Transform { table, source }),
                Ok(report) => {
                    tracing::info!(
                        rows_read = report.rows_read,
                        rows_written = report.rows_written,
                        quarantined = report.quarantined,
                        version = report.version,
                        seconds = report.seconds,
                        "step finished"
                    );
                    return Ok(report);
                }
                Err(e) => return Err(e),
            }
        }
    }
    .instrument(span)
    .await
}

/// The steps of `steps` (one run's) that `table`'s step waits for: the tables it reads (its
/// sources and the tables its expectations reference), so that it reads them as this run left
/// them whatever the timing, and for a bronze table the bronze step before it. The bronze
/// steps take turns in pipeline order: they claim their landing files in one table,
/// `bronze.landing_files`, and report to one progress meter, and a run that dies in one of them
/// (`FITLAKE_FAULT`, the kill -9 tests) then leaves no other bronze step half done by timing.
pub fn waits_for(expectations: &Expectations, table: TableId, steps: &[TableId]) -> Vec<TableId> {
    let mut waits: Vec<TableId> = table.sources().to_vec();
    waits.extend(expectations.references_of(table.name()).into_iter().filter_map(|(t, _)| TableId::from_name(t)));
    if let Some(turn) = TableId::INGESTED.iter().position(|t| *t == table) {
        waits.extend(TableId::INGESTED[..turn].iter().rev().find(|t| steps.contains(t)));
    }
    waits.retain(|t| *t != table && steps.contains(t));
    waits.sort_unstable();
    waits.dedup();
    waits
}

/// The tables a run of `steps` (each waiting for its `waits`) loads ahead, in the order its
/// steps will open them: those of the steps that wait (their targets and sources), then the
/// quarantine and `bronze.quality_events`, written when a step quarantines and when the run
/// ends. The tables of the steps that start at once are left to them: loading them twice at
/// the same moment would only slow both.
fn preloaded(steps: &[TableId], waits: &[Vec<TableId>]) -> Vec<TableId> {
    let mut at_once: Vec<TableId> = steps
        .iter()
        .zip(waits)
        .filter(|(_, waits)| waits.is_empty())
        .flat_map(|(table, _)| std::iter::once(*table).chain(table.sources().iter().copied()))
        .collect();
    if at_once.iter().any(|t| TableId::INGESTED.contains(t)) {
        at_once.push(TableId::LandingFiles);
    }
    let mut tables: Vec<TableId> = Vec::new();
    for (table, waits) in steps.iter().zip(waits) {
        if waits.is_empty() {
            continue;
        }
        tables.push(*table);
        tables.extend(table.sources());
        if TableId::INGESTED.contains(table) {
            tables.extend([TableId::LandingFiles, TableId::DateLookup]);
        }
    }
    tables.extend([TableId::Quarantine, TableId::QualityEvents]);
    let mut seen = std::collections::HashSet::new();
    tables.retain(|t| !at_once.contains(t) && seen.insert(*t));
    tables
}

/// Loads `tables` one after the other into the process's snapshots ([`fitlake_storage::Table::preload`]).
/// A table that does not load is left to the step that opens it, which says why.
async fn preload(ctx: Context, tables: Vec<TableId>) {
    for table in tables {
        if let Err(e) = fitlake_storage::Table::preload(ctx.access(), table).await {
            tracing::debug!(%table, error = %e, "not loaded ahead");
        }
    }
}

/// Runs the steps of `layers` once. Each step starts as soon as the steps it waits for (see
/// [`waits_for`]) have committed, so independent steps run side by side: `heart_rate` beside
/// `workouts` and `user_profile`, `gym_summary` beside `workout_bpm`. Their results are the
/// same as in pipeline order; the report lists them in pipeline order. When a step fails, no
/// further step starts; those already running finish (each commits whole or not at all), and
/// the first failure is returned.
pub async fn run_once(ctx: &Context, layers: &[Layer]) -> Result<RunReport> {
    let started = Instant::now();
    let span = tracing::info_span!("run", layers = ?layers, as_of = %ctx.options.as_of);
    async {
        let steps: Vec<TableId> =
            Layer::ALL.into_iter().filter(|l| layers.contains(l)).flat_map(TableId::steps).collect();
        let waits: Vec<Vec<TableId>> = steps.iter().map(|t| waits_for(ctx.expectations(), *t, &steps)).collect();
        let preloading = tokio::spawn(preload(ctx.clone(), preloaded(&steps, &waits)).in_current_span());
        let mut reports: Vec<Option<StepReport>> = vec![None; steps.len()];
        let mut begun = vec![false; steps.len()];
        let mut running = tokio::task::JoinSet::new();
        // Which table each task runs the step of, to name it if the task panics.
        let mut tasks = std::collections::HashMap::new();
        let mut failed: Option<Error> = None;
        loop {
            if failed.is_none() {
                for (i, table) in steps.iter().copied().enumerate() {
                    let done = |t: &TableId| steps.iter().position(|s| s == t).is_some_and(|p| reports[p].is_some());
                    if !begun[i] && waits[i].iter().all(done) {
                        begun[i] = true;
                        let ctx = ctx.clone();
                        let task = running.spawn(async move { (i, run_step(&ctx, table).await) }.in_current_span());
                        tasks.insert(task.id(), table);
                    }
                }
            }
            let Some(joined) = running.join_next().await else { break };
            match joined {
                Ok((i, Ok(step))) => reports[i] = Some(step),
                Ok((_, Err(e))) => _ = failed.get_or_insert(e),
                Err(e) => {
                    let table = tasks.get(&e.id()).map_or_else(|| "a table".to_string(), |t| t.to_string());
                    _ = failed.get_or_insert(Error::Internal(format!("bug: the step of {table} ended: {e}").into()))
                }
            }
        }
        // A load still going is only a cache being filled: the run does not wait for it.
        preloading.abort();
        // What the committed steps measured is logged, even when one failed.
        crate::steps::quality::flush(ctx).await?;
        if let Some(e) = failed {
            return Err(e);
        }
        let mut report = RunReport::default();
        reports.into_iter().flatten().for_each(|step| report.push(step));
        report.finish(started.elapsed());
        Ok(report)
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use TableId::*;

    #[test]
    fn a_run_loads_ahead_the_tables_of_the_steps_that_wait() {
        let expectations = Expectations::parse("", &[], &[]).expect("expectations");
        let plan = |steps: &[TableId]| {
            let waits: Vec<Vec<TableId>> = steps.iter().map(|t| waits_for(&expectations, *t, steps)).collect();
            preloaded(steps, &waits)
        };
        let all: Vec<TableId> = Layer::ALL.into_iter().flat_map(TableId::steps).collect();
        let ahead = plan(&all);
        // The first step's tables are its own to load; the bronze plan log too.
        for first in [RegisteredUsersBz, LandingFiles] {
            assert!(!ahead.contains(&first), "{first} is loaded by the first step");
        }
        // Every other table a step opens, once, in the order the steps open them.
        for table in [GymLoginsBz, KafkaMultiplexBz, DateLookup, Users, Workouts, HeartRate, WorkoutBpm, GymSummary] {
            assert_eq!(ahead.iter().filter(|t| **t == table).count(), 1, "{table}");
        }
        let at = |t: TableId| ahead.iter().position(|a| *a == t).expect("loaded ahead");
        assert!(at(KafkaMultiplexBz) < at(HeartRate) && at(HeartRate) < at(WorkoutBpm));
        assert_eq!(ahead[ahead.len() - 2..], [Quarantine, QualityEvents]);
        // A silver run starts with the steps that read only bronze: those are left to them.
        let silver: Vec<TableId> = TableId::steps(Layer::Silver).collect();
        let ahead = plan(&silver);
        assert!(!ahead.contains(&HeartRate) && !ahead.contains(&KafkaMultiplexBz));
        assert!(ahead.contains(&WorkoutBpm) && ahead.contains(&CompletedWorkouts));
    }

    #[test]
    fn a_step_waits_for_what_it_reads_and_bronze_steps_take_turns() {
        let known: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        let toml = "[[expectation]]\ntable = \"workouts\"\nname = \"known_user\"\ncheck = \"references\"\n\
                    column = \"user_id\"\nref_table = \"users\"\nref_column = \"user_id\"\naction = \"warn\"\n";
        let expectations = Expectations::parse(toml, &known, &[]).expect("expectations");
        let all: Vec<TableId> = Layer::ALL.into_iter().flat_map(TableId::steps).collect();
        let waits = |table, steps: &[TableId]| waits_for(&expectations, table, steps);
        let set = |mut tables: Vec<TableId>| {
            tables.sort_unstable();
            tables
        };
        assert_eq!(waits(RegisteredUsersBz, &all), []);
        assert_eq!(waits(GymLoginsBz, &all), [RegisteredUsersBz]);
        assert_eq!(waits(KafkaMultiplexBz, &all), [GymLoginsBz]);
        assert_eq!(waits(KafkaMultiplexBz, &[RegisteredUsersBz, KafkaMultiplexBz]), [RegisteredUsersBz]);
        assert_eq!(waits(HeartRate, &all), [KafkaMultiplexBz]);
        // A referenced table is read too: `workouts` checks its users against `users`.
        assert_eq!(waits(Workouts, &all), set(vec![Users, KafkaMultiplexBz]));
        assert_eq!(waits(WorkoutBpm, &all), set(vec![Users, CompletedWorkouts, HeartRate]));
        assert_eq!(waits(GymSummary, &all), set(vec![Users, GymLogs, CompletedWorkouts]));
        // A run of some layers waits only for steps it runs.
        let silver: Vec<TableId> = TableId::steps(Layer::Silver).collect();
        assert_eq!(waits(Workouts, &silver), [Users]);
        assert_eq!(waits(HeartRate, &silver), []);
        // No step waits for itself through others: some order runs them all.
        let mut done: Vec<TableId> = Vec::new();
        while done.len() < all.len() {
            let ready = all.iter().find(|t| !done.contains(t) && waits(**t, &all).iter().all(|w| done.contains(w)));
            done.push(*ready.expect("the steps wait for each other in a cycle"));
        }
    }
}

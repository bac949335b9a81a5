//! Running the pipeline: each step under its table's lock, redone from the new state when its
//! commit loses a race with another runner; batch mode runs every step once.

use std::time::Instant;

use fitlake_catalog::TableId;
use fitlake_config::Layer;
use fitlake_governance::policy::Zone;
use fitlake_governance::Privilege;
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

/// Runs the steps of `layers` once, in pipeline order.
pub async fn run_once(ctx: &Context, layers: &[Layer]) -> Result<RunReport> {
    let started = Instant::now();
    let span = tracing::info_span!("run", layers = ?layers, as_of = %ctx.options.as_of);
    async {
        let mut report = RunReport::default();
        for layer in Layer::ALL.into_iter().filter(|l| layers.contains(l)) {
            for table in TableId::steps(layer) {
                match run_step(ctx, table).await {
                    Ok(step) => report.push(step),
                    Err(e) => {
                        // What the committed steps measured is still logged.
                        crate::steps::quality::flush(ctx).await?;
                        return Err(e);
                    }
                }
            }
        }
        crate::steps::quality::flush(ctx).await?;
        report.finish(started.elapsed());
        Ok(report)
    }
    .instrument(span)
    .await
}

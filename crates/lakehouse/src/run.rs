//! Running the pipeline: each step under its table's lock, redone from the new state when its
//! commit loses a race with another runner; batch mode runs every step once.

use std::time::Instant;

use fitlake_config::Layer;

use crate::lock::TableLock;
use crate::report::{RunReport, StepReport};
use crate::steps::{bronze, gold, silver, table_def, Context};
use crate::Result;

/// How many times a step is redone after losing a commit race before the run fails.
const MAX_CONFLICT_RETRIES: usize = 10;

/// The tables of `layer` in the order a run updates them.
pub fn layer_tables(layer: Layer) -> &'static [&'static str] {
    match layer {
        Layer::Bronze => &bronze::LANDING_TABLES,
        Layer::Silver => &silver::TABLES,
        Layer::Gold => &gold::TABLES,
    }
}

/// Runs the step of `table` (of `layer`) on what is new, holding the table's lock.
pub async fn run_step(ctx: &Context, layer: Layer, table: &str) -> Result<StepReport> {
    let def = table_def(table)?;
    let _lock = TableLock::acquire(ctx, &def).await?;
    let mut retries = 0;
    loop {
        let result = match layer {
            Layer::Bronze => bronze::ingest(ctx, table).await,
            Layer::Silver => silver::run(ctx, table).await,
            Layer::Gold => gold::run(ctx, table).await,
        };
        match result {
            Err(e) if e.is_commit_conflict() && retries < MAX_CONFLICT_RETRIES => {
                retries += 1;
                eprintln!(
                    "fitlake: {} was committed by another runner meanwhile; redoing its step",
                    def.qualified_name()
                );
            }
            other => return other,
        }
    }
}

/// Runs the steps of `layers` once, in pipeline order.
pub async fn run_once(ctx: &Context, layers: &[Layer]) -> Result<RunReport> {
    let started = Instant::now();
    let mut report = RunReport::default();
    for layer in Layer::ALL.into_iter().filter(|l| layers.contains(l)) {
        for table in layer_tables(layer) {
            report.push(run_step(ctx, layer, table).await?);
        }
    }
    report.finish(started.elapsed());
    Ok(report)
}

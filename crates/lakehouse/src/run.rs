//! Running the pipeline: each step under its table's lock, redone from the new state when its
//! commit loses a race with another runner; batch mode runs every step once.

use std::time::Instant;

use fitlake_config::Layer;

use fitlake_governance::policy::Zone;
use fitlake_governance::Privilege;

use crate::access::Need;
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

/// Every access a run of `layers` needs, checked before it starts so that a refused run
/// writes nothing. Streaming runs also read the landing zone and bronze for their lag.
pub fn run_needs(layers: &[Layer], streaming: bool) -> Vec<Need> {
    use fitlake_bronze::{DATE_LOOKUP, LANDING_FILES, QUALITY_EVENTS, QUARANTINE};
    let read = |layer, name| Need::Table(layer, name, Privilege::Select);
    let write = |layer, name| Need::Table(layer, name, Privilege::Modify);
    let mut needs = Vec::new();
    if streaming || layers.contains(&Layer::Bronze) {
        needs.push(Need::Files(Zone::Landing, Privilege::ReadFiles));
        needs.push(read(Layer::Bronze, LANDING_FILES));
        needs.extend(bronze::LANDING_TABLES.into_iter().map(|t| read(Layer::Bronze, t)));
    }
    if layers.contains(&Layer::Bronze) {
        needs.extend(bronze::LANDING_TABLES.into_iter().map(|t| write(Layer::Bronze, t)));
        needs.extend([write(Layer::Bronze, LANDING_FILES), read(Layer::Bronze, DATE_LOOKUP)]);
        needs.extend([read(Layer::Bronze, QUARANTINE), write(Layer::Bronze, QUARANTINE)]);
    }
    for (layer, steps) in [(Layer::Silver, &silver::SOURCES[..]), (Layer::Gold, &gold::SOURCES[..])] {
        if !layers.contains(&layer) {
            continue;
        }
        for (table, sources) in steps {
            needs.extend([read(layer, table), write(layer, table)]);
            for source in sources.iter() {
                let source_layer = table_def(source).map_or(layer, |d| d.layer);
                needs.push(read(source_layer, source));
            }
        }
        needs.extend([read(Layer::Bronze, QUARANTINE), write(Layer::Bronze, QUARANTINE)]);
        needs.extend([read(Layer::Bronze, QUALITY_EVENTS), write(Layer::Bronze, QUALITY_EVENTS)]);
    }
    needs
}

/// Runs the step of `table` (of `layer`) on what is new, holding the table's lock.
pub async fn run_step(ctx: &Context, layer: Layer, table: &str) -> Result<StepReport> {
    let def = table_def(table)?;
    let _lock = TableLock::acquire(ctx, &def).await?;
    let mut retries = 0;
    loop {
        let result = match layer {
            Layer::Bronze => match (&ctx.postgres, &ctx.kafka) {
                (Some(source), _) if crate::postgres::feeds(table) => bronze::ingest_postgres(ctx, table, source).await,
                (_, Some(source)) if crate::kafka::feeds(table) => bronze::ingest_kafka(ctx, table, source).await,
                _ => bronze::ingest(ctx, table).await,
            },
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
            match run_step(ctx, layer, table).await {
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

//! Batch mode: every step of the chosen layers on everything new, then exit.

use std::time::Instant;

use fitlake_config::Layer;

use crate::report::RunReport;
use crate::steps::{bronze, gold, silver, Context};
use crate::Result;

/// Runs the steps of `layers` once, in pipeline order.
pub async fn run_once(ctx: &Context, layers: &[Layer]) -> Result<RunReport> {
    let started = Instant::now();
    let mut report = RunReport::default();
    for layer in Layer::ALL.into_iter().filter(|l| layers.contains(l)) {
        match layer {
            Layer::Bronze => {
                for table in bronze::LANDING_TABLES {
                    report.push(bronze::ingest(ctx, table).await?);
                }
            }
            Layer::Silver => {
                for table in silver::TABLES {
                    report.push(silver::run(ctx, table).await?);
                }
            }
            Layer::Gold => {
                for table in gold::TABLES {
                    report.push(gold::run(ctx, table).await?);
                }
            }
        }
    }
    report.finish(started.elapsed());
    Ok(report)
}

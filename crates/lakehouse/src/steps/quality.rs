//! Data-quality expectations around a step's commit: checked on the rows it is about to write
//! (dropped rows to the quarantine, a failed `fail` expectation stops the step before it
//! commits), and recorded per table and expectation in `bronze.quality_events`.

use std::collections::HashMap;

use fitlake_bronze::{QUALITY_EVENTS, QUARANTINE};
use fitlake_landing::Quarantined;
use fitlake_quality::{evaluate, Outcome};
use polars::prelude::*;

use super::bronze::write_quarantine;
use super::{open, Context};
use crate::delta::{Operation, Table};
use crate::progress::app_id;
use crate::{Error, Result};

/// The rows a step may write after its table's expectations were checked.
#[derive(Debug)]
pub struct Checked {
    /// The rows to write.
    pub rows: DataFrame,
    /// Counts per expectation, to record once the step has committed.
    pub outcomes: Vec<Outcome>,
    /// Rows a `drop` expectation sent to the quarantine.
    pub dropped: u64,
}

/// Checks `target`'s expectations on `rows`. `drop_allowed` is false for MERGE plans, whose
/// rows replace stored versions.
pub async fn check(ctx: &Context, target: &Table, rows: &DataFrame, drop_allowed: bool) -> Result<Checked> {
    let table = target.def.name;
    let expectations = ctx.expectations.of(table);
    if expectations.is_empty() || rows.height() == 0 {
        return Ok(Checked { rows: rows.clone(), outcomes: Vec::new(), dropped: 0 });
    }
    let mut references = HashMap::new();
    for (ref_table, ref_column) in ctx.expectations.references_of(table) {
        let referenced = open(ctx, ref_table).await?;
        let keys = referenced.read(&referenced.files(None)?, Some(&[ref_column]), false).await?;
        references.insert((ref_table.to_string(), ref_column.to_string()), keys);
    }
    let evaluation = evaluate(&expectations, rows, &references, ctx.as_of)?;
    let failures = evaluation.failures();
    if !failures.is_empty() {
        record(ctx, table, &evaluation.outcomes, None).await?;
        return Err(Error::Quality(format!(
            "{}; nothing was committed to {}",
            failures.join("; "),
            target.def.qualified_name()
        )));
    }
    let dropped = evaluation.dropped.height() as u64;
    if dropped > 0 {
        if !drop_allowed {
            return Err(Error::Config(format!(
                "a `drop` expectation on {} would delete stored rows; use `warn` or `fail`",
                target.def.qualified_name()
            )));
        }
        let records = quarantined(&evaluation.dropped)?;
        let mut quarantine = open(ctx, QUARANTINE).await?;
        write_quarantine(ctx, &mut quarantine, table, "expectations", &records, target.version() + 1).await?;
    }
    Ok(Checked { rows: evaluation.kept, outcomes: evaluation.outcomes, dropped })
}

/// Dropped rows as quarantine records: the row as `column=value` pairs, the expectation as the
/// reason.
fn quarantined(dropped: &DataFrame) -> Result<Vec<Quarantined>> {
    let names: Vec<String> = dropped.get_column_names().iter().map(|n| n.to_string()).collect();
    let mut out = Vec::with_capacity(dropped.height());
    for i in 0..dropped.height() {
        let row = dropped.get_row(i)?;
        let mut raw = Vec::new();
        let mut reason = String::new();
        for (name, value) in names.iter().zip(row.0.iter()) {
            if name == "reason" {
                reason = value.get_str().unwrap_or_default().to_string();
            } else {
                raw.push(format!("{name}={value}"));
            }
        }
        out.push(Quarantined { source_file: String::new(), line: 0, raw: raw.join(", "), reason });
    }
    Ok(out)
}

/// Records the outcomes of one step run in `bronze.quality_events`; `version` is the table
/// version the step committed (`None` when a `fail` expectation stopped it). Exactly once per
/// committed version.
pub async fn record(ctx: &Context, table: &str, outcomes: &[Outcome], version: Option<i64>) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut events = open(ctx, QUALITY_EVENTS).await?;
    let app = app_id(QUALITY_EVENTS, table);
    let txns = match version {
        Some(v) if events.progress(&app).await?.is_some_and(|done| done >= v) => return Ok(()),
        Some(v) => vec![(app, v)],
        None => Vec::new(),
    };
    let n = outcomes.len();
    let run_time = Column::new("run_time".into(), vec![ctx.load_time_micros; n])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    let count = |f: fn(&Outcome) -> u64| outcomes.iter().map(|o| f(o) as i64).collect::<Vec<_>>();
    let rows = DataFrame::new(
        n,
        vec![
            run_time,
            Column::new("table".into(), vec![table; n]),
            Column::new("expectation".into(), outcomes.iter().map(|o| o.expectation.as_str()).collect::<Vec<_>>()),
            Column::new("action".into(), outcomes.iter().map(|o| o.action.name()).collect::<Vec<_>>()),
            Column::new("rows_checked".into(), count(|o| o.checked)),
            Column::new("rows_passed".into(), count(|o| o.passed)),
            Column::new("rows_failed".into(), count(|o| o.failed)),
            Column::new("table_version".into(), vec![version; n]),
        ],
    )?;
    events.commit_rows(&rows, &[], &txns, Operation::Append).await?;
    Ok(())
}

//! Data-quality expectations around a step's commit: checked on the rows it is about to write
//! (dropped rows to the quarantine, a failed `fail` expectation stops the step before it
//! commits), and recorded per table and expectation in `bronze.quality_events` when the run
//! ends.

use std::collections::HashMap;

use fitlake_catalog::TableId;
use fitlake_landing::Quarantined;
use fitlake_quality::{evaluate, Outcome};
use polars::prelude::*;

use fitlake_storage::Table;

use super::bronze::write_quarantine;
use super::{Context, StepEnv};
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
pub async fn check(env: &StepEnv<'_>, target: &Table, rows: &DataFrame, drop_allowed: bool) -> Result<Checked> {
    let table = target.id();
    let expectations = env.expectations().of(table.name());
    if expectations.is_empty() || rows.height() == 0 {
        return Ok(Checked { rows: rows.clone(), outcomes: Vec::new(), dropped: 0 });
    }
    let mut references = HashMap::new();
    for (ref_table, ref_column) in env.expectations().references_of(table.name()) {
        let referenced = env.referenced(known_table(ref_table)?).await?;
        let keys = referenced.scan().columns(&[ref_column]).collect().await?;
        references.insert((ref_table.to_string(), ref_column.to_string()), keys);
    }
    let evaluation = evaluate(&expectations, rows, &references, env.options().as_of)?;
    let failures = evaluation.failures();
    if !failures.is_empty() {
        record(env, &evaluation.outcomes, None).await?;
        return Err(Error::Quality(format!("{}; nothing was committed to {}", failures.join("; "), target.id())));
    }
    let dropped = evaluation.dropped.height() as u64;
    if dropped > 0 {
        if !drop_allowed {
            return Err(Error::Config(format!(
                "a `drop` expectation on {} would delete stored rows; use `warn` or `fail`",
                target.id()
            )));
        }
        let records = quarantined(&evaluation.dropped)?;
        let mut quarantine = env.quarantine().await?;
        let load_time = env.options().load_time_micros;
        write_quarantine(load_time, &mut quarantine, table, "expectations", &records, target.version() + 1).await?;
    }
    Ok(Checked { rows: evaluation.kept, outcomes: evaluation.outcomes, dropped })
}

/// The table an expectation names (checked when the expectations were loaded).
fn known_table(name: &str) -> Result<TableId> {
    TableId::from_name(name).ok_or_else(|| Error::Config(format!("an expectation references unknown table {name:?}")))
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

/// Notes the outcomes of one step commit of `env`'s table; `version` is the table version the step committed
/// (`None` when a `fail` expectation stopped it, which is written at once).
pub async fn record(env: &StepEnv<'_>, outcomes: &[Outcome], version: Option<i64>) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let run = env.run();
    run.events.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((
        env.table(),
        outcomes.to_vec(),
        version,
    ));
    if version.is_none() {
        flush(run).await?;
    }
    Ok(())
}

/// Writes the noted outcomes in one commit, with a `txn` per table on the version its step
/// committed, so a rerun never logs a commit twice.
pub async fn flush(ctx: &Context) -> Result<()> {
    let pending = ctx.events.take();
    if pending.is_empty() {
        return Ok(());
    }
    // Another runner may log its own outcomes at the same moment (both guarded per table by
    // their `txn`): a lost race is redone from the table's new state.
    let mut attempt = 0;
    loop {
        match write_events(ctx, pending.clone()).await {
            Err(e) if e.is_commit_conflict() && attempt < 5 => {
                attempt += 1;
                tracing::warn!(attempt, "quality events committed by another runner meanwhile; writing ours again");
            }
            done => return done,
        }
    }
}

/// One attempt of [`flush`].
async fn write_events(ctx: &Context, pending: Vec<crate::context::StepOutcomes>) -> Result<()> {
    let mut events = ctx.open(TableId::QualityEvents).await?;
    let mut txns: Vec<(String, i64)> = Vec::new();
    let mut rows: Vec<(TableId, Outcome, Option<i64>)> = Vec::new();
    for (table, outcomes, version) in pending {
        if let Some(v) = version {
            let app = app_id(TableId::QualityEvents, table.name());
            if events.progress(&app).await?.is_some_and(|done| done >= v) {
                continue;
            }
            match txns.iter_mut().find(|(a, _)| *a == app) {
                Some(t) => t.1 = t.1.max(v),
                None => txns.push((app, v)),
            }
        }
        rows.extend(outcomes.into_iter().map(|o| (table, o, version)));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let run_time = Column::new("run_time".into(), vec![ctx.options.load_time_micros; n])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    let count = |f: fn(&Outcome) -> u64| rows.iter().map(|(_, o, _)| f(o) as i64).collect::<Vec<_>>();
    let frame = DataFrame::new(
        n,
        vec![
            run_time,
            Column::new("table".into(), rows.iter().map(|(t, _, _)| t.name()).collect::<Vec<_>>()),
            Column::new("expectation".into(), rows.iter().map(|(_, o, _)| o.expectation.as_str()).collect::<Vec<_>>()),
            Column::new("action".into(), rows.iter().map(|(_, o, _)| o.action.name()).collect::<Vec<_>>()),
            Column::new("rows_checked".into(), count(|o| o.checked)),
            Column::new("rows_passed".into(), count(|o| o.passed)),
            Column::new("rows_failed".into(), count(|o| o.failed)),
            Column::new("table_version".into(), rows.iter().map(|(_, _, v)| *v).collect::<Vec<_>>()),
        ],
    )?;
    events.commit().rows(&frame).progress(txns).await?;
    Ok(())
}

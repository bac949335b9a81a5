//! Bronze steps: landing files into the append-only bronze tables, each file exactly once.

use std::collections::HashSet;

use fitlake_bronze::{DATE_LOOKUP, GYM_LOGINS_BZ, KAFKA_MULTIPLEX_BZ, QUARANTINE, REGISTERED_USERS_BZ};
use fitlake_landing::quarantine::quarantine_frame;
use fitlake_landing::{Parsed, Quarantined};
use polars::prelude::*;

use super::{open, Context, StepTimer};
use crate::delta::{Operation, Table};
use crate::fault;
use crate::progress::{app_id, BatchPlan, PlanLog};
use crate::report::StepReport;
use crate::storage::Folder;
use crate::{Error, Result};

/// The bronze tables fed from landing folders, in the order a run ingests them.
pub const LANDING_TABLES: [&str; 3] = [REGISTERED_USERS_BZ, GYM_LOGINS_BZ, KAFKA_MULTIPLEX_BZ];

/// The plan log of a bronze table.
pub fn plan_log(ctx: &Context, table: &str) -> Result<PlanLog> {
    Ok(PlanLog::new(Folder::open(&ctx.lakehouse.checkpoint_url(&format!("bronze/{table}/offsets")))?))
}

/// Ingests every new landing file of `table`'s source, in batches of at most
/// `ctx.max_batch_bytes`.
pub async fn ingest(ctx: &Context, table: &str) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, &format!("bronze.{table}"));
    let landing = Folder::open(&ctx.lakehouse.landing_url(table))?;
    let log = plan_log(ctx, table)?;
    let app = app_id(table, "landing");
    let mut target = open(ctx, table).await?;
    let mut quarantine = open(ctx, QUARANTINE).await?;
    let date_lookup =
        if table == KAFKA_MULTIPLEX_BZ { Some(open(ctx, DATE_LOOKUP).await?.read_all(false).await?) } else { None };
    let mut report = StepReport::default();
    loop {
        let committed = target.progress(&app).await?.unwrap_or(-1);
        let plans = log.load().await?;
        let batch = committed + 1;
        let plan = match plans.get(&batch) {
            // Planned by a run that died before committing: redo exactly those files.
            Some(plan) => plan.clone(),
            None => {
                let seen: HashSet<&str> =
                    plans.range(..batch).flat_map(|(_, p)| p.files.iter().map(String::as_str)).collect();
                let mut files = Vec::new();
                let mut bytes = 0u64;
                for entry in landing.list().await? {
                    if seen.contains(entry.name.as_str()) {
                        continue;
                    }
                    if !files.is_empty() && bytes + entry.size > ctx.max_batch_bytes {
                        break;
                    }
                    bytes += entry.size;
                    files.push(entry.name);
                }
                if files.is_empty() {
                    break;
                }
                let plan = BatchPlan { batch, files };
                log.write(&plan).await?;
                fault::point("after-plan", table);
                plan
            }
        };
        let mut staged = target.stage()?;
        let mut bad: Vec<Quarantined> = Vec::new();
        for file in &plan.files {
            let bytes = landing.read(file).await?;
            let text = std::str::from_utf8(&bytes)
                .map_or_else(|_| String::from_utf8_lossy(&bytes), std::borrow::Cow::Borrowed);
            let parsed = parse(ctx, table, &text, file)?;
            report.rows_read += (parsed.rows.height() + parsed.quarantined.len()) as u64;
            let rows = match &date_lookup {
                Some(lookup) => fitlake_bronze::kafka_multiplex_bz(&parsed.rows, lookup, ctx.load_time_micros, file)?,
                None => fitlake_bronze::stamp(&parsed.rows, ctx.load_time_micros, Some(file))?,
            };
            staged.write(&rows).await?;
            bad.extend(parsed.quarantined);
        }
        report.quarantined += bad.len() as u64;
        write_quarantine(ctx, &mut quarantine, table, &bad, plan.batch).await?;
        report.rows_written += staged.rows();
        report.inserted += staged.rows();
        report.version = target.commit(staged, &[], &[(app.clone(), plan.batch)], Operation::Append).await?;
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

fn parse(ctx: &Context, table: &str, text: &str, file: &str) -> Result<Parsed> {
    Ok(match table {
        REGISTERED_USERS_BZ => fitlake_landing::csv::parse_registered_users(text, file)?,
        GYM_LOGINS_BZ => fitlake_landing::csv::parse_gym_logins(text, file)?,
        KAFKA_MULTIPLEX_BZ => fitlake_landing::multiplex::parse_kafka_multiplex(text, file, ctx.threads)?,
        other => return Err(Error::Internal(format!("{other} has no landing source"))),
    })
}

/// Appends quarantined records of `table`'s batch `batch`, exactly once: the quarantine
/// table's own progress for `table` says whether the batch is already there.
pub async fn write_quarantine(
    ctx: &Context,
    quarantine: &mut Table,
    table: &str,
    records: &[Quarantined],
    batch: i64,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let app = app_id(QUARANTINE, table);
    if quarantine.progress(&app).await?.is_some_and(|done| done >= batch) {
        return Ok(());
    }
    let rows = fitlake_bronze::stamp(&quarantine_frame(table, records)?, ctx.load_time_micros, None)?;
    quarantine.commit_rows(&rows, &[], &[(app, batch)], Operation::Append).await?;
    Ok(())
}

/// Loads the days of a calendar frame into `date_lookup` (days already there are kept;
/// nothing is committed when nothing changes).
pub async fn load_date_lookup(ctx: &Context, calendar: &DataFrame) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, "bronze.date_lookup");
    let mut table = open(ctx, DATE_LOOKUP).await?;
    let current = table.read_all(true).await?;
    let kept = fitlake_frame::anti_join(&current.drop(fitlake_frame::FILE_COLUMN)?, calendar, &["date"])?;
    let desired =
        calendar.vstack(&kept.select(calendar.get_column_names().into_iter().cloned().collect::<Vec<_>>())?)?;
    let plan = fitlake_frame::plan_sync(&current, &desired, &["date"])?;
    let version = if plan.is_empty() {
        None
    } else {
        table.commit_rows(&plan.rows_to_add, &plan.files_to_remove, &[], Operation::Merge).await?
    };
    Ok(timer.report(|r| {
        r.rows_read = calendar.height() as u64;
        r.rows_written = plan.rows_to_add.height() as u64;
        r.inserted = plan.inserted as u64;
        r.updated = plan.updated as u64;
        r.deleted = plan.deleted as u64;
        r.version = version;
    }))
}

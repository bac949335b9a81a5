//! Bronze steps: landing files into the append-only bronze tables, each file exactly once.

use std::collections::{BTreeMap, HashSet};

use fitlake_bronze::{DATE_LOOKUP, GYM_LOGINS_BZ, KAFKA_MULTIPLEX_BZ, QUARANTINE, REGISTERED_USERS_BZ};
use fitlake_landing::quarantine::quarantine_frame;
use fitlake_landing::{Parsed, Quarantined};
use polars::prelude::*;

use super::{open, Context, StepTimer};
use crate::delta::{Operation, Staged, Table};
use crate::fault;
use crate::kafka::{self, KafkaSource, PartitionRecords};
use crate::postgres::PgSource;
use crate::progress::{app_id, BatchPlan, PlanLog};
use crate::report::StepReport;
use crate::storage::{FileEntry, Folder};
use crate::{Error, Result};
use fitlake_governance::policy::Zone;

/// The bronze tables fed from landing folders, in the order a run ingests them.
pub const LANDING_TABLES: [&str; 3] = [REGISTERED_USERS_BZ, GYM_LOGINS_BZ, KAFKA_MULTIPLEX_BZ];

/// The plan log of a bronze table.
pub fn plan_log(ctx: &Context, table: &str) -> Result<PlanLog> {
    Ok(PlanLog::new(&ctx.access, ctx.plans.clone(), table))
}

/// The landing folder of a bronze table's source.
pub fn landing_folder(ctx: &Context, table: &str) -> Result<Folder> {
    Folder::zone(&ctx.access, Zone::Landing, &ctx.lakehouse.landing_url(table))
}

/// Ingests every new landing file of `table`'s source, in batches of at most
/// `ctx.max_batch_bytes` (in streaming mode, one batch per micro-batch).
pub async fn ingest(ctx: &Context, table: &str) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, &format!("bronze.{table}"));
    let landing = landing_folder(ctx, table)?;
    let log = plan_log(ctx, table)?;
    let app = app_id(table, "landing");
    let mut target = open(ctx, table).await?;
    // Opened on the first batch, so that an idle micro-batch reads nothing but the log.
    let mut quarantine: Option<Table> = None;
    let mut date_lookup: Option<DataFrame> = None;
    let mut report = StepReport::default();
    loop {
        let committed = target.progress(&app).await?.unwrap_or(-1);
        let plans = log.load().await?;
        let batch = committed + 1;
        let plan = match plans.get(&batch) {
            // Planned by a run that died before committing: redo exactly those files.
            Some(plan) => plan.clone(),
            None => {
                let seen = planned_files(&plans, batch);
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
                let plan = log.write(&BatchPlan { batch, files }).await?;
                fault::point("after-plan", table);
                plan
            }
        };
        if date_lookup.is_none() && table == KAFKA_MULTIPLEX_BZ {
            date_lookup = Some(open(ctx, DATE_LOOKUP).await?.read_all(false).await?);
        }
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
        let progress = [(app.clone(), plan.batch)];
        commit_batch(ctx, &mut target, &mut quarantine, "landing", staged, &bad, &progress, &mut report).await?;
        if ctx.streaming {
            break;
        }
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

/// Commits one bronze batch: its quarantined records first (exactly once, see
/// [`write_quarantine`]; the quarantine table is opened on the first bad record), then its
/// staged rows with the step's progress (the batch number first, then any source positions),
/// counting both in `report`.
#[allow(clippy::too_many_arguments)]
async fn commit_batch(
    ctx: &Context,
    target: &mut Table,
    quarantine: &mut Option<Table>,
    stage: &str,
    staged: Staged,
    bad: &[Quarantined],
    progress: &[(String, i64)],
    report: &mut StepReport,
) -> Result<()> {
    let batch = progress.first().map_or(0, |p| p.1);
    report.quarantined += bad.len() as u64;
    if !bad.is_empty() {
        let quarantine = match quarantine {
            Some(q) => q,
            None => quarantine.insert(open(ctx, QUARANTINE).await?),
        };
        write_quarantine(ctx, quarantine, target.def.name, stage, bad, batch).await?;
    }
    report.rows_written += staged.rows();
    report.inserted += staged.rows();
    report.version = target.commit(staged, &[], progress, Operation::Append).await?;
    Ok(())
}

/// The landing files named in the plans of batches before `before`.
fn planned_files(plans: &BTreeMap<i64, BatchPlan>, before: i64) -> HashSet<&str> {
    plans.range(..before).flat_map(|(_, p)| p.files.iter().map(String::as_str)).collect()
}

/// Landing files of a bronze table whose rows are not committed yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// How many files.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// When the oldest of them landed, epoch microseconds.
    pub oldest_landed_micros: Option<i64>,
}

impl Backlog {
    /// The backlogs of several tables together.
    pub fn plus(self, other: Backlog) -> Backlog {
        Backlog {
            files: self.files + other.files,
            bytes: self.bytes + other.bytes,
            oldest_landed_micros: match (self.oldest_landed_micros, other.oldest_landed_micros) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// The landing files of a bronze table's source, split by whether their rows are committed.
#[derive(Debug, Clone, Default)]
pub struct LandingState {
    /// Files whose rows are in the table.
    pub committed: Vec<FileEntry>,
    /// Files not committed yet (planned or not).
    pub pending: Vec<FileEntry>,
}

impl LandingState {
    /// The pending files, summed up.
    pub fn backlog(&self) -> Backlog {
        self.pending.iter().fold(Backlog::default(), |b, f| {
            b.plus(Backlog { files: 1, bytes: f.size, oldest_landed_micros: Some(f.modified_micros) })
        })
    }
}

/// The landing files of `table`'s source and whether each is committed to it.
pub async fn landing_state(ctx: &Context, table: &str) -> Result<LandingState> {
    let landing = landing_folder(ctx, table)?;
    let committed = open(ctx, table).await?.progress(&app_id(table, "landing")).await?.unwrap_or(-1);
    let plans = plan_log(ctx, table)?.load().await?;
    let done = planned_files(&plans, committed + 1);
    let (committed, pending) = landing.list().await?.into_iter().partition(|f| done.contains(f.name.as_str()));
    Ok(LandingState { committed, pending })
}

/// Ingests the new rows of `table`'s database source (see [`crate::postgres`]) in batches of at
/// most [`crate::postgres::BATCH_ROWS`] (one per micro-batch in streaming mode); each commit
/// records the last key it holds.
pub async fn ingest_postgres(ctx: &Context, table: &str, source: &PgSource) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, &format!("bronze.{table} (postgres)"));
    let app = app_id(table, "postgres");
    let client = source.connect().await?;
    let mut target = open(ctx, table).await?;
    let mut quarantine: Option<Table> = None;
    let mut report = StepReport::default();
    loop {
        let after = target.progress(&app).await?.unwrap_or(0);
        let batch = source.fetch(&client, table, after, crate::postgres::BATCH_ROWS).await?;
        let Some(&last) = batch.ids.last() else { break };
        let name = batch.source_name();
        let parsed = parse(ctx, table, &batch.csv, &name)?;
        report.rows_read += batch.ids.len() as u64;
        let bad: Vec<Quarantined> = named_by_key(parsed.quarantined, |line| batch.id_of_line(line)).collect();
        let rows = fitlake_bronze::stamp(&parsed.rows, ctx.load_time_micros, Some(&name))?;
        let mut staged = target.stage()?;
        staged.write(&rows).await?;
        commit_batch(ctx, &mut target, &mut quarantine, "postgres", staged, &bad, &[(app.clone(), last)], &mut report)
            .await?;
        if ctx.streaming {
            break;
        }
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

/// Ingests the records of the Kafka topics (see [`crate::kafka`]) up to the end offsets of
/// the step's start, in batches of about `ctx.max_batch_bytes` (one per micro-batch in
/// streaming mode); each commit records the next offset of every partition it read.
pub async fn ingest_kafka(ctx: &Context, table: &str, source: &KafkaSource) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, &format!("bronze.{table} (kafka)"));
    let app = app_id(table, "kafka");
    let client = source.connect().await?;
    let ends = source.end_offsets(&client).await?;
    let mut target = open(ctx, table).await?;
    let mut quarantine: Option<Table> = None;
    let mut date_lookup: Option<DataFrame> = None;
    let mut report = StepReport::default();
    loop {
        let batch = target.progress(&app).await?.unwrap_or(0) + 1;
        let mut committed = BTreeMap::new();
        for tp in ends.keys() {
            if let Some(next) = target.progress(&kafka::offset_app_id(table, tp)).await? {
                committed.insert(tp.clone(), next);
            }
        }
        let fetched = source.fetch(&client, &committed, &ends, ctx.max_batch_bytes).await?;
        if fetched.is_empty() {
            break;
        }
        let lookup = match &date_lookup {
            Some(lookup) => lookup,
            None => date_lookup.insert(open(ctx, DATE_LOOKUP).await?.read_all(false).await?),
        };
        let mut staged = target.stage()?;
        let mut bad: Vec<Quarantined> = Vec::new();
        let mut progress = vec![(app.clone(), batch)];
        for (tp, records) in &fetched {
            let name = PartitionRecords::source_name(tp);
            let parsed = parse(ctx, table, &records.text, &name)?;
            report.rows_read += records.offsets.len() as u64;
            bad.extend(named_by_key(parsed.quarantined, |line| records.offset_of_line(line)));
            staged
                .write(&fitlake_bronze::kafka_multiplex_bz(&parsed.rows, lookup, ctx.load_time_micros, &name)?)
                .await?;
            progress.push((kafka::offset_app_id(table, tp), records.next_offset));
        }
        commit_batch(ctx, &mut target, &mut quarantine, "kafka", staged, &bad, &progress, &mut report).await?;
        if ctx.streaming {
            break;
        }
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

/// Quarantine records of rows rendered from a keyed source (PostgreSQL ids, Kafka offsets),
/// named by their row's key (`key_of_line`) instead of the rendered text's line number.
fn named_by_key(
    quarantined: Vec<Quarantined>,
    key_of_line: impl Fn(u64) -> Option<i64>,
) -> impl Iterator<Item = Quarantined> {
    quarantined
        .into_iter()
        .map(move |q| Quarantined { line: key_of_line(q.line).unwrap_or_default().max(0) as u64, ..q })
}

fn parse(ctx: &Context, table: &str, text: &str, file: &str) -> Result<Parsed> {
    Ok(match table {
        REGISTERED_USERS_BZ => fitlake_landing::csv::parse_registered_users(text, file)?,
        GYM_LOGINS_BZ => fitlake_landing::csv::parse_gym_logins(text, file)?,
        KAFKA_MULTIPLEX_BZ => fitlake_landing::multiplex::parse_kafka_multiplex(text, file, ctx.threads)?,
        other => return Err(Error::Internal(format!("{other} has no landing source"))),
    })
}

/// Appends quarantined records of `table`'s batch `batch` from `stage` (`landing`, `postgres`,
/// `kafka`, `decode`, `expectations`), exactly once: records already quarantined (by a step
/// that crashed or lost a commit race after quarantining, then reran, possibly over a longer
/// span of its source) are not added again, and the commit carries the batch under the
/// quarantine's own `txn` for `table` and `stage`, so two runners cannot both add them.
pub async fn write_quarantine(
    ctx: &Context,
    quarantine: &mut Table,
    table: &str,
    stage: &str,
    records: &[Quarantined],
    batch: i64,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let app = app_id(QUARANTINE, &format!("{table}/{stage}"));
    const RECORD: [&str; 5] = ["table", "source_file", "line", "raw", "reason"];
    let already = quarantine.read_all(false).await?;
    let fresh = fitlake_frame::anti_join(&quarantine_frame(table, records)?, &already, &RECORD)?;
    let rows = fitlake_bronze::stamp(&fresh, ctx.load_time_micros, None)?;
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

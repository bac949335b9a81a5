//! Gold steps: the analyst tables, synced with their sources.

use fitlake_frame::MergePlan;
use fitlake_gold::{GYM_SUMMARY, SESSION_KEY, WORKOUT_BPM_SUMMARY};
use fitlake_silver::{COMPLETED_WORKOUTS, GYM_LOGS, USERS, USER_BINS, WORKOUT_BPM};
use polars::prelude::*;

use super::silver::commit_plan;
use super::{open, overlapping, range_of, Context, Source, StepTimer};
use crate::delta::Table;
use crate::report::StepReport;
use crate::{Error, Result};

/// The gold tables in the order a run updates them.
pub const TABLES: [&str; 2] = [WORKOUT_BPM_SUMMARY, GYM_SUMMARY];

/// The upstream tables each gold step consumes (and records its progress through).
pub const SOURCES: [(&str, &[&str]); 2] =
    [(WORKOUT_BPM_SUMMARY, &[WORKOUT_BPM, USER_BINS]), (GYM_SUMMARY, &[GYM_LOGS, COMPLETED_WORKOUTS, USERS])];

/// Runs the step of one gold table.
pub async fn run(ctx: &Context, table: &str) -> Result<StepReport> {
    let timer = StepTimer::start(ctx, &format!("gold.{table}"));
    let mut target = open(ctx, table).await?;
    let report = match table {
        WORKOUT_BPM_SUMMARY => workout_bpm_summary(ctx, &mut target).await?,
        GYM_SUMMARY => gym_summary(ctx, &mut target).await?,
        other => {
            return Err(Error::Config(format!("{other:?} is not a gold table; expected one of {}", TABLES.join(", "))))
        }
    };
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..report }))
}

async fn workout_bpm_summary(ctx: &Context, target: &mut Table) -> Result<StepReport> {
    let readings = Source::open(ctx, target, WORKOUT_BPM).await?;
    let bins = Source::open(ctx, target, USER_BINS).await?;
    if !readings.moved() && !bins.moved() {
        return Ok(StepReport::default());
    }
    // Sessions with new readings: only their keys and start times are read from the new files.
    let new_files = readings.new_files(None, None).await?;
    let touched =
        readings.table.read(&new_files, Some(&["user_id", "workout_id", "session_id", "start_time"]), false).await?;
    // Recompute their statistics over all their readings (the new files included).
    let rows = match range_of(&touched, "start_time")? {
        Some((lo, hi)) => {
            let files = overlapping(readings.table.files(Some("start_time"))?, lo, hi);
            let key: Vec<Expr> = SESSION_KEY.iter().map(|k| col(*k)).collect();
            readings
                .table
                .read(&files, None, false)
                .await?
                .lazy()
                .join(touched.clone().lazy().select(key.clone()), key.clone(), key, JoinArgs::new(JoinType::Semi))
                .collect()?
        }
        None => readings.table.read(&[], None, false).await?,
    };
    let fresh_stats = fitlake_gold::session_stats(&rows)?;
    let current = target.read_all(true).await?;
    let user_bins = bins.table.read_all(false).await?;
    let plan = fitlake_gold::workout_bpm_summary(&current, &fresh_stats, &user_bins)?;
    commit_plan(ctx, target, touched.height(), &plan, &[readings.txn(), bins.txn()]).await
}

async fn gym_summary(ctx: &Context, target: &mut Table) -> Result<StepReport> {
    let visits = Source::open(ctx, target, GYM_LOGS).await?;
    let sessions = Source::open(ctx, target, COMPLETED_WORKOUTS).await?;
    let users = Source::open(ctx, target, USERS).await?;
    if !visits.moved() && !sessions.moved() && !users.moved() {
        return Ok(StepReport::default());
    }
    let txns = [visits.txn(), sessions.txn(), users.txn()];
    if !visits.data_changed().await? && !sessions.data_changed().await? && !users.data_changed().await? {
        // The sources only recorded progress: nothing to recompute, only ours to record.
        return commit_plan(ctx, target, 0, &MergePlan::default(), &txns).await;
    }
    let gym_logs = visits.table.read_all(false).await?;
    let completed = sessions.table.read_all(false).await?;
    let all_users = users.table.read_all(false).await?;
    let current = target.read_all(true).await?;
    let plan = fitlake_gold::gym_summary(&gym_logs, &completed, &all_users, &current)?;
    let read = gym_logs.height() + completed.height();
    commit_plan(ctx, target, read, &plan, &txns).await
}

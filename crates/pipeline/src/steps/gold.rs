//! Gold steps: the analyst tables, synced with their sources.

use fitlake_catalog::TableId;
use fitlake_frame::MergePlan;
use fitlake_gold::SESSION_KEY;
use fitlake_storage::{DataFile, Table};
use polars::prelude::*;

use super::silver::commit_plan;
use super::{overlapping, range_of, StepEnv};
use crate::report::StepReport;
use crate::Result;

/// `gold.workout_bpm_summary`: per session, statistics over all its readings, with the
/// user's bins; sessions with new readings are recomputed.
pub(crate) async fn workout_bpm_summary(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let readings = env.source(target, TableId::WorkoutBpm).await?;
    let bins = env.source(target, TableId::UserBins).await?;
    if !readings.moved() && !bins.moved() {
        return Ok(StepReport::default());
    }
    if readings.from.is_some() && readings.table.rows_replaced_since(readings.from).await? {
        // Rows of workout_bpm were replaced or deleted (a session re-paired or gone, a reading
        // replaced; rare): every session is recomputed, from per-file parts (one file's rows in
        // memory at a time), and sessions without rows go.
        let files = readings.table.files(None)?;
        let read = readings.table.row_count_of(&files)? as usize;
        let parts = readings
            .table
            .scan()
            .files(files)
            .columns(&["user_id", "workout_id", "session_id", "heartrate"])
            .each_file(fitlake_gold::partial_session_stats)
            .collect()
            .await?;
        let stats = fitlake_gold::combine_session_stats(&parts)?;
        let current = target.scan().with_file_column().collect().await?;
        let user_bins = bins.table.scan().collect().await?;
        let desired = fitlake_gold::workout_bpm_summary(&current.clear(), &stats, &user_bins)?.rows_to_add;
        let plan = fitlake_frame::plan_sync(&current, &desired, &SESSION_KEY)?;
        return commit_plan(env, target, read, &plan, &[readings.txn(), bins.txn()]).await;
    }
    let new_files = readings.new_files(None, Some("start_time")).await?;
    let read = readings.table.row_count_of(&new_files)? as usize;
    let columns = ["user_id", "workout_id", "session_id", "heartrate"];
    // The sessions' span, from the new files' statistics: when only new files hold sessions
    // in it, every session of theirs is touched and their rows are all the touched sessions'
    // readings (a first load, or readings arriving in time order): no session list is needed.
    let span = new_files
        .iter()
        .map(|f| f.range)
        .collect::<Option<Vec<_>>>()
        .and_then(|ranges| ranges.into_iter().reduce(|(lo, hi), (first, last)| (lo.min(first), hi.max(last))));
    let only_new = match span {
        Some((lo, hi)) => {
            let files = overlapping(readings.table.files(Some("start_time"))?, lo, hi);
            let new_paths: std::collections::HashSet<&str> = new_files.iter().map(|f| f.path.as_str()).collect();
            files.iter().all(|f| new_paths.contains(f.path.as_str())).then_some(files)
        }
        None => None,
    };
    let parts = match only_new {
        Some(files) => {
            readings
                .table
                .scan()
                .files(files)
                .columns(&columns)
                .each_file(fitlake_gold::partial_session_stats)
                .collect()
                .await?
        }
        None => touched_session_stats(&readings.table, new_files, &columns).await?,
    };
    let fresh_stats = fitlake_gold::combine_session_stats(&parts)?;
    let current = target.scan().with_file_column().collect().await?;
    let user_bins = bins.table.scan().collect().await?;
    let plan = fitlake_gold::workout_bpm_summary(&current, &fresh_stats, &user_bins)?;
    commit_plan(env, target, read, &plan, &[readings.txn(), bins.txn()]).await
}

/// The per-file statistics parts of the sessions that `new_files` touch, over all their
/// readings (the new files included, and older files holding readings of those sessions).
async fn touched_session_stats(readings: &Table, new_files: Vec<DataFile>, columns: &[&str]) -> Result<DataFrame> {
    // Sessions with new readings: only their keys and start times are read from the new files,
    // one row per session and file.
    let session_columns = ["user_id", "workout_id", "session_id", "start_time"];
    let touched = readings
        .scan()
        .files(new_files)
        .columns(&session_columns)
        .each_file(|rows| rows.unique(None, UniqueKeepStrategy::Any))
        .collect()
        .await?
        .unique::<&str, &str>(None, UniqueKeepStrategy::Any, None)?;
    Ok(match range_of(&touched, "start_time")? {
        Some((lo, hi)) => {
            let files = overlapping(readings.files(Some("start_time"))?, lo, hi);
            let key: Vec<Expr> = SESSION_KEY.iter().map(|k| col(*k)).collect();
            let sessions = touched.select(SESSION_KEY)?;
            readings
                .scan()
                .files(files)
                .columns(columns)
                .each_file(move |rows| {
                    let rows =
                        rows.join(sessions.clone().lazy(), key.clone(), key.clone(), JoinArgs::new(JoinType::Semi));
                    fitlake_gold::partial_session_stats(rows)
                })
                .collect()
                .await?
        }
        None => {
            let none = readings.scan().files(Vec::new()).collect().await?;
            fitlake_gold::partial_session_stats(none.lazy()).collect()?
        }
    })
}

/// `gold.gym_summary`: one row per visit and session, recomputed whole when a source changes.
pub(crate) async fn gym_summary(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let visits = env.source(target, TableId::GymLogs).await?;
    let sessions = env.source(target, TableId::CompletedWorkouts).await?;
    let users = env.source(target, TableId::Users).await?;
    if !visits.moved() && !sessions.moved() && !users.moved() {
        return Ok(StepReport::default());
    }
    let txns = [visits.txn(), sessions.txn(), users.txn()];
    if !visits.data_changed().await? && !sessions.data_changed().await? && !users.data_changed().await? {
        // The sources only recorded progress: nothing to recompute, only ours to record.
        return commit_plan(env, target, 0, &MergePlan::default(), &txns).await;
    }
    let gym_logs = visits.table.scan().collect().await?;
    let completed = sessions.table.scan().collect().await?;
    let all_users = users.table.scan().collect().await?;
    let current = target.scan().with_file_column().collect().await?;
    let plan = fitlake_gold::gym_summary(&gym_logs, &completed, &all_users, &current)?;
    let read = gym_logs.height() + completed.height();
    commit_plan(env, target, read, &plan, &txns).await
}

//! Silver steps: one per silver table, each consuming what its sources committed since its
//! last run.

use std::collections::BTreeSet;

use fitlake_catalog::TableId;
use fitlake_frame::{MergePlan, FILE_COLUMN};
use fitlake_landing::multiplex::BPM_TIME;
use fitlake_landing::topics;
use fitlake_quality::{Action, Outcome};
use fitlake_silver::MAX_SESSION_MICROS;
use fitlake_storage::{DataFile, Operation, Table};
use polars::prelude::*;

use super::bronze::write_quarantine;
use super::{in_groups, overlapping, quality, range_of, Source, StepEnv};
use crate::meter::Unit;
use crate::progress::app_id;
use crate::report::StepReport;
use crate::Result;

/// Commits inserted rows with the sources' progress, after the table's expectations.
async fn commit_inserts(
    env: &StepEnv<'_>,
    target: &mut Table,
    rows_read: usize,
    inserts: &DataFrame,
    sources: &[&Source],
) -> Result<StepReport> {
    let checked = quality::check(env, target, inserts, true).await?;
    let version = target.commit().rows(&checked.rows).progress(sources.iter().map(|s| s.txn())).await?;
    quality::record(env, &checked.outcomes, version).await?;
    Ok(StepReport {
        rows_read: rows_read as u64,
        rows_written: checked.rows.height() as u64,
        inserted: checked.rows.height() as u64,
        quarantined: checked.dropped,
        version,
        ..Default::default()
    })
}

/// Commits a MERGE plan with the sources' progress, after the table's expectations.
pub(crate) async fn commit_plan(
    env: &StepEnv<'_>,
    target: &mut Table,
    rows_read: usize,
    plan: &MergePlan,
    txns: &[(String, i64)],
) -> Result<StepReport> {
    let checked = quality::check(env, target, &plan.rows_to_add, false).await?;
    commit_checked(env, target, rows_read, plan, (&checked.outcomes, 0), txns, Operation::Merge).await
}

/// Commits checked upserts as a MERGE against `stored` (the target rows, with their files,
/// that may share a key with them): an append when no key is stored, a rewrite of the files
/// holding replaced rows otherwise.
async fn commit_upserts(
    env: &StepEnv<'_>,
    target: &mut Table,
    rows_read: usize,
    checked: quality::Checked,
    stored: &DataFrame,
    txns: &[(String, i64)],
) -> Result<StepReport> {
    let keys = target.def().keys.clone();
    let plan = fitlake_frame::plan_merge(stored, &checked.rows, None, &keys)?;
    let operation = if plan.files_to_remove.is_empty() { Operation::Append } else { Operation::Merge };
    commit_checked(env, target, rows_read, &plan, (&checked.outcomes, checked.dropped), txns, operation).await
}

/// Commits a plan whose rows passed the table's expectations (their outcomes, and how many
/// rows a `drop` refused), then notes the outcomes against the new version.
async fn commit_checked(
    env: &StepEnv<'_>,
    target: &mut Table,
    rows_read: usize,
    plan: &MergePlan,
    (outcomes, dropped): (&[fitlake_quality::Outcome], u64),
    txns: &[(String, i64)],
    operation: Operation,
) -> Result<StepReport> {
    let version = target
        .commit()
        .rows(&plan.rows_to_add)
        .remove(plan.files_to_remove.iter().cloned())
        .progress(txns.iter().cloned())
        .operation(operation)
        .merge_counts(plan.inserted as u64, plan.updated as u64, plan.deleted as u64)
        .await?;
    quality::record(env, outcomes, version).await?;
    Ok(StepReport {
        rows_read: rows_read as u64,
        rows_written: plan.rows_to_add.height() as u64,
        inserted: plan.inserted as u64,
        updated: plan.updated as u64,
        deleted: plan.deleted as u64,
        quarantined: dropped,
        version,
        ..Default::default()
    })
}

/// The target's rows, with their files, in the files whose `column` range overlaps `range`.
async fn rows_in_range(target: &Table, column: &str, range: Option<(i64, i64)>) -> Result<DataFrame> {
    let files = match range {
        Some((lo, hi)) => overlapping(target.files(Some(column))?, lo, hi),
        None => Vec::new(),
    };
    Ok(target.scan().files(files).with_file_column().collect().await?)
}

pub(crate) async fn users(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::RegisteredUsersBz).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    let new = source.new_rows(None).await?;
    // One small row per user: the stored versions are read whole.
    let stored = target.scan().with_file_column().collect().await?;
    let upserts = fitlake_silver::users(&new, &stored)?;
    let checked = quality::check(env, target, &upserts, true).await?;
    commit_upserts(env, target, new.height(), checked, &stored, &[source.txn()]).await
}

pub(crate) async fn gym_logs(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::GymLoginsBz).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    let new = source.new_rows(None).await?;
    let candidates = match range_of(&new, "login")? {
        Some((lo, hi)) => overlapping(target.files(Some("login"))?, lo, hi),
        None => Vec::new(),
    };
    let current = target.scan().files(candidates).with_file_column().collect().await?;
    let plan = fitlake_silver::gym_logs(&new, &current)?;
    commit_plan(env, target, new.height(), &plan, &[source.txn()]).await
}

/// Multiplex rows of one topic in `files` (new to the step), decoded: the rows, how many were
/// read, how many were quarantined (once) as undecodable, and a `warn` outcome per optional
/// field read as null (to record with the step's commit).
async fn decoded_topic(
    env: &StepEnv<'_>,
    source: &Source,
    files: Vec<DataFile>,
    topic: &str,
) -> Result<(DataFrame, usize, u64, Vec<Outcome>)> {
    let target = env.table();
    let rows = source.table.scan().files(files).collect().await?;
    let fitlake_silver::DecodedTopic { rows: decoded, quarantined: bad, unusable } =
        fitlake_silver::decode_topic(&rows, topic, &env.options().read())?;
    let mut quarantine = env.quarantine().await?;
    write_quarantine(env.options().load_time_micros, &mut quarantine, target, "decode", &bad, source.to()).await?;
    // Optional fields read as null are `warn`s in the quality event log, one per field.
    let outcomes: Vec<Outcome> = unusable
        .into_iter()
        .map(|(field, failed)| Outcome {
            table: target.name().to_string(),
            expectation: format!("{field} is usable (else null)"),
            action: Action::Warn,
            checked: decoded.height() as u64,
            passed: (decoded.height() as u64).saturating_sub(failed),
            failed,
        })
        .collect();
    Ok((decoded, rows.height(), bad.len() as u64, outcomes))
}

/// The new multiplex files of one topic (with the range of `stats_column` where asked).
async fn topic_files(source: &Source, topic: &str, stats_column: Option<&str>) -> Result<Vec<DataFile>> {
    source.new_files(Some(("topic", topic)), stats_column).await
}

/// Completes the report of a step fed by [`decoded_topic`]: the values quarantined as
/// undecodable, and the optional-field `warn`s noted against the version the step committed.
async fn with_decode_outcomes(
    env: &StepEnv<'_>,
    mut report: StepReport,
    quarantined: u64,
    warnings: &[Outcome],
) -> Result<StepReport> {
    if report.version.is_some() {
        quality::record(env, warnings, report.version).await?;
    }
    report.quarantined += quarantined;
    Ok(report)
}

pub(crate) async fn user_profile(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::KafkaMultiplexBz).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    let files = topic_files(&source, topics::USER_INFO, None).await?;
    if files.is_empty() {
        // Bronze moved with other topics only (most micro-batches): no change applies, only
        // the progress is recorded, without reading the profiles.
        return commit_plan(env, target, 0, &MergePlan::default(), &[source.txn()]).await;
    }
    let (events, read, quarantined, warnings) = decoded_topic(env, &source, files, topics::USER_INFO).await?;
    let current = target.scan().with_file_column().collect().await?;
    let plan = fitlake_silver::user_profile(&events, &current)?.plan;
    let report = commit_plan(env, target, read, &plan, &[source.txn()]).await?;
    with_decode_outcomes(env, report, quarantined, &warnings).await
}

/// `heart_rate`: new readings upserted by device and time, the greatest heartrate winning. A
/// reading that a `drop` expectation refuses is quarantined and takes no part in the choice (the
/// next greatest of its key competes instead), so the result is the same however the readings
/// are split into batches.
///
/// The new bronze files are taken in groups of [`RunOptions::group_bytes`], each group upserted
/// and committed on its own, and only the last commit records the progress: a run that dies
/// between groups redoes them all, and a group already committed changes nothing the second
/// time (an upsert equal to the stored row is not applied). Before one group is compared with
/// the table and committed, the next is read; it is then deduplicated among itself (which needs
/// no stored row) on a blocking thread while this one is compared and committed.
///
/// [`RunOptions::group_bytes`]: crate::context::RunOptions::group_bytes
pub(crate) async fn heart_rate(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::KafkaMultiplexBz).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    // Files in the order of their readings' times, so that each group covers its own span and
    // compares with few stored rows (bronze writes a batch in parallel lanes whose files cover
    // the same span; landing files may come in any order).
    let mut files = topic_files(&source, topics::BPM, Some(BPM_TIME)).await?;
    files.sort_by_key(|f| f.range.map_or((1, 0, 0), |(lo, hi)| (0, lo, hi)));
    let mut groups = in_groups(files, env.options().group_bytes());
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    env.meter().begin(&target.id().to_string(), groups.iter().map(|g| bytes_of(g)).sum(), Unit::Bytes);
    let mut report = StepReport::default();
    let mut groups = groups.into_iter();
    let mut next = match groups.next() {
        Some(files) => Some(readings(&source, files).await?),
        None => None,
    };
    while let Some(current) = next.take() {
        let upcoming = groups.next();
        // Only the last group's commit records the progress.
        let txns = if upcoming.is_none() { vec![source.txn()] } else { Vec::new() };
        let bytes = bytes_of(&current.files);
        next = match upcoming {
            Some(files) => Some(readings(&source, files).await?),
            None => None,
        };
        let group = heart_rate_group(env, target, &source, current, &txns).await?;
        env.meter().advance(bytes);
        env.meter().written(group.rows_written);
        report = report.then(group);
    }
    env.meter().end();
    Ok(report)
}

/// One group of new readings for `heart_rate`, read ahead of its turn.
struct Readings {
    files: Vec<DataFile>,
    /// Its readings and their greatest per key (being found on a blocking thread), when bronze
    /// kept them typed (parsed once: only those columns are read); else they are decoded from
    /// the raw values in their turn, which may quarantine some.
    typed: Option<(DataFrame, tokio::task::JoinHandle<fitlake_silver::Result<DataFrame>>)>,
}

/// Bytes of `files`.
fn bytes_of(files: &[DataFile]) -> u64 {
    files.iter().map(|f| f.size.max(0) as u64).sum()
}

/// Reads `files`' typed readings and starts deduplicating them among themselves on a blocking
/// thread, while the task goes on to compare and commit the group before.
async fn readings(source: &Source, files: Vec<DataFile>) -> Result<Readings> {
    let typed = source.table.scan().files(files.clone()).columns(&fitlake_silver::TYPED_BPM_COLUMNS).collect().await?;
    let typed = match fitlake_silver::typed_bpm(&typed)? {
        Some(decoded) => {
            let events = decoded.rows;
            let winners = tokio::task::spawn_blocking({
                let events = events.clone();
                move || fitlake_silver::heart_rate_winners(&events)
            });
            Some((events, winners))
        }
        None => None,
    };
    Ok(Readings { files, typed })
}

/// Upserts one group of new readings into `heart_rate`, committing `txns` with them.
async fn heart_rate_group(
    env: &StepEnv<'_>,
    target: &mut Table,
    source: &Source,
    readings: Readings,
    txns: &[(String, i64)],
) -> Result<StepReport> {
    let (mut events, mut winners, read, quarantined, warnings) = match readings.typed {
        Some((events, winners)) => {
            let winners = winners.await??;
            let read = events.height();
            (events, winners, read, 0, Vec::new())
        }
        None => {
            let (events, read, quarantined, warnings) = decoded_topic(env, source, readings.files, topics::BPM).await?;
            let winners = fitlake_silver::heart_rate_winners(&events)?;
            (events, winners, read, quarantined, warnings)
        }
    };
    let keys = ["device_id", "time"];
    // The upsert compares only with the stored rows that share a key (few).
    let sharing = stored_sharing_keys(target, &winners, &keys, &["heartrate"], "time").await?;
    let mut dropped = 0;
    let checked = loop {
        let upserts = fitlake_silver::heart_rate_upserts(&winners, &sharing)?;
        let checked = quality::check(env, target, &upserts, true).await?;
        if checked.dropped == 0 {
            break quality::Checked { dropped, ..checked };
        }
        dropped += checked.dropped;
        let refused = fitlake_frame::anti_join(&upserts, &checked.rows, &keys)?;
        events = fitlake_frame::anti_join(&events, &refused, &["device_id", "time", "heartrate"])?;
        winners = fitlake_silver::heart_rate_winners(&events)?;
    };
    // The MERGE rewrites the files holding a key an upsert replaces (a greater reading
    // arriving late; usually none): only those are read whole.
    let replaced = fitlake_frame::semi_join(&sharing, &checked.rows, &keys)?;
    let files: BTreeSet<&str> = replaced.column(FILE_COLUMN)?.str()?.iter().flatten().collect();
    let rewritten: Vec<DataFile> =
        target.files(None)?.into_iter().filter(|f| files.contains(f.path.as_str())).collect();
    let stored = target.scan().files(rewritten).with_file_column().collect().await?;
    let report = commit_upserts(env, target, read, checked, &stored, txns).await?;
    with_decode_outcomes(env, report, quarantined, &warnings).await
}

/// The stored rows that share a key with `new`, their `keys` and `order` columns and the file
/// holding each ([`FILE_COLUMN`]): what an upsert of `new` compares with. Each target file whose
/// `range_column` range overlaps the new rows' is read on its own, only those columns, so memory
/// holds one file's keys and the matches, not every stored row of the new rows' span. When the
/// new rows and a file's are both in key order (a dedupe's winners are, and so are the files
/// written from them), one walk over both finds the shared keys
/// ([`SortedKeys`](fitlake_frame::merge::SortedKeys)); otherwise the file's rows are narrowed to
/// those within their first key's [`Spans`](fitlake_frame::merge::Spans) of new rows (a file
/// whose range overlaps may still hold other devices, or the same ones at other times) before
/// the join on the keys.
async fn stored_sharing_keys(
    target: &Table,
    new: &DataFrame,
    keys: &[&str],
    order: &[&str],
    range_column: &str,
) -> Result<DataFrame> {
    let columns: Vec<&str> = keys.iter().chain(order).copied().collect();
    let mut sharing = Vec::new();
    if let Some((lo, hi)) = range_of(new, range_column)? {
        let new_keys = new.select(keys.iter().copied())?;
        let in_order = fitlake_frame::merge::SortedKeys::of(&new_keys, keys)?;
        // Found on the first file out of order, if any.
        let mut spans: Option<Option<fitlake_frame::merge::Spans>> = None;
        for file in overlapping(target.files(Some(range_column))?, lo, hi) {
            let stored = target.scan().files(vec![file.clone()]).columns(&columns).collect().await?;
            let walked = match &in_order {
                Some(new_keys) => new_keys.shared_by(&stored)?,
                None => None,
            };
            let shared = match walked {
                Some(shared) => shared,
                None => {
                    let spans = match &mut spans {
                        Some(spans) => spans,
                        None => spans.insert(match keys {
                            [first, _, ..] if *first != range_column => {
                                fitlake_frame::merge::Spans::of(&new_keys, first, range_column)?
                            }
                            _ => None,
                        }),
                    };
                    let near = match spans {
                        Some(spans) => spans.within(&stored)?,
                        None => stored,
                    };
                    // The new rows within the near rows' range: few, where the spans left few.
                    let Some((first, last)) = range_of(&near, range_column)? else { continue };
                    let at = col(range_column).cast(DataType::Int64);
                    let candidates = new_keys
                        .clone()
                        .lazy()
                        .filter(at.clone().gt_eq(lit(first)).and(at.lt_eq(lit(last))))
                        .collect()?;
                    fitlake_frame::semi_join(&near, &candidates, keys)?
                }
            };
            if shared.height() > 0 {
                sharing.push(shared.lazy().with_column(lit(file.path.clone()).alias(FILE_COLUMN)));
            }
        }
    }
    if sharing.is_empty() {
        return Ok(target.scan().files(Vec::new()).columns(&columns).with_file_column().collect().await?);
    }
    Ok(concat(sharing, UnionArgs::default())?.collect()?)
}

/// A table fed by one multiplex topic with a `time` column, upserted by key: `workouts`
/// (topic `workout`).
pub(crate) async fn timed_events(
    env: &StepEnv<'_>,
    target: &mut Table,
    topic: &str,
    transform: fn(&DataFrame, &DataFrame) -> fitlake_silver::Result<DataFrame>,
) -> Result<StepReport> {
    let source = env.source(target, TableId::KafkaMultiplexBz).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    let files = topic_files(&source, topic, None).await?;
    let (events, read, quarantined, warnings) = decoded_topic(env, &source, files, topic).await?;
    let stored = rows_in_range(target, "time", range_of(&events, "time")?).await?;
    let upserts = transform(&events, &stored)?;
    let checked = quality::check(env, target, &upserts, true).await?;
    let report = commit_upserts(env, target, read, checked, &stored, &[source.txn()]).await?;
    with_decode_outcomes(env, report, quarantined, &warnings).await
}

/// `txn` application id under which `user_bins` records the as-of date (days since epoch) it
/// computed ages at, so a new date recomputes the bands even with no new profiles.
fn as_of_app_id() -> String {
    app_id(TableId::UserBins, "as_of")
}

fn as_of_days(env: &StepEnv<'_>) -> i64 {
    (env.options().as_of - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

pub(crate) async fn user_bins(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::UserProfile).await?;
    let as_of = (as_of_app_id(), as_of_days(env));
    let same_date = target.progress(&as_of.0).await? == Some(as_of.1);
    if !source.moved() && same_date {
        return Ok(StepReport::default());
    }
    if same_date && !source.data_changed().await? {
        // Only progress was recorded upstream: the bands are unchanged.
        return commit_plan(env, target, 0, &MergePlan::default(), &[source.txn(), as_of]).await;
    }
    let profiles = source.table.scan().collect().await?;
    let current = target.scan().with_file_column().collect().await?;
    let plan = fitlake_silver::user_bins(&profiles, &current, env.options().as_of)?;
    commit_plan(env, target, profiles.height(), &plan, &[source.txn(), as_of]).await
}

pub(crate) async fn completed_workouts(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let source = env.source(target, TableId::Workouts).await?;
    if !source.moved() {
        return Ok(StepReport::default());
    }
    let new = source.new_rows(None).await?;
    // A session key is unique across the table, whenever it happened: every stored session is
    // read (one small row each).
    let stored = target.scan().with_file_column().collect().await?;
    if source.from.is_some() && source.table.rows_replaced_since(source.from).await? {
        // A stored event was replaced (two different events of a user at one instant): a
        // session paired from it may no longer stand. Rare, so every session is recomputed
        // from every event and the table synced to them.
        let events = source.table.scan().collect().await?;
        let desired = fitlake_silver::completed_workouts(&events, &stored.clear())?;
        let checked = quality::check(env, target, &desired, true).await?;
        let keys = target.def().keys.clone();
        let plan = fitlake_frame::plan_sync(&stored, &checked.rows, &keys)?;
        let outcomes = (checked.outcomes.as_slice(), checked.dropped);
        return commit_checked(env, target, new.height(), &plan, outcomes, &[source.txn()], Operation::Merge).await;
    }
    let Some((lo, hi)) = range_of(&new, "time")? else {
        return commit_inserts(env, target, 0, &DataFrame::empty(), &[&source]).await;
    };
    // A stop pairs with a start at most 3 hours earlier: the events that can pair with the new
    // ones lie within 3 hours of them.
    let (lo, hi) = (lo - MAX_SESSION_MICROS, hi + MAX_SESSION_MICROS);
    let nearby = overlapping(source.table.files(Some("time"))?, lo, hi);
    let events = source.table.scan().files(nearby).collect().await?;
    let upserts = fitlake_silver::completed_workouts(&events, &stored)?;
    let checked = quality::check(env, target, &upserts, true).await?;
    commit_upserts(env, target, new.height(), checked, &stored, &[source.txn()]).await
}

pub(crate) async fn workout_bpm(env: &StepEnv<'_>, target: &mut Table) -> Result<StepReport> {
    let sessions = env.source(target, TableId::CompletedWorkouts).await?;
    let readings = env.source(target, TableId::HeartRate).await?;
    let users = env.source(target, TableId::Users).await?;
    if !sessions.moved() && !readings.moved() && !users.moved() {
        return Ok(StepReport::default());
    }
    let all_users = users.table.scan().collect().await?;
    // Sessions whose rows may be missing: new sessions, sessions overlapping new readings, and
    // sessions of newly registered users.
    let mut in_scope = vec![sessions.new_rows(None).await?.lazy()];
    let new_reading_files = readings.new_files(None, Some("time")).await?;
    let reading_span = new_reading_files
        .iter()
        .map(|f| f.range.unwrap_or((i64::MIN, i64::MAX)))
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
    if let Some((lo, hi)) = reading_span {
        let files = overlapping(sessions.table.files(Some("start_time"))?, lo.saturating_sub(MAX_SESSION_MICROS), hi);
        let overlapping_sessions = sessions.table.scan().files(files).collect().await?.lazy().filter(
            col("end_time")
                .cast(DataType::Int64)
                .gt_eq(lit(lo))
                .and(col("start_time").cast(DataType::Int64).lt_eq(lit(hi))),
        );
        in_scope.push(overlapping_sessions);
    }
    if users.moved() {
        let new_users = users.new_rows(None).await?.lazy().select([col("user_id")]);
        let all_sessions = sessions.table.scan().collect().await?.lazy();
        in_scope.push(all_sessions.join(new_users, [col("user_id")], [col("user_id")], JoinArgs::new(JoinType::Semi)));
    }
    let in_scope = concat(in_scope, UnionArgs::default())?
        .unique(Some(fitlake_frame::by_names(&["user_id", "workout_id", "session_id"])), UniqueKeepStrategy::First)
        .collect()?;
    // A session whose pairing moved or went (a late, earlier start or stop, a replaced event;
    // rare) may have stored rows anywhere: then every stored row is read, in one part.
    let moved = sessions.from.is_some() && sessions.table.rows_replaced_since(sessions.from).await?;
    let txns = [sessions.txn(), readings.txn(), users.txn()];
    if in_scope.height() == 0 && !moved {
        return commit_inserts(env, target, 0, &DataFrame::empty(), &[&sessions, &readings, &users]).await;
    }
    // The readings table does not change during the step: its files and their time ranges are
    // listed once for every part.
    let reading_files = readings.table.files(Some("time"))?;
    // The sessions in parts of about a group's worth of readings each, in start order, each
    // part synced and committed on its own; only the last commit records the progress (a run
    // that dies between parts redoes them, and a synced part changes nothing the second time).
    let parts = if moved {
        1
    } else {
        // Readings in the sessions' span, from the files' statistics; a reading takes about
        // 64 bytes through the join and the sync (7 columns and their intermediates), so a part
        // holds a group's bytes of them.
        let rows = match (range_of(&in_scope, "start_time")?, range_of(&in_scope, "end_time")?) {
            (Some((lo, _)), Some((_, hi))) => {
                readings.table.row_count_of(&overlapping(reading_files.clone(), lo, hi))?
            }
            _ => 0,
        };
        let per_part = (env.options().group_bytes() / 64).max(1);
        rows.div_ceil(per_part).clamp(1, in_scope.height().max(1) as u64) as usize
    };
    let in_scope = in_scope.sort(["start_time"], SortMultipleOptions::default())?;
    let per_part = in_scope.height().div_ceil(parts).max(1);
    let part_of = |part: usize| in_scope.slice((part * per_part) as i64, per_part);
    let readings = (&readings.table, reading_files.as_slice());
    let mut report = StepReport::default();
    env.meter().begin(&target.id().to_string(), in_scope.height() as u64, Unit::Rows);
    // Each part's rows are computed while the part before is synced and committed.
    let mut pending = Some(start_session_rows(&part_of(0), readings, &all_users)?);
    for part in 0..parts {
        let sessions_part = part_of(part);
        let desired = match pending.take() {
            Some(task) => task.await??,
            None => None,
        };
        let last = part + 1 == parts;
        if !last {
            pending = Some(start_session_rows(&part_of(part + 1), readings, &all_users)?);
        }
        let part_txns: &[(String, i64)] = if last { &txns } else { &[] };
        let gone_too = moved.then_some(&sessions);
        let synced = sync_session_rows(env, target, &sessions_part, desired, gone_too, part_txns).await?;
        env.meter().advance(sessions_part.height() as u64);
        env.meter().written(synced.rows_written);
        report = report.then(synced);
    }
    env.meter().end();
    Ok(report)
}

/// A part's rows for `workout_bpm` and how many readings were read for them (none when no
/// session is in scope), being computed ([`start_session_rows`]).
type SessionRows = tokio::task::JoinHandle<Result<Option<(DataFrame, usize)>>>;

/// The rows `workout_bpm` must hold for the `in_scope` sessions (none when no session is in
/// scope) and how many rows that is: each session's readings, found file by file as the
/// files overlapping the sessions' time span are read (only the columns it needs), from
/// `readings` (the table and its files with their time ranges), by
/// [`fitlake_silver::session_readings`] (a walk over each file's readings in key order, as
/// `heart_rate` writes them). Started now on a task of its own, to be awaited when the part
/// before is committed.
fn start_session_rows(
    in_scope: &DataFrame,
    (readings, reading_files): (&Table, &[DataFile]),
    all_users: &DataFrame,
) -> Result<SessionRows> {
    let (Some((start_lo, _)), Some((_, end_hi))) = (range_of(in_scope, "start_time")?, range_of(in_scope, "end_time")?)
    else {
        return Ok(tokio::spawn(async { Ok(None) }));
    };
    let reading_files = overlapping(reading_files.to_vec(), start_lo, end_hi);
    let sessions = fitlake_silver::sessions_with_devices(in_scope, all_users)?;
    let scan = readings
        .scan()
        .files(reading_files)
        .columns(&["device_id", "time", "heartrate", "valid"])
        .each_frame(move |rows| {
            fitlake_silver::session_readings(&sessions, &rows).map_err(|e| match e {
                fitlake_silver::Error::Polars(e) => e,
                other => PolarsError::ComputeError(other.to_string().into()),
            })
        })
        .spawn()?;
    Ok(tokio::spawn(async move {
        let desired = scan.await??;
        let read = desired.height();
        Ok(Some((desired, read)))
    }))
}

/// Syncs the stored `workout_bpm` rows of `in_scope` sessions to `desired` (what they must be
/// now, from [`start_session_rows`], with how many readings it read), and, with `gone_too`
/// (the sessions source, when sessions moved), deletes the rows of sessions that are gone;
/// commits `txns` with it.
async fn sync_session_rows(
    env: &StepEnv<'_>,
    target: &mut Table,
    in_scope: &DataFrame,
    desired: Option<(DataFrame, usize)>,
    gone_too: Option<&Source>,
    txns: &[(String, i64)],
) -> Result<StepReport> {
    let (desired, read) = match desired {
        Some(desired) => desired,
        // No session in scope: only gone sessions' rows to delete.
        None => (target.scan().files(Vec::new()).collect().await?, 0),
    };
    let checked = quality::check(env, target, &desired, true).await?;
    // The in-scope sessions' stored rows are synced to what they must be now, and when sessions
    // moved, the rows of sessions that are gone are deleted.
    let session: Vec<Expr> = ["user_id", "workout_id", "session_id"].iter().map(|k| col(*k)).collect();
    let mut scope = in_scope.clone().lazy().select(session.clone());
    let stored = if let Some(sessions) = gone_too {
        let stored = target.scan().with_file_column().collect().await?;
        let current = sessions.table.scan().columns(&["user_id", "workout_id", "session_id"]).collect().await?;
        let gone = stored.clone().lazy().select(session.clone()).join(
            current.lazy(),
            session.clone(),
            session.clone(),
            JoinArgs::new(JoinType::Anti),
        );
        scope = concat([scope, gone], UnionArgs::default())?;
        stored
    } else {
        rows_in_range(target, "start_time", range_of(in_scope, "start_time")?).await?
    };
    // On one packed integer key (Polars row-encodes the three columns of every stored row).
    let stored_in_scope =
        fitlake_frame::semi_join(&stored, &scope.collect()?, &["user_id", "workout_id", "session_id"])?;
    let keys = target.def().keys.clone();
    let (changed, gone) =
        fitlake_frame::sync_changes(&stored_in_scope.drop(fitlake_frame::FILE_COLUMN)?, &checked.rows, &keys)?;
    let plan = fitlake_frame::plan_merge(&stored, &changed, Some(&gone), &keys)?;
    let operation = if plan.files_to_remove.is_empty() { Operation::Append } else { Operation::Merge };
    let outcomes = (checked.outcomes.as_slice(), checked.dropped);
    commit_checked(env, target, read, &plan, outcomes, txns, operation).await
}

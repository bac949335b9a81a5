//! Bronze steps: landing files, or a [`RecordSource`] (Kafka, PostgreSQL), into the
//! append-only bronze tables, each record exactly once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use fitlake_catalog::TableId;
use fitlake_governance::policy::Zone;
use fitlake_landing::chunks::{Chunk, LineChunker};
use fitlake_landing::quarantine::{quarantine_frame, RAW_PREFIX_BYTES};
use fitlake_landing::Quarantined;
use fitlake_sources::RecordSource;
use fitlake_storage::{
    fault, lane_shares, FileEntry, Folder, Operation, Staged, Table, STAGED_FILE_BYTES, WRITE_LANES,
};
use polars::prelude::*;
use tracing::Instrument;

use super::{Context, StepEnv, StepTimer};
use crate::meter::Unit;
use crate::progress::{app_id, BatchPlan, FileStamp, PlanLog};
use crate::report::StepReport;
use crate::Result;

/// The plan log of a bronze table.
pub fn plan_log(ctx: &Context, table: TableId) -> PlanLog {
    PlanLog::new(ctx.access(), ctx.plans.clone(), table)
}

/// The landing folder of a bronze table's source.
pub fn landing_folder(ctx: &Context, table: TableId) -> Result<Folder> {
    Ok(Folder::zone(ctx.access(), Zone::Landing, &ctx.lakehouse().landing_url(table.name()))?)
}

/// Runs the step of an ingested bronze table: from its [`RecordSource`] when the run has
/// one for it, from its landing files otherwise.
pub async fn run(ctx: &Context, table: TableId) -> Result<StepReport> {
    match ctx.source_of(table) {
        Some(source) => ingest_source(ctx, table, source.as_ref()).await,
        None => ingest(ctx, table).await,
    }
}

/// What a bronze step has opened so far and counted: its target, and the quarantine and
/// calendar it opens on first need (an idle micro-batch reads nothing but the log).
struct Ingestion<'a> {
    ctx: &'a Context,
    env: StepEnv<'a>,
    target: Table,
    quarantine: Option<Table>,
    date_lookup: Option<DataFrame>,
    report: StepReport,
    /// The chunk being parsed while the one before it is written; it may belong to the batch's
    /// previous file (the pipeline runs across the files of a batch), and is written before the
    /// batch commits ([`Ingestion::write_last`]).
    preparing: Option<tokio::task::JoinHandle<Result<Prepared>>>,
    /// Buffers of chunks parsed, to read the next pieces into.
    spare: SpareBuffers,
}

/// Buffers of landing chunks already parsed, kept to read the next pieces into: their memory is
/// mapped already (a fresh buffer per piece cost bronze about a tenth of its CPU in page
/// faults and zeroing). At most [`SpareBuffers::KEPT`] are kept.
#[derive(Clone, Default)]
struct SpareBuffers(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl SpareBuffers {
    /// At most three buffers are in use at once (a piece being read, the chunk cut from the
    /// one before waiting, the chunk before that parsing): two spare ones cover the turnover.
    const KEPT: usize = 2;

    /// A spare buffer, or a new empty one.
    fn take(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop().unwrap_or_default()
    }

    /// Gives a parsed chunk's buffer back.
    fn put(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut spare = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if spare.len() < Self::KEPT {
            spare.push(buf);
        }
    }
}

impl<'a> Ingestion<'a> {
    async fn open(ctx: &'a Context, table: TableId) -> Result<Ingestion<'a>> {
        Ok(Ingestion {
            ctx,
            env: StepEnv::new(ctx, table),
            target: ctx.open(table).await?,
            quarantine: None,
            date_lookup: None,
            report: Default::default(),
            preparing: None,
            spare: SpareBuffers::default(),
        })
    }

    fn table(&self) -> TableId {
        self.target.id()
    }

    /// Parses one file's (or one source part's) text, writes its rows to `staged` stamped with
    /// `source_name`, and returns its quarantined records.
    async fn stage(&mut self, staged: &mut Lanes, text: &[u8], source_name: &str) -> Result<Vec<Quarantined>> {
        let prepared = self.preparer().await?.prepare(text, source_name, 1)?;
        self.write(staged, prepared, false).await
    }

    /// What [`Preparer::prepare`] needs, owned, so that it can run on a blocking thread while
    /// the last chunk is written (the calendar is read on first need).
    async fn preparer(&mut self) -> Result<Preparer> {
        let table = self.table();
        let date_lookup = match (&self.date_lookup, table) {
            (Some(lookup), _) => Some(lookup.clone()),
            (None, TableId::KafkaMultiplexBz) => {
                Some(self.date_lookup.insert(self.env.calendar().await?.scan().collect().await?).clone())
            }
            (None, _) => None,
        };
        Ok(Preparer {
            table,
            options: self.ctx.options.read(),
            load_time: self.ctx.options.load_time_micros,
            date_lookup,
        })
    }

    /// Writes prepared rows to `staged` (across every lane when they are the batch's `last`);
    /// returns their quarantined records.
    async fn write(&mut self, staged: &mut Lanes, prepared: Prepared, last: bool) -> Result<Vec<Quarantined>> {
        self.report.rows_read += prepared.read;
        self.ctx.meter().written(prepared.rows.height() as u64);
        match last {
            true => staged.write_across(prepared.rows).await?,
            false => staged.write(prepared.rows).await?,
        }
        Ok(prepared.quarantined)
    }

    /// Waits for the chunk being prepared, if any, and writes it; then `next`, if any, is the
    /// one being prepared.
    async fn write_last(
        &mut self,
        staged: &mut Lanes,
        next: Option<tokio::task::JoinHandle<Result<Prepared>>>,
    ) -> Result<Vec<Quarantined>> {
        let batch_ends = next.is_none();
        let last = std::mem::replace(&mut self.preparing, next);
        match last {
            Some(task) => {
                let prepared = task.await??;
                self.write(staged, prepared, batch_ends).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Stages a multiplex landing file of `size` bytes (as planned) read in pieces of
    /// [`RunOptions::landing_chunk_bytes`](crate::context::RunOptions::landing_chunk_bytes),
    /// three pieces of work overlapping: the next piece is read and the last chunk parsed (on a
    /// blocking thread) while the one before is written. Memory is bounded by the chunk, not
    /// the file. The file's last chunk is left parsing: the caller writes it with
    /// [`Ingestion::write_last`] (after starting the next file's first chunk, or before the
    /// commit).
    async fn stage_chunks(
        &mut self,
        staged: &mut Lanes,
        landing: &Folder,
        file: &str,
        size: u64,
    ) -> Result<Vec<Quarantined>> {
        let spare = self.spare.clone();
        let read = |range: std::ops::Range<u64>| {
            let (landing, file, buf) = (landing.clone(), file.to_string(), spare.take());
            tokio::spawn(async move { landing.read_range_into(&file, range, buf).await })
        };
        let chunk_bytes = self.ctx.options.landing_chunk_bytes();
        let step = chunk_bytes as u64;
        let mut chunker = LineChunker::new(file, chunk_bytes, self.ctx.options.max_line_bytes);
        let preparer = self.preparer().await?;
        let prepare = |chunk: Chunk| {
            let (preparer, file, spare) = (preparer.clone(), file.to_string(), spare.clone());
            tokio::task::spawn_blocking(move || {
                let prepared = preparer.prepare(&chunk.text, &file, chunk.first_line);
                spare.put(chunk.text);
                prepared
            })
        };
        let mut bad = Vec::new();
        let mut next = (size > 0).then(|| read(0..size.min(step)));
        let mut offset = 0;
        while let Some(reading) = next.take() {
            // A piece becomes a chunk up to its last line end; the next piece starts there.
            let (chunks, taken) = chunker.push_buffer(reading.await??);
            self.ctx.meter().advance(taken as u64);
            offset += taken as u64;
            if offset < size {
                next = Some(read(offset..size.min(offset + step)));
            }
            for chunk in chunks {
                bad.extend(self.write_last(staged, Some(prepare(chunk))).await?);
            }
        }
        if let Some(chunk) = chunker.finish() {
            bad.extend(self.write_last(staged, Some(prepare(chunk))).await?);
        }
        let skipped = chunker.take_oversized();
        self.report.rows_read += skipped.len() as u64;
        bad.extend(skipped);
        Ok(bad)
    }

    /// Commits one batch: its quarantined records first (exactly once, see
    /// [`write_quarantine`]), then its staged rows with the step's progress (the batch number
    /// first, then any source positions).
    async fn commit(
        &mut self,
        stage: &str,
        staged: Lanes,
        bad: &[Quarantined],
        progress: Vec<(String, i64)>,
    ) -> Result<()> {
        let batch = progress.first().map_or(0, |p| p.1);
        self.report.quarantined += bad.len() as u64;
        if !bad.is_empty() {
            let quarantine = match &mut self.quarantine {
                Some(q) => q,
                None => self.quarantine.insert(self.env.quarantine().await?),
            };
            write_quarantine(self.ctx.options.load_time_micros, quarantine, self.target.id(), stage, bad, batch)
                .await?;
        }
        let staged = staged.finish().await?;
        self.report.rows_written += staged.rows();
        self.report.inserted += staged.rows();
        self.report.version = self.target.commit().staged(staged).progress(progress).await?;
        Ok(())
    }
}

/// Writers of one batch's new files, each writing on a task of its own. Encoding Parquet is
/// about half of bronze's work: with one writer it kept one core busy while the other, done
/// parsing the next chunk, waited; with two, a chunk is written while the one before is still
/// being written and the next one parsed. The lanes' files are committed together.
struct Lanes {
    idle: Vec<Staged>,
    busy: VecDeque<tokio::task::JoinHandle<Result<Staged>>>,
}

/// Fewest rows a batch's last chunk is split across the lanes at (fewer are written by one).
const SPLIT_ROWS: usize = 16_384;

impl Lanes {
    /// Writers for one batch of `target`.
    fn new(target: &Table) -> Result<Lanes> {
        // Each lane's files half the usual size: a step reading them a group at a time takes
        // both lanes' files of a span together.
        let file_bytes = STAGED_FILE_BYTES / WRITE_LANES as u64;
        let idle = (0..WRITE_LANES).map(|_| target.stage_sized(file_bytes)).collect::<fitlake_storage::Result<_>>()?;
        Ok(Lanes { idle, busy: VecDeque::new() })
    }

    /// Hands `rows` to an idle lane, first waiting for the one busy longest if none is idle.
    async fn write(&mut self, rows: DataFrame) -> Result<()> {
        let mut staged = match self.idle.pop() {
            Some(staged) => staged,
            None => self.next_done().await?,
        };
        let task = async move {
            staged.write(&rows).await?;
            Ok(staged)
        };
        self.busy.push_back(tokio::spawn(task.in_current_span()));
        Ok(())
    }

    /// Hands `rows`, the batch's last, to every lane, a slice each: nothing is left to overlap
    /// their writing with, so one lane would write alone while the other core waits (a batch
    /// of one small file, most micro-batches, wrote in a third of the time parsing took).
    async fn write_across(&mut self, rows: DataFrame) -> Result<()> {
        if rows.height() < SPLIT_ROWS {
            return self.write(rows).await;
        }
        for slice in lane_shares(&[&rows], WRITE_LANES).into_iter().flatten() {
            self.write(slice).await?;
        }
        Ok(())
    }

    /// The writer of the lane busy longest, once it is done.
    async fn next_done(&mut self) -> Result<Staged> {
        let task = self.busy.pop_front().ok_or_else(|| crate::Error::Internal("no write lane is busy".into()))?;
        task.await?
    }

    /// Waits for every lane; one writer holding all their files, to commit.
    async fn finish(mut self) -> Result<Staged> {
        while !self.busy.is_empty() {
            let done = self.next_done().await?;
            self.idle.push(done);
        }
        let mut lanes = self.idle.into_iter();
        let mut all = lanes.next().ok_or_else(|| crate::Error::Internal("a batch without writers".into()))?;
        for lane in lanes {
            all.absorb(lane).await?;
        }
        Ok(all)
    }
}

/// Ingests every new landing file of `table`'s source, in batches of at most
/// `max_batch_bytes` (in streaming mode, one batch per micro-batch).
pub async fn ingest(ctx: &Context, table: TableId) -> Result<StepReport> {
    let timer = StepTimer::start(table, None);
    let landing = landing_folder(ctx, table)?;
    let log = plan_log(ctx, table);
    let app = app_id(table, "landing");
    let mut run = Ingestion::open(ctx, table).await?;
    loop {
        let committed = run.target.progress(&app).await?.unwrap_or(-1);
        let plans = log.load().await?;
        let batch = committed + 1;
        let listed: HashMap<String, FileEntry> =
            landing.list().await?.into_iter().map(|f| (f.name.clone(), f)).collect();
        let changed = changed_after_ingestion(&plans, batch, &listed);
        if !changed.is_empty() {
            let quarantine = match &mut run.quarantine {
                Some(q) => q,
                None => run.quarantine.insert(run.env.quarantine().await?),
            };
            write_quarantine(ctx.options.load_time_micros, quarantine, table, "changed", &changed, batch).await?;
        }
        // The plan, the listing its files are read against (taken just before), and whether it
        // takes every file listed (then the run ends with it, as Auto Loader's `availableNow`
        // takes what was there when it looked; a file landing meanwhile waits for the next run).
        let (plan, now, takes_all) = match plans.get(&batch) {
            // Planned by a run that died before committing: redo exactly those files.
            Some(plan) => (plan.clone(), listed, false),
            None => {
                let seen = planned_files(&plans, batch);
                let youngest = ctx.options.load_time_micros.saturating_sub(ctx.options.min_file_age_micros);
                let mut candidates: Vec<&FileEntry> = listed
                    .values()
                    .filter(|f| !seen.contains(f.name.as_str()) && f.modified_micros <= youngest)
                    .collect();
                candidates.sort();
                let listed_new = candidates.len();
                let mut files = Vec::new();
                let mut bytes = 0u64;
                for entry in candidates {
                    if !files.is_empty() && bytes + entry.size > ctx.options.max_batch_bytes {
                        break;
                    }
                    bytes += entry.size;
                    files.push(entry.clone());
                }
                // A file still being written (changed between the two listings) waits for the
                // next batch.
                let again: HashMap<String, FileEntry> =
                    landing.list().await?.into_iter().map(|f| (f.name.clone(), f)).collect();
                files.retain(|f| again.get(&f.name) == Some(f));
                if files.is_empty() {
                    break;
                }
                let takes_all = files.len() == listed_new;
                let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
                let stamped = files.into_iter().map(|f| (f.name.clone(), Some(stamp_of(&f))));
                // Another runner may have recorded its own plan for the batch first.
                let plan = log.write(&BatchPlan::new(batch, stamped)).await?;
                fault::point("after-plan", table.name());
                let takes_all = takes_all && plan.files == names;
                (plan, again, takes_all)
            }
        };
        let mut staged = Lanes::new(&run.target)?;
        let mut bad: Vec<Quarantined> = Vec::new();
        let batch_bytes = plan.files.iter().filter_map(|f| now.get(f)).map(|f| f.size).sum();
        ctx.meter().begin(&format!("{table} batch {}", plan.batch), batch_bytes, Unit::Bytes);
        for file in &plan.files {
            let current = now.get(file).map(stamp_of);
            if let Some(planned) = plan.stamps.get(file).filter(|p| current.is_some_and(|c| c != **p)) {
                // The file changed after it was planned: what it holds now is not what the
                // batch took. It is refused whole; land the new content under a new name.
                let reason = format!("changed after it was planned: {}", change_text(planned, current));
                tracing::warn!(table = %table, file = %file, reason, "landing file quarantined");
                bad.push(Quarantined { source_file: file.clone(), line: 0, raw: String::new(), reason });
                continue;
            }
            let max = ctx.options.max_file_bytes;
            let size = now.get(file).map_or(0, |f| f.size);
            if size > max {
                let (prefix, sha256) = landing.digest(file, RAW_PREFIX_BYTES).await?;
                tracing::warn!(table = %table, file = %file, size, "landing file over --max-file-bytes quarantined");
                bad.push(Quarantined {
                    source_file: file.clone(),
                    line: 0,
                    raw: String::from_utf8_lossy(&prefix).into_owned(),
                    reason: format!("file of {size} bytes is over --max-file-bytes {max} (sha256 {sha256})"),
                });
                continue;
            }
            let span = tracing::debug_span!("file", table = %table, file = %file, bytes = size);
            if table == TableId::KafkaMultiplexBz {
                bad.extend(run.stage_chunks(&mut staged, &landing, file, size).instrument(span).await?);
            } else {
                // Registrations and gym visits: small CSV files, read whole.
                let bytes = landing.read(file).await?;
                ctx.meter().advance(bytes.len() as u64);
                bad.extend(run.stage(&mut staged, &bytes, file).instrument(span).await?);
            }
        }
        // The batch's last chunk, still being parsed.
        bad.extend(run.write_last(&mut staged, None).await?);
        run.commit("landing", staged, &bad, vec![(app.clone(), plan.batch)]).await?;
        ctx.meter().end();
        if ctx.options.streaming || takes_all {
            break;
        }
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..run.report }))
}

/// Ingests the new records of `table` from `source`, batch by batch (one per micro-batch in
/// streaming mode). Each commit records the position of every stream it read (`txn`
/// `fitlake/<table>/<source>/<stream>`) and a batch number (`fitlake/<table>/<source>`); a
/// source with one unnamed stream (a database table) numbers its batches by its position.
pub async fn ingest_source(ctx: &Context, table: TableId, source: &dyn RecordSource) -> Result<StepReport> {
    let timer = StepTimer::start(table, Some(source.name()));
    let batch_app = app_id(table, source.name());
    let stream_app = |stream: &str| match stream {
        "" => batch_app.clone(),
        stream => app_id(table, &format!("{}/{stream}", source.name())),
    };
    let mut reader = source.reader(table.name()).await?;
    let mut run = Ingestion::open(ctx, table).await?;
    loop {
        let mut committed = BTreeMap::new();
        for stream in reader.streams() {
            if let Some(next) = run.target.progress(&stream_app(&stream)).await? {
                committed.insert(stream, next);
            }
        }
        let parts = reader.next(&committed, ctx.options.max_batch_bytes).await?;
        if parts.is_empty() {
            break;
        }
        let mut staged = Lanes::new(&run.target)?;
        let mut bad: Vec<Quarantined> = Vec::new();
        let mut positions: Vec<(String, i64)> = Vec::new();
        for part in &parts {
            let quarantined = run.stage(&mut staged, part.text.as_bytes(), &part.name).await?;
            // Quarantined records are named by their source key, not the rendered line.
            bad.extend(
                quarantined
                    .into_iter()
                    .map(|q| Quarantined { line: part.key_of_line(q.line).unwrap_or_default().max(0) as u64, ..q }),
            );
            positions.push((stream_app(&part.stream), part.next));
        }
        let progress = if positions.iter().any(|(app, _)| *app == batch_app) {
            positions
        } else {
            let batch = run.target.progress(&batch_app).await?.unwrap_or(0) + 1;
            std::iter::once((batch_app.clone(), batch)).chain(positions).collect()
        };
        run.commit(source.name(), staged, &bad, progress).await?;
        if ctx.options.streaming {
            break;
        }
    }
    Ok(timer.report(|r| *r = StepReport { table: r.table.clone(), ..run.report }))
}

/// A listed file's stamp.
fn stamp_of(file: &FileEntry) -> FileStamp {
    FileStamp { size: file.size, modified_micros: file.modified_micros }
}

/// How a file changed: its planned stamp against the current one (`None`: gone).
fn change_text(planned: &FileStamp, current: Option<FileStamp>) -> String {
    let now = current
        .map_or_else(|| "now gone".to_string(), |c| format!("now {} bytes modified at {}", c.size, c.modified_micros));
    format!("planned at {} bytes modified at {} (epoch µs), {now}", planned.size, planned.modified_micros)
}

/// Landing files of committed batches (before `before`) that have changed since their plan
/// took them, as quarantine records: the change is not ingested (the file's batch is
/// committed), and not ignored silently either. Deleted files are not reported (archiving
/// landed files is normal).
fn changed_after_ingestion(
    plans: &BTreeMap<i64, BatchPlan>,
    before: i64,
    listed: &HashMap<String, FileEntry>,
) -> Vec<Quarantined> {
    let mut out = Vec::new();
    for plan in plans.range(..before).map(|(_, p)| p) {
        for (file, planned) in &plan.stamps {
            let Some(current) = listed.get(file).map(stamp_of) else { continue };
            if current != *planned {
                out.push(Quarantined {
                    source_file: file.clone(),
                    line: 0,
                    raw: String::new(),
                    reason: format!(
                        "changed after ingestion in batch {}: {}",
                        plan.batch,
                        change_text(planned, Some(current))
                    ),
                });
            }
        }
    }
    out
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
    /// Entries that are not regular files (symbolic links, FIFOs): never read.
    pub skipped: Vec<String>,
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
pub async fn landing_state(ctx: &Context, table: TableId) -> Result<LandingState> {
    let landing = landing_folder(ctx, table)?;
    let committed = ctx.open(table).await?.progress(&app_id(table, "landing")).await?.unwrap_or(-1);
    let plans = plan_log(ctx, table).load().await?;
    let done = planned_files(&plans, committed + 1);
    let (committed, pending) = landing.list().await?.into_iter().partition(|f| done.contains(f.name.as_str()));
    Ok(LandingState { committed, pending, skipped: landing.skipped()? })
}

/// The landing parser of a bronze table and the stamp of its rows, owned so that it can run off
/// the async workers: the table, the read options, the load time and (for the multiplex) the
/// calendar.
#[derive(Clone)]
struct Preparer {
    table: TableId,
    options: fitlake_landing::ReadOptions,
    load_time: i64,
    date_lookup: Option<DataFrame>,
}

/// Bronze rows ready to write, the records quarantined while parsing them, and how many records
/// were read.
struct Prepared {
    rows: DataFrame,
    quarantined: Vec<Quarantined>,
    read: u64,
}

impl Preparer {
    /// Parses whole lines of `file` from line `first_line` on (1 for a whole file, which may
    /// start with a byte-order mark) and stamps them as bronze rows.
    fn prepare(&self, text: &[u8], file: &str, first_line: u64) -> Result<Prepared> {
        let options = &self.options;
        let parsed = match self.table {
            TableId::RegisteredUsersBz => fitlake_landing::csv::parse_registered_users(text, file, options)?,
            TableId::GymLoginsBz => fitlake_landing::csv::parse_gym_logins(text, file, options)?,
            TableId::KafkaMultiplexBz if first_line == 1 => {
                fitlake_landing::multiplex::parse_kafka_multiplex(text, file, options)?
            }
            TableId::KafkaMultiplexBz => {
                fitlake_landing::multiplex::parse_kafka_multiplex_lines(text, file, first_line, options)?
            }
            other => return Err(crate::Error::Internal(format!("{other} has no landing source").into())),
        };
        let read = (parsed.rows.height() + parsed.quarantined.len()) as u64;
        let rows = match &self.date_lookup {
            Some(lookup) => fitlake_bronze::kafka_multiplex_bz(&parsed.rows, lookup, self.load_time, file)?,
            None => fitlake_bronze::stamp(&parsed.rows, self.load_time, Some(file))?,
        };
        Ok(Prepared { rows, quarantined: parsed.quarantined, read })
    }
}

/// Appends quarantined records of `table`'s batch `batch` from `stage` (`landing`, `postgres`,
/// `kafka`, `decode`, `expectations`), exactly once: records already quarantined (by a step
/// that crashed or lost a commit race after quarantining, then reran, possibly over a longer
/// span of its source) are not added again, and the commit carries the batch under the
/// quarantine's own `txn` for `table` and `stage`, so two runners cannot both add them.
pub async fn write_quarantine(
    load_time_micros: i64,
    quarantine: &mut Table,
    table: TableId,
    stage: &str,
    records: &[Quarantined],
    batch: i64,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let app = app_id(TableId::Quarantine, &format!("{}/{stage}", table.name()));
    const RECORD: [&str; 5] = ["table", "source_file", "line", "raw", "reason"];
    let already = quarantine.scan().collect().await?;
    let fresh = fitlake_frame::anti_join(&quarantine_frame(table.name(), records)?, &already, &RECORD)?;
    if fresh.height() == 0 {
        return Ok(());
    }
    let rows = fitlake_bronze::stamp(&fresh, load_time_micros, None)?;
    tracing::warn!(table = %table, stage, records = rows.height(), "quarantined records");
    quarantine.commit().rows(&rows).progress([(app, batch)]).await?;
    Ok(())
}

/// Loads the days of a calendar frame into `date_lookup` (days already there are kept;
/// nothing is committed when nothing changes).
pub async fn load_date_lookup(ctx: &Context, calendar: &DataFrame) -> Result<StepReport> {
    let timer = StepTimer::start(TableId::DateLookup, None);
    let mut table = ctx.open(TableId::DateLookup).await?;
    let current = table.scan().with_file_column().collect().await?;
    let kept = fitlake_frame::anti_join(&current.drop(fitlake_frame::FILE_COLUMN)?, calendar, &["date"])?;
    let desired =
        calendar.vstack(&kept.select(calendar.get_column_names().into_iter().cloned().collect::<Vec<_>>())?)?;
    let plan = fitlake_frame::plan_sync(&current, &desired, &["date"])?;
    let version = if plan.is_empty() {
        None
    } else {
        table
            .commit()
            .rows(&plan.rows_to_add)
            .remove(plan.files_to_remove.iter().cloned())
            .operation(Operation::Merge)
            .merge_counts(plan.inserted as u64, plan.updated as u64, plan.deleted as u64)
            .await?
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

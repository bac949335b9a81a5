//! Table maintenance commands and streaming auto-compaction: `optimize` and `vacuum` of
//! fitlake's tables (the storage side is [`fitlake_storage::maintenance`]), each holding the
//! table's lock like a step, so a local runner and a maintenance command take turns.

use fitlake_catalog::TableId;
use fitlake_storage::maintenance::{self, OptimizeOptions, OptimizeReport, VacuumOptions, VacuumReport};

use tracing::Instrument;

use crate::context::Context;
use crate::report::RunReport;
use crate::run::table_lock;
use crate::Result;

/// Compacts `tables` one after the other (see [`maintenance::optimize`]).
pub async fn optimize(ctx: &Context, tables: &[TableId], options: &OptimizeOptions) -> Result<Vec<OptimizeReport>> {
    let mut reports = Vec::new();
    for &table in tables {
        let _lock = table_lock(ctx, table).await?;
        let span = tracing::info_span!("optimize", table = %table);
        let report = maintenance::optimize(ctx.access(), table, options).instrument(span).await?;
        tracing::info!(
            table = %table,
            files_removed = report.files_removed,
            files_added = report.files_added,
            bytes_removed = report.bytes_removed,
            bytes_added = report.bytes_added,
            version = report.version,
            "optimized"
        );
        reports.push(report);
    }
    Ok(reports)
}

/// Vacuums `tables` one after the other (see [`maintenance::vacuum`]).
pub async fn vacuum(ctx: &Context, tables: &[TableId], options: &VacuumOptions) -> Result<Vec<VacuumReport>> {
    let mut reports = Vec::new();
    for &table in tables {
        let _lock = table_lock(ctx, table).await?;
        let report = maintenance::vacuum(ctx.access(), table, options).await?;
        tracing::info!(table = %table, files = report.files.len(), bytes = report.bytes, log_files = report.log_files, dry_run = report.dry_run, "vacuumed");
        reports.push(report);
    }
    Ok(reports)
}

/// Streaming auto-compaction: when to compact a table after a micro-batch.
#[derive(Debug, Clone)]
pub struct AutoCompact {
    /// A table written in the micro-batch is compacted once it has at least this many files
    /// smaller than the target size (Databricks' `autoCompact.minNumFiles` is 50).
    pub min_files: usize,
    /// How it is compacted.
    pub options: OptimizeOptions,
}

/// Compacts, of the tables the micro-batch `report` wrote that have gathered at least
/// `auto.min_files` small files, the one with the most: at most one table per micro-batch, so
/// the tables a stream fills at the same pace are compacted in turn rather than all in one
/// micro-batch (which would delay it by all their compactions). The compaction commits
/// `dataChange = false`: the next micro-batch's steps see nothing new.
pub async fn auto_compact(ctx: &Context, report: &RunReport, auto: &AutoCompact) -> Result<Vec<OptimizeReport>> {
    let mut written: Vec<TableId> = report
        .steps
        .iter()
        .filter(|s| s.rows_written > 0 || s.quarantined > 0)
        .filter_map(|s| TableId::from_name(s.table.split(' ').next().unwrap_or_default()))
        .collect();
    if written.iter().any(|t| t.has_step()) {
        // The run logs every micro-batch writes to (quarantine only when there is some).
        written.extend([TableId::Quarantine, TableId::QualityEvents, TableId::LandingFiles]);
    }
    written.sort();
    written.dedup();
    let mut due: Option<(usize, TableId)> = None;
    for table in written {
        let files = ctx.open(table).await?.files(None)?;
        let small = files.iter().filter(|f| (f.size.max(0) as u64) < auto.options.target_file_bytes).count();
        if small >= auto.min_files.max(2) && due.is_none_or(|(most, _)| small > most) {
            due = Some((small, table));
        }
    }
    let due: Vec<TableId> = due.map(|(_, table)| table).into_iter().collect();
    optimize(ctx, &due, &auto.options).await
}

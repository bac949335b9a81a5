//! `fitlake status`: each table's version and row count, and how far each incremental step is
//! behind its sources (landing files for bronze, commits of upstream tables for silver and gold).

use fitlake_catalog::TableId;
use serde::Serialize;

use crate::progress::app_id;
use crate::steps::{bronze, Context};
use crate::Result;

/// How far a step has consumed one upstream table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceProgress {
    /// The upstream table.
    pub source: String,
    /// The upstream version the step has consumed (`None`: never ran).
    pub consumed: Option<i64>,
    /// The upstream table's latest version.
    pub latest: i64,
    /// Upstream commits not consumed yet.
    pub behind: i64,
}

/// One table in the status report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableStatus {
    /// `layer.table`.
    pub table: String,
    /// The table's latest version.
    pub version: i64,
    /// Its row count.
    pub rows: u64,
    /// For a bronze table fed by landing files: the files not ingested yet.
    pub landing: Option<bronze::Backlog>,
    /// For a bronze table fed by landing files: entries of its landing folder that are not
    /// regular files (symbolic links, FIFOs) and are never read.
    pub skipped: Vec<String>,
    /// For a silver or gold table: its step's progress through each source.
    pub sources: Vec<SourceProgress>,
}

impl TableStatus {
    /// True when the table's step has consumed everything its sources hold.
    pub fn caught_up(&self) -> bool {
        self.landing.is_none_or(|b| b.files == 0) && self.sources.iter().all(|s| s.behind == 0)
    }
}

/// The status of every table.
pub async fn status(ctx: &Context) -> Result<Vec<TableStatus>> {
    let mut out = Vec::new();
    for id in TableId::ALL {
        let table = ctx.open(id).await?;
        let (landing, skipped) = if TableId::INGESTED.contains(&id) {
            let state = bronze::landing_state(ctx, id).await?;
            (Some(state.backlog()), state.skipped)
        } else {
            (None, Vec::new())
        };
        let mut sources = Vec::new();
        for &source in id.sources() {
            let latest = ctx.open(source).await?.version();
            let consumed = table.progress(&app_id(id, source.name())).await?;
            let behind = latest - consumed.unwrap_or(-1);
            sources.push(SourceProgress { source: source.name().to_string(), consumed, latest, behind });
        }
        out.push(TableStatus {
            table: id.qualified_name(),
            version: table.version(),
            rows: table.row_count()?,
            landing,
            skipped,
            sources,
        });
    }
    Ok(out)
}

/// The status as a table for people.
pub fn status_table(tables: &[TableStatus]) -> String {
    let mut out = format!("{:<32} {:>8} {:>12}  behind\n", "table", "version", "rows");
    for t in tables {
        let mut behind: Vec<String> = t.sources.iter().map(|s| format!("{}:{}", s.source, s.behind)).collect();
        if let Some(b) = t.landing {
            behind.push(format!("landing:{} files", b.files));
        }
        let behind = if behind.is_empty() { "-".to_string() } else { behind.join(" ") };
        out.push_str(&format!("{:<32} {:>8} {:>12}  {behind}\n", t.table, t.version, t.rows));
        if !t.skipped.is_empty() {
            out.push_str(&format!("  skipped (not regular files): {}\n", t.skipped.join(", ")));
        }
    }
    out
}

//! `fitlake report`: runs the dashboard's queries ([`fitlake_report::PANELS`]) the way
//! `fitlake sql` runs them, reads every table's version and last commit, and builds the page.

use fitlake_catalog::TableId;
use fitlake_report::{Inputs, Report, TableState, PANELS};
use fitlake_storage::{Access, Table};

use crate::sql::Query;
use crate::Error;

/// The dashboard of the lakehouse `access` reads, as of `now_ms` (ms since the epoch).
pub async fn dashboard(access: &Access, now_ms: i64) -> Result<Report, Error> {
    let mut results = Vec::with_capacity(PANELS.len());
    for panel in PANELS {
        let query = Query::parse(panel.query)?;
        results.push(query.run(access).await?);
    }
    let mut tables = Vec::with_capacity(TableId::ALL.len());
    for id in TableId::ALL {
        let table = Table::open(access, id).await?;
        tables.push(TableState {
            table: id.qualified_name(),
            version: table.version(),
            rows: table.row_count()?,
            committed_ms: table.committed_ms(),
        });
    }
    let inputs = Inputs { results, tables, now_ms, lakehouse: format!("tables at {}", access.lakehouse.managed_url()) };
    fitlake_report::build(&inputs).map_err(|e| Error::Internal(e.into()))
}

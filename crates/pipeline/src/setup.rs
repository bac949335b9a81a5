//! `fitlake setup`: the zones, every table, the catalog registry and `date_lookup`.

use chrono::NaiveDate;
use fitlake_catalog::TableId;
use fitlake_config::Layer;
use fitlake_governance::policy::Zone;
use fitlake_governance::Privilege;
use fitlake_landing::calendar::{calendar_frame, generate_calendar, parse_date_lookup};
use fitlake_landing::seed::SEED_DATE_LOOKUP;
use fitlake_storage::{AzureLocation, ContainerState};
use fitlake_storage::{Folder, Need, Table};
use serde::Serialize;

use crate::report::RunReport;
use crate::steps::{bronze, Context};
use crate::{Error, Result};
use fitlake_governance::plan::{TableLocation, ZoneUrls};

/// A table as the catalog registry (`metastore-root/tables.json`) lists it.
#[derive(Debug, Serialize)]
struct RegistryEntry {
    name: String,
    layer: String,
    location: String,
    description: String,
    partition_columns: Vec<String>,
    keys: Vec<String>,
    columns: Vec<(String, String, bool)>,
}

/// Where the governance plan puts things for `lakehouse`: the zones' URLs, the catalog's own
/// storage (`<metastore root>/unity-catalog/`, apart from the tables) and every table's folder.
pub fn zone_urls(lakehouse: &fitlake_config::Lakehouse) -> Result<ZoneUrls> {
    let catalog_storage = lakehouse
        .metastore_url()
        .join("unity-catalog/")
        .map_err(|e| Error::Config(format!("the metastore root {}: {e}", lakehouse.metastore_url())))?;
    Ok(ZoneUrls {
        landing: lakehouse.data_zone_url().to_string(),
        checkpoint: lakehouse.checkpoint_zone_url().to_string(),
        managed: lakehouse.managed_url().to_string(),
        catalog_storage: catalog_storage.to_string(),
        tables: TableId::ALL
            .iter()
            .map(|t| TableLocation {
                schema: t.layer().name().to_string(),
                name: t.name().to_string(),
                location: lakehouse.table_url(t.layer(), t.name()).to_string(),
            })
            .collect(),
    })
}

/// What setup needs: `CREATE TABLE` in the three schemas and `MODIFY` on `date_lookup`.
pub fn setup_needs() -> Vec<Need> {
    let mut needs: Vec<Need> = Layer::ALL.into_iter().map(Need::CreateTable).collect();
    needs.push(Need::Table(TableId::DateLookup, Privilege::Modify));
    needs
}

/// Creates the zones, every table (idempotent) and loads `date_lookup`: the 2023 seed calendar,
/// plus the generated days from `calendar.0` to `calendar.1` when given.
pub async fn setup(ctx: &Context, calendar: Option<(NaiveDate, NaiveDate)>) -> Result<RunReport> {
    let started = std::time::Instant::now();
    let lakehouse = ctx.lakehouse();
    let access = ctx.access();
    access.require(&setup_needs())?;
    for root in lakehouse.roots() {
        if access.stores.ensure_container(root).await? == ContainerState::Created {
            if let Some(Ok(location)) = AzureLocation::parse(root) {
                tracing::info!("created the {location}");
            }
        }
    }
    for root in [lakehouse.metastore_url(), lakehouse.managed_url()] {
        Folder::catalog_storage(access, root)?.check_writable().await?;
    }
    // The zones' folders (creating a folder writes no file).
    for source in fitlake_landing::sources::ALL {
        Folder::zone(access, Zone::Landing, &lakehouse.landing_url(source))?;
    }
    Folder::zone(access, Zone::Checkpoint, &lakehouse.checkpoint_zone_url())?;
    let mut registry = Vec::new();
    for id in TableId::ALL {
        let def = id.def();
        Table::create(access, id).await?;
        registry.push(RegistryEntry {
            name: def.name.to_string(),
            layer: def.layer.to_string(),
            location: lakehouse.table_url(def.layer, def.name).to_string(),
            description: def.description.to_string(),
            partition_columns: def.partition_columns.iter().map(|c| c.to_string()).collect(),
            keys: def.keys.iter().map(|c| c.to_string()).collect(),
            columns: def
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), fitlake_frame::delta_type_name(f.data_type()), f.is_nullable()))
                .collect(),
        });
    }
    let registry = serde_json::to_vec_pretty(&registry).map_err(|e| Error::Internal(e.into()))?;
    Folder::catalog_storage(access, lakehouse.metastore_url())?.write("tables.json", registry).await?;

    let seed = parse_date_lookup(SEED_DATE_LOOKUP, "6-date-lookup.json");
    let mut days = seed.days;
    if let Some(q) = seed.quarantined.first() {
        return Err(Error::Internal(format!("bundled calendar line {}: {}", q.line, q.reason).into()));
    }
    if let Some((from, to)) = calendar {
        days.extend(generate_calendar(from, to)?);
        days.sort_by_key(|d| d.date);
        days.dedup_by_key(|d| d.date);
    }
    let mut report = RunReport::default();
    report.push(bronze::load_date_lookup(ctx, &calendar_frame(&days)?).await?);
    report.finish(started.elapsed());
    Ok(report)
}

//! The plan that realises a policy on a Databricks workspace: Unity Catalog SQL (external
//! locations, catalog, schemas, ownership, GRANT and REVOKE) and cluster policy definitions,
//! in full or as the difference from the workspace's current state (idempotent: applying the
//! plan, then planning again against the result, gives an empty plan).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::{PrincipalKind, Privilege, Securable};
use crate::policy::{ClusterPolicy, Grant, Policy, Zone};
use crate::{Error, Result};

/// The storage URL of each zone, for the statements that name storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneUrls {
    /// The landing (data) zone.
    pub landing: String,
    /// The checkpoint zone.
    pub checkpoint: String,
    /// The root of fitlake's Delta tables (each under `<layer>/<table>/`).
    pub managed: String,
    /// The catalog's own managed storage (`CREATE CATALOG … MANAGED LOCATION`), for tables
    /// Databricks users create themselves. Unity Catalog refuses an external table inside
    /// managed storage, so it must not overlap `managed` (fitlake uses
    /// `<metastore root>/unity-catalog/`).
    pub catalog_storage: String,
    /// Every fitlake table, registered as an external Delta table at its folder.
    pub tables: Vec<TableLocation>,
}

/// A table the plan registers: `CREATE TABLE IF NOT EXISTS catalog.schema.name USING DELTA
/// LOCATION 'location'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLocation {
    /// Its schema (the layer).
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its folder.
    pub location: String,
}

/// The external location the plan creates over fitlake's table folders: Unity Catalog needs
/// one to register external tables there. It is owned by the catalog owner and nobody is
/// granted `READ FILES` or `WRITE FILES` on it (rule 1): tables are reached through table
/// privileges only.
pub const TABLES_LOCATION: &str = "fitlake_tables";

/// The external location over the catalog's managed storage.
pub const CATALOG_STORAGE_LOCATION: &str = "fitlake_catalog_storage";

/// True when one of two storage URLs is inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (format!("{}/", a.trim_end_matches('/')), format!("{}/", b.trim_end_matches('/')));
    a.starts_with(&b) || b.starts_with(&a)
}

impl ZoneUrls {
    fn of(&self, zone: Zone) -> &str {
        match zone {
            Zone::Landing => &self.landing,
            Zone::Checkpoint => &self.checkpoint,
            Zone::Managed => &self.managed,
            Zone::Metastore => &self.catalog_storage,
        }
    }
}

/// One row of `SHOW GRANTS`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShownGrant {
    /// Grantee.
    pub principal: String,
    /// Privilege, e.g. `SELECT`.
    pub action_type: String,
    /// Object type, e.g. `TABLE`.
    pub object_type: String,
    /// Object name, e.g. `fitlake.gold.gym_summary`.
    pub object_key: String,
}

/// A cluster policy as the workspace has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterPolicyState {
    /// Policy name.
    pub name: String,
    /// Its definition.
    pub definition: BTreeMap<String, serde_json::Value>,
    /// Most clusters per user.
    pub max_clusters_per_user: u32,
    /// Principals with CAN_USE.
    #[serde(default)]
    pub users: Vec<String>,
}

/// The workspace's current state, as `--current FILE` gives it (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Current {
    /// Existing external locations by name.
    #[serde(default)]
    pub external_locations: Vec<String>,
    /// Existing catalogs.
    #[serde(default)]
    pub catalogs: Vec<String>,
    /// Existing schemas as `catalog.schema`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Today's grants (`SHOW GRANTS` rows).
    #[serde(default)]
    pub grants: Vec<ShownGrant>,
    /// Existing cluster policies.
    #[serde(default)]
    pub cluster_policies: Vec<ClusterPolicyState>,
    /// Registered tables, `catalog.schema.table`.
    #[serde(default)]
    pub tables: Vec<String>,
}

impl Current {
    /// Parses a `--current` file.
    pub fn parse(text: &str) -> Result<Current> {
        serde_json::from_str(text).map_err(|e| Error::Current(e.to_string()))
    }
}

/// What a plan does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Unity Catalog SQL statements, in order.
    pub sql: Vec<String>,
    /// Cluster policy requests: (`create` or `edit`, request body for the Cluster Policies API).
    pub cluster_policies: Vec<(&'static str, serde_json::Value)>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty() && self.cluster_policies.is_empty()
    }

    /// The plan as a script: SQL, then one JSON request per cluster policy.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            out.push_str("-- nothing to change: the workspace already matches the policy\n");
            return out;
        }
        for statement in &self.sql {
            let _ = writeln!(out, "{statement}");
        }
        for (action, request) in &self.cluster_policies {
            let _ = writeln!(out, "\n-- cluster policy: POST /api/2.0/policies/clusters/{action}");
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(request).unwrap_or_default());
        }
        out
    }
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A Databricks SQL string literal: backslash escapes are on there, so a backslash and a quote
/// are both escaped with a backslash (doubling a quote would end the literal: Spark joins
/// `'a''b'` as two adjacent literals). Control characters are refused when the policy loads.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn shown(grant: &Grant) -> ShownGrant {
    let (object_type, object_key) = grant.2.show_grants_key();
    ShownGrant {
        principal: grant.0.clone(),
        action_type: grant.1.sql().to_string(),
        object_type: object_type.to_string(),
        object_key,
    }
}

fn state_of(cp: &ClusterPolicy) -> ClusterPolicyState {
    ClusterPolicyState {
        name: cp.name.clone(),
        definition: cp.definition.clone(),
        max_clusters_per_user: cp.max_clusters_per_user,
        users: cp.users.clone(),
    }
}

fn cluster_policy_request(policy: &Policy, cp: &ClusterPolicy) -> serde_json::Value {
    let acl: Vec<serde_json::Value> = cp
        .users
        .iter()
        .map(|u| {
            let key = match policy.principal(u).map(|p| p.kind) {
                Some(PrincipalKind::Group) => "group_name",
                Some(PrincipalKind::ServicePrincipal) => "service_principal_name",
                _ => "user_name",
            };
            serde_json::json!({ key: u, "permission_level": "CAN_USE" })
        })
        .collect();
    serde_json::json!({
        "name": cp.name,
        "description": cp.description,
        "max_clusters_per_user": cp.max_clusters_per_user,
        "definition": serde_json::to_string(&cp.definition).unwrap_or_default(),
        "access_control_list": acl,
    })
}

/// The plan for `policy` with storage at `urls`: everything when `current` is `None`,
/// otherwise only what differs from it.
pub fn plan(policy: &Policy, urls: &ZoneUrls, current: Option<&Current>) -> Result<Plan> {
    let full = current.is_none();
    let empty = Current::default();
    let current = current.unwrap_or(&empty);
    let mut sql = Vec::new();
    if full {
        sql.push(format!(
            "-- fitlake governance plan: catalog {}, tables under {}, catalog storage {}",
            policy.catalog.name, urls.managed, urls.catalog_storage
        ));
        for c in &policy.storage_credentials {
            // No free text in a `--` comment: the name is a checked identifier.
            sql.push(format!(
                "-- storage credential {} is created in the account console or API; then:",
                quote(&c.name)
            ));
            sql.push(format!("ALTER STORAGE CREDENTIAL {} OWNER TO {};", quote(&c.name), quote(&c.owner)));
        }
    }
    for l in &policy.external_locations {
        if current.external_locations.contains(&l.name) {
            continue;
        }
        sql.push(format!(
            "CREATE EXTERNAL LOCATION IF NOT EXISTS {} URL {} WITH (STORAGE CREDENTIAL {}) COMMENT {};",
            quote(&l.name),
            literal(urls.of(l.zone)),
            quote(&l.credential),
            literal(&l.comment)
        ));
        sql.push(format!("ALTER EXTERNAL LOCATION {} OWNER TO {};", quote(&l.name), quote(&l.owner)));
    }
    let catalog = &policy.catalog;
    for table in std::iter::once(urls.managed.as_str()).chain(urls.tables.iter().map(|t| t.location.as_str())) {
        if overlaps(table, &urls.catalog_storage) {
            return Err(Error::Invalid(format!(
                "the catalog's managed storage {} overlaps table storage {table}: Unity Catalog refuses external \
                 tables inside managed storage; give the catalog storage of its own",
                urls.catalog_storage
            )));
        }
    }
    if let Some(credential) = policy.storage_credentials.first() {
        let generated = [
            (
                TABLES_LOCATION,
                &urls.managed,
                "fitlake's Delta tables, registered as external tables; no file privileges (rule 1)",
            ),
            (CATALOG_STORAGE_LOCATION, &urls.catalog_storage, "the catalog's managed storage"),
        ];
        for (name, url, comment) in generated {
            if current.external_locations.iter().any(|l| l == name) {
                continue;
            }
            sql.push(format!(
                "CREATE EXTERNAL LOCATION IF NOT EXISTS {} URL {} WITH (STORAGE CREDENTIAL {}) COMMENT {};",
                quote(name),
                literal(url),
                quote(&credential.name),
                literal(comment)
            ));
            sql.push(format!("ALTER EXTERNAL LOCATION {} OWNER TO {};", quote(name), quote(&catalog.owner)));
        }
    }
    if !current.catalogs.contains(&catalog.name) {
        sql.push(format!(
            "CREATE CATALOG IF NOT EXISTS {} MANAGED LOCATION {};",
            quote(&catalog.name),
            literal(&urls.catalog_storage)
        ));
        sql.push(format!("ALTER CATALOG {} OWNER TO {};", quote(&catalog.name), quote(&catalog.owner)));
    }
    for s in &catalog.schemas {
        if !current.schemas.contains(&format!("{}.{s}", catalog.name)) {
            sql.push(format!("CREATE SCHEMA IF NOT EXISTS {}.{};", quote(&catalog.name), quote(s)));
        }
    }
    for t in &urls.tables {
        if !catalog.schemas.contains(&t.schema) {
            return Err(Error::Invalid(format!(
                "table {}.{} is in schema {:?}, which the policy does not declare",
                t.schema, t.name, t.schema
            )));
        }
        if current.tables.contains(&format!("{}.{}.{}", catalog.name, t.schema, t.name)) {
            continue;
        }
        sql.push(format!(
            "CREATE TABLE IF NOT EXISTS {}.{}.{} USING DELTA LOCATION {};",
            quote(&catalog.name),
            quote(&t.schema),
            quote(&t.name),
            literal(&t.location)
        ));
    }
    let desired: BTreeSet<ShownGrant> = policy.expanded_grants()?.iter().map(shown).collect();
    let existing: BTreeSet<ShownGrant> = current.grants.iter().cloned().collect();
    for g in desired.difference(&existing) {
        sql.push(grant_statement("GRANT", "TO", g)?);
    }
    for g in existing.difference(&desired) {
        // Only grants on what the policy governs are revoked; other objects are not ours.
        let Some(securable) = Securable::from_show_grants(&g.object_type, &g.object_key) else { continue };
        if policy.knows(&securable) {
            sql.push(grant_statement("REVOKE", "FROM", g)?);
        }
    }
    let mut cluster_policies = Vec::new();
    for cp in &policy.cluster_policies {
        let action = match current.cluster_policies.iter().find(|c| c.name == cp.name) {
            None => "create",
            Some(c) if *c != state_of(cp) => "edit",
            Some(_) => continue,
        };
        cluster_policies.push((action, cluster_policy_request(policy, cp)));
    }
    Ok(Plan { sql, cluster_policies })
}

fn grant_statement(verb: &str, preposition: &str, g: &ShownGrant) -> Result<String> {
    let securable = Securable::from_show_grants(&g.object_type, &g.object_key)
        .ok_or_else(|| Error::Current(format!("unknown object type {:?} of {:?}", g.object_type, g.object_key)))?;
    let privilege = Privilege::from_sql(&g.action_type)
        .ok_or_else(|| Error::Current(format!("unknown privilege {:?}", g.action_type)))?;
    Ok(format!("{verb} {privilege} ON {} {preposition} {};", securable.sql(), quote(&g.principal)))
}

/// The workspace state after the full plan of `policy` is applied (what `SHOW GRANTS` and the
/// APIs would then list).
pub fn applied(policy: &Policy, urls: &ZoneUrls) -> Result<Current> {
    let generated = [TABLES_LOCATION, CATALOG_STORAGE_LOCATION].map(String::from);
    Ok(Current {
        external_locations: policy.external_locations.iter().map(|l| l.name.clone()).chain(generated).collect(),
        tables: urls.tables.iter().map(|t| format!("{}.{}.{}", policy.catalog.name, t.schema, t.name)).collect(),
        catalogs: vec![policy.catalog.name.clone()],
        schemas: policy.catalog.schemas.iter().map(|s| format!("{}.{s}", policy.catalog.name)).collect(),
        grants: policy.expanded_grants()?.iter().map(shown).collect(),
        cluster_policies: policy.cluster_policies.iter().map(state_of).collect(),
    })
}

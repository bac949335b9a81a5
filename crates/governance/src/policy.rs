//! The policy file: the catalog and its schemas, storage credentials and external locations,
//! principals, grants and cluster policies, checked against the platform's rules when loaded.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{Principal, PrincipalKind, Privilege, Securable};
use crate::{Error, Result};

/// A storage zone of the lakehouse, as the IO layer names what it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// The landing (data) zone: raw source files.
    Landing,
    /// The checkpoint zone.
    Checkpoint,
    /// Managed table storage (the catalog's managed location).
    Managed,
    /// The metastore's storage root.
    Metastore,
}

impl Zone {
    /// The zone's name in messages and in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            Zone::Landing => "landing",
            Zone::Checkpoint => "checkpoint",
            Zone::Managed => "managed",
            Zone::Metastore => "metastore",
        }
    }
}

/// The catalog fitlake's tables live in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Catalog name.
    pub name: String,
    /// Owner (a principal).
    pub owner: String,
    /// The schemas in it (fitlake's layers).
    pub schemas: Vec<String>,
}

/// A storage credential (the identity storage is reached with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCredential {
    /// Credential name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// What it is (e.g. the access connector's managed identity).
    #[serde(default)]
    pub comment: String,
}

/// An external location: a zone of the lakehouse reachable with a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalLocation {
    /// Location name.
    pub name: String,
    /// The zone it covers.
    pub zone: Zone,
    /// The credential it uses.
    pub credential: String,
    /// Owner.
    pub owner: String,
    /// What it holds.
    #[serde(default)]
    pub comment: String,
}

/// Privileges granted to a principal on one securable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    /// Who gets them.
    pub principal: String,
    /// On what: `catalog NAME`, `schema CATALOG.SCHEMA`, `table CATALOG.SCHEMA.TABLE`,
    /// `external location NAME`, `storage credential NAME`.
    pub on: String,
    /// The privileges.
    pub privileges: Vec<Privilege>,
}

/// A Databricks cluster policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPolicy {
    /// Policy name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Most clusters one user may have under it at once.
    pub max_clusters_per_user: u32,
    /// Principals allowed to use it (CAN_USE).
    pub users: Vec<String>,
    /// The policy definition: cluster attribute path -> rule (`fixed`, `forbidden`,
    /// `allowlist`, `blocklist`, `regex`, `range`, `unlimited`), as Databricks defines it.
    pub definition: BTreeMap<String, serde_json::Value>,
}

/// The cost and shape limits every cluster policy must set (rule 5 of the platform), each as
/// a description and the attribute paths any one of which satisfies it.
pub const REQUIRED_CLUSTER_LIMITS: [(&str, &[&str]); 7] = [
    ("cluster type", &["cluster_type"]),
    ("node size", &["node_type_id"]),
    ("autoscaling bounds", &["autoscale.max_workers", "num_workers"]),
    ("auto-termination", &["autotermination_minutes"]),
    ("cost (DBUs per hour)", &["dbus_per_hour"]),
    ("tags", &["custom_tags."]),
    ("configuration", &["spark_conf.", "spark_version"]),
];

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The catalog.
    pub catalog: Catalog,
    /// Owner of the metastore.
    pub metastore_owner: String,
    /// Storage credentials.
    #[serde(default)]
    pub storage_credentials: Vec<StorageCredential>,
    /// External locations.
    #[serde(default)]
    pub external_locations: Vec<ExternalLocation>,
    /// Users, groups and service principals.
    pub principals: Vec<Principal>,
    /// Grants.
    #[serde(default)]
    pub grants: Vec<GrantEntry>,
    /// Cluster policies.
    #[serde(default)]
    pub cluster_policies: Vec<ClusterPolicy>,
}

/// One granted privilege: principal, privilege, securable.
pub type Grant = (String, Privilege, Securable);

impl Policy {
    /// Parses and checks a policy file.
    pub fn parse(text: &str) -> Result<Policy> {
        let policy: Policy = toml::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// The policy shipped with fitlake.
    pub fn shipped() -> Result<Policy> {
        Policy::parse(crate::SHIPPED_POLICY)
    }

    /// A principal by name.
    pub fn principal(&self, name: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.name == name)
    }

    /// The external location covering `zone`, if any.
    pub fn location_of(&self, zone: Zone) -> Option<&ExternalLocation> {
        self.external_locations.iter().find(|l| l.zone == zone)
    }

    /// Parses a grant's `on` text into a securable.
    pub fn securable(&self, on: &str) -> Result<Securable> {
        let bad = |why: &str| Error::Invalid(format!("grant on {on:?}: {why}"));
        let on = on.trim();
        let lower = on.to_ascii_lowercase();
        let rest = |prefix: &str| on[prefix.len()..].trim().trim_matches('`').to_string();
        let securable = if lower == "metastore" {
            Securable::Metastore
        } else if lower.starts_with("catalog ") {
            Securable::Catalog(rest("catalog "))
        } else if lower.starts_with("schema ") {
            match rest("schema ").split_once('.') {
                Some((c, s)) => Securable::Schema(c.to_string(), s.to_string()),
                None => return Err(bad("write schema CATALOG.SCHEMA")),
            }
        } else if lower.starts_with("table ") {
            let name = rest("table ");
            let parts: Vec<&str> = name.split('.').collect();
            match parts.as_slice() {
                [c, s, t] => Securable::Table(c.to_string(), s.to_string(), t.to_string()),
                _ => return Err(bad("write table CATALOG.SCHEMA.TABLE")),
            }
        } else if lower.starts_with("external location ") {
            Securable::ExternalLocation(rest("external location "))
        } else if lower.starts_with("storage credential ") {
            Securable::StorageCredential(rest("storage credential "))
        } else {
            return Err(bad("start with metastore, catalog, schema, table, external location or storage credential"));
        };
        Ok(securable)
    }

    /// True when `securable` exists in the policy (any table of a known schema exists).
    pub fn knows(&self, securable: &Securable) -> bool {
        let schema_known = |c: &str, s: &str| c == self.catalog.name && self.catalog.schemas.iter().any(|x| x == s);
        match securable {
            Securable::Metastore => true,
            Securable::Catalog(c) => *c == self.catalog.name,
            Securable::Schema(c, s) | Securable::Table(c, s, _) => schema_known(c, s),
            Securable::ExternalLocation(n) => self.external_locations.iter().any(|l| l.name == *n),
            Securable::StorageCredential(n) => self.storage_credentials.iter().any(|l| l.name == *n),
        }
    }

    /// Every grant of the policy, one privilege at a time, sorted.
    pub fn expanded_grants(&self) -> Result<BTreeSet<Grant>> {
        let mut out = BTreeSet::new();
        for g in &self.grants {
            let securable = self.securable(&g.on)?;
            for p in &g.privileges {
                out.insert((g.principal.clone(), *p, securable.clone()));
            }
        }
        Ok(out)
    }

    /// The owner of a securable.
    pub fn owner_of(&self, securable: &Securable) -> Option<&str> {
        match securable {
            Securable::Metastore => Some(&self.metastore_owner),
            Securable::Catalog(_) | Securable::Schema(..) | Securable::Table(..) => Some(&self.catalog.owner),
            Securable::ExternalLocation(n) => {
                self.external_locations.iter().find(|l| l.name == *n).map(|l| l.owner.as_str())
            }
            Securable::StorageCredential(n) => {
                self.storage_credentials.iter().find(|l| l.name == *n).map(|l| l.owner.as_str())
            }
        }
    }

    /// Every name and text the plan prints, checked before anything else: names (catalog,
    /// schemas, credentials, locations, principals, owners, cluster policies) match
    /// [`SAFE_NAME`], identifiers of securables match [`SAFE_IDENTIFIER`], and free text
    /// (comments, descriptions) holds no control character. The error names the field, so a
    /// hostile or broken policy is refused when it loads, whatever the plan would escape.
    fn check_text(&self) -> Result<()> {
        let mut identifiers: Vec<(String, &str)> = vec![("catalog.name".into(), self.catalog.name.as_str())];
        identifiers.extend(self.catalog.schemas.iter().map(|s| ("catalog.schemas".to_string(), s.as_str())));
        identifiers
            .extend(self.storage_credentials.iter().map(|c| ("storage_credentials.name".to_string(), c.name.as_str())));
        identifiers
            .extend(self.external_locations.iter().map(|l| ("external_locations.name".to_string(), l.name.as_str())));
        identifiers.extend(
            self.external_locations
                .iter()
                .map(|l| ("external_locations.credential".to_string(), l.credential.as_str())),
        );
        for (field, value) in identifiers {
            if !is_safe_identifier(value) {
                return Err(Error::Invalid(format!(
                    "{field} {value:?} is not a plain identifier (letters, digits and _, not starting with a digit)"
                )));
            }
        }
        let mut names: Vec<(String, &str)> = vec![
            ("metastore_owner".into(), self.metastore_owner.as_str()),
            ("catalog.owner".into(), self.catalog.owner.as_str()),
        ];
        names.extend(
            self.storage_credentials.iter().map(|c| ("storage_credentials.owner".to_string(), c.owner.as_str())),
        );
        names
            .extend(self.external_locations.iter().map(|l| ("external_locations.owner".to_string(), l.owner.as_str())));
        for p in &self.principals {
            names.push(("principals.name".into(), p.name.as_str()));
            names.extend(p.members.iter().map(|m| (format!("principals.members of {:?}", p.name), m.as_str())));
        }
        names.extend(self.grants.iter().map(|g| ("grants.principal".to_string(), g.principal.as_str())));
        for cp in &self.cluster_policies {
            names.push(("cluster_policies.name".into(), cp.name.as_str()));
            names.extend(cp.users.iter().map(|u| (format!("cluster_policies.users of {:?}", cp.name), u.as_str())));
        }
        for (field, value) in names {
            if !is_safe_name(value) {
                return Err(Error::Invalid(format!(
                    "{field} {value:?} has characters a name may not have (letters, digits, space and _ . @ - only)"
                )));
            }
        }
        let mut texts: Vec<(String, &str)> = Vec::new();
        texts.extend(
            self.storage_credentials
                .iter()
                .map(|c| (format!("storage_credentials.comment of {:?}", c.name), c.comment.as_str())),
        );
        texts.extend(
            self.external_locations
                .iter()
                .map(|l| (format!("external_locations.comment of {:?}", l.name), l.comment.as_str())),
        );
        texts.extend(
            self.principals.iter().map(|p| (format!("principals.comment of {:?}", p.name), p.comment.as_str())),
        );
        texts.extend(
            self.cluster_policies
                .iter()
                .map(|c| (format!("cluster_policies.description of {:?}", c.name), c.description.as_str())),
        );
        for g in &self.grants {
            texts.push(("grants.on".into(), g.on.as_str()));
        }
        for (field, value) in texts {
            if value.chars().any(char::is_control) {
                return Err(Error::Invalid(format!(
                    "{field} holds a control character (a newline, tab, …): {value:?}"
                )));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        self.check_text()?;
        let invalid = |msg: String| Err(Error::Invalid(msg));
        let mut names = BTreeSet::new();
        for p in &self.principals {
            if !names.insert(p.name.as_str()) {
                return invalid(format!("principal {:?} is defined twice", p.name));
            }
        }
        for p in &self.principals {
            if p.kind != PrincipalKind::Group && !p.members.is_empty() {
                return invalid(format!("{:?} has members but is not a group", p.name));
            }
            for m in &p.members {
                if self.principal(m).is_none() {
                    return invalid(format!("group {:?} has member {m:?}, which is not a principal", p.name));
                }
            }
        }
        self.check_groups_acyclic()?;
        self.check_identities()?;
        let owners = std::iter::once(self.metastore_owner.as_str())
            .chain(std::iter::once(self.catalog.owner.as_str()))
            .chain(self.storage_credentials.iter().map(|c| c.owner.as_str()))
            .chain(self.external_locations.iter().map(|l| l.owner.as_str()));
        for owner in owners {
            if self.principal(owner).is_none() {
                return invalid(format!("owner {owner:?} is not a principal"));
            }
        }
        for l in &self.external_locations {
            if matches!(l.zone, Zone::Managed | Zone::Metastore) {
                return invalid(format!(
                    "external location {:?} covers the {} zone: nobody may reach table or metastore storage \
                     directly (rule 1); remove it and grant table privileges instead",
                    l.name,
                    l.zone.name()
                ));
            }
            if !self.storage_credentials.iter().any(|c| c.name == l.credential) {
                return invalid(format!("external location {:?} uses unknown credential {:?}", l.name, l.credential));
            }
            if self.external_locations.iter().filter(|o| o.zone == l.zone).count() > 1 {
                return invalid(format!("zone {} has more than one external location", l.zone.name()));
            }
        }
        for (principal, privilege, securable) in self.expanded_grants()? {
            if self.principal(&principal).is_none() {
                return invalid(format!("grant to {principal:?}, which is not a principal"));
            }
            if !self.knows(&securable) {
                return invalid(format!("grant of {privilege} on {securable}, which the policy does not define"));
            }
            if !privilege.applies_to(securable.kind()) {
                return invalid(format!("{privilege} cannot be granted on {securable}"));
            }
        }
        for cp in &self.cluster_policies {
            check_cluster_policy(self, cp)?;
        }
        Ok(())
    }

    /// `os_users`, `entra_ids` and `may_act_as`: OS user names are login names (or `*`),
    /// Entra ids are GUIDs, each identity is claimed by one principal, groups claim no OS
    /// user and act as nobody (their Entra id only names them in ACLs), and a principal acts
    /// only as users and service principals of the policy.
    fn check_identities(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::Invalid(msg));
        let mut claimed: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for p in &self.principals {
            let group = p.kind == PrincipalKind::Group;
            if group && (!p.os_users.is_empty() || !p.may_act_as.is_empty()) {
                return invalid(format!(
                    "group {:?} has os_users or may_act_as: a command runs as a user or a service principal",
                    p.name
                ));
            }
            for user in &p.os_users {
                if user != crate::identity::ANY_OS_USER && !is_login_name(user) {
                    return invalid(format!(
                        "principals.os_users of {:?}: {user:?} is not a login name (letters, digits, _ . -) or *",
                        p.name
                    ));
                }
            }
            if group && !p.entra_app_ids.is_empty() {
                return invalid(format!("group {:?} has entra_app_ids: an application is a service principal", p.name));
            }
            for (field, id) in
                p.entra_ids.iter().map(|i| ("entra_ids", i)).chain(p.entra_app_ids.iter().map(|i| ("entra_app_ids", i)))
            {
                if !is_guid(id) {
                    return invalid(format!(
                        "principals.{field} of {:?}: {id:?} is not an Entra ID id (a GUID)",
                        p.name
                    ));
                }
            }
            let ids = p
                .os_users
                .iter()
                .map(|u| ("os_users", u.as_str()))
                .chain(p.entra_ids.iter().map(|i| ("entra_ids", i.as_str())))
                .chain(p.entra_app_ids.iter().map(|i| ("entra_app_ids", i.as_str())));
            for (field, id) in ids {
                if let Some(other) = claimed.insert((field, id), &p.name) {
                    return invalid(format!("{field} {id:?} is claimed by both {other:?} and {:?}", p.name));
                }
            }
            for other in &p.may_act_as {
                match self.principal(other) {
                    None => {
                        return invalid(format!("may_act_as of {:?} names {other:?}, which is not a principal", p.name))
                    }
                    Some(o) if o.kind == PrincipalKind::Group => {
                        return invalid(format!("may_act_as of {:?} names {other:?}, a group", p.name))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    fn check_groups_acyclic(&self) -> Result<()> {
        fn visit<'a>(policy: &'a Policy, name: &'a str, path: &mut Vec<&'a str>) -> Result<()> {
            if path.contains(&name) {
                return Err(Error::Invalid(format!("groups contain each other: {} -> {name}", path.join(" -> "))));
            }
            path.push(name);
            if let Some(p) = policy.principal(name) {
                for m in &p.members {
                    visit(policy, m, path)?;
                }
            }
            path.pop();
            Ok(())
        }
        for p in &self.principals {
            visit(self, &p.name, &mut Vec::new())?;
        }
        Ok(())
    }

    /// The groups `principal` belongs to, directly or through other groups.
    pub fn groups_of(&self, principal: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![principal.to_string()];
        while let Some(name) = frontier.pop() {
            for g in self.principals.iter().filter(|g| g.kind == PrincipalKind::Group) {
                if g.members.contains(&name) && found.insert(g.name.clone()) {
                    frontier.push(g.name.clone());
                }
            }
        }
        found
    }
}

fn check_cluster_policy(policy: &Policy, cp: &ClusterPolicy) -> Result<()> {
    let invalid = |msg: String| Err(Error::Invalid(format!("cluster policy {:?}: {msg}", cp.name)));
    if cp.max_clusters_per_user == 0 {
        return invalid("max_clusters_per_user must be at least 1".into());
    }
    for user in &cp.users {
        if policy.principal(user).is_none() {
            return invalid(format!("user {user:?} is not a principal"));
        }
    }
    for (attribute, rule) in &cp.definition {
        let Some(kind) = rule.get("type").and_then(|t| t.as_str()) else {
            return invalid(format!("{attribute}: every rule needs a \"type\""));
        };
        let has = |field: &str| rule.get(field).is_some();
        let ok = match kind {
            "fixed" => has("value"),
            "forbidden" | "unlimited" => true,
            "allowlist" | "blocklist" => rule.get("values").and_then(|v| v.as_array()).is_some_and(|v| !v.is_empty()),
            "regex" => rule.get("pattern").and_then(|v| v.as_str()).is_some(),
            "range" => {
                let min = rule.get("minValue").and_then(|v| v.as_f64());
                let max = rule.get("maxValue").and_then(|v| v.as_f64());
                (min.is_some() || max.is_some()) && min.zip(max).is_none_or(|(a, b)| a <= b)
            }
            other => return invalid(format!("{attribute}: unknown rule type {other:?}")),
        };
        if !ok {
            return invalid(format!("{attribute}: a {kind} rule is missing its value(s) or has min above max"));
        }
    }
    for (limit, attributes) in REQUIRED_CLUSTER_LIMITS {
        let covered = cp
            .definition
            .keys()
            .any(|k| attributes.iter().any(|a| if a.ends_with('.') { k.starts_with(a) } else { k == a }));
        if !covered {
            return invalid(format!("sets no {limit} limit (one of {}) required by rule 5", attributes.join(", ")));
        }
    }
    Ok(())
}

/// What a name in a policy may hold: letters, digits, space and `_ . @ -` (user e-mails,
/// service principal application ids, group names with spaces), 1 to 255 characters.
pub const SAFE_NAME: &str = "letters, digits, space and _ . @ -";

/// What a catalog, schema, credential or location name may hold: letters, digits and `_`,
/// not starting with a digit.
pub const SAFE_IDENTIFIER: &str = "letters, digits and _, not starting with a digit";

fn is_safe_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | '@' | '-'))
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

fn is_safe_identifier(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A login name: letters, digits, `_ . -`, not starting with `-`, 1 to 64 characters.
fn is_login_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.starts_with('-')
}

/// A GUID, as Entra ID object and application ids are: 8-4-4-4-12 hexadecimal digits.
fn is_guid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

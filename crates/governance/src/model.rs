//! The Unity Catalog securables, principals and privileges fitlake's policy talks about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A privilege, as Unity Catalog names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Privilege {
    /// Use a catalog (needed to reach anything in it).
    #[serde(rename = "USE CATALOG")]
    UseCatalog,
    /// Use a schema (needed to reach anything in it).
    #[serde(rename = "USE SCHEMA")]
    UseSchema,
    /// Read a table.
    #[serde(rename = "SELECT")]
    Select,
    /// Add, change or delete a table's rows.
    #[serde(rename = "MODIFY")]
    Modify,
    /// Create tables in a schema.
    #[serde(rename = "CREATE TABLE")]
    CreateTable,
    /// Read files under an external location directly.
    #[serde(rename = "READ FILES")]
    ReadFiles,
    /// Write files under an external location directly.
    #[serde(rename = "WRITE FILES")]
    WriteFiles,
    /// Every privilege that applies to the securable.
    #[serde(rename = "ALL PRIVILEGES")]
    AllPrivileges,
}

impl Privilege {
    /// Every privilege, in the order plans list them.
    pub const ALL: [Privilege; 8] = [
        Privilege::UseCatalog,
        Privilege::UseSchema,
        Privilege::Select,
        Privilege::Modify,
        Privilege::CreateTable,
        Privilege::ReadFiles,
        Privilege::WriteFiles,
        Privilege::AllPrivileges,
    ];

    /// The SQL name.
    pub fn sql(self) -> &'static str {
        match self {
            Privilege::UseCatalog => "USE CATALOG",
            Privilege::UseSchema => "USE SCHEMA",
            Privilege::Select => "SELECT",
            Privilege::Modify => "MODIFY",
            Privilege::CreateTable => "CREATE TABLE",
            Privilege::ReadFiles => "READ FILES",
            Privilege::WriteFiles => "WRITE FILES",
            Privilege::AllPrivileges => "ALL PRIVILEGES",
        }
    }

    /// The privilege of a SQL name (case-insensitive).
    pub fn from_sql(name: &str) -> Option<Privilege> {
        let name = name.trim().replace('_', " ").to_ascii_uppercase();
        Privilege::ALL.into_iter().find(|p| p.sql() == name)
    }

    /// True when the privilege can be granted on `kind` of securable (directly or, for the
    /// table privileges, on a catalog or schema to be inherited by its tables).
    pub fn applies_to(self, kind: SecurableKind) -> bool {
        use Privilege::*;
        use SecurableKind as K;
        match self {
            AllPrivileges => kind != K::Metastore,
            UseCatalog => kind == K::Catalog,
            UseSchema => matches!(kind, K::Catalog | K::Schema),
            Select | Modify => matches!(kind, K::Catalog | K::Schema | K::Table),
            CreateTable => matches!(kind, K::Catalog | K::Schema),
            ReadFiles | WriteFiles => matches!(kind, K::ExternalLocation | K::StorageCredential),
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql())
    }
}

/// The kinds of securable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurableKind {
    /// The metastore.
    Metastore,
    /// A catalog.
    Catalog,
    /// A schema in a catalog.
    Schema,
    /// A table in a schema.
    Table,
    /// An external location (a storage path with a credential).
    ExternalLocation,
    /// A storage credential.
    StorageCredential,
}

/// Something privileges are granted on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Securable {
    /// The metastore.
    Metastore,
    /// A catalog.
    Catalog(String),
    /// A schema: catalog, schema.
    Schema(String, String),
    /// A table: catalog, schema, table.
    Table(String, String, String),
    /// An external location by name.
    ExternalLocation(String),
    /// A storage credential by name.
    StorageCredential(String),
}

impl Securable {
    /// Its kind.
    pub fn kind(&self) -> SecurableKind {
        match self {
            Securable::Metastore => SecurableKind::Metastore,
            Securable::Catalog(_) => SecurableKind::Catalog,
            Securable::Schema(..) => SecurableKind::Schema,
            Securable::Table(..) => SecurableKind::Table,
            Securable::ExternalLocation(_) => SecurableKind::ExternalLocation,
            Securable::StorageCredential(_) => SecurableKind::StorageCredential,
        }
    }

    /// The securable it inherits privileges from (table -> schema -> catalog).
    pub fn parent(&self) -> Option<Securable> {
        match self {
            Securable::Table(c, s, _) => Some(Securable::Schema(c.clone(), s.clone())),
            Securable::Schema(c, _) => Some(Securable::Catalog(c.clone())),
            _ => None,
        }
    }

    /// The SQL object type and quoted name, e.g. ``TABLE `fitlake`.`gold`.`gym_summary` ``.
    pub fn sql(&self) -> String {
        let q = |s: &str| format!("`{}`", s.replace('`', "``"));
        match self {
            Securable::Metastore => "METASTORE".to_string(),
            Securable::Catalog(c) => format!("CATALOG {}", q(c)),
            Securable::Schema(c, s) => format!("SCHEMA {}.{}", q(c), q(s)),
            Securable::Table(c, s, t) => format!("TABLE {}.{}.{}", q(c), q(s), q(t)),
            Securable::ExternalLocation(n) => format!("EXTERNAL LOCATION {}", q(n)),
            Securable::StorageCredential(n) => format!("STORAGE CREDENTIAL {}", q(n)),
        }
    }

    /// The object type and key as `SHOW GRANTS` prints them (`TABLE`, `fitlake.gold.gym_summary`).
    pub fn show_grants_key(&self) -> (&'static str, String) {
        match self {
            Securable::Metastore => ("METASTORE", String::new()),
            Securable::Catalog(c) => ("CATALOG", c.clone()),
            Securable::Schema(c, s) => ("SCHEMA", format!("{c}.{s}")),
            Securable::Table(c, s, t) => ("TABLE", format!("{c}.{s}.{t}")),
            Securable::ExternalLocation(n) => ("EXTERNAL LOCATION", n.clone()),
            Securable::StorageCredential(n) => ("STORAGE CREDENTIAL", n.clone()),
        }
    }

    /// The securable of a `SHOW GRANTS` object type and key.
    pub fn from_show_grants(object_type: &str, key: &str) -> Option<Securable> {
        let parts: Vec<String> = key.split('.').map(|p| p.trim_matches('`').to_string()).collect();
        Some(match (object_type.trim().to_ascii_uppercase().replace('_', " ").as_str(), parts.as_slice()) {
            ("METASTORE", _) => Securable::Metastore,
            ("CATALOG", [c]) => Securable::Catalog(c.clone()),
            ("SCHEMA" | "DATABASE", [c, s]) => Securable::Schema(c.clone(), s.clone()),
            ("TABLE", [c, s, t]) => Securable::Table(c.clone(), s.clone(), t.clone()),
            ("EXTERNAL LOCATION", _) => Securable::ExternalLocation(key.trim_matches('`').to_string()),
            ("STORAGE CREDENTIAL", _) => Securable::StorageCredential(key.trim_matches('`').to_string()),
            _ => return None,
        })
    }
}

impl fmt::Display for Securable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Securable::Metastore => f.write_str("metastore"),
            Securable::Catalog(c) => write!(f, "catalog {c}"),
            Securable::Schema(c, s) => write!(f, "schema {c}.{s}"),
            Securable::Table(c, s, t) => write!(f, "table {c}.{s}.{t}"),
            Securable::ExternalLocation(n) => write!(f, "external location {n}"),
            Securable::StorageCredential(n) => write!(f, "storage credential {n}"),
        }
    }
}

/// The kinds of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A group of principals.
    Group,
    /// A service principal (a job's identity).
    ServicePrincipal,
}

/// A user, group or service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Its name, as grants name it.
    pub name: String,
    /// What it is.
    pub kind: PrincipalKind,
    /// For a group: its members (principals or groups).
    #[serde(default)]
    pub members: Vec<String>,
    /// What the principal is for.
    #[serde(default)]
    pub comment: String,
    /// The local OS users (login names) that are this user or service principal; `*` stands
    /// for every local user (development policies only).
    #[serde(default)]
    pub os_users: Vec<String>,
    /// The Microsoft Entra ID object ids of this principal (a user's, a service principal's or
    /// managed identity's, a group's): on Azure, matched with the `oid` of fitlake's storage
    /// token; the subjects of the plan's ADLS ACLs.
    #[serde(default)]
    pub entra_ids: Vec<String>,
    /// Application (client) ids that are this service principal: matched with the `appid`
    /// (`azp`) of the storage token. ACLs need the object id, in `entra_ids`.
    #[serde(default)]
    pub entra_app_ids: Vec<String>,
    /// The principals a command of this one may run as (`--principal`).
    #[serde(default)]
    pub may_act_as: Vec<String>,
}

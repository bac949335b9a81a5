//! The ADLS Gen2 access control lists that give principals who run fitlake directly against
//! storage (service principals, managed identities, users with an Entra object id) exactly the
//! file access their Unity Catalog privileges stand for.
//!
//! Databricks users reach tables through Unity Catalog, whose storage credential is the only
//! identity on the data (rule 1). fitlake's own jobs read and write the Delta tables and zones
//! themselves, as their Entra identity, so storage must let each one do what the policy grants
//! it and nothing more. For every principal with `entra_ids`:
//! - `READ FILES` on a zone: `r-x` on the zone's folder and everything in it (and as the default
//!   ACL of what is created there later); `WRITE FILES`: `rwx`;
//! - `SELECT` on a table: `r-x` on its folder, recursively; `MODIFY`: `rwx`;
//! - `CREATE TABLE` in a schema: `rwx` on the layer's folder itself (to create table folders);
//! - `--x` on every folder above those, up to the container, to reach them.
//!
//! Groups get `group:` entries, everyone else `user:` entries (service principals included, as
//! ADLS names them). The result is a bash script of Azure CLI commands: recursive entries with
//! `az storage fs access update-recursive` (which adds or changes entries and keeps the others),
//! single-folder entries read, merged and written back with `az storage fs access show/set`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{PrincipalKind, Privilege, Securable};
use crate::plan::ZoneUrls;
use crate::policy::{Policy, Zone};

/// Where an ACL entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The folder and everything in it, and the default ACL of what is created in it later.
    Tree,
    /// The folder itself.
    Folder,
}

/// One ACL entry on one ADLS folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    /// The storage account.
    pub account: String,
    /// The container (file system).
    pub container: String,
    /// The folder in it (`/` for the container's root).
    pub path: String,
    /// Where it applies.
    pub scope: Scope,
    /// `user:OBJECT_ID:rwx` or `group:OBJECT_ID:r-x`.
    pub entry: String,
}

/// An `abfss://container@account.dfs.core.windows.net/path` URL's account, container and
/// folder (without slashes at either end); `None` for any other storage.
fn adls(url: &str) -> Option<(String, String, String)> {
    let rest = url.strip_prefix("abfss://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (container, host) = authority.split_once('@')?;
    let account = host.split('.').next()?;
    Some((account.to_string(), container.to_string(), path.trim_matches('/').to_string()))
}

const READ: u8 = 0b101;
const WRITE: u8 = 0b111;
const TRAVERSE: u8 = 0b001;

fn bits(mask: u8) -> String {
    [(0b100, 'r'), (0b010, 'w'), (0b001, 'x')].iter().map(|(b, c)| if mask & b != 0 { *c } else { '-' }).collect()
}

/// The ACL entries `policy` asks for on the storage at `urls`, sorted; empty when the storage
/// is not ADLS or no principal has an Entra object id.
pub fn storage_acls(policy: &Policy, urls: &ZoneUrls) -> Vec<AclEntry> {
    // (account, container, folder, scope, subject) -> permission bits
    let mut wanted: BTreeMap<(String, String, String, Scope, String), u8> = BTreeMap::new();
    let catalog = &policy.catalog.name;
    for p in policy.principals.iter().filter(|p| !p.entra_ids.is_empty()) {
        // rwx where the principal writes, r-x where it only reads, nothing otherwise.
        let access = |writes: bool, reads: bool| if writes { Some(WRITE) } else { reads.then_some(READ) };
        let mut targets: Vec<(String, Scope, u8)> = Vec::new();
        for (zone, url) in [(Zone::Landing, &urls.landing), (Zone::Checkpoint, &urls.checkpoint)] {
            let writes = policy.authorize_files(&p.name, Privilege::WriteFiles, zone).is_ok();
            let reads = policy.authorize_files(&p.name, Privilege::ReadFiles, zone).is_ok();
            targets.extend(access(writes, reads).map(|mask| (url.clone(), Scope::Tree, mask)));
        }
        for t in &urls.tables {
            let table = Securable::Table(catalog.clone(), t.schema.clone(), t.name.clone());
            let writes = policy.authorize(&p.name, Privilege::Modify, &table).is_ok();
            let reads = policy.authorize(&p.name, Privilege::Select, &table).is_ok();
            targets.extend(access(writes, reads).map(|mask| (t.location.clone(), Scope::Tree, mask)));
        }
        for schema in &policy.catalog.schemas {
            let on = Securable::Schema(catalog.clone(), schema.clone());
            if policy.authorize(&p.name, Privilege::CreateTable, &on).is_ok() {
                targets.push((format!("{}/{schema}", urls.managed.trim_end_matches('/')), Scope::Folder, WRITE));
            }
        }
        // Each target's folder, and every folder above it up to the container's root (to
        // reach it), with the permissions wanted there.
        let mut folders: Vec<((String, String, String, Scope), u8)> = Vec::new();
        for (url, scope, mask) in &targets {
            let Some((account, container, path)) = adls(url) else { continue };
            let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            for depth in 0..parts.len() {
                let above = (account.clone(), container.clone(), parts[..depth].join("/"), Scope::Folder);
                folders.push((above, TRAVERSE));
            }
            folders.push(((account, container, path, *scope), *mask));
        }
        let kind = if p.kind == PrincipalKind::Group { "group" } else { "user" };
        for id in &p.entra_ids {
            let subject = format!("{kind}:{id}");
            for ((account, container, path, scope), mask) in &folders {
                let key = (account.clone(), container.clone(), path.clone(), *scope, subject.clone());
                *wanted.entry(key).or_default() |= mask;
            }
        }
    }
    wanted
        .into_iter()
        .map(|((account, container, path, scope, subject), mask)| AclEntry {
            account,
            container,
            path: if path.is_empty() { "/".into() } else { path },
            scope,
            entry: format!("{subject}:{}", bits(mask)),
        })
        .collect()
}

/// A single-quoted shell word.
fn shell(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The entries as a bash script of Azure CLI commands (idempotent: running it again changes
/// nothing).
pub fn render_script(entries: &[AclEntry]) -> String {
    let mut out = String::from(
        "#!/usr/bin/env bash\n\
         # ADLS Gen2 ACLs of fitlake's governance policy (fitlake governance acls): the file access of each\n\
         # principal with an Entra object id, as its Unity Catalog privileges stand for. Run by someone who\n\
         # may change ACLs on the account (Storage Blob Data Owner), signed in with `az login`.\n\
         set -euo pipefail\n\n\
         # add_acl ACCOUNT CONTAINER FOLDER ENTRY: add ENTRY to the folder's own ACL, keeping the others\n\
         # (an entry for the same subject is replaced).\n\
         add_acl() {\n  \
           local current subject\n  \
           current=$(az storage fs access show --account-name \"$1\" --file-system \"$2\" --path \"$3\" \\\n    \
             --auth-mode login --query acl --output tsv)\n  \
           subject=\"${4%:*}\"\n  \
           case \",$current,\" in *\",$4,\"*) return 0 ;; esac\n  \
           current=$(printf '%s' \"$current\" | tr ',' '\\n' | grep -v \"^$subject:\" | paste -sd, -)\n  \
           az storage fs access set --account-name \"$1\" --file-system \"$2\" --path \"$3\" \\\n    \
             --acl \"$current,$4\" --auth-mode login >/dev/null\n\
         }\n\n",
    );
    if entries.is_empty() {
        out.push_str("# nothing to do: the storage is not ADLS, or no principal has entra_ids\n");
        return out;
    }
    for e in entries {
        let (account, container, path) = (shell(&e.account), shell(&e.container), shell(&e.path));
        match e.scope {
            Scope::Tree => {
                let acl = format!("{},default:{}", e.entry, e.entry);
                let _ = writeln!(
                    out,
                    "az storage fs access update-recursive --account-name {account} --file-system {container} \
                     --path {path} --acl {} --auth-mode login >/dev/null",
                    shell(&acl)
                );
            }
            Scope::Folder => {
                let _ = writeln!(out, "add_acl {account} {container} {path} {}", shell(&e.entry));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::TableLocation;

    const PIPELINE: &str = "11111111-1111-1111-1111-111111111111";
    const PRODUCER: &str = "22222222-2222-2222-2222-222222222222";
    const ANALYSTS: &str = "33333333-3333-3333-3333-333333333333";

    fn policy() -> Policy {
        let text = crate::SHIPPED_POLICY
            .replace(
                "name = \"pipeline\"\nkind = \"service_principal\"",
                &format!("name = \"pipeline\"\nkind = \"service_principal\"\nentra_ids = [\"{PIPELINE}\"]"),
            )
            .replace(
                "name = \"producer\"\nkind = \"service_principal\"",
                &format!("name = \"producer\"\nkind = \"service_principal\"\nentra_ids = [\"{PRODUCER}\"]"),
            )
            .replace(
                "name = \"analysts\"\nkind = \"group\"",
                &format!("name = \"analysts\"\nkind = \"group\"\nentra_ids = [\"{ANALYSTS}\"]"),
            );
        Policy::parse(&text).unwrap()
    }

    fn urls(root: &str) -> ZoneUrls {
        let table = |schema: &str, name: &str| TableLocation {
            schema: schema.into(),
            name: name.into(),
            location: format!("{root}/managed/{schema}/{name}/"),
        };
        ZoneUrls {
            landing: format!("{root}/data/"),
            checkpoint: format!("{root}/checkpoints/"),
            managed: format!("{root}/managed/"),
            catalog_storage: format!("{root}/metastore/unity-catalog/"),
            tables: vec![table("bronze", "gym_logins_bz"), table("gold", "gym_summary")],
        }
    }

    fn has(entries: &[AclEntry], path: &str, scope: Scope, entry: &str) -> bool {
        entries.iter().any(|e| e.path == path && e.scope == scope && e.entry == entry)
    }

    #[test]
    fn each_principal_gets_the_file_access_its_privileges_stand_for() {
        let entries = storage_acls(&policy(), &urls("abfss://lake@acct.dfs.core.windows.net/fitlake"));
        assert!(entries.iter().all(|e| e.account == "acct" && e.container == "lake"));
        let (pipeline, producer, analysts) =
            (format!("user:{PIPELINE}"), format!("user:{PRODUCER}"), format!("group:{ANALYSTS}"));
        // Landing: the producer writes, the pipeline reads; checkpoints are read-only.
        assert!(has(&entries, "fitlake/data", Scope::Tree, &format!("{producer}:rwx")));
        assert!(has(&entries, "fitlake/data", Scope::Tree, &format!("{pipeline}:r-x")));
        assert!(has(&entries, "fitlake/checkpoints", Scope::Tree, &format!("{pipeline}:r-x")));
        // Tables: the pipeline changes every table and creates them; analysts read gold only.
        for table in ["fitlake/managed/bronze/gym_logins_bz", "fitlake/managed/gold/gym_summary"] {
            assert!(has(&entries, table, Scope::Tree, &format!("{pipeline}:rwx")), "{table}");
        }
        assert!(has(&entries, "fitlake/managed/bronze", Scope::Folder, &format!("{pipeline}:rwx")));
        assert!(has(&entries, "fitlake/managed/gold/gym_summary", Scope::Tree, &format!("{analysts}:r-x")));
        // Reaching them: --x above, up to the container's root.
        for above in ["/", "fitlake", "fitlake/managed", "fitlake/managed/gold"] {
            assert!(has(&entries, above, Scope::Folder, &format!("{analysts}:--x")), "{above}");
        }
        // Nothing more: analysts see no bronze, no zone; the producer no table.
        assert!(!entries.iter().any(|e| e.entry.starts_with(&analysts)
            && (e.path.contains("bronze") || e.path.contains("data") || e.path.contains("checkpoints"))));
        assert!(!entries.iter().any(|e| e.entry.starts_with(&producer) && e.path.contains("managed")));
        // Principals without entra_ids get nothing; nobody gets the metastore's storage.
        assert!(entries
            .iter()
            .all(|e| [&pipeline, &producer, &analysts].iter().any(|s| e.entry.starts_with(s.as_str()))));
        assert!(!entries.iter().any(|e| e.path.contains("metastore")));
        let script = render_script(&entries);
        assert!(
            script.contains(&format!(
                "az storage fs access update-recursive --account-name 'acct' --file-system 'lake' --path \
             'fitlake/managed/gold/gym_summary' --acl '{analysts}:r-x,default:{analysts}:r-x'"
            )),
            "{script}"
        );
        assert!(script.contains(&format!("add_acl 'acct' 'lake' '/' '{analysts}:--x'")), "{script}");
    }

    #[test]
    fn local_storage_has_no_acls() {
        let entries = storage_acls(&policy(), &urls("file:///srv/fitlake"));
        assert!(entries.is_empty());
        assert!(render_script(&entries).contains("nothing to do"));
    }
}

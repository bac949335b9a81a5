//! Access decisions: may this principal use this privilege on this securable or zone?
//!
//! Unity Catalog's rules as fitlake applies them:
//! - a privilege granted on a catalog or schema is inherited by everything in it, and
//!   `ALL PRIVILEGES` stands for every privilege;
//! - reaching a schema or table also needs `USE CATALOG` on its catalog and `USE SCHEMA` on
//!   its schema;
//! - a principal holds what is granted to it and to every group it belongs to (transitively);
//! - the owner of a securable holds every privilege on it (not on its children);
//! - files are reached only through an external location with `READ FILES` / `WRITE FILES`;
//!   table and metastore storage has no external location, so nobody reaches it directly.

use std::fmt;

use crate::model::{Privilege, Securable};
use crate::policy::{Policy, Zone};

/// A refused access: who, which privilege, on what, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Denied {
    /// The principal.
    pub principal: String,
    /// The privilege it lacks.
    pub privilege: Privilege,
    /// The securable (or zone) it was refused on.
    pub securable: String,
    /// What is missing, for people.
    pub reason: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access denied: principal `{}` may not use {} on {} ({})",
            self.principal, self.privilege, self.securable, self.reason
        )
    }
}

impl Policy {
    /// True when `principal` (or a group it is in) was granted `privilege` (or ALL
    /// PRIVILEGES) on `securable` or on a securable it inherits from, or owns `securable`.
    pub fn holds(&self, principal: &str, privilege: Privilege, securable: &Securable) -> bool {
        let mut who = self.groups_of(principal);
        who.insert(principal.to_string());
        if self.owner_of(securable).is_some_and(|o| who.contains(o)) {
            return true;
        }
        let Ok(grants) = self.expanded_grants() else { return false };
        let mut on = Some(securable.clone());
        while let Some(s) = on {
            let granted = grants.iter().any(|(p, priv_, sec)| {
                who.contains(p) && *sec == s && (*priv_ == privilege || *priv_ == Privilege::AllPrivileges)
            });
            if granted {
                return true;
            }
            on = s.parent();
        }
        false
    }

    /// Decides whether `principal` may use `privilege` on `securable`, with the `USE CATALOG`
    /// and `USE SCHEMA` a schema or table also needs.
    pub fn authorize(&self, principal: &str, privilege: Privilege, securable: &Securable) -> Result<(), Denied> {
        let deny = |privilege: Privilege, on: &Securable, reason: String| Denied {
            principal: principal.to_string(),
            privilege,
            securable: on.to_string(),
            reason,
        };
        if self.principal(principal).is_none() {
            return Err(deny(privilege, securable, "not a principal of the policy".into()));
        }
        if !self.knows(securable) {
            return Err(deny(privilege, securable, "not defined by the policy".into()));
        }
        let (catalog, schema) = match securable {
            Securable::Table(c, s, _) | Securable::Schema(c, s) => (Some(c), Some(s)),
            Securable::Catalog(c) => (Some(c), None),
            _ => (None, None),
        };
        if let Some(c) = catalog.filter(|_| privilege != Privilege::UseCatalog) {
            let on = Securable::Catalog(c.clone());
            if !self.holds(principal, Privilege::UseCatalog, &on) {
                return Err(deny(Privilege::UseCatalog, &on, "needed to reach anything in the catalog".into()));
            }
        }
        if let (Some(c), Some(s)) = (catalog, schema) {
            let on = Securable::Schema(c.clone(), s.clone());
            if privilege != Privilege::UseSchema && !self.holds(principal, Privilege::UseSchema, &on) {
                return Err(deny(Privilege::UseSchema, &on, "needed to reach anything in the schema".into()));
            }
        }
        if self.holds(principal, privilege, securable) {
            Ok(())
        } else {
            Err(deny(privilege, securable, "not granted".into()))
        }
    }

    /// Decides whether `principal` may read (`READ FILES`) or write (`WRITE FILES`) files of
    /// `zone` directly.
    pub fn authorize_files(&self, principal: &str, privilege: Privilege, zone: Zone) -> Result<(), Denied> {
        let deny = |securable: String, reason: &str| Denied {
            principal: principal.to_string(),
            privilege,
            securable,
            reason: reason.to_string(),
        };
        if !matches!(privilege, Privilege::ReadFiles | Privilege::WriteFiles) {
            return Err(deny(format!("the {} zone", zone.name()), "files are read or written, nothing else"));
        }
        match self.location_of(zone) {
            Some(location) => self.authorize(principal, privilege, &Securable::ExternalLocation(location.name.clone())),
            None => Err(deny(
                format!("the {} zone", zone.name()),
                "no external location covers it: nobody reaches it directly; use the tables",
            )),
        }
    }
}

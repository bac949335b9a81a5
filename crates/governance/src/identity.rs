//! Who runs a command, from an authenticated source, and the principal the policy makes of it.
//!
//! fitlake does not take a principal's word for who it is: the identity comes from the
//! operating system (the login name of the effective user id) or, on Azure, from the Microsoft
//! Entra ID token fitlake reaches storage with (its object id and application id). The policy
//! maps identities to principals (`os_users`, `entra_ids` of a user or service principal), and
//! says which other principals each may run a command as (`may_act_as`, used by `--principal`).
//! There is no default principal: an identity no principal claims is refused.

use std::fmt;

use crate::model::PrincipalKind;
use crate::Policy;

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A local operating-system user, by login name (of the effective user id).
    OsUser(String),
    /// A Microsoft Entra ID token's subject: its object id (`oid`) and, for an application
    /// (service principal, managed identity), its application id (`appid` or `azp`),
    /// matched with a principal's `entra_ids` and `entra_app_ids`.
    Entra {
        /// The object id.
        object_id: Option<String>,
        /// The application (client) id.
        app_id: Option<String>,
    },
}

impl Identity {
    /// The policy field that maps this kind of identity.
    pub fn field(&self) -> &'static str {
        match self {
            Identity::OsUser(_) => "os_users",
            Identity::Entra { .. } => "entra_ids (object id) or entra_app_ids",
        }
    }

    /// The identity as commit metadata records it: `os:NAME` or `entra:OBJECT_ID`.
    pub fn audit_name(&self) -> String {
        match self {
            Identity::OsUser(name) => format!("os:{name}"),
            Identity::Entra { object_id, app_id } => {
                format!("entra:{}", object_id.as_deref().or(app_id.as_deref()).unwrap_or("?"))
            }
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::OsUser(name) => write!(f, "OS user `{name}`"),
            Identity::Entra { object_id, app_id } => {
                f.write_str("Microsoft Entra ID identity")?;
                if let Some(oid) = object_id {
                    write!(f, " object id `{oid}`")?;
                }
                if let Some(app) = app_id {
                    write!(f, " application id `{app}`")?;
                }
                Ok(())
            }
        }
    }
}

/// A command may not run: its identity is not a principal, or may not act as the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The wildcard of `os_users` (every local user; for development policies).
pub const ANY_OS_USER: &str = "*";

impl Policy {
    /// The user or service principal `identity` is: the one whose `os_users` / `entra_ids`
    /// names it (an exact name before the `*` of `os_users`).
    pub fn principal_of(&self, identity: &Identity) -> Result<&str, Refused> {
        let has = |list: &[String], id: &Option<String>| id.as_ref().is_some_and(|id| list.contains(id));
        let found = match identity {
            Identity::OsUser(name) => self
                .principals
                .iter()
                .find(|p| p.os_users.contains(name))
                .or_else(|| self.principals.iter().find(|p| p.os_users.iter().any(|u| u == ANY_OS_USER))),
            Identity::Entra { object_id, app_id } => {
                self.principals.iter().find(|p| has(&p.entra_ids, object_id) || has(&p.entra_app_ids, app_id))
            }
        };
        match found {
            Some(p) if p.kind == PrincipalKind::Group => Err(Refused(format!(
                "{identity} is mapped to {:?}, a group: map it to a user or a service principal",
                p.name
            ))),
            Some(p) => Ok(&p.name),
            None => Err(Refused(format!(
                "{identity} is not a principal of the policy: add it to the `{}` of a user or service principal \
                 (there is no default principal)",
                identity.field()
            ))),
        }
    }

    /// Refuses a group as the principal a command runs as: a command runs as a user or a
    /// service principal, which gets its groups' privileges as their member.
    pub fn runnable(&self, principal: &str) -> Result<(), Refused> {
        match self.principal(principal).filter(|p| p.kind == PrincipalKind::Group) {
            Some(group) => Err(Refused(format!(
                "--principal {:?} is a group: a command runs as a user or a service principal, which gets the \
                 group's privileges as its member",
                group.name
            ))),
            None => Ok(()),
        }
    }

    /// The principal a command of `identity` runs as: its own, or `requested` (`--principal`)
    /// when that is its own or one the policy lets it act as. Groups are never run as.
    pub fn run_as(&self, identity: &Identity, requested: Option<&str>) -> Result<String, Refused> {
        let own = self.principal_of(identity)?;
        let Some(requested) = requested.filter(|r| *r != own) else { return Ok(own.to_string()) };
        self.runnable(requested)?;
        let acts_as: &[String] = self.principal(own).map_or(&[], |p| &p.may_act_as);
        if acts_as.iter().any(|a| a == requested) {
            return Ok(requested.to_string());
        }
        let may = if acts_as.is_empty() { "no other principal".to_string() } else { acts_as.join(", ") };
        Err(Refused(format!(
            "{identity} is principal `{own}`, which may not act as `{requested}` (--principal); the policy's \
             may_act_as lets `{own}` act as {may}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
metastore_owner = "admins"
[catalog]
name = "c"
owner = "admins"
schemas = ["s"]
[[principals]]
name = "admins"
kind = "group"
members = ["alice"]
[[principals]]
name = "alice"
kind = "user"
os_users = ["alice"]
entra_ids = ["11111111-1111-1111-1111-111111111111"]
may_act_as = ["job"]
[[principals]]
name = "job"
kind = "service_principal"
entra_app_ids = ["22222222-2222-2222-2222-222222222222"]
[[principals]]
name = "dev"
kind = "user"
os_users = ["*"]
"#;

    fn os(name: &str) -> Identity {
        Identity::OsUser(name.into())
    }

    #[test]
    fn identities_map_to_principals_and_act_only_as_allowed() {
        let policy = Policy::parse(POLICY).unwrap();
        assert_eq!(policy.run_as(&os("alice"), None).unwrap(), "alice");
        assert_eq!(policy.run_as(&os("alice"), Some("job")).unwrap(), "job");
        assert_eq!(policy.run_as(&os("alice"), Some("alice")).unwrap(), "alice");
        // Exact names first; everyone else is the wildcard's principal, who may act as nobody.
        assert_eq!(policy.run_as(&os("bob"), None).unwrap(), "dev");
        let refused = policy.run_as(&os("bob"), Some("job")).unwrap_err().0;
        assert!(refused.contains("may not act as `job`") && refused.contains("no other principal"), "{refused}");
        assert!(policy.run_as(&os("alice"), Some("admins")).unwrap_err().0.contains("is a group"));
        // Entra identities by object id or application id; no wildcard for them.
        let job = Identity::Entra {
            object_id: Some("x".into()),
            app_id: Some("22222222-2222-2222-2222-222222222222".into()),
        };
        assert_eq!(policy.run_as(&job, None).unwrap(), "job");
        let stranger = Identity::Entra { object_id: Some("33333333-3333-3333-3333-333333333333".into()), app_id: None };
        let refused = policy.run_as(&stranger, Some("job")).unwrap_err().0;
        assert!(refused.contains("not a principal") && refused.contains("entra_ids"), "{refused}");
        let alice = Identity::Entra { object_id: Some("11111111-1111-1111-1111-111111111111".into()), app_id: None };
        assert_eq!(policy.run_as(&alice, Some("job")).unwrap(), "job");
    }

    #[test]
    fn without_a_wildcard_an_unknown_os_user_is_refused() {
        let policy = Policy::parse(&POLICY.replace("os_users = [\"*\"]", "")).unwrap();
        let refused = policy.run_as(&os("bob"), Some("alice")).unwrap_err().0;
        assert!(refused.contains("OS user `bob` is not a principal") && refused.contains("os_users"), "{refused}");
    }

    #[test]
    fn mappings_are_checked_when_the_policy_loads() {
        for (change, field) in [
            (("os_users = [\"alice\"]", "os_users = [\"alice\", \"root; rm\"]"), "os_users"),
            (("entra_ids = [\"1111", "entra_ids = [\"not-a-guid\", \"1111"), "entra_ids"),
            (("may_act_as = [\"job\"]", "may_act_as = [\"nobody\"]"), "may_act_as"),
            (("may_act_as = [\"job\"]", "may_act_as = [\"admins\"]"), "may_act_as"),
            (("members = [\"alice\"]", "members = [\"alice\"]\nos_users = [\"carol\"]"), "group"),
            (
                (
                    "name = \"dev\"",
                    "name = \"dev\"\nmay_act_as = [\"alice\"]\nentra_ids = [\"11111111-1111-1111-1111-111111111111\"]",
                ),
                "entra_ids",
            ),
            (("os_users = [\"*\"]", "os_users = [\"*\", \"alice\"]"), "os_users"),
        ] {
            let text = POLICY.replacen(change.0, change.1, 1);
            assert_ne!(text, POLICY);
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{change:?}: {err}");
        }
    }
}

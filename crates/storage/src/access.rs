//! Who a command runs as, and the policy's word on each read or write it makes.
//!
//! Every [`crate::delta::Table`] and every zone [`crate::folder::Folder`] carries an
//! [`Access`]; opening a table asks for `SELECT`, creating one for `CREATE TABLE`, committing to
//! one for `MODIFY`, and listing, reading or writing zone files for `READ FILES` / `WRITE
//! FILES` on the zone's external location. Commands also check everything they will need
//! before they start ([`Access::require`]), so a refused command writes nothing.

use std::sync::Arc;

use fitlake_catalog::TableId;
use fitlake_config::{Lakehouse, Layer};
use fitlake_governance::policy::Zone;
use fitlake_governance::{Identity, Policy, Privilege, Securable};

use crate::stores::Stores;
use crate::{Error, Result};

/// The principal a command runs as, the policy it is held to, and the lakehouse it works on.
#[derive(Debug, Clone)]
pub struct Access {
    /// The lakehouse.
    pub lakehouse: Lakehouse,
    /// How its storage is reached (credentials, one client per container).
    pub stores: Stores,
    policy: Arc<Policy>,
    principal: String,
    /// The authenticated identity the principal was resolved from (`None` when an embedding
    /// program named the principal itself).
    identity: Option<Identity>,
}

/// One access a command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A privilege on a table.
    Table(TableId, Privilege),
    /// `CREATE TABLE` in a layer's schema.
    CreateTable(Layer),
    /// `READ FILES` or `WRITE FILES` on a zone.
    Files(Zone, Privilege),
}

impl Access {
    /// The principal `identity` is under `policy`, or `requested` (`--principal`) when the
    /// policy lets that identity act as it: what the `fitlake` commands run as. An identity no
    /// principal claims is refused (there is no default principal), and so are groups; an
    /// empty `requested` is none.
    pub fn authenticated(
        lakehouse: Lakehouse,
        policy: Policy,
        stores: Stores,
        identity: Identity,
        requested: Option<&str>,
    ) -> Result<Access> {
        let requested = requested.map(str::trim).filter(|r| !r.is_empty());
        let principal = policy.run_as(&identity, requested)?;
        tracing::debug!(%identity, principal, "identity");
        Ok(Access { lakehouse, stores, policy: Arc::new(policy), principal, identity: Some(identity) })
    }

    /// `principal` under `policy`, as named by a program embedding fitlake's crates (which
    /// authenticated its caller itself; the storage credentials of the process are the
    /// boundary either way). A principal the policy does not define is refused every
    /// access, like any principal without a grant; the refusal says so and lists the
    /// principals the policy knows, so a typo is easy to spot.
    pub fn new(lakehouse: Lakehouse, policy: Policy, principal: &str) -> Result<Access> {
        if principal.trim().is_empty() {
            return Err(Error::Config(
                "--principal is empty; the shipped policy defines producer, pipeline and analyst".into(),
            ));
        }
        policy.runnable(principal).map_err(|refused| Error::Config(refused.0))?;
        Ok(Access {
            lakehouse,
            stores: Stores::from_env(),
            policy: Arc::new(policy),
            principal: principal.to_string(),
            identity: None,
        })
    }

    /// The same access, reaching storage through `stores`.
    pub fn with_stores(self, stores: Stores) -> Access {
        Access { stores, ..self }
    }

    /// The principal.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Who commits, for a commit's `commitInfo`: the principal as `userName` (Databricks' name
    /// for it) and the authenticated identity behind it as `fitlake.identity`.
    pub fn commit_identity(&self) -> Vec<(String, serde_json::Value)> {
        let mut info = vec![("userName".to_string(), serde_json::Value::String(self.principal.clone()))];
        if let Some(identity) = &self.identity {
            info.push(("fitlake.identity".to_string(), serde_json::Value::String(identity.audit_name())));
        }
        info
    }

    /// The authenticated identity the principal was resolved from, if any.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn table_securable(&self, layer: Layer, name: &str) -> Securable {
        Securable::Table(self.policy.catalog.name.clone(), layer.name().to_string(), name.to_string())
    }

    /// Asks for one access.
    pub fn check(&self, need: &Need) -> Result<()> {
        let decision = match need {
            Need::Table(table, privilege) => {
                self.policy.authorize(&self.principal, *privilege, &self.table_securable(table.layer(), table.name()))
            }
            Need::CreateTable(layer) => self.policy.authorize(
                &self.principal,
                Privilege::CreateTable,
                &Securable::Schema(self.policy.catalog.name.clone(), layer.name().to_string()),
            ),
            Need::Files(zone, privilege) => self.policy.authorize_files(&self.principal, *privilege, *zone),
        };
        decision.map_err(|mut denied| {
            if self.policy.principal(&self.principal).is_none() {
                let known: Vec<&str> = self.policy.principals.iter().map(|p| p.name.as_str()).collect();
                denied.reason = format!("{}; the policy's principals are {}", denied.reason, known.join(", "));
            }
            Error::Denied(denied)
        })
    }

    /// Asks for every access a command needs, before it starts.
    pub fn require(&self, needs: &[Need]) -> Result<()> {
        needs.iter().try_for_each(|n| self.check(n))
    }

    /// Asks for `privilege` on a table.
    pub fn check_table(&self, table: TableId, privilege: Privilege) -> Result<()> {
        self.check(&Need::Table(table, privilege))
    }
}

//! Governance as code, in the Unity Catalog model, with no IO.
//!
//! - [`model`]: securables (metastore, catalog, schema, table, external location, storage
//!   credential), principals, privileges.
//! - [`policy`]: the policy file (who owns and may do what, cluster policies), parsed and
//!   checked against the platform's rules.
//! - [`authorize`]: the access decision for a principal, a privilege and a securable or a
//!   storage path, with Unity Catalog's inheritance.
//! - [`identity`]: who runs a command (the OS user, the Entra ID token's subject) and the
//!   principal the policy makes of it.
//! - [`acl`]: the ADLS Gen2 ACLs that give principals running fitlake directly against
//!   storage the file access their privileges stand for.
//! - [`plan`]: the Unity Catalog SQL and Databricks cluster policies that realise a policy, in
//!   full or as the difference from today's grants.

pub mod acl;
pub mod authorize;
pub mod identity;
pub mod model;
pub mod plan;
pub mod policy;

pub use authorize::Denied;
pub use identity::Identity;
pub use model::{Principal, PrincipalKind, Privilege, Securable};
pub use policy::Policy;

/// The policy shipped with fitlake (`crates/governance/policy.toml`): the original platform's rules.
pub const SHIPPED_POLICY: &str = include_str!("../policy.toml");

/// Errors of the governance crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy file is not valid TOML or does not have the expected shape.
    #[error("policy file: {0}")]
    Parse(String),
    /// The policy is well-formed but breaks a rule; the message says which and how to fix it.
    #[error("policy is invalid: {0}")]
    Invalid(String),
    /// A list of current grants could not be read.
    #[error("current grants: {0}")]
    Current(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

//! Where tables and zones live: local paths, or Azure Data Lake Storage containers (with the
//! cargo feature `azure`, on by default in the `fitlake` binary). [`Stores`] reaches any
//! location through one client per container.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::logstore::commit_uri_from_version;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::{Error, Result};

/// An `abfss://container@account.dfs.core.windows.net/path` location, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureLocation {
    /// The storage account.
    pub account: String,
    /// The container (ADLS file system).
    pub container: String,
    /// The account's blob host, e.g. `account.blob.core.windows.net`.
    pub blob_host: String,
    /// The path inside the container, without leading or trailing `/`.
    pub path: String,
}

impl AzureLocation {
    /// Takes an `abfss://` / `abfs://` URL apart; `None` for any other scheme.
    pub fn parse(url: &Url) -> Option<Result<AzureLocation>> {
        if !matches!(url.scheme(), "abfss" | "abfs") {
            return None;
        }
        let host = url.host_str().unwrap_or_default();
        let (container, host) = match host.split_once('@') {
            Some((c, h)) => (c.to_string(), h.to_string()),
            None => (url.username().to_string(), host.to_string()),
        };
        let account = host.split('.').next().unwrap_or_default().to_string();
        if container.is_empty() || account.is_empty() || !host.contains(".dfs.") {
            return Some(Err(Error::Config(format!(
                "{url}: name the container and the account: abfss://container@account.dfs.core.windows.net/path"
            ))));
        }
        let valid_container = (3..=63).contains(&container.len())
            && container.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !container.starts_with('-')
            && !container.contains("--");
        if !valid_container {
            return Some(Err(Error::Config(format!(
                "{url}: container name {container:?} is not valid: 3 to 63 lowercase letters, digits and single hyphens"
            ))));
        }
        let blob_host = host.replacen(".dfs.", ".blob.", 1);
        let path = url.path().trim_matches('/').to_string();
        Some(Ok(AzureLocation { account, container, blob_host, path }))
    }

    /// The container's blob endpoint (the emulator's path-style one under `emulator`).
    pub fn container_url(&self, emulator: Option<&Url>) -> Result<Url> {
        let text = match emulator {
            Some(endpoint) => {
                format!("{}/{}/{}", endpoint.as_str().trim_end_matches('/'), self.account, self.container)
            }
            None => format!("https://{}/{}", self.blob_host, self.container),
        };
        Url::parse(&text).map_err(|e| Error::Config(format!("{text}: {e}")))
    }
}

impl std::fmt::Display for AzureLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {} of storage account {}", self.container, self.account)
    }
}

/// Whether a container had to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// It was there already.
    Existed,
    /// fitlake created it.
    Created,
}

/// The object stores of one process: how to reach each location, one client per container,
/// and the latest snapshot of each Delta table the process has loaded (see
/// [`Stores::latest_table`]).
#[derive(Debug, Clone)]
pub struct Stores {
    #[cfg(feature = "azure")]
    azure: Arc<crate::azure::AzureStores>,
    snapshots: Snapshots,
}

/// The newest snapshot this process has of each table, by location, with what its latest
/// commit file looked like then (to tell that the log it was read from is still the same).
#[derive(Clone, Default)]
struct Snapshots(Arc<Mutex<HashMap<Url, (DeltaTable, ObjectMeta)>>>);

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshots({})", self.lock().len())
    }
}

impl Snapshots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Url, (DeltaTable, ObjectMeta)>> {
        // The map holds only finished snapshots; one a panicking thread left is still whole.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The commit file of `table`'s loaded version, as the store describes it now (`None` when
/// it is gone or the table has no version).
async fn commit_meta(table: &DeltaTable) -> Option<ObjectMeta> {
    let version = table.version()?;
    let store = table.log_store().object_store(None);
    store.head(&commit_uri_from_version(Some(version))).await.ok()
}

impl Stores {
    /// Stores reaching Azure with the credential the process environment gives (checked when
    /// an Azure location is first used, or by [`Stores::check_remote`]).
    pub fn from_env() -> Stores {
        Stores {
            #[cfg(feature = "azure")]
            azure: Arc::new(crate::azure::AzureStores::from_env()),
            snapshots: Snapshots::default(),
        }
    }

    /// Stores reaching Azure with `auth`.
    #[cfg(feature = "azure")]
    pub fn with_azure(auth: crate::azure::AzureAuth) -> Stores {
        Stores { azure: Arc::new(crate::azure::AzureStores::new(Ok(auth))), snapshots: Snapshots::default() }
    }

    /// Fails fast, before any work, when remote storage cannot be reached as configured: the
    /// credential settings are unusable, or this build has no Azure support.
    #[cfg(feature = "azure")]
    pub fn check_remote(&self) -> Result<()> {
        self.azure.auth().map(|_| ())
    }

    /// Fails: this build has no Azure support.
    #[cfg(not(feature = "azure"))]
    pub fn check_remote(&self) -> Result<()> {
        Err(no_azure())
    }

    /// Who this process is, from an authenticated source: on a remote lakehouse reached with
    /// a Microsoft Entra ID token, the token's subject; otherwise (a local lakehouse, an account
    /// key, a SAS token) the operating system's user of the effective user id.
    pub async fn identity(&self, remote: bool) -> Result<fitlake_governance::Identity> {
        #[cfg(feature = "azure")]
        if remote {
            if let Some(identity) = self.azure.entra_identity().await? {
                return Ok(identity);
            }
        }
        let _ = remote;
        whoami::username()
            .map(fitlake_governance::Identity::OsUser)
            .map_err(|e| Error::Config(format!("cannot tell which OS user runs fitlake: {e}")))
    }

    /// The store holding a remote `url` (rooted at its container) and the path of `url` in it.
    pub fn object_store(&self, url: &Url) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let location = match AzureLocation::parse(url) {
            Some(location) => location?,
            None => {
                return Err(Error::Config(format!(
                "{url}: unsupported storage; use a local path or abfss://container@account.dfs.core.windows.net/path"
            )))
            }
        };
        let prefix = Path::from_url_path(&location.path).map_err(|e| Error::Config(format!("{url}: {e}")))?;
        Ok((self.container_store(url, &location)?, prefix))
    }

    #[cfg(feature = "azure")]
    fn container_store(&self, url: &Url, location: &AzureLocation) -> Result<Arc<dyn ObjectStore>> {
        self.azure.container_store(url, location)
    }

    #[cfg(not(feature = "azure"))]
    fn container_store(&self, _: &Url, _: &AzureLocation) -> Result<Arc<dyn ObjectStore>> {
        Err(no_azure())
    }

    /// The Delta table at `url` (loaded when there is one; a location without a log opens as
    /// a table without versions, ready to be created).
    pub async fn delta_table(&self, url: &Url) -> std::result::Result<DeltaTable, DeltaTableError> {
        let builder = DeltaTableBuilder::from_url(url.clone())?;
        let builder = if fitlake_config::local_path(url).is_some() {
            builder
        } else {
            #[cfg(feature = "azure")]
            crate::azure::register_handlers();
            let (store, _) = self.object_store(url).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
            builder.with_storage_backend(store, url.clone())
        };
        let mut table = builder.build()?;
        // A location without a log is no table yet: loading it would only make deltalake log
        // an error event (a fresh `setup` printed one per table).
        if !table.log_store().is_delta_table_location().await? {
            return Ok(table);
        }
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
            Err(e) => Err(e),
        }
    }

    /// The Delta table at `url` at its latest version, as [`Stores::delta_table`] loads it, but
    /// brought up to date from the snapshot this process last had of it when there is one:
    /// only the commits since are read (a step run opens each of its tables, and a run or a
    /// stream opens the same tables again and again; a full load replays the checkpoint and
    /// every commit after it, 2-8 ms a table on local disk). The cached snapshot is used only
    /// while its latest commit file is still the one it was read from (same size and time), so
    /// a table deleted and created anew at the same location is loaded afresh; an incremental
    /// update that fails falls back to a full load.
    pub async fn latest_table(&self, url: &Url) -> std::result::Result<DeltaTable, DeltaTableError> {
        let cached = self.snapshots.lock().get(url).cloned();
        if let Some((mut table, seen)) = cached {
            let same_log = commit_meta(&table)
                .await
                .is_some_and(|now| now.size == seen.size && now.last_modified == seen.last_modified);
            if same_log {
                let seen_version = table.version();
                match table.update_incremental(None).await {
                    // Nothing committed since: the commit file just looked at is still the latest.
                    Ok(()) if table.version() == seen_version => return Ok(table),
                    Ok(()) => {
                        self.remember(url, &table).await;
                        return Ok(table);
                    }
                    Err(e) => {
                        tracing::debug!(%url, error = %e, "incremental log update failed; loading the table afresh")
                    }
                }
            }
        }
        let table = self.delta_table(url).await?;
        self.remember(url, &table).await;
        Ok(table)
    }

    /// Loads the Delta table at `url` into the snapshots this process keeps, unless one is kept
    /// already, so that a later [`Stores::latest_table`] only reads the commits since. A run
    /// loads the tables its later steps open while its first steps work (the loads are CPU
    /// work that the chain of steps otherwise waited for, 3-15 ms a table); a stream's later
    /// micro-batches find them kept and load nothing. A snapshot kept meanwhile (by a step's
    /// open) is not replaced.
    pub async fn preload(&self, url: &Url) -> std::result::Result<(), DeltaTableError> {
        if self.snapshots.lock().contains_key(url) {
            return Ok(());
        }
        let table = self.delta_table(url).await?;
        if let Some(meta) = commit_meta(&table).await {
            self.snapshots.lock().entry(url.clone()).or_insert((table, meta));
        }
        Ok(())
    }

    /// Keeps `table`'s snapshot as the one this process starts from when it next opens `url`.
    /// Whatever was kept is replaced, even by a lower version: after a table was created anew
    /// its log starts over, and an older snapshot kept by a concurrent open is only brought up
    /// to date from further back.
    pub(crate) async fn remember(&self, url: &Url, table: &DeltaTable) {
        if let Some(meta) = commit_meta(table).await {
            self.snapshots.lock().insert(url.clone(), (table.clone(), meta));
        }
    }

    /// Creates the container of an Azure `url` when it does not exist. A credential without
    /// the right to create containers gets an error saying what to ask for.
    pub async fn ensure_container(&self, url: &Url) -> Result<ContainerState> {
        let Some(location) = AzureLocation::parse(url) else {
            return Ok(ContainerState::Existed);
        };
        self.create_container(&location?).await
    }

    #[cfg(feature = "azure")]
    async fn create_container(&self, location: &AzureLocation) -> Result<ContainerState> {
        self.azure.ensure_container(location).await
    }

    #[cfg(not(feature = "azure"))]
    async fn create_container(&self, _: &AzureLocation) -> Result<ContainerState> {
        Err(no_azure())
    }
}

/// Why an Azure location cannot be reached by a build without the `azure` feature.
#[cfg(not(feature = "azure"))]
fn no_azure() -> Error {
    Error::Config("this build of fitlake has no Azure support; build it with the cargo feature `azure`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abfss_urls_name_account_container_and_path() {
        let url = Url::parse("abfss://lake@acct.dfs.core.windows.net/fitlake/managed/").expect("url");
        let location = AzureLocation::parse(&url).expect("azure").expect("valid");
        assert_eq!(
            location,
            AzureLocation {
                account: "acct".into(),
                container: "lake".into(),
                blob_host: "acct.blob.core.windows.net".into(),
                path: "fitlake/managed".into()
            }
        );
        assert_eq!(location.container_url(None).expect("url").as_str(), "https://acct.blob.core.windows.net/lake");
        let emulator = Url::parse("http://127.0.0.1:10000").expect("url");
        assert_eq!(location.container_url(Some(&emulator)).expect("url").as_str(), "http://127.0.0.1:10000/acct/lake");
        for bad in [
            "abfss://acct.dfs.core.windows.net/x",
            "abfss://x@acct.dfs.core.windows.net/",
            "abfss://Lake@acct.dfs.core.windows.net/",
        ] {
            let url = Url::parse(bad).expect("url");
            assert!(AzureLocation::parse(&url).expect("azure").is_err(), "{bad}");
        }
        assert!(AzureLocation::parse(&Url::parse("file:///tmp/x").expect("url")).is_none());
    }
}

//! Where a fitlake lakehouse lives and how a run is configured.
//!
//! A lakehouse has one root, mirroring the three ADLS directories of the original platform:
//! `metastore-root/` (catalog metadata), `managed/<layer>/<table>/` (Delta tables) and
//! `unmanaged/` (the landing `data_zone/raw/<source>/` and the `checkpoint_zone/`).
//! Everything here is pure: paths are resolved against a base directory the caller passes in.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use url::Url;

/// What is wrong with a configuration value; every message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The lakehouse location is neither a local path nor a supported URL.
    #[error("invalid lakehouse location {value:?}: {reason}")]
    InvalidLocation {
        /// The value as given.
        value: String,
        /// Why it was refused and what to give instead.
        reason: String,
    },
    /// A date option is not an ISO date.
    #[error("invalid date {value:?} for {option}: expected YYYY-MM-DD, e.g. 2023-03-15")]
    InvalidDate {
        /// The option that carried the value.
        option: &'static str,
        /// The value as given.
        value: String,
    },
    /// A duration option is not a number with a unit.
    #[error("invalid duration {value:?} for {option}: expected a number with ms, s, m, h or d, e.g. 5s")]
    InvalidDuration {
        /// The option that carried the value.
        option: &'static str,
        /// The value as given.
        value: String,
    },
    /// A size option is not a number with a unit.
    #[error("invalid size {value:?} for {option}: expected bytes, or a number with KiB, MiB, GiB (or KB, MB, GB), e.g. 128MiB")]
    InvalidSize {
        /// The option that carried the value.
        option: &'static str,
        /// The value as given.
        value: String,
    },
}

/// Result with [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A medallion layer: where a managed table lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Raw records, append-only, one row per source record.
    Bronze,
    /// Cleaned, deduplicated, merged entities.
    Silver,
    /// Aggregates for analysts.
    Gold,
}

impl Layer {
    /// Every layer, in pipeline order.
    pub const ALL: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

    /// The layer's directory and schema name.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The roots of one lakehouse: catalog metadata, managed tables and unmanaged files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lakehouse {
    metastore: Url,
    managed: Url,
    unmanaged: Url,
}

impl Lakehouse {
    /// A lakehouse under one root given as a local path (relative paths are resolved against
    /// `base_dir`), a `file://` URL, or an `abfss://container@account.dfs.core.windows.net/path`
    /// URL.
    pub fn from_root(root: &str, base_dir: &Path) -> Result<Self> {
        let root = parse_location(root, base_dir)?;
        Ok(Self {
            metastore: join_dir(&root, "metastore-root")?,
            managed: join_dir(&root, "managed")?,
            unmanaged: join_dir(&root, "unmanaged")?,
        })
    }

    /// This lakehouse with the roots given in `metastore`, `managed` and `unmanaged` moved
    /// there (each a local path or URL, as for [`Lakehouse::from_root`]).
    pub fn with_roots(
        mut self,
        metastore: Option<&str>,
        managed: Option<&str>,
        unmanaged: Option<&str>,
        base_dir: &Path,
    ) -> Result<Self> {
        for (value, root) in
            [(metastore, &mut self.metastore), (managed, &mut self.managed), (unmanaged, &mut self.unmanaged)]
        {
            if let Some(value) = value {
                *root = parse_location(value, base_dir)?;
            }
        }
        Ok(self)
    }

    /// Every root: metastore, managed, unmanaged.
    pub fn roots(&self) -> [&Url; 3] {
        [&self.metastore, &self.managed, &self.unmanaged]
    }

    /// Catalog metadata root (`metastore-root/`).
    pub fn metastore_url(&self) -> &Url {
        &self.metastore
    }

    /// Root of the managed Delta tables (`managed/`).
    pub fn managed_url(&self) -> &Url {
        &self.managed
    }

    /// Root of the unmanaged zones (`unmanaged/`).
    pub fn unmanaged_url(&self) -> &Url {
        &self.unmanaged
    }

    /// Location of the managed Delta table `name` in `layer`.
    pub fn table_url(&self, layer: Layer, name: &str) -> Url {
        self.managed.join(&format!("{}/{name}/", layer.name())).unwrap_or_else(|_| self.managed.clone())
    }

    /// The landing folder of one source (named after the bronze table it feeds).
    pub fn landing_url(&self, source: &str) -> Url {
        self.unmanaged.join(&format!("data_zone/raw/{source}/")).unwrap_or_else(|_| self.unmanaged.clone())
    }

    /// The landing (data) zone: every source's landing folder is under it.
    pub fn data_zone_url(&self) -> Url {
        self.unmanaged.join("data_zone/").unwrap_or_else(|_| self.unmanaged.clone())
    }

    /// The checkpoint zone root.
    pub fn checkpoint_zone_url(&self) -> Url {
        self.unmanaged.join("checkpoint_zone/").unwrap_or_else(|_| self.unmanaged.clone())
    }

    /// True when every root is on the local file system.
    pub fn is_local(&self) -> bool {
        [&self.metastore, &self.managed, &self.unmanaged].iter().all(|u| u.scheme() == "file")
    }
}

/// A local path for a `file://` URL, `None` for remote storage.
pub fn local_path(url: &Url) -> Option<PathBuf> {
    (url.scheme() == "file").then(|| url.to_file_path().ok()).flatten()
}

fn join_dir(root: &Url, dir: &str) -> Result<Url> {
    root.join(&format!("{dir}/"))
        .map_err(|e| ConfigError::InvalidLocation { value: root.to_string(), reason: e.to_string() })
}

/// Parses a location as a directory URL (always ending in `/`).
fn parse_location(value: &str, base_dir: &Path) -> Result<Url> {
    let invalid = |reason: &str| ConfigError::InvalidLocation { value: value.to_string(), reason: reason.to_string() };
    if value.trim().is_empty() {
        return Err(invalid("empty; give a directory such as ./lakehouse"));
    }
    let mut url = if let Some((scheme, _)) = value.split_once("://") {
        match scheme {
            "file" | "abfss" | "abfs" => {}
            other => {
                return Err(invalid(&format!(
                    "unsupported scheme {other:?}; use a local path, file://, or abfss://container@account.dfs.core.windows.net/path"
                )))
            }
        }
        Url::parse(value).map_err(|e| invalid(&e.to_string()))?
    } else {
        let path = Path::new(value);
        let abs = if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) };
        let abs = normalize(&abs);
        Url::from_directory_path(&abs).map_err(|()| invalid("not an absolute path after resolving"))?
    };
    if url.scheme() == "abfss" && url.host_str().is_none_or(|h| !h.contains('@') && url.username().is_empty()) {
        return Err(invalid(
            "abfss URLs name container and account: abfss://container@account.dfs.core.windows.net/path",
        ));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A secret (a password, a key, a token, a connection string holding one): the one type
/// fitlake holds every secret in. Its `Debug` and `Display` show `***`, so no struct that
/// holds one can print it by accident; [`Secret::expose`] hands the text to the client that
/// needs it.
///
/// ```
/// let dsn = fitlake_config::Secret::new("postgresql://u:hunter2@db/gym");
/// assert_eq!(format!("{dsn:?} {dsn}"), "*** ***");
/// assert!(dsn.expose().contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Holds `text` as a secret.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret's text (only to hand it to the client that needs it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Parses an ISO date option such as `--as-of 2023-03-15`.
pub fn parse_date(option: &'static str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| ConfigError::InvalidDate { option, value: value.to_string() })
}

/// Parses a duration option such as `--trigger 5s` (units: ms, s, m, h, d).
pub fn parse_duration(option: &'static str, value: &str) -> Result<Duration> {
    let err = || ConfigError::InvalidDuration { option, value: value.to_string() };
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(err)?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size option such as `--target-file-size 128MiB` (bytes, or KiB, MiB, GiB, TiB;
/// KB, MB, GB, TB in powers of ten).
///
/// ```
/// assert_eq!(fitlake_config::parse_bytes("--size", "128MiB").unwrap(), 128 << 20);
/// assert_eq!(fitlake_config::parse_bytes("--size", "1.5 GB").unwrap(), 1_500_000_000);
/// assert_eq!(fitlake_config::parse_bytes("--size", "4096").unwrap(), 4096);
/// assert!(fitlake_config::parse_bytes("--size", "12 parsecs").is_err());
/// ```
pub fn parse_bytes(option: &'static str, value: &str) -> Result<u64> {
    let err = || ConfigError::InvalidSize { option, value: value.to_string() };
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(err()),
    };
    let bytes = n * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

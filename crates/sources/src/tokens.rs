//! Bearer tokens of `fitlake serve`: each named, shown once when made, stored only as its
//! SHA-256 in a JSON file (`fitlake token new NAME`, `revoke NAME`, `list`). The server reads
//! the file again when it changes, so a revoked token stops working without a restart.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use fitlake_config::Secret;

use crate::{Error, Result};

/// One stored token: its name and hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// Who or what holds it (a device fleet, a gateway).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
}

/// The token file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    /// Every valid token.
    pub tokens: Vec<StoredToken>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// The hex SHA-256 of a token as presented.
pub fn hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

impl TokenFile {
    /// Reads `path` (an absent file holds no token).
    pub fn read(path: &Path) -> Result<TokenFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| Error::Config(format!("token file {}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(Error::Config(format!("token file {}: {e}", path.display()))),
        }
    }

    /// Writes the file (a temporary file renamed into place, readable by its owner only).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Config(format!("token file {}: {e}", path.display()));
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.into()))?;
        let temporary = path.with_extension("tmp");
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary).map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&temporary, path).map_err(io)
    }

    /// Makes a token named `name` (refused if the name is taken): the token, to show once.
    pub fn add(&mut self, name: &str, created: &str) -> Result<Secret> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::Config(format!("token name {name:?}: use letters, digits, '-', '_' and '.'")));
        }
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(Error::Config(format!("a token named {name} exists: revoke it first")));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Internal("no system randomness".into()))?;
        let token = format!("flk_{}", hex(&bytes));
        self.tokens.push(StoredToken { name: name.to_string(), sha256: hash(&token), created: created.to_string() });
        Ok(Secret::new(token))
    }

    /// Removes the token named `name`; false when there was none.
    pub fn revoke(&mut self, name: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        self.tokens.len() < before
    }

    /// The name of the token `presented`, if it is one of these. The comparison is of SHA-256
    /// hashes, so its timing tells nothing about a stored token.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let presented = hash(presented);
        self.tokens.iter().find(|t| t.sha256 == presented).map(|t| t.name.as_str())
    }
}

/// A token file the server re-reads when its modification time changes (checked at most once
/// a second).
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    state: std::sync::Mutex<(TokenFile, Option<SystemTime>, std::time::Instant)>,
}

impl TokenStore {
    /// Reads `path`; an error if it is unreadable or holds no token (a server must not start
    /// without a way to authenticate).
    pub fn open(path: &Path) -> Result<TokenStore> {
        let file = TokenFile::read(path)?;
        if file.tokens.is_empty() {
            return Err(Error::Config(format!(
                "token file {} holds no token: make one with `fitlake token new NAME --tokens {}`",
                path.display(),
                path.display()
            )));
        }
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(TokenStore {
            path: path.to_path_buf(),
            state: std::sync::Mutex::new((file, modified, std::time::Instant::now())),
        })
    }

    /// The name of the token `presented`, reading the file again first if it changed.
    pub fn verify(&self, presented: &str) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.2.elapsed() >= std::time::Duration::from_secs(1) {
            state.2 = std::time::Instant::now();
            let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
            if modified != state.1 {
                match TokenFile::read(&self.path) {
                    Ok(file) => {
                        tracing::info!(tokens = file.tokens.len(), "token file changed; read again");
                        *state = (file, modified, state.2);
                    }
                    // A file being rewritten badly keeps the tokens last read, and says so.
                    Err(e) => tracing::warn!(error = %e, "token file unreadable; keeping the tokens last read"),
                }
            }
        }
        state.0.verify(presented).map(str::to_string)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_by_its_hash_until_revoked() {
        let mut file = TokenFile::default();
        let token = file.add("gateway-1", "2026-12-02T00:00:00Z").unwrap();
        assert!(token.expose().starts_with("flk_") && token.expose().len() == 68);
        assert!(!serde_json::to_string(&file).unwrap().contains(token.expose()), "only the hash is stored");
        assert_eq!(file.verify(token.expose()), Some("gateway-1"));
        assert_eq!(file.verify("flk_0000"), None);
        assert!(file.add("gateway-1", "").is_err(), "names are unique");
        assert!(file.add("bad name", "").is_err());
        assert!(file.revoke("gateway-1"));
        assert_eq!(file.verify(token.expose()), None);
    }

    #[test]
    fn the_store_reads_the_file_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        assert!(TokenStore::open(&path).unwrap_err().to_string().contains("holds no token"));
        let mut file = TokenFile::default();
        let token = file.add("a", "").unwrap();
        file.write(&path).unwrap();
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.verify(token.expose()).as_deref(), Some("a"));
        file.revoke("a");
        let other = file.add("b", "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        file.write(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(store.verify(token.expose()), None, "revoked without a restart");
        assert_eq!(store.verify(other.expose()).as_deref(), Some("b"));
    }
}

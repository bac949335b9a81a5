//! The unmanaged zones: landing folders and checkpoint logs, on any `object_store` backend.
//!
//! Files whose name starts with `.` or `_` are in-flight or bookkeeping and never listed, so a
//! writer that lands a file under a hidden name and renames it (as `fitlake produce` does, and
//! as the local store's `put` does) is never seen half-written.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use fitlake_governance::policy::Zone;
use fitlake_governance::Privilege;

use crate::access::{Access, Need};
use crate::stores::Stores;
use crate::{Error, Result};

/// A folder in object storage.
#[derive(Debug, Clone)]
pub struct Folder {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: Url,
    /// For a zone folder: whose reads and writes are checked, and in which zone.
    guard: Option<(Access, Zone)>,
    /// How storage is reached (for subfolders).
    stores: Stores,
}

/// A file in a [`Folder`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileEntry {
    /// Path relative to the folder, `/`-separated.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// When the file was last written, epoch microseconds.
    pub modified_micros: i64,
}

fn storage_error(location: impl ToString, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::storage(location, e)
}

impl Folder {
    /// A folder of `zone` at `url`; every list, read and write asks the policy whether
    /// `access`'s principal may (`READ FILES` / `WRITE FILES`).
    pub fn zone(access: &Access, zone: Zone, url: &Url) -> Result<Self> {
        Ok(Folder { guard: Some((access.clone(), zone)), ..Folder::open(&access.stores, url)? })
    }

    /// A folder of fitlake's own catalog storage (the metastore registry, probes of the storage
    /// roots). No zone privilege applies: commands that write it first check `CREATE TABLE`.
    pub fn catalog_storage(access: &Access, url: &Url) -> Result<Self> {
        Folder::open(&access.stores, url)
    }

    fn allow(&self, privilege: Privilege) -> Result<()> {
        match &self.guard {
            Some((access, zone)) => access.check(&Need::Files(*zone, privilege)),
            None => Ok(()),
        }
    }

    /// The folder at `url` (`file://` or `abfss://`).
    fn open(stores: &Stores, url: &Url) -> Result<Self> {
        if let Some(path) = fitlake_config::local_path(url) {
            // The local store needs its root to exist before it can list or write.
            std::fs::create_dir_all(&path).map_err(|e| storage_error(path.display(), e))?;
            let store =
                object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| storage_error(url, e))?;
            let store = Arc::new(store);
            return Ok(Self { store, prefix: Path::default(), url: url.clone(), guard: None, stores: stores.clone() });
        }
        let (store, prefix) = stores.object_store(url)?;
        Ok(Self { store, prefix, url: url.clone(), guard: None, stores: stores.clone() })
    }

    /// The folder's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A subfolder.
    pub fn child(&self, name: &str) -> Result<Folder> {
        let url =
            self.url.join(&format!("{}/", name.trim_end_matches('/'))).map_err(|e| storage_error(&self.url, e))?;
        Ok(Folder { guard: self.guard.clone(), ..Folder::open(&self.stores, &url)? })
    }

    fn path(&self, name: &str) -> Path {
        name.split('/').filter(|p| !p.is_empty()).fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    /// Every visible file below the folder, sorted by name. A missing folder is empty.
    pub async fn list(&self) -> Result<Vec<FileEntry>> {
        self.allow(Privilege::ReadFiles)?;
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed: Vec<object_store::ObjectMeta> = match self.store.list(prefix).try_collect().await {
            Ok(v) => v,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(storage_error(&self.url, e)),
        };
        let mut files: Vec<FileEntry> = listed
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let rel = full.strip_prefix(self.prefix.as_ref()).unwrap_or(full).trim_start_matches('/');
                let hidden =
                    rel.split('/').any(|part| part.starts_with('.') || part.starts_with('_') || part.contains('#'));
                (!hidden && !rel.is_empty()).then(|| FileEntry {
                    name: rel.to_string(),
                    size: meta.size,
                    modified_micros: meta.last_modified.timestamp_micros(),
                })
            })
            .collect();
        // Only regular files are landing data: the local store follows symbolic links, which
        // could point anywhere (another source's folder, a device); they are skipped (see
        // [`Folder::skipped`]).
        if let Some(root) = fitlake_config::local_path(&self.url) {
            files.retain(|f| std::fs::symlink_metadata(root.join(&f.name)).is_ok_and(|m| m.file_type().is_file()));
        }
        files.sort();
        Ok(files)
    }

    /// Entries of a local folder that are not regular files and so are never read: symbolic
    /// links, FIFOs, sockets, devices (relative names, sorted). Empty for object stores, which
    /// hold only objects.
    pub fn skipped(&self) -> Result<Vec<String>> {
        self.allow(Privilege::ReadFiles)?;
        let Some(root) = fitlake_config::local_path(&self.url) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_dir() => folders.push(entry.path()),
                    Ok(t) if t.is_file() => {}
                    _ => out.push(entry.path().strip_prefix(&root).unwrap_or(&entry.path()).display().to_string()),
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The bytes of a file.
    pub async fn read(&self, name: &str) -> Result<bytes::Bytes> {
        self.allow(Privilege::ReadFiles)?;
        let path = self.path(name);
        let got = self.store.get(&path).await.map_err(|e| storage_error(format!("{}{name}", self.url), e))?;
        got.bytes().await.map_err(|e| storage_error(format!("{}{name}", self.url), e))
    }

    /// Bytes `range` of a file appended to `buf` (which the caller may reuse from piece to
    /// piece): a large file is read piece by piece without holding it whole. A local file is
    /// read straight into the buffer's spare room, with no zeroed buffer of the store's own in
    /// between.
    pub async fn read_range_into(&self, name: &str, range: std::ops::Range<u64>, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        self.allow(Privilege::ReadFiles)?;
        let location = format!("{}{name}", self.url);
        let Some(root) = fitlake_config::local_path(&self.url) else {
            let bytes = self.store.get_range(&self.path(name), range).await.map_err(|e| storage_error(location, e))?;
            buf.extend_from_slice(&bytes);
            return Ok(buf);
        };
        let path = root.join(name);
        let read = move || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek};
            let want = range.end.saturating_sub(range.start);
            let mut file = std::fs::File::open(&path)?;
            file.seek(std::io::SeekFrom::Start(range.start))?;
            buf.reserve(want as usize);
            let got = file.take(want).read_to_end(&mut buf)? as u64;
            if got < want {
                let short = format!("bytes {}..{} asked, the file ends after {got} of them", range.start, range.end);
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, short));
            }
            Ok(buf)
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(read) => read.map_err(|e| storage_error(location, e)),
            // The read panicked: a bug, not a fault of the storage.
            Err(e) => Err(Error::Internal(e.into())),
        }
    }

    /// The first `prefix_bytes` bytes of a file and the SHA-256 of all of it (hex), read as a
    /// stream: a file too large to read whole is still identified without holding it.
    pub async fn digest(&self, name: &str, prefix_bytes: usize) -> Result<(Vec<u8>, String)> {
        self.allow(Privilege::ReadFiles)?;
        let location = || format!("{}{name}", self.url);
        let got = self.store.get(&self.path(name)).await.map_err(|e| storage_error(location(), e))?;
        let mut stream = got.into_stream();
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut prefix = Vec::with_capacity(prefix_bytes);
        while let Some(chunk) = stream.try_next().await.map_err(|e| storage_error(location(), e))? {
            let room = prefix_bytes.saturating_sub(prefix.len());
            prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
            context.update(&chunk);
        }
        let hex = context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok((prefix, hex))
    }

    /// Writes a whole file at once: readers see the old file or the new one, never a part.
    pub async fn write(&self, name: &str, bytes: impl Into<PutPayload>) -> Result<()> {
        self.allow(Privilege::WriteFiles)?;
        self.store
            .put(&self.path(name), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| storage_error(format!("{}{name}", self.url), e))
    }

    /// Creates a new file whole and, on a local file system, flushes it and its folder to disk
    /// before returning (object stores have it durable once the put returns). Never replaces
    /// a file: `Ok(false)` when `name` exists already (a conditional put on object stores, a
    /// hard link on local disk), so an earlier file of the same name is never lost.
    pub async fn create_durable(&self, name: &str, bytes: Vec<u8>) -> Result<bool> {
        self.allow(Privilege::WriteFiles)?;
        let Some(dir) = fitlake_config::local_path(&self.url) else {
            let options = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
            return match self.store.put_opts(&self.path(name), bytes.into(), options).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(storage_error(format!("{}{name}", self.url), e)),
            };
        };
        let (hidden, target) = (dir.join(format!(".{name}.tmp")), dir.join(name));
        tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&hidden)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            // A link, unlike a rename, fails when the target exists.
            let created = match std::fs::hard_link(&hidden, &target) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            };
            std::fs::remove_file(&hidden)?;
            std::fs::File::open(target.parent().unwrap_or(&target))?.sync_all()?;
            Ok(created)
        })
        .await
        .map_err(|e| storage_error(&self.url, e))?
        .map_err(|e| storage_error(format!("{}{name}", self.url), e))
    }

    /// Checks that the folder can be written, by writing the hidden marker file
    /// `_fitlake_write_probe` (left in place: deleting needs a right the pipeline does not
    /// otherwise use, and Azurite refuses the batch delete object_store sends with a SAS).
    pub async fn check_writable(&self) -> Result<()> {
        self.write("_fitlake_write_probe", bytes::Bytes::from_static(b"ok")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_created_file_is_never_replaced_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().to_str().expect("utf-8");
        let lakehouse = fitlake_config::Lakehouse::from_root(root, std::path::Path::new("/")).expect("lakehouse");
        let policy = fitlake_governance::Policy::shipped().expect("policy");
        let access = Access::new(lakehouse.clone(), policy, "producer").expect("access");
        let landing = Folder::zone(&access, Zone::Landing, &lakehouse.landing_url("kafka_multiplex_bz")).expect("zone");
        assert!(landing.create_durable("a.json", b"first".to_vec()).await.expect("create"));
        assert!(!landing.create_durable("a.json", b"second".to_vec()).await.expect("create"));
        assert_eq!(landing.read("a.json").await.expect("read").as_ref(), b"first");
        let folder = fitlake_config::local_path(&lakehouse.landing_url("kafka_multiplex_bz")).expect("local");
        let names: Vec<String> = std::fs::read_dir(folder)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json"]);
    }
}

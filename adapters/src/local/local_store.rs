//! A mirror in a local directory. Bottles are written to a temp file on the
//! same filesystem, fsynced, then renamed into place, so a crash never leaves
//! a partial file at a final name. One run at a time holds `.bottlesync/lock`.
//! Conditional writes (`put_if`) compare and replace under a second lock,
//! `.bottlesync/write.lock`, taken per write, so concurrent compactions in
//! one process or several never lose an update; the version of an object
//! is the SHA-256 of its content. A flat copy (`put_flat_copy`) is a hard
//! link to the dated file: no extra bytes, and a full copy only where the
//! filesystem cannot link.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::digest::Sha256Digest;
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::ports::store::{
    BlobReader, BlobStore, BlobWriter, DocumentStore, INTERNAL_PREFIX, ObjectMeta, ObjectRead,
    PartsUpload, Precondition, PutIf, StoreLocation, Upload, VersionToken,
};

use super::durable_rename::Publisher;
use super::local_upload::{LocalParts, LocalUpload};

/// How much one read of a streamed object asks for.
const READ_CHUNK: usize = 256 * 1024;

pub struct LocalStore {
    root: PathBuf,
    publisher: Publisher,
    staging: PathBuf,
    /// Held for the store's lifetime: the advisory lock on `.bottlesync/lock`.
    /// `None` for a read-only view (dry runs), which writes nothing.
    lock: Option<File>,
    /// Whether a flat copy has already fallen back to a full copy (logged
    /// once at info, the rest at debug).
    copy_fallback_logged: AtomicBool,
}

impl LocalStore {
    /// Creates `root` if needed, takes the run lock, and clears temp files a
    /// crashed run left behind.
    pub fn open(root: &Path) -> Result<Self> {
        let shown = root.display().to_string();
        let internal = root.join(INTERNAL_PREFIX);
        let staging = internal.join("tmp");
        std::fs::create_dir_all(&staging)
            .map_err(|e| Error::destination(&shown, format!("cannot create directory: {e}")))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(internal.join("lock"))
            .map_err(|e| Error::destination(&shown, format!("cannot open lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::destination(
                    &shown,
                    "another bottlesync run holds .bottlesync/lock",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::destination(&shown, format!("cannot lock: {e}")));
            }
        }
        for entry in std::fs::read_dir(&staging)
            .map_err(|e| Error::destination(&shown, e.to_string()))?
            .flatten()
        {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
            publisher: Publisher::new(root),
            staging,
            lock: Some(lock),
            copy_fallback_logged: AtomicBool::new(false),
        })
    }

    /// A view that reads what is there (possibly nothing) and refuses to
    /// write: for `--dry-run`, which must not even create the directory.
    pub fn open_read_only(root: &Path) -> Self {
        LocalStore {
            root: root.to_path_buf(),
            publisher: Publisher::new(root),
            staging: root.join(INTERNAL_PREFIX).join("tmp"),
            lock: None,
            copy_fallback_logged: AtomicBool::new(false),
        }
    }

    fn ensure_writable(&self) -> Result<()> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(self.err("opened read-only (dry run)")),
        }
    }

    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn err(&self, problem: impl std::fmt::Display) -> Error {
        Error::store(self.root.display().to_string(), problem)
    }

    /// Takes `.bottlesync/write.lock` (waiting for it); released when the
    /// returned file is dropped. An flock is per open file, so it excludes
    /// other tasks of this process as well as other processes.
    async fn lock_writes(&self) -> Result<File> {
        let path = self.root.join(INTERNAL_PREFIX).join("write.lock");
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| self.err(e))?
        .map_err(|e| self.err(format!("cannot lock {shown}: {e}")))
    }

    /// The version of what `key` holds now (`None`: absent), hashed while
    /// reading so a large object costs no memory.
    async fn current_version(&self, key: &ObjectKey) -> Result<Option<VersionToken>> {
        let path = self.path_of(key);
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<VersionToken>> {
            use sha2::Digest;
            use std::io::Read;
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut hasher = sha2::Sha256::new();
            let mut buffer = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            Ok(Some(VersionToken(hex::encode(hasher.finalize()))))
        })
        .await
        .map_err(|e| self.err(e))?
        .map_err(|e| self.err(format!("cannot read {shown}: {e}")))
    }

    fn temp_path(&self, key: &ObjectKey) -> PathBuf {
        let nonce: u64 = rand::random();
        self.staging
            .join(format!("{}.{nonce:016x}.part", key.file_name()))
    }
}

impl StoreLocation for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn check_usable(&self) -> Result<()> {
        // `open` already created the directory and took the lock.
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for LocalStore {
    async fn begin(
        &self,
        key: &ObjectKey,
        _expected: &Sha256Digest,
        _size_hint: u64,
    ) -> Result<Box<dyn Upload>> {
        self.ensure_writable()?;
        Ok(Box::new(LocalUpload::create(
            &self.publisher,
            key,
            self.temp_path(key),
        )?))
    }

    async fn begin_parts(
        &self,
        key: &ObjectKey,
        _expected: &Sha256Digest,
        size: u64,
    ) -> Result<Option<Box<dyn PartsUpload>>> {
        self.ensure_writable()?;
        Ok(Some(Box::new(LocalParts::create(
            &self.publisher,
            key,
            self.temp_path(key),
            size,
        )?)))
    }

    async fn put_flat_copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<()> {
        self.ensure_writable()?;
        let (source, target) = (self.path_of(from), self.path_of(to));
        let temp = self.temp_path(to);
        let what = format!("cannot put the flat copy {to} of {from}");
        let (source_for_link, temp_for_link) = (source.clone(), temp.clone());
        let linked = tokio::task::spawn_blocking(move || {
            link_or_copy(&source_for_link, &target, &temp_for_link)
        })
        .await
        .map_err(|e| self.err(format!("{what}: {e}")))?;
        match linked {
            Ok(Linked::AlreadyThere) => return Ok(()),
            Ok(Linked::HardLink) => {}
            Ok(Linked::Copied(reason)) => {
                if self.copy_fallback_logged.swap(true, Ordering::Relaxed) {
                    tracing::debug!(from = %from, to = %to, reason = %reason,
                        "cannot hard-link a flat copy: copying the bytes");
                } else {
                    tracing::info!(
                        from = %from,
                        to = %to,
                        reason = %reason,
                        "cannot hard-link a flat copy: copying the bytes instead (flat copies \
                         take disk space on this filesystem; logged once)"
                    );
                }
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(self.err(format!("{what}: {e}")));
            }
        }
        let published = self.publisher.publish(&temp, to).await;
        if published.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        published
    }
}

#[async_trait]
impl DocumentStore for LocalStore {
    async fn put_atomic(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<()> {
        self.ensure_writable()?;
        let temp = self.temp_path(key);
        let temp_for_write = temp.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = File::create(&temp_for_write)?;
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .await
        .map_err(|e| self.err(e))?;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(self.err(format!("cannot write {}: {e}", temp.display())));
        }
        let published = self.publisher.publish(&temp, key).await;
        if published.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        published
    }

    async fn get_versioned(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, VersionToken)>> {
        Ok(self.get(key, max_bytes).await?.map(|bytes| {
            let version = content_version(&bytes);
            (bytes, version)
        }))
    }

    async fn put_if(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<PutIf> {
        self.ensure_writable()?;
        let _held = self.lock_writes().await?;
        let current = self.current_version(key).await?;
        let holds = match (&precondition, &current) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(wanted), Some(current)) => wanted == current,
            _ => false,
        };
        if !holds {
            return Ok(PutIf::PreconditionFailed);
        }
        let version = content_version(&bytes);
        self.put_atomic(key, bytes).await?;
        Ok(PutIf::Written(version))
    }

    async fn delete_if(&self, key: &ObjectKey, version: &VersionToken) -> Result<bool> {
        self.ensure_writable()?;
        let _held = self.lock_writes().await?;
        if self.current_version(key).await?.as_ref() != Some(version) {
            return Ok(false);
        }
        self.delete(std::slice::from_ref(key)).await?;
        Ok(true)
    }

    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(key);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(format!("cannot read {}: {e}", path.display()))),
        };
        if meta.len() > max_bytes {
            return Err(self.err(format!(
                "{} is {} bytes, more than the {max_bytes} allowed",
                path.display(),
                meta.len()
            )));
        }
        match read_at_most(&path, max_bytes).await {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) => Err(self.err(format!(
                "{} is more than the {max_bytes} bytes allowed",
                path.display()
            ))),
            Err(e) => Err(self.err(format!("cannot read {}: {e}", path.display()))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>> {
        // At any depth, as S3 lists a prefix (`bottles/` holds flat files
        // and `<image>/manifests/<ref>`).
        let mut keys = Vec::new();
        let mut dirs = vec![prefix.to_string()];
        while let Some(relative) = dirs.pop() {
            let dir = self.root.join(&relative);
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(format!("cannot list {}: {e}", dir.display()))),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| self.err(format!("cannot list {}: {e}", dir.display())))?
            {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                // Symlinks are neither listed nor followed.
                match entry.file_type().await {
                    Ok(t) if t.is_file() => {
                        keys.push(ObjectKey::parse(&format!("{relative}/{name}"))?)
                    }
                    Ok(t) if t.is_dir() => dirs.push(format!("{relative}/{name}")),
                    _ => {}
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, keys: &[ObjectKey]) -> Result<()> {
        self.ensure_writable()?;
        for key in keys {
            match tokio::fs::remove_file(self.path_of(key)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(format!("cannot delete {key}: {e}"))),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BlobReader for LocalStore {
    async fn open_read(&self, key: &ObjectKey) -> Result<Option<ObjectRead>> {
        self.open_read_range(key, None).await
    }

    async fn open_read_range(
        &self,
        key: &ObjectKey,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectRead>> {
        let path = self.path_of(key);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(format!("cannot open {}: {e}", path.display()))),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| self.err(format!("cannot read {}: {e}", path.display())))?
            .len();
        let (first, len) = match range {
            None => (0, size),
            Some((first, last)) => (first, (last + 1).min(size).saturating_sub(first)),
        };
        if first > 0 {
            file.seek(std::io::SeekFrom::Start(first))
                .await
                .map_err(|e| self.err(format!("cannot seek in {}: {e}", path.display())))?;
        }
        let location = self.location();
        let body = futures::stream::unfold((file, len), move |(mut file, left)| {
            let (location, path) = (location.clone(), path.clone());
            async move {
                if left == 0 {
                    return None;
                }
                let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
                let mut chunk = bytes::BytesMut::with_capacity(want);
                match (&mut file).take(want as u64).read_buf(&mut chunk).await {
                    Ok(0) => Some((
                        Err(Error::store(
                            location,
                            format!("{} ended {left} bytes early", path.display()),
                        )),
                        (file, 0),
                    )),
                    Ok(n) => Some((Ok(chunk.freeze()), (file, left - n as u64))),
                    Err(e) => Some((
                        Err(Error::store(
                            location,
                            format!("cannot read {}: {e}", path.display()),
                        )),
                        (file, 0),
                    )),
                }
            }
        });
        Ok(Some(ObjectRead {
            size: len,
            body: Box::pin(body),
        }))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        let path = self.path_of(key);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None);
            }
            Err(e) => return Err(self.err(format!("cannot stat {}: {e}", path.display()))),
        };
        let modified = meta.modified().ok();
        // As nginx does: the modification time and the size. A replaced
        // file (rename into place) has a new time.
        let nanos = modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Some(ObjectMeta {
            size: meta.len(),
            last_modified: modified,
            etag: Some(format!("\"{nanos:x}-{:x}\"", meta.len())),
            // A directory keeps no digest beside the file.
            sha256: None,
        }))
    }
}

fn content_version(bytes: &[u8]) -> VersionToken {
    VersionToken(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// What `link_or_copy` left at its temp path.
#[derive(Debug)]
enum Linked {
    /// Nothing: the target already holds the source (same inode) or a file
    /// of the same size.
    AlreadyThere,
    /// A hard link to the source.
    HardLink,
    /// A full, fsynced copy, because linking failed for this reason.
    Copied(std::io::Error),
}

/// Puts a hard link to `source` at `temp` (a staging name on the mirror's
/// filesystem, for `publish` to rename over `target`), or a full copy where
/// the filesystem cannot link: across devices, not permitted, not supported,
/// too many links. Nothing when `target` already holds the same file or one
/// of the same size (a copy published before). Blocking.
fn link_or_copy(source: &Path, target: &Path, temp: &Path) -> std::io::Result<Linked> {
    use std::os::unix::fs::MetadataExt;
    let from = std::fs::metadata(source)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", source.display())))?;
    match std::fs::metadata(target) {
        Ok(to) if (to.dev(), to.ino()) == (from.dev(), from.ino()) || to.len() == from.len() => {
            return Ok(Linked::AlreadyThere);
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", target.display()),
            ));
        }
    }
    let refused = match std::fs::hard_link(source, temp) {
        Ok(()) => return Ok(Linked::HardLink),
        Err(e) if link_impossible(&e) => e,
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot link {} to {}: {e}",
                    source.display(),
                    temp.display()
                ),
            ));
        }
    };
    std::fs::copy(source, temp)
        .and_then(|_| File::open(temp)?.sync_all())
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot copy {} to {}: {e}",
                    source.display(),
                    temp.display()
                ),
            )
        })?;
    Ok(Linked::Copied(refused))
}

/// Whether a failed `link(2)` means this filesystem cannot link these
/// files (EXDEV, EPERM, ENOTSUP/ENOSYS, EMLINK) rather than a real error.
fn link_impossible(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::CrossesDevices
            | ErrorKind::PermissionDenied
            | ErrorKind::Unsupported
            | ErrorKind::TooManyLinks
    )
}

/// Reads `path` whole if it holds at most `max_bytes`, `Ok(None)` if it
/// holds more. Counts while reading rather than trusting the size on disk:
/// a pipe, a device (`/dev/zero`) or a file that grows delivers more than
/// its metadata says.
pub async fn read_at_most(path: &Path, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let hint = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(hint.min(max_bytes) as usize + 1);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
    Ok((bytes.len() as u64 <= max_bytes).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Across filesystems (tmpfs `/dev/shm` and the temp dir here) `link(2)`
    /// fails with EXDEV: the flat copy falls back to a full, separate copy,
    /// and a target of the same size is then left alone.
    #[test]
    fn a_flat_copy_across_filesystems_is_a_full_copy() {
        let Ok(other_fs) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm");
            return;
        };
        let here = tempfile::tempdir().unwrap();
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        if dev(other_fs.path()) == dev(here.path()) {
            eprintln!("skipped: /dev/shm and the temp dir are one filesystem");
            return;
        }
        let source = other_fs
            .path()
            .join("wget--1.25.0.arm64_tahoe.bottle.tar.gz");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let target = here.path().join("wget-1.25.0.arm64_tahoe.bottle.tar.gz");
        let temp = here.path().join("wget.part");

        match link_or_copy(&source, &target, &temp).unwrap() {
            Linked::Copied(reason) => assert_eq!(reason.kind(), ErrorKind::CrossesDevices),
            other => panic!("expected a full copy, got {other:?}"),
        }
        assert!(std::fs::read(&temp).unwrap() == bytes, "the copy differs");
        assert_ne!(dev(&temp), dev(&source));

        std::fs::rename(&temp, &target).unwrap();
        assert!(matches!(
            link_or_copy(&source, &target, &temp).unwrap(),
            Linked::AlreadyThere
        ));
        assert!(!temp.exists());
    }
}

//! Writing one bottle into a directory: a temp file in `.bottlesync/tmp`
//! (same filesystem), fsynced, then renamed into place by
//! `durable_rename::Publisher`. Two shapes:
//! - [`LocalUpload`], bytes in order: chunks are gathered (not copied) into
//!   batches of [`WRITE_BATCH`] and written by the blocking pool while the
//!   caller goes on reading the socket (one batch in flight);
//! - [`LocalParts`], a segmented download: each segment's bytes are written
//!   at their offset (`pwrite`), and read back once in order for hashing.
//!
//! Both ask the kernel to start writing back every [`WRITEBACK_STEP`]
//! bytes (`sync_file_range` on Linux), so the fsync before the rename has
//! little left to do.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;

use bottlesync_core::error::{Error, Result};
use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::ports::store::{PartsUpload, Upload};

use super::durable_rename::Publisher;

/// Bytes gathered before one write call: a 10 GB bottle is ~10,000 calls.
pub const WRITE_BATCH: usize = 1024 * 1024;
/// Written bytes between two writeback requests.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// The temp file of one upload, removed unless it was published.
struct TempFile {
    publisher: Publisher,
    key: ObjectKey,
    path: Option<PathBuf>,
    file: Arc<File>,
}

impl TempFile {
    fn create(
        publisher: &Publisher,
        key: &ObjectKey,
        path: PathBuf,
        size: Option<u64>,
    ) -> Result<Self> {
        let err = |e: std::io::Error| {
            Error::store(
                publisher.root().display().to_string(),
                format!("cannot create {}: {e}", path.display()),
            )
        };
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(err)?;
        if let Some(size) = size {
            // Holes now, so segments land at their offsets in any order.
            file.set_len(size).map_err(err)?;
        }
        Ok(TempFile {
            publisher: publisher.clone(),
            key: key.clone(),
            path: Some(path),
            file: Arc::new(file),
        })
    }

    fn err(&self, problem: impl std::fmt::Display) -> Error {
        Error::store(self.publisher.root().display().to_string(), problem)
    }

    /// fsync, then the rename into place (and the directories' fsyncs).
    async fn publish(mut self) -> Result<()> {
        let file = self.file.clone();
        let synced = tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| self.err(e))?;
        if let Err(e) = synced {
            return Err(self.err(format!("cannot sync {}: {e}", self.key)));
        }
        let temp = self.path.take().expect("not yet published");
        let result = self.publisher.publish(&temp, &self.key).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result
    }

    async fn remove(mut self) {
        if let Some(path) = self.path.take() {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Asks the kernel to start writing `offset..offset + len` to disk, without
/// waiting (a hint: failures are ignored, the fsync at commit decides).
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the call only schedules I/O.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Writes `chunks` at `offset` (blocking).
fn write_chunks_at(file: &File, mut offset: u64, chunks: &[Bytes]) -> std::io::Result<()> {
    for chunk in chunks {
        file.write_all_at(chunk, offset)?;
        offset += chunk.len() as u64;
    }
    Ok(())
}

/// Bytes in order into a temp file.
pub struct LocalUpload {
    temp: TempFile,
    batch: Vec<Bytes>,
    batch_bytes: usize,
    /// Bytes handed to the blocking pool (written, or being written).
    flushed: u64,
    written: u64,
    /// Where the last writeback request ended.
    written_back: u64,
    in_flight: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalUpload {
    pub(crate) fn create(publisher: &Publisher, key: &ObjectKey, path: PathBuf) -> Result<Self> {
        Ok(LocalUpload {
            temp: TempFile::create(publisher, key, path, None)?,
            batch: Vec::new(),
            batch_bytes: 0,
            flushed: 0,
            written: 0,
            written_back: 0,
            in_flight: None,
        })
    }

    async fn wait_in_flight(&mut self) -> Result<()> {
        if let Some(write) = self.in_flight.take() {
            write.await.map_err(|e| self.temp.err(e))?.map_err(|e| {
                self.temp
                    .err(format!("cannot write {}: {e}", self.temp.key))
            })?;
        }
        Ok(())
    }

    /// Hands the batch to the blocking pool once the previous one is done.
    async fn flush(&mut self) -> Result<()> {
        self.wait_in_flight().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.batch);
        let offset = self.flushed;
        let len = self.batch_bytes as u64;
        self.flushed += len;
        self.batch_bytes = 0;
        let writeback = (self.flushed - self.written_back >= WRITEBACK_STEP).then(|| {
            let range = (self.written_back, self.flushed - self.written_back);
            self.written_back = self.flushed;
            range
        });
        let file = self.temp.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_chunks_at(&file, offset, &chunks)?;
            if let Some((from, len)) = writeback {
                start_writeback(&file, from, len);
            }
            Ok(())
        }));
        Ok(())
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        self.batch_bytes += chunk.len();
        self.batch.push(chunk);
        if self.batch_bytes >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn restart(&mut self) -> Result<()> {
        self.wait_in_flight().await?;
        self.batch.clear();
        self.batch_bytes = 0;
        let file = self.temp.file.clone();
        tokio::task::spawn_blocking(move || file.set_len(0))
            .await
            .map_err(|e| self.temp.err(e))?
            .map_err(|e| {
                self.temp
                    .err(format!("cannot restart {}: {e}", self.temp.key))
            })?;
        self.flushed = 0;
        self.written = 0;
        self.written_back = 0;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush().await?;
        self.wait_in_flight().await?;
        let LocalUpload { temp, .. } = *self;
        temp.publish().await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if let Some(write) = self.in_flight.take() {
            let _ = write.await;
        }
        let LocalUpload { temp, .. } = *self;
        temp.remove().await;
        Ok(())
    }
}

/// Segments at their offsets in a temp file of the bottle's size.
pub struct LocalParts {
    temp: TempFile,
}

impl LocalParts {
    pub(crate) fn create(
        publisher: &Publisher,
        key: &ObjectKey,
        path: PathBuf,
        size: u64,
    ) -> Result<Self> {
        Ok(LocalParts {
            temp: TempFile::create(publisher, key, path, Some(size))?,
        })
    }
}

#[async_trait]
impl PartsUpload for LocalParts {
    fn max_segment(&self) -> Option<u64> {
        None
    }

    async fn write_at(&self, offset: u64, chunks: Vec<Bytes>) -> Result<()> {
        let file = self.temp.file.clone();
        tokio::task::spawn_blocking(move || write_chunks_at(&file, offset, &chunks))
            .await
            .map_err(|e| self.temp.err(e))?
            .map_err(|e| {
                self.temp
                    .err(format!("cannot write {} at {offset}: {e}", self.temp.key))
            })?;
        Ok(())
    }

    async fn read_back(&self, offset: u64, len: usize) -> Result<Bytes> {
        let file = self.temp.file.clone();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
            let mut buffer = vec![0u8; len];
            file.read_exact_at(&mut buffer, offset)?;
            // The bytes are on their way to the hash: have them written out
            // too, so the fsync at commit is short.
            start_writeback(&file, offset, len as u64);
            Ok(Bytes::from(buffer))
        });
        read.await.map_err(|e| self.temp.err(e))?.map_err(|e| {
            self.temp.err(format!(
                "cannot read back {} at {offset}: {e}",
                self.temp.key
            ))
        })
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.temp.publish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.temp.remove().await;
        Ok(())
    }
}

//! The files of a directory mirror as `serve` reads them, off the async
//! runtime with as few trips through tokio's blocking pool as possible
//! (`loadtest/bench/serve.sh`: five trips per small request cost ~40% of
//! nginx's rate):
//! - [`lookup`] is ONE blocking call: open the file, `fstat` the open
//!   descriptor (size, time, ETag), check that its real path stays inside
//!   the root and out of `.bottlesync/`, and read a small file whole;
//! - [`body`] streams a bigger file from one blocking reader loop per
//!   response, a small bounded channel ahead of the socket (chunk and depth
//!   keep 64 concurrent downloads under 64 MiB of RSS), or, when many
//!   loops already hold threads, one blocking trip per chunk.
//!
//! The S3 root does not come here: it goes through the `BlobStore` port.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{Semaphore, mpsc};

use bottlesync_core::model::key::ObjectKey;
use bottlesync_core::ports::store::{INTERNAL_PREFIX, ObjectMeta};

/// Files up to this size are read whole by [`lookup`]: one blocking trip
/// per request, the body one `Bytes`.
pub const WHOLE_FILE_LIMIT: u64 = 128 * 1024;

/// One read of a streamed body. With hyper's write queue (~400 KiB) and
/// [`READ_AHEAD`] chunks waiting, a download holds under 1 MiB.
const READ_CHUNK: usize = 128 * 1024;

/// Chunks a reader loop may have read before the socket takes them.
const READ_AHEAD: usize = 1;

/// Reader loops that may hold a blocking thread at once (tokio's pool has
/// 512): beyond them a body reads one chunk per blocking trip, so slow
/// clients can never starve the lookups of new requests.
const READER_LOOPS: usize = 192;

static READER_PERMITS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(READER_LOOPS)));

/// What [`lookup`] found.
pub enum Lookup {
    Found(Found),
    Missing,
    /// Resolves outside the root or into `.bottlesync/`.
    Refused,
    /// Not readable (permissions) or the disk failed: said in the message.
    Failed(String),
}

pub struct Found {
    pub meta: ObjectMeta,
    pub content: Content,
}

pub enum Content {
    /// The whole file (at most [`WHOLE_FILE_LIMIT`]), read with the lookup.
    Whole(Bytes),
    /// The open file, to stream with [`body`] (or not read, for HEAD).
    Open(File),
}

/// Opens `root/key` and describes it, in one blocking call. `read_small`:
/// read a file of at most [`WHOLE_FILE_LIMIT`] bytes whole (a GET).
pub async fn lookup(root: &Path, key: &ObjectKey, read_small: bool) -> Lookup {
    let root = root.to_path_buf();
    let path = root.join(key.as_str());
    match tokio::task::spawn_blocking(move || lookup_blocking(&root, &path, read_small)).await {
        Ok(found) => found,
        Err(e) => Lookup::Failed(format!("the lookup task failed: {e}")),
    }
}

fn lookup_blocking(root: &Path, path: &Path, read_small: bool) -> Lookup {
    let file = match open_nonblocking(path) {
        Ok(file) => file,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Lookup::Missing;
        }
        Err(e) => return Lookup::Failed(format!("cannot open {}: {e}", path.display())),
    };
    match real_path(&file, path) {
        Some(real) if inside(root, &real) => {}
        Some(_) => return Lookup::Refused,
        None => return Lookup::Missing,
    }
    let stat = match file.metadata() {
        Ok(stat) if stat.is_file() => stat,
        Ok(_) => return Lookup::Missing,
        Err(e) => return Lookup::Failed(format!("cannot stat {}: {e}", path.display())),
    };
    let modified = stat.modified().ok();
    // The same ETag as `LocalStore::stat` (as nginx does: the modification
    // time and the size), so the two views of a directory agree.
    let nanos = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let meta = ObjectMeta {
        size: stat.len(),
        last_modified: modified,
        etag: Some(format!("\"{nanos:x}-{:x}\"", stat.len())),
        sha256: None,
    };
    if !read_small || meta.size > WHOLE_FILE_LIMIT {
        return Lookup::Found(Found {
            meta,
            content: Content::Open(file),
        });
    }
    let mut whole = Vec::with_capacity(meta.size as usize);
    // `read_to_end` reads into the spare capacity: nothing is zeroed first.
    match (&file).take(meta.size).read_to_end(&mut whole) {
        Ok(_) => Lookup::Found(Found {
            meta,
            content: Content::Whole(Bytes::from(whole)),
        }),
        Err(e) => Lookup::Failed(format!("cannot read {}: {e}", path.display())),
    }
}

/// Opening never blocks: a FIFO planted in the mirror opens at once (and
/// is then no regular file: 404) instead of holding a thread for a writer.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Where the open file really is, every symlink resolved: on Linux the
/// descriptor's own link in /proc (one `readlink`, and it is the file
/// opened, not a name that may have changed since); elsewhere the path
/// canonicalized.
fn real_path(file: &File, path: &Path) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            return Some(real);
        }
    }
    let _ = file;
    std::fs::canonicalize(path).ok()
}

/// `real` is below `root` (canonical) and not in `.bottlesync/`.
fn inside(root: &Path, real: &Path) -> bool {
    match real.strip_prefix(root) {
        Ok(rest) => {
            let first = rest.components().next();
            first.is_some() && first != Some(Component::Normal(INTERNAL_PREFIX.as_ref()))
        }
        Err(_) => false,
    }
}

/// Bytes `first..first + len` of `file`, as a stream for the response.
/// A file that ends early (truncated while served) ends the stream with an
/// error naming `shown`: the client gets a short body, the server goes on.
pub fn body(
    file: File,
    first: u64,
    len: u64,
    shown: String,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    match READER_PERMITS.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                read_loop(file, first, len, &shown, &sender)
            });
        }
        Err(_) => {
            tokio::spawn(read_per_trip(file, first, len, shown, sender));
        }
    }
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}

type Sender = mpsc::Sender<std::io::Result<Bytes>>;

/// The buffers of one response, back from the socket once sent: a fresh
/// 128 KiB allocation per chunk costs page faults and zeroing (perf: ~5% of
/// a big download).
#[derive(Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut pool| pool.pop());
        let mut buffer = reused.unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        buffer.clear();
        buffer
    }
}

/// A chunk in flight; its buffer goes back to the pool when hyper is done.
struct PooledChunk {
    buffer: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        // One spare: a pool as deep as the chunks in flight would keep
        // every response at its peak (64 downloads: 64 MiB of RSS).
        if let Ok(mut pool) = self.pool.0.lock()
            && pool.is_empty()
        {
            pool.push(std::mem::take(&mut self.buffer));
        }
    }
}

/// One chunk of at most [`READ_CHUNK`] from the file's current position.
fn read_chunk(
    file: &mut File,
    left: u64,
    shown: &str,
    pool: &BufferPool,
) -> std::io::Result<Bytes> {
    let want = left.min(READ_CHUNK as u64);
    let mut buffer = pool.take();
    // Into the spare capacity: nothing is zeroed first.
    let got = Read::by_ref(file).take(want).read_to_end(&mut buffer)?;
    if got == 0 {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            format!("{shown} ended {left} bytes early (truncated while served)"),
        ));
    }
    Ok(Bytes::from_owner(PooledChunk {
        buffer,
        pool: pool.clone(),
    }))
}

/// The reader loop: reads ahead of the socket while the channel has room;
/// stops when the client is gone (the channel closed).
fn read_loop(mut file: File, first: u64, len: u64, shown: &str, sender: &Sender) {
    if let Err(e) = file.seek(SeekFrom::Start(first)) {
        let _ = sender.blocking_send(Err(e));
        return;
    }
    let pool = BufferPool::default();
    let mut left = len;
    while left > 0 {
        let chunk = read_chunk(&mut file, left, shown, &pool);
        let failed = chunk.is_err();
        if let Ok(chunk) = &chunk {
            left -= chunk.len() as u64;
        }
        if sender.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}

/// The same without holding a thread: one blocking trip per chunk, each
/// started only once the channel has room.
async fn read_per_trip(file: File, first: u64, len: u64, shown: String, sender: Sender) {
    let shown = Arc::new(shown);
    let pool = BufferPool::default();
    let mut file = Some(file);
    let mut left = len;
    let mut position = Some(first);
    while left > 0 {
        let Ok(permit) = sender.reserve().await else {
            return; // the client is gone
        };
        let mut open = file.take().expect("the file comes back from each trip");
        let seek = position.take();
        let (name, pool) = (shown.clone(), pool.clone());
        let trip = tokio::task::spawn_blocking(move || {
            let chunk = match seek {
                Some(at) => open
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| read_chunk(&mut open, left, &name, &pool)),
                None => read_chunk(&mut open, left, &name, &pool),
            };
            (open, chunk)
        })
        .await;
        let chunk = match trip {
            Ok((open, chunk)) => {
                file = Some(open);
                chunk
            }
            Err(e) => Err(std::io::Error::other(format!("the read task failed: {e}"))),
        };
        let failed = chunk.is_err();
        if let Ok(chunk) = &chunk {
            left -= chunk.len() as u64;
        }
        permit.send(chunk);
        if failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_below_the_root_and_outside_bookkeeping_are_inside() {
        let root = Path::new("/srv/mirror");
        assert!(inside(root, Path::new("/srv/mirror/bottles/a.tar.gz")));
        assert!(inside(root, Path::new("/srv/mirror/api/x.json")));
        assert!(!inside(root, Path::new("/srv/mirror")));
        assert!(!inside(root, Path::new("/srv/mirror2/bottles/a.tar.gz")));
        assert!(!inside(root, Path::new("/srv/secret")));
        assert!(!inside(root, Path::new("/srv/mirror/.bottlesync/lock")));
    }
}

//! A directory's file bodies sent with `sendfile(2)` on a plain HTTP/1.1
//! connection: the page cache goes to the socket in the kernel, with no
//! copy through this process (nginx's `sendfile on`; a read into a buffer
//! and a write from it cost twice the copying, `loadtest/bench/serve.sh`).
//!
//! hyper writes only what a body yields, as memory. So the body yields
//! stand-in chunks, slices of one static buffer that is never read, and
//! queues, in the same order, which bytes of which file each stands for;
//! the connection's socket ([`super::connections::ConnectionIo`]) sends
//! that file range when hyper hands it a stand-in slice. hyper keeps body
//! chunks as they are (vectored writes, set on the connection) and writes
//! one HTTP/1.1 response at a time, in order. A stand-in slice that does
//! not match the head of the queue ends the connection: never zeros for
//! bytes.
//!
//! The file is the one `mirror_dir::lookup` opened and confined (the
//! descriptor, not the path): a symlink swapped in later is never followed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, IoSlice};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use tokio::net::TcpStream;

/// The most one stand-in chunk (so one `sendfile` call) covers: one call
/// reads at most this much from disk on a runtime thread when the page
/// cache misses (nginx's `sendfile_max_chunk` is 2 MiB).
const FILE_CHUNK: usize = 1024 * 1024;

/// The stand-in chunks' memory: zeros in .bss, never read or written, so
/// never resident.
static STAND_IN: [u8; FILE_CHUNK] = [0; FILE_CHUNK];

/// One connection's file ranges, in the order its responses yield them.
#[derive(Clone, Default)]
pub struct FileSends(Arc<Mutex<VecDeque<FileRange>>>);

struct FileRange {
    file: Arc<File>,
    offset: u64,
    left: usize,
    shown: Arc<str>,
}

impl FileSends {
    /// Bytes `first..first + len` of `file` as stand-in chunks, each
    /// queued for the socket as it is yielded. `shown` names the file in
    /// a warning when it ends early (truncated while served).
    pub fn body(
        &self,
        file: File,
        first: u64,
        len: u64,
        shown: String,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let (sends, file, shown) = (self.clone(), Arc::new(file), Arc::<str>::from(shown));
        futures::stream::unfold((first, len), move |(offset, left)| {
            let chunk = left.min(FILE_CHUNK as u64) as usize;
            let queued = chunk > 0
                && sends
                    .0
                    .lock()
                    .map(|mut queue| {
                        queue.push_back(FileRange {
                            file: file.clone(),
                            offset,
                            left: chunk,
                            shown: shown.clone(),
                        })
                    })
                    .is_ok();
            let next = (offset + chunk as u64, left - chunk as u64);
            std::future::ready(match (chunk, queued) {
                (0, _) => None,
                (_, true) => Some((Ok(Bytes::from_static(&STAND_IN[..chunk])), next)),
                (_, false) => Some((
                    Err(std::io::Error::other("the send queue is poisoned")),
                    (0, 0),
                )),
            })
        })
    }

    /// `slice` is (the rest of) a stand-in chunk.
    pub(crate) fn stands_for_file(&self, slice: &IoSlice<'_>) -> bool {
        let start = STAND_IN.as_ptr() as usize;
        let at = slice.as_ptr() as usize;
        !slice.is_empty() && (start..start + FILE_CHUNK).contains(&at)
    }

    /// Sends from the file range at the head of the queue, which must have
    /// exactly `expected` bytes left (what the stand-in slice has left).
    pub(crate) fn poll_send(
        &self,
        tcp: &TcpStream,
        cx: &mut Context<'_>,
        expected: usize,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let mut queue = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("the send queue is poisoned"))?;
            let Some(range) = queue.front_mut() else {
                return Poll::Ready(Err(out_of_step("nothing queued")));
            };
            if range.left != expected {
                return Poll::Ready(Err(out_of_step(&format!(
                    "{} bytes queued, {expected} written",
                    range.left
                ))));
            }
            match tcp.try_io(tokio::io::Interest::WRITABLE, || send_file(tcp, range)) {
                Ok(0) => {
                    let e = std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "{} ended {} bytes early (truncated while served)",
                            range.shown, range.left
                        ),
                    );
                    tracing::warn!(key = %range.shown, error = %e, "reading failed mid-response: the client gets a short body");
                    return Poll::Ready(Err(e));
                }
                Ok(sent) => {
                    range.offset += sent as u64;
                    range.left -= sent;
                    if range.left == 0 {
                        queue.pop_front();
                    }
                    return Poll::Ready(Ok(sent));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => {
                    if !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
                        tracing::warn!(key = %range.shown, error = %e, "reading failed mid-response: the client gets a short body");
                    }
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

fn out_of_step(what: &str) -> std::io::Error {
    tracing::error!(
        "a file body is out of step with its send queue ({what}): closing the connection"
    );
    std::io::Error::other(format!("file body out of step with its send queue: {what}"))
}

#[cfg(target_os = "linux")]
fn send_file(tcp: &TcpStream, range: &FileRange) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut offset = libc::off_t::try_from(range.offset)
        .map_err(|_| std::io::Error::other("file offset out of range"))?;
    // SAFETY: both descriptors are open for the call (borrowed), and
    // `offset` is a valid off_t the call updates.
    let sent = unsafe {
        libc::sendfile(
            tcp.as_raw_fd(),
            range.file.as_raw_fd(),
            &mut offset,
            range.left,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(not(target_os = "linux"))]
fn send_file(_: &TcpStream, _: &FileRange) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        ErrorKind::Unsupported,
        "sendfile is used on Linux only",
    ))
}

/// Whether this platform sends file bodies with [`FileSends`].
pub const SUPPORTED: bool = cfg!(target_os = "linux");

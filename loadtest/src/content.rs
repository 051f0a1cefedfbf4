//! Bottle bytes, generated on demand instead of stored.
//!
//! A bottle of any size (up to many GiB) costs no memory: its content is a
//! sequence of 64 KiB chunks, each a window of one shared 1 MiB random pool
//! (rotated by a per-bottle offset), with the bottle id and the chunk index
//! stamped into the first 16 bytes so that no two bottles and no two chunks
//! are alike. Serving hands out `'static` slices of the pool (zero copy), so
//! the stand-in streams at memcpy speed and is never a benchmark's bottleneck.

use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::prng::{SplitMix64, mix64};

/// Length of one content chunk; every chunk starts with a 16-byte stamp.
pub const CHUNK_LEN: usize = 64 * 1024;
const POOL_LEN: usize = 1 << 20;
const STAMP_LEN: usize = 16;
/// How far the pool window moves from one chunk to the next (odd, so windows
/// do not repeat with a short period).
const CHUNK_STRIDE: u64 = 40_503;

/// The shared random pool, with the first chunk repeated at its end so that a
/// chunk window never wraps.
fn pool() -> &'static [u8] {
    static POOL: OnceLock<&'static [u8]> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut rng = SplitMix64::new(0x0b07_71e5_7a4d_1a11);
        let mut bytes = Vec::with_capacity(POOL_LEN + CHUNK_LEN);
        while bytes.len() < POOL_LEN {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        bytes.extend_from_within(0..CHUNK_LEN);
        Box::leak(bytes.into_boxed_slice())
    })
}

/// The content of one bottle: `size` deterministic bytes derived from `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BottleContent {
    pub id: u64,
    pub size: u64,
}

/// One contiguous run of content bytes: part of a chunk stamp, or a pool slice.
enum Piece {
    Stamp([u8; STAMP_LEN], Range<usize>),
    Pool(&'static [u8]),
}

impl Piece {
    fn as_slice(&self) -> &[u8] {
        match self {
            Piece::Stamp(stamp, range) => &stamp[range.clone()],
            Piece::Pool(slice) => slice,
        }
    }
}

impl BottleContent {
    pub fn new(id: u64, size: u64) -> Self {
        BottleContent { id, size }
    }

    fn chunk_origin(&self, chunk: u64) -> usize {
        let rotation = mix64(self.id) % POOL_LEN as u64;
        ((rotation + (chunk % POOL_LEN as u64) * CHUNK_STRIDE) % POOL_LEN as u64) as usize
    }

    fn stamp(&self, chunk: u64) -> [u8; STAMP_LEN] {
        let mut stamp = [0u8; STAMP_LEN];
        stamp[..8].copy_from_slice(&self.id.to_le_bytes());
        stamp[8..].copy_from_slice(&chunk.to_le_bytes());
        stamp
    }

    /// The longest run of bytes starting at `pos` (< end) that is one piece.
    fn piece_at(&self, pos: u64, end: u64) -> Piece {
        let chunk = pos / CHUNK_LEN as u64;
        let within = (pos % CHUNK_LEN as u64) as usize;
        let chunk_left = CHUNK_LEN - within;
        let len = (end - pos).min(chunk_left as u64) as usize;
        if within < STAMP_LEN {
            let to = (within + len).min(STAMP_LEN);
            Piece::Stamp(self.stamp(chunk), within..to)
        } else {
            let start = self.chunk_origin(chunk) + within;
            Piece::Pool(&pool()[start..start + len])
        }
    }

    fn for_each_piece(&self, range: Range<u64>, mut f: impl FnMut(&[u8])) {
        let mut pos = range.start;
        while pos < range.end {
            let piece = self.piece_at(pos, range.end);
            let slice = piece.as_slice();
            f(slice);
            pos += slice.len() as u64;
        }
    }

    /// Writes the content bytes `offset..offset + out.len()` into `out`.
    ///
    /// Panics when that range goes past the end of the bottle.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let end = offset + out.len() as u64;
        assert!(
            end <= self.size,
            "range {offset}..{end} past bottle size {}",
            self.size
        );
        let mut written = 0;
        self.for_each_piece(offset..end, |slice| {
            out[written..written + slice.len()].copy_from_slice(slice);
            written += slice.len();
        });
    }

    /// The whole content in memory: for small bottles in tests only.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size as usize];
        self.fill(0, &mut out);
        out
    }

    /// The SHA-256 of the content, lowercase hex. Costs one pass over the
    /// bytes (about 1 s per GiB with SHA-NI), no memory.
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        self.for_each_piece(0..self.size, |slice| hasher.update(slice));
        hex::encode(hasher.finalize())
    }

    /// The content bytes in `range` as zero-copy `Bytes` pieces (at most one
    /// chunk long each), ready to be streamed as body frames.
    pub fn pieces(&self, range: Range<u64>) -> Pieces {
        assert!(range.end <= self.size, "range past bottle size");
        Pieces {
            content: *self,
            pos: range.start,
            end: range.end,
        }
    }
}

/// Iterator of body frames over a byte range of a bottle; see
/// [`BottleContent::pieces`].
#[derive(Clone, Debug)]
pub struct Pieces {
    content: BottleContent,
    pos: u64,
    end: u64,
}

impl Pieces {
    /// Absolute offset (in the bottle) of the next byte this iterator yields.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Iterator for Pieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let bytes = match self.content.piece_at(self.pos, self.end) {
            Piece::Stamp(stamp, range) => Bytes::copy_from_slice(&stamp[range]),
            Piece::Pool(slice) => Bytes::from_static(slice),
        };
        self.pos += bytes.len() as u64;
        Some(bytes)
    }
}

/// Hashes many bottles, largest first, on all cores. Returns the hex digests
/// in input order.
pub fn sha256_all(contents: &[BottleContent]) -> Vec<String> {
    let total: u64 = contents.iter().map(|c| c.size).sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(contents.len());
    if threads <= 1 || total < 8 << 20 {
        return contents.iter().map(BottleContent::sha256_hex).collect();
    }
    let mut order: Vec<usize> = (0..contents.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(contents[i].size));
    let next = AtomicUsize::new(0);
    let mut digests = vec![String::new(); contents.len()];
    let results: Vec<Vec<(usize, String)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = order.get(k) else { break };
                        done.push((i, contents[i].sha256_hex()));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hashing thread panicked"))
            .collect()
    });
    for (i, digest) in results.into_iter().flatten() {
        digests[i] = digest;
    }
    digests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_fill_and_hash_agree() {
        let content = BottleContent::new(42, 3 * CHUNK_LEN as u64 + 123);
        let all = content.to_vec();
        let joined: Vec<u8> = content.pieces(0..content.size).flatten().collect();
        assert_eq!(all, joined);
        let mid: Vec<u8> = content.pieces(10..190_000).flatten().collect();
        assert_eq!(&all[10..190_000], &mid[..]);
        assert_eq!(content.sha256_hex(), hex::encode(Sha256::digest(&all)));
        assert_eq!(&all[..8], &42u64.to_le_bytes());
    }

    #[test]
    fn different_ids_differ() {
        let a = BottleContent::new(1, 1000).to_vec();
        let b = BottleContent::new(2, 1000).to_vec();
        assert_ne!(a, b);
        assert_ne!(a[16..], b[16..]);
    }

    #[test]
    fn parallel_hashes_match() {
        let contents: Vec<_> = (0..6).map(|i| BottleContent::new(i, 3 << 20)).collect();
        let expected: Vec<_> = contents.iter().map(BottleContent::sha256_hex).collect();
        assert_eq!(sha256_all(&contents), expected);
    }
}

//! Segmented downloads: a large bottle comes down as byte ranges over
//! several connections at once (registries and CDNs cap the rate of one
//! connection), each written at its place, and is hashed in order before
//! anything is visible at its final key. This is the policy (when, how many,
//! which ranges) and the in-order bookkeeping; the engine is
//! `bottlesync_worker::segmented`.

use crate::error::{Error, Result};

/// Bottles larger than this come down in segments of this size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Connections one bottle's segments share.
pub const DEFAULT_CONNECTIONS_PER_BOTTLE: usize = 4;
/// The smallest segment allowed: smaller ones cost a request each for
/// little gain (and S3 parts must be at least 5 MiB).
pub const MIN_SEGMENT_SIZE: u64 = 1024 * 1024;
/// The most connections one bottle may open.
pub const MAX_CONNECTIONS_PER_BOTTLE: usize = 32;

/// How large bottles are downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentPolicy {
    pub segment_size: u64,
    /// 1: one stream per bottle, never segmented.
    pub connections: usize,
}

impl Default for SegmentPolicy {
    fn default() -> Self {
        SegmentPolicy {
            segment_size: DEFAULT_SEGMENT_SIZE,
            connections: DEFAULT_CONNECTIONS_PER_BOTTLE,
        }
    }
}

impl SegmentPolicy {
    /// One stream per bottle (what every bottle got before segments).
    pub fn single_stream() -> Self {
        SegmentPolicy {
            connections: 1,
            ..SegmentPolicy::default()
        }
    }

    /// Checks settings named `size_name` and `connections_name` (a flag or
    /// an environment variable) for the error message.
    pub fn new(
        segment_size: u64,
        connections: usize,
        size_name: &str,
        connections_name: &str,
    ) -> Result<Self> {
        if segment_size < MIN_SEGMENT_SIZE {
            return Err(Error::config(
                size_name,
                format!("{segment_size} bytes: must be at least 1MiB"),
            ));
        }
        if connections == 0 || connections > MAX_CONNECTIONS_PER_BOTTLE {
            return Err(Error::config(
                connections_name,
                format!("{connections}: must be 1 to {MAX_CONNECTIONS_PER_BOTTLE}"),
            ));
        }
        Ok(SegmentPolicy {
            segment_size,
            connections,
        })
    }

    /// Whether a bottle of `size` bytes comes down in segments.
    pub fn applies_to(&self, size: u64) -> bool {
        self.connections > 1 && size > self.segment_size
    }

    /// The segments of a bottle of `size` bytes, each at most
    /// `segment_size` and at most `store_limit` (a store that must hold a
    /// segment in memory until it is hashed names its part size).
    pub fn segments(&self, size: u64, store_limit: Option<u64>) -> Vec<Segment> {
        let length = store_limit
            .map_or(self.segment_size, |limit| limit.min(self.segment_size))
            .max(1);
        (0..size.div_ceil(length))
            .map(|index| {
                let first = index * length;
                Segment {
                    index: index as usize,
                    first,
                    last: (first + length).min(size) - 1,
                }
            })
            .collect()
    }
}

/// Bytes `first..=last` of a bottle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    pub first: u64,
    pub last: u64,
}

impl Segment {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How much of each segment is written, and how far the in-order hashing
/// may go: from byte 0 up to the first byte not yet written (the head
/// segment's bytes are hashed while it still downloads, so the hashing
/// keeps pace instead of starting when whole segments are done).
#[derive(Debug)]
pub struct SegmentBook {
    segments: Vec<Segment>,
    /// Bytes written from each segment's start (a segment is written in
    /// order).
    written: Vec<u64>,
    /// Bytes hashed from byte 0.
    hashed_to: u64,
}

impl SegmentBook {
    pub fn new(segments: Vec<Segment>) -> Self {
        SegmentBook {
            written: vec![0; segments.len()],
            segments,
            hashed_to: 0,
        }
    }

    /// `bytes` more of segment `index` are written.
    pub fn record_written(&mut self, index: usize, bytes: u64) {
        self.written[index] = (self.written[index] + bytes).min(self.segments[index].len());
    }

    /// The first byte not yet written (everything before it is).
    pub fn frontier(&self) -> u64 {
        let mut index = self.segment_at(self.hashed_to);
        while index < self.segments.len() {
            let segment = self.segments[index];
            if self.written[index] < segment.len() {
                return segment.first + self.written[index];
            }
            index += 1;
        }
        self.total()
    }

    /// The next bytes to hash, `(offset, length)`: at most `max`, and at
    /// least `min` unless they end where written bytes end at a segment's
    /// or the bottle's end.
    pub fn next_to_hash(&self, min: u64, max: u64) -> Option<(u64, u64)> {
        let frontier = self.frontier();
        let ready = frontier.saturating_sub(self.hashed_to);
        if ready == 0 {
            return None;
        }
        let at_boundary = frontier == self.total()
            || self
                .segments
                .get(self.segment_at(frontier))
                .is_some_and(|s| s.first == frontier);
        (ready >= min || at_boundary).then(|| (self.hashed_to, ready.min(max)))
    }

    /// `bytes` more were hashed (the range `next_to_hash` gave).
    pub fn mark_hashed(&mut self, bytes: u64) {
        self.hashed_to += bytes;
    }

    /// Segments hashed whole.
    pub fn hashed(&self) -> usize {
        self.segment_at(self.hashed_to)
    }

    pub fn all_hashed(&self) -> bool {
        self.hashed_to == self.total()
    }

    /// Whether segment `index` may start: at most `window` segments ahead of
    /// the first one not hashed whole, which bounds what a store keeping
    /// segments in memory holds.
    pub fn may_start(&self, index: usize, window: usize) -> bool {
        index < self.hashed() + window.max(1)
    }

    fn total(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.last + 1)
    }

    /// The index of the segment holding byte `offset` (`len()` past the end).
    fn segment_at(&self, offset: u64) -> usize {
        self.segments.partition_point(|s| s.last < offset)
    }
}

/// `64MiB`, `1GiB`, `512KiB`, `1048576` (bytes); `MB`/`GB` are powers of
/// 10. For flags and environment variables named `name`.
pub fn parse_size(name: &str, text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(Error::config(
                name,
                format!("{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"),
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| Error::config(name, format!("{text:?}: not a size such as 64MiB")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_bottle_exactly_once() {
        let policy = SegmentPolicy {
            segment_size: 10,
            connections: 4,
        };
        for size in [11u64, 19, 20, 21, 99, 100, 101] {
            let segments = policy.segments(size, None);
            assert_eq!(segments[0].first, 0);
            assert_eq!(segments.last().unwrap().last, size - 1, "size {size}");
            for pair in segments.windows(2) {
                assert_eq!(pair[1].first, pair[0].last + 1);
                assert_eq!(pair[1].index, pair[0].index + 1);
            }
            assert!(segments.iter().all(|s| s.len() <= 10));
        }
        let limited = policy.segments(100, Some(4));
        assert_eq!(limited.len(), 25);
        assert!(limited.iter().all(|s| s.len() == 4));
    }

    #[test]
    fn only_bottles_above_the_segment_size_with_several_connections_are_segmented() {
        let policy = SegmentPolicy {
            segment_size: 64,
            connections: 4,
        };
        assert!(!policy.applies_to(64));
        assert!(policy.applies_to(65));
        assert!(!SegmentPolicy::single_stream().applies_to(u64::MAX));
    }

    #[test]
    fn hashing_follows_the_written_bytes_in_order() {
        let policy = SegmentPolicy {
            segment_size: 10,
            connections: 2,
        };
        let mut book = SegmentBook::new(policy.segments(35, None));
        book.record_written(1, 10);
        book.record_written(2, 4);
        assert_eq!(book.next_to_hash(1, 100), None, "byte 0 is not written");
        assert!(book.may_start(1, 2) && !book.may_start(2, 2));
        book.record_written(0, 3);
        assert_eq!(book.next_to_hash(4, 100), None, "3 bytes: fewer than asked");
        assert_eq!(book.next_to_hash(1, 100), Some((0, 3)));
        book.mark_hashed(3);
        book.record_written(0, 7);
        // Segment 0 done, 1 done, 2 has 4: the frontier is 24.
        assert_eq!(book.frontier(), 24);
        assert_eq!(book.next_to_hash(1, 5), Some((3, 5)), "at most max");
        book.mark_hashed(5);
        assert_eq!(book.hashed(), 0);
        assert_eq!(book.next_to_hash(1, 100), Some((8, 16)));
        book.mark_hashed(16);
        assert_eq!(book.hashed(), 2);
        assert!(book.may_start(3, 2));
        book.record_written(2, 6);
        book.record_written(3, 5);
        // A segment's end is hashed even when it is less than `min`.
        assert_eq!(book.next_to_hash(1000, 100), Some((24, 11)));
        book.mark_hashed(11);
        assert!(book.all_hashed());
        assert_eq!(book.next_to_hash(1, 100), None);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = SegmentPolicy::new(1000, 4, "--segment-size", "--connections-per-bottle")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--segment-size") && e.contains("1MiB"), "{e}");
        let e = SegmentPolicy::new(DEFAULT_SEGMENT_SIZE, 0, "a", "--connections-per-bottle")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--connections-per-bottle"), "{e}");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("s", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("s", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("s", "5MB").unwrap(), 5_000_000);
        assert_eq!(parse_size("s", "4096").unwrap(), 4096);
        let e = parse_size("--segment-size", "64 furlongs")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--segment-size") && e.contains("furlongs"),
            "{e}"
        );
        assert!(parse_size("s", "MiB").is_err());
        assert!(parse_size("s", "99999999999999GiB").is_err());
    }
}

//! Fault injection, per bottle (keyed by sha256): the failures a mirror
//! meets on the real registry and storage, on demand and countable, so
//! retry, resume and verification logic can be tested.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A fault for one bottle. In JSON it is internally tagged by `kind`, e.g.
/// `{"kind":"status","code":503,"times":2}` or `{"kind":"corrupt"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The registry blob endpoint (GET and HEAD) answers `code` for the next
    /// `times` requests, then recovers.
    Status { code: u16, times: u32 },
    /// The registry blob endpoint answers 429 with `Retry-After:
    /// retry_after_secs` for the next `times` requests.
    TooManyRequests { retry_after_secs: u64, times: u32 },
    /// The storage host sends the full `Content-Length` but closes the
    /// connection after about half the body, for the next `times` GETs
    /// (ranged or not: half of the range asked for).
    Truncate { times: u32 },
    /// The storage host always serves the body with one byte changed (at
    /// offset `size / 2`), so its sha256 never matches.
    Corrupt,
    /// The storage host sends the body at about `bytes_per_sec`.
    Slow { bytes_per_sec: u64 },
    /// The registry blob endpoint drops the connection (TCP reset) before
    /// any response, for the next `times` requests.
    ResetConnection { times: u32 },
    /// The storage host ignores `Range` and always answers 200 with the
    /// whole body, like a server without range support.
    IgnoreRange,
    /// The storage host (not the registry) answers `code` with an S3-style
    /// XML error to the next `times` GETs that ask for a range starting
    /// past byte 0 (a resumed or segment request), then recovers; plain
    /// GETs and `bytes=0-...` are served.
    StorageStatus { code: u16, times: u32 },
}

/// What the registry blob endpoint must do instead of redirecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegistryFault {
    Status(u16),
    TooManyRequests { retry_after_secs: u64 },
    ResetConnection,
}

/// How the storage host must misbehave for one GET.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StorageFaults {
    /// Answer this status (an XML error) instead of the body.
    pub status: Option<u16>,
    pub truncate: bool,
    pub corrupt: bool,
    pub bytes_per_sec: Option<u64>,
}

/// The active faults; counted faults remove themselves when used up.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    faults: Mutex<HashMap<String, Fault>>,
}

/// Takes one use of a counted fault; true when it applies to this request.
fn use_once(times: &mut u32) -> bool {
    if *times == 0 {
        return false;
    }
    *times -= 1;
    true
}

impl FaultTable {
    /// Sets the fault of a bottle, replacing any earlier one.
    pub fn set(&self, sha256: &str, fault: Fault) {
        self.lock().insert(sha256.to_string(), fault);
    }

    pub fn clear(&self, sha256: &str) {
        self.lock().remove(sha256);
    }

    pub fn clear_all(&self) {
        self.lock().clear();
    }

    /// The active faults (what is left of counted ones), sorted by sha256.
    pub fn list(&self) -> Vec<(String, Fault)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The fault the registry blob endpoint applies to this request, if any.
    pub fn take_registry(&self, sha256: &str) -> Option<RegistryFault> {
        let mut faults = self.lock();
        let fault = faults.get_mut(sha256)?;
        let (applies, action) = match fault {
            Fault::Status { code, times } => (use_once(times), RegistryFault::Status(*code)),
            Fault::TooManyRequests {
                retry_after_secs,
                times,
            } => (
                use_once(times),
                RegistryFault::TooManyRequests {
                    retry_after_secs: *retry_after_secs,
                },
            ),
            Fault::ResetConnection { times } => (use_once(times), RegistryFault::ResetConnection),
            _ => return None,
        };
        if Self::used_up(fault) {
            faults.remove(sha256);
        }
        applies.then_some(action)
    }

    /// Whether the storage host ignores `Range` for this bottle.
    pub fn ignores_range(&self, sha256: &str) -> bool {
        matches!(self.lock().get(sha256), Some(Fault::IgnoreRange))
    }

    /// How the storage host serves this GET; `range_start` is the first
    /// byte of the range it asks for and serves (`None`: the whole body).
    pub fn take_storage(&self, sha256: &str, range_start: Option<u64>) -> StorageFaults {
        let mut faults = self.lock();
        let Some(fault) = faults.get_mut(sha256) else {
            return StorageFaults::default();
        };
        let result = match fault {
            Fault::Truncate { times } => StorageFaults {
                truncate: use_once(times),
                ..StorageFaults::default()
            },
            Fault::Corrupt => StorageFaults {
                corrupt: true,
                ..StorageFaults::default()
            },
            Fault::Slow { bytes_per_sec } => StorageFaults {
                bytes_per_sec: Some((*bytes_per_sec).max(1)),
                ..StorageFaults::default()
            },
            Fault::StorageStatus { code, times } if range_start.is_some_and(|start| start > 0) => {
                StorageFaults {
                    status: use_once(times).then_some(*code),
                    ..StorageFaults::default()
                }
            }
            _ => StorageFaults::default(),
        };
        if Self::used_up(fault) {
            faults.remove(sha256);
        }
        result
    }

    fn used_up(fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::Status { times: 0, .. }
                | Fault::TooManyRequests { times: 0, .. }
                | Fault::Truncate { times: 0 }
                | Fault::ResetConnection { times: 0 }
                | Fault::StorageStatus { times: 0, .. }
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fault>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out() {
        let table = FaultTable::default();
        table.set(
            "a",
            Fault::Status {
                code: 503,
                times: 2,
            },
        );
        assert_eq!(table.take_registry("a"), Some(RegistryFault::Status(503)));
        assert_eq!(table.take_storage("a", None), StorageFaults::default());
        assert_eq!(table.take_registry("a"), Some(RegistryFault::Status(503)));
        assert_eq!(table.take_registry("a"), None);
        assert!(table.list().is_empty());
        table.set("b", Fault::Corrupt);
        assert!(table.take_storage("b", None).corrupt);
        assert!(table.take_storage("b", None).corrupt);
        assert_eq!(table.take_registry("b"), None);
    }

    #[test]
    fn storage_status_hits_only_resumed_ranges_and_runs_out() {
        let table = FaultTable::default();
        table.set(
            "a",
            Fault::StorageStatus {
                code: 503,
                times: 2,
            },
        );
        let status = |start| table.take_storage("a", start).status;
        // The registry and the first plain or from-0 GETs are untouched.
        assert_eq!(table.take_registry("a"), None);
        assert_eq!(status(None), None);
        assert_eq!(status(Some(0)), None);
        assert_eq!(status(Some(10)), Some(503));
        assert_eq!(status(Some(1 << 30)), Some(503));
        assert!(table.list().is_empty(), "used up");
        assert_eq!(status(Some(10)), None);
    }

    #[test]
    fn ignore_range_is_permanent_and_storage_only() {
        let table = FaultTable::default();
        table.set("a", Fault::IgnoreRange);
        for _ in 0..3 {
            assert!(table.ignores_range("a"));
            assert_eq!(table.take_storage("a", Some(5)), StorageFaults::default());
        }
        assert_eq!(table.take_registry("a"), None);
        assert!(!table.ignores_range("b"));
        table.set("a", Fault::Corrupt);
        assert!(!table.ignores_range("a"));
    }

    #[test]
    fn truncate_applies_to_ranged_gets() {
        let table = FaultTable::default();
        table.set("a", Fault::Truncate { times: 1 });
        assert!(table.take_storage("a", Some(100)).truncate);
        assert!(!table.take_storage("a", Some(100)).truncate);
    }

    #[test]
    fn serde_form() {
        let fault: Fault =
            serde_json::from_str(r#"{"kind":"too_many_requests","retry_after_secs":2,"times":1}"#)
                .unwrap();
        assert_eq!(
            fault,
            Fault::TooManyRequests {
                retry_after_secs: 2,
                times: 1
            }
        );
        assert_eq!(
            serde_json::to_string(&Fault::Corrupt).unwrap(),
            r#"{"kind":"corrupt"}"#
        );
        let ignore: Fault = serde_json::from_str(r#"{"kind":"ignore_range"}"#).unwrap();
        assert_eq!(ignore, Fault::IgnoreRange);
        let status: Fault =
            serde_json::from_str(r#"{"kind":"storage_status","code":503,"times":3}"#).unwrap();
        assert_eq!(
            status,
            Fault::StorageStatus {
                code: 503,
                times: 3
            }
        );
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"kind":"storage_status","code":503,"times":3}"#
        );
    }
}

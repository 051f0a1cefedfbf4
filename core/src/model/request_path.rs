//! What `bottlesync serve` answers for a request path, decided without I/O:
//! the object key a path names (homebrew.md, "How clients use a mirror"),
//! or why it is refused; and the `Range` and conditional-request rules.
//!
//! ```text
//! /api/<path>                                     api/<path>
//! /bottles/<path>                                 bottles/<path> (percent-decoded: %40 -> @)
//! /v2/homebrew/core/<image>/manifests/<ref>       bottles/<image>/manifests/<ref>
//! /v2/homebrew/core/<image>/blobs/sha256:<sha>    the bottle bottles_hash.json names for <sha>
//! /healthz                                        "ok"
//! ```
//!
//! Nothing outside `api/` and `bottles/` is ever named: the raw path must
//! not hold an encoded `/` or `\` (`%2F`, `%5C`), and once decoded no
//! segment may be empty, `.` or `..`, nor hold a backslash or a control
//! character. Symlinks are the server's business (it sees the files).

use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;

use crate::model::digest::Sha256Digest;
use crate::model::key::ObjectKey;
use crate::model::layout::{API_DIR, BOTTLES_DIR};

/// The registry view `HOMEBREW_ARTIFACT_DOMAIN` clients request.
const REGISTRY_PREFIX: &str = "v2/homebrew/core/";

/// What a request path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorRequest {
    /// `GET /healthz`.
    Health,
    /// An object of the mirror, under `api/` or `bottles/`.
    Object(ObjectKey),
    /// A registry blob: the stored bottle with this sha256 (looked up in
    /// `bottles_hash.json`). `image` is as requested (`openssl/3`).
    Blob { image: String, sha256: Sha256Digest },
}

/// Why a request path is not served; each is a 4xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the path tries to leave the mirror or cannot be decoded.
    BadPath(String),
    /// 404: a well-formed path the mirror does not serve.
    NotServed,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadPath(_) => 400,
            Refusal::NotServed => 404,
        }
    }

    /// A short plain-text body.
    pub fn message(&self) -> String {
        match self {
            Refusal::BadPath(problem) => format!("bad request path: {problem}\n"),
            Refusal::NotServed => "not found\n".to_string(),
        }
    }
}

/// The request for `raw_path` (the path of the request target as sent,
/// still percent-encoded, without the query).
pub fn route(raw_path: &str) -> Result<MirrorRequest, Refusal> {
    let bad = |problem: &str| Err(Refusal::BadPath(problem.to_string()));
    let Some(rest) = raw_path.strip_prefix('/') else {
        return bad("does not start with '/'");
    };
    let lower = rest.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return bad("holds an encoded '/' or '\\'");
    }
    let Ok(decoded) = percent_decode_str(rest).decode_utf8() else {
        return bad("is not UTF-8 once decoded");
    };
    match decoded.as_ref() {
        "healthz" => return Ok(MirrorRequest::Health),
        "" => return Err(Refusal::NotServed),
        _ => {}
    }
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return bad("holds a control character or a backslash");
    }
    if decoded
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return bad("has an empty, '.' or '..' segment");
    }
    if let Some(registry) = decoded.strip_prefix(REGISTRY_PREFIX) {
        return registry_request(registry);
    }
    let top = decoded.split('/').next().unwrap_or_default();
    if (top == API_DIR || top == BOTTLES_DIR) && decoded.len() > top.len() {
        return ObjectKey::parse(&decoded)
            .map(MirrorRequest::Object)
            .map_err(|e| Refusal::BadPath(e.to_string()));
    }
    Err(Refusal::NotServed)
}

/// `<image>/manifests/<ref>` or `<image>/blobs/sha256:<sha>`; the image
/// may hold a `/` (`openssl/3`).
fn registry_request(path: &str) -> Result<MirrorRequest, Refusal> {
    if let Some((image, reference)) = path.rsplit_once("/manifests/")
        && !reference.contains('/')
    {
        return ObjectKey::parse(&format!("{BOTTLES_DIR}/{image}/manifests/{reference}"))
            .map(MirrorRequest::Object)
            .map_err(|e| Refusal::BadPath(e.to_string()));
    }
    if let Some((image, digest)) = path.rsplit_once("/blobs/")
        && let Some(hex) = digest.strip_prefix("sha256:")
    {
        let sha256 = Sha256Digest::parse(hex).map_err(Refusal::BadPath)?;
        return Ok(MirrorRequest::Blob {
            image: image.to_string(),
            sha256,
        });
    }
    Err(Refusal::NotServed)
}

/// The part of an object a `Range` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable single range: the whole object, 200.
    Whole,
    /// Bytes `first..=last`, 206.
    Part { first: u64, last: u64 },
    /// 416: no byte of the object is asked for.
    Unsatisfiable,
}

/// Applies a `Range` header value to an object of `size` bytes. Only one
/// `bytes=` range is honoured (`a-b`, `a-`, `-n`); a header this does not
/// understand, or a list of ranges, is ignored (RFC 9110 allows it) and
/// the whole object is sent.
pub fn byte_range(header: &str, size: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part {
                first: size.saturating_sub(n),
                last: size - 1,
            },
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return RangeAnswer::Whole;
            };
            let last = match last {
                "" => u64::MAX,
                text => match number(text) {
                    Some(last) if last >= first => last,
                    _ => return RangeAnswer::Whole,
                },
            };
            if first >= size {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part {
                    first,
                    last: last.min(size - 1),
                }
            }
        }
    }
}

/// Whether a conditional GET or HEAD is answered 304 (RFC 9110 13.2.2):
/// `If-None-Match` decides when present (a weak comparison, `*` matches
/// anything); otherwise `If-Modified-Since`, to the second, when the object's
/// time is known.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<SystemTime>,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> bool {
    if let Some(tags) = if_none_match {
        let Some(etag) = etag else {
            return false;
        };
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        return tags
            .split(',')
            .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag));
    }
    match (if_modified_since, last_modified) {
        (Some(since), Some(modified)) => seconds(modified) <= seconds(since),
        _ => false,
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn object(path: &str) -> String {
        match route(path) {
            Ok(MirrorRequest::Object(key)) => key.to_string(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn mirror_paths_name_their_keys_decoded() {
        assert_eq!(
            object("/bottles/openssl%403-3.6.0.arm64_tahoe.bottle.tar.gz"),
            "bottles/openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz"
        );
        assert_eq!(
            object("/bottles/gtk%2B3-3.24.43.tahoe.bottle.1.tar.gz"),
            "bottles/gtk+3-3.24.43.tahoe.bottle.1.tar.gz"
        );
        assert_eq!(
            object("/api/internal/packages.tahoe.jws.json"),
            "api/internal/packages.tahoe.jws.json"
        );
        assert_eq!(
            object("/bottles/openssl/3/manifests/3.6.0"),
            "bottles/openssl/3/manifests/3.6.0"
        );
        assert_eq!(
            object("/v2/homebrew/core/openssl/3/manifests/3.6.0_1-2"),
            "bottles/openssl/3/manifests/3.6.0_1-2"
        );
        assert_eq!(route("/healthz"), Ok(MirrorRequest::Health));
    }

    #[test]
    fn registry_blobs_name_a_digest() {
        let sha = "a".repeat(64);
        assert_eq!(
            route(&format!("/v2/homebrew/core/openssl/3/blobs/sha256:{sha}")),
            Ok(MirrorRequest::Blob {
                image: "openssl/3".into(),
                sha256: Sha256Digest::parse(&sha).unwrap(),
            })
        );
        assert!(matches!(
            route("/v2/homebrew/core/wget/blobs/sha256:xyz"),
            Err(Refusal::BadPath(_))
        ));
        assert_eq!(
            route("/v2/homebrew/core/wget/tags/list"),
            Err(Refusal::NotServed)
        );
    }

    #[test]
    fn paths_that_leave_the_mirror_are_refused() {
        for path in [
            "/bottles/../secret",
            "/bottles/%2e%2e/secret",
            "/bottles/%2E%2E/secret",
            "/bottles/..%2fsecret",
            "/bottles/..%2Fsecret",
            "/bottles/a%5c..%5csecret",
            "/bottles/a\\..\\secret",
            "//etc/passwd",
            "/bottles//etc/passwd",
            "/bottles/%2Fetc%2Fpasswd",
            "/bottles/./x",
            "/bottles/x/",
            "/bottles/%00",
            "/bottles/%ff",
            "/v2/homebrew/core/../../secret/manifests/1",
            "etc/passwd",
        ] {
            assert!(
                matches!(route(path), Err(Refusal::BadPath(_))),
                "{path}: {:?}",
                route(path)
            );
        }
        for path in [
            "/.bottlesync/lock",
            "/bottles_hash.json",
            "/2026-11-29/wget-1.0.tahoe.bottle.tar.gz",
            "/bottles",
            "/",
            "/etc/passwd",
        ] {
            assert_eq!(route(path), Err(Refusal::NotServed), "{path}");
        }
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(
            byte_range("bytes=100-", 1000),
            Part {
                first: 100,
                last: 999
            }
        );
        assert_eq!(byte_range("bytes=0-0", 1000), Part { first: 0, last: 0 });
        assert_eq!(
            byte_range("bytes=10-20000", 1000),
            Part {
                first: 10,
                last: 999
            }
        );
        assert_eq!(
            byte_range("bytes=-10", 1000),
            Part {
                first: 990,
                last: 999
            }
        );
        assert_eq!(
            byte_range("bytes=-2000", 1000),
            Part {
                first: 0,
                last: 999
            }
        );
        assert_eq!(byte_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=5000-6000", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=0-", 0), Unsatisfiable);
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(byte_range(ignored, 1000), Whole, "{ignored}");
        }
    }

    #[test]
    fn conditional_requests() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let etag = Some("\"abc\"");
        assert!(not_modified(Some("\"abc\""), None, etag, Some(at)));
        assert!(not_modified(Some("W/\"abc\", \"x\""), None, etag, Some(at)));
        assert!(not_modified(Some("*"), None, etag, Some(at)));
        // If-None-Match decides when present, even with a later date.
        assert!(!not_modified(Some("\"x\""), Some(at), etag, Some(at)));
        let second = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(not_modified(None, Some(second), etag, Some(at)));
        assert!(!not_modified(
            None,
            Some(second - Duration::from_secs(1)),
            etag,
            Some(at)
        ));
        assert!(!not_modified(None, None, etag, Some(at)));
        assert!(!not_modified(None, Some(second), etag, None));
    }
}

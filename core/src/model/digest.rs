//! SHA-256 digests as they appear in the index, hash files and keys.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest: always 64 lowercase hex digits once constructed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// Accepts 64 hex digits (either case); anything else is an error that
    /// quotes (a bounded prefix of) the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{:?} is not a sha256 (64 hex digits)",
                crate::shorten(text, 80)
            ));
        }
        Ok(Sha256Digest(text.to_ascii_lowercase()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Sha256Digest(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest as raw bytes (for checksum headers).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.0, &mut out).expect("validated at construction");
        out
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", &self.0)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Sha256Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_rejects_non_hex() {
        let upper = "A".repeat(64);
        assert_eq!(
            Sha256Digest::parse(&upper).unwrap().as_str(),
            "a".repeat(64)
        );
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
        assert!(Sha256Digest::parse(&"a".repeat(63)).is_err());
        assert!(Sha256Digest::parse("").is_err());
    }

    #[test]
    fn round_trips_bytes() {
        let d = Sha256Digest::parse(&"0f".repeat(32)).unwrap();
        assert_eq!(Sha256Digest::from_bytes(&d.to_bytes()), d);
    }
}

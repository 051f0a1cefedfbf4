//! A tiny model of the Ruby values brew serialises into its per-tag API
//! files, so the stand-in produces them by brew's own rules instead of
//! hand-written JSON: symbols apart from strings, hashes in insertion order,
//! and brew's `Utils.deep_stringify_symbols`, `Utils.deep_unstringify_symbols`
//! and `Utils.deep_compact_blank` (Library/Homebrew/utils.rb).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A Ruby value as brew's API code handles it.
#[derive(Clone, Debug, PartialEq)]
pub enum RubyValue {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `:name`, stored without the colon.
    Sym(String),
    Array(Vec<RubyValue>),
    /// Insertion-ordered, like a Ruby Hash.
    Hash(Vec<(RubyValue, RubyValue)>),
}

/// `RubyValue::Str`.
pub fn str(text: impl Into<String>) -> RubyValue {
    RubyValue::Str(text.into())
}

/// `RubyValue::Sym` (`sym("build")` is `:build`).
pub fn sym(name: impl Into<String>) -> RubyValue {
    RubyValue::Sym(name.into())
}

/// An Array.
pub fn array(items: impl IntoIterator<Item = RubyValue>) -> RubyValue {
    RubyValue::Array(items.into_iter().collect())
}

/// A Hash, in the given order.
pub fn hash(pairs: impl IntoIterator<Item = (RubyValue, RubyValue)>) -> RubyValue {
    RubyValue::Hash(pairs.into_iter().collect())
}

/// The empty Hash `{}`.
pub fn empty_hash() -> RubyValue {
    RubyValue::Hash(Vec::new())
}

impl RubyValue {
    /// `hash[key]` for a String key, `hash[:key]` for a Symbol key (`None`
    /// when absent or not a Hash).
    pub fn get(&self, key: &RubyValue) -> Option<&RubyValue> {
        match self {
            RubyValue::Hash(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `hash["key"]`.
    pub fn get_str(&self, key: &str) -> Option<&RubyValue> {
        self.get(&str(key))
    }

    /// `hash.dig("a", "b", ...)` with String keys.
    pub fn dig(&self, keys: &[&str]) -> Option<&RubyValue> {
        keys.iter().try_fold(self, |value, key| value.get_str(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            RubyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_sym(&self) -> Option<&str> {
        match self {
            RubyValue::Sym(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[RubyValue]> {
        match self {
            RubyValue::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&[(RubyValue, RubyValue)]> {
        match self {
            RubyValue::Hash(pairs) => Some(pairs),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            RubyValue::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Ruby's `to_sym` on a String or Symbol (`"build".to_sym`).
    pub fn to_sym(&self) -> RubyValue {
        match self {
            RubyValue::Str(s) | RubyValue::Sym(s) => sym(s.clone()),
            other => other.clone(),
        }
    }

    /// `Object#blank?` as brew defines it (extend/blank.rb): nil, false,
    /// empty or whitespace-only strings, empty symbols, arrays and hashes.
    pub fn is_blank(&self) -> bool {
        match self {
            RubyValue::Nil | RubyValue::Bool(false) => true,
            RubyValue::Str(s) => s.chars().all(char::is_whitespace),
            RubyValue::Sym(s) => s.is_empty(),
            RubyValue::Array(items) => items.is_empty(),
            RubyValue::Hash(pairs) => pairs.is_empty(),
            RubyValue::Bool(true) | RubyValue::Int(_) | RubyValue::Float(_) => false,
        }
    }

    /// `Utils.deep_stringify_symbols`: a Symbol becomes `":name"`; a String
    /// that starts with `:` or `\` gets a `\` in front, so it cannot be
    /// mistaken for a symbol.
    pub fn deep_stringify_symbols(&self) -> RubyValue {
        match self {
            RubyValue::Str(s) if s.starts_with([':', '\\']) => str(format!("\\{s}")),
            RubyValue::Sym(s) => str(format!(":{s}")),
            RubyValue::Hash(pairs) => hash(
                pairs
                    .iter()
                    .map(|(k, v)| (k.deep_stringify_symbols(), v.deep_stringify_symbols())),
            ),
            RubyValue::Array(items) => array(items.iter().map(RubyValue::deep_stringify_symbols)),
            other => other.clone(),
        }
    }

    /// `Utils.deep_unstringify_symbols`: the inverse, as brew reads the
    /// file (`"\\:x"` -> `":x"`, `":x"` -> `:x`).
    pub fn deep_unstringify_symbols(&self) -> RubyValue {
        match self {
            RubyValue::Str(s) => {
                if let Some(rest) = s.strip_prefix('\\') {
                    str(rest)
                } else if let Some(rest) = s.strip_prefix(':') {
                    sym(rest)
                } else {
                    self.clone()
                }
            }
            RubyValue::Hash(pairs) => hash(
                pairs
                    .iter()
                    .map(|(k, v)| (k.deep_unstringify_symbols(), v.deep_unstringify_symbols())),
            ),
            RubyValue::Array(items) => array(items.iter().map(RubyValue::deep_unstringify_symbols)),
            other => other.clone(),
        }
    }

    /// `Utils.deep_compact_blank` (compact_zero and compact_false on):
    /// hash values and array items are compacted first and dropped when
    /// that gives nil; then a blank value, or a numeric zero, is nil.
    pub fn deep_compact_blank(&self) -> Option<RubyValue> {
        let compacted = match self {
            RubyValue::Hash(pairs) => RubyValue::Hash(
                pairs
                    .iter()
                    .filter_map(|(k, v)| v.deep_compact_blank().map(|v| (k.clone(), v)))
                    .collect(),
            ),
            RubyValue::Array(items) => RubyValue::Array(
                items
                    .iter()
                    .filter_map(RubyValue::deep_compact_blank)
                    .collect(),
            ),
            other => other.clone(),
        };
        let zero = match compacted {
            RubyValue::Int(n) => n == 0,
            RubyValue::Float(x) => x == 0.0,
            _ => false,
        };
        (!compacted.is_blank() && !zero).then_some(compacted)
    }

    /// Parses JSON keeping the order of object keys (strings stay strings;
    /// see [`RubyValue::deep_unstringify_symbols`]).
    pub fn from_json(text: &str) -> serde_json::Result<RubyValue> {
        serde_json::from_str(text)
    }

    /// `JSON.generate`: compact, keys in insertion order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Ruby value serialises")
    }
}

/// As Ruby's JSON generator writes it: a Symbol as its name, a Hash key as
/// its `to_s`.
impl Serialize for RubyValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RubyValue::Nil => serializer.serialize_unit(),
            RubyValue::Bool(b) => serializer.serialize_bool(*b),
            RubyValue::Int(n) => serializer.serialize_i64(*n),
            RubyValue::Float(x) => serializer.serialize_f64(*x),
            RubyValue::Str(s) | RubyValue::Sym(s) => serializer.serialize_str(s),
            RubyValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            RubyValue::Hash(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    let key = match k {
                        RubyValue::Str(s) | RubyValue::Sym(s) => s.clone(),
                        RubyValue::Nil => String::new(),
                        other => other.to_json(),
                    };
                    map.serialize_entry(&key, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for RubyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RubyVisitor;
        impl<'de> Visitor<'de> for RubyVisitor {
            type Value = RubyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RubyValue, E> {
                Ok(RubyValue::Nil)
            }
            fn visit_none<E: de::Error>(self) -> Result<RubyValue, E> {
                Ok(RubyValue::Nil)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RubyValue, E> {
                Ok(RubyValue::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RubyValue, E> {
                Ok(RubyValue::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RubyValue, E> {
                Ok(i64::try_from(n).map_or(RubyValue::Float(n as f64), RubyValue::Int))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<RubyValue, E> {
                Ok(RubyValue::Float(x))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RubyValue, E> {
                Ok(str(s))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<RubyValue, E> {
                Ok(RubyValue::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RubyValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RubyValue::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RubyValue, A::Error> {
                let mut pairs: Vec<(RubyValue, RubyValue)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, RubyValue>()? {
                    // A repeated key keeps its first place and the last
                    // value, as JSON.parse does.
                    match pairs.iter_mut().find(|(key, _)| key.as_str() == Some(&k)) {
                        Some(pair) => pair.1 = v,
                        None => pairs.push((RubyValue::Str(k), v)),
                    }
                }
                Ok(RubyValue::Hash(pairs))
            }
        }
        deserializer.deserialize_any(RubyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stringify_marks_symbols_and_escapes_look_alikes() {
        // utils.rb: Symbol -> ":sym"; ":foo" -> "\:foo"; "\foo" -> "\\foo".
        let value = hash([
            (sym("macos"), array([sym("sonoma"), sym("build")])),
            (str("plain"), str(":not-a-symbol")),
            (str("slash"), str("\\x")),
        ]);
        let stringified = value.deep_stringify_symbols();
        assert_eq!(
            stringified.to_json(),
            r#"{":macos":[":sonoma",":build"],"plain":"\\:not-a-symbol","slash":"\\\\x"}"#
        );
        assert_eq!(stringified.deep_unstringify_symbols(), value);
    }

    #[test]
    fn compact_blank_drops_nil_empty_false_and_zero_recursively() {
        let value = hash([
            (
                str("url_args"),
                array([str("https://x.invalid/a.tgz"), empty_hash()]),
            ),
            (str("empty"), array([str(""), RubyValue::Nil, empty_hash()])),
            (str("revision"), RubyValue::Int(0)),
            (str("rebuild"), RubyValue::Int(2)),
            (str("post_install_defined"), RubyValue::Bool(false)),
            (str("keg_only"), RubyValue::Bool(true)),
            (str("caveats"), str("  ")),
            (str("ratio"), RubyValue::Float(0.0)),
        ]);
        assert_eq!(
            value.deep_compact_blank().unwrap().to_json(),
            r#"{"url_args":["https://x.invalid/a.tgz"],"rebuild":2,"keg_only":true}"#
        );
        assert_eq!(array([RubyValue::Nil]).deep_compact_blank(), None);
    }

    #[test]
    fn json_keeps_key_order() {
        let text = r#"{"z":1,"a":[true,null,"s"],"m":{"b":2.5,"a":{}}}"#;
        let value = RubyValue::from_json(text).unwrap();
        assert_eq!(value.to_json(), text);
        assert_eq!(value.dig(&["m", "b"]), Some(&RubyValue::Float(2.5)));
    }
}

//! Strict JSON for documents whose meaning must not depend on the parser: every object's
//! keys must be distinct. With `{"digest":"A","digest":"B"}` one parser takes the first value
//! and another the last, so a manifest could name one blob to the registry's checks and
//! another to a client or scanner that reads it later (a known smuggling vector). RFC 8259
//! leaves duplicates undefined and I-JSON (RFC 7493) forbids them; manifests never need them.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a document failed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictJsonError {
    /// Not JSON at all (or nested deeper than serde_json's limit of 128).
    Syntax(String),
    /// A key appears twice in one object.
    DuplicateKey(String),
}

impl fmt::Display for StrictJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictJsonError::Syntax(e) => f.write_str(e),
            StrictJsonError::DuplicateKey(k) => write!(
                f,
                "key {k:?} appears twice in one object; duplicate keys are refused because JSON parsers disagree on which value counts"
            ),
        }
    }
}

/// Walks the whole document once, without building it, and refuses a key that appears twice
/// in one object (compared after unescaping, so `"a"` and `"\u0061"` are the same key).
/// Nesting is bounded by serde_json's recursion limit, so a hostile document cannot exhaust
/// the stack.
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let classify = |e: serde_json::Error| match e.classify() {
        serde_json::error::Category::Data => {
            // Only our visitor raises data errors; its message is the key.
            StrictJsonError::DuplicateKey(
                e.to_string()
                    .split(" at line")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        }
        _ => StrictJsonError::Syntax(e.to_string()),
    };
    Unique.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)
}

struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Unique)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(key));
            }
            map.next_value_seed(Unique)?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_pass() {
        check_unique_keys(br#"{"a":1,"b":{"a":[{"a":null,"b":true}]},"c":"x"}"#).unwrap();
        check_unique_keys(b"[1,2.5,-3,\"s\",[],{}]").unwrap();
    }

    #[test]
    fn duplicates_anywhere_are_named() {
        for (doc, key) in [
            (r#"{"a":1,"a":2}"#, "a"),
            (r#"{"x":{"digest":"A","digest":"B"}}"#, "digest"),
            (r#"[{"ok":1},{"k":1,"k":1}]"#, "k"),
            (r#"{"a":1,"\u0061":2}"#, "a"),
        ] {
            assert_eq!(
                check_unique_keys(doc.as_bytes()),
                Err(StrictJsonError::DuplicateKey(key.into())),
                "{doc}"
            );
        }
    }

    #[test]
    fn syntax_errors_and_deep_nesting_fail_without_overflow() {
        for doc in [
            "{\"a\":".to_string(),
            "{} trailing".to_string(),
            "\"\u{0}\"".to_string(),
            "[".repeat(100_000) + &"]".repeat(100_000),
            "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000),
        ] {
            assert!(matches!(
                check_unique_keys(doc.as_bytes()),
                Err(StrictJsonError::Syntax(_))
            ));
        }
        assert!(matches!(
            check_unique_keys(b"{\"a\":\"\xff\"}"),
            Err(StrictJsonError::Syntax(_))
        ));
    }
}

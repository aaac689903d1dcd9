//! A request body parsed into a JSON document in one pass that refuses a key repeated in an
//! object, at any depth. serde_json keeps the last of repeated keys, so `{"phone_number": A,
//! "phone_number": B}` would be read as B by this service and perhaps as A by a proxy or a
//! logger in front of it; refusing the body makes every reader agree.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How much of a key or path an error message repeats.
const SHOWN_CHARS: usize = 64;

/// Parses `body` as one JSON document; a key repeated in an object is an error that names it
/// and where it is (`duplicate key "ip_address" in attributes`).
pub(crate) fn parse_document(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Node { path: "" }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// One value of the document, at `path` (dotted keys and `[index]`; empty at the top).
#[derive(Clone, Copy)]
struct Node<'p> {
    path: &'p str,
}

fn shown(text: &str) -> String {
    let mut short: String = text.chars().take(SHOWN_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, items.len());
            match seq.next_element_seed(Node { path: &path })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let place = if self.path.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", shown(self.path).escape_debug())
                };
                return Err(de::Error::custom(format_args!(
                    "duplicate key {:?}{place}; each key may appear once",
                    shown(&key)
                )));
            }
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let value = map.next_value_seed(Node { path: &path })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn error(body: &str) -> String {
        parse_document(body.as_bytes())
            .expect_err(body)
            .to_string()
            .split(" at line ")
            .next()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth_and_named() {
        for (body, message) in [
            (
                r#"{"name": "A", "name": "B"}"#,
                r#"duplicate key "name"; each key may appear once"#,
            ),
            (
                r#"{"attributes": {"ip_address": "1.1.1.1", "ip_address": "2.2.2.2"}}"#,
                r#"duplicate key "ip_address" in attributes; each key may appear once"#,
            ),
            (
                r#"{"a": [1, {"b": {"c": 1, "c": 1}}]}"#,
                r#"duplicate key "c" in a[1].b; each key may appear once"#,
            ),
            (
                r#"[{}, {"k": null, "k": null}]"#,
                r#"duplicate key "k" in [1]; each key may appear once"#,
            ),
            (
                r#"{"\u0061": 1, "a": 2}"#,
                r#"duplicate key "a"; each key may appear once"#,
            ),
            (
                r#"{"x\n": 1, "x\n": 2}"#,
                r#"duplicate key "x\n"; each key may appear once"#,
            ),
        ] {
            assert_eq!(error(body), message, "{body}");
        }
        let long = "k".repeat(500);
        let body = format!(r#"{{"{long}": 1, "{long}": 2}}"#);
        assert!(error(&body).len() < 150, "{}", error(&body));
    }

    #[test]
    fn documents_read_as_serde_json_reads_them() {
        for body in [
            r#"{"a": 1, "b": -2, "c": 1.5, "d": 18446744073709551615, "e": null, "f": [true, "x"], "g": {}}"#,
            r#"{"A": 1, "a": 2}"#,
            r#"{"a": {"k": 1}, "b": {"k": 2}}"#,
            r#"[{"k": 1}, {"k": 2}]"#,
            "\"text\"",
            " null ",
            "1e300",
        ] {
            assert_eq!(
                parse_document(body.as_bytes()).unwrap(),
                serde_json::from_str::<Value>(body).unwrap(),
                "{body}"
            );
        }
        for body in [
            "",
            "{",
            "{} {}",
            "{\"a\": 1,}",
            "1e309",
            "[1, 2,]",
            "\u{feff}{}",
        ] {
            assert!(parse_document(body.as_bytes()).is_err(), "{body:?}");
        }
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_document(deep.as_bytes()).is_ok());
        let too_deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_document(too_deep.as_bytes()).is_err());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn documents_without_repeats_parse_to_what_serde_json_gives(value in json_value()) {
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(parse_document(&text).unwrap(), value);
        }

        #[test]
        fn a_repeat_anywhere_is_refused(value in json_value(), key in "[a-c]{0,2}") {
            let text = serde_json::to_string(&value).unwrap();
            let repeated = format!(r#"{{"wrap": [{text}, {{"{key}": 1, "{key}": 2}}]}}"#);
            prop_assert!(parse_document(repeated.as_bytes()).is_err());
        }
    }
}

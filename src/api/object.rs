//! Read access to the parts of an untyped Kubernetes object that the
//! annotation rules and the mutations read.
//!
//! The webhook works on `serde_json::Value` rather than typed structs: a
//! round-trip through typed structs would drop fields newer than our
//! Kubernetes types and normalise others, and the resulting patch would then
//! silently rewrite parts of the user's object. The rules themselves read
//! annotations and labels through [`StringLookup`], so the controller's typed
//! objects go through the same rules without being turned into JSON.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::{Map, Value};

use crate::api::InvalidField;

/// A string map of an object's metadata (annotations or labels), however
/// the object was decoded: a JSON object may hold a value of the wrong type,
/// which is an error naming the key; a typed object cannot.
pub trait StringLookup {
    /// The value at `key`.
    fn get(&self, key: &str) -> Result<Option<&str>, InvalidField>;

    /// Whether any of `keys` is present at all: the rules' cheap "not ours"
    /// check, made before anything is validated.
    fn contains_any(&self, keys: &[&str]) -> bool;
}

impl StringLookup for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Result<Option<&str>, InvalidField> {
        Ok(BTreeMap::get(self, key).map(String::as_str))
    }

    fn contains_any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.contains_key(*k))
    }
}

impl<T: StringLookup> StringLookup for &T {
    fn get(&self, key: &str) -> Result<Option<&str>, InvalidField> {
        T::get(self, key)
    }

    fn contains_any(&self, keys: &[&str]) -> bool {
        T::contains_any(self, keys)
    }
}

/// The empty map, for typed objects without annotations or labels.
pub const NO_STRINGS: &BTreeMap<String, String> = &BTreeMap::new();

/// `object[key]`, or `None` if absent or `object` is not a JSON object.
///
/// The maps the mutations read hold a handful of keys (and fewer still
/// after the webhook's projection, see `webhook::envelope`), so for those the key is
/// compared with each entry: hashing it with the map's SipHash costs more
/// than the comparisons, and lookups were a tenth of a Pod review.
pub fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    lookup(object.as_object()?, key)
}

/// `map[key]`, as [`field`] finds it.
pub fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    const SCAN_UP_TO: usize = 8;
    if map.len() <= SCAN_UP_TO {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

/// Returns `object[key]` as an object, `None` if absent or null, or an error
/// naming `path` if it has another type. `path` is only formatted for an
/// error: pass `format_args!`, not `&format!`, on the hot path.
pub fn get_map<'a>(
    object: &'a Value,
    key: &str,
    path: impl Display,
) -> Result<Option<&'a Map<String, Value>>, InvalidField> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(wrong_type(path, "an object")),
    }
}

/// Returns `object[key]` as an array, empty if absent or null, or an error
/// naming `path` if it has another type.
pub fn get_array<'a>(
    object: &'a Value,
    key: &str,
    path: impl Display,
) -> Result<&'a [Value], InvalidField> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(wrong_type(path, "a list")),
    }
}

/// Returns `object[key]` as a string, `None` if absent or null.
pub fn get_str<'a>(
    object: &'a Value,
    key: &str,
    path: impl Display,
) -> Result<Option<&'a str>, InvalidField> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

/// An error for a field of the wrong JSON type.
pub fn wrong_type(path: impl Display, expected: &str) -> InvalidField {
    InvalidField::new(
        path.to_string(),
        format!("must be {expected}"),
        "send a well-formed Kubernetes object",
    )
}

/// The string maps under `metadata` (annotations or labels), type-checked.
pub struct StringMap<'a> {
    map: Option<&'a Map<String, Value>>,
    path: &'static str,
}

impl<'a> StringMap<'a> {
    /// `metadata.annotations` of `object`.
    pub fn annotations(object: &'a Value) -> Result<Self, InvalidField> {
        Self::under_metadata(object, "annotations", "metadata.annotations")
    }

    /// `metadata.labels` of `object`.
    pub fn labels(object: &'a Value) -> Result<Self, InvalidField> {
        Self::under_metadata(object, "labels", "metadata.labels")
    }

    fn under_metadata(
        object: &'a Value,
        key: &str,
        path: &'static str,
    ) -> Result<Self, InvalidField> {
        let map = match get_map(object, "metadata", "metadata")? {
            Some(meta) => match lookup(meta, key) {
                None | Some(Value::Null) => None,
                Some(Value::Object(map)) => Some(map),
                Some(_) => return Err(wrong_type(path, "a map of strings")),
            },
            None => None,
        };
        Ok(Self { map, path })
    }

    /// The value at `key`; a non-string value is an error naming the key.
    pub fn get(&self, key: &str) -> Result<Option<&'a str>, InvalidField> {
        match self.map.and_then(|m| lookup(m, key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(InvalidField::new(
                format!("{}[{key}]", self.path),
                "must be a string",
                "quote the value in YAML, e.g. \"true\" or \"8443:8080\"",
            )),
        }
    }

    /// Whether any key is present at all (a fast "not ours" check).
    pub fn contains_any(&self, keys: &[&str]) -> bool {
        self.map
            .is_some_and(|m| keys.iter().any(|k| lookup(m, k).is_some()))
    }
}

impl StringLookup for StringMap<'_> {
    fn get(&self, key: &str) -> Result<Option<&str>, InvalidField> {
        StringMap::get(self, key)
    }

    fn contains_any(&self, keys: &[&str]) -> bool {
        StringMap::contains_any(self, keys)
    }
}

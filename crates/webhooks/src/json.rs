//! Small helpers for reading and defaulting Kubernetes JSON and for building field paths.
//!
//! `null` counts as absent everywhere, as it does for Go's `omitempty` pointers.

use serde_json::{Map, Value};

/// `path.name`, or `name` at the root.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The value at a chain of object keys, treating `null` as absent.
pub(crate) fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in keys {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at a chain of object keys.
pub(crate) fn str_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    at(v, keys).and_then(Value::as_str)
}

/// A non-empty string at a chain of object keys.
pub(crate) fn nonempty<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    str_at(v, keys).filter(|s| !s.is_empty())
}

/// The array at a chain of object keys, or an empty slice.
pub(crate) fn array<'a>(v: &'a Value, keys: &[&str]) -> &'a [Value] {
    at(v, keys)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether a key chain leads to a non-null value.
pub(crate) fn has(v: &Value, keys: &[&str]) -> bool {
    at(v, keys).is_some()
}

/// A boolean at a key chain.
pub(crate) fn bool_at(v: &Value, keys: &[&str]) -> Option<bool> {
    at(v, keys).and_then(Value::as_bool)
}

/// An integer at a key chain.
pub(crate) fn int_at(v: &Value, keys: &[&str]) -> Option<i64> {
    at(v, keys).and_then(Value::as_i64)
}

/// Makes `v` an object if it is `null`; `None` when it holds something else.
pub(crate) fn ensure_object(v: &mut Value) -> Option<&mut Map<String, Value>> {
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

/// The object under `keys`, created (as `{}`) along the way where missing or `null`.
/// `None` when something on the way is not an object (schema validation rejects those first).
pub(crate) fn object_at<'a>(v: &'a mut Value, keys: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in keys {
        let map = ensure_object(cur)?;
        cur = map.entry(key.to_string()).or_insert(Value::Null);
    }
    ensure_object(cur)
}

/// Sets `map[key] = value` unless a non-null value is already there.
pub(crate) fn default_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_string(), value);
        }
    }
}

/// Sets `map[key] = value` when the key is missing, `null` or the empty string.
pub(crate) fn default_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    let empty = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if empty {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_at_creates_missing_levels_and_keeps_existing_ones() {
        let mut v = json!({"spec": {"domain": {"cpu": {"cores": 2}}}});
        object_at(&mut v, &["spec", "domain", "cpu"])
            .expect("object")
            .insert("model".into(), json!("x"));
        object_at(&mut v, &["spec", "domain", "machine"]).expect("object");
        assert_eq!(
            v,
            json!({"spec": {"domain": {"cpu": {"cores": 2, "model": "x"}, "machine": {}}}})
        );
    }

    #[test]
    fn null_counts_as_absent() {
        let v = json!({"a": null, "b": {"c": 1}});
        assert!(!has(&v, &["a"]));
        assert_eq!(int_at(&v, &["b", "c"]), Some(1));
        assert!(array(&v, &["a"]).is_empty());
    }

    #[test]
    fn paths_join_children_and_indexes() {
        assert_eq!(index(&child("spec", "volumes"), 2), "spec.volumes[2]");
        assert_eq!(child("", "spec"), "spec");
    }
}

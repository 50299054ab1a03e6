//! Structural comparison of JSON values, for "the server kept every field I sent" checks.

use serde_json::Value;

/// Asserts that every field of `expected` appears in `actual` with the same value.
///
/// Objects may carry extra keys in `actual` (server defaults, metadata); arrays must have the
/// same length and are compared element by element. The panic message names the JSON path of
/// the first difference.
pub fn assert_subset(expected: &Value, actual: &Value) {
    if let Err(diff) = subset(expected, actual, "") {
        panic!(
            "{diff}\nexpected (subset): {}\nactual: {}",
            serde_json::to_string_pretty(expected).unwrap_or_default(),
            serde_json::to_string_pretty(actual).unwrap_or_default()
        );
    }
}

/// Like [`assert_subset`], but returns the first difference (with its JSON path) instead of
/// panicking, so a test can report every object that lost a field at once.
pub fn subset_difference(expected: &Value, actual: &Value) -> Option<String> {
    subset(expected, actual, "").err()
}

/// `value` without the object members whose value is `null`, at any depth.
///
/// The API server drops `field: null` from what it stores (a manifest's empty `annotations:` or
/// `creationTimestamp: null`), so a "kept every field" check compares against this.
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, want_value) in want {
                let child = format!("{path}.{key}");
                match have.get(key) {
                    Some(have_value) => subset(want_value, have_value, &child)?,
                    None => return Err(format!("missing field {child}")),
                }
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                return Err(format!(
                    "array {path} has {} items, expected {}",
                    have.len(),
                    want.len()
                ));
            }
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                subset(w, h, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (Value::Number(want), Value::Number(have)) if want.as_f64() == have.as_f64() => Ok(()),
        (want, have) if want == have => Ok(()),
        (want, have) => Err(format!("field {path} is {have}, expected {want}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_fields_in_actual_are_accepted() {
        assert_subset(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"b": 1, "c": 2}, "d": 3}),
        );
    }

    #[test]
    fn nulls_are_dropped_at_any_depth() {
        assert_eq!(
            without_nulls(&json!({"a": null, "b": [{"c": null, "d": 1}]})),
            json!({"b": [{"d": 1}]})
        );
        assert_eq!(subset_difference(&json!({"a": 1}), &json!({"a": 1})), None);
    }

    #[test]
    #[should_panic(expected = "field .a[1].x is 3, expected 2")]
    fn differing_array_element_is_reported_with_its_path() {
        assert_subset(&json!({"a": [{}, {"x": 2}]}), &json!({"a": [{}, {"x": 3}]}));
    }
}

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
    #[should_panic(expected = "field .a[1].x is 3, expected 2")]
    fn differing_array_element_is_reported_with_its_path() {
        assert_subset(&json!({"a": [{}, {"x": 2}]}), &json!({"a": [{}, {"x": 3}]}));
    }
}

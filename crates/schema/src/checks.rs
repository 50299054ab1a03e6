//! Value validations of one schema node: `enum`, `pattern`, `format`, bounds, lengths and
//! counts, `required`, list types and the combinators (`allOf`/`anyOf`/`oneOf`/`not`).
//!
//! Messages follow the Kubernetes OpenAPI validator (`spec.x in body should match '...'`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::definitions::Definitions;
use crate::error::{body_subject, FieldError};
use crate::structural::{branch_errors, field};
use crate::view::{is_ref_wrapper, View};

/// The JSON type name Kubernetes uses in type errors.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if is_integer(value) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Integers, including floats without a fractional part (`2.0`), as Kubernetes accepts.
pub(crate) fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// All validations of every part of `view` against a (type-correct, non-null) value.
pub(crate) fn check_value(
    defs: &Definitions,
    view: &View<'_>,
    path: &str,
    value: &Value,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for part in view.parts() {
        check_part(defs, part, path, value, &mut errors);
    }
    errors
}

fn check_part(
    defs: &Definitions,
    part: &Map<String, Value>,
    path: &str,
    value: &Value,
    errors: &mut Vec<FieldError>,
) {
    let name = field(path);
    if let Some(Value::Array(allowed)) = part.get("enum") {
        if !allowed.contains(value) {
            errors.push(FieldError::not_supported(name, value, allowed));
        }
    }
    match value {
        Value::String(s) => check_string(part, name, value, s, errors),
        Value::Number(n) => check_number(part, name, value, n, errors),
        Value::Array(items) => check_array(part, name, value, items, errors),
        Value::Object(map) => check_object(part, path, map, errors),
        _ => {}
    }
    check_combinators(defs, part, path, value, errors);
}

fn check_string(
    part: &Map<String, Value>,
    name: &str,
    value: &Value,
    s: &str,
    errors: &mut Vec<FieldError>,
) {
    let subject = body_subject(name);
    let chars = s.chars().count() as u64;
    if let Some(max) = part.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            errors.push(FieldError::too_long(name, max));
        }
    }
    if let Some(min) = part.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            let detail = format!("{subject} in body should be at least {min} chars long");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
    if let Some(pattern) = part.get("pattern").and_then(Value::as_str) {
        match pattern_matches(pattern, s) {
            Some(true) => {}
            Some(false) => {
                let detail = format!("{subject} in body should match '{pattern}'");
                errors.push(FieldError::invalid(name, value, &detail));
            }
            None => {
                let detail = format!("schema pattern {pattern:?} cannot be compiled");
                errors.push(FieldError::internal(name, &detail));
            }
        }
    }
    if let Some(format) = part.get("format").and_then(Value::as_str) {
        if !format_ok(format, s) {
            let detail = format!("{subject} in body must be of type {format}: {s:?}");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
}

fn check_number(
    part: &Map<String, Value>,
    name: &str,
    value: &Value,
    n: &Number,
    errors: &mut Vec<FieldError>,
) {
    let subject = body_subject(name);
    let Some(x) = n.as_f64() else {
        return;
    };
    let flag = |key: &str| part.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(min) = part.get("minimum").filter(|m| m.is_number()) {
        let bound = min.as_f64().unwrap_or(f64::MIN);
        if flag("exclusiveMinimum") && x <= bound {
            let detail = format!("{subject} in body should be greater than {min}");
            errors.push(FieldError::invalid(name, value, &detail));
        } else if x < bound {
            let detail = format!("{subject} in body should be greater than or equal to {min}");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
    if let Some(max) = part.get("maximum").filter(|m| m.is_number()) {
        let bound = max.as_f64().unwrap_or(f64::MAX);
        if flag("exclusiveMaximum") && x >= bound {
            let detail = format!("{subject} in body should be less than {max}");
            errors.push(FieldError::invalid(name, value, &detail));
        } else if x > bound {
            let detail = format!("{subject} in body should be less than or equal to {max}");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
    if let Some(factor) = part.get("multipleOf").and_then(Value::as_f64) {
        if factor > 0.0 && (x / factor).fract().abs() > f64::EPSILON {
            let detail = format!("{subject} in body should be a multiple of {factor}");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
}

fn check_array(
    part: &Map<String, Value>,
    name: &str,
    value: &Value,
    items: &[Value],
    errors: &mut Vec<FieldError>,
) {
    let subject = body_subject(name);
    if let Some(max) = part.get("maxItems").and_then(Value::as_u64) {
        if items.len() as u64 > max {
            errors.push(FieldError::too_many(name, items.len(), max));
        }
    }
    if let Some(min) = part.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            let detail = format!("{subject} in body should have at least {min} items");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
    let list_type = part.get("x-kubernetes-list-type").and_then(Value::as_str);
    let unique = part.get("uniqueItems").and_then(Value::as_bool) == Some(true);
    if list_type == Some("set") || unique {
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                errors.push(FieldError::duplicate(&format!("{name}[{index}]"), item));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = part
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut seen: Vec<Map<String, Value>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Value::Object(entry) = item else {
                continue;
            };
            let key: Map<String, Value> = keys
                .iter()
                .filter_map(|k| entry.get(*k).map(|v| ((*k).to_string(), v.clone())))
                .collect();
            if seen.contains(&key) {
                let at = format!("{name}[{index}]");
                errors.push(FieldError::duplicate(&at, &Value::Object(key)));
            } else {
                seen.push(key);
            }
        }
    }
}

fn check_object(
    part: &Map<String, Value>,
    path: &str,
    map: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) {
    let name = field(path);
    let subject = body_subject(name);
    if let Some(Value::Array(required)) = part.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                errors.push(FieldError::required(field(&format!("{path}.{key}"))));
            }
        }
    }
    if let Some(max) = part.get("maxProperties").and_then(Value::as_u64) {
        if map.len() as u64 > max {
            errors.push(FieldError::too_many(name, map.len(), max));
        }
    }
    if let Some(min) = part.get("minProperties").and_then(Value::as_u64) {
        if (map.len() as u64) < min {
            let detail = format!("{subject} in body should have at least {min} properties");
            errors.push(FieldError::invalid(
                name,
                &Value::Object(map.clone()),
                &detail,
            ));
        }
    }
}

fn check_combinators(
    defs: &Definitions,
    part: &Map<String, Value>,
    path: &str,
    value: &Value,
    errors: &mut Vec<FieldError>,
) {
    let name = field(path);
    let subject = body_subject(name);
    let branches = |key: &str| -> Vec<Vec<FieldError>> {
        part.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter(|item| key != "allOf" || !is_ref_wrapper(item))
                    .map(|item| branch_errors(defs, item, path, value))
                    .collect()
            })
            .unwrap_or_default()
    };
    for branch in branches("allOf") {
        errors.extend(branch);
    }
    let any_of = branches("anyOf");
    if !any_of.is_empty() && any_of.iter().all(|errs| !errs.is_empty()) {
        errors.extend(any_of.into_iter().flatten());
        let detail = format!("{subject} in body must validate at least one schema (anyOf)");
        errors.push(FieldError::invalid(name, value, &detail));
    }
    let one_of = branches("oneOf");
    let passing = one_of.iter().filter(|errs| errs.is_empty()).count();
    if !one_of.is_empty() && passing != 1 {
        if passing == 0 {
            errors.extend(one_of.into_iter().flatten());
        }
        let detail = format!("{subject} in body must validate one and only one schema (oneOf)");
        errors.push(FieldError::invalid(name, value, &detail));
    }
    if let Some(not) = part.get("not") {
        if branch_errors(defs, not, path, value).is_empty() {
            let detail = format!("{subject} in body must not validate the schema (not)");
            errors.push(FieldError::invalid(name, value, &detail));
        }
    }
}

/// Matches with a process-wide cache of compiled patterns; `None` if the pattern is invalid.
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let regex = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    regex.as_ref().map(|re| re.is_match(s))
}

/// Lenient checks of the string formats Kubernetes validates; unknown formats pass.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "byte" => is_base64(s),
        "date-time" | "datetime" => pattern_matches(
            r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
            s,
        )
        .unwrap_or(true),
        "date" => pattern_matches(r"^\d{4}-\d{2}-\d{2}$", s).unwrap_or(true),
        "uuid" => pattern_matches(
            r"^(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        )
        .unwrap_or(true),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let bits: Option<u8> = bits.parse().ok();
            match (ip.parse::<Ipv4Addr>(), ip.parse::<Ipv6Addr>(), bits) {
                (Ok(_), _, Some(b)) => b <= 32,
                (_, Ok(_), Some(b)) => b <= 128,
                _ => false,
            }
        }),
        "mac" => pattern_matches(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$", s).unwrap_or(true),
        _ => true,
    }
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked_leniently() {
        assert!(format_ok("byte", "aGVsbG8="));
        assert!(!format_ok("byte", "not base64!"));
        assert!(format_ok("date-time", "2024-01-02T03:04:05Z"));
        assert!(!format_ok("date-time", "yesterday"));
        assert!(format_ok("int32", "anything"));
        assert!(format_ok("cidr", "10.0.0.0/8"));
        assert!(!format_ok("cidr", "10.0.0.0/40"));
    }

    #[test]
    fn integral_floats_count_as_integers() {
        assert!(is_integer(&serde_json::json!(2.0)));
        assert!(!is_integer(&serde_json::json!(2.5)));
        assert_eq!(json_type_name(&serde_json::json!(2.5)), "number");
    }
}

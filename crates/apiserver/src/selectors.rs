//! Label and field selectors in Kubernetes' string syntax.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in split_top_level(input) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_label_term(term)?);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&input[start..]);
    out
}

fn bad_selector(term: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement: {why}: {term:?}"))
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, ApiError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(valid_key(key.trim(), term)?));
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = term.find(op) {
            let key = valid_key(term[..idx].trim(), term)?;
            let values = term[idx + op.len()..].trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| bad_selector(term, "set values must be in parentheses"))?;
            let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
            return Ok(if negate {
                LabelRequirement::NotIn(key, vals)
            } else {
                LabelRequirement::In(key, vals)
            });
        }
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            valid_key(k.trim(), term)?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            valid_key(k.trim(), term)?,
            v.trim().to_string(),
        ));
    }
    Ok(LabelRequirement::Exists(valid_key(term, term)?))
}

fn valid_key(key: &str, term: &str) -> Result<String, ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(bad_selector(term, "invalid label key"))
    }
}

/// A parsed `fieldSelector` (`key=value`, `key==value`, `key!=value`).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses and checks every key against the resource's supported field labels.
    pub fn parse(input: &str, supported: &[String]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, negate, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k, false, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                )));
            };
            let key = key.trim();
            let known = key == "metadata.name"
                || key == "metadata.namespace"
                || supported.iter().any(|s| s == key);
            if !known {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {key}"
                )));
            }
            reqs.push((key.to_string(), negate, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Looks up a field label; the special `source` label of Events is `source.component`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(key, negate, expected)| {
            let path = match key.as_str() {
                "source" => "/source/component".to_string(),
                k => format!("/{}", k.replace('.', "/")),
            };
            let actual = match obj.pointer(&path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Array(a)) => a
                    .first()
                    .map(|v| {
                        v.get("ip")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default(),
                // Kubernetes treats an absent bool field label (spec.unschedulable) as false.
                None if key == "spec.unschedulable" || key == "spec.hostNetwork" => "false".into(),
                _ => String::new(),
            };
            (actual == *expected) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "status": {"phase": "Running"}})
    }

    #[test]
    fn every_label_operator_matches_as_kubernetes_does() {
        let o = obj();
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("missing!=x", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn unsupported_field_label_is_a_bad_request() {
        let err = FieldSelector::parse("spec.foo=bar", &[]).unwrap_err();
        assert!(err
            .to_string()
            .contains("field label not supported: spec.foo"));
        let sel = FieldSelector::parse("status.phase=Running", &["status.phase".into()]).unwrap();
        assert!(sel.matches(&obj()));
    }
}

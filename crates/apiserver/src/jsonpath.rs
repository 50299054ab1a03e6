//! The subset of Kubernetes JSONPath that printer columns use:
//! `.a.b`, `.a[0].b`, `.a[*].b` and `.a[?(@.type=='Ready')].status`.

use serde_json::Value;

/// Evaluates `path` against `root` and returns every value found.
pub fn eval<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let mut current = vec![root];
    for step in steps(path) {
        let mut next = Vec::new();
        for value in current {
            match &step {
                Step::Field(name) => {
                    if let Some(v) = value.get(name.as_str()) {
                        next.push(v);
                    }
                }
                Step::Index(i) => {
                    if let Some(items) = value.as_array() {
                        let index = if *i < 0 { items.len() as i64 + i } else { *i };
                        if let Some(v) = usize::try_from(index).ok().and_then(|i| items.get(i)) {
                            next.push(v);
                        }
                    }
                }
                Step::All => match value {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter { field, expected } => {
                    if let Some(items) = value.as_array() {
                        next.extend(items.iter().filter(|item| {
                            let found = field.iter().try_fold(*item, |v, f| v.get(f.as_str()));
                            match found {
                                Some(Value::String(s)) => s == expected,
                                Some(other) => serde_json::from_str::<Value>(expected)
                                    .is_ok_and(|e| &e == other),
                                None => false,
                            }
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// The first value found, rendered as a table cell would show it.
pub fn eval_cell(root: &Value, path: &str) -> Value {
    eval(root, path)
        .first()
        .map(|v| (*v).clone())
        .unwrap_or(Value::Null)
}

enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        field: Vec<String>,
        expected: String,
    },
}

fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                out.push(Step::Field(after[..end].to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = find_bracket_end(after) else {
                break;
            };
            let inner = after[..end].trim();
            rest = &after[end + 1..];
            if inner == "*" {
                out.push(Step::All);
            } else if let Ok(i) = inner.parse::<i64>() {
                out.push(Step::Index(i));
            } else if let Some(filter) = parse_filter(inner) {
                out.push(filter);
            } else {
                out.push(Step::Field(inner.trim_matches(['\'', '"']).to_string()));
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    out
}

fn find_bracket_end(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_filter(inner: &str) -> Option<Step> {
    let body = inner.strip_prefix("?(")?.strip_suffix(')')?;
    let (lhs, rhs) = body.split_once("==")?;
    let field = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    let expected = rhs.trim().trim_matches(['\'', '"']).to_string();
    Some(Step::Filter { field, expected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_selects_the_condition_by_type() {
        let obj = json!({"status": {"conditions": [
            {"type": "Paused", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            eval_cell(&obj, ".status.conditions[?(@.type=='Ready')].status"),
            json!("True")
        );
    }

    #[test]
    fn index_and_fields_walk_nested_lists() {
        let obj = json!({"status": {"interfaces": [{"ipAddress": "10.0.0.5"}]}});
        assert_eq!(
            eval_cell(&obj, ".status.interfaces[0].ipAddress"),
            json!("10.0.0.5")
        );
        assert_eq!(eval_cell(&obj, ".status.missing"), Value::Null);
    }
}

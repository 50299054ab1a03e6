//! RFC 6902 JSON Patch.
//!
//! Operations are applied in order to a copy of the document; the first failing operation
//! aborts the whole patch, so callers never see a half-applied result.

use serde_json::Value;

use crate::error::{Error, Result};

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`, `copy`, `test`) to a
/// copy of `doc` and returns the result.
///
/// Pointers follow RFC 6901: `~1` decodes to `/`, `~0` to `~`, and `-` as the last token of
/// an `add` (or `move`/`copy`) target appends to an array.
///
/// # Errors
///
/// Returns the first failure, naming the operation index and pointer: a malformed operation
/// ([`Error::InvalidOperation`]), a missing location ([`Error::PathNotFound`]), a bad array
/// index ([`Error::InvalidIndex`]), a failed `test` ([`Error::TestFailed`]) or a `move` into
/// its own child ([`Error::MoveIntoChild`]).
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value> {
    let ops = patch.as_array().ok_or(Error::NotAnOperationList)?;
    let mut out = doc.clone();
    for (index, raw) in ops.iter().enumerate() {
        let op = Operation::parse(index, raw)?;
        op.apply(index, &mut out)?;
    }
    Ok(out)
}

/// A JSON pointer: its source text (for messages) and its decoded reference tokens.
#[derive(Debug, Clone)]
struct Pointer {
    raw: String,
    tokens: Vec<String>,
}

impl Pointer {
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Ok(Self {
                raw: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(format!("pointer {raw:?} does not start with '/'"));
        };
        let tokens = rest
            .split('/')
            .map(|t| {
                unescape(t).ok_or_else(|| format!("pointer {raw:?} has an invalid '~' escape"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            raw: raw.to_owned(),
            tokens,
        })
    }

    /// True when `self` lies strictly inside `other`.
    fn is_inside(&self, other: &Pointer) -> bool {
        self.tokens.len() > other.tokens.len() && self.tokens.starts_with(&other.tokens)
    }
}

/// Decodes `~1` to `/` and `~0` to `~`; any other `~` sequence is invalid.
fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[derive(Debug)]
enum Operation {
    Add { path: Pointer, value: Value },
    Remove { path: Pointer },
    Replace { path: Pointer, value: Value },
    Move { from: Pointer, path: Pointer },
    Copy { from: Pointer, path: Pointer },
    Test { path: Pointer, value: Value },
}

/// Why resolving a pointer failed, before it is tied to an operation.
enum Failure {
    Missing,
    BadIndex,
}

impl Operation {
    fn parse(index: usize, raw: &Value) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidOperation { index, reason };
        let obj = raw
            .as_object()
            .ok_or_else(|| invalid("operation is not an object".into()))?;
        let name = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing string member \"op\"".into()))?;
        let pointer = |member: &str| -> Result<Pointer> {
            let text = obj
                .get(member)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{name} needs a string member {member:?}")))?;
            Pointer::parse(text).map_err(invalid)
        };
        let value = || -> Result<Value> {
            obj.get("value")
                .cloned()
                .ok_or_else(|| invalid(format!("{name} needs a member \"value\"")))
        };
        Ok(match name {
            "add" => Self::Add {
                path: pointer("path")?,
                value: value()?,
            },
            "remove" => Self::Remove {
                path: pointer("path")?,
            },
            "replace" => Self::Replace {
                path: pointer("path")?,
                value: value()?,
            },
            "move" => Self::Move {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "copy" => Self::Copy {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "test" => Self::Test {
                path: pointer("path")?,
                value: value()?,
            },
            other => return Err(invalid(format!("unknown op {other:?}"))),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "add",
            Self::Remove { .. } => "remove",
            Self::Replace { .. } => "replace",
            Self::Move { .. } => "move",
            Self::Copy { .. } => "copy",
            Self::Test { .. } => "test",
        }
    }

    fn apply(self, index: usize, doc: &mut Value) -> Result<()> {
        let op = self.name();
        let fail = |failure: Failure, at: &Pointer| match failure {
            Failure::Missing => Error::PathNotFound {
                index,
                op: op.into(),
                path: at.raw.clone(),
            },
            Failure::BadIndex => Error::InvalidIndex {
                index,
                op: op.into(),
                path: at.raw.clone(),
            },
        };
        match self {
            Self::Add { path, value } => add(doc, &path.tokens, value).map_err(|f| fail(f, &path)),
            Self::Remove { path } => {
                if path.tokens.is_empty() {
                    return Err(Error::InvalidOperation {
                        index,
                        reason: "cannot remove the whole document".into(),
                    });
                }
                remove(doc, &path.tokens)
                    .map(drop)
                    .map_err(|f| fail(f, &path))
            }
            Self::Replace { path, value } => {
                let target = get_mut(doc, &path.tokens).map_err(|f| fail(f, &path))?;
                *target = value;
                Ok(())
            }
            Self::Move { from, path } => {
                if path.is_inside(&from) {
                    return Err(Error::MoveIntoChild {
                        index,
                        from: from.raw,
                        path: path.raw,
                    });
                }
                if from.tokens == path.tokens {
                    return get(doc, &from.tokens).map(drop).map_err(|f| fail(f, &from));
                }
                if from.tokens.is_empty() {
                    return Err(Error::InvalidOperation {
                        index,
                        reason: "cannot move the whole document".into(),
                    });
                }
                let value = remove(doc, &from.tokens).map_err(|f| fail(f, &from))?;
                add(doc, &path.tokens, value).map_err(|f| fail(f, &path))
            }
            Self::Copy { from, path } => {
                let value = get(doc, &from.tokens).map_err(|f| fail(f, &from))?.clone();
                add(doc, &path.tokens, value).map_err(|f| fail(f, &path))
            }
            Self::Test { path, value } => {
                let actual = get(doc, &path.tokens).map_err(|f| fail(f, &path))?;
                if json_equal(actual, &value) {
                    Ok(())
                } else {
                    Err(Error::TestFailed {
                        index,
                        path: path.raw,
                    })
                }
            }
        }
    }
}

/// Parses an array index token: decimal digits without a leading zero.
fn parse_index(token: &str) -> Option<usize> {
    let digits_only = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, Failure> {
    let mut cur = doc;
    for token in tokens {
        cur = match cur {
            Value::Object(map) => map.get(token).ok_or(Failure::Missing)?,
            Value::Array(items) => {
                let i = parse_index(token).ok_or(Failure::BadIndex)?;
                items.get(i).ok_or(Failure::BadIndex)?
            }
            _ => return Err(Failure::Missing),
        };
    }
    Ok(cur)
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, Failure> {
    let mut cur = doc;
    for token in tokens {
        cur = match cur {
            Value::Object(map) => map.get_mut(token).ok_or(Failure::Missing)?,
            Value::Array(items) => {
                let i = parse_index(token).ok_or(Failure::BadIndex)?;
                items.get_mut(i).ok_or(Failure::BadIndex)?
            }
            _ => return Err(Failure::Missing),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), Failure> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parents)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = if last == "-" {
                items.len()
            } else {
                parse_index(last).ok_or(Failure::BadIndex)?
            };
            if i > items.len() {
                return Err(Failure::BadIndex);
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(Failure::Missing),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, Failure> {
    let Some((last, parents)) = tokens.split_last() else {
        return Err(Failure::Missing);
    };
    match get_mut(doc, parents)? {
        Value::Object(map) => map.shift_remove(last).ok_or(Failure::Missing),
        Value::Array(items) => {
            let i = parse_index(last).ok_or(Failure::BadIndex)?;
            if i >= items.len() {
                return Err(Failure::BadIndex);
            }
            Ok(items.remove(i))
        }
        _ => Err(Failure::Missing),
    }
}

/// JSON equality as RFC 6902 `test` defines it: numbers compare by numeric value (so `1`
/// equals `1.0`), objects ignore member order.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: Value, ops: Value) -> Result<Value> {
        json_patch(&doc, &ops)
    }

    #[test]
    fn add_sets_object_members_and_inserts_into_arrays() {
        let out = patch(
            json!({"a": {"b": 1}, "list": [1, 3]}),
            json!([
                {"op": "add", "path": "/a/c", "value": 2},
                {"op": "add", "path": "/list/1", "value": 2},
                {"op": "add", "path": "/list/-", "value": 4}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": 1, "c": 2}, "list": [1, 2, 3, 4]}));
    }

    #[test]
    fn add_replaces_an_existing_member() {
        let out = patch(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/a", "value": 2}]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 2}));
    }

    #[test]
    fn add_at_the_root_replaces_the_document() {
        let out = patch(
            json!({"a": 1}),
            json!([{"op": "add", "path": "", "value": [1]}]),
        )
        .unwrap();
        assert_eq!(out, json!([1]));
    }

    #[test]
    fn add_to_a_missing_parent_reports_path_not_found_with_index() {
        let err = patch(
            json!({}),
            json!([{"op": "add", "path": "/a/b", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::PathNotFound {
                index: 0,
                op: "add".into(),
                path: "/a/b".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "json patch operation 0 (add) failed: path \"/a/b\" not found"
        );
    }

    #[test]
    fn add_past_the_end_of_an_array_is_an_invalid_index() {
        let err = patch(
            json!({"l": [1]}),
            json!([{"op": "add", "path": "/l/2", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidIndex { index: 0, .. }), "{err}");
    }

    #[test]
    fn array_indexes_with_leading_zeros_are_rejected() {
        let err = patch(
            json!({"l": [1, 2]}),
            json!([{"op": "remove", "path": "/l/01"}]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidIndex { .. }), "{err}");
    }

    #[test]
    fn remove_deletes_members_and_elements() {
        let out = patch(
            json!({"a": 1, "b": 2, "l": [1, 2, 3]}),
            json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/l/0"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"b": 2, "l": [2, 3]}));
    }

    #[test]
    fn remove_of_a_missing_member_fails_and_names_the_operation() {
        let err = patch(
            json!({"a": 1}),
            json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/a"}]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::PathNotFound {
                index: 1,
                op: "remove".into(),
                path: "/a".into()
            }
        );
    }

    #[test]
    fn replace_requires_the_target_to_exist() {
        let ok = patch(
            json!({"a": 1}),
            json!([{"op": "replace", "path": "/a", "value": [2]}]),
        )
        .unwrap();
        assert_eq!(ok, json!({"a": [2]}));
        let err = patch(
            json!({}),
            json!([{"op": "replace", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::PathNotFound { .. }));
    }

    #[test]
    fn move_relocates_a_value() {
        let out = patch(
            json!({"a": {"x": 1}, "b": {}}),
            json!([{"op": "move", "from": "/a/x", "path": "/b/y"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {}, "b": {"y": 1}}));
    }

    #[test]
    fn move_within_an_array_reorders_elements() {
        let out = patch(
            json!([1, 2, 3]),
            json!([{"op": "move", "from": "/0", "path": "/-"}]),
        )
        .unwrap();
        assert_eq!(out, json!([2, 3, 1]));
    }

    #[test]
    fn move_into_its_own_child_is_rejected() {
        let err = patch(
            json!({"a": {"b": {}}}),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::MoveIntoChild { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn copy_duplicates_a_value() {
        let out = patch(
            json!({"a": [1]}),
            json!([{"op": "copy", "from": "/a", "path": "/b"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": [1], "b": [1]}));
    }

    #[test]
    fn test_passes_on_equal_values_and_compares_numbers_numerically() {
        let doc = json!({"n": 1, "o": {"a": 1, "b": [1, "x"]}});
        patch(
            doc.clone(),
            json!([{"op": "test", "path": "/n", "value": 1.0}]),
        )
        .unwrap();
        patch(
            doc,
            json!([{"op": "test", "path": "/o", "value": {"b": [1, "x"], "a": 1}}]),
        )
        .unwrap();
    }

    #[test]
    fn test_failure_reports_index_and_path() {
        let err = patch(
            json!({"spec": {"replicas": 1}}),
            json!([
                {"op": "add", "path": "/x", "value": 1},
                {"op": "test", "path": "/spec/replicas", "value": 2}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::TestFailed {
                index: 1,
                path: "/spec/replicas".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "json patch operation 1 (test) failed: value at path \"/spec/replicas\" does not match"
        );
    }

    #[test]
    fn escaped_tokens_address_keys_with_slashes_and_tildes() {
        let out = patch(
            json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "a~b": 1}}}),
            json!([
                {"op": "replace", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "y"},
                {"op": "remove", "path": "/metadata/labels/a~0b"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"app.kubernetes.io/name": "y"}}})
        );
    }

    #[test]
    fn malformed_operations_are_rejected() {
        for ops in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "remove", "path": "/a~2"}]),
            json!([{"op": "move", "path": "/a"}]),
            json!(["add"]),
        ] {
            assert!(json_patch(&json!({"a": 1}), &ops).is_err(), "{ops}");
        }
    }

    #[test]
    fn a_failing_operation_leaves_no_partial_result() {
        let doc = json!({"a": 1});
        let result = json_patch(
            &doc,
            &json!([{"op": "remove", "path": "/a"}, {"op": "test", "path": "/a", "value": 1}]),
        );
        assert!(result.is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn add_with_a_null_value_stores_null() {
        let out = patch(
            json!({}),
            json!([{"op": "add", "path": "/a", "value": null}]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": null}));
    }

    #[test]
    fn removing_the_whole_document_is_rejected_but_moving_onto_itself_is_a_no_op() {
        assert!(patch(json!({"a": 1}), json!([{"op": "remove", "path": ""}])).is_err());
        let out = patch(
            json!({"a": 1}),
            json!([{"op": "move", "from": "/a", "path": "/a"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 1}));
    }
}

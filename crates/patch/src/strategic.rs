//! Kubernetes strategic merge patch, as kubectl sends it for built-in kinds.
//!
//! Maps merge recursively and `null` deletes a field. Lists follow the [`PatchMeta`]: atomic
//! lists are replaced, lists with a merge key merge element by element, primitive sets are
//! unioned. Directives:
//!
//! - `$patch: replace` (map content replaces the original map), `$patch: delete` (the map
//!   becomes empty), `$patch: merge` (the default, accepted and ignored);
//! - in a keyed list, an element `{key: v, $patch: delete}` deletes element `v`, and an
//!   element `{$patch: replace}` makes the other elements replace the list;
//! - `$retainKeys: [...]` drops original fields not listed;
//! - `$deleteFromPrimitiveList/<field>: [...]` removes values from a primitive list;
//! - `$setElementOrder/<field>: [...]` orders the merged list.
//!
//! Element order follows Kubernetes: elements named by the patch (or by `$setElementOrder`)
//! take the patch's order, and elements only on the server keep their relative order,
//! interleaved by their original positions.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::json_patch::json_equal;
use crate::meta::{ListStrategy, PatchMeta};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to a copy of `doc`, using `meta` to decide how lists merge.
///
/// `null` values never end up in the result: a `null` for a field missing from `doc` is
/// dropped, like Kubernetes does for server-side strategic merge patches.
///
/// # Errors
///
/// [`Error::NotAnObject`] when `doc` or `patch` is not an object; [`Error::InvalidDirective`]
/// for malformed directives; [`Error::MissingMergeKey`] when an element of a keyed list lacks
/// the key.
pub fn strategic_merge_patch(doc: &Value, patch: &Value, meta: &dyn PatchMeta) -> Result<Value> {
    let patch = patch
        .as_object()
        .ok_or(Error::NotAnObject { what: "patch" })?;
    let original = match doc {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(Error::NotAnObject { what: "document" }),
    };
    let mut merger = Merger {
        meta,
        names: Vec::new(),
    };
    merger.merge_map(original, patch).map(Value::Object)
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER)
        || key.starts_with(DELETE_PRIMITIVES)
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_object() || v.is_array())
}

/// Walks a patch, tracking the field path so list strategies can be looked up.
struct Merger<'a> {
    meta: &'a dyn PatchMeta,
    names: Vec<String>,
}

impl Merger<'_> {
    /// The current field path, dotted (`.spec.containers`), for error messages.
    fn location(&self) -> String {
        if self.names.is_empty() {
            ".".to_owned()
        } else {
            self.names.iter().map(|n| format!(".{n}")).collect()
        }
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidDirective {
            path: self.location(),
            reason,
        }
    }

    fn strategy(&self) -> Option<ListStrategy> {
        let path: Vec<&str> = self.names.iter().map(String::as_str).collect();
        self.meta.list_strategy(&path)
    }

    /// Runs `f` with `field` appended to the current path.
    fn within<T>(&mut self, field: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.names.push(field.to_owned());
        let out = f(self);
        self.names.pop();
        out
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        if let Some(directive) = patch.get(PATCH) {
            match directive.as_str() {
                Some("replace") => {
                    let mut rest = patch.clone();
                    rest.shift_remove(PATCH);
                    return self.merge_map(Map::new(), &rest);
                }
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => return Err(self.invalid(format!("unknown $patch value {directive}"))),
            }
        }
        if let Some(keys) = patch.get(RETAIN_KEYS) {
            self.retain_keys(&mut original, patch, keys)?;
        }
        for (key, values) in patch {
            let Some(field) = key.strip_prefix(DELETE_PRIMITIVES) else {
                continue;
            };
            let values = values
                .as_array()
                .ok_or_else(|| self.invalid(format!("{key} must be a list")))?;
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|item| !values.iter().any(|v| json_equal(v, item)));
            }
        }
        for (key, value) in patch {
            if is_directive(key) {
                continue;
            }
            if value.is_null() {
                original.shift_remove(key);
                continue;
            }
            let order = patch.get(&format!("{SET_ORDER}{key}"));
            let current = original.get(key);
            let merged = self.within(key, |m| m.merge_value(current, value, order))?;
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
        }
        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ORDER) else {
                continue;
            };
            if patch.contains_key(field) {
                continue;
            }
            if let Some(Value::Array(items)) = original.get(field) {
                let items = items.clone();
                let ordered = self.within(field, |m| m.merge_list(items, &[], Some(order)))?;
                original.insert(field.to_owned(), Value::Array(ordered));
            }
        }
        Ok(original)
    }

    /// Merges one field's patch value into its current value; `None` leaves the field absent.
    fn merge_value(
        &mut self,
        current: Option<&Value>,
        patch: &Value,
        order: Option<&Value>,
    ) -> Result<Option<Value>> {
        Ok(Some(match (current, patch) {
            (Some(Value::Object(cur)), Value::Object(p)) => {
                Value::Object(self.merge_map(cur.clone(), p)?)
            }
            (None, Value::Object(p)) if p.get(PATCH).and_then(Value::as_str) == Some("delete") => {
                return Ok(None)
            }
            (_, Value::Object(p)) => Value::Object(self.merge_map(Map::new(), p)?),
            (Some(Value::Array(cur)), Value::Array(p)) => {
                Value::Array(self.merge_list(cur.clone(), p, order)?)
            }
            (_, Value::Array(p)) => Value::Array(self.merge_list(Vec::new(), p, order)?),
            (_, scalar) => scalar.clone(),
        }))
    }

    fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        keys: &Value,
    ) -> Result<()> {
        let keys = keys
            .as_array()
            .and_then(|list| list.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.invalid("$retainKeys must be a list of strings".into()))?;
        for (key, value) in patch {
            if !value.is_null() && !is_directive(key) && !keys.contains(&key.as_str()) {
                return Err(self.invalid(format!("field {key:?} is not listed in $retainKeys")));
            }
        }
        original.retain(|key, _| keys.contains(&key.as_str()));
        Ok(())
    }

    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: &[Value],
        order: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let mut regular = Vec::new();
        let mut deletes = Vec::new();
        let mut replace = false;
        for element in patch {
            match element.as_object().and_then(|m| m.get(PATCH)) {
                None => regular.push(element),
                Some(d) => match d.as_str() {
                    Some("replace") => replace = true,
                    Some("delete") => deletes.push(element),
                    Some("merge") => regular.push(element),
                    _ => {
                        return Err(
                            self.invalid(format!("unknown $patch value {d} in list element"))
                        )
                    }
                },
            }
        }
        let Some(strategy) = self.strategy() else {
            return Ok(regular.into_iter().cloned().collect());
        };
        let mut original = if replace { Vec::new() } else { original };
        let key = strategy.merge_key.as_deref();
        for element in deletes {
            let Some(key) = key else {
                return Err(self.invalid("$patch: delete needs a list with a merge key".into()));
            };
            let value = element.get(key).ok_or_else(|| self.missing_key(key))?;
            original.retain(|item| !item.get(key).is_some_and(|v| json_equal(v, value)));
        }
        let maps = regular.iter().all(|v| v.is_object()) && original.iter().all(Value::is_object);
        let scalars = regular.iter().all(|v| is_scalar(v)) && original.iter().all(is_scalar);
        let identity = |v: &Value| -> Option<Value> {
            match key {
                Some(key) if maps => v.get(key).cloned(),
                _ => Some(v.clone()),
            }
        };
        let merged = match key {
            Some(key) if maps => self.merge_keyed(&original, &regular, key)?,
            _ if scalars => {
                let mut out: Vec<Value> = Vec::new();
                for item in original.iter().chain(regular.iter().copied()) {
                    if !out.iter().any(|seen| json_equal(seen, item)) {
                        out.push(item.clone());
                    }
                }
                out
            }
            // Mixed or keyless object lists cannot merge; the patch replaces them.
            _ => return Ok(regular.into_iter().cloned().collect()),
        };
        let patch_order: Vec<Value> = match order {
            Some(Value::Array(list)) => list.iter().filter_map(identity).collect(),
            Some(_) => return Err(self.invalid("$setElementOrder must be a list".into())),
            None => regular.iter().filter_map(|v| identity(v)).collect(),
        };
        let server_order: Vec<Value> = original.iter().filter_map(identity).collect();
        Ok(order_elements(
            merged,
            &patch_order,
            &server_order,
            identity,
        ))
    }

    fn merge_keyed(
        &mut self,
        original: &[Value],
        patch: &[&Value],
        key: &str,
    ) -> Result<Vec<Value>> {
        let mut merged = original.to_vec();
        for element in patch {
            let Value::Object(fields) = element else {
                continue;
            };
            let value = fields.get(key).ok_or_else(|| self.missing_key(key))?;
            let position = merged
                .iter()
                .position(|m| m.get(key).is_some_and(|v| json_equal(v, value)));
            match position {
                Some(i) => {
                    let current = match merged[i].take() {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    merged[i] = Value::Object(self.merge_map(current, fields)?);
                }
                None => merged.push(Value::Object(self.merge_map(Map::new(), fields)?)),
            }
        }
        Ok(merged)
    }

    fn missing_key(&self, key: &str) -> Error {
        Error::MissingMergeKey {
            path: self.location(),
            key: key.to_owned(),
        }
    }
}

/// Orders a merged list: elements named in `patch_order` come in that order, the others keep
/// their order, and the two runs interleave by position in `server_order` where both
/// elements have one (an element new to the server goes before the remaining server-only ones).
fn order_elements(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: impl Fn(&Value) -> Option<Value>,
) -> Vec<Value> {
    let position = |list: &[Value], v: &Value| {
        identity(v).and_then(|id| list.iter().position(|x| json_equal(x, &id)))
    };
    let (mut from_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(patch_order, v).is_some());
    from_patch.sort_by_key(|v| position(patch_order, v));
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut patch_iter = from_patch.into_iter().peekable();
    let mut server_iter = server_only.into_iter().peekable();
    while let (Some(s), Some(p)) = (server_iter.peek(), patch_iter.peek()) {
        let server_first = matches!(
            (position(server_order, s), position(server_order, p)),
            (Some(a), Some(b)) if a < b
        );
        let next = if server_first {
            server_iter.next()
        } else {
            patch_iter.next()
        };
        out.extend(next);
    }
    out.extend(server_iter);
    out.extend(patch_iter);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_meta::CoreKindsMeta;
    use serde_json::json;

    /// The schema of Kubernetes' own strategic merge patch tests: `mergingList` by `name`,
    /// `mergingIntList` a set, everything else atomic; nested lists use the same names.
    fn test_meta(path: &[&str]) -> Option<ListStrategy> {
        match path.last() {
            Some(&"mergingList") | Some(&"retainKeysMergingList") => {
                Some(ListStrategy::by_key("name"))
            }
            Some(&"mergingIntList") => Some(ListStrategy::set()),
            _ => None,
        }
    }

    fn smp(doc: Value, patch: Value) -> Value {
        strategic_merge_patch(&doc, &patch, &test_meta).unwrap()
    }

    #[test]
    fn maps_merge_recursively_and_null_deletes() {
        let out = smp(
            json!({"a": 1, "m": {"x": 1, "y": 2}}),
            json!({"b": 2, "m": {"y": null, "z": 3}, "gone": null}),
        );
        assert_eq!(out, json!({"a": 1, "m": {"x": 1, "z": 3}, "b": 2}));
    }

    #[test]
    fn nulls_for_missing_fields_are_dropped_even_in_new_maps() {
        let out = smp(
            json!({}),
            json!({"metadata": {"labels": {"a": null, "b": "x"}}}),
        );
        assert_eq!(out, json!({"metadata": {"labels": {"b": "x"}}}));
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let out = smp(
            json!({"nonMergingList": [{"name": 1}, {"name": 2}]}),
            json!({"nonMergingList": [{"name": 3}]}),
        );
        assert_eq!(out, json!({"nonMergingList": [{"name": 3}]}));
    }

    #[test]
    fn keyed_lists_merge_elements_by_key() {
        let out = smp(
            json!({"mergingList": [{"name": 1, "value": "a"}, {"name": 2, "value": "b"}]}),
            json!({"mergingList": [{"name": 2, "other": "x"}]}),
        );
        assert_eq!(
            out,
            json!({"mergingList": [{"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]})
        );
    }

    #[test]
    fn keyed_list_elements_merge_nested_fields_and_nulls() {
        let out = smp(
            json!({"mergingList": [{"name": "a", "value": 1, "other": 2}]}),
            json!({"mergingList": [{"name": "a", "value": null}]}),
        );
        assert_eq!(out, json!({"mergingList": [{"name": "a", "other": 2}]}));
    }

    #[test]
    fn keyed_list_takes_the_patch_order_and_interleaves_server_only_elements() {
        let out = smp(
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
        );
        assert_eq!(
            out,
            json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]})
        );
    }

    #[test]
    fn element_delete_directive_removes_every_match() {
        let out = smp(
            json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
        );
        assert_eq!(out, json!({"mergingList": [{"name": 2, "value": "a"}]}));
    }

    #[test]
    fn element_replace_directive_replaces_the_list() {
        let out = smp(
            json!({"mergingList": [{"name": 1}, {"name": 2}]}),
            json!({"mergingList": [{"$patch": "replace"}, {"name": 3, "value": null}]}),
        );
        assert_eq!(out, json!({"mergingList": [{"name": 3}]}));
        let emptied = smp(
            json!({"mergingList": [{"name": 1}]}),
            json!({"mergingList": [{"$patch": "replace"}]}),
        );
        assert_eq!(emptied, json!({"mergingList": []}));
    }

    #[test]
    fn map_directives_replace_delete_and_merge() {
        assert_eq!(
            smp(json!({"name": 1, "value": 1}), json!({"$patch": "replace"})),
            json!({})
        );
        assert_eq!(
            smp(
                json!({"name": 1, "value": 1}),
                json!({"other": "a", "$patch": "replace"})
            ),
            json!({"other": "a"})
        );
        assert_eq!(
            smp(
                json!({"simpleMap": {"k": 1}, "x": 1}),
                json!({"simpleMap": {"$patch": "delete"}})
            ),
            json!({"simpleMap": {}, "x": 1})
        );
        assert_eq!(
            smp(json!({"x": 1}), json!({"y": {"$patch": "delete"}})),
            json!({"x": 1})
        );
        assert_eq!(
            smp(
                json!({"m": {"a": 1}}),
                json!({"m": {"$patch": "merge", "b": 2}})
            ),
            json!({"m": {"a": 1, "b": 2}})
        );
    }

    #[test]
    fn unknown_patch_directive_is_an_error() {
        let err =
            strategic_merge_patch(&json!({}), &json!({"m": {"$patch": "explode"}}), &test_meta)
                .unwrap_err();
        assert!(
            matches!(err, Error::InvalidDirective { ref path, .. } if path == ".m"),
            "{err}"
        );
    }

    #[test]
    fn primitive_sets_are_unioned_without_duplicates() {
        let out = smp(
            json!({"mergingIntList": [1, 2]}),
            json!({"mergingIntList": [2, 3]}),
        );
        assert_eq!(out, json!({"mergingIntList": [1, 2, 3]}));
    }

    #[test]
    fn new_set_values_come_before_server_only_values() {
        let out = smp(
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"mergingIntList": [3, 1]}),
        );
        assert_eq!(out, json!({"mergingIntList": [2, 3, 1]}));
    }

    #[test]
    fn delete_from_primitive_list_removes_values_from_any_list() {
        let out = smp(
            json!({"mergingIntList": [1, 2, 3, 3, 4], "nonMergingIntList": [1, 2]}),
            json!({
                "$setElementOrder/mergingIntList": [1, 2],
                "$deleteFromPrimitiveList/mergingIntList": [3],
                "$deleteFromPrimitiveList/nonMergingIntList": [2],
                "$deleteFromPrimitiveList/absent": [2]
            }),
        );
        assert_eq!(
            out,
            json!({"mergingIntList": [1, 2, 4], "nonMergingIntList": [1]})
        );
    }

    #[test]
    fn set_element_order_orders_the_merged_keyed_list() {
        let out = smp(
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]
            }),
        );
        assert_eq!(
            out,
            json!({"mergingList": [
                {"name": 4, "value": 4},
                {"name": 1, "other": "a"},
                {"name": 2, "value": 2, "other": "b"},
                {"name": 3, "value": 3}
            ]})
        );
    }

    #[test]
    fn set_element_order_alone_reorders_and_ignores_unknown_entries() {
        let out = smp(
            json!({"mergingIntList": [1, 3]}),
            json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
        );
        assert_eq!(out, json!({"mergingIntList": [3, 1]}));
    }

    #[test]
    fn retain_keys_drops_unlisted_original_fields() {
        let out = smp(
            json!({"retainKeysMergingList": [{"name": "v", "emptyDir": {}, "other": 1}]}),
            json!({"retainKeysMergingList": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]}),
        );
        assert_eq!(
            out,
            json!({"retainKeysMergingList": [{"name": "v", "configMap": {"name": "c"}}]})
        );
    }

    #[test]
    fn retain_keys_must_list_every_field_the_patch_sets() {
        let err = strategic_merge_patch(
            &json!({}),
            &json!({"$retainKeys": ["a"], "b": 1}),
            &test_meta,
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidDirective { .. }), "{err}");
    }

    #[test]
    fn keyed_list_element_without_the_key_is_rejected() {
        let err = strategic_merge_patch(
            &json!({"mergingList": [{"name": 1}]}),
            &json!({"mergingList": [{"value": "b"}]}),
            &test_meta,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::MissingMergeKey {
                path: ".mergingList".into(),
                key: "name".into()
            }
        );
    }

    #[test]
    fn new_nested_lists_are_merged_into_nothing_so_directives_do_not_leak() {
        let out = smp(
            json!({}),
            json!({"mergingList": [{"name": "a", "mergingList": [{"name": "x", "$patch": "delete"}, {"name": "y"}]}]}),
        );
        assert_eq!(
            out,
            json!({"mergingList": [{"name": "a", "mergingList": [{"name": "y"}]}]})
        );
    }

    #[test]
    fn type_changes_take_the_patch_value() {
        let out = smp(
            json!({"a": [1], "b": {"x": 1}, "c": 1}),
            json!({"a": {"x": 1}, "b": 2, "c": [1]}),
        );
        assert_eq!(out, json!({"a": {"x": 1}, "b": 2, "c": [1]}));
    }

    #[test]
    fn non_object_patch_or_document_is_rejected() {
        assert!(strategic_merge_patch(&json!({}), &json!([1]), &test_meta).is_err());
        assert!(strategic_merge_patch(&json!([1]), &json!({}), &test_meta).is_err());
    }

    #[test]
    fn kubectl_client_side_apply_patch_for_a_pod_merges_containers() {
        let live = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a"]},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "busybox"}
            ]}
        });
        let patch = json!({
            "metadata": {"labels": {"tier": null}, "finalizers": ["b"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                "containers": [{
                    "name": "web", "image": "nginx:2",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "$patch": "delete"}]
                }]
            }
        });
        let out = strategic_merge_patch(&live, &patch, &CoreKindsMeta::for_kind("Pod")).unwrap();
        assert_eq!(
            out,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {"app": "web"}, "finalizers": ["b", "a"]},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "ports": []},
                    {"name": "side", "image": "busybox"}
                ]}
            })
        );
    }

    #[test]
    fn unknown_kinds_replace_lists_like_merge_patch() {
        let meta = CoreKindsMeta::for_kind("VirtualMachine");
        let out = strategic_merge_patch(
            &json!({"spec": {"disks": [{"name": "a"}]}}),
            &json!({"spec": {"disks": [{"name": "b"}]}}),
            &meta,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"disks": [{"name": "b"}]}}));
    }

    #[test]
    fn kubectl_apply_removing_a_finalizer_and_a_service_port_uses_directives() {
        let live = json!({
            "metadata": {"name": "s", "finalizers": ["a", "b"]},
            "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}
        });
        let patch = json!({
            "metadata": {"$setElementOrder/finalizers": ["a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
            "spec": {"$setElementOrder/ports": [{"port": 443}], "ports": [{"port": 80, "$patch": "delete"}]}
        });
        let out =
            strategic_merge_patch(&live, &patch, &CoreKindsMeta::for_kind("Service")).unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": {"name": "s", "finalizers": ["a"]},
                "spec": {"ports": [{"port": 443, "name": "https"}]}
            })
        );
    }
}

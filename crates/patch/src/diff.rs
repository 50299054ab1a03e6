//! Walking objects as field sets: the set an apply configuration claims, and the paths that
//! changed between two versions of an object.

use serde_json::Value;

use crate::fields::{FieldSet, Path, PathElement};
use crate::json_patch::json_equal;
use crate::meta::{ListStrategy, PatchMeta};

/// How server-side apply treats a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Objects identified by the value of a key field.
    Associative(String),
    /// Distinct primitives.
    Set,
    /// Owned and replaced as a whole.
    Atomic,
}

/// Paths added, modified and removed between two versions of an object.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// Paths whose value is new or different: what an update takes ownership of.
    pub(crate) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Top-level fields that every object of a kind has, so they never count as newly added
/// nodes (Kubernetes compares against a typed empty object, which already holds them).
const ALWAYS_PRESENT: &[&str] = &["metadata", "spec", "status"];

/// Walks values while tracking the field-name path used to look up list strategies.
pub(crate) struct Walker<'a> {
    meta: &'a dyn PatchMeta,
    names: Vec<String>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(meta: &'a dyn PatchMeta) -> Self {
        Self {
            meta,
            names: Vec::new(),
        }
    }

    fn strategy(&self) -> Option<ListStrategy> {
        let path: Vec<&str> = self.names.iter().map(String::as_str).collect();
        self.meta.list_strategy(&path)
    }

    /// Dotted location of the current list, for messages.
    fn location(&self) -> String {
        self.names.iter().map(|n| format!(".{n}")).collect()
    }

    /// Classifies the list at the current path, checking that its items fit: associative
    /// lists need objects with distinct, present keys; sets need distinct primitives.
    pub(crate) fn classify(&self, items: &[Value]) -> Result<ListKind, String> {
        let Some(strategy) = self.strategy() else {
            return Ok(ListKind::Atomic);
        };
        let mut seen: Vec<PathElement> = Vec::with_capacity(items.len());
        let location = || self.location();
        match strategy.merge_key {
            Some(key) => {
                for item in items {
                    let value = item
                        .as_object()
                        .and_then(|m| m.get(&key))
                        .filter(|v| !v.is_null())
                        .ok_or_else(|| {
                            format!("{}: element omits key field {key:?}", location())
                        })?;
                    let element = PathElement::key(&key, value);
                    if seen.contains(&element) {
                        return Err(format!(
                            "{}: duplicate entries for key {element}",
                            location()
                        ));
                    }
                    seen.push(element);
                }
                Ok(ListKind::Associative(key))
            }
            None => {
                for item in items {
                    if item.is_object() || item.is_array() {
                        return Err(format!("{}: set element is not a primitive", location()));
                    }
                    let element = PathElement::value(item);
                    if seen.contains(&element) {
                        return Err(format!("{}: duplicate set entry {element}", location()));
                    }
                    seen.push(element);
                }
                Ok(ListKind::Set)
            }
        }
    }

    /// Like [`Walker::classify`], but data that does not fit makes the list atomic.
    pub(crate) fn classify_lenient(&self, items: &[Value]) -> ListKind {
        self.classify(items).unwrap_or(ListKind::Atomic)
    }

    pub(crate) fn push(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    pub(crate) fn pop(&mut self) {
        self.names.pop();
    }

    /// The field set an apply configuration claims: its leaves, plus each associative-list
    /// element itself. Empty maps and lists count as leaves.
    ///
    /// # Errors
    ///
    /// A message naming the list when an associative list or set is malformed.
    pub(crate) fn config_set(&mut self, config: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::default();
        let mut path = Vec::new();
        self.collect_config(config, &mut path, &mut out)?;
        Ok(out)
    }

    fn collect_config(
        &mut self,
        value: &Value,
        path: &mut Path,
        out: &mut FieldSet,
    ) -> Result<(), String> {
        match value {
            Value::Object(map) => {
                if map.is_empty() && !path.is_empty() {
                    out.insert(path.clone());
                }
                for (name, child) in map {
                    if child.is_null() {
                        continue;
                    }
                    path.push(PathElement::Field(name.clone()));
                    self.push(name);
                    let result = self.collect_config(child, path, out);
                    self.pop();
                    path.pop();
                    result?;
                }
            }
            Value::Array(items) => {
                let kind = self.classify(items)?;
                if items.is_empty() || kind == ListKind::Atomic {
                    out.insert(path.clone());
                }
                for item in items {
                    match &kind {
                        ListKind::Associative(key) => {
                            path.push(PathElement::key(key, item.get(key).unwrap_or(&Value::Null)));
                            out.insert(path.clone());
                            let result = self.collect_config(item, path, out);
                            path.pop();
                            result?;
                        }
                        ListKind::Set => {
                            path.push(PathElement::value(item));
                            out.insert(path.clone());
                            path.pop();
                        }
                        ListKind::Atomic => {}
                    }
                }
            }
            _ => out.insert(path.clone()),
        }
        Ok(())
    }

    /// Compares two versions of an object.
    pub(crate) fn compare(&mut self, old: &Value, new: &Value) -> Comparison {
        let mut cmp = Comparison::default();
        let mut path = Vec::new();
        self.diff(old, new, &mut path, &mut cmp);
        cmp
    }

    fn diff(&mut self, old: &Value, new: &Value, path: &mut Path, cmp: &mut Comparison) {
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                for (name, nv) in n.iter().filter(|(_, v)| !v.is_null()) {
                    path.push(PathElement::Field(name.clone()));
                    self.push(name);
                    match o.get(name).filter(|v| !v.is_null()) {
                        Some(ov) => self.diff(ov, nv, path, cmp),
                        None => self.subtree(nv, path, &mut cmp.added),
                    }
                    self.pop();
                    path.pop();
                }
                for (name, ov) in o.iter().filter(|(_, v)| !v.is_null()) {
                    if n.get(name).is_some_and(|v| !v.is_null()) {
                        continue;
                    }
                    path.push(PathElement::Field(name.clone()));
                    self.push(name);
                    self.subtree(ov, path, &mut cmp.removed);
                    self.pop();
                    path.pop();
                }
            }
            (Value::Array(o), Value::Array(n)) => {
                match (self.classify_lenient(o), self.classify_lenient(n)) {
                    (ListKind::Associative(key), ListKind::Associative(_)) => {
                        let element = |item: &Value| {
                            PathElement::key(&key, item.get(&key).unwrap_or(&Value::Null))
                        };
                        for nv in n {
                            path.push(element(nv));
                            match o.iter().find(|ov| element(ov) == path[path.len() - 1]) {
                                Some(ov) => self.diff(ov, nv, path, cmp),
                                None => self.subtree(nv, path, &mut cmp.added),
                            }
                            path.pop();
                        }
                        for ov in o {
                            let el = element(ov);
                            if !n.iter().any(|nv| element(nv) == el) {
                                path.push(el);
                                self.subtree(ov, path, &mut cmp.removed);
                                path.pop();
                            }
                        }
                    }
                    (ListKind::Set, ListKind::Set) => {
                        for nv in n.iter().filter(|nv| !o.iter().any(|ov| json_equal(ov, nv))) {
                            path.push(PathElement::value(nv));
                            cmp.added.insert(path.clone());
                            path.pop();
                        }
                        for ov in o.iter().filter(|ov| !n.iter().any(|nv| json_equal(ov, nv))) {
                            path.push(PathElement::value(ov));
                            cmp.removed.insert(path.clone());
                            path.pop();
                        }
                    }
                    _ => {
                        if !json_equal(old, new) {
                            cmp.modified.insert(path.clone());
                        }
                    }
                }
            }
            (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
                // The value changed shape: the node itself is modified, its old content
                // removed and its new content added.
                cmp.modified.insert(path.clone());
                let mut below = FieldSet::default();
                self.subtree(old, path, &mut below);
                cmp.removed = cmp.removed.union(&below.difference(&cmp.modified));
                let mut below = FieldSet::default();
                self.subtree(new, path, &mut below);
                cmp.added = cmp.added.union(&below.difference(&cmp.modified));
            }
            _ => {
                if !json_equal(old, new) {
                    cmp.modified.insert(path.clone());
                }
            }
        }
    }

    /// Every path of `value` at `path`, the node itself included (as Kubernetes marks newly
    /// created maps, lists and list elements with `"."`).
    fn subtree(&mut self, value: &Value, path: &mut Path, out: &mut FieldSet) {
        let always_present = matches!(path.as_slice(), [PathElement::Field(n)] if ALWAYS_PRESENT.contains(&n.as_str()));
        let is_empty = match value {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => true,
        };
        if !path.is_empty() && (!always_present || is_empty) {
            out.insert(path.clone());
        }
        match value {
            Value::Object(map) => {
                for (name, child) in map.iter().filter(|(_, v)| !v.is_null()) {
                    path.push(PathElement::Field(name.clone()));
                    self.push(name);
                    self.subtree(child, path, out);
                    self.pop();
                    path.pop();
                }
            }
            Value::Array(items) => match self.classify_lenient(items) {
                ListKind::Associative(key) => {
                    for item in items {
                        path.push(PathElement::key(
                            &key,
                            item.get(&key).unwrap_or(&Value::Null),
                        ));
                        self.subtree(item, path, out);
                        path.pop();
                    }
                }
                ListKind::Set => {
                    for item in items {
                        path.push(PathElement::value(item));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                ListKind::Atomic => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_meta::CoreKindsMeta;
    use serde_json::json;

    fn members(set: &FieldSet) -> Vec<String> {
        set.iter().map(|p| crate::fields::path_string(p)).collect()
    }

    #[test]
    fn config_set_holds_leaves_and_keyed_elements_but_not_plain_maps() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let config = json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["a"], "annotations": {}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "args": ["x"]}]}
        });
        let set = Walker::new(&meta).config_set(&config).unwrap();
        assert_eq!(
            members(&set),
            vec![
                ".metadata.annotations",
                ".metadata.finalizers[=\"a\"]",
                ".metadata.labels.app",
                ".spec.containers[name=\"web\"]",
                ".spec.containers[name=\"web\"].args",
                ".spec.containers[name=\"web\"].image",
                ".spec.containers[name=\"web\"].name",
            ]
        );
    }

    #[test]
    fn config_set_rejects_keyless_and_duplicate_elements() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let keyless = json!({"spec": {"containers": [{"image": "x"}]}});
        let err = Walker::new(&meta).config_set(&keyless).unwrap_err();
        assert!(
            err.contains(".spec.containers") && err.contains("name"),
            "{err}"
        );
        let dup = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert!(Walker::new(&meta)
            .config_set(&dup)
            .unwrap_err()
            .contains("duplicate"));
    }

    #[test]
    fn compare_reports_added_modified_and_removed_paths() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let old = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "web", "image": "v1"}, {"name": "old"}], "tolerations": [1]}
        });
        let new = json!({
            "metadata": {"labels": {"a": "9"}, "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "web", "image": "v2"}], "tolerations": [2]}
        });
        let cmp = Walker::new(&meta).compare(&old, &new);
        assert_eq!(
            members(&cmp.added),
            vec![".metadata.annotations", ".metadata.annotations.x"]
        );
        assert_eq!(
            members(&cmp.modified),
            vec![
                ".metadata.labels.a",
                ".spec.containers[name=\"web\"].image",
                ".spec.tolerations"
            ]
        );
        assert_eq!(
            members(&cmp.removed),
            vec![
                ".metadata.labels.b",
                ".spec.containers[name=\"old\"]",
                ".spec.containers[name=\"old\"].name"
            ]
        );
    }

    #[test]
    fn compare_from_nothing_marks_new_nodes_but_not_top_level_sections() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let cmp = Walker::new(&meta).compare(
            &json!({}),
            &json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}}),
        );
        assert_eq!(
            members(&cmp.added),
            vec![".data", ".data.k", ".metadata.labels", ".metadata.labels.a"]
        );
    }

    #[test]
    fn compare_treats_numbers_numerically_and_ignores_nulls() {
        let meta = crate::meta::AtomicLists;
        let cmp = Walker::new(&meta).compare(&json!({"a": 1, "n": null}), &json!({"a": 1.0}));
        assert!(cmp.is_empty(), "{cmp:?}");
    }

    #[test]
    fn malformed_live_lists_are_compared_atomically() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let old = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        let new = json!({"spec": {"containers": [{"name": "a"}]}});
        let cmp = Walker::new(&meta).compare(&old, &new);
        assert_eq!(members(&cmp.modified), vec![".spec.containers"]);
    }
}

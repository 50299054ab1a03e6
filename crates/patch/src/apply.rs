//! Server-side apply: merging an apply configuration into the live object, pruning fields
//! the applier stopped applying, and detecting conflicts with other field managers.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::diff::{ListKind, Walker};
use crate::fields::{path_string, FieldSet, PathElement};
use crate::json_patch::json_equal;
use crate::managed::{
    read_entries, strip_managed_fields, tracked, write_entries, Actor, Entry, Operation,
};
use crate::meta::PatchMeta;

/// The manager Kubernetes credits with every field of an object applied to for the first
/// time while it has no managed fields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Parameters of one server-side apply request.
pub struct ApplyOptions<'a> {
    /// The field manager (`fieldManager` query parameter), e.g. `kubectl`.
    pub manager: String,
    /// Take ownership of conflicting fields instead of failing (`force=true`).
    pub force: bool,
    /// `apiVersion` recorded in the managed fields entry, e.g. `apps/v1`.
    pub api_version: String,
    /// RFC 3339 timestamp recorded in the managed fields entry.
    pub time: String,
    /// List strategies of the object's kind.
    pub meta: &'a dyn PatchMeta,
    /// `Some("status")` when applying through the status subresource, which tracks only
    /// `status`; `None` for the main resource, which tracks everything else.
    pub subresource: Option<String>,
}

impl<'a> ApplyOptions<'a> {
    /// Options for a non-forced apply to the main resource.
    pub fn new(manager: &str, api_version: &str, time: &str, meta: &'a dyn PatchMeta) -> Self {
        Self {
            manager: manager.to_owned(),
            force: false,
            api_version: api_version.to_owned(),
            time: time.to_owned(),
            meta,
            subresource: None,
        }
    }
}

/// One field the apply configuration would change but another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// How the other manager got the field.
    pub operation: Operation,
    /// The API version of the other manager's entry.
    pub api_version: String,
    /// The subresource of the other manager's entry, if any.
    pub subresource: Option<String>,
    /// The field in Kubernetes' path notation, e.g. `.spec.replicas` or
    /// `.spec.containers[name="web"].image`.
    pub field: String,
}

impl Conflict {
    /// The manager as Kubernetes prints it: `"kubectl"` for appliers, `"kube-controller-manager"
    /// using apps/v1` for updaters, with ` with subresource "status"` when relevant.
    pub fn manager_description(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// `conflict with "manager" using v1`, the text of a Kubernetes `FieldManagerConflict` cause.
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conflict with {}", self.manager_description())
    }
}

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// The configuration changes fields other managers own and `force` was not set. The
    /// message follows Kubernetes (`Apply failed with 1 conflict: conflict with "m" using v1:
    /// .spec.replicas`); the API server maps this to HTTP 409 with one cause per conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is not an object, sets `metadata.managedFields`, or has an
    /// associative list element without its key, duplicate keys, or a malformed set.
    #[error("invalid apply configuration: {reason}")]
    InvalidConfiguration {
        /// What is wrong, naming the field.
        reason: String,
    },
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {only}: {}", only.field);
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager_description())
            .or_default()
            .push(&c.field);
    }
    let groups: Vec<String> = by_manager
        .iter()
        .map(|(manager, fields)| {
            let lines: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
            format!("conflicts with {manager}:\n{}", lines.join("\n"))
        })
        .collect();
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        groups.join("\n")
    )
}

/// Applies `applied` (an apply configuration) on behalf of `opts.manager` and returns the new
/// object with `metadata.managedFields` updated; `live` is `None` when the apply creates it.
///
/// Fields in the configuration are set and owned by the manager (operation `Apply`).
/// Fields the manager applied last time but omits now are removed unless another manager
/// owns them. Associative lists merge per element, primitive sets per value, and atomic
/// lists are owned whole. `null` values in the configuration are ignored.
///
/// # Errors
///
/// [`ApplyError::Conflicts`] when, without `force`, the result would change a field owned by
/// another manager; with `force` those fields change hands instead.
/// [`ApplyError::InvalidConfiguration`] for malformed configurations.
///
/// # Guarantees
///
/// Re-applying the same configuration returns the live object unchanged, managed fields
/// included. `status` (for the main resource) and identity metadata are merged but never
/// owned; the caller decides whether to keep them.
///
/// # Caveats
///
/// Maps are always granular (Kubernetes' atomic structs such as label selectors are owned
/// field by field), and new associative-list elements are appended after existing ones.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions<'_>,
) -> Result<Value, ApplyError> {
    let config = prepare_config(applied)?;
    let actor = Actor {
        manager: &opts.manager,
        operation: Operation::Apply,
        api_version: &opts.api_version,
        time: &opts.time,
        subresource: opts.subresource.as_deref(),
    };
    let scope = actor.scope();
    let mut current = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = read_entries(&current);
    strip_managed_fields(&mut current);
    if live.is_some() && entries.is_empty() {
        let before = Actor {
            manager: BEFORE_FIRST_APPLY,
            operation: Operation::Update,
            ..actor
        };
        let empty = Value::Object(Map::new());
        let owned = Walker::new(opts.meta)
            .compare(&empty, &tracked(&current, scope))
            .changed();
        entries.push(before.new_entry(owned));
    }

    let applied_set = Walker::new(opts.meta)
        .config_set(&tracked(&config, scope))
        .map_err(|reason| ApplyError::InvalidConfiguration { reason })?;
    let mut merged = merge(&mut Walker::new(opts.meta), &current, &config);
    let previous = entries
        .iter()
        .find(|e| actor.owns(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !actor.owns(e))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    prune(&mut merged, &previous, &applied_set.union(&others));

    let cmp = Walker::new(opts.meta).compare(&tracked(&current, scope), &tracked(&merged, scope));
    let changed = cmp.changed();
    let conflicts = find_conflicts(&entries, &actor, &changed);
    if !conflicts.is_empty() && !opts.force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for entry in entries.iter_mut().filter(|e| !actor.owns(e)) {
        entry.fields.remove_all(&changed);
        entry.fields.remove_all(&cmp.removed);
    }
    let object_changed = !json_equal(&current, &merged);
    match entries.iter_mut().find(|e| actor.owns(e)) {
        Some(entry) => {
            if object_changed
                || entry.fields != applied_set
                || entry.api_version != opts.api_version
            {
                entry.time = Some(opts.time.clone());
            }
            entry.fields = applied_set;
            entry.api_version.clone_from(&opts.api_version);
        }
        None => entries.push(actor.new_entry(applied_set)),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// Checks the configuration's shape and drops its `null` values.
fn prepare_config(applied: &Value) -> Result<Value, ApplyError> {
    let invalid = |reason: &str| ApplyError::InvalidConfiguration {
        reason: reason.to_owned(),
    };
    if !applied.is_object() {
        return Err(invalid("the configuration must be a JSON object"));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(invalid("metadata.managedFields must be nil"));
    }
    Ok(without_nulls(applied))
}

fn without_nulls(value: &Value) -> Value {
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

fn find_conflicts(entries: &[Entry], actor: &Actor<'_>, changed: &FieldSet) -> Vec<Conflict> {
    let mut conflicts: Vec<Conflict> = entries
        .iter()
        .filter(|e| !actor.owns(e))
        .flat_map(|e| {
            e.fields
                .intersection(changed)
                .iter()
                .map(|path| Conflict {
                    manager: e.manager.clone(),
                    operation: e.operation,
                    api_version: e.api_version.clone(),
                    subresource: e.subresource.clone(),
                    field: path_string(path),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    conflicts.sort_by(|a, b| a.manager.cmp(&b.manager));
    conflicts
}

/// Merges a configuration into the live object: maps field by field, associative lists by
/// key, sets by value; everything else is replaced.
fn merge(walker: &mut Walker<'_>, live: &Value, config: &Value) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (name, cv) in c {
                let merged = match l.get(name) {
                    Some(lv) => {
                        walker.push(name);
                        let m = merge(walker, lv, cv);
                        walker.pop();
                        m
                    }
                    None => cv.clone(),
                };
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            match (walker.classify_lenient(l), walker.classify_lenient(c)) {
                (ListKind::Associative(key), ListKind::Associative(_)) => {
                    let mut out = l.clone();
                    for item in c {
                        let element =
                            PathElement::key(&key, item.get(&key).unwrap_or(&Value::Null));
                        match out.iter().position(|x| element.matches(x)) {
                            Some(i) => out[i] = merge(walker, &out[i], item),
                            None => out.push(item.clone()),
                        }
                    }
                    Value::Array(out)
                }
                (ListKind::Set, ListKind::Set) => {
                    let mut out = l.clone();
                    for item in c {
                        if !out.iter().any(|x| json_equal(x, item)) {
                            out.push(item.clone());
                        }
                    }
                    Value::Array(out)
                }
                _ => config.clone(),
            }
        }
        _ => config.clone(),
    }
}

/// Removes what the applier owned before but neither applies now nor anyone else owns.
/// A node with owned descendants stays (its unowned parts go), as do the key fields of
/// associative-list elements that stay; maps and lists emptied by pruning go too.
fn prune(obj: &mut Value, previous: &FieldSet, keep: &FieldSet) {
    let doomed = previous.difference(keep);
    // Reverse order visits descendants before their ancestors.
    for path in doomed.iter().collect::<Vec<_>>().into_iter().rev() {
        if keep.has_descendant(path) || is_key_field(path) {
            continue;
        }
        if remove_path(obj, path) {
            remove_emptied_ancestors(obj, path, keep);
        }
    }
}

fn is_key_field(path: &[PathElement]) -> bool {
    matches!(path, [.., PathElement::Key(pairs), PathElement::Field(name)] if pairs.iter().any(|(k, _)| k == name))
}

fn resolve_mut<'v>(obj: &'v mut Value, path: &[PathElement]) -> Option<&'v mut Value> {
    let mut cur = obj;
    for element in path {
        cur = match (cur, element) {
            (Value::Object(map), PathElement::Field(name)) => map.get_mut(name)?,
            (Value::Array(items), PathElement::Index(i)) => items.get_mut(*i)?,
            (Value::Array(items), element) => items.iter_mut().find(|x| element.matches(x))?,
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_path(obj: &mut Value, path: &[PathElement]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    match (resolve_mut(obj, parents), last) {
        (Some(Value::Object(map)), PathElement::Field(name)) => map.shift_remove(name).is_some(),
        (Some(Value::Array(items)), PathElement::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        (Some(Value::Array(items)), element) => {
            let before = items.len();
            items.retain(|x| !element.matches(x));
            items.len() != before
        }
        _ => false,
    }
}

/// Removes maps and lists below the top level that pruning left empty and nobody owns.
fn remove_emptied_ancestors(obj: &mut Value, path: &[PathElement], keep: &FieldSet) {
    for len in (2..path.len()).rev() {
        let ancestor: &[PathElement] = &path[..len];
        if !matches!(ancestor.last(), Some(PathElement::Field(_)))
            || keep.contains(ancestor)
            || keep.has_descendant(ancestor)
        {
            return;
        }
        let empty = match resolve_mut(obj, ancestor) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => false,
        };
        if !empty {
            return;
        }
        remove_path(obj, ancestor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_meta::CoreKindsMeta;
    use crate::managed::record_update;
    use serde_json::json;

    /// The `fieldsV1` of `manager`'s entry, or null when it has none.
    fn owned(obj: &Value, manager: &str) -> Value {
        read_entries(obj)
            .into_iter()
            .find(|e| e.manager == manager)
            .map(|e| e.fields.to_fields_v1())
            .unwrap_or(Value::Null)
    }

    fn deploy_meta() -> CoreKindsMeta {
        CoreKindsMeta::for_kind("Deployment")
    }

    fn deployment(replicas: u32, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    fn opts<'a>(manager: &str, time: &str, meta: &'a dyn PatchMeta) -> ApplyOptions<'a> {
        ApplyOptions::new(manager, "apps/v1", time, meta)
    }

    #[test]
    fn create_by_apply_records_an_apply_entry_in_kubernetes_format() {
        let meta = deploy_meta();
        let obj = apply(
            None,
            &deployment(2, json!({"app": "web"})),
            &opts("kubectl", "t1", &meta),
        )
        .unwrap();
        let entries = obj["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["manager"], "kubectl");
        assert_eq!(entries[0]["operation"], "Apply");
        assert_eq!(entries[0]["apiVersion"], "apps/v1");
        assert_eq!(entries[0]["time"], "t1");
        assert_eq!(entries[0]["fieldsType"], "FieldsV1");
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {"f:matchLabels": {"f:app": {}}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            })
        );
        assert_eq!(obj["spec"]["replicas"], 2);
    }

    #[test]
    fn kubectl_apply_scenario_prunes_conflicts_and_forces() {
        let meta = deploy_meta();
        // 1. Create by apply with two labels.
        let v1 = apply(
            None,
            &deployment(2, json!({"app": "web", "tier": "fe"})),
            &opts("kubectl", "t1", &meta),
        )
        .unwrap();
        assert_eq!(
            v1["metadata"]["labels"],
            json!({"app": "web", "tier": "fe"})
        );

        // 2. Applying again without `tier` removes it.
        let v2 = apply(
            Some(&v1),
            &deployment(2, json!({"app": "web"})),
            &opts("kubectl", "t2", &meta),
        )
        .unwrap();
        assert_eq!(v2["metadata"]["labels"], json!({"app": "web"}));

        // 3. Another manager scales through an ordinary update.
        let mut v3 = v2.clone();
        v3["spec"]["replicas"] = json!(5);
        record_update(
            Some(&v2),
            &mut v3,
            "kube-controller-manager",
            "apps/v1",
            "t3",
            &meta,
        );
        assert_eq!(
            owned(&v3, "kube-controller-manager"),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(owned(&v3, "kubectl")["f:spec"].get("f:replicas").is_none());

        // 4. Applying a different replica count conflicts.
        let err = apply(
            Some(&v3),
            &deployment(3, json!({"app": "web"})),
            &opts("kubectl", "t4", &meta),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
        let ApplyError::Conflicts(conflicts) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            conflicts[0].to_string(),
            "conflict with \"kube-controller-manager\" using apps/v1"
        );
        assert_eq!(conflicts[0].field, ".spec.replicas");

        // 5. Applying the value the other manager set is fine: ownership is shared.
        let shared = apply(
            Some(&v3),
            &deployment(5, json!({"app": "web"})),
            &opts("kubectl", "t5", &meta),
        )
        .unwrap();
        assert_eq!(
            owned(&shared, "kube-controller-manager"),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(owned(&shared, "kubectl")["f:spec"]
            .get("f:replicas")
            .is_some());

        // 6. Force wins and takes ownership; the other manager is dropped as it owns nothing.
        let mut forced = opts("kubectl", "t6", &meta);
        forced.force = true;
        let v6 = apply(Some(&v3), &deployment(3, json!({"app": "web"})), &forced).unwrap();
        assert_eq!(v6["spec"]["replicas"], 3);
        assert_eq!(owned(&v6, "kube-controller-manager"), Value::Null);
        assert!(owned(&v6, "kubectl")["f:spec"].get("f:replicas").is_some());
    }

    #[test]
    fn reapplying_the_same_configuration_changes_nothing() {
        let meta = deploy_meta();
        let v1 = apply(
            None,
            &deployment(2, json!({"app": "web"})),
            &opts("kubectl", "t1", &meta),
        )
        .unwrap();
        let v2 = apply(
            Some(&v1),
            &deployment(2, json!({"app": "web"})),
            &opts("kubectl", "t2", &meta),
        )
        .unwrap();
        assert_eq!(v1, v2);
    }

    #[test]
    fn omitted_fields_owned_by_another_applier_are_kept() {
        let meta = deploy_meta();
        let v1 = apply(
            None,
            &deployment(2, json!({"app": "web", "team": "a"})),
            &opts("one", "t1", &meta),
        )
        .unwrap();
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "a"}}});
        let v2 = apply(Some(&v1), &other, &opts("two", "t2", &meta)).unwrap();
        let v3 = apply(
            Some(&v2),
            &deployment(2, json!({"app": "web"})),
            &opts("one", "t3", &meta),
        )
        .unwrap();
        assert_eq!(v3["metadata"]["labels"], json!({"app": "web", "team": "a"}));
        assert!(owned(&v3, "one")["f:metadata"]["f:labels"]
            .get("f:team")
            .is_none());
    }

    #[test]
    fn dropping_a_container_removes_the_element_and_emptied_labels_disappear() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let pod = |containers: Value, labels: Value| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
            if !labels.is_null() {
                p["metadata"]["labels"] = labels;
            }
            p
        };
        let both = json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]);
        let v1 = apply(
            None,
            &pod(both, json!({"l": "1"})),
            &ApplyOptions::new("m", "v1", "t1", &meta),
        )
        .unwrap();
        let v2 = apply(
            Some(&v1),
            &pod(json!([{"name": "a", "image": "x"}]), Value::Null),
            &ApplyOptions::new("m", "v1", "t2", &meta),
        )
        .unwrap();
        assert_eq!(
            v2["spec"]["containers"],
            json!([{"name": "a", "image": "x"}])
        );
        assert!(v2["metadata"].get("labels").is_none(), "{v2}");
    }

    #[test]
    fn element_kept_for_another_owner_keeps_its_key_field() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let pod = |containers: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": containers}});
        let v1 = apply(
            None,
            &pod(json!([{"name": "a"}, {"name": "b", "image": "y"}])),
            &ApplyOptions::new("m", "v1", "t1", &meta),
        )
        .unwrap();
        let mut v2 = v1.clone();
        v2["spec"]["containers"][1]["args"] = json!(["--x"]);
        record_update(Some(&v1), &mut v2, "editor", "v1", "t2", &meta);
        let v3 = apply(
            Some(&v2),
            &pod(json!([{"name": "a"}])),
            &ApplyOptions::new("m", "v1", "t3", &meta),
        )
        .unwrap();
        assert_eq!(
            v3["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b", "args": ["--x"]}])
        );
    }

    #[test]
    fn finalizers_are_owned_per_value() {
        let meta = CoreKindsMeta::for_kind("ConfigMap");
        let cm = |fins: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": fins}});
        let v1 = apply(
            None,
            &cm(json!(["a/x"])),
            &ApplyOptions::new("one", "v1", "t1", &meta),
        )
        .unwrap();
        let v2 = apply(
            Some(&v1),
            &cm(json!(["b/y"])),
            &ApplyOptions::new("two", "v1", "t2", &meta),
        )
        .unwrap();
        assert_eq!(v2["metadata"]["finalizers"], json!(["a/x", "b/y"]));
        assert_eq!(
            owned(&v2, "two"),
            json!({"f:metadata": {"f:finalizers": {"v:\"b/y\"": {}}}})
        );
        let v3 = apply(
            Some(&v2),
            &json!({"metadata": {"name": "c"}}),
            &ApplyOptions::new("one", "v1", "t3", &meta),
        )
        .unwrap();
        assert_eq!(v3["metadata"]["finalizers"], json!(["b/y"]));
    }

    #[test]
    fn atomic_lists_are_owned_whole_and_conflict_as_a_whole() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let pod = |tolerations: Value| json!({"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}});
        let v1 = apply(
            None,
            &pod(json!([{"key": "a"}])),
            &ApplyOptions::new("one", "v1", "t1", &meta),
        )
        .unwrap();
        assert_eq!(owned(&v1, "one"), json!({"f:spec": {"f:tolerations": {}}}));
        let err = apply(
            Some(&v1),
            &pod(json!([{"key": "b"}])),
            &ApplyOptions::new("two", "v1", "t2", &meta),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"one\": .spec.tolerations"
        );
    }

    #[test]
    fn multiple_conflicts_are_grouped_by_manager() {
        let meta = deploy_meta();
        let v1 = apply(
            None,
            &deployment(2, json!({"app": "web"})),
            &opts("one", "t1", &meta),
        )
        .unwrap();
        let mut changed = deployment(4, json!({"app": "api"}));
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let err = apply(Some(&v1), &changed, &opts("two", "t2", &meta)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"one\":\n\
             - .metadata.labels.app\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn objects_without_managed_fields_belong_to_before_first_apply() {
        let meta = deploy_meta();
        let live = deployment(2, json!({"app": "web"}));
        let err = apply(
            Some(&live),
            &deployment(3, json!({"app": "web"})),
            &opts("kubectl", "t", &meta),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("conflict with \"before-first-apply\" using apps/v1: .spec.replicas"),
            "{err}"
        );
    }

    #[test]
    fn identity_metadata_and_status_are_not_owned() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let cfg = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
            "status": {"phase": "Running"}
        });
        let obj = apply(None, &cfg, &ApplyOptions::new("m", "v1", "t", &meta)).unwrap();
        assert!(obj["metadata"].get("managedFields").is_none(), "{obj}");
        assert_eq!(obj["metadata"]["name"], "p");
    }

    #[test]
    fn status_subresource_apply_owns_only_status() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let cfg = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "status": {"phase": "Running"}});
        let mut o = ApplyOptions::new("kubelet", "v1", "t", &meta);
        o.subresource = Some("status".into());
        let obj = apply(Some(&json!({"metadata": {"name": "p"}})), &cfg, &o).unwrap();
        let entries = read_entries(&obj);
        let kubelet = entries.iter().find(|e| e.manager == "kubelet").unwrap();
        assert_eq!(kubelet.subresource.as_deref(), Some("status"));
        assert_eq!(
            kubelet.fields.to_fields_v1(),
            json!({"f:status": {"f:phase": {}}})
        );
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let o = ApplyOptions::new("m", "v1", "t", &meta);
        let managed = json!({"metadata": {"name": "p", "managedFields": [{}]}});
        assert_eq!(
            apply(None, &managed, &o).unwrap_err().to_string(),
            "invalid apply configuration: metadata.managedFields must be nil"
        );
        let keyless = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}});
        assert!(matches!(
            apply(None, &keyless, &o),
            Err(ApplyError::InvalidConfiguration { .. })
        ));
        assert!(apply(None, &json!([1]), &o).is_err());
    }

    #[test]
    fn nulls_in_the_configuration_are_ignored() {
        let meta = CoreKindsMeta::for_kind("Pod");
        let o = ApplyOptions::new("m", "v1", "t", &meta);
        let obj = apply(
            Some(&json!({"metadata": {"name": "p", "labels": {"x": "1"}}})),
            &json!({"metadata": {"labels": {"x": null, "y": "2"}}}),
            &o,
        )
        .unwrap();
        assert_eq!(obj["metadata"]["labels"], json!({"x": "1", "y": "2"}));
    }

    #[test]
    fn update_after_apply_takes_only_changed_fields() {
        let meta = deploy_meta();
        let v1 = apply(
            None,
            &deployment(2, json!({"app": "web"})),
            &opts("kubectl", "t1", &meta),
        )
        .unwrap();
        let mut v2 = v1.clone();
        v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(Some(&v1), &mut v2, "kubectl-edit", "apps/v1", "t2", &meta);
        assert_eq!(
            owned(&v2, "kubectl-edit"),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
        );
        let names: Vec<String> = read_entries(&v2).into_iter().map(|e| e.manager).collect();
        assert_eq!(names, vec!["kubectl", "kubectl-edit"]);
    }
}

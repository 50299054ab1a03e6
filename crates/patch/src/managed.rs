//! `metadata.managedFields`: reading and writing entries, and recording ordinary updates.

use serde_json::{Map, Value};

use crate::diff::Walker;
use crate::fields::FieldSet;
use crate::meta::PatchMeta;

/// The operation a managed fields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
    /// Any other write: create, update, or a non-apply patch.
    Update,
}

impl Operation {
    /// The name Kubernetes writes in `operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "Apply" => Some(Self::Apply),
            "Update" => Some(Self::Update),
            _ => None,
        }
    }
}

/// One decoded `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: Operation,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: FieldSet,
}

/// Who is writing: an entry is identified by manager, operation and subresource, plus the
/// API version for updates (appliers keep one entry across versions, like Kubernetes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Actor<'a> {
    pub(crate) manager: &'a str,
    pub(crate) operation: Operation,
    pub(crate) api_version: &'a str,
    pub(crate) time: &'a str,
    pub(crate) subresource: Option<&'a str>,
}

impl Actor<'_> {
    pub(crate) fn owns(&self, entry: &Entry) -> bool {
        entry.manager == self.manager
            && entry.operation == self.operation
            && entry.subresource.as_deref() == self.subresource
            && (self.operation == Operation::Apply || entry.api_version == self.api_version)
    }

    pub(crate) fn new_entry(&self, fields: FieldSet) -> Entry {
        Entry {
            manager: self.manager.to_owned(),
            operation: self.operation,
            api_version: self.api_version.to_owned(),
            time: Some(self.time.to_owned()),
            subresource: self.subresource.map(str::to_owned),
            fields,
        }
    }

    /// Which part of the object this actor's writes are tracked for.
    pub(crate) fn scope(&self) -> Scope {
        match self.subresource {
            Some("status") => Scope::Status,
            _ => Scope::Main,
        }
    }
}

impl Entry {
    fn from_json(value: &Value) -> Option<Entry> {
        let obj = value.as_object()?;
        let text = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_owned);
        if obj
            .get("fieldsType")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "FieldsV1")
        {
            return None;
        }
        let fields = match obj.get("fieldsV1") {
            Some(v) => FieldSet::from_fields_v1(v)?,
            None => FieldSet::default(),
        };
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: Operation::parse(obj.get("operation")?.as_str()?)?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("manager".into(), Value::String(self.manager.clone()));
        obj.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        obj.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            obj.insert("time".into(), Value::String(time.clone()));
        }
        obj.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        obj.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            obj.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(obj)
    }
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// Decodes `metadata.managedFields`; malformed entries are skipped.
pub(crate) fn read_entries(obj: &Value) -> Vec<Entry> {
    managed_fields(obj)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Removes `metadata.managedFields` from `obj`.
pub(crate) fn strip_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

/// Writes `entries` into `metadata.managedFields`: entries owning nothing are dropped, the
/// rest sorted as Kubernetes does (operation, time, manager, API version, subresource), and
/// the field is removed when nothing is left.
pub(crate) fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Value::Object(root) = obj else { return };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let list = Value::Array(entries.iter().map(Entry::to_json).collect());
    match root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(meta) => {
            meta.insert("managedFields".into(), list);
        }
        other => *other = Value::Object(Map::from_iter([("managedFields".to_owned(), list)])),
    }
}

/// The part of an object whose fields are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource: everything but `status` and server-owned identity metadata.
    Main,
    /// The status subresource: only `status`.
    Status,
}

/// Metadata fields the server owns; never tracked.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

/// The part of `obj` whose fields are tracked in `scope`.
pub(crate) fn tracked(obj: &Value, scope: Scope) -> Value {
    let Value::Object(root) = obj else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (name, value) in root {
        let keep = match scope {
            Scope::Status => name == "status",
            Scope::Main => !matches!(name.as_str(), "apiVersion" | "kind" | "status"),
        };
        if !keep {
            continue;
        }
        if let (Scope::Main, "metadata", Value::Object(meta)) = (scope, name.as_str(), value) {
            let kept: Map<String, Value> = meta
                .iter()
                .filter(|(k, _)| !UNTRACKED_METADATA.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // Metadata holding only identity fields is not something anyone set.
            if !kept.is_empty() {
                out.insert(name.clone(), Value::Object(kept));
            }
        } else {
            out.insert(name.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// Records an ordinary create, update or non-apply patch of the main resource.
///
/// The fields that changed from `old` to `new` (every set field when `old` is `None`) become
/// owned by `manager` with operation `Update`, and leave every other manager's set; removed
/// fields leave every set. The result is written to `new`'s `metadata.managedFields`.
///
/// Which entries to start from follows Kubernetes: when `new` carries no managed fields (or
/// an empty list, or the same list as `old`), `old`'s are kept; a list of empty objects
/// (`[{}]`) resets them; any other valid list the client sent replaces them.
///
/// # Guarantees
///
/// When nothing tracked changed, the existing entries are written back untouched (times
/// included), so a no-op write keeps `managedFields` identical. `status` and identity
/// metadata (`name`, `uid`, `resourceVersion`, ...) are never tracked here.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    time: &str,
    meta: &dyn PatchMeta,
) {
    let actor = Actor {
        manager,
        operation: Operation::Update,
        api_version,
        time,
        subresource: None,
    };
    record(old, new, &actor, meta);
}

/// Like [`record_update`], for writes through the `status` subresource: only `status` is
/// tracked, and the entry carries `subresource: status`.
pub fn record_status_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    time: &str,
    meta: &dyn PatchMeta,
) {
    let actor = Actor {
        manager,
        operation: Operation::Update,
        api_version,
        time,
        subresource: Some("status"),
    };
    record(old, new, &actor, meta);
}

fn record(old: Option<&Value>, new: &mut Value, actor: &Actor<'_>, meta: &dyn PatchMeta) {
    let old_entries = old.map(read_entries).unwrap_or_default();
    let previous = old.and_then(managed_fields);
    let sent = managed_fields(new)
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty() && previous.and_then(Value::as_array) != Some(*list));
    let mut entries = match sent {
        Some(list)
            if list
                .iter()
                .all(|e| e.as_object().is_some_and(Map::is_empty)) =>
        {
            Vec::new()
        }
        Some(list) => list
            .iter()
            .map(Entry::from_json)
            .collect::<Option<Vec<_>>>()
            .unwrap_or(old_entries),
        None => old_entries,
    };
    let empty = Value::Object(Map::new());
    let scope = actor.scope();
    let cmp =
        Walker::new(meta).compare(&tracked(old.unwrap_or(&empty), scope), &tracked(new, scope));
    if !cmp.is_empty() {
        let changed = cmp.changed();
        for entry in &mut entries {
            entry.fields.remove_all(&changed);
            entry.fields.remove_all(&cmp.removed);
        }
        match entries.iter_mut().find(|e| actor.owns(e)) {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.time = Some(actor.time.to_owned());
            }
            None => entries.push(actor.new_entry(changed)),
        }
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_meta::CoreKindsMeta;
    use serde_json::json;

    fn pod_meta() -> CoreKindsMeta {
        CoreKindsMeta::for_kind("Pod")
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "labels": {"run": "p"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Pending"}
        })
    }

    #[test]
    fn create_gives_every_set_field_to_the_creator_in_kubernetes_format() {
        let mut new = pod();
        record_update(
            None,
            &mut new,
            "kubectl-run",
            "v1",
            "2024-01-01T00:00:00Z",
            &pod_meta(),
        );
        assert_eq!(
            new["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl-run",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:run": {}}},
                    "f:spec": {"f:containers": {".": {}, "k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }])
        );
    }

    #[test]
    fn update_moves_changed_fields_to_the_writer_and_keeps_the_rest() {
        let mut created = pod();
        record_update(None, &mut created, "creator", "v1", "t1", &pod_meta());
        let mut updated = created.clone();
        updated["metadata"]["labels"]["run"] = json!("q");
        updated["metadata"]["labels"]["extra"] = json!("x");
        record_update(
            Some(&created),
            &mut updated,
            "editor",
            "v1",
            "t2",
            &pod_meta(),
        );
        let entries = read_entries(&updated);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].manager.as_str(), entries[1].manager.as_str()),
            ("creator", "editor")
        );
        assert_eq!(
            entries[1].fields.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:extra": {}, "f:run": {}}}})
        );
        let creator = entries[0].fields.to_fields_v1();
        assert_eq!(creator["f:metadata"], json!({"f:labels": {}}));
    }

    #[test]
    fn managers_left_owning_nothing_are_dropped() {
        let mut created = json!({"metadata": {"name": "c", "labels": {"a": "1"}}});
        record_update(None, &mut created, "one", "v1", "t1", &pod_meta());
        let mut next = created.clone();
        next["metadata"]["labels"] = json!({"a": "2"});
        record_update(Some(&created), &mut next, "two", "v1", "t2", &pod_meta());
        let managers: Vec<String> = read_entries(&next).into_iter().map(|e| e.manager).collect();
        assert_eq!(
            managers,
            vec!["one", "two"],
            "one still owns the labels map itself"
        );
        let mut last = next.clone();
        last["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("labels");
        record_update(Some(&next), &mut last, "three", "v1", "t3", &pod_meta());
        assert!(last["metadata"].get("managedFields").is_none(), "{last}");
    }

    #[test]
    fn a_no_op_update_keeps_managed_fields_identical_even_when_the_client_omits_them() {
        let mut created = pod();
        record_update(None, &mut created, "creator", "v1", "t1", &pod_meta());
        let mut same = created.clone();
        strip_managed_fields(&mut same);
        same["metadata"]["resourceVersion"] = json!("5");
        same["status"]["phase"] = json!("Running");
        record_update(Some(&created), &mut same, "other", "v1", "t2", &pod_meta());
        assert_eq!(
            same["metadata"]["managedFields"],
            created["metadata"]["managedFields"]
        );
    }

    #[test]
    fn client_can_reset_managed_fields_with_a_list_of_one_empty_object() {
        let mut created = pod();
        record_update(None, &mut created, "creator", "v1", "t1", &pod_meta());
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&created), &mut reset, "other", "v1", "t2", &pod_meta());
        assert!(reset["metadata"].get("managedFields").is_none(), "{reset}");
    }

    #[test]
    fn status_updates_track_only_status_under_the_status_subresource() {
        let created = pod();
        let mut updated = created.clone();
        updated["status"]["phase"] = json!("Running");
        updated["metadata"]["labels"]["x"] = json!("y");
        record_status_update(
            Some(&created),
            &mut updated,
            "kubelet",
            "v1",
            "t",
            &pod_meta(),
        );
        let entries = read_entries(&updated);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].subresource.as_deref(), Some("status"));
        assert_eq!(
            entries[0].fields.to_fields_v1(),
            json!({"f:status": {"f:phase": {}}})
        );
    }

    #[test]
    fn entries_are_sorted_apply_first_then_by_time() {
        let entry = |manager: &str, operation, time: &str| Entry {
            manager: manager.into(),
            operation,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: None,
            fields: [vec![crate::fields::PathElement::Field(manager.into())]]
                .into_iter()
                .collect(),
        };
        let mut obj = json!({"metadata": {}});
        write_entries(
            &mut obj,
            vec![
                entry("u2", Operation::Update, "2024-01-02T00:00:00Z"),
                entry("u1", Operation::Update, "2024-01-01T00:00:00Z"),
                entry("a", Operation::Apply, "2024-01-03T00:00:00Z"),
            ],
        );
        let order: Vec<Entry> = read_entries(&obj);
        let names: Vec<&str> = order.iter().map(|e| e.manager.as_str()).collect();
        assert_eq!(names, vec!["a", "u1", "u2"]);
    }
}

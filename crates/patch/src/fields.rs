//! Field sets: which fields of an object a manager owns, and their `fieldsV1` encoding.
//!
//! A field set is a set of paths. A path is a sequence of [`PathElement`]s: named fields
//! (`f:spec`), elements of associative lists by key (`k:{"name":"web"}`), elements of primitive
//! sets by value (`v:"finalizer"`) and, for sets written by other implementations, positions
//! (`i:0`). In `fieldsV1` the paths form a tree; a path that is both owned and has owned
//! children carries a `".": {}` marker, and an owned path without children is an empty object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. The derived order (fields, then keys, then values, then
/// indexes) is the order `fieldsV1` members are written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    /// A named field of a map.
    Field(String),
    /// An associative-list element: (key field, JSON-encoded value) pairs sorted by field.
    Key(Vec<(String, String)>),
    /// A primitive-set element, JSON-encoded.
    Value(String),
    /// A list element by position.
    Index(usize),
}

/// A path from the object root.
pub(crate) type Path = Vec<PathElement>;

/// Compact JSON encoding, the form values take inside `k:` and `v:` members.
pub(crate) fn encode(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    serde_json::to_string(value).unwrap_or_default()
}

impl PathElement {
    /// The associative-list element whose `key` field holds `value`.
    pub(crate) fn key(key: &str, value: &Value) -> Self {
        Self::Key(vec![(key.to_owned(), encode(value))])
    }

    /// The primitive-set element `value`.
    pub(crate) fn value(value: &Value) -> Self {
        Self::Value(encode(value))
    }

    /// Whether list element `item` is the one this path element names.
    pub(crate) fn matches(&self, item: &Value) -> bool {
        match self {
            Self::Key(pairs) => item.as_object().is_some_and(|m| {
                pairs
                    .iter()
                    .all(|(k, v)| m.get(k).is_some_and(|x| encode(x) == *v))
            }),
            Self::Value(v) => encode(item) == *v,
            Self::Field(_) | Self::Index(_) => false,
        }
    }

    /// The `fieldsV1` member name.
    fn to_member(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(pairs) => {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", encode(&Value::String(k.clone()))))
                    .collect();
                format!("k:{{{}}}", body.join(","))
            }
            Self::Value(v) => format!("v:{v}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` member name (other than `.`), normalising encoded values.
    fn from_member(member: &str) -> Option<Self> {
        if let Some(name) = member.strip_prefix("f:") {
            Some(Self::Field(name.to_owned()))
        } else if let Some(key) = member.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).ok()?;
            let mut pairs: Vec<(String, String)> =
                fields.iter().map(|(k, v)| (k.clone(), encode(v))).collect();
            pairs.sort();
            Some(Self::Key(pairs))
        } else if let Some(value) = member.strip_prefix("v:") {
            let value: Value = serde_json::from_str(value).ok()?;
            Some(Self::value(&value))
        } else if let Some(index) = member.strip_prefix("i:") {
            index.parse().ok().map(Self::Index)
        } else {
            None
        }
    }
}

/// Kubernetes' path notation: `.spec.containers[name="web"].image`, `[="value"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(pairs) => {
                let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", body.join(","))
            }
            Self::Value(v) => write!(f, "[={v}]"),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path in Kubernetes' notation, as conflict messages show it.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of owned paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    paths: BTreeSet<Path>,
}

impl FieldSet {
    pub(crate) fn insert(&mut self, path: Path) {
        self.paths.insert(path);
    }

    pub(crate) fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter()
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    pub(crate) fn remove_all(&mut self, other: &FieldSet) {
        self.paths.retain(|p| !other.paths.contains(p));
    }

    /// Whether some path strictly below `prefix` is in the set.
    pub(crate) fn has_descendant(&self, prefix: &[PathElement]) -> bool {
        use std::ops::Bound;
        // Extensions of `prefix` sort directly after it, so the next path decides.
        self.paths
            .range::<[PathElement], _>((Bound::Excluded(prefix), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    /// Encodes the set as a `fieldsV1` object.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for path in &self.paths {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        root.to_json(true)
    }

    /// Decodes a `fieldsV1` object; `None` when it is malformed.
    pub(crate) fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let mut set = FieldSet::default();
        let mut path = Vec::new();
        decode_into(value.as_object()?, &mut path, &mut set)?;
        Some(set)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(iter: I) -> Self {
        FieldSet {
            paths: iter.into_iter().collect(),
        }
    }
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<PathElement, Node>,
}

impl Node {
    fn to_json(&self, root: bool) -> Value {
        let mut out = Map::new();
        if self.member && !root && !self.children.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            out.insert(element.to_member(), child.to_json(false));
        }
        Value::Object(out)
    }
}

fn decode_into(members: &Map<String, Value>, path: &mut Path, set: &mut FieldSet) -> Option<()> {
    for (member, child) in members {
        let child = child.as_object()?;
        if member == "." {
            if !path.is_empty() {
                set.insert(path.clone());
            }
            continue;
        }
        path.push(PathElement::from_member(member)?);
        if child.is_empty() {
            set.insert(path.clone());
        } else {
            decode_into(child, path, set)?;
        }
        path.pop();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn leaves_encode_as_empty_objects_and_members_with_children_get_a_dot() {
        let web = PathElement::key("name", &json!("web"));
        let set: FieldSet = [
            vec![field("metadata"), field("labels"), field("app")],
            vec![field("spec"), field("containers"), web.clone()],
            vec![
                field("spec"),
                field("containers"),
                web.clone(),
                field("image"),
            ],
            vec![field("spec"), field("containers"), web, field("name")],
            vec![
                field("metadata"),
                field("finalizers"),
                PathElement::value(&json!("x/y")),
            ],
        ]
        .into_iter()
        .collect();
        let encoded = set.to_fields_v1();
        assert_eq!(
            encoded,
            json!({
                "f:metadata": {"f:finalizers": {"v:\"x/y\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
            })
        );
        let text = serde_json::to_string(&encoded).unwrap();
        assert!(
            text.contains(r#"{".":{},"f:image":{},"f:name":{}}"#),
            "{text}"
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                    ".": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}}}
            }
        });
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        assert!(set.contains(&[field("metadata"), field("labels")]));
        assert!(set.contains(&[field("spec"), field("replicas")]));
        assert!(!set.contains(&[field("spec")]));
        assert_eq!(set.to_fields_v1(), encoded);
    }

    #[test]
    fn multi_field_keys_are_sorted_and_rendered_like_kubernetes() {
        let el = PathElement::from_member(r#"k:{"protocol":"TCP","containerPort":80}"#).unwrap();
        assert_eq!(el.to_member(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        let path = vec![field("spec"), field("ports"), el, field("name")];
        assert_eq!(
            path_string(&path),
            r#".spec.ports[containerPort=80,protocol="TCP"].name"#
        );
        assert_eq!(
            path_string(&[field("f"), PathElement::value(&json!("a"))]),
            r#".f[="a"]"#
        );
    }

    #[test]
    fn malformed_fields_v1_is_rejected() {
        assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_none());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_none());
        assert!(FieldSet::from_fields_v1(&json!({"k:notjson": {}})).is_none());
        assert!(FieldSet::from_fields_v1(&json!([])).is_none());
    }

    #[test]
    fn has_descendant_sees_only_strict_extensions() {
        let set: FieldSet = [vec![field("a"), field("b")], vec![field("ab")]]
            .into_iter()
            .collect();
        assert!(set.has_descendant(&[field("a")]));
        assert!(!set.has_descendant(&[field("a"), field("b")]));
        assert!(!set.has_descendant(&[field("c")]));
    }

    #[test]
    fn key_elements_match_list_items_by_encoded_value() {
        let el = PathElement::key("containerPort", &json!(80));
        assert!(el.matches(&json!({"containerPort": 80, "name": "http"})));
        assert!(!el.matches(&json!({"containerPort": "80"})));
        assert!(PathElement::value(&json!("a")).matches(&json!("a")));
    }
}

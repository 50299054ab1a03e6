//! Per-kind facts about the schemas, for `docs/api-compat.md` and for tests that compare the
//! generated schemas with upstream's swagger.

use std::fmt;

use serde_json::Value;

use crate::{cdi, kubevirt};

/// Where a kind's schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// Generated from this definition of KubeVirt's `swagger.json` (e.g. `v1.VirtualMachine`).
    KubevirtSwagger(&'static str),
    /// Generated from this definition of CDI's `swagger.json` (e.g. `v1beta1.DataVolume`).
    CdiSwagger(&'static str),
    /// Written by hand in this crate (no upstream swagger available here).
    HandWritten,
}

impl SchemaOrigin {
    /// The origin of `kind`'s schema.
    pub fn of(kind: &str) -> Self {
        let find = |table: &[(&'static str, &'static str)]| {
            table.iter().find(|(k, _)| *k == kind).map(|(_, d)| *d)
        };
        if let Some(definition) = find(&kubevirt::DEFINITIONS) {
            Self::KubevirtSwagger(definition)
        } else if let Some(definition) = find(&cdi::DEFINITIONS) {
            Self::CdiSwagger(definition)
        } else {
            Self::HandWritten
        }
    }
}

impl fmt::Display for SchemaOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KubevirtSwagger(d) => write!(f, "KubeVirt swagger `{d}`"),
            Self::CdiSwagger(d) => write!(f, "CDI swagger `{d}`"),
            Self::HandWritten => f.write_str("hand-written"),
        }
    }
}

/// Size of one kind's storage-version schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSummary {
    /// API group, e.g. `kubevirt.io`.
    pub group: String,
    /// Kind, e.g. `VirtualMachine`.
    pub kind: String,
    /// Where the schema comes from.
    pub origin: SchemaOrigin,
    /// Number of named properties anywhere in the schema (a property reached through two
    /// paths counts twice, as it does for users).
    pub properties: usize,
    /// Number of nodes that keep unknown fields (`x-kubernetes-preserve-unknown-fields`).
    pub open_nodes: usize,
}

/// One [`SchemaSummary`] per CRD, in the order of [`crate::custom_resource_definitions`].
pub fn schema_summaries() -> Vec<SchemaSummary> {
    crate::custom_resource_definitions()
        .iter()
        .map(|crd| {
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
            let versions = crd["spec"]["versions"].as_array();
            let storage = versions
                .and_then(|v| v.iter().find(|v| v["storage"] == Value::Bool(true)))
                .map(|v| &v["schema"]["openAPIV3Schema"]);
            let (properties, open_nodes) = storage.map_or((0, 0), count);
            SchemaSummary {
                group: crd["spec"]["group"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                kind: kind.to_string(),
                origin: SchemaOrigin::of(kind),
                properties,
                open_nodes,
            }
        })
        .collect()
}

/// (properties, open nodes) below and including `schema`.
fn count(schema: &Value) -> (usize, usize) {
    let mut properties = 0;
    let mut open = usize::from(schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true));
    let mut children: Vec<&Value> = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        properties += props.len();
        children.extend(props.values());
    }
    for key in ["items", "additionalProperties"] {
        children.extend(schema.get(key).filter(|c| c.is_object()));
    }
    for child in children {
        let (p, o) = count(child);
        properties += p;
        open += o;
    }
    (properties, open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counting_walks_properties_items_and_maps() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "object", "properties": {"b": {}, "c": {}}}},
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"d": {}}}},
            "o": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }});
        assert_eq!(count(&schema), (6, 1));
    }

    #[test]
    fn origins_name_the_swagger_definition() {
        assert_eq!(
            SchemaOrigin::of("VirtualMachine"),
            SchemaOrigin::KubevirtSwagger("v1.VirtualMachine")
        );
        assert_eq!(
            SchemaOrigin::of("DataVolume"),
            SchemaOrigin::CdiSwagger("v1beta1.DataVolume")
        );
        assert_eq!(SchemaOrigin::of("SriovNetwork"), SchemaOrigin::HandWritten);
    }
}

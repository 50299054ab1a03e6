//! Adapter from resources to the schema crate: defaulting, pruning and validation of
//! objects, and the OpenAPI descriptions of everything served.

use oxivirt_schema::{core_schemas, Definitions, ProcessOptions, ResourceDoc};
use serde_json::Value;

use crate::error::Cause;
use crate::registry::{Registry, ResourceInfo, SchemaSource};

/// What schema processing found.
pub struct Outcome {
    pub errors: Vec<Cause>,
    /// Paths of fields the schema does not know (pruned from the object).
    pub unknown_fields: Vec<String>,
}

/// Defaults, prunes and validates `obj` against its resource's schema.
pub fn process(info: &ResourceInfo, obj: &mut Value) -> Outcome {
    let opts = ProcessOptions {
        prune: true,
        apply_defaults: true,
        validate: true,
    };
    let outcome = match &info.schema {
        SchemaSource::Structural(schema) => {
            oxivirt_schema::process(schema, &Definitions::new(), obj, opts)
        }
        SchemaSource::Core(name) => {
            let schemas = core_schemas();
            match schemas.definitions().get(name) {
                Some(schema) => oxivirt_schema::process(schema, schemas.definitions(), obj, opts),
                None => {
                    return Outcome {
                        errors: vec![],
                        unknown_fields: vec![],
                    }
                }
            }
        }
        SchemaSource::None => {
            return Outcome {
                errors: vec![],
                unknown_fields: vec![],
            }
        }
    };
    Outcome {
        errors: outcome
            .errors
            .into_iter()
            .map(|e| Cause {
                reason: e.reason.reason().to_string(),
                message: e.message,
                field: e.field,
            })
            .collect(),
        unknown_fields: outcome.unknown_fields,
    }
}

/// The OpenAPI description of one served resource version.
pub fn resource_doc(info: &ResourceInfo, version: &str) -> Option<ResourceDoc> {
    let mut doc = match &info.schema {
        SchemaSource::Structural(schema) => ResourceDoc::custom(
            &info.group,
            version,
            &info.kind,
            &info.plural,
            info.namespaced,
            schema.clone(),
        ),
        SchemaSource::Core(_) => core_schemas().resource_doc(&info.group, version, &info.kind)?,
        SchemaSource::None => return None,
    };
    doc.plural = info.plural.clone();
    doc.namespaced = info.namespaced;
    doc.list_kind = info.list_kind.clone();
    doc.has_status = info.has_status;
    doc.verbs = info.verbs.iter().map(|v| v.to_string()).collect();
    Some(doc)
}

/// Every served resource grouped by `api/v1` or `apis/{group}/{version}`.
pub fn docs_by_group_version(
    registry: &Registry,
) -> std::collections::BTreeMap<String, Vec<ResourceDoc>> {
    let mut out: std::collections::BTreeMap<String, Vec<ResourceDoc>> = Default::default();
    for info in registry.all() {
        for version in &info.versions {
            let key = if info.group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{}/{version}", info.group)
            };
            if let Some(doc) = resource_doc(&info, version) {
                out.entry(key).or_default().push(doc);
            }
        }
    }
    out
}

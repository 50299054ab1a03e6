//! Schemas of the core Kubernetes kinds we serve, generated once from k8s-openapi's schemars
//! implementations and converted to OpenAPI v3 form (`#/components/schemas/...` refs, with
//! descriptions beside refs kept through `allOf` wrappers, as Kubernetes publishes them).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::{
    apps, authorization, batch, coordination, core, discovery, events, policy, rbac, scheduling,
    storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use k8s_openapi::{ClusterResourceScope, ListableResource, NamespaceResourceScope, Resource};
use serde_json::Value;

use crate::definitions::Definitions;
use crate::resource_doc::{gvk, ResourceDoc, ALL_VERBS};

/// The pseudo-group under which [`CoreSchemas`] lists apimachinery `meta/v1` types.
pub const META_GROUP: &str = "meta";

/// Verbs of namespaces (no `deletecollection`, as in Kubernetes).
const NAMESPACE_VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs of review kinds that are only ever created.
const CREATE_ONLY: [&str; 1] = ["create"];

/// Definitions whose instances hold arbitrary JSON even though k8s-openapi types them as
/// plain `object`s (Go decodes them as raw JSON).
const FREE_FORM: [&str; 3] = [
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
];

/// One core kind (or apimachinery meta type) known to [`CoreSchemas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreKind {
    /// API group (`""` for core, [`META_GROUP`] for meta types).
    pub group: &'static str,
    /// Version, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Resource name in URLs (empty for meta types).
    pub plural: &'static str,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// List kind, if the kind can be listed.
    pub list_kind: Option<&'static str>,
    /// Component name of the root schema, e.g. `io.k8s.api.core.v1.Pod`.
    pub schema_name: String,
    /// Verbs served (empty for meta types).
    pub verbs: &'static [&'static str],
}

/// Core kinds' schemas: the kinds, and one definitions map holding all their schemas.
#[derive(Debug)]
pub struct CoreSchemas {
    definitions: Definitions,
    kinds: Vec<CoreKind>,
}

/// The process-wide core schemas, generated on first use.
pub fn core_schemas() -> &'static CoreSchemas {
    static CORE: OnceLock<CoreSchemas> = OnceLock::new();
    CORE.get_or_init(build)
}

impl CoreSchemas {
    /// All definitions, keyed by schema name, with refs in `#/components/schemas/` form.
    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    /// All known kinds, meta types last.
    pub fn kinds(&self) -> &[CoreKind] {
        &self.kinds
    }

    /// The entry for a group/version/kind (group `""`, `apps`, …, or [`META_GROUP`]).
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&CoreKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// The root schema name of a group/version/kind, e.g. `io.k8s.api.core.v1.Pod`.
    pub fn schema_name(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kind(group, version, kind)
            .map(|k| k.schema_name.as_str())
    }

    /// The root schema of a group/version/kind.
    pub fn schema(&self, group: &str, version: &str, kind: &str) -> Option<&Value> {
        self.definitions
            .get(self.schema_name(group, version, kind)?)
    }

    /// A served kind as a [`ResourceDoc`] (with its referenced definitions); `None` for meta
    /// types and unknown kinds.
    pub fn resource_doc(&self, group: &str, version: &str, kind: &str) -> Option<ResourceDoc> {
        let entry = self.kind(group, version, kind)?;
        if entry.group == META_GROUP {
            return None;
        }
        let schema = self.definitions.get(&entry.schema_name)?.clone();
        let has_status = schema.pointer("/properties/status").is_some();
        Some(ResourceDoc {
            group: entry.group.to_string(),
            version: entry.version.to_string(),
            kind: entry.kind.to_string(),
            plural: entry.plural.to_string(),
            namespaced: entry.namespaced,
            schema_name: entry.schema_name.clone(),
            definitions: self.definitions.closure(&schema),
            schema,
            list_kind: entry
                .list_kind
                .map_or_else(|| format!("{}List", entry.kind), str::to_string),
            verbs: entry.verbs.iter().map(|v| v.to_string()).collect(),
            has_status,
        })
    }

    /// [`ResourceDoc`]s of every served core kind.
    pub fn resource_docs(&self) -> Vec<ResourceDoc> {
        self.kinds
            .iter()
            .filter_map(|k| self.resource_doc(k.group, k.version, k.kind))
            .collect()
    }
}

/// Maps k8s-openapi's scope marker types to "namespaced?".
trait Scope {
    const NAMESPACED: bool;
}

impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Subresource kinds (Eviction) are posted under a namespaced parent.
impl Scope for k8s_openapi::SubResourceScope {
    const NAMESPACED: bool = true;
}

struct Builder {
    generator: SchemaGenerator,
    kinds: Vec<CoreKind>,
}

impl Builder {
    fn kind<T>(&mut self, verbs: &'static [&'static str]) -> &mut Self
    where
        T: Resource + JsonSchema,
        T::Scope: Scope,
    {
        self.add::<T>(verbs, None)
    }

    fn listable<T>(&mut self) -> &mut Self
    where
        T: ListableResource + JsonSchema,
        T::Scope: Scope,
    {
        self.add::<T>(&ALL_VERBS, Some(T::LIST_KIND))
    }

    fn add<T>(
        &mut self,
        verbs: &'static [&'static str],
        list_kind: Option<&'static str>,
    ) -> &mut Self
    where
        T: Resource + JsonSchema,
        T::Scope: Scope,
    {
        self.generator.subschema_for::<T>();
        self.kinds.push(CoreKind {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            plural: T::URL_PATH_SEGMENT,
            namespaced: <T::Scope as Scope>::NAMESPACED,
            list_kind,
            schema_name: T::schema_name().into_owned(),
            verbs,
        });
        self
    }

    fn meta<T: JsonSchema>(&mut self, kind: &'static str) -> &mut Self {
        self.generator.subschema_for::<T>();
        self.kinds.push(CoreKind {
            group: META_GROUP,
            version: "v1",
            kind,
            plural: "",
            namespaced: false,
            list_kind: None,
            schema_name: T::schema_name().into_owned(),
            verbs: &[],
        });
        self
    }
}

fn build() -> CoreSchemas {
    let mut b = Builder {
        generator: SchemaGenerator::new(SchemaSettings::openapi3()),
        kinds: Vec::new(),
    };
    b.listable::<core::v1::Namespace>()
        .listable::<core::v1::ConfigMap>()
        .listable::<core::v1::Secret>()
        .listable::<core::v1::ServiceAccount>()
        .listable::<core::v1::Event>()
        .listable::<core::v1::Node>()
        .listable::<core::v1::Pod>()
        .listable::<core::v1::Service>()
        .listable::<core::v1::Endpoints>()
        .listable::<core::v1::PersistentVolumeClaim>()
        .listable::<core::v1::PersistentVolume>()
        .listable::<events::v1::Event>()
        .listable::<discovery::v1::EndpointSlice>()
        .listable::<storage::v1::StorageClass>()
        .listable::<apps::v1::ControllerRevision>()
        .listable::<coordination::v1::Lease>()
        .listable::<rbac::v1::Role>()
        .listable::<rbac::v1::ClusterRole>()
        .listable::<rbac::v1::RoleBinding>()
        .listable::<rbac::v1::ClusterRoleBinding>()
        .listable::<apiextensions::CustomResourceDefinition>()
        .listable::<policy::v1::PodDisruptionBudget>()
        .listable::<batch::v1::Job>()
        .listable::<scheduling::v1::PriorityClass>()
        .kind::<authorization::v1::SelfSubjectAccessReview>(&CREATE_ONLY)
        .kind::<authorization::v1::SelfSubjectRulesReview>(&CREATE_ONLY)
        .kind::<authorization::v1::SubjectAccessReview>(&CREATE_ONLY)
        .kind::<authorization::v1::LocalSubjectAccessReview>(&CREATE_ONLY)
        .kind::<policy::v1::Eviction>(&CREATE_ONLY)
        .meta::<meta::ObjectMeta>("ObjectMeta")
        .meta::<meta::ListMeta>("ListMeta")
        .meta::<meta::Status>("Status")
        .meta::<meta::DeleteOptions>("DeleteOptions")
        .meta::<meta::Patch>("Patch")
        .meta::<meta::APIResourceList>("APIResourceList")
        .meta::<meta::APIGroupList>("APIGroupList")
        .meta::<meta::APIGroup>("APIGroup")
        .meta::<meta::APIVersions>("APIVersions")
        .meta::<meta::Time>("Time");
    if let Some(ns) = b.kinds.iter_mut().find(|k| k.kind == "Namespace") {
        ns.verbs = &NAMESPACE_VERBS;
    }
    let mut schemas: BTreeMap<String, Value> =
        b.generator.take_definitions(true).into_iter().collect();
    for kind in b.kinds.iter().filter(|k| k.group != META_GROUP) {
        if let Some(Value::Object(root)) = schemas.get_mut(&kind.schema_name) {
            relax_root_required(root);
            root.insert(
                "x-kubernetes-group-version-kind".into(),
                Value::Array(vec![gvk(kind.group, kind.version, kind.kind)]),
            );
        }
    }
    for schema in schemas.values_mut() {
        mark_free_form(schema);
    }
    crate::patch_meta::annotate(&mut schemas);
    for name in FREE_FORM {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            schema.remove("type");
            schema.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
    }
    CoreSchemas {
        definitions: Definitions::from_map(schemas),
        kinds: b.kinds,
    }
}

/// k8s-openapi marks `metadata` required on top-level kinds because its Rust field is not an
/// `Option`; the Kubernetes API does not require it, so neither do we.
fn relax_root_required(root: &mut serde_json::Map<String, Value>) {
    let now_empty = match root.get_mut("required") {
        Some(Value::Array(required)) => {
            required.retain(|r| r != "metadata");
            required.is_empty()
        }
        _ => false,
    };
    if now_empty {
        root.remove("required");
    }
}

/// Union definitions (`oneOf` with no `type`, e.g. `JSONSchemaPropsOrBool`) carry no structure
/// of their own; mark them so that processing keeps their content instead of pruning it.
fn mark_free_form(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let structural = [
        "type",
        "properties",
        "items",
        "additionalProperties",
        "$ref",
        "allOf",
    ];
    let is_union = map.contains_key("oneOf") || map.contains_key("anyOf");
    if is_union && !structural.iter().any(|k| map.contains_key(*k)) {
        map.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_schema_is_found_by_gvk_and_keeps_descriptions() {
        let core = core_schemas();
        assert_eq!(
            core.schema_name("", "v1", "Pod"),
            Some("io.k8s.api.core.v1.Pod")
        );
        let pod = core.schema("", "v1", "Pod").expect("pod schema");
        assert!(pod["description"]
            .as_str()
            .is_some_and(|d| d.contains("Pod")));
        let meta = &pod["properties"]["metadata"];
        assert!(meta["description"].is_string(), "{meta}");
        assert_eq!(
            meta["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(pod.get("required").is_none());
    }

    #[test]
    fn every_listed_kind_has_its_schema() {
        let core = core_schemas();
        for kind in core.kinds() {
            assert!(
                core.definitions().get(&kind.schema_name).is_some(),
                "{}",
                kind.schema_name
            );
        }
        assert_eq!(
            core.schema_name("events.k8s.io", "v1", "Event"),
            Some("io.k8s.api.events.v1.Event")
        );
        assert_eq!(
            core.schema_name(META_GROUP, "v1", "ObjectMeta"),
            Some("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        );
    }

    #[test]
    fn resource_docs_carry_scope_verbs_and_referenced_definitions() {
        let core = core_schemas();
        let pods = core.resource_doc("", "v1", "Pod").expect("pod doc");
        assert!(pods.namespaced && pods.has_status);
        assert_eq!(pods.plural, "pods");
        assert_eq!(pods.list_kind, "PodList");
        assert!(pods
            .definitions
            .contains_key("io.k8s.api.core.v1.Container"));
        let nodes = core.resource_doc("", "v1", "Node").expect("node doc");
        assert!(!nodes.namespaced);
        let ssar = core
            .resource_doc("authorization.k8s.io", "v1", "SelfSubjectAccessReview")
            .expect("ssar doc");
        assert_eq!(ssar.verbs, vec!["create".to_string()]);
    }
}

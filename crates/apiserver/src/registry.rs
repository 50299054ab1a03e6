//! The catalog of served resources: built-in kinds plus those defined by
//! CustomResourceDefinitions. Handlers look resources up here by URL segments.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::table::Column;

/// Who may create objects of a resource through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePolicy {
    /// Any authorised caller.
    Anyone,
    /// Only oxivirt's own components: there is no container runtime for user Pods.
    SystemOnly,
}

/// Which naming rule `metadata.name` must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Subdomain,
    /// RFC 1123 label: Namespaces.
    Label,
    /// RFC 1035 label: Services.
    Rfc1035Label,
    /// Path segment only (no `/`, `%`, `.`/`..`): RBAC kinds.
    PathSegment,
}

/// Where the OpenAPI schema of a resource comes from.
#[derive(Debug, Clone)]
pub enum SchemaSource {
    /// A CRD's structural `openAPIV3Schema`.
    Structural(Value),
    /// A Kubernetes built-in kind; the schema crate knows it by this definition name.
    Core(String),
    /// No schema: anything goes (subresource-only kinds).
    None,
}

/// One served resource (one group/version/plural).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    /// The version objects are stored in.
    pub storage_version: String,
    /// Every served version (conversion between them is `None`-strategy: only apiVersion changes).
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    pub verbs: Vec<&'static str>,
    pub schema: SchemaSource,
    pub columns: Vec<Column>,
    /// Field selector keys beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: Vec<String>,
    pub name_rule: NameRule,
    pub create_policy: CreatePolicy,
    /// Set when served because of a CustomResourceDefinition object.
    pub crd_name: Option<String>,
    /// Set when objects live in another resource's storage (events.k8s.io Events).
    pub storage_alias: Option<StorageAlias>,
    /// Whether `metadata.generation` is maintained (custom resources and kinds with a spec
    /// a controller acts on; ConfigMaps, Secrets and most core kinds have none).
    pub tracks_generation: bool,
}

/// Storage shared with another resource, with conversions to and from its form.
#[derive(Debug, Clone)]
pub struct StorageAlias {
    pub group: &'static str,
    pub plural: &'static str,
    pub to_storage: fn(Value) -> Value,
    pub from_storage: fn(Value) -> Value,
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    /// A namespaced or cluster-scoped built-in with all verbs and default columns.
    pub fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceInfo {
            group: group.into(),
            storage_version: version.into(),
            versions: vec![version.into()],
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: vec![],
            categories: vec![],
            has_status: false,
            verbs: ALL_VERBS.to_vec(),
            schema: SchemaSource::None,
            columns: vec![],
            field_selectors: vec![],
            name_rule: NameRule::Subdomain,
            create_policy: CreatePolicy::Anyone,
            crd_name: None,
            storage_alias: None,
            tracks_generation: false,
        }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn storage_api_version(&self) -> String {
        self.api_version(&self.storage_version)
    }

    /// `pods` or `virtualmachines.kubevirt.io`: how Kubernetes names a resource in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store key prefix of this resource, optionally narrowed to one namespace.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        let (group, plural) = match &self.storage_alias {
            Some(alias) => (alias.group, alias.plural),
            None => (
                if self.group.is_empty() {
                    "core"
                } else {
                    self.group.as_str()
                },
                self.plural.as_str(),
            ),
        };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{group}/{plural}/{ns}/"),
            _ => format!("/registry/{group}/{plural}/"),
        }
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }
}

/// The live catalog; CRD changes replace entries under a short write lock.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<BTreeMap<(String, String), Arc<ResourceInfo>>>,
    /// Bumped on every change, so derived documents (OpenAPI) know when to rebuild.
    generation: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn new(builtins: Vec<ResourceInfo>) -> Self {
        let registry = Registry::default();
        for info in builtins {
            registry.insert(info);
        }
        registry
    }

    /// Adds or replaces a resource, keyed by group and plural.
    pub fn insert(&self, info: ResourceInfo) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.insert((info.group.clone(), info.plural.clone()), Arc::new(info));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Changes whenever the set of served resources changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Drops what a CRD served.
    pub fn remove_crd(&self, crd_name: &str) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, info| info.crd_name.as_deref() != Some(crd_name));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Finds the resource served at `/apis/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(group.to_string(), plural.to_string()))
            .filter(|info| info.versions.iter().any(|v| v == version))
            .cloned()
    }

    pub fn by_group_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(group.to_string(), plural.to_string())).cloned()
    }

    /// Finds a resource by apiVersion and kind (ownerReferences, SubjectAccessReviews).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = split_api_version(api_version);
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .find(|i| i.group == group && i.kind == kind && i.versions.iter().any(|v| v == version))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

//! A small builder for `apiextensions.k8s.io/v1` CustomResourceDefinition objects.
//!
//! Every group module describes its kinds with [`Crd`] and turns them into JSON with
//! [`Crd::build`]; all versions of one kind share one schema and one set of printer columns.

use serde_json::{json, Map, Value};

use crate::well_known::{MANAGED_BY, MANAGED_BY_LABEL};

/// One served version of a kind.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    name: &'static str,
    storage: bool,
    deprecation_warning: Option<String>,
}

impl Version {
    /// The storage version (exactly one per CRD).
    pub(crate) fn storage(name: &'static str) -> Self {
        Self {
            name,
            storage: true,
            deprecation_warning: None,
        }
    }

    /// A served, non-storage version.
    pub(crate) fn served(name: &'static str) -> Self {
        Self {
            name,
            storage: false,
            deprecation_warning: None,
        }
    }

    /// Marks the version deprecated; clients get `warning` on every request.
    pub(crate) fn deprecated(mut self, warning: impl Into<String>) -> Self {
        self.deprecation_warning = Some(warning.into());
        self
    }
}

/// Where the kind's objects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Namespaced,
    Cluster,
}

/// A kind under construction; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Crd {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: Vec<&'static str>,
    categories: Vec<&'static str>,
    scope: Scope,
    versions: Vec<Version>,
    schema: Value,
    columns: Vec<Value>,
    status: bool,
    scale: bool,
}

impl Crd {
    /// A namespaced kind with no versions, no status subresource and an open schema.
    pub(crate) fn new(group: &'static str, kind: &'static str, plural: &'static str) -> Self {
        Self {
            group,
            kind,
            plural,
            short_names: Vec::new(),
            categories: Vec::new(),
            scope: Scope::Namespaced,
            versions: Vec::new(),
            schema: json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            columns: Vec::new(),
            status: false,
            scale: false,
        }
    }

    pub(crate) fn short_names(mut self, names: &[&'static str]) -> Self {
        self.short_names = names.to_vec();
        self
    }

    /// Adds the kind to the `all` category (`kubectl get all`).
    pub(crate) fn in_all(mut self) -> Self {
        self.categories.push("all");
        self
    }

    pub(crate) fn category(mut self, category: &'static str) -> Self {
        self.categories.push(category);
        self
    }

    pub(crate) fn cluster_scoped(mut self) -> Self {
        self.scope = Scope::Cluster;
        self
    }

    pub(crate) fn versions(mut self, versions: Vec<Version>) -> Self {
        self.versions = versions;
        self
    }

    pub(crate) fn schema(mut self, schema: Value) -> Self {
        self.schema = schema;
        self
    }

    pub(crate) fn columns(mut self, columns: Vec<Value>) -> Self {
        self.columns = columns;
        self
    }

    /// Serves `/status` as a subresource (writes to the main resource ignore `status`).
    pub(crate) fn status_subresource(mut self) -> Self {
        self.status = true;
        self
    }

    /// Serves `/scale` over `.spec.replicas`, `.status.replicas` and `.status.labelSelector`.
    pub(crate) fn scale_subresource(mut self) -> Self {
        self.scale = true;
        self
    }

    /// The CRD object.
    pub(crate) fn build(&self) -> Value {
        let singular = self.kind.to_lowercase();
        let mut names = json!({
            "kind": self.kind,
            "listKind": format!("{}List", self.kind),
            "plural": self.plural,
            "singular": singular,
        });
        if !self.short_names.is_empty() {
            names["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            names["categories"] = json!(self.categories);
        }
        let versions: Vec<Value> = self.versions.iter().map(|v| self.version(v)).collect();
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": format!("{}.{}", self.plural, self.group),
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            },
            "spec": {
                "group": self.group,
                "names": names,
                "scope": match self.scope {
                    Scope::Namespaced => "Namespaced",
                    Scope::Cluster => "Cluster",
                },
                "versions": versions,
            },
        })
    }

    fn version(&self, version: &Version) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(version.name));
        out.insert("served".into(), json!(true));
        out.insert("storage".into(), json!(version.storage));
        if let Some(warning) = &version.deprecation_warning {
            out.insert("deprecated".into(), json!(true));
            out.insert("deprecationWarning".into(), json!(warning));
        }
        out.insert(
            "schema".into(),
            json!({"openAPIV3Schema": self.schema.clone()}),
        );
        let mut subresources = Map::new();
        if self.status {
            subresources.insert("status".into(), json!({}));
        }
        if self.scale {
            subresources.insert(
                "scale".into(),
                json!({
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.labelSelector",
                }),
            );
        }
        if !subresources.is_empty() {
            out.insert("subresources".into(), Value::Object(subresources));
        }
        if !self.columns.is_empty() {
            out.insert("additionalPrinterColumns".into(), json!(self.columns));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_crd_has_names_versions_and_the_managed_by_label() {
        let crd = Crd::new("example.io", "Widget", "widgets")
            .short_names(&["wd"])
            .in_all()
            .versions(vec![
                Version::storage("v1"),
                Version::served("v1beta1").deprecated("old"),
            ])
            .status_subresource()
            .build();
        assert_eq!(crd["metadata"]["name"], json!("widgets.example.io"));
        assert_eq!(
            crd["metadata"]["labels"][MANAGED_BY_LABEL],
            json!("oxivirt")
        );
        assert_eq!(crd["spec"]["names"]["listKind"], json!("WidgetList"));
        assert_eq!(crd["spec"]["names"]["singular"], json!("widget"));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["all"]));
        let versions = crd["spec"]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1]["deprecated"], json!(true));
        assert_eq!(versions[1]["deprecationWarning"], json!("old"));
        assert_eq!(versions[0]["subresources"], json!({"status": {}}));
        assert!(versions[0].get("additionalPrinterColumns").is_none());
    }

    #[test]
    fn the_scale_subresource_points_at_replicas() {
        let crd = Crd::new("example.io", "Widget", "widgets")
            .versions(vec![Version::storage("v1")])
            .scale_subresource()
            .build();
        let scale = &crd["spec"]["versions"][0]["subresources"]["scale"];
        assert_eq!(scale["specReplicasPath"], json!(".spec.replicas"));
        assert_eq!(scale["labelSelectorPath"], json!(".status.labelSelector"));
    }
}

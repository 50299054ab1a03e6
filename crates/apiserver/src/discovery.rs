//! Discovery documents: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and
//! aggregated (`apidiscovery.k8s.io/v2`), built from the live registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::registry::{Registry, ResourceInfo};

/// The media type kubectl asks for first.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated discovery version an `Accept` header asks for, if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    let wanted = accept.replace(' ', "");
    if wanted.contains("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") {
        Some("v2")
    } else if wanted.contains("g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") {
        Some("v2beta1")
    } else {
        None
    }
}

/// Kubernetes' version ordering: GA before beta before alpha, higher numbers first.
fn version_rank(v: &str) -> (u8, i64, i64) {
    let rest = v.trim_start_matches('v');
    let (major, stage, minor) = if let Some((m, b)) = rest.split_once("beta") {
        (m, 1, b)
    } else if let Some((m, a)) = rest.split_once("alpha") {
        (m, 2, a)
    } else {
        (rest, 0, "0")
    };
    (
        stage,
        -major.parse::<i64>().unwrap_or(0),
        -minor.parse::<i64>().unwrap_or(0),
    )
}

/// Groups with their served versions, preferred (best) version first; core group first.
pub fn groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for info in registry.all() {
        let versions = map.entry(info.group.clone()).or_default();
        for v in &info.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    let mut out: Vec<(String, Vec<String>)> = map.into_iter().collect();
    for (_, versions) in &mut out {
        versions.sort_by_key(|v| version_rank(v));
    }
    // Built-in Kubernetes groups come before extension groups, as in kube-apiserver.
    out.sort_by_key(|(g, _)| {
        (
            !g.is_empty(),
            !g.ends_with(".k8s.io") && g.contains('.'),
            g.clone(),
        )
    });
    out
}

fn resources_in(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
    registry
        .all()
        .into_iter()
        .filter(|i| i.group == group && i.versions.iter().any(|v| v == version))
        .collect()
}

fn is_pods(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "pods"
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_versions_json(group: &str, versions: &[String]) -> Value {
    let gv: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": gv,
        "preferredVersion": gv.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_versions_json(&g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    let (_, versions) = groups(registry).into_iter().find(|(g, _)| g == group)?;
    let mut doc = group_versions_json(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn api_resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos = resources_in(registry, group, version);
    if infos.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for info in &infos {
        let mut r = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": info.verbs,
        });
        if !info.short_names.is_empty() {
            r["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            r["categories"] = json!(info.categories);
        }
        resources.push(r);
        if info.has_status {
            resources.push(json!({
                "name": format!("{}/status", info.plural), "singularName": "",
                "namespaced": info.namespaced, "kind": info.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if is_pods(info) {
            resources.push(json!({
                "name": "pods/binding", "singularName": "", "namespaced": true,
                "kind": "Binding", "verbs": ["create"],
            }));
            resources.push(json!({
                "name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The aggregated document for `/api` (core only) or `/apis` (every other group).
pub fn aggregated(registry: &Registry, core: bool, version: &str) -> Value {
    let items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = resources_in(registry, &group, v)
                        .iter()
                        .map(|info| {
                            let kind = json!({"group": group, "version": v, "kind": info.kind});
                            let mut r = json!({
                                "resource": info.plural,
                                "responseKind": kind,
                                "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": info.singular,
                                "verbs": info.verbs,
                            });
                            if !info.short_names.is_empty() {
                                r["shortNames"] = json!(info.short_names);
                            }
                            if !info.categories.is_empty() {
                                r["categories"] = json!(info.categories);
                            }
                            let mut subresources = Vec::new();
                            if info.has_status {
                                subresources.push(json!({
                                    "subresource": "status", "responseKind": kind,
                                    "verbs": ["get", "patch", "update"],
                                }));
                            }
                            if is_pods(info) {
                                subresources.push(json!({
                                    "subresource": "binding",
                                    "responseKind": {"group": "", "version": "v1", "kind": "Binding"},
                                    "verbs": ["create"],
                                }));
                                subresources.push(json!({
                                    "subresource": "eviction",
                                    "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                                    "verbs": ["create"],
                                }));
                            }
                            if !subresources.is_empty() {
                                r["subresources"] = json!(subresources);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": group, "creationTimestamp": null}) };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_versions_are_preferred_over_alpha() {
        let mut v = vec![
            "v1alpha3".to_string(),
            "v1".to_string(),
            "v1beta1".to_string(),
        ];
        v.sort_by_key(|v| version_rank(v));
        assert_eq!(v, ["v1", "v1beta1", "v1alpha3"]);
    }
}

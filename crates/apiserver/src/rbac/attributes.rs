//! What a request asks to do, in the terms RBAC rules speak: verb, API group, resource,
//! subresource, name and namespace, or a non-resource path. Derived from the method, path and
//! query exactly as kube-apiserver's request-info parser derives it, so that a rule written
//! for a real cluster means the same thing here.

use axum::http::Method;

/// The subject of an authorisation decision (one request, or one access review).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
    /// Set for non-resource requests (`/healthz`, `/apis`, `/openapi/v2`): the URL path.
    pub path: Option<String>,
}

impl Attributes {
    /// `resource` or `resource/subresource`, the form RBAC rules list.
    pub fn qualified_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Namespace paths whose third segment is a subresource of the namespace, not a resource.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of an HTTP request. `query` is the raw query string.
///
/// Paths of fewer than three segments under `/api`/`/apis` (discovery documents such as
/// `/apis/kubevirt.io/v1`) and every path outside them are non-resource requests whose verb
/// is the lowercase method, as in Kubernetes.
pub fn from_request(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = || Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: Some(if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        }),
        ..Default::default()
    };
    let (group, rest) = match parts.as_slice() {
        ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
        ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
        _ => return non_resource(),
    };
    let mut attrs = Attributes {
        group: group.to_string(),
        ..Default::default()
    };
    // rest = version, then the resource path.
    let mut rest = &rest[1..];
    if rest.first() == Some(&"watch") && rest.len() >= 2 {
        attrs.verb = "watch".into();
        rest = &rest[1..];
    } else {
        attrs.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .into();
    }
    if rest.first() == Some(&"namespaces") {
        if let Some(ns) = rest.get(1) {
            attrs.namespace = ns.to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
    }
    attrs.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    attrs.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    attrs.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    if attrs.name.is_empty() && attrs.verb == "get" {
        let pairs = query_pairs(query);
        let watch = pairs
            .iter()
            .any(|(k, v)| k == "watch" && matches!(v.as_str(), "true" | "1"));
        attrs.verb = if watch { "watch" } else { "list" }.into();
        // A list or watch of exactly one name (`--field-selector metadata.name=x`, as
        // `kubectl get x --watch` sends) is authorised for that name, as upstream does.
        if let Some((_, selector)) = pairs.iter().find(|(k, _)| k == "fieldSelector") {
            if let Some(name) = exact_name(selector) {
                attrs.name = name;
            }
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".into();
    }
    attrs
}

/// The extra check upstream's virt-api makes for its two-segment subresources
/// (`vnc/screenshot`, `sev/…`): on a real cluster kube-apiserver authorises `…/vnc`, then
/// virt-api authorises `…/vnc/screenshot`, so a caller needs both.
pub fn kubevirt_subresource(path: &str, attrs: &Attributes) -> Option<Attributes> {
    if attrs.group != "subresources.kubevirt.io" || attrs.subresource.is_empty() {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = parts.iter().position(|p| *p == attrs.subresource)?;
    let next = parts.get(at + 1)?;
    let two = matches!(
        (attrs.subresource.as_str(), *next),
        ("vnc", "screenshot") | ("sev", _)
    );
    two.then(|| Attributes {
        subresource: format!("{}/{next}", attrs.subresource),
        ..attrs.clone()
    })
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.name=x` (or `==`) when it is the selector's only term.
fn exact_name(selector: &str) -> Option<String> {
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty() && !value.contains('/') && value != "." && value != "..")
        .then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: Option<&str>) -> Attributes {
        from_request(&method, path, query)
    }

    #[test]
    fn namespaced_object_requests_map_to_verb_resource_and_name() {
        let a = attrs(Method::GET, "/api/v1/namespaces/ns1/pods/web", None);
        assert_eq!(
            (a.verb.as_str(), a.group.as_str(), a.resource.as_str()),
            ("get", "", "pods")
        );
        assert_eq!((a.name.as_str(), a.namespace.as_str()), ("web", "ns1"));
        let a = attrs(Method::GET, "/api/v1/namespaces/ns1/pods/web/log", None);
        assert_eq!(a.qualified_resource(), "pods/log");
        let a = attrs(
            Method::POST,
            "/api/v1/namespaces/ns1/pods/web/eviction",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str()),
            ("create", "eviction")
        );
    }

    #[test]
    fn collections_become_list_watch_and_deletecollection() {
        let a = attrs(
            Method::GET,
            "/apis/kubevirt.io/v1/namespaces/a/virtualmachines",
            None,
        );
        assert_eq!(a.verb, "list");
        let a = attrs(
            Method::GET,
            "/apis/kubevirt.io/v1/namespaces/a/virtualmachines",
            Some("watch=true&fieldSelector=metadata.name%3Dvm1"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "vm1"));
        let a = attrs(Method::GET, "/api/v1/watch/namespaces/a/configmaps", None);
        assert_eq!(a.verb, "watch");
        let a = attrs(Method::DELETE, "/api/v1/namespaces/a/configmaps", None);
        assert_eq!(a.verb, "deletecollection");
        let a = attrs(Method::GET, "/api/v1/nodes", None);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
    }

    #[test]
    fn namespaces_are_their_own_namespace_and_status_is_a_subresource() {
        let a = attrs(Method::DELETE, "/api/v1/namespaces/team", None);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "team", "team")
        );
        let a = attrs(Method::PUT, "/api/v1/namespaces/team/finalize", None);
        assert_eq!(a.qualified_resource(), "namespaces/finalize");
    }

    #[test]
    fn kubevirt_subresources_are_resource_slash_subresource() {
        let a = attrs(
            Method::GET,
            "/apis/subresources.kubevirt.io/v1/namespaces/n/virtualmachineinstances/vm/console",
            None,
        );
        assert_eq!(a.qualified_resource(), "virtualmachineinstances/console");
        assert_eq!(a.verb, "get");
        let path =
            "/apis/subresources.kubevirt.io/v1/namespaces/n/virtualmachines/vm/portforward/22/tcp";
        let a = attrs(Method::GET, path, None);
        assert_eq!(a.qualified_resource(), "virtualmachines/portforward");
        assert_eq!(kubevirt_subresource(path, &a), None);
        let path = "/apis/subresources.kubevirt.io/v1/namespaces/n/virtualmachineinstances/vm/vnc/screenshot";
        let a = attrs(Method::GET, path, None);
        assert_eq!(a.subresource, "vnc");
        let extra = kubevirt_subresource(path, &a).expect("second check");
        assert_eq!(extra.subresource, "vnc/screenshot");
        let a = attrs(
            Method::PUT,
            "/apis/subresources.kubevirt.io/v1/namespaces/n/virtualmachines/vm/start",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str()),
            ("update", "start")
        );
        let a = attrs(
            Method::PUT,
            "/apis/subresources.kubevirt.io/v1/namespaces/n/expand-vm-spec",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str()),
            ("update", "expand-vm-spec")
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis/kubevirt.io/v1",
            "/openapi/v2",
            "/version",
        ] {
            let a = attrs(Method::GET, path, None);
            assert_eq!(a.path.as_deref(), Some(path));
            assert_eq!(a.verb, "get");
        }
    }
}

//! A snapshot of every Role, ClusterRole, RoleBinding and ClusterRoleBinding, and the RBAC
//! decision over it. Pure: loading the snapshot is the caller's business (from the store,
//! or kept current by a watch), so the rules can be tested without a server.

use std::collections::HashMap;

use serde_json::Value;

use super::attributes::Attributes;
use crate::context::UserInfo;

/// The key prefix under which the RBAC kinds are stored.
pub const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The RBAC objects at one point in time.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    cluster_roles: HashMap<String, Value>,
    /// `(namespace, name)` → Role.
    roles: HashMap<(String, String), Value>,
    cluster_bindings: HashMap<String, Value>,
    /// namespace → name → RoleBinding: a decision reads only its namespace's bindings.
    bindings: HashMap<String, HashMap<String, Value>>,
}

impl Policy {
    /// Applies a stored value (`None` = deleted) at `key`; keys outside RBAC are ignored.
    /// Returns whether a ClusterRole changed (aggregation may need a pass).
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let Some(rest) = key.strip_prefix(RBAC_PREFIX) else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let parsed = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
        match (parts.as_slice(), parsed) {
            (["clusterroles", name], Some(obj)) => {
                self.cluster_roles.insert(name.to_string(), obj);
                true
            }
            (["clusterroles", name], None) => self.cluster_roles.remove(*name).is_some(),
            (["roles", ns, name], obj) => {
                put(&mut self.roles, (ns.to_string(), name.to_string()), obj);
                false
            }
            (["clusterrolebindings", name], obj) => {
                put(&mut self.cluster_bindings, name.to_string(), obj);
                false
            }
            (["rolebindings", ns, name], obj) => {
                let in_namespace = self.bindings.entry(ns.to_string()).or_default();
                put(in_namespace, name.to_string(), obj);
                if in_namespace.is_empty() {
                    self.bindings.remove(*ns);
                }
                false
            }
            _ => false,
        }
    }

    /// The ClusterRoles by name.
    pub fn cluster_roles(&self) -> &HashMap<String, Value> {
        &self.cluster_roles
    }

    /// The Role `name` in `namespace`.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.roles.get(&(namespace.to_string(), name.to_string()))
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules included;
    /// `namespace` empty = cluster scope only).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Value> {
        self.bound_rules(user, namespace).cloned().collect()
    }

    /// Whether some rule bound to `user` allows `attrs`.
    pub fn allows(&self, user: &UserInfo, attrs: &Attributes) -> bool {
        self.bound_rules(user, &attrs.namespace)
            .any(|rule| rule_allows(rule, attrs))
    }

    /// The rules bound to `user` in `namespace`, borrowed: deciding a request copies nothing.
    fn bound_rules<'a>(
        &'a self,
        user: &'a UserInfo,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let cluster = self
            .cluster_bindings
            .values()
            .filter(move |b| binds(b, user, ""))
            .flat_map(move |b| self.role_rules(&b["roleRef"], ""));
        let local = self
            .bindings
            .get(namespace)
            .filter(|_| !namespace.is_empty())
            .into_iter()
            .flat_map(|in_namespace| in_namespace.values())
            .filter(move |b| binds(b, user, namespace))
            .flat_map(move |b| self.role_rules(&b["roleRef"], namespace));
        cluster.chain(local)
    }

    fn role_rules(&self, role_ref: &Value, ns: &str) -> std::slice::Iter<'_, Value> {
        let name = role_ref["name"].as_str().unwrap_or("");
        let role = match role_ref["kind"].as_str() {
            Some("ClusterRole") => self.cluster_roles.get(name),
            // A RoleBinding may only name Roles of its own namespace.
            Some("Role") if !ns.is_empty() => self.roles.get(&(ns.to_string(), name.to_string())),
            _ => None,
        };
        role.and_then(|r| r["rules"].as_array())
            .map(|rules| rules.iter())
            .unwrap_or_default()
    }
}

fn put<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Value>, key: K, obj: Option<Value>) {
    match obj {
        Some(obj) => {
            map.insert(key, obj);
        }
        None => {
            map.remove(&key);
        }
    }
}

/// Whether one of the binding's subjects is `user` (ServiceAccount subjects without a
/// namespace mean the binding's own namespace).
fn binds(binding: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| subject_matches(s, user, binding_ns))
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn contains(list: &Value, item: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v.as_str() == Some("*") || v.as_str() == Some(item))
}

/// Whether a resource rule lists `resource/subresource`: exactly, as `*`, or as `*/sub`
/// or `res/*` as Kubernetes allows.
fn resource_matches(list: &Value, attrs: &Attributes) -> bool {
    let qualified = attrs.qualified_resource();
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            r == "*"
                || r == qualified
                || (!attrs.subresource.is_empty()
                    && (r == format!("*/{}", attrs.subresource)
                        || r == format!("{}/*", attrs.resource)))
        })
}

/// Whether one policy rule allows the request.
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    if !contains(&rule["verbs"], &attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.path {
        return rule["nonResourceURLs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|u| {
                u == "*"
                    || u == path
                    || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
            });
    }
    let names = &rule["resourceNames"];
    let names_ok = names.as_array().is_none_or(|n| n.is_empty())
        || (!attrs.name.is_empty() && contains(names, &attrs.name));
    contains(&rule["apiGroups"], &attrs.group)
        && resource_matches(&rule["resources"], attrs)
        && names_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn put_obj(p: &mut Policy, key: &str, obj: Value) {
        p.apply(
            &format!("{RBAC_PREFIX}{key}"),
            Some(obj.to_string().as_bytes()),
        );
    }

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: None,
        }
    }

    fn policy() -> Policy {
        let mut p = Policy::default();
        put_obj(
            &mut p,
            "clusterroles/vm-viewer",
            json!({"rules": [
                {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get", "list"]},
            ]}),
        );
        put_obj(
            &mut p,
            "roles/team/console",
            json!({"rules": [
                {"apiGroups": ["subresources.kubevirt.io"], "resources": ["virtualmachineinstances/console"],
                 "verbs": ["get"], "resourceNames": ["vm1"]},
            ]}),
        );
        put_obj(
            &mut p,
            "rolebindings/team/alice-view",
            json!({
                "roleRef": {"kind": "ClusterRole", "name": "vm-viewer"},
                "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "robot"}],
            }),
        );
        put_obj(
            &mut p,
            "rolebindings/team/alice-console",
            json!({
                "roleRef": {"kind": "Role", "name": "console"},
                "subjects": [{"kind": "Group", "name": "operators"}],
            }),
        );
        p
    }

    #[test]
    fn a_rolebinding_grants_only_in_its_namespace() {
        let p = policy();
        let alice = user("alice", &["system:authenticated"]);
        assert!(p.allows(
            &alice,
            &attrs("list", "kubevirt.io", "virtualmachines", "", "team", "")
        ));
        assert!(!p.allows(
            &alice,
            &attrs("list", "kubevirt.io", "virtualmachines", "", "other", "")
        ));
        assert!(!p.allows(
            &alice,
            &attrs(
                "delete",
                "kubevirt.io",
                "virtualmachines",
                "",
                "team",
                "vm1"
            )
        ));
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let p = policy();
        let robot = user("system:serviceaccount:team:robot", &[]);
        assert!(p.allows(
            &robot,
            &attrs("get", "kubevirt.io", "virtualmachines", "", "team", "x")
        ));
        let stranger = user("system:serviceaccount:other:robot", &[]);
        assert!(!p.allows(
            &stranger,
            &attrs("get", "kubevirt.io", "virtualmachines", "", "team", "x")
        ));
    }

    #[test]
    fn subresources_and_resource_names_must_match() {
        let p = policy();
        let op = user("bob", &["operators"]);
        let console = |name: &str| {
            attrs(
                "get",
                "subresources.kubevirt.io",
                "virtualmachineinstances",
                "console",
                "team",
                name,
            )
        };
        assert!(p.allows(&op, &console("vm1")));
        assert!(!p.allows(&op, &console("vm2")));
        let mut vnc = console("vm1");
        vnc.subresource = "vnc".into();
        assert!(!p.allows(&op, &vnc));
        // The resource alone does not grant its subresources.
        let alice = user("alice", &[]);
        let mut status = attrs(
            "get",
            "kubevirt.io",
            "virtualmachines",
            "status",
            "team",
            "vm1",
        );
        assert!(!p.allows(&alice, &status));
        status.subresource.clear();
        assert!(p.allows(&alice, &status));
    }

    #[test]
    fn wildcards_and_non_resource_urls() {
        let rule = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(
            &rule,
            &attrs("update", "apps", "deployments", "status", "a", "d")
        ));
        assert!(!rule_allows(
            &rule,
            &attrs("update", "apps", "deployments", "", "a", "d")
        ));
        let urls = json!({"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]});
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: Some(p.into()),
            ..Default::default()
        };
        assert!(rule_allows(&urls, &path("/apis/kubevirt.io/v1")));
        assert!(rule_allows(&urls, &path("/version")));
        assert!(!rule_allows(&urls, &path("/metrics")));
    }

    #[test]
    fn deleted_objects_stop_granting() {
        let mut p = policy();
        let alice = user("alice", &[]);
        let list = attrs("list", "kubevirt.io", "virtualmachines", "", "team", "");
        assert!(p.allows(&alice, &list));
        assert!(p.apply(&format!("{RBAC_PREFIX}clusterroles/vm-viewer"), None));
        assert!(!p.allows(&alice, &list));
    }
}

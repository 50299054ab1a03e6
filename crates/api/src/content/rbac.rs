//! The RBAC objects a fresh cluster has: Kubernetes' default user-facing ClusterRoles
//! (`cluster-admin`, the aggregated `admin`/`edit`/`view` and what aggregates into them, the
//! discovery and self-review roles every authenticated user is bound to), upstream KubeVirt's
//! `kubevirt.io:*` roles, CDI's `cdi.kubevirt.io:*` roles, the VM console proxy's
//! `token.kubevirt.io:generate`, and the bindings oxivirt's own components rely on.
//!
//! Names, labels, rules and bindings are upstream's (Kubernetes' bootstrap policy, KubeVirt's
//! `virt-operator` generated cluster roles, CDI's operator roles); the rule lists are written
//! out here, not generated, so a reader can compare them with a real cluster's
//! `kubectl get clusterrole -o yaml`.

use serde_json::{json, Map, Value};

/// Label Kubernetes puts on its bootstrap RBAC objects.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// Annotation marking an object the server keeps up to date on start.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// Label a ClusterRole carries to be folded into `admin`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// Label a ClusterRole carries to be folded into `edit`.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// Label a ClusterRole carries to be folded into `view`.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
/// The group every oxivirt component identity belongs to.
pub const COMPONENTS_GROUP: &str = "system:oxivirt-components";

const ALL_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const EDIT_VERBS: &[&str] = &[
    "get", "delete", "create", "update", "patch", "list", "watch",
];

/// One policy rule over resources.
fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// One policy rule over non-resource URLs.
fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {AUTOUPDATE_ANNOTATION: "true"},
        },
        "rules": rules,
    })
}

/// A ClusterRole whose rules are the union of those selected by `aggregate_label`.
fn aggregated(name: &str, labels: &[(&str, &str)], aggregate_label: &str) -> Value {
    let mut role = cluster_role(name, labels, vec![]);
    role["aggregationRule"] = json!({
        "clusterRoleSelectors": [{"matchLabels": {aggregate_label: "true"}}],
    });
    role
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {BOOTSTRAPPING_LABEL: "rbac-defaults"},
            "annotations": {AUTOUPDATE_ANNOTATION: "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

const DEFAULTS: (&str, &str) = (BOOTSTRAPPING_LABEL, "rbac-defaults");

/// Kubernetes' default ClusterRoles that users are bound to.
fn kubernetes_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            &[DEFAULTS],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated("admin", &[DEFAULTS], AGGREGATE_TO_ADMIN),
        aggregated(
            "edit",
            &[DEFAULTS, (AGGREGATE_TO_ADMIN, "true")],
            AGGREGATE_TO_EDIT,
        ),
        aggregated(
            "view",
            &[DEFAULTS, (AGGREGATE_TO_EDIT, "true")],
            AGGREGATE_TO_VIEW,
        ),
        cluster_role(
            "system:aggregate-to-admin",
            &[DEFAULTS, (AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    ALL_VERBS,
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[DEFAULTS, (AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], ALL_VERBS),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[DEFAULTS, (AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[DEFAULTS],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[DEFAULTS],
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[DEFAULTS],
            vec![url_rule(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
    ]
}

const SUBRESOURCES: &str = "subresources.kubevirt.io";
const KUBEVIRT_KINDS: &[&str] = &[
    "virtualmachines",
    "virtualmachineinstances",
    "virtualmachineinstancepresets",
    "virtualmachineinstancereplicasets",
    "virtualmachineinstancemigrations",
];
const KUBEVIRT: (&str, &str) = ("kubevirt.io", "");

/// Subresources that open a session with the guest or read from it (`get`).
const VMI_GET_SUBRESOURCES: &[&str] = &[
    "virtualmachineinstances/console",
    "virtualmachineinstances/vnc",
    "virtualmachineinstances/vnc/screenshot",
    "virtualmachineinstances/portforward",
    "virtualmachineinstances/guestosinfo",
    "virtualmachineinstances/filesystemlist",
    "virtualmachineinstances/userlist",
    "virtualmachineinstances/sev/fetchcertchain",
    "virtualmachineinstances/sev/querylaunchmeasurement",
    "virtualmachineinstances/usbredir",
];
/// Subresources that act on a running guest (`update`).
const VMI_UPDATE_SUBRESOURCES: &[&str] = &[
    "virtualmachineinstances/pause",
    "virtualmachineinstances/unpause",
    "virtualmachineinstances/addvolume",
    "virtualmachineinstances/removevolume",
    "virtualmachineinstances/freeze",
    "virtualmachineinstances/unfreeze",
    "virtualmachineinstances/softreboot",
    "virtualmachineinstances/reset",
    "virtualmachineinstances/sev/setupsession",
    "virtualmachineinstances/sev/injectlaunchsecret",
];
const VM_UPDATE_SUBRESOURCES: &[&str] = &[
    "virtualmachines/start",
    "virtualmachines/stop",
    "virtualmachines/restart",
    "virtualmachines/addvolume",
    "virtualmachines/removevolume",
    "virtualmachines/migrate",
    "virtualmachines/memorydump",
    "virtualmachines/removememorydump",
];

/// Rules KubeVirt's admin and edit roles share, with `verbs` on the KubeVirt kinds.
fn kubevirt_write_rules(verbs: &[&str]) -> Vec<Value> {
    vec![
        rule(&[SUBRESOURCES], VMI_GET_SUBRESOURCES, &["get"]),
        rule(&[SUBRESOURCES], VMI_UPDATE_SUBRESOURCES, &["update"]),
        rule(
            &[SUBRESOURCES],
            &["virtualmachines/expand-spec", "virtualmachines/portforward"],
            &["get"],
        ),
        rule(&[SUBRESOURCES], VM_UPDATE_SUBRESOURCES, &["update"]),
        rule(&[SUBRESOURCES], &["expand-vm-spec"], &["update"]),
        rule(&["kubevirt.io"], KUBEVIRT_KINDS, verbs),
        rule(
            &["snapshot.kubevirt.io"],
            &[
                "virtualmachinesnapshots",
                "virtualmachinesnapshotcontents",
                "virtualmachinerestores",
            ],
            verbs,
        ),
        rule(&["export.kubevirt.io"], &["virtualmachineexports"], verbs),
        rule(&["clone.kubevirt.io"], &["virtualmachineclones"], verbs),
        rule(
            &["instancetype.kubevirt.io"],
            &["virtualmachineinstancetypes", "virtualmachinepreferences"],
            verbs,
        ),
        rule(&["pool.kubevirt.io"], &["virtualmachinepools"], verbs),
        rule(
            &["instancetype.kubevirt.io"],
            &[
                "virtualmachineclusterinstancetypes",
                "virtualmachineclusterpreferences",
            ],
            READ,
        ),
        rule(&["migrations.kubevirt.io"], &["migrationpolicies"], READ),
        rule(&["kubevirt.io"], &["kubevirts"], &["get", "list"]),
    ]
}

fn kubevirt_view_rules() -> Vec<Value> {
    vec![
        rule(
            &[SUBRESOURCES],
            &[
                "virtualmachines/expand-spec",
                "virtualmachineinstances/guestosinfo",
                "virtualmachineinstances/filesystemlist",
                "virtualmachineinstances/userlist",
            ],
            &["get"],
        ),
        rule(&[SUBRESOURCES], &["expand-vm-spec"], &["update"]),
        rule(&["kubevirt.io"], KUBEVIRT_KINDS, READ),
        rule(
            &["snapshot.kubevirt.io"],
            &[
                "virtualmachinesnapshots",
                "virtualmachinesnapshotcontents",
                "virtualmachinerestores",
            ],
            READ,
        ),
        rule(&["export.kubevirt.io"], &["virtualmachineexports"], READ),
        rule(&["clone.kubevirt.io"], &["virtualmachineclones"], READ),
        rule(
            &["instancetype.kubevirt.io"],
            &[
                "virtualmachineinstancetypes",
                "virtualmachineclusterinstancetypes",
                "virtualmachinepreferences",
                "virtualmachineclusterpreferences",
            ],
            READ,
        ),
        rule(&["pool.kubevirt.io"], &["virtualmachinepools"], READ),
        rule(&["migrations.kubevirt.io"], &["migrationpolicies"], READ),
        rule(&["kubevirt.io"], &["kubevirts"], READ),
    ]
}

/// Upstream KubeVirt's roles (virt-operator's generated cluster RBAC).
fn kubevirt_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "kubevirt.io:default",
            &[KUBEVIRT],
            vec![rule(
                &[SUBRESOURCES],
                &["version", "guestfs"],
                &["get", "list"],
            )],
        ),
        cluster_role(
            "kubevirt.io:admin",
            &[KUBEVIRT, (AGGREGATE_TO_ADMIN, "true")],
            kubevirt_write_rules(ALL_VERBS),
        ),
        cluster_role(
            "kubevirt.io:edit",
            &[KUBEVIRT, (AGGREGATE_TO_EDIT, "true")],
            kubevirt_write_rules(EDIT_VERBS),
        ),
        cluster_role(
            "kubevirt.io:view",
            &[KUBEVIRT, (AGGREGATE_TO_VIEW, "true")],
            kubevirt_view_rules(),
        ),
        // The VM console proxy's token endpoint (manual §7.3.1.3.1).
        cluster_role(
            "token.kubevirt.io:generate",
            &[],
            vec![rule(
                &["token.kubevirt.io"],
                &["virtualmachines/vnc"],
                &["get"],
            )],
        ),
    ]
}

/// CDI's roles (its operator's cluster RBAC).
fn cdi_roles() -> Vec<Value> {
    const CDI: &str = "cdi.kubevirt.io";
    let write = || {
        vec![
            rule(&[CDI], &["datavolumes"], &["*"]),
            rule(&[CDI], &["datavolumes/source"], &["create"]),
            rule(&[CDI], &["dataimportcrons"], &["*"]),
            rule(&[CDI], &["datasources"], &["*"]),
            rule(
                &[CDI],
                &[
                    "volumeclonesources",
                    "volumeimportsources",
                    "volumeuploadsources",
                ],
                &["*"],
            ),
            rule(
                &["upload.cdi.kubevirt.io"],
                &["uploadtokenrequests"],
                &["*"],
            ),
        ]
    };
    let cdi = ("cdi.kubevirt.io", "");
    vec![
        cluster_role(
            "cdi.kubevirt.io:admin",
            &[cdi, (AGGREGATE_TO_ADMIN, "true")],
            write(),
        ),
        cluster_role(
            "cdi.kubevirt.io:edit",
            &[cdi, (AGGREGATE_TO_EDIT, "true")],
            write(),
        ),
        cluster_role(
            "cdi.kubevirt.io:view",
            &[cdi, (AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(&[CDI], &["cdiconfigs"], READ),
                rule(
                    &[CDI],
                    &[
                        "dataimportcrons",
                        "datasources",
                        "datavolumes",
                        "objecttransfers",
                        "storageprofiles",
                        "volumeimportsources",
                        "volumeuploadsources",
                        "volumeclonesources",
                    ],
                    READ,
                ),
                rule(&[CDI], &["datavolumes/source"], &["create"]),
            ],
        ),
        cluster_role(
            "cdi.kubevirt.io:config-reader",
            &[cdi],
            vec![rule(&[CDI], &["cdiconfigs", "storageprofiles"], READ)],
        ),
    ]
}

/// Every ClusterRole shipped on first start. Aggregated roles (`admin`, `edit`, `view`)
/// are shipped with empty rules; the server fills them from the roles their
/// `aggregationRule` selects.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = kubernetes_roles();
    roles.extend(kubevirt_roles());
    roles.extend(cdi_roles());
    roles
}

/// Every ClusterRoleBinding shipped on first start.
pub fn cluster_role_bindings() -> Vec<Value> {
    let authenticated = || group("system:authenticated");
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![authenticated()],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![authenticated()],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![authenticated(), group("system:unauthenticated")],
        ),
        binding(
            "kubevirt.io:default",
            "kubevirt.io:default",
            vec![authenticated()],
        ),
        binding(
            "cdi.kubevirt.io:config-reader",
            "cdi.kubevirt.io:config-reader",
            vec![authenticated()],
        ),
        // oxivirt's controllers, node agents and virt-api act for every kind the product
        // serves (including those later issues add); an identity in the components group is
        // authorised through this binding like any other subject, never by a name check.
        binding(
            "system:oxivirt:components",
            "cluster-admin",
            vec![group(COMPONENTS_GROUP)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_shipped_cluster_role() {
        let roles: Vec<Value> = cluster_roles()
            .iter()
            .map(|r| r["metadata"]["name"].clone())
            .collect();
        for b in cluster_role_bindings() {
            assert!(roles.contains(&b["roleRef"]["name"]), "{b}");
        }
    }

    #[test]
    fn kubevirt_view_grants_no_console_vnc_or_delete() {
        let view = cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "kubevirt.io:view")
            .expect("kubevirt.io:view is shipped");
        let text = view["rules"].to_string();
        assert!(!text.contains("console") && !text.contains("\"virtualmachineinstances/vnc\""));
        assert!(!text.contains("delete"));
        assert_eq!(view["metadata"]["labels"][AGGREGATE_TO_VIEW], "true");
    }

    #[test]
    fn aggregated_roles_select_their_label_and_nest_view_in_edit_in_admin() {
        let roles = cluster_roles();
        let find = |n: &str| {
            roles
                .iter()
                .find(|r| r["metadata"]["name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(
            find("admin")["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]
                [AGGREGATE_TO_ADMIN],
            "true"
        );
        assert_eq!(
            find("edit")["metadata"]["labels"][AGGREGATE_TO_ADMIN],
            "true"
        );
        assert_eq!(
            find("view")["metadata"]["labels"][AGGREGATE_TO_EDIT],
            "true"
        );
    }

    #[test]
    fn shipped_names_are_unique() {
        let mut names: Vec<String> = cluster_roles()
            .iter()
            .chain(cluster_role_bindings().iter())
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
    }
}

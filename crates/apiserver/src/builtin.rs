//! The Kubernetes kinds served natively (not through CRDs), with their printer columns,
//! short names and field selectors as a Kubernetes apiserver has them.

use crate::printers as p;
use crate::registry::{CreatePolicy, NameRule, ResourceInfo, SchemaSource};
use crate::table::Column;

fn with_schema(mut info: ResourceInfo, definition: &str) -> ResourceInfo {
    info.schema = SchemaSource::Core(definition.to_string());
    info
}

fn columns(mut info: ResourceInfo, extra: Vec<Column>, age: bool) -> ResourceInfo {
    let mut cols = vec![Column::name()];
    cols.extend(extra);
    if age {
        cols.push(Column::age());
    }
    info.columns = cols;
    info
}

fn short(mut info: ResourceInfo, names: &[&str]) -> ResourceInfo {
    info.short_names = names.iter().map(|s| s.to_string()).collect();
    info
}

fn all_category(mut info: ResourceInfo) -> ResourceInfo {
    info.categories = vec!["all".into()];
    info
}

fn status(mut info: ResourceInfo) -> ResourceInfo {
    info.has_status = true;
    info
}

fn fields(mut info: ResourceInfo, keys: &[&str]) -> ResourceInfo {
    info.field_selectors = keys.iter().map(|s| s.to_string()).collect();
    info
}

/// Every built-in resource served by oxivirt.
pub fn resources() -> Vec<ResourceInfo> {
    use Column as C;
    let b = ResourceInfo::builtin;
    let core = |kind: &str| format!("io.k8s.api.core.v1.{kind}");
    let mut list = vec![
        {
            let mut ns = status(short(
                columns(
                    b("", "v1", "Namespace", "namespaces", false),
                    vec![C::func("Status", 0, p::namespace_status)],
                    true,
                ),
                &["ns"],
            ));
            ns.name_rule = NameRule::Label;
            ns.verbs = vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ];
            fields(with_schema(ns, &core("Namespace")), &["status.phase"])
        },
        with_schema(
            short(
                columns(
                    b("", "v1", "ConfigMap", "configmaps", true),
                    vec![C::func("Data", 0, p::data_count)],
                    true,
                ),
                &["cm"],
            ),
            &core("ConfigMap"),
        ),
        fields(
            with_schema(
                columns(
                    b("", "v1", "Secret", "secrets", true),
                    vec![
                        C::func("Type", 0, p::secret_type),
                        C::func("Data", 0, p::data_count),
                    ],
                    true,
                ),
                &core("Secret"),
            ),
            &["type"],
        ),
        with_schema(
            short(
                columns(
                    b("", "v1", "ServiceAccount", "serviceaccounts", true),
                    vec![C::func("Secrets", 0, p::secret_count)],
                    true,
                ),
                &["sa"],
            ),
            &core("ServiceAccount"),
        ),
        {
            let mut ev = short(b("", "v1", "Event", "events", true), &["ev"]);
            ev.columns = vec![
                C::func("Last Seen", 0, p::event_last_seen),
                C::func("Type", 0, p::event_type),
                C::func("Reason", 0, p::event_reason),
                C::func("Object", 0, p::event_object),
                C::func("Message", 0, p::event_message),
            ];
            fields(
                with_schema(ev, &core("Event")),
                &[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
            )
        },
        fields(
            status(short(
                with_schema(
                    columns(
                        b("", "v1", "Node", "nodes", false),
                        vec![
                            C::func("Status", 0, p::node_status),
                            C::func("Roles", 0, p::node_roles),
                            C::age(),
                            C::func("Version", 0, p::node_version),
                            C::func("Internal-IP", 1, p::node_internal_ip),
                            C::func("External-IP", 1, p::node_external_ip),
                            C::func("OS-Image", 1, p::node_os_image),
                            C::func("Kernel-Version", 1, p::node_kernel),
                            C::func("Container-Runtime", 1, p::node_runtime),
                        ],
                        false,
                    ),
                    &core("Node"),
                ),
                &["no"],
            )),
            &["spec.unschedulable"],
        ),
        {
            let mut pod = all_category(status(short(
                columns(
                    b("", "v1", "Pod", "pods", true),
                    vec![
                        C::func("Ready", 0, p::pod_ready),
                        C::func("Status", 0, p::pod_status),
                        C::func("Restarts", 0, p::pod_restarts),
                        C::age(),
                        C::func("IP", 1, p::pod_ip),
                        C::func("Node", 1, p::pod_node),
                        C::func("Nominated Node", 1, p::pod_nominated_node),
                        C::func("Readiness Gates", 1, p::pod_readiness_gates),
                    ],
                    false,
                ),
                &["po"],
            )));
            pod.create_policy = CreatePolicy::SystemOnly;
            fields(
                with_schema(pod, &core("Pod")),
                &[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                ],
            )
        },
        {
            let mut svc = all_category(status(short(
                columns(
                    b("", "v1", "Service", "services", true),
                    vec![
                        C::func("Type", 0, p::service_type),
                        C::func("Cluster-IP", 0, p::service_cluster_ip),
                        C::func("External-IP", 0, p::service_external_ip),
                        C::func("Port(s)", 0, p::service_ports),
                        C::age(),
                        C::func("Selector", 1, p::service_selector),
                    ],
                    false,
                ),
                &["svc"],
            )));
            svc.name_rule = NameRule::Rfc1035Label;
            with_schema(svc, &core("Service"))
        },
        with_schema(
            short(
                columns(
                    b("", "v1", "Endpoints", "endpoints", true),
                    vec![C::func("Endpoints", 0, p::endpoints_list)],
                    true,
                ),
                &["ep"],
            ),
            &core("Endpoints"),
        ),
        with_schema(
            status(short(
                columns(
                    b(
                        "",
                        "v1",
                        "PersistentVolumeClaim",
                        "persistentvolumeclaims",
                        true,
                    ),
                    vec![
                        C::func("Status", 0, p::pvc_status),
                        C::func("Volume", 0, p::pvc_volume),
                        C::func("Capacity", 0, p::pvc_capacity),
                        C::func("Access Modes", 0, p::pvc_access_modes),
                        C::func("StorageClass", 0, p::storage_class_name),
                        C::func("VolumeAttributesClass", 0, p::volume_attributes_class),
                        C::age(),
                        C::func("VolumeMode", 1, p::volume_mode),
                    ],
                    false,
                ),
                &["pvc"],
            )),
            &core("PersistentVolumeClaim"),
        ),
        with_schema(
            status(short(
                columns(
                    b("", "v1", "PersistentVolume", "persistentvolumes", false),
                    vec![
                        C::func("Capacity", 0, p::pv_capacity),
                        C::func("Access Modes", 0, p::pv_access_modes),
                        C::func("Reclaim Policy", 0, p::pv_reclaim),
                        C::func("Status", 0, p::pvc_status),
                        C::func("Claim", 0, p::pv_claim),
                        C::func("StorageClass", 0, p::storage_class_name),
                        C::func("VolumeAttributesClass", 0, p::volume_attributes_class),
                        C::func("Reason", 0, p::pv_reason),
                        C::age(),
                        C::func("VolumeMode", 1, p::volume_mode),
                    ],
                    false,
                ),
                &["pv"],
            )),
            &core("PersistentVolume"),
        ),
        with_schema(
            columns(
                b(
                    "discovery.k8s.io",
                    "v1",
                    "EndpointSlice",
                    "endpointslices",
                    true,
                ),
                vec![
                    C::func("AddressType", 0, p::slice_address_type),
                    C::func("Ports", 0, p::slice_ports),
                    C::func("Endpoints", 0, p::slice_endpoints),
                ],
                true,
            ),
            "io.k8s.api.discovery.v1.EndpointSlice",
        ),
        {
            let mut sc = short(
                b(
                    "storage.k8s.io",
                    "v1",
                    "StorageClass",
                    "storageclasses",
                    false,
                ),
                &["sc"],
            );
            sc.columns = vec![
                C::func("Name", 0, p::sc_name),
                C::func("Provisioner", 0, p::sc_provisioner),
                C::func("ReclaimPolicy", 0, p::sc_reclaim),
                C::func("VolumeBindingMode", 0, p::sc_binding_mode),
                C::func("AllowVolumeExpansion", 0, p::sc_expansion),
                C::age(),
            ];
            with_schema(sc, "io.k8s.api.storage.v1.StorageClass")
        },
        with_schema(
            columns(
                b(
                    "apps",
                    "v1",
                    "ControllerRevision",
                    "controllerrevisions",
                    true,
                ),
                vec![
                    C::func("Controller", 0, p::revision_controller),
                    C::func("Revision", 0, p::revision_number),
                ],
                true,
            ),
            "io.k8s.api.apps.v1.ControllerRevision",
        ),
        with_schema(
            columns(
                b("coordination.k8s.io", "v1", "Lease", "leases", true),
                vec![C::func("Holder", 0, p::lease_holder)],
                true,
            ),
            "io.k8s.api.coordination.v1.Lease",
        ),
        {
            let mut ev = short(b("events.k8s.io", "v1", "Event", "events", true), &["ev"]);
            ev.columns = vec![
                C::func("Last Seen", 0, p::event_last_seen),
                C::func("Type", 0, p::event_type),
                C::func("Reason", 0, p::event_reason),
                C::func("Object", 0, p::event_object),
                C::func("Message", 0, p::event_message),
            ];
            ev.storage_alias = Some(crate::registry::StorageAlias {
                group: "core",
                plural: "events",
                to_storage: crate::events::to_core,
                from_storage: crate::events::from_core,
            });
            with_schema(ev, "io.k8s.api.events.v1.Event")
        },
    ];
    for (kind, plural, namespaced) in [
        ("Role", "roles", true),
        ("ClusterRole", "clusterroles", false),
        ("RoleBinding", "rolebindings", true),
        ("ClusterRoleBinding", "clusterrolebindings", false),
    ] {
        let mut info = b("rbac.authorization.k8s.io", "v1", kind, plural, namespaced);
        info.name_rule = NameRule::PathSegment;
        info.columns = if kind.ends_with("Binding") {
            vec![
                C::name(),
                C::func("Role", 0, p::binding_role),
                C::age(),
                C::func("Users", 1, p::binding_users),
                C::func("Groups", 1, p::binding_groups),
                C::func("ServiceAccounts", 1, p::binding_service_accounts),
            ]
        } else {
            vec![C::name(), C::func("Created At", 0, p::created_at)]
        };
        list.push(with_schema(info, &format!("io.k8s.api.rbac.v1.{kind}")));
    }
    list.push(with_schema(
        status(short(
            columns(
                b(
                    "policy",
                    "v1",
                    "PodDisruptionBudget",
                    "poddisruptionbudgets",
                    true,
                ),
                vec![
                    C::func("Min Available", 0, p::pdb_min_available),
                    C::func("Max Unavailable", 0, p::pdb_max_unavailable),
                    C::func("Allowed Disruptions", 0, p::pdb_allowed),
                ],
                true,
            ),
            &["pdb"],
        )),
        "io.k8s.api.policy.v1.PodDisruptionBudget",
    ));
    list.push(with_schema(
        all_category(status(columns(
            b("batch", "v1", "Job", "jobs", true),
            vec![
                C::func("Status", 0, p::job_status),
                C::func("Completions", 0, p::job_completions),
            ],
            true,
        ))),
        "io.k8s.api.batch.v1.Job",
    ));
    list.push(with_schema(
        short(
            columns(
                b(
                    "scheduling.k8s.io",
                    "v1",
                    "PriorityClass",
                    "priorityclasses",
                    false,
                ),
                vec![
                    C::func("Value", 0, p::priority_value),
                    C::func("Global-Default", 0, p::priority_global_default),
                    C::age(),
                    C::func("PreemptionPolicy", 0, p::priority_preemption),
                ],
                false,
            ),
            &["pc"],
        ),
        "io.k8s.api.scheduling.v1.PriorityClass",
    ));
    let mut crd = status(short(
        b(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        &["crd", "crds"],
    ));
    crd.columns = vec![C::name(), C::func("Created At", 0, p::created_at)];
    list.push(with_schema(
        crd,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    ));
    let mut ssr = b(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
    );
    ssr.verbs = vec!["create"];
    list.push(ssr);
    for (kind, plural, namespaced) in [
        ("SelfSubjectAccessReview", "selfsubjectaccessreviews", false),
        ("SelfSubjectRulesReview", "selfsubjectrulesreviews", false),
        ("SubjectAccessReview", "subjectaccessreviews", false),
        (
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
        ),
    ] {
        let mut info = b("authorization.k8s.io", "v1", kind, plural, namespaced);
        info.verbs = vec!["create"];
        list.push(with_schema(
            info,
            &format!("io.k8s.api.authorization.v1.{kind}"),
        ));
    }
    for info in &mut list {
        info.tracks_generation = matches!(
            info.kind.as_str(),
            "CustomResourceDefinition" | "Job" | "PodDisruptionBudget"
        );
    }
    list
}

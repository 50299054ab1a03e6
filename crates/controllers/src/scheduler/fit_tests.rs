use serde_json::{json, Value};

use super::*;

fn node(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubevirt.io/schedulable": "true"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn pod(cpu: &str, memory: &str) -> Value {
    json!({
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "vm"}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
    })
}

fn bound(pod: &Value, node: &str) -> Value {
    let mut p = pod.clone();
    p["spec"]["nodeName"] = json!(node);
    p
}

#[test]
fn requests_add_containers_and_take_the_largest_init_container() {
    let p = json!({"spec": {
        "containers": [
            {"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
            {"resources": {"limits": {"devices.kubevirt.io/kvm": "1"}}},
        ],
        "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
    }});
    let r = pod_requests(&p);
    assert_eq!(r["cpu"], 2000);
    assert_eq!(r["memory"], 1 << 30);
    assert_eq!(r["devices.kubevirt.io/kvm"], 1);
}

#[test]
fn a_pod_goes_to_the_node_with_room() {
    let nodes = [node("small", "1", "1Gi"), node("big", "8", "16Gi")];
    assert_eq!(
        place(&pod("500m", "4Gi"), &nodes, &[]),
        Placement::Node("big".into())
    );
}

#[test]
fn too_little_memory_gives_kubernetes_message() {
    let nodes = [node("n1", "4", "1Gi")];
    assert_eq!(
        place(&pod("100m", "2Gi"), &nodes, &[]),
        Placement::Unschedulable("0/1 nodes are available: 1 Insufficient memory.".into())
    );
}

#[test]
fn bound_pods_use_up_the_node() {
    let nodes = [node("n1", "2", "4Gi")];
    let running = [bound(&pod("1500m", "1Gi"), "n1")];
    assert_eq!(
        place(&pod("1", "1Gi"), &nodes, &running),
        Placement::Unschedulable("0/1 nodes are available: 1 Insufficient cpu.".into())
    );
    let mut done = running[0].clone();
    done["status"] = json!({"phase": "Succeeded"});
    assert_eq!(
        place(&pod("1", "1Gi"), &nodes, &[done]),
        Placement::Node("n1".into())
    );
}

#[test]
fn cordoned_not_ready_and_tainted_nodes_are_skipped() {
    let mut cordoned = node("a", "4", "8Gi");
    cordoned["spec"]["unschedulable"] = json!(true);
    let mut not_ready = node("b", "4", "8Gi");
    not_ready["status"]["conditions"][0]["status"] = json!("False");
    let mut tainted = node("c", "4", "8Gi");
    tainted["spec"]["taints"] =
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    let nodes = [cordoned, not_ready, tainted.clone()];
    assert_eq!(
        place(&pod("1", "1Gi"), &nodes, &[]),
        Placement::Unschedulable(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
             1 node(s) were unschedulable."
                .into()
        )
    );
    let mut tolerant = pod("1", "1Gi");
    tolerant["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
    assert_eq!(place(&tolerant, &nodes, &[]), Placement::Node("c".into()));
}

#[test]
fn node_selector_and_required_affinity_filter_and_preferred_affinity_scores() {
    let mut ssd = node("ssd", "4", "8Gi");
    ssd["metadata"]["labels"]["disk"] = json!("ssd");
    let nodes = [node("hdd", "4", "8Gi"), ssd];
    let mut picky = pod("1", "1Gi");
    picky["spec"]["nodeSelector"] = json!({"disk": "nvme"});
    assert_eq!(
        place(&picky, &nodes, &[]),
        Placement::Unschedulable(
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.".into()
        )
    );
    let mut prefers = pod("1", "1Gi");
    prefers["spec"]["affinity"] = json!({"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50,
            "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}],
    }});
    assert_eq!(place(&prefers, &nodes, &[]), Placement::Node("ssd".into()));
    let mut requires = pod("1", "1Gi");
    requires["spec"]["affinity"] = json!({"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]},
    }});
    assert_eq!(place(&requires, &nodes, &[]), Placement::Node("hdd".into()));
}

#[test]
fn pod_anti_affinity_spreads_and_affinity_gathers() {
    let nodes = [node("a", "4", "8Gi"), node("b", "4", "8Gi")];
    let web = bound(&pod("100m", "128Mi"), "a");
    let term = json!([{"labelSelector": {"matchLabels": {"app": "vm"}}, "topologyKey": "kubernetes.io/hostname"}]);
    let mut apart = pod("100m", "128Mi");
    apart["spec"]["affinity"] =
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}});
    assert_eq!(
        place(&apart, &nodes, std::slice::from_ref(&web)),
        Placement::Node("b".into())
    );
    let mut together = pod("100m", "128Mi");
    together["spec"]["affinity"] =
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}});
    assert_eq!(
        place(&together, &[nodes[1].clone(), nodes[0].clone()], &[web]),
        Placement::Node("a".into())
    );
    assert_eq!(
        place(&together, &nodes, &[]),
        Placement::Node("a".into()),
        "the first of a group goes anywhere"
    );
}

#[test]
fn prefer_no_schedule_taints_only_lower_the_score() {
    let mut soft = node("a", "4", "8Gi");
    soft["spec"]["taints"] = json!([{"key": "k", "effect": "PreferNoSchedule"}]);
    let nodes = [soft.clone(), node("b", "4", "8Gi")];
    assert_eq!(
        place(&pod("1", "1Gi"), &nodes, &[]),
        Placement::Node("b".into())
    );
    assert_eq!(
        place(&pod("1", "1Gi"), &[soft], &[]),
        Placement::Node("a".into())
    );
}

#[test]
fn extended_resources_and_pod_counts_are_checked() {
    let mut kvm = node("kvm", "4", "8Gi");
    kvm["status"]["allocatable"]["devices.kubevirt.io/kvm"] = json!("1000");
    let nodes = [node("plain", "4", "8Gi"), kvm];
    let mut p = pod("1", "1Gi");
    p["spec"]["containers"][0]["resources"]["limits"] = json!({"devices.kubevirt.io/kvm": "1"});
    assert_eq!(place(&p, &nodes, &[]), Placement::Node("kvm".into()));
    let mut full = node("full", "4", "8Gi");
    full["status"]["allocatable"]["pods"] = json!("1");
    let other = bound(&pod("1m", "1Mi"), "full");
    assert_eq!(
        place(&pod("1m", "1Mi"), &[full], &[other]),
        Placement::Unschedulable("0/1 nodes are available: 1 Too many pods.".into())
    );
    assert_eq!(
        place(&pod("1m", "1Mi"), &[], &[]),
        Placement::Unschedulable("no nodes available to schedule pods".into())
    );
}

#[test]
fn a_pod_goes_where_its_bound_volumes_are() {
    let nodes = [node("big", "8", "16Gi"), node("small", "1", "2Gi")];
    let on = |host: &str| {
        json!([{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}])
    };
    // The emptier node would win the score; the volume's node must win instead.
    assert_eq!(
        place_with_volumes(&pod("100m", "1Gi"), &nodes, &[], &[on("small")]),
        Placement::Node("small".into())
    );
    assert_eq!(
        place_with_volumes(&pod("100m", "1Gi"), &nodes, &[], &[on("small"), on("big")]),
        Placement::Unschedulable(
            "0/2 nodes are available: 2 node(s) had volume node affinity conflict.".into()
        )
    );
}

//! The launcher Pod of a VMI, exactly as `docs/design/0004-vm-runtime-contracts.md` says:
//! name, labels, annotations, owner, the `compute` and `guest-console-log` containers with
//! resource requests (guest memory plus upstream's overhead estimate), node selection.

use oxivirt_webhooks::Quantity;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::object::str_at;
use crate::well_known::{
    APP_LABEL, COMPUTE_CONTAINER, CONSOLE_LOG_CONTAINER, CREATED_BY_LABEL,
    DEFAULT_CONTAINER_ANNOTATION, DOMAIN_ANNOTATION, SCHEDULABLE_LABEL, VIRT_LAUNCHER,
    VM_NAME_LABEL,
};

const MI: i128 = 1 << 20;
/// The cluster's default CPU request for the compute container (upstream `cpuRequest`).
const DEFAULT_CPU_REQUEST: &str = "100m";
/// Upstream's default `terminationGracePeriodSeconds` of a VMI.
pub(super) const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The launcher image of this build.
pub(crate) fn launcher_image() -> String {
    format!("oxivirt/virt-launcher:{}", env!("CARGO_PKG_VERSION"))
}

/// `virt-launcher-<vmi>-<5 random lowercase letters>`.
pub(crate) fn pod_name(vmi_name: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("virt-launcher-{vmi_name}-{suffix}")
}

fn quantity(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

fn resource(spec: &Value, kind: &str, name: &str) -> Option<Quantity> {
    quantity(&spec["domain"]["resources"][kind][name]).filter(|q| !q.is_zero())
}

/// The guest's memory: `memory.guest`, else the memory request, else the limit.
fn guest_memory(spec: &Value) -> i128 {
    quantity(&spec["domain"]["memory"]["guest"])
        .or_else(|| resource(spec, "requests", "memory"))
        .or_else(|| resource(spec, "limits", "memory"))
        .map_or(0, |q| q.value())
}

/// vCPUs: sockets × cores × threads, each defaulting to one.
fn vcpus(spec: &Value) -> i128 {
    let cpu = &spec["domain"]["cpu"];
    ["sockets", "cores", "threads"]
        .iter()
        .map(|k| i128::from(cpu[*k].as_i64().unwrap_or(1).max(1)))
        .product()
}

/// Upstream's estimate of what the launcher, QEMU and friends use beyond guest RAM
/// (`GetMemoryOverhead`, UPSTREAM-FACTS §5): page tables (RAM / 512), 240 Mi of fixed
/// processes, 8 Mi for the IOThread, 8 Mi per vCPU, 32 Mi of video memory unless
/// graphics are off, 53 Mi for swtpm with a TPM.
pub(crate) fn memory_overhead(spec: &Value) -> i128 {
    let devices = &spec["domain"]["devices"];
    let mut overhead = guest_memory(spec) / 512 + 240 * MI + 8 * MI + 8 * MI * vcpus(spec);
    if devices["autoattachGraphicsDevice"] != false {
        overhead += 32 * MI;
    }
    if devices["tpm"].is_object() {
        overhead += 53 * MI;
    }
    overhead
}

/// Whole mebibytes, rounded up, as a quantity string.
fn mebibytes(bytes: i128) -> String {
    format!("{}Mi", (bytes + MI - 1) / MI)
}

/// `requests` and `limits` of the compute container.
fn compute_resources(spec: &Value) -> Value {
    let overhead = memory_overhead(spec);
    let mut requests = Map::new();
    let cpu = spec["domain"]["resources"]["requests"]["cpu"].clone();
    let cpu = match cpu {
        Value::Null => spec["domain"]["resources"]["limits"]["cpu"].clone(),
        cpu => cpu,
    };
    requests.insert(
        "cpu".into(),
        if cpu.is_null() {
            json!(DEFAULT_CPU_REQUEST)
        } else {
            cpu
        },
    );
    let memory =
        resource(spec, "requests", "memory").map_or_else(|| guest_memory(spec), |q| q.value());
    requests.insert("memory".into(), json!(mebibytes(memory + overhead)));
    let mut limits = Map::new();
    if let Some(cpu) = spec["domain"]["resources"]["limits"].get("cpu") {
        limits.insert("cpu".into(), cpu.clone());
    }
    if let Some(memory) = resource(spec, "limits", "memory") {
        limits.insert("memory".into(), json!(mebibytes(memory.value() + overhead)));
    }
    let mut out = json!({"requests": requests});
    if !limits.is_empty() {
        out["limits"] = Value::Object(limits);
    }
    out
}

/// The VMI's annotations a Pod carries: all but KubeVirt's own and kubectl's bookkeeping.
fn copied_annotations(vmi: &Value) -> Map<String, Value> {
    vmi["metadata"]["annotations"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter(|(k, _)| {
                    !k.starts_with("kubevirt.io/")
                        && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The launcher Pod for `vmi` named `name`.
pub(crate) fn launcher_pod(vmi: &Value, name: &str) -> Value {
    let meta = &vmi["metadata"];
    let spec = &vmi["spec"];
    let vmi_name = str_at(meta, "/name").unwrap_or_default();
    let mut labels = meta["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(APP_LABEL.into(), json!(VIRT_LAUNCHER));
    labels.insert(CREATED_BY_LABEL.into(), meta["uid"].clone());
    labels.insert(VM_NAME_LABEL.into(), json!(vmi_name));
    let mut annotations = copied_annotations(vmi);
    annotations.insert(DOMAIN_ANNOTATION.into(), json!(vmi_name));
    annotations.insert(
        DEFAULT_CONTAINER_ANNOTATION.into(),
        json!(COMPUTE_CONTAINER),
    );
    let mut node_selector = spec["nodeSelector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    node_selector.insert(SCHEDULABLE_LABEL.into(), json!("true"));
    let image = launcher_image();
    let mut pod_spec = json!({
        "containers": [
            {"name": COMPUTE_CONTAINER, "image": image, "resources": compute_resources(spec)},
            {"name": CONSOLE_LOG_CONTAINER, "image": image, "resources": {}},
        ],
        "nodeSelector": node_selector,
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "hostname": spec["hostname"].as_str().unwrap_or(vmi_name),
        "terminationGracePeriodSeconds":
            spec["terminationGracePeriodSeconds"].as_i64().unwrap_or(DEFAULT_GRACE_SECONDS),
    });
    for key in [
        "affinity",
        "tolerations",
        "schedulerName",
        "subdomain",
        "priorityClassName",
        "dnsPolicy",
        "dnsConfig",
    ] {
        if !spec[key].is_null() {
            pod_spec[key] = spec[key].clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "name": vmi_name, "uid": meta["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": pod_spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmi() -> Value {
        json!({
            "metadata": {"name": "vm1", "namespace": "ns", "uid": "uid-1",
                "labels": {"app": "web"},
                "annotations": {"kubevirt.io/latest-observed-api-version": "v1", "team": "a"}},
            "spec": {
                "domain": {"cpu": {"sockets": 1, "cores": 2, "threads": 1},
                    "memory": {"guest": "1Gi"}, "resources": {"requests": {"memory": "1Gi"}},
                    "devices": {}},
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "schedulerName": "other",
                "terminationGracePeriodSeconds": 180,
            },
        })
    }

    #[test]
    fn the_pod_name_has_five_random_lowercase_letters() {
        let name = pod_name("vm1");
        let suffix = name.strip_prefix("virt-launcher-vm1-").expect("prefix");
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
    }

    #[test]
    fn the_pod_carries_the_contracts_labels_annotations_and_owner() {
        let pod = launcher_pod(&vmi(), "virt-launcher-vm1-abcde");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["kubevirt.io"], "virt-launcher");
        assert_eq!(labels["kubevirt.io/created-by"], "uid-1");
        assert_eq!(labels["vm.kubevirt.io/name"], "vm1");
        assert_eq!(labels["app"], "web");
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["kubevirt.io/domain"], "vm1");
        assert_eq!(annotations["team"], "a");
        assert!(annotations
            .get("kubevirt.io/latest-observed-api-version")
            .is_none());
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "VirtualMachineInstance");
        assert_eq!(owner["blockOwnerDeletion"], true);
        let spec = &pod["spec"];
        assert_eq!(
            spec["nodeSelector"],
            json!({"disk": "ssd", "kubevirt.io/schedulable": "true"})
        );
        assert_eq!(spec["schedulerName"], "other");
        assert_eq!(spec["tolerations"][0]["key"], "k");
        assert_eq!(spec["terminationGracePeriodSeconds"], 180);
        assert_eq!(spec["containers"][0]["name"], "compute");
        assert_eq!(spec["containers"][1]["name"], "guest-console-log");
    }

    #[test]
    fn memory_request_is_guest_memory_plus_the_overhead() {
        let pod = launcher_pod(&vmi(), "p");
        let requests = &pod["spec"]["containers"][0]["resources"]["requests"];
        // 1024 Mi + 2 Mi page tables + 240 + 8 (IOThread) + 16 (2 vCPUs) + 32 (video).
        assert_eq!(requests["memory"], "1322Mi");
        assert_eq!(requests["cpu"], "100m");
        let mut no_graphics = vmi();
        no_graphics["spec"]["domain"]["devices"]["autoattachGraphicsDevice"] = json!(false);
        no_graphics["spec"]["domain"]["resources"] =
            json!({"requests": {"cpu": "2"}, "limits": {"memory": "2Gi"}});
        let pod = launcher_pod(&no_graphics, "p");
        let resources = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(resources["requests"]["memory"], "1290Mi");
        assert_eq!(resources["requests"]["cpu"], "2");
        assert_eq!(resources["limits"]["memory"], "2314Mi");
    }

    #[test]
    fn grace_period_defaults_to_thirty_seconds() {
        let mut plain = vmi();
        plain["spec"]
            .as_object_mut()
            .expect("object")
            .remove("terminationGracePeriodSeconds");
        assert_eq!(
            launcher_pod(&plain, "p")["spec"]["terminationGracePeriodSeconds"],
            30
        );
    }
}

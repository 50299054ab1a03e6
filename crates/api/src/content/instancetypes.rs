//! Upstream's common cluster instance types: series `u1`, `o1`, `cx1`, `m1`, `n1` and the
//! config-only `gn1`, each series being one set of traits applied to a list of sizes.

use serde_json::{json, Map, Value};

use super::{common_labels, merge, INSTANCETYPE_API_VERSION};

const LABEL_PREFIX: &str = "instancetype.kubevirt.io/";

/// One size of a series: `<series>.<size>` with `cpu` vCPUs and `memory` of guest memory.
struct Size {
    name: &'static str,
    cpu: u32,
    memory: &'static str,
}

const fn size(name: &'static str, cpu: u32, memory: &'static str) -> Size {
    Size { name, cpu, memory }
}

/// A series (class + version) and everything its sizes share.
struct Series {
    /// `u1`, `cx1`, …: the name prefix.
    name: &'static str,
    /// `instancetype.kubevirt.io/class`.
    class: &'static str,
    /// `instancetype.kubevirt.io/displayName`.
    display_name: &'static str,
    /// `instancetype.kubevirt.io/description`.
    description: &'static str,
    /// `instancetype.kubevirt.io/icon-pf`, where upstream sets one.
    icon: Option<&'static str>,
    /// Boolean trait labels (`instancetype.kubevirt.io/<trait>: "true"`).
    traits: &'static [&'static str],
    /// The spec fragment every size of the series gets.
    spec: fn() -> Value,
    sizes: &'static [Size],
}

/// The shared 1:4 ladder of the universal and overcommitted series.
const UNIVERSAL_SIZES: &[Size] = &[
    size("nano", 1, "512Mi"),
    size("micro", 1, "1Gi"),
    size("small", 1, "2Gi"),
    size("medium", 1, "4Gi"),
    size("2xmedium", 2, "4Gi"),
    size("large", 2, "8Gi"),
    size("xlarge", 4, "16Gi"),
    size("2xlarge", 8, "32Gi"),
    size("4xlarge", 16, "64Gi"),
    size("8xlarge", 32, "128Gi"),
];

/// `o1` has the universal ladder without `2xmedium`.
const OVERCOMMITTED_SIZES: &[Size] = &[
    size("nano", 1, "512Mi"),
    size("micro", 1, "1Gi"),
    size("small", 1, "2Gi"),
    size("medium", 1, "4Gi"),
    size("large", 2, "8Gi"),
    size("xlarge", 4, "16Gi"),
    size("2xlarge", 8, "32Gi"),
    size("4xlarge", 16, "64Gi"),
    size("8xlarge", 32, "128Gi"),
];

const COMPUTE_EXCLUSIVE_SIZES: &[Size] = &[
    size("medium", 1, "2Gi"),
    size("large", 2, "4Gi"),
    size("xlarge", 4, "8Gi"),
    size("2xlarge", 8, "16Gi"),
    size("4xlarge", 16, "32Gi"),
    size("8xlarge", 32, "64Gi"),
];

const MEMORY_SIZES: &[Size] = &[
    size("large", 2, "16Gi"),
    size("xlarge", 4, "32Gi"),
    size("2xlarge", 8, "64Gi"),
    size("4xlarge", 16, "128Gi"),
    size("8xlarge", 32, "256Gi"),
];

/// `n1` starts at 4 vCPUs: DPDK needs cores of its own.
const NETWORK_SIZES: &[Size] = &[
    size("medium", 4, "4Gi"),
    size("large", 4, "8Gi"),
    size("xlarge", 8, "16Gi"),
    size("2xlarge", 16, "32Gi"),
    size("4xlarge", 32, "64Gi"),
    size("8xlarge", 64, "128Gi"),
];

const GPU_NVIDIA_SIZES: &[Size] = &[
    size("xlarge", 4, "16Gi"),
    size("2xlarge", 8, "32Gi"),
    size("4xlarge", 16, "64Gi"),
    size("8xlarge", 32, "128Gi"),
];

const SERIES: &[Series] = &[
    Series {
        name: "cx1",
        class: "compute.exclusive",
        display_name: "Compute Exclusive",
        description: "The CX Series provides exclusive compute resources for compute\n\
            intensive applications.\n\n\
            *CX* is the abbreviation of \"Compute Exclusive\".\n\n\
            The exclusive resources are given to the compute threads of the\n\
            VM. In order to ensure this, some additional cores (depending\n\
            on the number of disks and NICs) will be requested to offload\n\
            the IO threading from cores dedicated to the workload.\n\
            In addition, in this series, the NUMA topology of the used\n\
            cores is provided to the VM.",
        icon: Some("pficon-registry"),
        traits: &[
            "dedicatedCPUPlacement",
            "hugepages",
            "isolateEmulatorThread",
            "numa",
        ],
        spec: || {
            json!({
                "cpu": {
                    "dedicatedCPUPlacement": true,
                    "isolateEmulatorThread": true,
                    "numa": { "guestMappingPassthrough": {} },
                },
                "ioThreadsPolicy": "auto",
                "memory": { "hugepages": { "pageSize": "2Mi" } },
            })
        },
        sizes: COMPUTE_EXCLUSIVE_SIZES,
    },
    Series {
        name: "gn1",
        class: "gpu.nvidia",
        display_name: "GPU NVIDIA",
        description: "The GN Series provides instances types intended for VMs with\n\
            NVIDIA GPU resources attached.\n\n\
            *GN* is the abbreviation of \"GPU NVIDIA\".\n\n\
            This series is intended to be used with VMs consuming GPUs\n\
            provided by the\n\
            [NVIDIA GPU Operator](https://github.com/NVIDIA/gpu-operator)\n\
            which can be installed on Kubernetes and also is made available\n\
            on OpenShift via OperatorHub.",
        icon: None,
        traits: &["gpus"],
        spec: || json!({ "gpus": [{ "name": "gpu1", "deviceName": "nvidia.com/A400" }] }),
        sizes: GPU_NVIDIA_SIZES,
    },
    Series {
        name: "m1",
        class: "memory.intensive",
        display_name: "Memory Intensive",
        description: "The M Series provides resources for memory intensive\n\
            applications.\n\n\
            *M* is the abbreviation of \"Memory\".",
        icon: Some("fa-memory"),
        traits: &["hugepages"],
        spec: || json!({ "memory": { "hugepages": { "pageSize": "2Mi" } } }),
        sizes: MEMORY_SIZES,
    },
    Series {
        name: "n1",
        class: "network",
        display_name: "Network",
        description: "The N Series provides resources for network intensive DPDK\n\
            applications, like VNFs.\n\n\
            *N* is the abbreviation for \"Network\".\n\n\
            This series of instancetypes requires nodes capable\n\
            of running DPDK workloads and being marked with the respective\n\
            node-role.kubevirt.io/worker-dpdk label as such.",
        icon: Some("pficon-network"),
        traits: &[
            "dedicatedCPUPlacement",
            "hugepages",
            "isolateEmulatorThread",
        ],
        spec: || {
            json!({
                "annotations": {
                    "cpu-load-balancing.crio.io": "disable",
                    "cpu-quota.crio.io": "disable",
                    "irq-load-balancing.crio.io": "disable",
                },
                "cpu": { "dedicatedCPUPlacement": true, "isolateEmulatorThread": true },
                "memory": { "hugepages": { "pageSize": "1Gi" } },
            })
        },
        sizes: NETWORK_SIZES,
    },
    Series {
        name: "o1",
        class: "overcommitted",
        display_name: "Overcommitted",
        description: "The O Series is based on the U Series, with the only difference\n\
            being that memory is overcommitted.\n\n\
            *O* is the abbreviation for \"Overcommitted\".",
        icon: Some("pficon-virtual-machine"),
        traits: &[],
        spec: || json!({ "memory": { "overcommitPercent": 50 } }),
        sizes: OVERCOMMITTED_SIZES,
    },
    Series {
        name: "u1",
        class: "general.purpose",
        display_name: "General Purpose",
        description: "The U Series is quite neutral and provides resources for\n\
            general purpose applications.\n\n\
            *U* is the abbreviation for \"Universal\", hinting at the universal\n\
            attitude towards workloads.\n\n\
            VMs of instance types will share physical CPU cores on a\n\
            time-slice basis with other VMs.",
        icon: Some("pficon-server-group"),
        traits: &[],
        spec: || json!({}),
        sizes: UNIVERSAL_SIZES,
    },
];

/// Upstream's common cluster instance types as `VirtualMachineClusterInstancetype` objects,
/// series by series (`cx1`, `gn1`, `m1`, `n1`, `o1`, `u1`), sizes smallest first.
///
/// # Guarantees
/// Deterministic. Every object has `spec.cpu.guest` and `spec.memory.guest`, and labels
/// `instancetype.kubevirt.io/{class,cpu,memory,size,version,vendor}` plus a `"true"` label
/// per trait of its series (`hugepages`, `dedicatedCPUPlacement`, …).
///
/// # Caveats
/// `gn1` is configuration only: it requests `nvidia.com/A400` GPUs no oxivirt node has.
/// Upstream's `rt1` series and the `*1gi` hugepage variants of later releases are not shipped.
pub fn common_cluster_instancetypes() -> Vec<Value> {
    SERIES
        .iter()
        .flat_map(|series| series.sizes.iter().map(move |size| build(series, size)))
        .collect()
}

fn build(series: &Series, size: &Size) -> Value {
    let mut labels = common_labels();
    let mut label = |key: &str, value: &str| {
        labels.insert(format!("{LABEL_PREFIX}{key}"), Value::from(value));
    };
    label("class", series.class);
    label("cpu", &size.cpu.to_string());
    label("memory", size.memory);
    label("size", size.name);
    label("version", "1");
    if let Some(icon) = series.icon {
        label("icon-pf", icon);
    }
    for name in series.traits {
        label(name, "true");
    }
    let mut annotations = Map::new();
    annotations.insert(
        format!("{LABEL_PREFIX}description"),
        series.description.into(),
    );
    annotations.insert(
        format!("{LABEL_PREFIX}displayName"),
        series.display_name.into(),
    );
    let mut spec = json!({
        "cpu": { "guest": size.cpu },
        "memory": { "guest": size.memory },
    });
    merge(&mut spec, &(series.spec)());
    json!({
        "apiVersion": INSTANCETYPE_API_VERSION,
        "kind": "VirtualMachineClusterInstancetype",
        "metadata": {
            "name": format!("{}.{}", series.name, size.name),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> Value {
        common_cluster_instancetypes()
            .into_iter()
            .find(|it| it["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is shipped"))
    }

    fn guest(name: &str) -> (u64, String) {
        let it = find(name);
        let cpu = it["spec"]["cpu"]["guest"].as_u64().expect("cpu.guest");
        let memory = it["spec"]["memory"]["guest"]
            .as_str()
            .expect("memory.guest");
        (cpu, memory.to_string())
    }

    #[test]
    fn sizes_match_the_manuals_table_7_1_anchors() {
        assert_eq!(guest("u1.medium"), (1, "4Gi".into()));
        assert_eq!(guest("o1.small"), (1, "2Gi".into()));
        assert_eq!(guest("cx1.2xlarge"), (8, "16Gi".into()));
        assert_eq!(guest("gn1.8xlarge"), (32, "128Gi".into()));
        assert_eq!(guest("m1.large"), (2, "16Gi".into()));
        assert_eq!(guest("n1.medium"), (4, "4Gi".into()));
    }

    #[test]
    fn every_series_ships_its_upstream_number_of_sizes() {
        let all = common_cluster_instancetypes();
        let count = |prefix: &str| {
            all.iter()
                .filter(|it| {
                    it["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{prefix}.")))
                })
                .count()
        };
        assert_eq!(
            [
                count("u1"),
                count("o1"),
                count("cx1"),
                count("m1"),
                count("n1"),
                count("gn1")
            ],
            [10, 9, 6, 5, 6, 4]
        );
        assert_eq!(all.len(), 40);
    }

    #[test]
    fn overcommitted_series_overcommits_memory_by_half() {
        assert_eq!(find("o1.large")["spec"]["memory"]["overcommitPercent"], 50);
        assert!(find("u1.large")["spec"]["memory"]["overcommitPercent"].is_null());
    }

    #[test]
    fn compute_exclusive_series_dedicates_cpus_with_vnuma_and_2mi_hugepages() {
        let spec = &find("cx1.medium")["spec"];
        assert_eq!(spec["cpu"]["dedicatedCPUPlacement"], true);
        assert_eq!(spec["cpu"]["isolateEmulatorThread"], true);
        assert_eq!(
            spec["cpu"]["numa"],
            json!({ "guestMappingPassthrough": {} })
        );
        assert_eq!(spec["memory"]["hugepages"]["pageSize"], "2Mi");
        assert_eq!(spec["cpu"]["guest"], 1);
    }

    #[test]
    fn network_series_uses_1gi_hugepages_and_dedicated_cpus() {
        let it = find("n1.large");
        assert_eq!(it["spec"]["memory"]["hugepages"]["pageSize"], "1Gi");
        assert_eq!(it["spec"]["cpu"]["dedicatedCPUPlacement"], true);
        assert_eq!(it["spec"]["annotations"]["cpu-quota.crio.io"], "disable");
        let labels = &it["metadata"]["labels"];
        assert_eq!(
            labels["instancetype.kubevirt.io/dedicatedCPUPlacement"],
            "true"
        );
        assert_eq!(labels["instancetype.kubevirt.io/hugepages"], "true");
    }

    #[test]
    fn memory_series_uses_2mi_hugepages() {
        let it = find("m1.8xlarge");
        assert_eq!(it["spec"]["memory"]["hugepages"]["pageSize"], "2Mi");
        assert_eq!(
            it["metadata"]["labels"]["instancetype.kubevirt.io/hugepages"],
            "true"
        );
    }

    #[test]
    fn gpu_series_requests_an_nvidia_a400() {
        let gpus = &find("gn1.xlarge")["spec"]["gpus"];
        assert_eq!(
            gpus,
            &json!([{ "name": "gpu1", "deviceName": "nvidia.com/A400" }])
        );
    }

    #[test]
    fn labels_and_annotations_describe_the_size_and_series() {
        let it = find("u1.2xmedium");
        let labels = &it["metadata"]["labels"];
        assert_eq!(labels["instancetype.kubevirt.io/class"], "general.purpose");
        assert_eq!(labels["instancetype.kubevirt.io/cpu"], "2");
        assert_eq!(labels["instancetype.kubevirt.io/memory"], "4Gi");
        assert_eq!(labels["instancetype.kubevirt.io/size"], "2xmedium");
        assert_eq!(labels["instancetype.kubevirt.io/version"], "1");
        assert_eq!(
            labels["instancetype.kubevirt.io/icon-pf"],
            "pficon-server-group"
        );
        let annotations = &it["metadata"]["annotations"];
        assert_eq!(
            annotations["instancetype.kubevirt.io/displayName"],
            "General Purpose"
        );
        let description = annotations["instancetype.kubevirt.io/description"]
            .as_str()
            .expect("description");
        assert!(description.starts_with("The U Series is quite neutral"));
        assert!(description.contains("\n\n*U* is the abbreviation"));
    }
}

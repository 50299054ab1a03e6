//! Node registration: what the host is (capacity, addresses, CPU model labels, hypervisor)
//! and its Node object's metadata and status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Map, Value};

use crate::accel::AccelDecision;
use crate::well_known as wk;
use crate::AgentConfig;

/// Why the Node could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host file the Node's capacity comes from could not be read.
    #[error("cannot read {path}")]
    ReadHost {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The API refused to create or update the Node.
    #[error("cannot register Node {name}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Facts about the host, gathered once at start.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) capacity: Map<String, Value>,
    pub(crate) allocatable: Map<String, Value>,
    pub(crate) addresses: Vec<Value>,
    pub(crate) node_info: Value,
    pub(crate) internal_ip: String,
    /// The node's IPv6 InternalIP on a dual-stack pod network (`OXIVIRT_POD_CIDR_V6`): the
    /// global address of the interface holding the IPv6 default route.
    pub(crate) internal_ip6: Option<String>,
    /// The port of the agent's HTTPS endpoint (0 until it is bound).
    pub(crate) endpoint_port: u16,
}

fn read(path: &'static str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::ReadHost { path, source })
}

impl NodeInfo {
    /// The node's InternalIPs: IPv4, then IPv6 on a dual-stack pod network.
    pub(crate) fn internal_ips(&self) -> Vec<String> {
        std::iter::once(self.internal_ip.clone())
            .chain(self.internal_ip6.clone())
            .collect()
    }

    /// Reads `/proc` and `/etc` for capacity, addresses, OS facts and CPU labels.
    ///
    /// # Errors
    /// [`Error::ReadHost`] when `/proc/meminfo` or `/proc/cpuinfo` cannot be read.
    pub(crate) fn gather(config: &AgentConfig, accel: &AccelDecision) -> Result<Self, Error> {
        let meminfo = read("/proc/meminfo")?;
        let cpuinfo = read("/proc/cpuinfo")?;
        let mem_kib = meminfo_total_kib(&meminfo);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let reserve_kib = config.memory_reserve_bytes / 1024;
        let mut capacity = Map::new();
        capacity.insert("cpu".into(), json!(cpus.to_string()));
        capacity.insert("memory".into(), json!(format!("{mem_kib}Ki")));
        capacity.insert("pods".into(), json!("110"));
        for device in wk::DEVICE_RESOURCES {
            capacity.insert(device.into(), json!("1k"));
        }
        let mut allocatable = capacity.clone();
        allocatable.insert(
            "memory".into(),
            json!(format!("{}Ki", mem_kib.saturating_sub(reserve_kib))),
        );
        let hostname = read("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| config.node_name.clone());
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let fib = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        let internal_ip = primary_ipv4(&route, &fib)
            .unwrap_or(Ipv4Addr::LOCALHOST)
            .to_string();
        let dual_stack = oxivirt_network::NetworkConfig::from_env()
            .is_ok_and(|c| c.enabled && c.cluster_cidr_v6.is_some());
        let internal_ip6 = dual_stack
            .then(|| {
                let route6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
                let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
                primary_ipv6(&route6, &inet6)
            })
            .flatten()
            .map(|ip| ip.to_string());
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let text = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let machine_id = text("/etc/machine-id");
        let system_uuid = Some(text("/sys/class/dmi/id/product_uuid"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| machine_id.clone());
        let node_info = json!({
            "machineID": machine_id,
            "systemUUID": system_uuid,
            "bootID": text("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": text("/proc/sys/kernel/osrelease"),
            "osImage": os_pretty_name(&os_release),
            "containerRuntimeVersion": format!("oxivirt://{}", config.version),
            "kubeletVersion": "v1.32.0-oxivirt",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        });
        let mut labels = BTreeMap::new();
        for (key, value) in [
            ("kubernetes.io/hostname", config.node_name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", "amd64"),
            ("node-role.kubernetes.io/worker", ""),
            (wk::SCHEDULABLE_LABEL, "true"),
        ] {
            labels.insert(key.to_string(), value.to_string());
        }
        labels.insert(wk::ACCEL_LABEL.into(), accel.accel.to_string());
        labels.extend(cpu_labels(&cpuinfo));
        let annotations = BTreeMap::from([(
            wk::ACCEL_REASON_ANNOTATION.to_string(),
            format!("{}: {}", accel.reason, accel.message),
        )]);
        Ok(NodeInfo {
            name: config.node_name.clone(),
            labels,
            annotations,
            capacity,
            allocatable,
            addresses: std::iter::once(&internal_ip)
                .chain(&internal_ip6)
                .map(|ip| json!({"type": "InternalIP", "address": ip}))
                .chain([json!({"type": "Hostname", "address": hostname})])
                .collect(),
            node_info,
            internal_ip,
            internal_ip6,
            endpoint_port: 0,
        })
    }

    /// The Node's status at `now`, keeping each condition's `lastTransitionTime` from
    /// `previous` (the current `status.conditions`) when its status is unchanged.
    pub(crate) fn status(&self, now: &str, previous: Option<&Value>) -> Value {
        let conditions: Vec<Value> = [
            (
                "Ready",
                "True",
                "KubeletReady",
                "oxivirt node agent is posting ready status",
            ),
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "node agent has sufficient memory available",
            ),
            (
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "node agent has no disk pressure",
            ),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "node agent has sufficient PID available",
            ),
        ]
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let transition = previous
                .and_then(Value::as_array)
                .and_then(|list| list.iter().find(|c| c["type"] == kind))
                .filter(|c| c["status"] == status)
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or(now);
            json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": transition,
            })
        })
        .collect();
        json!({
            "capacity": self.capacity,
            "allocatable": self.allocatable,
            "addresses": self.addresses,
            "nodeInfo": self.node_info,
            "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.endpoint_port}},
        })
    }
}

/// Creates the Node or brings its labels, annotations and status up to date. Labels under
/// the CPU prefixes the agent owns that no longer apply are removed.
///
/// # Errors
/// [`Error::Api`] when the API refuses.
pub(crate) async fn register(client: &kube::Client, node: &NodeInfo) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let err = |source| Error::Api {
        name: node.name.clone(),
        source,
    };
    let existing = api.get_opt(&node.name).await.map_err(err)?;
    let previous_conditions = existing
        .as_ref()
        .and_then(|n| serde_json::to_value(n).ok())
        .and_then(|v| v.pointer("/status/conditions").cloned());
    match existing {
        None => {
            let fresh: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": node.labels, "annotations": node.annotations},
                "spec": {},
            }))
            .map_err(|e| err(kube::Error::SerdeError(e)))?;
            match api.create(&PostParams::default(), &fresh).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(err(e)),
            }
        }
        Some(existing) => {
            let mut labels: Map<String, Value> = node
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            for key in existing.metadata.labels.iter().flat_map(|l| l.keys()) {
                let ours = [
                    wk::CPU_MODEL_PREFIX,
                    wk::CPU_FEATURE_PREFIX,
                    wk::HOST_MODEL_PREFIX,
                    wk::CPU_VENDOR_PREFIX,
                ]
                .iter()
                .any(|p| key.starts_with(p));
                if ours && !node.labels.contains_key(key) {
                    labels.insert(key.clone(), Value::Null);
                }
            }
            let patch = json!({"metadata": {"labels": labels, "annotations": node.annotations}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
        }
    }
    post_status(client, node, previous_conditions.as_ref()).await
}

/// Writes the Node's status (conditions with a fresh heartbeat).
///
/// # Errors
/// [`Error::Api`] when the API refuses.
pub(crate) async fn post_status(
    client: &kube::Client,
    node: &NodeInfo,
    previous_conditions: Option<&Value>,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let status = node.status(&crate::status::now(), previous_conditions);
    api.patch_status(
        &node.name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map_err(|source| Error::Api {
        name: node.name.clone(),
        source,
    })?;
    Ok(())
}

fn meminfo_total_kib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn os_pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The IPv4 address of the interface holding the default route: the `LOCAL` address of
/// `/proc/net/fib_trie` inside one of that interface's connected networks in
/// `/proc/net/route` (no sockets, no packets).
pub(crate) fn primary_ipv4(route: &str, fib_trie: &str) -> Option<Ipv4Addr> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
    let rows: Vec<Vec<&str>> = route
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| r.len() >= 8)
        .collect();
    let iface = rows.iter().find(|r| r[1] == "00000000")?[0];
    let networks: Vec<(u32, u32)> = rows
        .iter()
        .filter(|r| r[0] == iface && r[1] != "00000000")
        .filter_map(|r| Some((hex(r[1])?, hex(r[7])?)))
        .collect();
    let mut locals = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '-', '+']).trim();
        if let Ok(addr) = t.parse::<Ipv4Addr>() {
            last = Some(addr);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(addr) = last.take() {
                locals.push(addr);
            }
        }
    }
    locals.into_iter().find(|a| {
        let a = u32::from(*a);
        !Ipv4Addr::from(a).is_loopback()
            && networks
                .iter()
                .any(|&(net, mask)| mask != 0 && a & mask == net & mask)
    })
}

/// The global IPv6 address of the interface holding the IPv6 default route, from
/// `/proc/net/ipv6_route` and `/proc/net/if_inet6`: not tentative, deprecated, temporary
/// or failed duplicate address detection.
pub(crate) fn primary_ipv6(ipv6_route: &str, if_inet6: &str) -> Option<std::net::Ipv6Addr> {
    // Route rows: destination, its length, source, its length, next hop, metric, refcount,
    // use, flags, device. The default route is ::/0 on a real interface (`lo` holds the
    // unreachable ones).
    let iface = ipv6_route
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| {
            r.len() >= 10 && r[0].bytes().all(|b| b == b'0') && r[1] == "00" && r[9] != "lo"
        })?[9];
    // Address rows: address, interface index, prefix length, scope, flags, device.
    const UNUSABLE: u32 = 0x01 | 0x08 | 0x20 | 0x40; // temporary, dadfailed, deprecated, tentative
    if_inet6
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| r.len() >= 6 && r[5] == iface && r[3] == "00")
        .filter(|r| u32::from_str_radix(r[4], 16).is_ok_and(|f| f & UNUSABLE == 0))
        .find_map(|r| {
            u128::from_str_radix(r[0], 16)
                .ok()
                .map(std::net::Ipv6Addr::from)
        })
}

/// QEMU CPU models with the `/proc/cpuinfo` flags each needs (a representative subset of
/// its required features), oldest first per vendor.
const MODELS: &[(&str, &str, &[&str])] = &[
    (
        "Intel",
        "Nehalem",
        &["sse4_1", "sse4_2", "ssse3", "popcnt", "cx16"],
    ),
    (
        "Intel",
        "Westmere",
        &["sse4_2", "popcnt", "aes", "pclmulqdq"],
    ),
    (
        "Intel",
        "SandyBridge",
        &["aes", "pclmulqdq", "avx", "xsave", "x2apic"],
    ),
    (
        "Intel",
        "IvyBridge",
        &["avx", "f16c", "rdrand", "fsgsbase", "erms", "smep"],
    ),
    (
        "Intel",
        "Haswell-noTSX",
        &[
            "f16c", "rdrand", "avx2", "bmi1", "bmi2", "fma", "movbe", "invpcid",
        ],
    ),
    (
        "Intel",
        "Broadwell-noTSX",
        &["avx2", "bmi2", "fma", "invpcid", "adx", "rdseed", "smap"],
    ),
    (
        "Intel",
        "Skylake-Client-noTSX-IBRS",
        &[
            "avx2",
            "adx",
            "rdseed",
            "smap",
            "xsavec",
            "xsaves",
            "clflushopt",
        ],
    ),
    (
        "Intel",
        "Skylake-Server-noTSX-IBRS",
        &[
            "xsavec",
            "clflushopt",
            "avx512f",
            "avx512dq",
            "avx512cd",
            "avx512bw",
            "avx512vl",
            "clwb",
        ],
    ),
    (
        "Intel",
        "Cascadelake-Server-noTSX",
        &["avx512f", "avx512bw", "avx512vl", "clwb", "avx512_vnni"],
    ),
    (
        "Intel",
        "Icelake-Server-noTSX",
        &[
            "avx512_vnni",
            "avx512vbmi",
            "avx512_vbmi2",
            "gfni",
            "vaes",
            "vpclmulqdq",
            "avx512_bitalg",
            "avx512_vpopcntdq",
            "rdpid",
            "umip",
        ],
    ),
    ("AMD", "Opteron_G3", &["sse4a", "abm", "popcnt", "cx16"]),
    (
        "AMD",
        "EPYC",
        &[
            "avx2",
            "bmi1",
            "bmi2",
            "fma",
            "movbe",
            "adx",
            "rdseed",
            "smap",
            "sha_ni",
            "xsavec",
            "clflushopt",
            "sse4a",
            "misalignsse",
            "aes",
            "f16c",
            "rdrand",
            "fsgsbase",
        ],
    ),
    (
        "AMD",
        "EPYC-Rome",
        &[
            "sha_ni",
            "xsavec",
            "clflushopt",
            "clwb",
            "umip",
            "rdpid",
            "clzero",
            "xsaveerptr",
        ],
    ),
];

/// `/proc/cpuinfo` flags published as `cpu-feature.node.kubevirt.io/<libvirt name>`.
const FEATURES: &[(&str, &str)] = &[
    ("adx", "adx"),
    ("aes", "aes"),
    ("avx", "avx"),
    ("avx2", "avx2"),
    ("avx512bw", "avx512bw"),
    ("avx512cd", "avx512cd"),
    ("avx512dq", "avx512dq"),
    ("avx512f", "avx512f"),
    ("avx512vl", "avx512vl"),
    ("avx512_vnni", "avx512-vnni"),
    ("bmi1", "bmi1"),
    ("bmi2", "bmi2"),
    ("clflushopt", "clflushopt"),
    ("clwb", "clwb"),
    ("erms", "erms"),
    ("f16c", "f16c"),
    ("fma", "fma"),
    ("fsgsbase", "fsgsbase"),
    ("gfni", "gfni"),
    ("hypervisor", "hypervisor"),
    ("invpcid", "invpcid"),
    ("movbe", "movbe"),
    ("pcid", "pcid"),
    ("pclmulqdq", "pclmuldq"),
    ("pdpe1gb", "pdpe1gb"),
    ("popcnt", "popcnt"),
    ("rdpid", "rdpid"),
    ("rdrand", "rdrand"),
    ("rdseed", "rdseed"),
    ("rdtscp", "rdtscp"),
    ("sha_ni", "sha-ni"),
    ("smap", "smap"),
    ("smep", "smep"),
    ("sse4_1", "sse4.1"),
    ("sse4_2", "sse4.2"),
    ("ssse3", "ssse3"),
    ("svm", "svm"),
    ("tsc_deadline_timer", "tsc-deadline"),
    ("umip", "umip"),
    ("vaes", "vaes"),
    ("vmx", "vmx"),
    ("x2apic", "x2apic"),
    ("xsave", "xsave"),
];

/// CPU vendor, model, host-model and feature labels from `/proc/cpuinfo`, named as
/// KubeVirt's node labeller names them.
pub(crate) fn cpu_labels(cpuinfo: &str) -> BTreeMap<String, String> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let flags_line = field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags_line.split_whitespace().collect();
    let vendor = match field("vendor_id").as_deref() {
        Some("GenuineIntel") => "Intel".to_string(),
        Some("AuthenticAMD") => "AMD".to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut labels = BTreeMap::new();
    let mut set = |prefix: &str, name: &str| {
        labels.insert(format!("{prefix}{name}"), "true".to_string());
    };
    if !vendor.is_empty() {
        set(wk::CPU_VENDOR_PREFIX, &vendor);
    }
    let mut host_model = None;
    for (model_vendor, model, needs) in MODELS {
        if *model_vendor == vendor && needs.iter().all(|f| flags.contains(f)) {
            set(wk::CPU_MODEL_PREFIX, model);
            host_model = Some(*model);
        }
    }
    if let Some(model) = host_model {
        set(wk::HOST_MODEL_PREFIX, model);
    }
    for (flag, name) in FEATURES {
        if flags.contains(flag) {
            set(wk::CPU_FEATURE_PREFIX, name);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        br0\t00000A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const FIB: &str =
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
        \x20    +-- 10.10.0.0/24 2 0 2\n           |-- 10.10.0.1\n              /32 host LOCAL\n\
        \x20    +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.1\n              /32 host LOCAL\n\
        \x20    +-- 192.0.2.0/24 2 0 2\n           |-- 192.0.2.0\n              /24 link UNICAST\n\
        \x20          |-- 192.0.2.2\n              /32 host LOCAL\n";

    #[test]
    fn primary_address_is_the_local_address_on_the_default_route_interface() {
        assert_eq!(primary_ipv4(ROUTE, FIB), Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(primary_ipv4("Iface\n", FIB), None, "no default route");
    }

    #[test]
    fn primary_ipv6_is_the_usable_global_address_on_the_default_route_interface() {
        let routes = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
";
        let addresses = "\
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
20010db8000000000000000000000009 04 40 00 20     eth0
20010db8000000000000000000000007 04 40 00 41     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
fd000000000000000000000000000003 05 40 00 80     eth1
";
        assert_eq!(
            primary_ipv6(routes, addresses),
            Some("fd00::2".parse().unwrap()),
            "link-local, deprecated and tentative temporary addresses are skipped"
        );
        assert_eq!(
            primary_ipv6(&routes.replace("     eth0\n", " eth1\n"), addresses),
            Some("fd00::3".parse().unwrap())
        );
        let no_default = routes.lines().next().unwrap();
        assert_eq!(primary_ipv6(no_default, addresses), None);
    }

    #[test]
    fn amd_epyc_host_gets_vendor_model_host_model_and_feature_labels() {
        let cpuinfo = "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_1 sse4_2 ssse3 \
            popcnt cx16 sse4a abm avx2 bmi1 bmi2 fma movbe adx rdseed smap sha_ni xsavec clflushopt \
            misalignsse aes f16c rdrand fsgsbase pclmulqdq hypervisor\n";
        let labels = cpu_labels(cpuinfo);
        assert_eq!(labels["cpu-vendor.node.kubevirt.io/AMD"], "true");
        assert!(labels.contains_key("cpu-model.node.kubevirt.io/Opteron_G3"));
        assert!(labels.contains_key("cpu-model.node.kubevirt.io/EPYC"));
        assert!(!labels.contains_key("cpu-model.node.kubevirt.io/EPYC-Rome"));
        assert!(
            !labels.contains_key("cpu-model.node.kubevirt.io/Haswell-noTSX"),
            "other vendor"
        );
        assert!(labels.contains_key("host-model-cpu.node.kubevirt.io/EPYC"));
        assert!(labels.contains_key("cpu-feature.node.kubevirt.io/sse4.2"));
        assert!(labels.contains_key("cpu-feature.node.kubevirt.io/pclmuldq"));
        assert!(labels.contains_key("cpu-feature.node.kubevirt.io/sha-ni"));
    }

    #[test]
    fn meminfo_and_os_release_are_parsed() {
        assert_eq!(
            meminfo_total_kib("MemTotal:       24563224 kB\nMemFree: 1 kB\n"),
            24563224
        );
        assert_eq!(
            os_pretty_name("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }
}

//! KubeVirt's VirtualMachineInstance defaults (the VMI mutating webhook, run on create).
//!
//! Order and rules follow upstream's `SetDefaultVirtualMachineInstance` (UPSTREAM-FACTS §5):
//! spec defaults (architecture, machine type, CPU request, guest memory, CPU topology, pull
//! policies, eviction strategy, pod interface, volume disks), then the generated object defaults
//! (firmware, features, disk devices, inputs, probes, CD-ROMs, feature/timer states), then the
//! per-architecture ones (disk bus, watchdog, CPU model), then hotplug limits.

use serde_json::{json, Map, Value};

use crate::config::ClusterConfig;
use crate::json::{
    array, at, default_key, default_str, ensure_object, has, int_at, nonempty, object_at, str_at,
};
use crate::quantity::{format_binary, from_json, Quantity};
use crate::review::Cause;

/// Upstream's `DefaultCPUModel`.
pub(crate) const DEFAULT_CPU_MODEL: &str = "host-model";
/// Upper bound on vCPUs when deriving `maxSockets` (upstream: "lets choose 512").
const MAX_VCPUS: u64 = 512;

fn quantity(v: &Value, keys: &[&str]) -> Option<Quantity> {
    at(v, keys).and_then(from_json).and_then(Result::ok)
}

/// Defaults `spec.architecture` to the cluster's architecture; returns the result.
pub(crate) fn default_architecture(spec: &mut Map<String, Value>, cfg: &ClusterConfig) -> String {
    default_str(spec, "architecture", &cfg.architecture);
    spec.get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("amd64")
        .to_string()
}

/// Defaults `domain.machine.type` for `arch`.
pub(crate) fn default_machine_type(spec: &mut Value, cfg: &ClusterConfig, arch: &str) {
    if let Some(machine) = object_at(spec, &["domain", "machine"]) {
        default_str(machine, "type", &cfg.machine_type(arch));
    }
}

/// Applies every VMI default to `spec`. `firmware_uuid` (when non-empty) fills an empty
/// `domain.firmware.uuid`.
/// Returns causes only for a default pod interface the cluster cannot provide.
pub(crate) fn default_spec(
    spec: &mut Value,
    cfg: &ClusterConfig,
    firmware_uuid: &str,
) -> Vec<Cause> {
    let Some(map) = ensure_object(spec) else {
        return Vec::new();
    };
    let arch = default_architecture(map, cfg);
    default_machine_type(spec, cfg, &arch);
    default_cpu_request(spec);
    default_guest_memory(spec);
    default_cpu_topology(spec);
    default_pull_policies(spec);
    if let (Some(strategy), Some(map)) = (cfg.eviction_strategy(), spec.as_object_mut()) {
        default_key(map, "evictionStrategy", json!(strategy));
    }
    let causes = default_pod_interface(spec, cfg);
    default_volume_disks(spec);
    object_defaults(spec, firmware_uuid);
    arch_defaults(spec, &arch);
    if let Some(cpu) = object_at(spec, &["domain", "cpu"]) {
        default_str(cpu, "model", cfg.cpu_model().unwrap_or(DEFAULT_CPU_MODEL));
    }
    if cfg.live_update() && arch != "arm64" {
        default_hotplug_limits(spec, cfg);
    }
    causes
}

fn default_cpu_request(spec: &mut Value) {
    let limit = at(spec, &["domain", "resources", "limits", "cpu"]).cloned();
    let request_zero =
        quantity(spec, &["domain", "resources", "requests", "cpu"]).is_none_or(|q| q.is_zero());
    if let Some(limit) = limit.filter(|l| {
        from_json(l)
            .and_then(Result::ok)
            .is_some_and(|q| !q.is_zero())
    }) {
        if request_zero {
            if let Some(requests) = object_at(spec, &["domain", "resources", "requests"]) {
                requests.insert("cpu".into(), limit);
            }
        }
    }
}

fn default_guest_memory(spec: &mut Value) {
    if has(spec, &["domain", "memory", "guest"]) {
        return;
    }
    let nonzero = |keys: &[&str]| {
        at(spec, keys)
            .filter(|_| quantity(spec, keys).is_some_and(|q| !q.is_zero()))
            .cloned()
    };
    let guest = nonzero(&["domain", "resources", "requests", "memory"])
        .or_else(|| nonzero(&["domain", "resources", "limits", "memory"]))
        .or_else(|| {
            let page = str_at(spec, &["domain", "memory", "hugepages", "pageSize"])?;
            Quantity::parse(page).ok().map(|_| json!(page))
        });
    if let Some(memory) = object_at(spec, &["domain", "memory"]) {
        if let Some(guest) = guest {
            memory.insert("guest".into(), guest);
        }
    }
}

fn default_cpu_topology(spec: &mut Value) {
    let topo =
        ["cores", "sockets", "threads"].map(|k| int_at(spec, &["domain", "cpu", k]).unwrap_or(0));
    if topo.iter().any(|v| *v != 0) {
        return;
    }
    // Without a topology, the vCPU count from limits (else requests) becomes sockets, which
    // upstream found performs best (rhbz#1653453).
    let from = |kind: &str| {
        at(spec, &["domain", "resources", kind, "cpu"])
            .map(|_| quantity(spec, &["domain", "resources", kind, "cpu"]))
    };
    let vcpus = from("limits")
        .or_else(|| from("requests"))
        .flatten()
        .map(|q| q.value())
        .unwrap_or(1)
        .max(1);
    if let Some(cpu) = object_at(spec, &["domain", "cpu"]) {
        cpu.insert("sockets".into(), json!(vcpus));
        cpu.insert("cores".into(), json!(1));
        cpu.insert("threads".into(), json!(1));
    }
}

fn default_pull_policies(spec: &mut Value) {
    let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) else {
        return;
    };
    for volume in volumes {
        let Some(cd) = volume
            .get_mut("containerDisk")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let image = cd.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image.ends_with(":latest") || !image.contains([':', '@']) {
            "Always"
        } else {
            "IfNotPresent"
        };
        default_str(cd, "imagePullPolicy", policy);
    }
}

fn default_pod_interface(spec: &mut Value, cfg: &ClusterConfig) -> Vec<Cause> {
    if at(spec, &["domain", "devices", "autoattachPodInterface"]) == Some(&Value::Bool(false))
        || !array(spec, &["networks"]).is_empty()
        || !array(spec, &["domain", "devices", "interfaces"]).is_empty()
    {
        return Vec::new();
    }
    let binding = cfg.default_network_interface();
    if binding != "masquerade" && binding != "bridge" {
        return vec![Cause::invalid(
            "spec.domain.devices.interfaces",
            format!(
                "default network interface {binding} is not supported: use masquerade or bridge"
            ),
        )];
    }
    if let Some(devices) = object_at(spec, &["domain", "devices"]) {
        devices.insert(
            "interfaces".into(),
            json!([{"name": "default", binding: {}}]),
        );
    }
    if let Some(map) = spec.as_object_mut() {
        map.insert("networks".into(), json!([{"name": "default", "pod": {}}]));
    }
    Vec::new()
}

fn default_volume_disks(spec: &mut Value) {
    let mut taken: Vec<String> = Vec::new();
    for list in [
        &["domain", "devices", "disks"][..],
        &["domain", "devices", "filesystems"][..],
    ] {
        taken.extend(
            array(spec, list)
                .iter()
                .filter_map(|d| d.get("name")?.as_str())
                .map(str::to_string),
        );
    }
    let missing: Vec<Value> = array(spec, &["volumes"])
        .iter()
        .filter(|v| !has(v, &["memoryDump"]))
        .filter_map(|v| v.get("name")?.as_str())
        .filter(|n| !taken.iter().any(|t| t == n))
        .map(|n| json!({"name": n}))
        .collect();
    if missing.is_empty() {
        return;
    }
    if let Some(devices) = object_at(spec, &["domain", "devices"]) {
        let disks = devices.entry("disks").or_insert_with(|| json!([]));
        if let Some(disks) = disks.as_array_mut() {
            disks.extend(missing);
        } else if disks.is_null() {
            *disks = Value::Array(missing);
        }
    }
}

fn disks_mut(spec: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    spec.pointer_mut("/domain/devices/disks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Feature structs whose `enabled` defaults to true when present (upstream `SetDefaults_FeatureState`).
const FEATURE_STATES: [&str; 4] = ["acpi", "apic", "smm", "pvspinlock"];
const TIMERS: [&str; 5] = ["hpet", "kvm", "pit", "rtc", "hyperv"];

fn object_defaults(spec: &mut Value, firmware_uuid: &str) {
    if let Some(firmware) = object_at(spec, &["domain", "firmware"]) {
        if !firmware_uuid.is_empty() {
            default_str(firmware, "uuid", firmware_uuid);
        }
    }
    object_at(spec, &["domain", "features"]);
    for disk in disks_mut(spec) {
        if !["disk", "cdrom", "lun"]
            .iter()
            .any(|k| disk.get(*k).is_some_and(|v| !v.is_null()))
        {
            disk.insert("disk".into(), json!({}));
        }
        if let Some(cdrom) = disk.get_mut("cdrom").and_then(Value::as_object_mut) {
            default_key(cdrom, "readonly", json!(true));
            default_str(cdrom, "tray", "closed");
        }
    }
    if let Some(inputs) = spec
        .pointer_mut("/domain/devices/inputs")
        .and_then(Value::as_array_mut)
    {
        for input in inputs.iter_mut().filter_map(Value::as_object_mut) {
            default_str(input, "bus", "usb");
            default_str(input, "type", "tablet");
        }
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        if let Some(p) = spec.get_mut(probe).and_then(Value::as_object_mut) {
            for (key, min, default) in [
                ("timeoutSeconds", 1, 1),
                ("periodSeconds", 1, 10),
                ("successThreshold", 1, 1),
                ("failureThreshold", 1, 3),
            ] {
                if p.get(key).and_then(Value::as_i64).is_none_or(|v| v < min) {
                    p.insert(key.into(), json!(default));
                }
            }
        }
    }
    if let Some(features) = spec
        .pointer_mut("/domain/features")
        .and_then(Value::as_object_mut)
    {
        for name in FEATURE_STATES {
            if let Some(f) = features.get_mut(name).and_then(Value::as_object_mut) {
                default_key(f, "enabled", json!(true));
            }
        }
        if let Some(hyperv) = features.get_mut("hyperv").and_then(Value::as_object_mut) {
            for (name, f) in hyperv.iter_mut() {
                let Some(f) = f.as_object_mut() else { continue };
                default_key(f, "enabled", json!(true));
                if name == "spinlocks" && f.get("enabled") == Some(&Value::Bool(true)) {
                    default_key(f, "spinlocks", json!(4096));
                }
            }
        }
    }
    if let Some(timer) = spec
        .pointer_mut("/domain/clock/timer")
        .and_then(Value::as_object_mut)
    {
        for name in TIMERS {
            if let Some(t) = timer.get_mut(name).and_then(Value::as_object_mut) {
                default_key(t, "present", json!(true));
            }
        }
    }
}

fn arch_defaults(spec: &mut Value, arch: &str) {
    // amd64: SATA, "typically supported out of the box by guest operating systems" (upstream);
    // elsewhere virtio disks and SCSI for devices virtio cannot carry.
    let (disk_bus, cdrom_bus, lun_bus) = if arch == "amd64" {
        ("sata", "sata", "sata")
    } else {
        ("virtio", "scsi", "scsi")
    };
    for disk in disks_mut(spec) {
        for (kind, bus) in [("disk", disk_bus), ("cdrom", cdrom_bus), ("lun", lun_bus)] {
            if let Some(target) = disk.get_mut(kind).and_then(Value::as_object_mut) {
                default_str(target, "bus", bus);
            }
        }
    }
    if arch == "amd64" && has(spec, &["domain", "devices", "watchdog"]) {
        if let Some(esb) = object_at(spec, &["domain", "devices", "watchdog", "i6300esb"]) {
            default_str(esb, "action", "reset");
        }
    }
}

fn default_hotplug_limits(spec: &mut Value, cfg: &ClusterConfig) {
    let get =
        |k: &str| u64::try_from(int_at(spec, &["domain", "cpu", k]).unwrap_or(0)).unwrap_or(0);
    let (sockets, cores, threads) = (get("sockets"), get("cores").max(1), get("threads").max(1));
    if get("maxSockets") == 0 && sockets > 0 {
        let max = match cfg.max_cpu_sockets() {
            Some(m) if m > 0 => u64::from(m).max(sockets),
            _ => {
                let ratio = u64::from(cfg.max_hotplug_ratio());
                let max = sockets * ratio;
                if max * cores * threads > MAX_VCPUS {
                    (MAX_VCPUS / (cores * threads)).max(sockets)
                } else {
                    max
                }
            }
        };
        if let Some(cpu) = object_at(spec, &["domain", "cpu"]) {
            cpu.insert("maxSockets".into(), json!(max));
        }
    }
    if has(spec, &["domain", "memory", "maxGuest"]) {
        return;
    }
    let Some(guest) = quantity(spec, &["domain", "memory", "guest"]) else {
        return;
    };
    let max_guest = match cfg.max_guest() {
        Some(m) => m.to_string(),
        None => format_binary(guest.value() * i128::from(cfg.max_hotplug_ratio())),
    };
    if memory_hotplug_compatible(spec, &guest, &max_guest) {
        if let Some(memory) = object_at(spec, &["domain", "memory"]) {
            memory.insert("maxGuest".into(), json!(max_guest));
        }
    }
}

/// Upstream's `ValidateLiveUpdateMemory`: which VMs can take memory hotplug at all.
fn memory_hotplug_compatible(spec: &Value, guest: &Quantity, max_guest: &str) -> bool {
    const ALIGNMENT: i128 = 2 << 20;
    let Ok(max) = Quantity::parse(max_guest) else {
        return false;
    };
    nonempty(spec, &["architecture"]) == Some("amd64")
        && !has(spec, &["domain", "cpu", "realtime"])
        && !has(spec, &["domain", "cpu", "numa", "guestMappingPassthrough"])
        && !has(spec, &["domain", "launchSecurity"])
        && at(spec, &["domain", "cpu", "dedicatedCpuPlacement"]) != Some(&Value::Bool(true))
        && !has(spec, &["domain", "memory", "hugepages"])
        && guest.value() >= 1 << 30
        && guest.value() % ALIGNMENT == 0
        && max.value() % ALIGNMENT == 0
        && *guest <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(spec: Value) -> Value {
        let mut spec = spec;
        let causes = default_spec(&mut spec, &ClusterConfig::default(), "uuid-1");
        assert!(causes.is_empty(), "{causes:?}");
        spec
    }

    #[test]
    fn empty_vmi_gets_machine_type_topology_model_and_pod_interface() {
        let spec = defaulted(
            json!({"domain": {"devices": {}, "resources": {"requests": {"memory": "1Gi"}}}}),
        );
        assert_eq!(spec["architecture"], "amd64");
        assert_eq!(spec["domain"]["machine"]["type"], "q35");
        assert_eq!(spec["domain"]["cpu"]["sockets"], 1);
        assert_eq!(spec["domain"]["cpu"]["cores"], 1);
        assert_eq!(spec["domain"]["cpu"]["threads"], 1);
        assert_eq!(spec["domain"]["cpu"]["model"], "host-model");
        assert_eq!(spec["domain"]["memory"]["guest"], "1Gi");
        assert_eq!(
            spec["domain"]["devices"]["interfaces"],
            json!([{"name": "default", "masquerade": {}}])
        );
        assert_eq!(spec["networks"], json!([{"name": "default", "pod": {}}]));
        assert_eq!(spec["domain"]["firmware"]["uuid"], "uuid-1");
        assert_eq!(spec["domain"]["features"], json!({}));
    }

    #[test]
    fn cpu_limit_becomes_request_and_socket_count() {
        let spec = defaulted(json!({"domain": {"resources": {"limits": {"cpu": "3"}}}}));
        assert_eq!(spec["domain"]["resources"]["requests"]["cpu"], "3");
        assert_eq!(spec["domain"]["cpu"]["sockets"], 3);
        assert_eq!(spec["domain"]["cpu"]["maxSockets"], 12);
        let spec = defaulted(json!({"domain": {"resources": {"requests": {"cpu": "500m"}}}}));
        assert_eq!(spec["domain"]["cpu"]["sockets"], 1);
    }

    #[test]
    fn explicit_topology_and_model_are_kept() {
        let spec = defaulted(json!({"domain": {"cpu": {"cores": 2, "model": "Haswell"}}}));
        assert_eq!(
            spec["domain"]["cpu"],
            json!({"cores": 2, "model": "Haswell"})
        );
    }

    #[test]
    fn guest_memory_comes_from_requests_then_limits_then_hugepages() {
        let spec = defaulted(json!({"domain": {"resources": {"limits": {"memory": "2Gi"}}}}));
        assert_eq!(spec["domain"]["memory"]["guest"], "2Gi");
        assert_eq!(spec["domain"]["memory"]["maxGuest"], "8Gi");
        let spec = defaulted(json!({"domain": {"memory": {"hugepages": {"pageSize": "2Mi"}}}}));
        assert_eq!(spec["domain"]["memory"]["guest"], "2Mi");
        assert!(
            spec["domain"]["memory"].get("maxGuest").is_none(),
            "hugepages VMs get no memory hotplug"
        );
    }

    #[test]
    fn every_volume_gets_a_sata_disk_and_cdroms_are_read_only_and_closed() {
        let spec = defaulted(json!({
            "domain": {"devices": {"disks": [{"name": "iso", "cdrom": {}}, {"name": "root"}]}},
            "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/x/y:1.0"}},
                        {"name": "iso", "containerDisk": {"image": "quay.io/x/iso"}},
                        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config"}}],
        }));
        let disks = &spec["domain"]["devices"]["disks"];
        assert_eq!(
            disks[0]["cdrom"],
            json!({"bus": "sata", "readonly": true, "tray": "closed"})
        );
        assert_eq!(disks[1]["disk"], json!({"bus": "sata"}));
        assert_eq!(
            disks[2],
            json!({"name": "cloudinit", "disk": {"bus": "sata"}})
        );
        assert_eq!(
            spec["volumes"][0]["containerDisk"]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(
            spec["volumes"][1]["containerDisk"]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn explicit_bus_is_kept() {
        let spec = defaulted(
            json!({"domain": {"devices": {"disks": [{"name": "a", "disk": {"bus": "virtio"}}]}},
                                     "volumes": [{"name": "a", "emptyDisk": {"capacity": "1Gi"}}]}),
        );
        assert_eq!(
            spec["domain"]["devices"]["disks"][0]["disk"]["bus"],
            "virtio"
        );
    }

    #[test]
    fn probes_get_kubernetes_timing_defaults() {
        let spec =
            defaulted(json!({"readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": 20}}));
        assert_eq!(
            spec["readinessProbe"],
            json!({"httpGet": {"port": 80}, "periodSeconds": 20, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3})
        );
    }

    #[test]
    fn autoattach_false_or_explicit_networks_suppress_the_pod_interface() {
        let spec = defaulted(json!({"domain": {"devices": {"autoattachPodInterface": false}}}));
        assert!(spec.get("networks").is_none());
        let spec = defaulted(json!({"networks": [{"name": "a", "multus": {"networkName": "n"}}]}));
        assert!(spec["domain"]["devices"].get("interfaces").is_none());
    }

    #[test]
    fn cluster_bridge_binding_is_used_and_slirp_is_refused() {
        let cfg = ClusterConfig::from_configuration(
            json!({"network": {"defaultNetworkInterface": "bridge"}}),
        );
        let mut spec = json!({});
        assert!(default_spec(&mut spec, &cfg, "u").is_empty());
        assert_eq!(
            spec["domain"]["devices"]["interfaces"][0],
            json!({"name": "default", "bridge": {}})
        );
        let cfg = ClusterConfig::from_configuration(
            json!({"network": {"defaultNetworkInterface": "slirp"}}),
        );
        let causes = default_spec(&mut json!({}), &cfg, "u");
        assert_eq!(causes[0].field, "spec.domain.devices.interfaces");
    }

    #[test]
    fn present_features_are_enabled_and_spinlocks_get_4096_retries() {
        let spec = defaulted(
            json!({"domain": {"features": {"acpi": {}, "smm": {"enabled": false},
            "hyperv": {"relaxed": {}, "spinlocks": {}}}, "devices": {"watchdog": {"name": "w"}}}}),
        );
        let f = &spec["domain"]["features"];
        assert_eq!(f["acpi"], json!({"enabled": true}));
        assert_eq!(f["smm"], json!({"enabled": false}));
        assert_eq!(f["hyperv"]["relaxed"], json!({"enabled": true}));
        assert_eq!(
            f["hyperv"]["spinlocks"],
            json!({"enabled": true, "spinlocks": 4096})
        );
        assert_eq!(
            spec["domain"]["devices"]["watchdog"]["i6300esb"],
            json!({"action": "reset"})
        );
    }

    #[test]
    fn inputs_and_cluster_eviction_strategy_are_defaulted() {
        let cfg = ClusterConfig::from_configuration(json!({"evictionStrategy": "LiveMigrate"}));
        let mut spec = json!({"domain": {"devices": {"inputs": [{"name": "tablet"}]}}});
        assert!(default_spec(&mut spec, &cfg, "u").is_empty());
        assert_eq!(
            spec["domain"]["devices"]["inputs"][0],
            json!({"name": "tablet", "bus": "usb", "type": "tablet"})
        );
        assert_eq!(spec["evictionStrategy"], "LiveMigrate");
    }

    #[test]
    fn defaults_are_idempotent() {
        let once = defaulted(
            json!({"domain": {"resources": {"requests": {"memory": "2Gi", "cpu": "2"}}},
                                    "volumes": [{"name": "a", "containerDisk": {"image": "x"}}]}),
        );
        assert_eq!(defaulted(once.clone()), once);
    }
}

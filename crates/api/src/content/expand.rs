//! Instance type expansion: what `GET …/virtualmachines/{name}/expand-spec` returns.
//!
//! Mirrors upstream's `pkg/instancetype/expand` and `pkg/instancetype/apply`: every field
//! the instance type sets is applied and a template that already sets it is a conflict;
//! the preference then fills only what the template leaves unset.

use std::fmt;

use serde_json::{Map, Value};

use super::preference_apply::{apply_preference, preferred_topology, spread_options, Topology};

/// Why a VirtualMachine could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// The VM references an instance type (`spec.instancetype`) but none was supplied.
    MissingInstancetype {
        /// `spec.instancetype.name` of the VM.
        name: String,
    },
    /// The VM references a preference (`spec.preference`) but none was supplied.
    MissingPreference {
        /// `spec.preference.name` of the VM.
        name: String,
    },
    /// The template sets fields the instance type provides (upstream's conflict error).
    Conflicts {
        /// Field paths such as `spec.template.spec.domain.cpu.sockets`.
        fields: Vec<String>,
    },
    /// The preference spreads vCPUs in a way the instance type's vCPU count cannot satisfy.
    SpreadTopology {
        /// Upstream's message naming the vCPU count and the ratio.
        message: String,
    },
    /// A field that must be an object (or list) in a VirtualMachine has another JSON type.
    Malformed {
        /// Path of the field, `VirtualMachine` for the object itself.
        field: String,
    },
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::MissingInstancetype { name } => {
                write!(
                    f,
                    "instance type {name:?} referenced by the VM was not supplied"
                )
            }
            ExpandError::MissingPreference { name } => {
                write!(
                    f,
                    "preference {name:?} referenced by the VM was not supplied"
                )
            }
            ExpandError::Conflicts { fields } => write!(
                f,
                "VM field(s) {} conflicts with selected instance type",
                fields.join(", ")
            ),
            ExpandError::SpreadTopology { message } => f.write_str(message),
            ExpandError::Malformed { field } => write!(f, "{field} has the wrong JSON type"),
        }
    }
}

impl std::error::Error for ExpandError {}

/// `Result` of this module.
pub type Result<T, E = ExpandError> = std::result::Result<T, E>;

/// Path prefix of every conflict, as upstream reports it.
const TEMPLATE_SPEC: &str = "spec.template.spec";

/// The VirtualMachine `vm` with its instance type and preference applied, as
/// `GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/expand-spec`
/// returns it: `spec.instancetype` and `spec.preference` removed, the template's domain
/// filled.
///
/// `instancetype` and `preference` are the resolved objects (any of the four kinds, or a
/// ControllerRevision's embedded object); a bare spec is accepted too. The caller resolves
/// them; whatever is supplied is applied.
///
/// Before applying, a disk is added for every volume without a disk or filesystem, and the
/// default pod network with a `masquerade` interface (OpenShift Virtualization's default
/// binding) when the template has neither interfaces nor networks, so preferences reach them.
///
/// # Errors
/// [`ExpandError::MissingInstancetype`]/[`ExpandError::MissingPreference`] when the VM
/// references one that was not supplied; [`ExpandError::Conflicts`] when the template sets
/// what the instance type provides (all conflicting paths, upstream's message);
/// [`ExpandError::SpreadTopology`] when a spread topology does not divide the vCPUs;
/// [`ExpandError::Malformed`] when a field along the way is not an object or list.
///
/// # Caveats
/// Upstream then applies the general VMI defaults (machine type, CPU model, disk bus
/// `sata`, …); that is the admission defaulter's job and is not done here. Preference
/// requirements are checked at admission, not here.
pub fn expand_spec(
    vm: &Value,
    instancetype: Option<&Value>,
    preference: Option<&Value>,
) -> Result<Value, ExpandError> {
    let spec_of = |v: &'_ Value| -> Value {
        match v.get("spec") {
            Some(spec) if v.get("kind").is_some() || v.get("apiVersion").is_some() => spec.clone(),
            _ => v.clone(),
        }
    };
    let refs = &vm["spec"];
    let wants_instancetype = refs.get("instancetype").is_some_and(|r| !r.is_null());
    let wants_preference = refs.get("preference").is_some_and(|r| !r.is_null());
    if wants_instancetype && instancetype.is_none() {
        let name = ref_name(&refs["instancetype"]);
        return Err(ExpandError::MissingInstancetype { name });
    }
    if wants_preference && preference.is_none() {
        let name = ref_name(&refs["preference"]);
        return Err(ExpandError::MissingPreference { name });
    }
    let instancetype = instancetype.map(spec_of);
    let preference = preference.map(spec_of);
    if instancetype.is_none() && preference.is_none() {
        return Ok(vm.clone());
    }

    let mut expanded = vm.clone();
    let root = expanded
        .as_object_mut()
        .ok_or_else(|| malformed("VirtualMachine"))?;
    let template = template_of(root)?;
    let mut annotations = match template.get("metadata").map(|m| &m["annotations"]) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => return Err(malformed("spec.template.metadata.annotations")),
    };
    let vmi = child(template, "spec", TEMPLATE_SPEC)?;
    add_default_volume_disks(vmi)?;
    add_default_pod_network(vmi)?;
    if let Some(it) = &instancetype {
        apply_instancetype(it, preference.as_ref(), vmi, &mut annotations)?;
    }
    if let Some(pref) = &preference {
        apply_preference(pref, vmi, &mut annotations)?;
    }
    if !annotations.is_empty() {
        let template = template_of(root)?;
        child(template, "metadata", "spec.template.metadata")?
            .insert("annotations".into(), Value::Object(annotations));
    }
    let spec = child(root, "spec", "spec")?;
    spec.remove("instancetype");
    spec.remove("preference");
    Ok(expanded)
}

fn template_of(root: &mut Map<String, Value>) -> Result<&mut Map<String, Value>> {
    child(child(root, "spec", "spec")?, "template", "spec.template")
}

fn ref_name(matcher: &Value) -> String {
    matcher["name"]
        .as_str()
        .or_else(|| matcher["inferFromVolume"].as_str())
        .unwrap_or_default()
        .to_string()
}

pub(super) fn malformed(field: &str) -> ExpandError {
    ExpandError::Malformed {
        field: field.to_string(),
    }
}

/// The object at `key` of `parent`, created when absent or null.
///
/// # Errors
/// [`ExpandError::Malformed`] naming `path` when the value is not an object.
pub(super) fn child<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a mut Map<String, Value>> {
    let slot = parent.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().ok_or_else(|| malformed(path))
}

/// The list at `key` of `parent`, created when absent or null.
///
/// # Errors
/// [`ExpandError::Malformed`] naming `path` when the value is not a list.
pub(super) fn list<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a mut Vec<Value>> {
    let slot = parent.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| malformed(path))
}

/// Whether `map[key]` is absent or JSON null (a nil pointer in upstream's types).
pub(super) fn unset(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Whether `map[key]` is unset or a Go zero value (`""`, `0`, `false`).
pub(super) fn zero(map: &Map<String, Value>, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(_)) => false,
    }
}

/// Upstream's `SetDefaultVolumeDisk`: a disk named after every volume that has no disk or
/// filesystem.
fn add_default_volume_disks(vmi: &mut Map<String, Value>) -> Result<()> {
    let volumes: Vec<String> = vmi
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|v| v["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if volumes.is_empty() {
        return Ok(());
    }
    let devices = child(
        child(vmi, "domain", "spec.template.spec.domain")?,
        "devices",
        "spec.template.spec.domain.devices",
    )?;
    let mut taken: Vec<String> = Vec::new();
    for key in ["disks", "filesystems"] {
        if let Some(items) = devices.get(key).and_then(Value::as_array) {
            taken.extend(
                items
                    .iter()
                    .filter_map(|d| d["name"].as_str().map(String::from)),
            );
        }
    }
    let disks = list(devices, "disks", "spec.template.spec.domain.devices.disks")?;
    for volume in volumes {
        if !taken.contains(&volume) {
            let mut disk = Map::new();
            disk.insert("name".into(), Value::String(volume));
            disks.push(Value::Object(disk));
        }
    }
    Ok(())
}

/// Upstream's `SetDefaultNetworkInterface` with OpenShift Virtualization's default binding
/// (`masquerade`): unless `autoattachPodInterface` is false, a template with neither
/// interfaces nor networks gets `default` on the pod network.
fn add_default_pod_network(vmi: &mut Map<String, Value>) -> Result<()> {
    let devices = vmi.get("domain").map_or(&Value::Null, |d| &d["devices"]);
    if devices["autoattachPodInterface"] == Value::Bool(false) {
        return Ok(());
    }
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    if !empty(&devices["interfaces"]) || !vmi.get("networks").is_none_or(empty) {
        return Ok(());
    }
    let devices = child(
        child(vmi, "domain", "spec.template.spec.domain")?,
        "devices",
        "spec.template.spec.domain.devices",
    )?;
    list(
        devices,
        "interfaces",
        "spec.template.spec.domain.devices.interfaces",
    )?
    .push(serde_json::json!({ "name": "default", "masquerade": {} }));
    list(vmi, "networks", "spec.template.spec.networks")?
        .push(serde_json::json!({ "name": "default", "pod": {} }));
    Ok(())
}

/// Applies every field of the instance type spec `it`, collecting conflicts first-to-last
/// in upstream's order (node selector, scheduler, CPU, memory, IO threads, launch security,
/// GPUs, host devices, annotations).
fn apply_instancetype(
    it: &Value,
    preference: Option<&Value>,
    vmi: &mut Map<String, Value>,
    annotations: &mut Map<String, Value>,
) -> Result<()> {
    let mut conflicts = Vec::new();
    let mut conflict = |path: &str| conflicts.push(format!("{TEMPLATE_SPEC}.{path}"));

    if let Some(selector) = it.get("nodeSelector").filter(|v| !v.is_null()) {
        if unset(vmi, "nodeSelector") {
            vmi.insert("nodeSelector".into(), selector.clone());
        } else {
            conflict("nodeSelector");
        }
    }
    if let Some(name) = it["schedulerName"].as_str().filter(|s| !s.is_empty()) {
        if zero(vmi, "schedulerName") {
            vmi.insert("schedulerName".into(), name.into());
        } else {
            conflict("schedulerName");
        }
    }

    let domain = child(vmi, "domain", "spec.template.spec.domain")?;
    let cpu_conflicts = cpu_conflicts(it, domain)?;
    let cpu_ok = cpu_conflicts.is_empty();
    cpu_conflicts.iter().for_each(|c| conflict(c));
    if cpu_ok {
        apply_cpu(it, preference, domain)?;
    }
    if let Some(c) = apply_memory(it, domain)? {
        conflict(c);
    }
    for (key, path) in [
        ("ioThreadsPolicy", "domain.ioThreadsPolicy"),
        ("ioThreads", "domain.ioThreads"),
        ("launchSecurity", "domain.launchSecurity"),
    ] {
        if let Some(value) = it.get(key).filter(|v| !v.is_null()) {
            if unset(domain, key) {
                domain.insert(key.into(), value.clone());
            } else {
                conflict(path);
            }
        }
    }
    let devices = child(domain, "devices", "spec.template.spec.domain.devices")?;
    for key in ["gpus", "hostDevices"] {
        if let Some(items) = it[key].as_array().filter(|a| !a.is_empty()) {
            if zero(devices, key) {
                devices.insert(key.into(), Value::Array(items.clone()));
            } else {
                conflict(&format!("domain.devices.{key}"));
            }
        }
    }
    if let Some(wanted) = it["annotations"].as_object() {
        for (key, value) in wanted {
            match annotations.get(key) {
                Some(existing) if existing != value => {
                    conflicts.push(format!("annotations.{key}"));
                }
                Some(_) => {}
                None => {
                    annotations.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(ExpandError::Conflicts { fields: conflicts })
    }
}

/// Upstream's `validateCPU`: paths (below the template spec) the template sets that the
/// instance type owns.
fn cpu_conflicts(it: &Value, domain: &mut Map<String, Value>) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    let resources = &domain.get("resources").cloned().unwrap_or(Value::Null);
    if !resources["requests"]["cpu"].is_null() {
        out.push("domain.resources.requests.cpu");
    }
    if !resources["limits"]["cpu"].is_null() {
        out.push("domain.resources.limits.cpu");
    }
    let cpu = child(domain, "cpu", "spec.template.spec.domain.cpu")?;
    for (key, path) in [
        ("sockets", "domain.cpu.sockets"),
        ("cores", "domain.cpu.cores"),
        ("threads", "domain.cpu.threads"),
    ] {
        if !zero(cpu, key) {
            out.push(path);
        }
    }
    let it_cpu = &it["cpu"];
    let owned = |key: &str| !it_cpu[key].is_null();
    if !zero(cpu, "model") && owned("model") {
        out.push("domain.cpu.model");
    }
    if !zero(cpu, "dedicatedCpuPlacement") && owned("dedicatedCPUPlacement") {
        out.push("domain.cpu.dedicatedCPUPlacement");
    }
    if !zero(cpu, "isolateEmulatorThread") && owned("isolateEmulatorThread") {
        out.push("domain.cpu.isolateEmulatorThread");
    }
    if !unset(cpu, "numa") && owned("numa") {
        out.push("domain.cpu.numa");
    }
    if !unset(cpu, "realtime") && owned("realtime") {
        out.push("domain.cpu.realtime");
    }
    Ok(out)
}

/// Upstream's `applyCPU` once there are no conflicts: the CPU settings, then the guest
/// topology chosen by the preference.
fn apply_cpu(
    it: &Value,
    preference: Option<&Value>,
    domain: &mut Map<String, Value>,
) -> Result<()> {
    let it_cpu = &it["cpu"];
    let cpu = child(domain, "cpu", "spec.template.spec.domain.cpu")?;
    if let Some(model) = it_cpu.get("model").filter(|v| !v.is_null()) {
        cpu.insert("model".into(), model.clone());
    }
    for (from, to) in [
        ("dedicatedCPUPlacement", "dedicatedCpuPlacement"),
        ("isolateEmulatorThread", "isolateEmulatorThread"),
    ] {
        match it_cpu[from].as_bool() {
            Some(true) => {
                cpu.insert(to.into(), Value::Bool(true));
            }
            Some(false) => {
                cpu.remove(to);
            }
            None => {}
        }
    }
    for key in ["numa", "realtime"] {
        if let Some(value) = it_cpu.get(key).filter(|v| !v.is_null()) {
            cpu.insert(key.into(), value.clone());
        }
    }
    if let Some(max) = it_cpu["maxSockets"].as_u64().filter(|m| *m != 0) {
        cpu.insert("maxSockets".into(), max.into());
    }

    let vcpus = it_cpu["guest"].as_u64().unwrap_or(0);
    let topology = preferred_topology(preference);
    if topology == Topology::Spread {
        check_spread(vcpus, preference)?;
    }
    let (mut sockets, mut cores, mut threads) = (1, 1, 1);
    if vcpus > 1 {
        match topology {
            Topology::Sockets | Topology::Any => sockets = vcpus,
            Topology::Cores => cores = vcpus,
            Topology::Threads => threads = vcpus,
            Topology::Spread => {
                let (ratio, across) = spread_options(preference);
                match across.as_str() {
                    "CoresThreads" => (threads, cores) = (ratio, vcpus / ratio),
                    "SocketsCoresThreads" => {
                        (threads, cores, sockets) = (2, ratio, vcpus / 2 / ratio);
                    }
                    _ => (cores, sockets) = (ratio, vcpus / ratio),
                }
            }
            Topology::Unknown => {}
        }
    }
    cpu.insert("cores".into(), cores.into());
    cpu.insert("sockets".into(), sockets.into());
    cpu.insert("threads".into(), threads.into());
    Ok(())
}

/// Upstream's `CheckSpreadCPUTopology`: the vCPUs must divide evenly into the spread.
fn check_spread(vcpus: u64, preference: Option<&Value>) -> Result<()> {
    let (ratio, across) = spread_options(preference);
    // A zero ratio divides nothing (upstream would divide by zero).
    let divides = |n: u64| ratio != 0 && n.is_multiple_of(ratio);
    let prefix = format!("{vcpus} vCPUs provided by the instance type are not divisible by the");
    let ratio_fields = "Spec.PreferSpreadSocketToCoreRatio or Spec.CPU.PreferSpreadOptions.Ratio";
    let message = match across.as_str() {
        "CoresThreads" if !divides(vcpus) => {
            format!("{prefix} number of threads per core {ratio}")
        }
        "SocketsCoresThreads" if !vcpus.is_multiple_of(2) || !divides(vcpus / 2) => {
            format!("{prefix} number of threads per core 2 and {ratio_fields} of {ratio}")
        }
        "CoresThreads" | "SocketsCoresThreads" => return Ok(()),
        _ if !divides(vcpus) => {
            format!("{prefix} {ratio_fields} of {ratio} provided by the preference")
        }
        _ => return Ok(()),
    };
    Err(ExpandError::SpreadTopology { message })
}

/// Upstream's `applyMemory`: the first conflicting path, or the memory settings applied.
fn apply_memory(it: &Value, domain: &mut Map<String, Value>) -> Result<Option<&'static str>> {
    let it_memory = &it["memory"];
    let resources = domain.get("resources").cloned().unwrap_or(Value::Null);
    let memory = child(domain, "memory", "spec.template.spec.domain.memory")?;
    if !unset(memory, "guest") {
        return Ok(Some("domain.memory.guest"));
    }
    if !unset(memory, "hugepages") && !it_memory["hugepages"].is_null() {
        return Ok(Some("domain.memory.hugepages"));
    }
    if !unset(memory, "maxGuest") && !it_memory["maxGuest"].is_null() {
        return Ok(Some("domain.memory.maxGuest"));
    }
    if !resources["requests"]["memory"].is_null() {
        return Ok(Some("domain.resources.requests.memory"));
    }
    if !resources["limits"]["memory"].is_null() {
        return Ok(Some("domain.resources.limits.memory"));
    }
    let guest = it_memory["guest"].clone();
    for key in ["guest", "hugepages", "maxGuest"] {
        if let Some(value) = it_memory.get(key).filter(|v| !v.is_null()) {
            memory.insert(key.into(), value.clone());
        }
    }
    let percent = it_memory["overcommitPercent"].as_u64().unwrap_or(0);
    if percent > 0 {
        if let Some(bytes) = guest.as_str().and_then(quantity_bytes) {
            // Upstream computes this in float32; doing the same keeps the rounding identical.
            let requested = (bytes as f32 * (1.0 - percent as f32 / 100.0)) as i64;
            let resources = child(domain, "resources", "spec.template.spec.domain.resources")?;
            child(
                resources,
                "requests",
                "spec.template.spec.domain.resources.requests",
            )?
            .insert("memory".into(), Value::String(binary_si(requested)));
        }
    }
    Ok(None)
}

/// Bytes of a Kubernetes quantity such as `4Gi`, `512Mi`, `1.5Gi` or `1G`.
fn quantity_bytes(q: &str) -> Option<i64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| q.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((q, 1.0));
    let value: f64 = number.parse().ok()?;
    Some((value * factor).round() as i64)
}

/// The canonical binary-SI form of `bytes` (`2Gi`, `1536Mi`, `1000`), as upstream's
/// `resource.NewQuantity(n, BinarySI)` prints it.
fn binary_si(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes == 0 {
        return "0".into();
    }
    let (mut value, mut unit) = (bytes, "");
    for next in UNITS {
        if value % 1024 != 0 {
            break;
        }
        value /= 1024;
        unit = next;
    }
    format!("{value}{unit}")
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;

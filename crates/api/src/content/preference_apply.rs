//! Applying a preference to a VMI template spec, as upstream's
//! `pkg/instancetype/preference/apply` does: a preferred value only fills a field the
//! template leaves unset (the few exceptions are marked).

use serde_json::{Map, Value};

use super::expand::{child, list, unset, zero, Result};

/// The guest CPU topology a preference asks for (`spec.cpu.preferredCPUTopology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topology {
    Sockets,
    Cores,
    Threads,
    Spread,
    Any,
    /// A value upstream does not know: every dimension stays 1.
    Unknown,
}

/// The preferred topology, `sockets` when none is given; the deprecated `prefer*` spellings
/// of v1beta1 mean the same as the new ones.
pub(super) fn preferred_topology(preference: Option<&Value>) -> Topology {
    let value = preference
        .and_then(|p| p["cpu"]["preferredCPUTopology"].as_str())
        .unwrap_or("sockets");
    match value {
        "sockets" | "preferSockets" => Topology::Sockets,
        "cores" | "preferCores" => Topology::Cores,
        "threads" | "preferThreads" => Topology::Threads,
        "spread" | "preferSpread" => Topology::Spread,
        "any" | "preferAny" => Topology::Any,
        _ => Topology::Unknown,
    }
}

/// The spread ratio (default 2, `preferSpreadSocketToCoreRatio`, then
/// `cpu.spreadOptions.ratio`) and what it spreads across (default `SocketsCores`).
pub(super) fn spread_options(preference: Option<&Value>) -> (u64, String) {
    let null = Value::Null;
    let pref = preference.unwrap_or(&null);
    let mut ratio = pref["preferSpreadSocketToCoreRatio"]
        .as_u64()
        .filter(|r| *r != 0)
        .unwrap_or(2);
    let options = &pref["cpu"]["spreadOptions"];
    if let Some(r) = options["ratio"].as_u64() {
        ratio = r;
    }
    let across = options["across"].as_str().unwrap_or("SocketsCores");
    (ratio, across.to_string())
}

const DOMAIN: &str = "spec.template.spec.domain";
const DEVICES: &str = "spec.template.spec.domain.devices";

/// Applies the preference spec `pref` to the VMI template spec `vmi` and its template
/// annotations, in upstream's order.
///
/// # Errors
/// [`super::ExpandError::Malformed`] when a field of the template has the wrong JSON type.
pub(super) fn apply_preference(
    pref: &Value,
    vmi: &mut Map<String, Value>,
    annotations: &mut Map<String, Value>,
) -> Result<()> {
    let domain = child(vmi, "domain", DOMAIN)?;
    apply_cpu_features(pref, domain)?;
    apply_devices(pref, domain)?;
    apply_interface_masquerade(pref, vmi)?;
    let domain = child(vmi, "domain", DOMAIN)?;
    apply_features(pref, domain)?;
    apply_firmware(pref, domain)?;
    if let Some(machine) = pref["machine"]["preferredMachineType"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        let target = child(domain, "machine", "spec.template.spec.domain.machine")?;
        if zero(target, "type") {
            target.insert("type".into(), machine.into());
        }
    }
    apply_clock(pref, domain)?;
    if let Some(security) = pref.get("preferredLaunchSecurity").filter(|v| !v.is_null()) {
        if unset(domain, "launchSecurity") {
            domain.insert("launchSecurity".into(), security.clone());
        }
    }
    if let Some(subdomain) = pref["preferredSubdomain"].as_str() {
        if zero(vmi, "subdomain") {
            vmi.insert("subdomain".into(), subdomain.into());
        }
    }
    if let Some(grace) = pref.get("preferredTerminationGracePeriodSeconds") {
        if !grace.is_null() && unset(vmi, "terminationGracePeriodSeconds") {
            vmi.insert("terminationGracePeriodSeconds".into(), grace.clone());
        }
    }
    if let Some(wanted) = pref["annotations"].as_object() {
        for (key, value) in wanted {
            annotations
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    Ok(())
}

/// Preferred CPU features the template does not already name.
fn apply_cpu_features(pref: &Value, domain: &mut Map<String, Value>) -> Result<()> {
    let Some(preferred) = pref["cpu"]["preferredCPUFeatures"].as_array() else {
        return Ok(());
    };
    if preferred.is_empty() {
        return Ok(());
    }
    let cpu = child(domain, "cpu", "spec.template.spec.domain.cpu")?;
    let features = list(cpu, "features", "spec.template.spec.domain.cpu.features")?;
    let named: Vec<Value> = features.iter().map(|f| f["name"].clone()).collect();
    for feature in preferred {
        if !named.contains(&feature["name"]) {
            features.push(feature.clone());
        }
    }
    Ok(())
}

/// `preferredX` of the preference → `x` of the template's devices, when unset there.
const DEVICE_FIELDS: [(&str, &str); 10] = [
    ("preferredUseVirtioTransitional", "useVirtioTransitional"),
    ("preferredBlockMultiQueue", "blockMultiQueue"),
    (
        "preferredNetworkInterfaceMultiQueue",
        "networkInterfaceMultiqueue",
    ),
    ("preferredRng", "rng"),
    ("preferredTPM", "tpm"),
    (
        "preferredAutoattachGraphicsDevice",
        "autoattachGraphicsDevice",
    ),
    ("preferredAutoattachMemBalloon", "autoattachMemBalloon"),
    ("preferredAutoattachPodInterface", "autoattachPodInterface"),
    (
        "preferredAutoattachSerialConsole",
        "autoattachSerialConsole",
    ),
    ("preferredAutoattachInputDevice", "autoattachInputDevice"),
];

fn apply_devices(pref: &Value, domain: &mut Map<String, Value>) -> Result<()> {
    let Some(prefs) = pref["devices"].as_object() else {
        return Ok(());
    };
    let devices = child(domain, "devices", DEVICES)?;
    let preferred = |key: &str| prefs.get(key).filter(|v| !v.is_null());
    for (from, to) in DEVICE_FIELDS {
        if let Some(value) = preferred(from) {
            if unset(devices, to) {
                devices.insert(to.into(), value.clone());
            }
        }
    }
    // Upstream cannot tell an unset `disableHotplug` from false, so the preference wins.
    if let Some(value) = preferred("preferredDisableHotplug") {
        devices.insert("disableHotplug".into(), value.clone());
    }
    let text = |key: &str| {
        preferred(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let (Some(model), Some(Value::Object(sound))) =
        (text("preferredSoundModel"), devices.get_mut("sound"))
    {
        if zero(sound, "model") {
            sound.insert("model".into(), model.into());
        }
    }

    for disk in list(devices, "disks", "spec.template.spec.domain.devices.disks")? {
        let Some(disk) = disk.as_object_mut() else {
            continue;
        };
        if unset(disk, "disk") && unset(disk, "cdrom") && unset(disk, "lun") {
            disk.insert("disk".into(), Value::Object(Map::new()));
        }
        if !unset(disk, "disk") {
            let target = child(
                disk,
                "disk",
                "spec.template.spec.domain.devices.disks[].disk",
            )?;
            fill(target, "bus", text("preferredDiskBus"));
            let virtio = target.get("bus") == Some(&Value::from("virtio"));
            if let Some(size) = preferred("preferredDiskBlockSize") {
                if unset(disk, "blockSize") {
                    disk.insert("blockSize".into(), size.clone());
                }
            }
            fill(disk, "cache", text("preferredDiskCache"));
            fill(disk, "io", text("preferredDiskIO"));
            if let Some(dedicated) = preferred("preferredDiskDedicatedIoThread") {
                if virtio && unset(disk, "dedicatedIOThread") {
                    disk.insert("dedicatedIOThread".into(), dedicated.clone());
                }
            }
        } else if !unset(disk, "cdrom") {
            let target = child(
                disk,
                "cdrom",
                "spec.template.spec.domain.devices.disks[].cdrom",
            )?;
            fill(target, "bus", text("preferredCdromBus"));
        } else {
            let target = child(disk, "lun", "spec.template.spec.domain.devices.disks[].lun")?;
            fill(target, "bus", text("preferredLunBus"));
        }
    }

    let interfaces = devices.get_mut("interfaces").and_then(Value::as_array_mut);
    if let Some(interfaces) = interfaces {
        for iface in interfaces.iter_mut().filter_map(Value::as_object_mut) {
            fill(iface, "model", text("preferredInterfaceModel"));
        }
    }
    for input in devices
        .get_mut("inputs")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        fill(input, "bus", text("preferredInputBus"));
        fill(input, "type", text("preferredInputType"));
    }
    if let Some(model) = preferred("preferredPanicDeviceModel") {
        let panics = list(
            devices,
            "panicDevices",
            "spec.template.spec.domain.devices.panicDevices",
        )?;
        if panics.is_empty() {
            let mut device = Map::new();
            device.insert("model".into(), model.clone());
            panics.push(Value::Object(device));
        } else {
            for device in panics.iter_mut().filter_map(Value::as_object_mut) {
                if unset(device, "model") {
                    device.insert("model".into(), model.clone());
                }
            }
        }
    }
    Ok(())
}

/// Sets `map[key]` to `value` when the template leaves it at its zero value.
fn fill(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        if zero(map, key) {
            map.insert(key.into(), value.into());
        }
    }
}

/// Upstream's `ApplyInterfacePreferences` part for `preferredInterfaceMasquerade`: a
/// masquerade binding for pod-network interfaces that have no binding yet.
fn apply_interface_masquerade(pref: &Value, vmi: &mut Map<String, Value>) -> Result<()> {
    let Some(masquerade) = pref["devices"]
        .get("preferredInterfaceMasquerade")
        .filter(|v| !v.is_null())
    else {
        return Ok(());
    };
    let pod_networks: Vec<Value> = vmi
        .get("networks")
        .and_then(Value::as_array)
        .map(|n| {
            n.iter()
                .filter(|n| !n["pod"].is_null())
                .map(|n| n["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let domain = child(vmi, "domain", DOMAIN)?;
    let devices = child(domain, "devices", DEVICES)?;
    const BINDINGS: [&str; 8] = [
        "bridge",
        "slirp",
        "masquerade",
        "sriov",
        "macvtap",
        "passt",
        "passtBinding",
        "binding",
    ];
    for iface in devices
        .get_mut("interfaces")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        let unbound = BINDINGS.iter().all(|b| unset(iface, b));
        let on_pod = iface.get("name").is_some_and(|n| pod_networks.contains(n));
        if unbound && on_pod {
            iface.insert("masquerade".into(), masquerade.clone());
        }
    }
    Ok(())
}

/// Upstream's `applyFeaturePreferences`.
fn apply_features(pref: &Value, domain: &mut Map<String, Value>) -> Result<()> {
    let Some(prefs) = pref["features"].as_object() else {
        return Ok(());
    };
    let features = child(domain, "features", "spec.template.spec.domain.features")?;
    // Upstream's ACPI is not a pointer, so a preferred ACPI always replaces it.
    if let Some(acpi) = prefs.get("preferredAcpi").filter(|v| !v.is_null()) {
        features.insert("acpi".into(), acpi.clone());
    }
    for (from, to) in [
        ("preferredApic", "apic"),
        ("preferredKvm", "kvm"),
        ("preferredPvspinlock", "pvspinlock"),
        ("preferredSmm", "smm"),
    ] {
        if let Some(value) = prefs.get(from).filter(|v| !v.is_null()) {
            if unset(features, to) {
                features.insert(to.into(), value.clone());
            }
        }
    }
    let passthrough = features
        .get("hypervPassthrough")
        .is_some_and(|h| h["enabled"] == Value::Bool(true));
    if let Some(hyperv) = prefs.get("preferredHyperv").and_then(Value::as_object) {
        if !passthrough {
            let target = child(
                features,
                "hyperv",
                "spec.template.spec.domain.features.hyperv",
            )?;
            for (key, value) in hyperv {
                if !value.is_null() && unset(target, key) {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Ok(())
}

/// Upstream's `applyFirmwarePreferences`, including its creation of an empty bootloader.
fn apply_firmware(pref: &Value, domain: &mut Map<String, Value>) -> Result<()> {
    let Some(prefs) = pref["firmware"].as_object() else {
        return Ok(());
    };
    let firmware = child(domain, "firmware", "spec.template.spec.domain.firmware")?;
    let boot = child(
        firmware,
        "bootloader",
        "spec.template.spec.domain.firmware.bootloader",
    )?;
    let flag = |key: &str| prefs.get(key).and_then(Value::as_bool);
    if flag("preferredUseBios") == Some(true) && unset(boot, "bios") && unset(boot, "efi") {
        boot.insert("bios".into(), Value::Object(Map::new()));
    }
    if let (Some(serial), Some(Value::Object(bios))) =
        (flag("preferredUseBiosSerial"), boot.get_mut("bios"))
    {
        if unset(bios, "useSerial") {
            bios.insert("useSerial".into(), serial.into());
        }
    }
    if let Some(efi) = prefs.get("preferredEfi").filter(|v| !v.is_null()) {
        if unset(boot, "efi") && unset(boot, "bios") {
            boot.insert("efi".into(), efi.clone());
            // With preferredEfi the deprecated preferredUse* fields are ignored.
            return Ok(());
        }
    }
    if flag("preferredUseEfi") == Some(true) && unset(boot, "efi") && unset(boot, "bios") {
        boot.insert("efi".into(), Value::Object(Map::new()));
    }
    if let (Some(secure), Some(Value::Object(efi))) =
        (flag("preferredUseSecureBoot"), boot.get_mut("efi"))
    {
        if unset(efi, "secureBoot") {
            efi.insert("secureBoot".into(), secure.into());
        }
    }
    Ok(())
}

/// Upstream's `applyClockPreferences`: the offset only when neither `utc` nor `timezone`
/// is set, the timer only when none is.
fn apply_clock(pref: &Value, domain: &mut Map<String, Value>) -> Result<()> {
    let Some(prefs) = pref["clock"].as_object() else {
        return Ok(());
    };
    let clock = child(domain, "clock", "spec.template.spec.domain.clock")?;
    if let Some(Value::Object(offset)) = prefs.get("preferredClockOffset") {
        if unset(clock, "utc") && unset(clock, "timezone") {
            for (key, value) in offset {
                clock.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(timer) = prefs.get("preferredTimer").filter(|v| !v.is_null()) {
        if unset(clock, "timer") {
            clock.insert("timer".into(), timer.clone());
        }
    }
    Ok(())
}

//! Disk and volume rules of KubeVirt's VMI spec validation (`validateDisks`, `validateVolumes`
//! and the disk-to-volume mapping of `validateBootOrder`), shared by VMIs and VM templates.
//!
//! Disk and volume names are RFC 1123 subdomains (≤253 characters, dots allowed) as the manual
//! states (7.1.3 and 7.5 tables; acceptance tests accept `my-disk.1`), where upstream checks disk
//! names as labels.

use serde_json::Value;

use crate::json::{array, at, bool_at, child, has, index, nonempty, str_at};
use crate::names::{invalid_value, subdomain_errors};
use crate::review::Cause;
use crate::vmi_validation::validate_serial;

const VOLUME_SOURCES: [&str; 15] = [
    "persistentVolumeClaim",
    "sysprep",
    "cloudInitNoCloud",
    "cloudInitConfigDrive",
    "containerDisk",
    "ephemeral",
    "emptyDisk",
    "hostDisk",
    "dataVolume",
    "configMap",
    "secret",
    "downwardAPI",
    "serviceAccount",
    "downwardMetrics",
    "memoryDump",
];
const DISK_TARGETS: [&str; 3] = ["disk", "lun", "cdrom"];
const CLOUD_INIT_USER_MAX: usize = 2048;

pub(crate) fn validate_disks(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let dp = child(path, "domain.devices.disks");
    let disks = array(spec, &["domain", "devices", "disks"]);
    let volumes = array(spec, &["volumes"]);
    for (i, disk) in disks.iter().enumerate() {
        let f = index(&dp, i);
        let name = str_at(disk, &["name"]).unwrap_or("");
        for err in subdomain_errors(name) {
            out.push(Cause::invalid(child(&f, "name"), invalid_value(name, &err)));
        }
        if let Some(j) = disks[..i]
            .iter()
            .position(|d| str_at(d, &["name"]) == Some(name))
        {
            out.push(Cause::invalid(
                child(&f, "name"),
                format!("{f} and {} must not have the same Name.", index(&dp, j)),
            ));
        }
        let targets: Vec<&str> = DISK_TARGETS
            .into_iter()
            .filter(|t| has(disk, &[*t]))
            .collect();
        if targets.len() > 1 {
            out.push(Cause::invalid(
                &f,
                format!("{f} can only have a single target type defined"),
            ));
        }
        let kind = targets.first().copied().unwrap_or("disk");
        validate_bus(disk, kind, &f, out);
        if let Some(serial) = nonempty(disk, &["serial"]) {
            validate_serial(serial, &f, &child(&f, "serial"), out);
        }
        if let Some(cache) = nonempty(disk, &["cache"])
            .filter(|c| !["none", "writethrough", "writeback"].contains(c))
        {
            let cf = child(&f, "cache");
            out.push(Cause::invalid(
                &cf,
                format!("{cf} has invalid value {cache}"),
            ));
        }
        if let Some(io) = nonempty(disk, &["io"]).filter(|m| !["native", "threads"].contains(m)) {
            out.push(Cause::not_supported(
                child(&f, "io"),
                format!("Disk IO mode for {f} is not supported. Supported modes are: native, threads. Got: {io}"),
            ));
        }
        if let Some(policy) = nonempty(disk, &["errorPolicy"])
            .filter(|p| !["stop", "ignore", "report", "enospace"].contains(p))
        {
            let pf = child(&f, "errorPolicy");
            out.push(Cause::invalid(
                &pf,
                format!("{pf} has invalid value \"{policy}\""),
            ));
        }
        match volumes.iter().find(|v| str_at(v, &["name"]) == Some(name)) {
            None if kind == "cdrom" => out.push(Cause::invalid(
                child(&f, "name"),
                "DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk",
            )),
            None => out.push(Cause::invalid(child(&f, "name"), format!("{} '{name}' not found.", child(&f, "name")))),
            Some(v) if kind == "lun" && !has(v, &["persistentVolumeClaim"]) && !has(v, &["dataVolume"]) => {
                let lf = child(&f, "lun");
                out.push(Cause::invalid(&lf, format!("{lf} can only be mapped to a DataVolume or PersistentVolumeClaim volume.")));
            }
            Some(_) => {}
        }
    }
}

fn validate_bus(disk: &Value, kind: &str, f: &str, out: &mut Vec<Cause>) {
    let bus = str_at(disk, &[kind, "bus"]).unwrap_or("");
    let bf = child(f, &format!("{kind}.bus"));
    match bus {
        "" | "scsi" | "usb" => {}
        "ide" => out.push(Cause::invalid(&bf, "IDE bus is not supported")),
        "virtio" if kind == "cdrom" => out.push(Cause::invalid(&bf, "Bus type virtio is invalid for CD-ROM device")),
        "virtio" => {}
        "sata" if kind == "disk" && bool_at(disk, &["disk", "readonly"]) == Some(true) => {
            out.push(Cause::invalid(&bf, "sata hard-disks do not support read-only."));
        }
        "sata" => {}
        other => out.push(Cause::invalid(
            &bf,
            format!("{f} is set with an unrecognized bus {other}, must be one of: [virtio scsi sata usb]"),
        )),
    }
    if bool_at(disk, &["dedicatedIOThread"]) == Some(true) && !bus.is_empty() && bus != "virtio" {
        out.push(Cause::not_supported(
            f,
            format!("IOThreads are not supported for disks on a {bus} bus"),
        ));
    }
}

fn is_clean_absolute(path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    trimmed.starts_with('/')
        && trimmed[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

pub(crate) fn validate_volumes(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let vp = child(path, "volumes");
    let volumes = array(spec, &["volumes"]);
    let mut service_accounts = 0;
    for (i, volume) in volumes.iter().enumerate() {
        let f = index(&vp, i);
        let name = str_at(volume, &["name"]).unwrap_or("");
        for err in subdomain_errors(name) {
            out.push(Cause::invalid(child(&f, "name"), invalid_value(name, &err)));
        }
        if let Some(j) = volumes[..i]
            .iter()
            .position(|v| str_at(v, &["name"]) == Some(name))
        {
            out.push(Cause::invalid(
                child(&f, "name"),
                format!("{f} and {} must not have the same Name.", index(&vp, j)),
            ));
        }
        if VOLUME_SOURCES
            .iter()
            .filter(|s| has(volume, &[**s]))
            .count()
            != 1
        {
            out.push(Cause::invalid(
                &f,
                format!("{f} must have exactly one source type set"),
            ));
        }
        if has(volume, &["dataVolume"]) && nonempty(volume, &["dataVolume", "name"]).is_none() {
            out.push(Cause::required(
                child(&f, "name"),
                "DataVolume 'name' must be set",
            ));
        }
        for source in ["cloudInitNoCloud", "cloudInitConfigDrive"] {
            let Some(ci) = at(volume, &[source]) else {
                continue;
            };
            let cf = child(&f, source);
            // The Go field UserDataSecretRef is `secretRef` in JSON.
            let user = ["secretRef", "userDataBase64", "userData"]
                .iter()
                .filter(|k| present(ci, k))
                .count();
            let network = ["networkDataSecretRef", "networkDataBase64", "networkData"]
                .iter()
                .filter(|k| present(ci, k))
                .count();
            if user > 1 {
                out.push(Cause::invalid(
                    &cf,
                    format!("{cf} must have only one userdatasource set."),
                ));
            }
            if network > 1 {
                out.push(Cause::invalid(
                    &cf,
                    format!("{cf} must have only one networkdata source set."),
                ));
            }
            if str_at(ci, &["userData"]).is_some_and(|u| u.len() > CLOUD_INIT_USER_MAX) {
                out.push(Cause::invalid(
                    &cf,
                    format!("{cf} userdata exceeds {CLOUD_INIT_USER_MAX} byte limit. Should use UserDataSecretRef for larger data."),
                ));
            }
            if user == 0 && network == 0 {
                out.push(Cause::invalid(
                    &cf,
                    format!(
                        "{cf} must have at least one userdatasource or one networkdatasource set."
                    ),
                ));
            }
        }
        if has(volume, &["hostDisk"]) {
            if nonempty(volume, &["hostDisk", "path"]).is_none() {
                let pf = child(&f, "hostDisk.path");
                out.push(Cause::not_found(
                    &pf,
                    format!("{pf} is required for hostDisk volume"),
                ));
            }
            let kind = str_at(volume, &["hostDisk", "type"]).unwrap_or("");
            if kind != "Disk" && kind != "DiskOrCreate" {
                let tf = child(&f, "hostDisk.type");
                out.push(Cause::invalid(
                    &tf,
                    format!(
                        "{tf} has invalid value '{kind}', allowed are 'Disk' or 'DiskOrCreate'"
                    ),
                ));
            }
        }
        for (source, key) in [
            ("configMap", "name"),
            ("secret", "secretName"),
            ("serviceAccount", "serviceAccountName"),
        ] {
            if has(volume, &[source]) && nonempty(volume, &[source, key]).is_none() {
                let kf = child(&f, &format!("{source}.{key}"));
                out.push(Cause::invalid(&kf, format!("{kf} is a required field")));
            }
        }
        service_accounts += usize::from(has(volume, &["serviceAccount"]));
        if let Some(p) = nonempty(volume, &["containerDisk", "path"]) {
            let cf = child(&f, "containerDisk");
            if p == "/" {
                out.push(Cause::invalid(&cf, format!("{cf} must not point to root")));
            } else if !is_clean_absolute(p) {
                out.push(Cause::invalid(
                    &cf,
                    format!("{cf} must be an absolute path to a file without relative components"),
                ));
            }
        }
    }
    if service_accounts > 1 {
        out.push(Cause::invalid(
            &vp,
            format!("{vp} must have max one serviceAccount volume set"),
        ));
    }
}

/// A cloud-init data source counts when it is a non-empty string or a reference with a name.
fn present(ci: &Value, key: &str) -> bool {
    match at(ci, &[key]) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(v) => nonempty(v, &["name"]).is_some(),
        None => false,
    }
}

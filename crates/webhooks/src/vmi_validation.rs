//! KubeVirt's VirtualMachineInstance spec validation (`ValidateVirtualMachineInstanceSpec`),
//! shared by VMIs (`spec`), VM templates (`spec.template.spec`), replica sets and pools.
//!
//! Messages are upstream's, with field paths written as real JSON paths. Two deliberate
//! differences, both from the manual: disk and volume names are RFC 1123 *subdomains* (≤253
//! characters, dots allowed; manual 7.1.3 and 7.5 tables and their acceptance tests), and
//! hugepages must be `2Mi` or `1Gi` on amd64 (manual 7.14.8).

use serde_json::Value;

use crate::json::{array, at, bool_at, child, has, index, int_at, nonempty, str_at};
use crate::names::{invalid_value, label_errors, subdomain_errors};
use crate::quantity::{from_json, Quantity};
use crate::review::Cause;
use crate::vmi_network::{validate_networks, validate_probes};
use crate::vmi_storage::{validate_disks, validate_volumes};

const CPU_FEATURE_POLICIES: [&str; 6] = ["", "force", "require", "optional", "disable", "forbid"];
const EVICTION_STRATEGIES: [&str; 4] = ["LiveMigrate", "LiveMigrateIfPossible", "None", "External"];
const MAX_SERIAL: usize = 256;

/// Validates the VMI spec at `path` (`spec` or `spec.template.spec`).
pub(crate) fn validate_spec(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    validate_names(spec, path, out);
    validate_architecture(spec, path, out);
    validate_resources(spec, path, out);
    validate_hugepages(spec, path, out);
    validate_firmware(spec, path, out);
    validate_cpu(spec, path, out);
    validate_start_strategy(spec, path, out);
    validate_networks(spec, path, out);
    validate_boot_order(spec, path, out);
    validate_inputs(spec, path, out);
    validate_probes(spec, path, out);
    validate_disks(spec, path, out);
    validate_volumes(spec, path, out);
    if let Some(strategy) =
        str_at(spec, &["evictionStrategy"]).filter(|s| !EVICTION_STRATEGIES.contains(s))
    {
        let f = child(path, "evictionStrategy");
        out.push(Cause::invalid(
            &f,
            format!("{f} is set with an unrecognized option: {strategy}"),
        ));
    }
    if let Some(policy) = nonempty(spec, &["dnsPolicy"])
        .filter(|p| !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"].contains(p))
    {
        out.push(Cause::not_supported(
            child(path, "dnsPolicy"),
            format!("DNSPolicy: {policy} is not supported, valid values: [ClusterFirstWithHostNet ClusterFirst Default None ]"),
        ));
    }
}

fn validate_names(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(host) = nonempty(spec, &["hostname"]) {
        let errs = label_errors(host);
        if !errs.is_empty() {
            let f = child(path, "hostname");
            out.push(Cause::invalid(
                &f,
                format!(
                    "{f} does not conform to the kubernetes DNS_LABEL rules : {}",
                    errs.join(", ")
                ),
            ));
        }
    }
    if let Some(sub) = nonempty(spec, &["subdomain"]) {
        let errs = subdomain_errors(sub);
        if !errs.is_empty() {
            let f = child(path, "subdomain");
            out.push(Cause::invalid(
                &f,
                format!(
                    "{f} does not conform to the kubernetes DNS_SUBDOMAIN rules : {}",
                    errs.join(", ")
                ),
            ));
        }
    }
}

fn validate_architecture(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let arch = nonempty(spec, &["architecture"]);
    if let Some(arch) = arch.filter(|a| !["amd64", "arm64", "s390x"].contains(a)) {
        out.push(Cause::invalid(
            child(path, "architecture"),
            format!("unsupported architecture: {arch}"),
        ));
    }
    let Some(machine) = nonempty(spec, &["domain", "machine", "type"]) else {
        return;
    };
    let allowed: &[&str] = match arch.unwrap_or("amd64") {
        "arm64" => &["virt*"],
        "s390x" => &["s390-ccw-virtio*"],
        _ => &["q35*", "pc-q35*"],
    };
    if !allowed.iter().any(|p| {
        p.strip_suffix('*')
            .is_some_and(|pre| machine.starts_with(pre))
    }) {
        let f = child(path, "domain.machine.type");
        out.push(Cause::invalid(
            &f,
            format!(
                "{f} is not supported: {machine} (allowed values: [{}])",
                allowed.join(" ")
            ),
        ));
    }
}

/// A quantity under `spec.domain.resources` (or wherever `keys` leads), reporting malformed text.
fn quantity_at(spec: &Value, keys: &[&str], field: &str, out: &mut Vec<Cause>) -> Option<Quantity> {
    match at(spec, keys).and_then(from_json)? {
        Ok(q) => Some(q),
        Err(e) => {
            let text = at(spec, keys).map(|v| v.to_string()).unwrap_or_default();
            out.push(Cause::invalid(
                field,
                invalid_value(text.trim_matches('"'), &e.to_string()),
            ));
            None
        }
    }
}

fn validate_resources(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let res = child(path, "domain.resources");
    for resource in ["memory", "cpu"] {
        let rf = child(&res, &format!("requests.{resource}"));
        let lf = child(&res, &format!("limits.{resource}"));
        let request = quantity_at(
            spec,
            &["domain", "resources", "requests", resource],
            &rf,
            out,
        );
        let limit = quantity_at(spec, &["domain", "resources", "limits", resource], &lf, out);
        for (q, f) in [(&request, &rf), (&limit, &lf)] {
            if let Some(q) = q.as_ref().filter(|q| q.is_negative()) {
                out.push(Cause::invalid(
                    f,
                    format!("{f} '{q}': must be greater than or equal to 0."),
                ));
            }
        }
        if resource == "memory" {
            if let Some(r) = request
                .as_ref()
                .filter(|r| !r.is_negative() && !r.is_zero() && r.value() < 1_000_000)
            {
                out.push(Cause::invalid(
                    &rf,
                    format!("{rf} '{r}': must be greater than or equal to 1M."),
                ));
            }
        }
        if let (Some(r), Some(l)) = (&request, &limit) {
            if !l.is_zero() && !l.is_negative() && r > l {
                out.push(Cause::invalid(
                    &rf,
                    format!("{rf} '{r}' is greater than {lf} '{l}'"),
                ));
            }
            let dedicated =
                bool_at(spec, &["domain", "cpu", "dedicatedCpuPlacement"]) == Some(true);
            if dedicated && resource == "memory" && !r.is_zero() && !l.is_zero() && r != l {
                out.push(Cause::invalid(&rf, format!("{rf} must be equal to {lf}")));
            }
        }
    }
}

fn validate_hugepages(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(page_text) = str_at(spec, &["domain", "memory", "hugepages", "pageSize"]) else {
        return;
    };
    let pf = child(path, "domain.memory.hugepages.pageSize");
    let page = match Quantity::parse(page_text) {
        Ok(p) => p,
        Err(e) => {
            out.push(Cause::invalid(&pf, format!("{pf} '{page_text}': {e}")));
            return;
        }
    };
    if nonempty(spec, &["architecture"]).is_none_or(|a| a == "amd64")
        && page.value() != 2 << 20
        && page.value() != 1 << 30
    {
        out.push(Cause::not_supported(
            &pf,
            format!("Unsupported value: {page_text:?}: supported values: \"2Mi\", \"1Gi\""),
        ));
        return;
    }
    // Upstream compares against the memory request; a template that only sets the guest size
    // gets its request from it, so the guest size stands in when no request is given.
    let (memory, mf) = if has(spec, &["domain", "resources", "requests", "memory"]) {
        (
            at(spec, &["domain", "resources", "requests", "memory"]),
            child(path, "domain.resources.requests.memory"),
        )
    } else {
        (
            at(spec, &["domain", "memory", "guest"]),
            child(path, "domain.memory.guest"),
        )
    };
    let Some(memory) = memory.and_then(from_json).and_then(Result::ok) else {
        return;
    };
    if memory < page {
        out.push(Cause::invalid(
            &mf,
            format!("{mf} '{memory}' must be equal to or larger than page size {pf} '{page_text}'"),
        ));
    } else if page.value() > 0 && memory.value() % page.value() != 0 {
        out.push(Cause::invalid(
            &mf,
            format!("{mf} '{memory}' is not a multiple of the page size {pf} '{page_text}'"),
        ));
    }
}

fn is_serial(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
}

pub(crate) fn validate_serial(serial: &str, owner: &str, field: &str, out: &mut Vec<Cause>) {
    if serial.chars().count() > MAX_SERIAL {
        out.push(Cause::invalid(
            field,
            format!("{owner} must be less than or equal to {MAX_SERIAL} in length, if specified"),
        ));
    }
    if !is_serial(serial) {
        out.push(Cause::invalid(
            field,
            format!(
                "{owner} must be made up of the following characters [A-Za-z0-9_.+-], if specified"
            ),
        ));
    }
}

fn validate_firmware(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(serial) = nonempty(spec, &["domain", "firmware", "serial"]) {
        let f = child(path, "domain.firmware.serial");
        validate_serial(serial, &f, &f, out);
    }
    if has(spec, &["domain", "firmware", "bootloader", "efi"])
        && has(spec, &["domain", "firmware", "bootloader", "bios"])
    {
        let f = child(path, "domain.firmware.bootloader");
        out.push(Cause::invalid(
            &f,
            format!("{f} has both EFI and BIOS configured, but they are mutually exclusive."),
        ));
    }
    // Secure Boot is on whenever EFI is used and secureBoot is not explicitly false.
    let secure_boot = has(spec, &["domain", "firmware", "bootloader", "efi"])
        && bool_at(
            spec,
            &["domain", "firmware", "bootloader", "efi", "secureBoot"],
        ) != Some(false);
    let smm = has(spec, &["domain", "features", "smm"])
        && bool_at(spec, &["domain", "features", "smm", "enabled"]) != Some(false);
    if secure_boot && !smm {
        let f = child(path, "domain");
        out.push(Cause::invalid(
            &f,
            format!("{f} has EFI SecureBoot enabled. SecureBoot requires SMM, which is currently disabled."),
        ));
    }
}

fn validate_cpu(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let cpu = child(path, "domain.cpu");
    for (i, feature) in array(spec, &["domain", "cpu", "features"])
        .iter()
        .enumerate()
    {
        let policy = str_at(feature, &["policy"]).unwrap_or("");
        if !CPU_FEATURE_POLICIES.contains(&policy) {
            let name = str_at(feature, &["name"]).unwrap_or("");
            out.push(Cause::not_supported(
                child(&index(&child(&cpu, "features"), i), "policy"),
                format!("CPU feature {name} uses policy {policy} that is not supported."),
            ));
        }
    }
    let dedicated = bool_at(spec, &["domain", "cpu", "dedicatedCpuPlacement"]) == Some(true);
    if bool_at(spec, &["domain", "cpu", "isolateEmulatorThread"]) == Some(true) && !dedicated {
        out.push(Cause::invalid(
            child(&cpu, "isolateEmulatorThread"),
            "IsolateEmulatorThread should be only set in combination with DedicatedCPUPlacement",
        ));
    }
    let sockets = int_at(spec, &["domain", "cpu", "sockets"]).unwrap_or(0);
    let max = int_at(spec, &["domain", "cpu", "maxSockets"]).unwrap_or(0);
    if max != 0 && sockets > max {
        out.push(Cause::invalid(
            child(&cpu, "sockets"),
            "Number of sockets in CPU topology is greater than the maximum sockets allowed",
        ));
    }
}

fn validate_start_strategy(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(strategy) = str_at(spec, &["startStrategy"]) else {
        return;
    };
    let f = child(path, "startStrategy");
    if strategy != "Paused" {
        out.push(Cause::invalid(
            &f,
            format!("{f} is set with an unrecognized option: {strategy}"),
        ));
    } else if has(spec, &["livenessProbe"]) {
        out.push(Cause::invalid(
            &f,
            format!(
                "either {f} or {} should be provided.Pausing VMI with LivenessProbe is not supported",
                child(path, "livenessProbe")
            ),
        ));
    }
}

fn validate_boot_order(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut used: Vec<i64> = Vec::new();
    for list in ["disks", "interfaces"] {
        let lp = child(path, &format!("domain.devices.{list}"));
        for (i, dev) in array(spec, &["domain", "devices", list]).iter().enumerate() {
            let Some(order) = at(dev, &["bootOrder"]).and_then(Value::as_i64) else {
                continue;
            };
            let f = index(&lp, i);
            let of = child(&f, "bootOrder");
            if order < 1 {
                out.push(Cause::invalid(
                    &of,
                    format!("{f} must have a boot order > 0, if supplied"),
                ));
            } else if used.contains(&order) {
                out.push(Cause::invalid(
                    &of,
                    format!("Boot order for {of} already set for a different device."),
                ));
            } else {
                used.push(order);
            }
        }
    }
}

fn validate_inputs(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let ip = child(path, "domain.devices.inputs");
    for (i, input) in array(spec, &["domain", "devices", "inputs"])
        .iter()
        .enumerate()
    {
        if !["virtio", "usb", ""].contains(&str_at(input, &["bus"]).unwrap_or("")) {
            out.push(Cause::invalid(
                child(&index(&ip, i), "bus"),
                "Input device can have only virtio or usb bus.",
            ));
        }
        // An empty type is defaulted to `tablet` on the VMI.
        if !["tablet", ""].contains(&str_at(input, &["type"]).unwrap_or("")) {
            out.push(Cause::invalid(
                child(&index(&ip, i), "type"),
                "Input device can have only tablet type.",
            ));
        }
    }
}

#[cfg(test)]
mod tests;

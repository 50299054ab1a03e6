//! Fields that are stored (the schemas are complete) but that oxivirt does not act on
//! and will not on these hosts: using one draws a `Warning` naming the field.

use serde_json::Value;

use crate::context::RequestCtx;
use crate::registry::ResourceInfo;

/// (path under a VMI spec, why it is not supported). A `[]` segment means "any element".
const VMI_SPEC_FIELDS: &[(&str, &str)] = &[
    (
        "domain.devices.gpus",
        "GPU passthrough needs host GPUs and VFIO",
    ),
    (
        "domain.devices.hostDevices",
        "host device passthrough needs VFIO",
    ),
    (
        "domain.devices.interfaces[].sriov",
        "SR-IOV needs SR-IOV capable NICs",
    ),
    (
        "domain.devices.clientPassthrough",
        "USB redirection from a client is not implemented",
    ),
    (
        "domain.launchSecurity",
        "confidential computing (SEV) needs AMD SEV hosts",
    ),
    (
        "domain.cpu.realtime",
        "realtime vCPUs need a realtime-tuned host",
    ),
];

/// Where the VMI spec sits inside objects of each KubeVirt kind.
fn spec_prefix(info: &ResourceInfo) -> Option<&'static str> {
    match (info.group.as_str(), info.kind.as_str()) {
        ("kubevirt.io", "VirtualMachineInstance") => Some("spec"),
        ("kubevirt.io", "VirtualMachine" | "VirtualMachineInstanceReplicaSet") => {
            Some("spec.template.spec")
        }
        ("pool.kubevirt.io", "VirtualMachinePool") => {
            Some("spec.virtualMachineTemplate.spec.template.spec")
        }
        _ => None,
    }
}

/// Every concrete path in `obj` matching `path` (with `[]` expanding over arrays).
fn present(obj: &Value, path: &str, prefix: String, out: &mut Vec<String>) {
    let Some((head, rest)) = path.split_once('.').map_or(Some((path, "")), Some) else {
        return;
    };
    let (field, each) = match head.strip_suffix("[]") {
        Some(f) => (f, true),
        None => (head, false),
    };
    let Some(value) = obj.get(field).filter(|v| !v.is_null()) else {
        return;
    };
    let here = if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    };
    match (each, rest.is_empty()) {
        (false, true) => out.push(here),
        (false, false) => present(value, rest, here, out),
        (true, _) => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                if rest.is_empty() {
                    out.push(format!("{here}[{i}]"));
                } else {
                    present(item, rest, format!("{here}[{i}]"), out);
                }
            }
        }
    }
}

/// Adds a warning for each unsupported field the object uses.
pub fn warn(info: &ResourceInfo, obj: &Value, ctx: &RequestCtx) {
    let Some(prefix) = spec_prefix(info) else {
        return;
    };
    let spec = prefix.split('.').try_fold(obj, |v, f| v.get(f));
    let Some(spec) = spec else { return };
    for (path, why) in VMI_SPEC_FIELDS {
        let mut found = Vec::new();
        present(spec, path, prefix.to_string(), &mut found);
        for field in found {
            ctx.warn(format!(
                "{field} is stored but not supported by oxivirt: {why}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn array_paths_name_the_element_that_uses_the_field() {
        let spec = json!({"domain": {"devices": {"interfaces": [{"name": "a"}, {"name": "b", "sriov": {}}]}}});
        let mut found = Vec::new();
        present(
            &spec,
            "domain.devices.interfaces[].sriov",
            "spec".into(),
            &mut found,
        );
        assert_eq!(found, ["spec.domain.devices.interfaces[1].sriov"]);
        let mut none = Vec::new();
        present(&spec, "domain.devices.gpus", "spec".into(), &mut none);
        assert!(none.is_empty());
    }
}

//! The guest agent's answers in upstream's shapes: QEMU's `guest-get-osinfo` (kebab-case keys)
//! becomes `VirtualMachineInstanceGuestOSInfo` (camelCase), as virt-handler reports it in
//! `status.guestOSInfo` and in the `guestosinfo` subresource.

use serde_json::{json, Map, Value};

/// `guest-get-osinfo` → `VirtualMachineInstanceGuestOSInfo`; keys the guest did not report
/// are left out.
pub(crate) fn os_info(qga: &Value) -> Value {
    let mut out = Map::new();
    for (from, to) in [
        ("id", "id"),
        ("name", "name"),
        ("pretty-name", "prettyName"),
        ("version", "version"),
        ("version-id", "versionId"),
        ("kernel-release", "kernelRelease"),
        ("kernel-version", "kernelVersion"),
        ("machine", "machine"),
    ] {
        if let Some(value) = qga.get(from).filter(|v| v.is_string()) {
            out.insert(to.into(), value.clone());
        }
    }
    Value::Object(out)
}

/// The `guestosinfo` subresource body (`VirtualMachineInstanceGuestAgentInfo`) from what the
/// launcher knows.
pub(crate) fn agent_info(qga_os: &Value) -> Value {
    json!({"os": os_info(qga_os)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_keys_become_upstream_keys() {
        let qga = json!({"id": "debian", "kernel-release": "6.1.0", "pretty-name": "Debian 12",
            "version-id": "12", "machine": "x86_64", "variant": null});
        assert_eq!(
            os_info(&qga),
            json!({"id": "debian", "kernelRelease": "6.1.0", "prettyName": "Debian 12",
                "versionId": "12", "machine": "x86_64"})
        );
        assert_eq!(agent_info(&qga)["os"]["id"], "debian");
    }
}

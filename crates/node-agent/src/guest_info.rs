//! The guest agent's answers in upstream's shapes: QEMU's `guest-get-osinfo` (kebab-case keys)
//! becomes `VirtualMachineInstanceGuestOSInfo` (camelCase), as virt-handler reports it in
//! `status.guestOSInfo` and in the `guestosinfo` subresource; `guest-get-users` and
//! `guest-get-fsinfo` become the `userlist` and `filesystemlist` subresource bodies.

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

/// `guest-get-users` → `VirtualMachineInstanceGuestOSUserList`.
pub(crate) fn user_list(qga_users: &Value) -> Value {
    let items: Vec<Value> = qga_users
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let mut user = json!({"userName": u["user"].as_str().unwrap_or_default()});
            if let Some(domain) = u["domain"].as_str() {
                user["domain"] = json!(domain);
            }
            if let Some(time) = u["login-time"].as_f64() {
                user["loginTime"] = json!(time);
            }
            user
        })
        .collect();
    json!({"metadata": {}, "items": items})
}

/// One `guest-get-fsinfo` entry → `VirtualMachineInstanceFileSystem`.
fn filesystem(fs: &Value) -> Value {
    let disks: Vec<Value> = fs["disk"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let mut disk = json!({"busType": d["bus-type"].as_str().unwrap_or_default()});
            if let Some(serial) = d["serial"].as_str() {
                disk["serial"] = json!(serial);
            }
            disk
        })
        .collect();
    let mut out = json!({
        "diskName": fs["name"].as_str().unwrap_or_default(),
        "mountPoint": fs["mountpoint"].as_str().unwrap_or_default(),
        "fileSystemType": fs["type"].as_str().unwrap_or_default(),
        "usedBytes": fs["used-bytes"].as_u64().unwrap_or(0),
        "totalBytes": fs["total-bytes"].as_u64().unwrap_or(0),
    });
    if !disks.is_empty() {
        out["disk"] = json!(disks);
    }
    out
}

/// `guest-get-fsinfo` → `VirtualMachineInstanceFileSystemList`.
pub(crate) fn filesystem_list(qga_filesystems: &Value) -> Value {
    let items: Vec<Value> = qga_filesystems
        .as_array()
        .into_iter()
        .flatten()
        .map(filesystem)
        .collect();
    json!({"metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_users_become_a_guest_os_user_list() {
        let qga = json!([{"user": "root", "login-time": 1764250000.25}, {"user": "bob", "domain": "CORP", "login-time": 1.0}]);
        assert_eq!(
            user_list(&qga),
            json!({"metadata": {}, "items": [
                {"userName": "root", "loginTime": 1764250000.25},
                {"userName": "bob", "domain": "CORP", "loginTime": 1.0}]})
        );
        assert_eq!(user_list(&json!([])), json!({"metadata": {}, "items": []}));
    }

    #[test]
    fn agent_filesystems_become_a_filesystem_list() {
        let qga = json!([{"name": "vda3", "mountpoint": "/data", "type": "ext4", "used-bytes": 14336,
            "total-bytes": 60000000, "disk": [{"bus-type": "virtio", "serial": "root", "bus": 0,
            "target": 0, "unit": 0, "pci-controller": {}}]},
            {"name": "rootfs", "mountpoint": "/", "type": "rootfs", "disk": []}]);
        assert_eq!(
            filesystem_list(&qga)["items"],
            json!([{"diskName": "vda3", "mountPoint": "/data", "fileSystemType": "ext4",
                "usedBytes": 14336, "totalBytes": 60000000,
                "disk": [{"busType": "virtio", "serial": "root"}]},
                {"diskName": "rootfs", "mountPoint": "/", "fileSystemType": "rootfs",
                "usedBytes": 0, "totalBytes": 0}])
        );
    }

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

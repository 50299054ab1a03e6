//! The PersistentVolumeClaims a VirtualMachineInstance uses, read from its spec the same way
//! by every component that needs them (the scheduler placing its launcher Pod, the binder
//! finding a claim's first consumer, the node agent preparing its disks).

use serde_json::Value;

/// Upstream's name prefix of a VM's state claim: `persistent-state-for-<vm>`.
pub const STATE_CLAIM_PREFIX: &str = "persistent-state-for-";
/// Upstream's label on a VM's state claim, valued with the VM's name.
pub const STATE_CLAIM_LABEL: &str = "persistent-state-for";

/// Claim names in a list of Pod or VMI volumes: `persistentVolumeClaim.claimName` and
/// `dataVolume.name` (a DataVolume's claim has its name), in order.
pub fn claim_names(volumes: &Value) -> Vec<String> {
    volumes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .or_else(|| v.pointer("/dataVolume/name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// The state claim `vmi` needs: `persistent-state-for-<vm>` when it belongs to a
/// VirtualMachine (a VMI's name is its VM's) and asks for `devices.tpm.persistent` or
/// `firmware.bootloader.efi.persistent`. A VMI of its own keeps that state for its run only.
pub fn state_claim(vmi: &Value) -> Option<String> {
    let domain = &vmi["spec"]["domain"];
    let tpm = domain["devices"]["tpm"].is_object()
        && domain["devices"]["tpm"]["enabled"] != false
        && domain["devices"]["tpm"]["persistent"] == true;
    let efi = domain["firmware"]["bootloader"]["efi"]["persistent"] == true;
    let of_vm = vmi["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["kind"] == "VirtualMachine" && r["controller"] == true);
    let name = vmi["metadata"]["name"].as_str()?;
    ((tpm || efi) && of_vm).then(|| format!("{STATE_CLAIM_PREFIX}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_come_from_pvc_and_data_volume_volumes() {
        let volumes = json!([
            {"name": "a", "persistentVolumeClaim": {"claimName": "pvc-a"}},
            {"name": "b", "dataVolume": {"name": "dv-b"}},
            {"name": "c", "containerDisk": {"image": "x"}},
        ]);
        assert_eq!(claim_names(&volumes), vec!["pvc-a", "dv-b"]);
    }

    #[test]
    fn only_a_vms_persistent_tpm_or_efi_has_a_state_claim() {
        let owned = json!([{"kind": "VirtualMachine", "controller": true}]);
        let tpm = json!({"metadata": {"name": "v", "ownerReferences": owned},
            "spec": {"domain": {"devices": {"tpm": {"persistent": true}}}}});
        assert_eq!(state_claim(&tpm).as_deref(), Some("persistent-state-for-v"));
        let efi = json!({"metadata": {"name": "v", "ownerReferences": owned},
            "spec": {"domain": {"firmware": {"bootloader": {"efi": {"persistent": true}}}}}});
        assert!(state_claim(&efi).is_some());
        let standalone = json!({"metadata": {"name": "v"},
            "spec": {"domain": {"devices": {"tpm": {"persistent": true}}}}});
        assert!(state_claim(&standalone).is_none());
        let disabled = json!({"metadata": {"name": "v", "ownerReferences": owned},
            "spec": {"domain": {"devices": {"tpm": {"persistent": true, "enabled": false}}}}});
        assert!(state_claim(&disabled).is_none());
    }
}

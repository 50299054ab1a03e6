//! SR-IOV Network Operator objects (`sriovnetwork.openshift.io/v1`), accepted and validated only
//! (this host has no SR-IOV hardware).
//!
//! Ranges and allowed values come from the manual (5.3.4 and 8.6: priority 0–99, vendor `8086`
//! or `15b3`, Mellanox ≤ 128 VFs, `rootDevices` needs `vendor`, `deviceID` or `pfNames`; vlan
//! 0–4095, `spoofChk`/`trust` quoted `"on"`/`"off"`). The manual quotes no messages; range and
//! enum errors use the operator CRD's schema wording, the vendor error the operator webhook's.

use serde_json::Value;

use crate::json::{array, at, has, nonempty};
use crate::review::{Cause, Outcome};

const VENDORS: [&str; 2] = ["8086", "15b3"];
const MELLANOX_MAX_VFS: i64 = 128;

/// `Invalid value: N: spec.x in body should be ...` for a number outside `[min, max]`.
fn check_range(obj: &Value, key: &str, min: i64, max: Option<i64>, out: &mut Outcome) {
    let Some(v) = at(obj, &["spec", key]) else {
        return;
    };
    let field = format!("spec.{key}");
    let Some(n) = v.as_i64() else {
        out.causes.push(Cause::invalid(
            &field,
            format!("Invalid value: {v}: {field} in body must be of type integer"),
        ));
        return;
    };
    if n < min {
        out.causes.push(Cause::invalid(
            &field,
            format!("Invalid value: {n}: {field} in body should be greater than or equal to {min}"),
        ));
    }
    if let Some(max) = max.filter(|m| n > *m) {
        out.causes.push(Cause::invalid(
            &field,
            format!("Invalid value: {n}: {field} in body should be less than or equal to {max}"),
        ));
    }
}

/// A string enum, rejecting unquoted YAML booleans the way the CRD schema does.
fn check_enum(obj: &Value, key: &str, allowed: &[&str], out: &mut Outcome) {
    let Some(v) = at(obj, &["spec", key]) else {
        return;
    };
    let field = format!("spec.{key}");
    match v.as_str() {
        Some(s) if allowed.contains(&s) => {}
        Some(s) => out.causes.push(Cause::not_supported(
            &field,
            format!(
                "Unsupported value: {s:?}: supported values: \"{}\"",
                allowed.join("\", \"")
            ),
        )),
        None => {
            let kind = if v.is_boolean() { "boolean" } else { "number" };
            out.causes.push(Cause::invalid(
                &field,
                format!(
                    "Invalid value: {kind:?}: {field} in body must be of type string: {kind:?}"
                ),
            ));
        }
    }
}

/// SriovNetworkNodePolicy.
pub(crate) fn admit_policy(obj: &Value, out: &mut Outcome) {
    check_range(obj, "priority", 0, Some(99), out);
    check_range(obj, "numVfs", 0, None, out);
    check_range(obj, "mtu", 1, None, out);
    check_enum(obj, "deviceType", &["netdevice", "vfio-pci"], out);
    let vendor = nonempty(obj, &["spec", "nicSelector", "vendor"]);
    if let Some(v) = vendor.filter(|v| !VENDORS.contains(v)) {
        out.causes.push(Cause::invalid(
            "spec.nicSelector.vendor",
            format!("vendor {v} is not supported"),
        ));
    }
    if vendor == Some("15b3") {
        if let Some(n) = at(obj, &["spec", "numVfs"])
            .and_then(Value::as_i64)
            .filter(|n| *n > MELLANOX_MAX_VFS)
        {
            out.causes.push(Cause::invalid(
                "spec.numVfs",
                format!("Invalid value: {n}: Mellanox (15b3) devices support at most {MELLANOX_MAX_VFS} VFs"),
            ));
        }
    }
    let selector_has = |k: &str| {
        let v = at(obj, &["spec", "nicSelector", k]);
        v.is_some_and(|v| {
            v.as_str().is_some_and(|s| !s.is_empty()) || v.as_array().is_some_and(|a| !a.is_empty())
        })
    };
    if !array(obj, &["spec", "nicSelector", "rootDevices"]).is_empty()
        && !selector_has("vendor")
        && !selector_has("deviceID")
        && !selector_has("pfNames")
    {
        out.causes.push(Cause::required(
            "spec.nicSelector",
            "If rootDevices is specified, vendor, deviceID or pfNames must also be specified",
        ));
    }
}

/// SriovNetwork.
pub(crate) fn admit_network(obj: &Value, out: &mut Outcome) {
    check_range(obj, "vlan", 0, Some(4095), out);
    check_range(obj, "vlanQoS", 0, Some(7), out);
    check_range(obj, "minTxRate", 0, None, out);
    check_range(obj, "maxTxRate", 0, None, out);
    check_enum(obj, "spoofChk", &["on", "off"], out);
    check_enum(obj, "trust", &["on", "off"], out);
    check_enum(obj, "linkState", &["auto", "enable", "disable"], out);
    if !has(obj, &["spec", "resourceName"]) {
        out.causes
            .push(Cause::required("spec.resourceName", "Required value"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{messages, run, FakeCluster};
    use serde_json::json;

    const GROUP: &str = "sriovnetwork.openshift.io";

    fn policy(spec: Value) -> Outcome {
        let mut obj = json!({"metadata": {"name": "p", "namespace": "openshift-sriov-network-operator"}, "spec": spec});
        run(
            &FakeCluster::default(),
            GROUP,
            "SriovNetworkNodePolicy",
            None,
            "admin",
            &mut obj,
        )
    }

    fn network(spec: Value) -> Outcome {
        let mut obj = json!({"metadata": {"name": "n", "namespace": "openshift-sriov-network-operator"}, "spec": spec});
        run(
            &FakeCluster::default(),
            GROUP,
            "SriovNetwork",
            None,
            "admin",
            &mut obj,
        )
    }

    #[test]
    fn manual_policy_example_is_accepted() {
        let out = policy(
            json!({"resourceName": "intelnics", "priority": 99, "numVfs": 8, "deviceType": "vfio-pci",
                                "nicSelector": {"vendor": "8086", "deviceID": "158b", "rootDevices": ["0000:02:00.1"]}}),
        );
        assert!(out.allowed(), "{out:?}");
    }

    #[test]
    fn policy_priority_must_be_0_to_99() {
        assert_eq!(
            messages(&policy(json!({"priority": 150}))),
            vec!["Invalid value: 150: spec.priority in body should be less than or equal to 99"]
        );
        assert_eq!(
            messages(&policy(json!({"priority": -1}))),
            vec!["Invalid value: -1: spec.priority in body should be greater than or equal to 0"]
        );
    }

    #[test]
    fn policy_vendor_must_be_intel_or_mellanox() {
        let out = policy(json!({"nicSelector": {"vendor": "1234"}}));
        assert_eq!(
            out.causes,
            vec![Cause::invalid(
                "spec.nicSelector.vendor",
                "vendor 1234 is not supported"
            )]
        );
        assert_eq!(
            messages(&policy(
                json!({"numVfs": 200, "nicSelector": {"vendor": "15b3"}})
            )),
            vec!["Invalid value: 200: Mellanox (15b3) devices support at most 128 VFs"]
        );
    }

    #[test]
    fn policy_device_type_is_netdevice_or_vfio_pci() {
        assert_eq!(
            messages(&policy(json!({"deviceType": "vdpa"}))),
            vec!["Unsupported value: \"vdpa\": supported values: \"netdevice\", \"vfio-pci\""]
        );
    }

    #[test]
    fn policy_root_devices_need_another_selector() {
        let out = policy(json!({"nicSelector": {"rootDevices": ["0000:02:00.1"]}}));
        assert_eq!(
            messages(&out),
            vec!["If rootDevices is specified, vendor, deviceID or pfNames must also be specified"]
        );
    }

    #[test]
    fn network_vlan_must_be_0_to_4095() {
        assert!(network(json!({"resourceName": "r", "vlan": 4095})).allowed());
        assert_eq!(
            messages(&network(json!({"resourceName": "r", "vlan": 4096}))),
            vec!["Invalid value: 4096: spec.vlan in body should be less than or equal to 4095"]
        );
    }

    #[test]
    fn network_spoof_check_must_be_a_quoted_on_or_off() {
        assert_eq!(
            messages(&network(json!({"resourceName": "r", "spoofChk": true}))),
            vec!["Invalid value: \"boolean\": spec.spoofChk in body must be of type string: \"boolean\""]
        );
        assert_eq!(
            messages(&network(json!({"resourceName": "r", "trust": "yes"}))),
            vec!["Unsupported value: \"yes\": supported values: \"on\", \"off\""]
        );
    }
}

//! Service IP families (Kubernetes built-in, as kube-apiserver's Service registry checks
//! them; manual §8.3.2). oxivirt's Service range (`OXIVIRT_SERVICE_CIDR`) is IPv4 only, so the
//! cluster is single-stack for Services: `RequireDualStack` "fails on clusters without
//! dual-stack", an `IPv6` family is not configured, and `PreferDualStack` quietly gets one
//! IPv4 ClusterIP (the Service controller writes `ipFamilies: [IPv4]`).

use crate::json::{array, index, str_at};
use crate::review::{Cause, Outcome};

/// The families this cluster's Service range offers.
const CONFIGURED_FAMILIES: [&str; 1] = ["IPv4"];

pub(crate) fn admit(obj: &serde_json::Value, out: &mut Outcome) {
    if str_at(obj, &["spec", "ipFamilyPolicy"]) == Some("RequireDualStack") {
        out.causes.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in array(obj, &["spec", "ipFamilies"]).iter().enumerate() {
        let Some(family) = family.as_str() else {
            continue;
        };
        if !CONFIGURED_FAMILIES.contains(&family) {
            out.causes.push(Cause::invalid(
                index("spec.ipFamilies", i),
                format!("Invalid value: {family:?}: not configured on this cluster"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: serde_json::Value) -> Vec<(String, String)> {
        let mut out = Outcome::default();
        admit(&json!({"spec": spec}), &mut out);
        out.causes
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn a_single_stack_cluster_refuses_required_dual_stack_and_ipv6() {
        assert_eq!(
            causes(json!({"ipFamilyPolicy": "RequireDualStack"})),
            [(
                "spec.ipFamilyPolicy".to_string(),
                "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".to_string()
            )]
        );
        assert_eq!(
            causes(json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]})),
            [(
                "spec.ipFamilies[1]".to_string(),
                "Invalid value: \"IPv6\": not configured on this cluster".to_string()
            )]
        );
        assert!(causes(json!({"ipFamilyPolicy": "PreferDualStack"})).is_empty());
        assert!(
            causes(json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})).is_empty()
        );
    }
}

//! The cluster-wide KubeVirt configuration that VMI defaults depend on.
//!
//! Upstream reads it from the KubeVirt CR (`spec.configuration`); in OpenShift Virtualization
//! HCO owns that CR as `kubevirt-kubevirt-hyperconverged` in `openshift-cnv` (manual §4, the
//! `oc get kv kubevirt-kubevirt-hyperconverged -n openshift-cnv` step). Without the CR the
//! product defaults apply: masquerade pod binding (what HCO configures), `host-model` CPU,
//! LiveUpdate rollout with a hotplug ratio of 4 (UPSTREAM-FACTS §5).

use serde_json::Value;

use crate::json::{int_at, nonempty, str_at};
use crate::Cluster;

/// Namespace of the KubeVirt CR that HCO manages.
pub(crate) const KUBEVIRT_CR_NAMESPACE: &str = "openshift-cnv";
/// Name of the KubeVirt CR that HCO manages.
pub(crate) const KUBEVIRT_CR_NAME: &str = "kubevirt-kubevirt-hyperconverged";

/// The settings read from the KubeVirt CR, with upstream's defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// The cluster's default architecture (upstream: virt-operator's `runtime.GOARCH`).
    pub architecture: String,
    config: Value,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            architecture: host_architecture().to_string(),
            config: Value::Null,
        }
    }
}

/// This build's architecture in Go's naming.
pub(crate) fn host_architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else {
        "amd64"
    }
}

impl ClusterConfig {
    /// Reads the KubeVirt CR through `cluster`; absent CR means all defaults.
    pub(crate) async fn load(cluster: &dyn Cluster) -> Self {
        let kv = cluster
            .get(
                "kubevirt.io",
                "kubevirts",
                KUBEVIRT_CR_NAMESPACE,
                KUBEVIRT_CR_NAME,
            )
            .await;
        let config = kv
            .and_then(|kv| kv.pointer("/spec/configuration").cloned())
            .unwrap_or(Value::Null);
        Self::from_configuration(config)
    }

    /// Builds the configuration from a KubeVirt CR's `spec.configuration`.
    pub(crate) fn from_configuration(config: Value) -> Self {
        ClusterConfig {
            config,
            ..Default::default()
        }
    }

    /// Default machine type for `arch` (`q35` on amd64, `virt` on arm64, `s390-ccw-virtio` on s390x).
    pub(crate) fn machine_type(&self, arch: &str) -> String {
        if let Some(t) = nonempty(
            &self.config,
            &["architectureConfiguration", arch, "machineType"],
        ) {
            return t.to_string();
        }
        if let Some(t) = nonempty(&self.config, &["machineType"]) {
            return t.to_string();
        }
        match arch {
            "arm64" => "virt",
            "s390x" => "s390-ccw-virtio",
            _ => "q35",
        }
        .to_string()
    }

    /// The cluster CPU model, if one is configured (else VMIs get `host-model`).
    pub(crate) fn cpu_model(&self) -> Option<&str> {
        nonempty(&self.config, &["cpuModel"])
    }

    /// The binding for the default pod interface.
    pub(crate) fn default_network_interface(&self) -> &str {
        nonempty(&self.config, &["network", "defaultNetworkInterface"]).unwrap_or("masquerade")
    }

    /// The cluster eviction strategy, if configured.
    pub(crate) fn eviction_strategy(&self) -> Option<&str> {
        nonempty(&self.config, &["evictionStrategy"])
    }

    /// Whether the VM rollout strategy is `LiveUpdate` (the default), enabling hotplug limits.
    pub(crate) fn live_update(&self) -> bool {
        str_at(&self.config, &["vmRolloutStrategy"])
            .is_none_or(|s| s.is_empty() || s == "LiveUpdate")
    }

    /// `liveUpdateConfiguration.maxCpuSockets`, if set.
    pub(crate) fn max_cpu_sockets(&self) -> Option<u32> {
        int_at(&self.config, &["liveUpdateConfiguration", "maxCpuSockets"])
            .and_then(|v| u32::try_from(v).ok())
    }

    /// `liveUpdateConfiguration.maxGuest`, if set.
    pub(crate) fn max_guest(&self) -> Option<&str> {
        nonempty(&self.config, &["liveUpdateConfiguration", "maxGuest"])
    }

    /// `liveUpdateConfiguration.maxHotplugRatio`, default 4.
    pub(crate) fn max_hotplug_ratio(&self) -> u32 {
        int_at(
            &self.config,
            &["liveUpdateConfiguration", "maxHotplugRatio"],
        )
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn product_defaults_apply_without_a_kubevirt_cr() {
        let cfg = ClusterConfig::default();
        assert_eq!(cfg.machine_type("amd64"), "q35");
        assert_eq!(cfg.machine_type("arm64"), "virt");
        assert_eq!(cfg.default_network_interface(), "masquerade");
        assert_eq!(cfg.cpu_model(), None);
        assert!(cfg.live_update());
        assert_eq!(cfg.max_hotplug_ratio(), 4);
    }

    #[test]
    fn kubevirt_cr_settings_override_the_defaults() {
        let cfg = ClusterConfig::from_configuration(json!({
            "cpuModel": "Haswell",
            "architectureConfiguration": {"amd64": {"machineType": "pc-q35-rhel9.4.0"}},
            "network": {"defaultNetworkInterface": "bridge"},
            "vmRolloutStrategy": "Stage",
        }));
        assert_eq!(cfg.machine_type("amd64"), "pc-q35-rhel9.4.0");
        assert_eq!(cfg.cpu_model(), Some("Haswell"));
        assert_eq!(cfg.default_network_interface(), "bridge");
        assert!(!cfg.live_update());
    }
}

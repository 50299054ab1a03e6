//! Label, annotation, finalizer and condition strings the agent reads or writes.
//!
//! They belong in `oxivirt_api::well_known`; they live here until that crate gains them, and
//! nowhere else in this crate.

/// Pod label marking a virt-launcher Pod (value [`VIRT_LAUNCHER`]).
pub(crate) const APP_LABEL: &str = "kubevirt.io";
/// Value of [`APP_LABEL`] on launcher Pods.
pub(crate) const VIRT_LAUNCHER: &str = "virt-launcher";
/// Pod annotation naming the VMI the Pod runs.
pub(crate) const DOMAIN_ANNOTATION: &str = "kubevirt.io/domain";
/// Finalizer the agent holds on a launcher Pod while a launcher may run for it.
pub(crate) const LAUNCHER_FINALIZER: &str = "kubevirt.io/virt-launcher";
/// Node label: the Node accepts VMs.
pub(crate) const SCHEDULABLE_LABEL: &str = "kubevirt.io/schedulable";
/// Node label: the hypervisor acceleration offered (`kvm` or `tcg`).
pub(crate) const ACCEL_LABEL: &str = "oxivirt.io/accel";
/// Node annotation: why the node offers that acceleration.
pub(crate) const ACCEL_REASON_ANNOTATION: &str = "oxivirt.io/accel-reason";
/// Node label prefixes the agent owns (stale labels under them are removed).
pub(crate) const CPU_MODEL_PREFIX: &str = "cpu-model.node.kubevirt.io/";
pub(crate) const CPU_FEATURE_PREFIX: &str = "cpu-feature.node.kubevirt.io/";
pub(crate) const HOST_MODEL_PREFIX: &str = "host-model-cpu.node.kubevirt.io/";
pub(crate) const CPU_VENDOR_PREFIX: &str = "cpu-vendor.node.kubevirt.io/";
/// The name of the launcher Pod's main container.
pub(crate) const COMPUTE_CONTAINER: &str = "compute";
/// VMI condition: the guest runs under TCG (upstream's name).
pub(crate) const SOFTWARE_EMULATION: &str = "SoftwareEmulation";
/// Kubernetes extended resources for the devices a VM needs.
pub(crate) const DEVICE_RESOURCES: [&str; 3] = [
    "devices.kubevirt.io/kvm",
    "devices.kubevirt.io/tun",
    "devices.kubevirt.io/vhost-net",
];

//! Label, annotation, finalizer and reason strings the runtime controllers read or write.
//!
//! # Caveats
//! House style wants these in `oxivirt_api::well_known`; they live here until that crate
//! takes them (the controllers crate may not edit it). Values are upstream KubeVirt's.

/// Label on launcher Pods (`virt-launcher`) and the value it carries.
pub const APP_LABEL: &str = "kubevirt.io";
/// Value of [`APP_LABEL`] on launcher Pods.
pub const VIRT_LAUNCHER: &str = "virt-launcher";
/// Label naming the uid of the VMI that created a launcher Pod or the VM that created a
/// DataVolume.
pub const CREATED_BY_LABEL: &str = "kubevirt.io/created-by";
/// Label naming the VMI a launcher Pod runs.
pub const VM_NAME_LABEL: &str = "vm.kubevirt.io/name";
/// Node label that marks a node able to run VMs; launcher Pods select it.
pub const SCHEDULABLE_LABEL: &str = "kubevirt.io/schedulable";

/// Annotation on launcher Pods naming the libvirt domain (the VMI name).
pub const DOMAIN_ANNOTATION: &str = "kubevirt.io/domain";
/// Annotation telling `kubectl logs` which container to read by default.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Annotation on a VMI: the VM generation it was created from (or last matched).
pub const VM_GENERATION_ANNOTATION: &str = "kubevirt.io/vm-generation";

/// Finalizer the VMI admission defaults add; the VMI controller removes it once the
/// launcher Pod is gone.
pub const VMI_FINALIZER: &str = "kubevirt.io/foregroundDeleteVirtualMachine";
/// Finalizer the VM controller keeps on a VM so its VMI is stopped before the VM goes.
pub const VM_FINALIZER: &str = "kubevirt.io/virtualMachineControllerFinalize";
/// Finalizer asking the garbage collector to orphan dependents.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The scheduler's name; Pods naming another scheduler are left alone.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Launcher container names.
pub const COMPUTE_CONTAINER: &str = "compute";
/// Container that serves the serial console log.
pub const CONSOLE_LOG_CONTAINER: &str = "guest-console-log";

/// Event reasons (upstream `pkg/controller/controller.go` and kube-scheduler).
pub mod reason {
    /// A VMI, Pod or DataVolume was created.
    pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
    /// Creating a VMI, Pod or DataVolume failed.
    pub const FAILED_CREATE: &str = "FailedCreate";
    /// A VMI or Pod was deleted.
    pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
    /// Deleting a VMI or Pod failed.
    pub const FAILED_DELETE: &str = "FailedDelete";
    /// The launcher Pod was bound: the node agent takes the VMI over.
    pub const SUCCESSFUL_HAND_OVER: &str = "SuccessfulHandOver";
    /// A DataVolume of the VM's templates was created.
    pub const SUCCESSFUL_DATA_VOLUME_CREATE: &str = "SuccessfulDataVolumeCreate";
    /// Creating a DataVolume of the VM's templates failed.
    pub const FAILED_DATA_VOLUME_CREATE: &str = "FailedDataVolumeCreate";
    /// A DataVolume the VM uses failed to import.
    pub const FAILED_DATA_VOLUME_IMPORT: &str = "FailedDataVolumeImport";
    /// The VMI failed because its launcher Pod failed or vanished.
    pub const FAILED: &str = "Failed";
    /// The scheduler bound a Pod.
    pub const SCHEDULED: &str = "Scheduled";
    /// No node fits a Pod.
    pub const FAILED_SCHEDULING: &str = "FailedScheduling";
    /// Pod condition reason when no node fits.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
}

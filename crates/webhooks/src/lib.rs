//! Upstream's mutating and validating admission webhooks, as rules over Kubernetes JSON.
//!
//! **Owns:** the defaults that KubeVirt's, CDI's and HCO's mutating webhooks write into objects
//! (VirtualMachineInstance, VirtualMachine, DataVolume, HyperConverged) and the rejections their
//! validating webhooks give (plus the few Kubernetes built-in update rules the manual leans on,
//! such as immutable StorageClass parameters and the SR-IOV operator's ranges). Every rule is
//! listed, with its source and test, in `RULES.md`.
//!
//! **Must not:** do I/O, know HTTP, or keep state. Other objects are read only through the
//! [`Cluster`] trait that the API server implements over its store; schema validation, pruning,
//! schema defaults and name validation stay in the API server, which calls [`admit`] after them.
//!
//! Field paths in [`Cause::field`] are JSON paths from the object root
//! (`spec.template.spec.domain.devices.disks[1].name`). [`denial`] renders causes the way the
//! upstream webhook that owns a kind would, for clients that match on exact text.

mod config;
mod datavolume;
mod hyperconverged;
mod ids;
mod instancetype;
mod json;
pub mod macpool;
mod names;
mod quantity;
mod review;
mod service;
mod service_ports;
mod sriov;
mod storageclass;
#[cfg(test)]
mod testing;
mod vm;
mod vmi;
mod vmi_defaults;
mod vmi_network;
mod vmi_storage;
mod vmi_validation;

pub use quantity::{Error as QuantityError, Quantity};
pub use review::{denial, Cause, Denial, Operation, Outcome, Request, SYSTEM_USER_PREFIX};

/// Read access to other objects the rules need (implemented by the API server over its store).
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// An object by group ("" for core), plural resource, namespace ("" for cluster-scoped), name.
    async fn get(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value>;
    /// Whether any object of the resource exists (in any namespace).
    async fn any(&self, group: &str, resource: &str) -> bool;
    /// Every object of the resource, in all namespaces (KubeMacPool's view of the MACs in
    /// use); empty when they cannot be read.
    async fn list(&self, group: &str, resource: &str) -> Vec<serde_json::Value>;
}

/// Mutates (defaults) then validates `obj`; an empty `causes` means admitted.
///
/// Kinds without rules pass through untouched. `obj` may be changed even when the outcome
/// rejects it; the caller then discards it.
///
/// # Guarantees
/// Idempotent: admitting an already-admitted object again changes nothing.
pub async fn admit(
    req: &Request<'_>,
    obj: &mut serde_json::Value,
    cluster: &dyn Cluster,
) -> Outcome {
    let mut out = Outcome::default();
    match (req.group, req.kind) {
        ("kubevirt.io", "VirtualMachineInstance") => vmi::admit(req, obj, cluster, &mut out).await,
        ("kubevirt.io", "VirtualMachine") => vm::admit(req, obj, cluster, &mut out).await,
        ("kubevirt.io", "VirtualMachineInstanceReplicaSet") => {
            vm::admit_template_owner(obj, &["spec", "template"], &mut out)
        }
        ("kubevirt.io", "VirtualMachineInstancePreset") => vm::warn_preset(req, &mut out),
        ("pool.kubevirt.io", "VirtualMachinePool") => vm::admit_template_owner(
            obj,
            &["spec", "virtualMachineTemplate", "spec", "template"],
            &mut out,
        ),
        (
            "instancetype.kubevirt.io",
            "VirtualMachineInstancetype" | "VirtualMachineClusterInstancetype",
        ) => instancetype::admit(obj, &mut out),
        ("cdi.kubevirt.io", "DataVolume") => datavolume::admit(req, obj, cluster, &mut out).await,
        ("hco.kubevirt.io", "HyperConverged") => {
            hyperconverged::admit(req, obj, cluster, &mut out).await
        }
        ("storage.k8s.io", "StorageClass") => storageclass::admit(req, obj, &mut out),
        ("", "Service") => {
            service::admit(req, obj, &mut out);
            service_ports::admit(req, obj, cluster, &mut out).await;
        }
        ("sriovnetwork.openshift.io", "SriovNetworkNodePolicy") => {
            sriov::admit_policy(obj, &mut out)
        }
        ("sriovnetwork.openshift.io", "SriovNetwork") => sriov::admit_network(obj, &mut out),
        _ => {}
    }
    out
}

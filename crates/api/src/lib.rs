//! oxivirt-api: the API surface of OpenShift Virtualization as CustomResourceDefinitions.
//!
//! # Owns
//! - The CRD objects (`apiextensions.k8s.io/v1` JSON) of every custom kind oxivirt serves:
//!   KubeVirt, CDI, HCO, and the neighbouring kinds the manual uses (Multus, nmstate,
//!   CSI snapshots, Templates, prometheus-operator, SR-IOV) — [`custom_resource_definitions`].
//! - Their schemas: KubeVirt's and CDI's are generated from upstream's swagger documents
//!   (embedded from `swagger/`, parsed once) by inlining every `$ref` into a structural
//!   schema; the others are written by hand. Names, short names, categories, versions,
//!   subresources and printer columns follow upstream.
//! - The content installed on first start (upstream's common instance types and preferences,
//!   the well-known namespaces, the HyperConverged singleton) and the instance type expansion
//!   behind `expand-spec` — [`content`].
//! - Facts read from a VMI spec that several components must read alike: the claims it
//!   uses — [`vmi_claims`].
//!
//! # Must not
//! Do I/O (the only files it reads are embedded with `include_str!`) or use tokio. It does
//! not serve anything: the API server installs these CRDs and serves them like user CRDs.
//!
//! # Typical use
//! ```
//! let crds = oxivirt_api::custom_resource_definitions();
//! let vm = crds.iter().find(|c| c["metadata"]["name"] == "virtualmachines.kubevirt.io");
//! assert_eq!(vm.expect("served")["spec"]["names"]["shortNames"][0], "vm");
//! ```

#![warn(missing_docs)]

mod cdi;
pub mod content;
mod crd;
mod hco;
mod kubevirt;
mod monitoring;
mod network;
mod printer;
mod schema;
mod storage;
mod summary;
mod swagger;
mod template;
pub mod vmi_claims;
pub mod well_known;

pub use content::{
    common_cluster_instancetypes, common_cluster_preferences, default_hyperconverged, expand_spec,
    well_known_namespaces, ExpandError,
};
pub use summary::{schema_summaries, SchemaOrigin, SchemaSummary};

use serde_json::Value;

/// The CRD objects of every custom kind oxivirt serves, in a fixed order (KubeVirt, CDI,
/// storage, HCO, network, templates, monitoring), each labelled
/// [`well_known::MANAGED_BY_LABEL`]`: `[`well_known::MANAGED_BY`].
///
/// Core kinds (`policy/v1` PodDisruptionBudget, `batch/v1` Job, ...) are not here: the API
/// server serves them natively.
///
/// # Guarantees
/// Deterministic (same output on every call). Every CRD has exactly one storage version,
/// every version carries the same self-contained structural schema (no `$ref`) whose root
/// is `type: object` and includes `status` where the kind has one.
pub fn custom_resource_definitions() -> Vec<Value> {
    all_kinds().iter().map(crd::Crd::build).collect()
}

fn all_kinds() -> Vec<crd::Crd> {
    let mut kinds = kubevirt::crds();
    kinds.extend(cdi::crds());
    kinds.extend(storage::crds());
    kinds.extend(hco::crds());
    kinds.extend(network::crds());
    kinds.extend(template::crds());
    kinds.extend(monitoring::crds());
    kinds
}

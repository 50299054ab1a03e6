//! RBAC: what a request asks to do ([`attributes`]), whether the Roles and bindings allow it
//! ([`policy`]), ClusterRole aggregation ([`aggregation`]), and the enforcement point every
//! request passes ([`authorizer`]). The access reviews in `authz.rs` use the same decision,
//! so `kubectl auth can-i` always agrees with what a request gets.
//!
//! Boundary: RBAC decides from stored objects only; it never looks at request bodies (so
//! Kubernetes' escalation check on creating bindings is not made here).

pub mod aggregation;
pub mod attributes;
pub mod authorizer;
pub mod defaults;
pub mod policy;

pub use attributes::Attributes;
pub use authorizer::{authorize, decide_fresh, Authorizer};

//! RBAC: what a request asks to do ([`attributes`]), whether the Roles and bindings allow it
//! ([`policy`]), ClusterRole aggregation ([`aggregation`]), and the enforcement point every
//! request passes ([`authorizer`]). The access reviews in `authz.rs` use the same decision,
//! so `kubectl auth can-i` always agrees with what a request gets.
//!
//! Boundary: requests are authorised from their method and path alone; the one check that
//! needs the object, escalation prevention on RBAC writes ([`escalation`]), runs in
//! admission on the object about to be stored.

pub mod aggregation;
pub mod attributes;
pub mod authorizer;
pub mod defaults;
pub mod escalation;
pub mod policy;

pub use attributes::Attributes;
pub use authorizer::{authorize, decide_fresh, Authorizer};

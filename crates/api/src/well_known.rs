//! Well-known label, annotation and finalizer keys (the only place their strings live).

/// Label every object oxivirt installs by itself carries (CRDs, shipped content).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Value of [`MANAGED_BY_LABEL`] on what oxivirt installs.
pub const MANAGED_BY: &str = "oxivirt";

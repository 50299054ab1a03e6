//! Controller errors; variant names double as metric labels.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (network, conflict, validation).
    #[error("API request for {what} failed")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A referenced object (instancetype, preference) does not exist yet.
    #[error("{kind} {name:?} referenced by {vm} was not found")]
    ReferenceNotFound {
        kind: String,
        name: String,
        vm: String,
    },
    /// An object lacks a field the reconciler needs (name, namespace, uid).
    #[error("object is missing {0}")]
    Malformed(&'static str),
    /// The VM's instance type or preference cannot be applied to its template (conflicting
    /// fields, an impossible CPU spread).
    #[error("instance type expansion for VirtualMachine {vm} failed")]
    Expand {
        vm: String,
        #[source]
        source: oxivirt_api::ExpandError,
    },
    /// Every generated name for a new object was already taken.
    #[error("no free name for {what} after {attempts} attempts")]
    NameCollision { what: String, attempts: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}

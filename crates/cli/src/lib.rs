//! `virtctl` for oxivirt: the KubeVirt command-line client.
//!
//! Boundary: this crate parses the command line ([`cli`]), validates it into a [`Plan`]
//! ([`plan`]), and carries the plan out, either printing manifests (`create`) or calling the
//! API server through kube-rs ([`client`]). It holds no API logic of its own: anything the
//! cluster decides is left to the apiserver. Exit codes are documented in [`error`].

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod plan;
pub mod quantity;

pub use cli::Cli;
pub use error::{Error, Result};
pub use plan::Plan;

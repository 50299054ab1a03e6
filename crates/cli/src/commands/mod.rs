//! One module per command that does something; commands that only answer "not supported"
//! live as variants in [`crate::cli::Command`].

pub mod create;
pub mod version;
pub mod vm_state;
pub mod vmi_ops;

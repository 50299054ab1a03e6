//! One module per command that does something; commands that only answer "not supported"
//! live as variants in [`crate::cli::Command`].

pub mod console;
pub mod create;
pub mod expose;
pub mod hotplug;
pub mod image_upload;
pub mod memory_dump;
pub mod port_forward;
pub mod scp;
pub mod ssh;
pub mod stream;
mod upload_http;
pub mod version;
pub mod vm_state;
pub mod vmi_ops;
pub mod vnc;

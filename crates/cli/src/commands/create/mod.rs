//! `virtctl create`: print manifests for VirtualMachines, instancetypes and preferences.
//!
//! Nothing here talks to the cluster; the output is meant for `kubectl apply -f -`. Each
//! subcommand turns its flags into a [`Manifest`] (validation included), and
//! [`Manifest::print`] writes it.

mod builder;
mod cloudinit;
pub mod instancetype;
mod params;
pub mod preference;
pub mod vm;
mod volume;

use std::io::Write;

use serde_json::Value;

use crate::cli::Passthrough;
use crate::error::{Error, Result};
use crate::output::{render, OutputFormat};

/// Subcommands of `virtctl create`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CreateCommand {
    /// Create a VirtualMachine manifest.
    #[command(long_about = vm::VM_LONG_ABOUT)]
    Vm(Box<vm::VmArgs>),
    /// Create VirtualMachineInstancetype or VirtualMachineClusterInstancetype manifest.
    Instancetype(instancetype::InstancetypeArgs),
    /// Create a VirtualMachinePreference or VirtualMachineClusterPreference manifest.
    Preference(preference::PreferenceArgs),
    /// Create a VirtualMachineClone manifest. [not supported by this build yet]
    Clone(Passthrough),
}

/// A validated manifest, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The object.
    pub object: Value,
    /// How to print it.
    pub format: OutputFormat,
    /// Notes for stderr (deprecated flags, cleartext password), printed before the object.
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Writes the warnings to `err` and the object to `out`.
    ///
    /// # Errors
    /// [`Error::Output`] when a stream cannot be written.
    pub fn print(&self, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        for warning in &self.warnings {
            writeln!(err, "{warning}").map_err(Error::Output)?;
        }
        let text = render(&self.object, self.format)?;
        out.write_all(text.as_bytes()).map_err(Error::Output)
    }
}

/// Validates a `create` subcommand into its manifest. `namespace` is the explicit
/// `--namespace` flag, which upstream copies into the manifest.
///
/// # Errors
/// [`Error::Flag`] / [`Error::Invalid`] for bad flags, [`Error::Unsupported`] for `clone`.
pub fn plan(command: &CreateCommand, namespace: Option<String>) -> Result<Manifest> {
    let mut rng = rand::rng();
    match command {
        CreateCommand::Vm(args) => vm::plan(args, namespace, &mut rng),
        CreateCommand::Instancetype(args) => instancetype::plan(args, namespace, &mut rng),
        CreateCommand::Preference(args) => preference::plan(args, namespace, &mut rng),
        CreateCommand::Clone(_) => Err(Error::Unsupported {
            command: "create clone".to_owned(),
        }),
    }
}

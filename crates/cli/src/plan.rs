//! The validated form of a command line, and the one place that carries it out.
//!
//! [`Plan::from_cli`] does every check that needs no I/O towards the cluster, so a bad
//! flag fails before any connection is attempted; [`Plan::run`] then performs the plan.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::client::ConnectionOptions;
use crate::commands::console::{self, ConsoleRequest};
use crate::commands::create::{self, Manifest};
use crate::commands::expose::{self, ExposeRequest};
use crate::commands::hotplug::{self, VolumeRequest};
use crate::commands::image_upload::{self, ImageUploadRequest};
use crate::commands::memory_dump::{self, MemoryDumpRequest};
use crate::commands::port_forward::{self, PortForwardRequest};
use crate::commands::scp::{self, ScpRequest};
use crate::commands::ssh::{self, SshRequest};
use crate::commands::version;
use crate::commands::vm_state::{self, VmStateRequest, VmVerb};
use crate::commands::vmi_ops::{self, VmiOp, VmiOpRequest};
use crate::commands::vnc::{self, VncRequest};
use crate::error::{Error, Result};

/// What `virtctl` will do.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Print this help text (no command was given).
    Help(String),
    /// Print the client version, and the server's when reachable.
    Version(Box<ConnectionOptions>),
    /// Print a manifest (`create ...`).
    PrintManifest(Manifest),
    /// Start, stop or restart a VM.
    VmState(Box<VmStateRequest>),
    /// Pause, unpause, soft-reboot, reset a VMI or read its guest OS info.
    VmiOp(Box<VmiOpRequest>),
    /// Attach to a serial console.
    Console(Box<ConsoleRequest>),
    /// Proxy (and view) a VNC console.
    Vnc(Box<VncRequest>),
    /// Forward ports to a guest.
    PortForward(Box<PortForwardRequest>),
    /// Run the system ssh through a port-forward.
    Ssh(Box<SshRequest>),
    /// Run the system scp through a port-forward.
    Scp(Box<ScpRequest>),
    /// Create a Service for a VM, VMI or replica set.
    Expose(Box<ExposeRequest>),
    ImageUpload(Box<ImageUploadRequest>),
    /// Hot-plug or unplug a volume.
    Volume(Box<VolumeRequest>),
    /// Dump a VM's memory into a claim, or forget the dump.
    MemoryDump(Box<MemoryDumpRequest>),
}

impl Plan {
    /// Validates a parsed command line.
    ///
    /// # Errors
    /// [`Error::Flag`] / [`Error::Invalid`] for bad values, [`Error::Unsupported`] for
    /// commands this build does not implement.
    pub fn from_cli(cli: Cli) -> Result<Plan> {
        let connection = cli.connection();
        let Some(command) = cli.command else {
            return Ok(Plan::Help(Cli::command().render_help().to_string()));
        };
        let command_name = command.name();
        match command {
            Command::Version => Ok(Plan::Version(Box::new(connection))),
            Command::Create(create) => {
                create::plan(&create, connection.namespace).map(Plan::PrintManifest)
            }
            Command::Options => Ok(Plan::Help(global_options_help())),
            Command::Start(args) => Ok(Plan::VmState(Box::new(VmStateRequest {
                verb: VmVerb::Start,
                name: args.name,
                connection,
                paused: args.paused,
                grace_period: None,
                dry_run: args.dry_run,
            }))),
            Command::Stop(args) | Command::Restart(args) => {
                let verb = if matches!(command_name, "stop") {
                    VmVerb::Stop
                } else {
                    VmVerb::Restart
                };
                let request = VmStateRequest {
                    verb,
                    name: args.name,
                    connection,
                    paused: false,
                    grace_period: args.grace_period,
                    dry_run: args.dry_run,
                };
                request
                    .validate(args.force)
                    .map(|r| Plan::VmState(Box::new(r)))
            }
            Command::Pause(a)
            | Command::Unpause(a)
            | Command::SoftReboot(a)
            | Command::Reset(a)
            | Command::Guestosinfo(a)
            | Command::Userlist(a)
            | Command::Fslist(a) => {
                let op = match command_name {
                    "pause" => VmiOp::Pause,
                    "unpause" => VmiOp::Unpause,
                    "soft-reboot" => VmiOp::SoftReboot,
                    "reset" => VmiOp::Reset,
                    "userlist" => VmiOp::UserList,
                    "fslist" => VmiOp::FsList,
                    _ => VmiOp::GuestOsInfo,
                };
                VmiOpRequest::from_args(op, &a.args, connection, a.dry_run)
                    .map(|r| Plan::VmiOp(Box::new(r)))
            }
            Command::Console(args) => Ok(Plan::Console(Box::new(ConsoleRequest::from_args(
                args, connection,
            )))),
            Command::Vnc(args) => Ok(Plan::Vnc(Box::new(VncRequest { args, connection }))),
            Command::PortForward(args) => PortForwardRequest::from_args(args, connection)
                .map(|r| Plan::PortForward(Box::new(r))),
            Command::Ssh(args) => {
                SshRequest::from_args(args, connection).map(|r| Plan::Ssh(Box::new(r)))
            }
            Command::Scp(args) => {
                ScpRequest::from_args(args, connection).map(|r| Plan::Scp(Box::new(r)))
            }
            Command::Expose(args) => {
                ExposeRequest::from_args(args, connection).map(|r| Plan::Expose(Box::new(r)))
            }
            Command::ImageUpload(args) => ImageUploadRequest::from_args(args, connection)
                .map(|r| Plan::ImageUpload(Box::new(r))),
            Command::Addvolume(args) => {
                VolumeRequest::add(args, connection).map(|r| Plan::Volume(Box::new(r)))
            }
            Command::Removevolume(args) => Ok(Plan::Volume(Box::new(VolumeRequest::remove(
                args, connection,
            )))),
            Command::MemoryDump(args) => MemoryDumpRequest::from_args(args, connection)
                .map(|r| Plan::MemoryDump(Box::new(r))),
            // Every other command is registered only so that it can say this.
            other => Err(Error::Unsupported {
                command: other.name().to_owned(),
            }),
        }
    }

    /// Carries the plan out, writing results to `out` and notes to `err`.
    ///
    /// # Errors
    /// [`Error::Output`] when writing fails; command-specific errors otherwise.
    pub fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        match self {
            Plan::Help(text) => out.write_all(text.as_bytes()).map_err(Error::Output),
            Plan::Version(connection) => version::run(&connection, out, err),
            Plan::PrintManifest(manifest) => manifest.print(out, err),
            Plan::VmState(request) => vm_state::run(&request, out),
            Plan::Console(request) => console::run(&request, err),
            Plan::Vnc(request) => vnc::run(&request, out, err),
            Plan::PortForward(request) => port_forward::run(&request, err),
            Plan::Ssh(request) => ssh::run(&request),
            Plan::Scp(request) => scp::run(&request),
            Plan::VmiOp(request) => vmi_ops::run(&request, out),
            Plan::Expose(request) => expose::run(&request, out),
            Plan::ImageUpload(request) => image_upload::run(&request, out, err),
            Plan::Volume(request) => hotplug::run(&request, out),
            Plan::MemoryDump(request) => memory_dump::run(&request, out),
        }
    }
}

/// The `options` text: the global flags, which every command accepts.
fn global_options_help() -> String {
    let mut text = String::from("The following options can be passed to any command:\n\n");
    for arg in Cli::command().get_arguments() {
        if !arg.is_global_set() && arg.get_id() != "kube_user" {
            continue;
        }
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("-{short}"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("--{long}"));
        }
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        text.push_str(&format!("  {}: {help}\n", names.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan> {
        let mut argv = vec!["virtctl"];
        argv.extend_from_slice(args);
        Plan::from_cli(Cli::try_parse_from(argv).expect("parses"))
    }

    #[test]
    fn start_stop_restart_plan_a_vm_state_request() {
        assert!(matches!(plan(&["start", "vm", "--paused"]), Ok(Plan::VmState(r)) if r.paused));
        assert!(matches!(
            plan(&["stop", "vm", "--grace-period", "0", "--force"]),
            Ok(Plan::VmState(_))
        ));
        assert!(plan(&["restart", "vm", "--grace-period", "3"]).is_err());
    }

    #[test]
    fn unsupported_commands_fail_with_their_name() {
        let err = plan(&["migrate", "my-vm"]).expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "\"migrate\" is not supported by this oxivirt build yet"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_UNSUPPORTED);
        let err = plan(&["create", "clone", "--source-name", "a"]).expect_err("unsupported");
        assert!(err.to_string().starts_with("\"create clone\""));
    }

    #[test]
    fn no_command_prints_help() {
        let Ok(Plan::Help(text)) = plan(&[]) else {
            panic!("expected help");
        };
        assert!(text.contains("Exit codes:"));
    }

    #[test]
    fn namespace_flag_reaches_create() {
        let Ok(Plan::PrintManifest(manifest)) =
            plan(&["-n", "team", "create", "vm", "--name", "a"])
        else {
            panic!("expected a manifest");
        };
        assert_eq!(manifest.object["metadata"]["namespace"], "team");
    }

    #[test]
    fn options_lists_global_flags() {
        let Ok(Plan::Help(text)) = plan(&["options"]) else {
            panic!("expected help");
        };
        assert!(text.contains("--kubeconfig"));
        assert!(text.contains("-n, --namespace"));
        assert!(text.contains("--user"));
    }
}

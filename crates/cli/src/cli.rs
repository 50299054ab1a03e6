//! The command line as parsed by clap: global connection flags and every upstream command.
//!
//! Parsing only checks shapes (flag names, types, conflicts); turning a [`Cli`] into
//! something to run, with value validation, is [`crate::plan::Plan::from_cli`]. Commands that
//! upstream has but this build does not implement are still registered, so that they answer
//! with a clear "not supported" error and exit code 3 rather than "unrecognized subcommand".

use std::path::PathBuf;

use crate::client::ConnectionOptions;
use crate::commands::console::ConsoleArgs;
use crate::commands::create::CreateCommand;
use crate::commands::expose::ExposeArgs;
use crate::commands::image_upload::ImageUploadArgs;
use crate::commands::port_forward::PortForwardArgs;
use crate::commands::scp::ScpArgs;
use crate::commands::ssh::SshArgs;
use crate::commands::vnc::VncArgs;
use crate::error::EXIT_CODES_HELP;

/// `virtctl` controls KubeVirt virtual machines on an oxivirt (or any KubeVirt) cluster.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "virtctl",
    version,
    about = "virtctl controls virtual machine related operations on your kubernetes cluster.",
    after_help = EXIT_CODES_HELP,
)]
pub struct Cli {
    /// Flags shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    // Not global: `create vm --user` names the guest's cloud-init user, so the kubeconfig
    // user has to come before the command (`virtctl --user u start vm`).
    /// The name of the kubeconfig user to use (give it before the command).
    #[arg(long = "user", value_name = "NAME", help_heading = "Global options")]
    pub kube_user: Option<String>,
    /// The command; without one, the help is printed.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The kubectl-style connection flags and `-v`, accepted before or after the command.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short, long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The address and port of the Kubernetes API server.
    #[arg(short, long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Path to a cert file for the certificate authority.
    #[arg(long, global = true, value_name = "PATH")]
    pub certificate_authority: Option<PathBuf>,
    /// Path to a client certificate file for TLS.
    #[arg(long, global = true, value_name = "PATH")]
    pub client_certificate: Option<PathBuf>,
    /// Path to a client key file for TLS.
    #[arg(long, global = true, value_name = "PATH")]
    pub client_key: Option<PathBuf>,
    /// If true, the server's certificate will not be checked for validity.
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Server name to use for server certificate validation.
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Username to impersonate for the operation.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub impersonate: Option<String>,
    /// Group to impersonate for the operation; can be repeated.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub impersonate_groups: Vec<String>,
    /// The length of time to wait before giving up on a single server request (0 = none).
    #[arg(long, global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Log level for diagnostics on stderr (0-9; 4 and above include request details).
    #[arg(short = 'v', long = "v", global = true, value_name = "LEVEL")]
    pub verbosity: Option<u8>,
}

impl Cli {
    /// The connection settings given on the command line.
    pub fn connection(&self) -> ConnectionOptions {
        let g = &self.global;
        ConnectionOptions {
            kubeconfig: g.kubeconfig.clone(),
            context: g.context.clone(),
            cluster: g.cluster.clone(),
            user: self.kube_user.clone(),
            namespace: g.namespace.clone(),
            server: g.server.clone(),
            token: g.token.clone(),
            certificate_authority: g.certificate_authority.clone(),
            client_certificate: g.client_certificate.clone(),
            client_key: g.client_key.clone(),
            insecure_skip_tls_verify: g.insecure_skip_tls_verify,
            tls_server_name: g.tls_server_name.clone(),
            impersonate: g.impersonate.clone(),
            impersonate_groups: g.impersonate_groups.clone(),
            request_timeout: g.request_timeout.clone(),
        }
    }
}

/// Arguments of a command this build does not implement yet: accepted as they are, so the
/// command reports "not supported" instead of a parse error.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Passthrough {
    /// Everything after the command name.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., hide = true)]
    pub args: Vec<String>,
}

/// `virtctl start VM`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Name of the VirtualMachine.
    pub name: String,
    /// Start the VM paused.
    #[arg(long)]
    pub paused: bool,
    /// Ask the server to validate the request without acting on it.
    #[arg(long)]
    pub dry_run: bool,
}

/// `virtctl pause|unpause vm|vmi NAME`, `soft-reboot|reset|guestosinfo|userlist|fslist NAME`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmiOpArgs {
    /// `vm|vmi NAME` for pause/unpause, `NAME` otherwise.
    #[arg(required = true, num_args = 1..=2)]
    pub args: Vec<String>,
    /// Ask the server to validate the request without acting on it.
    #[arg(long)]
    pub dry_run: bool,
}

/// `virtctl stop|restart VM`.
#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Name of the VirtualMachine.
    pub name: String,
    /// Seconds the guest gets to shut down (only `0`, together with `--force`).
    #[arg(long = "grace-period", allow_hyphen_values = true)]
    pub grace_period: Option<i64>,
    /// Stop at once: requires `--grace-period 0`.
    #[arg(long)]
    pub force: bool,
    /// Ask the server to validate the request without acting on it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Every upstream virtctl command (upstream's names; help lines follow upstream's).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print the client and server version information.
    Version,
    /// Create a manifest for the specified Kind.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Start a virtual machine.
    Start(StartArgs),
    /// Stop a virtual machine.
    Stop(StopArgs),
    /// Restart a virtual machine.
    Restart(StopArgs),
    /// Migrate a virtual machine. [not supported by this build yet]
    Migrate(Passthrough),
    /// Cancel migration of a virtual machine. [not supported by this build yet]
    MigrateCancel(Passthrough),
    /// Return guest agent info about the operating system.
    Guestosinfo(VmiOpArgs),
    /// Return the list of users logged in on a guest.
    Userlist(VmiOpArgs),
    /// Return the list of filesystems on the guest.
    Fslist(VmiOpArgs),
    /// Add a volume to a running VM.
    Addvolume(crate::commands::hotplug::AddVolumeArgs),
    /// Remove a volume from a running VM.
    Removevolume(crate::commands::hotplug::RemoveVolumeArgs),
    /// Return the VM with instancetype and preference expanded. [not supported by this build yet]
    Expand(Passthrough),
    /// Cancel evacuation of a VM, VMI or all VMIs of a node. [not supported by this build yet]
    EvacuateCancel(Passthrough),
    /// Connect to the serial console of a VMI.
    Console(ConsoleArgs),
    /// Open a VNC connection to a VMI.
    Vnc(VncArgs),
    /// Redirect a local USB device to a VMI. [not supported by this build yet]
    Usbredir(Passthrough),
    /// Forward local ports to a VM or VMI.
    PortForward(PortForwardArgs),
    /// Open an SSH connection to a VM or VMI.
    Ssh(SshArgs),
    /// Copy files from or to a VM or VMI.
    Scp(ScpArgs),
    /// Pause a VM or VMI.
    Pause(VmiOpArgs),
    /// Unpause a VM or VMI.
    Unpause(VmiOpArgs),
    /// Soft reboot a VMI.
    SoftReboot(VmiOpArgs),
    /// Hard reset a VMI.
    Reset(VmiOpArgs),
    /// Dump the memory of a running VM to a PVC.
    MemoryDump(crate::commands::memory_dump::MemoryDumpArgs),
    /// Expose a virtual machine instance, virtual machine, or virtual machine instance replica set as a new service.
    Expose(ExposeArgs),
    /// Upload a VM image to a DataVolume/PersistentVolumeClaim.
    ImageUpload(ImageUploadArgs),
    /// Export a VM volume. [not supported by this build yet]
    Vmexport(Passthrough),
    /// Start a shell into a libguestfs pod. [not supported by this build yet]
    Guestfs(Passthrough),
    /// Manipulate credentials on a virtual machine. [not supported by this build yet]
    Credentials(Passthrough),
    /// Work with VirtualMachineTemplates. [not supported by this build yet]
    Template(Passthrough),
    /// Return the object graph of a VM or VMI. [not supported by this build yet]
    Objectgraph(Passthrough),
    /// List the devices permitted for VMIs. [not supported by this build yet]
    PermittedDevices(Passthrough),
    /// Administrate the KubeVirt configuration. [not supported by this build yet]
    Adm(Passthrough),
    /// Print the list of flags inherited by all commands.
    #[command(hide = true)]
    Options,
}

impl Command {
    /// The command's upstream name (`create` for every `create` subcommand).
    pub fn name(&self) -> &'static str {
        use Command::*;
        match self {
            Version => "version",
            Create(_) => "create",
            Options => "options",
            Start(_) => "start",
            Stop(_) => "stop",
            Restart(_) => "restart",
            Migrate(_) => "migrate",
            MigrateCancel(_) => "migrate-cancel",
            Guestosinfo(_) => "guestosinfo",
            Userlist(_) => "userlist",
            Fslist(_) => "fslist",
            Addvolume(_) => "addvolume",
            Removevolume(_) => "removevolume",
            Expand(_) => "expand",
            EvacuateCancel(_) => "evacuate-cancel",
            Console(_) => "console",
            Vnc(_) => "vnc",
            Usbredir(_) => "usbredir",
            PortForward(_) => "port-forward",
            Ssh(_) => "ssh",
            Scp(_) => "scp",
            Pause(_) => "pause",
            Unpause(_) => "unpause",
            SoftReboot(_) => "soft-reboot",
            Reset(_) => "reset",
            MemoryDump(_) => "memory-dump",
            Expose(_) => "expose",
            ImageUpload(_) => "image-upload",
            Vmexport(_) => "vmexport",
            Guestfs(_) => "guestfs",
            Credentials(_) => "credentials",
            Template(_) => "template",
            Objectgraph(_) => "objectgraph",
            PermittedDevices(_) => "permitted-devices",
            Adm(_) => "adm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_the_command() {
        let cli = Cli::try_parse_from(["virtctl", "-n", "a", "version"]).expect("parses");
        assert_eq!(cli.global.namespace.as_deref(), Some("a"));
        let cli = Cli::try_parse_from(["virtctl", "version", "--namespace=b", "-v", "4"])
            .expect("parses");
        assert_eq!(cli.global.namespace.as_deref(), Some("b"));
        assert_eq!(cli.global.verbosity, Some(4));
    }

    #[test]
    fn every_registered_command_name_matches_its_subcommand() {
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name().to_owned();
            if matches!(
                name.as_str(),
                "version"
                    | "create"
                    | "options"
                    | "help"
                    | "start"
                    | "stop"
                    | "restart"
                    | "console"
                    | "vnc"
                    | "port-forward"
                    | "ssh"
                    | "scp"
                    | "expose"
                    | "image-upload"
                    | "pause"
                    | "unpause"
                    | "soft-reboot"
                    | "reset"
                    | "guestosinfo"
                    | "userlist"
                    | "fslist"
                    | "addvolume"
                    | "removevolume"
                    | "memory-dump"
            ) {
                // Implemented commands validate their arguments; the rest take anything.
                continue;
            }
            let cli =
                Cli::try_parse_from(["virtctl", name.as_str(), "x", "--flag"]).expect("parses");
            let command = cli.command.expect("command");
            assert_eq!(command.name(), name);
        }
    }

    #[test]
    fn kubeconfig_user_is_separate_from_create_vm_user() {
        let cli = Cli::try_parse_from([
            "virtctl", "--user", "admin", "create", "vm", "--user", "fedora",
        ])
        .expect("parses");
        assert_eq!(cli.kube_user.as_deref(), Some("admin"));
        let Some(Command::Create(CreateCommand::Vm(vm))) = cli.command else {
            panic!("expected create vm");
        };
        assert_eq!(vm.user.as_deref(), Some("fedora"));
    }
}

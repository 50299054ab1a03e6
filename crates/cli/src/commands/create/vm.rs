//! `virtctl create vm`: prints a VirtualMachine manifest.
//!
//! Flags are applied in upstream's order, which fixes the default boot order of volumes
//! (containerdisk > PVC > DataSource > clone PVC > blank > imported volumes) and lets
//! `--access-cred` imply `--ga-manage-ssh` or `--cloud-init` before cloud-init is built.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use serde_json::{json, Value};

use super::builder::VmBuilder;
use super::cloudinit::{self, CloudInitOptions};
use super::params::{random_suffix, split_prefixed_name};
use super::volume;
use super::Manifest;
use crate::error::{Error, Result};
use crate::output::OutputFormat;
use crate::quantity;

const RUN_STRATEGIES: [&str; 5] = ["Always", "Manual", "Halted", "Once", "RerunOnFailure"];

pub(super) const VM_LONG_ABOUT: &str = "Create a VirtualMachine manifest.

If no boot order was specified volumes have the following fixed boot order:
Containerdisk > PVC > DataSource > Clone PVC > Blank > Imported volumes";

const VM_EXAMPLES: &str = "Examples:
  # A VirtualMachine with a random name:
  virtctl create vm

  # A VirtualMachine using a cluster instancetype and preference, cloning a DataSource:
  virtctl create vm --instancetype=u1.medium --preference=fedora --volume-import=type:ds,src:my-ns/fedora

  # Memory and an ephemeral containerdisk volume:
  virtctl create vm --memory=1Gi --volume-containerdisk=src:my.registry/my-image:my-tag

  # A cloud-init user with an SSH key:
  virtctl create vm --user cloud-user --ssh-key='ssh-ed25519 AAAA...'

  # Create it right away:
  virtctl create vm --volume-containerdisk=src:quay.io/containerdisks/fedora:latest | kubectl apply -f -";

/// Flags of `virtctl create vm` (upstream's names and defaults).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_long_help = VM_EXAMPLES)]
pub struct VmArgs {
    /// Specify the name of the VM (default: vm- and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Specify the RunStrategy of the VM.
    #[arg(long, default_value = "Always")]
    pub run_strategy: String,
    /// Specify the termination grace period of the VM.
    #[arg(long, default_value_t = 180, allow_negative_numbers = true)]
    pub termination_grace_period: i64,

    /// Specify the memory of the VM [default: 512Mi].
    #[arg(long, conflicts_with_all = ["instancetype", "infer_instancetype", "infer_instancetype_from"])]
    pub memory: Option<String>,
    /// Specify the Instance Type of the VM ([kind/]name; kind virtualmachineinstancetype or
    /// virtualmachineclusterinstancetype, the server defaults to the cluster kind).
    #[arg(long, conflicts_with_all = ["infer_instancetype", "infer_instancetype_from"])]
    pub instancetype: Option<String>,
    /// Specify if the Instance Type of the VM should be inferred from the first boot disk.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), conflicts_with = "infer_instancetype_from")]
    pub infer_instancetype: Option<bool>,
    /// Specify the volume to infer the Instance Type of the VM from.
    #[arg(long)]
    pub infer_instancetype_from: Option<String>,

    /// Specify the Preference of the VM ([kind/]name; kind virtualmachinepreference or
    /// virtualmachineclusterpreference).
    #[arg(long, conflicts_with_all = ["infer_preference", "infer_preference_from"])]
    pub preference: Option<String>,
    /// Specify if the Preference of the VM should be inferred from the first boot disk.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), conflicts_with = "infer_preference_from")]
    pub infer_preference: Option<bool>,
    /// Specify the volume to infer the Preference of the VM from.
    #[arg(long)]
    pub infer_preference_from: Option<String>,

    /// Specify a containerdisk to be used by the VM. Can be provided multiple times.
    /// Supported parameters: name:string,src:string,bootorder:uint
    #[arg(long = "volume-containerdisk", value_name = "PARAMS")]
    pub volume_containerdisk: Vec<String>,
    /// Specify a PVC to be used by the VM. Can be provided multiple times.
    /// Supported parameters: name:string,src:string,bootorder:uint
    #[arg(long = "volume-pvc", value_name = "PARAMS")]
    pub volume_pvc: Vec<String>,
    /// Specify the source for a DataVolume. Can be provided multiple times.
    /// Supported parameters: type:blank|gcs|http|imageio|pvc|registry|s3|vddk|snapshot|ds,
    /// name, size, bootorder, and per type src, url, secretref, certconfigmap, diskid,
    /// imagestream, pullmethod, extraheaders, secretextraheaders, uuid, thumbprint,
    /// backingfile, initimageurl
    #[arg(long = "volume-import", value_name = "PARAMS")]
    pub volume_import: Vec<String>,
    /// Specify a ConfigMap or Secret to be used as sysprep volume by the VM.
    /// Supported parameters: src:string,type:string
    #[arg(long = "volume-sysprep", value_name = "PARAMS")]
    pub volume_sysprep: Option<String>,

    /// Specify the user in the cloud-init user data that is added to the VM.
    #[arg(long)]
    pub user: Option<String>,
    /// Specify a file to read the password from for the cloud-init user data.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Specify one or more SSH authorized keys in the cloud-init user data.
    #[arg(long = "ssh-key", value_delimiter = ',')]
    pub ssh_key: Vec<String>,
    /// Specify if the qemu-guest-agent should be able to manage SSH in the cloud-init user data.
    #[arg(long = "ga-manage-ssh", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub ga_manage_ssh: Option<bool>,
    /// Specify an access credential to be injected into the VM. Can be provided multiple times.
    /// Supported parameters: type:string,src:string,method:string,user:string
    #[arg(long = "access-cred", value_name = "PARAMS")]
    pub access_cred: Vec<String>,

    /// Specify the type of the generated cloud-init data source: nocloud, configdrive, none.
    #[arg(long = "cloud-init")]
    pub cloud_init: Option<String>,
    /// Specify the base64 encoded cloud-init user data of the VM.
    #[arg(long = "cloud-init-user-data",
          conflicts_with_all = ["user", "password_file", "ssh_key", "ga_manage_ssh"])]
    pub cloud_init_user_data: Option<String>,
    /// Specify the base64 encoded cloud-init network data of the VM.
    #[arg(long = "cloud-init-network-data")]
    pub cloud_init_network_data: Option<String>,

    /// DEPRECATED: use --volume-import with type:ds and the same params.
    #[arg(long = "volume-datasource", value_name = "PARAMS")]
    pub volume_datasource: Vec<String>,
    /// DEPRECATED: use --volume-import with type:pvc and the same params.
    #[arg(long = "volume-clone-pvc", value_name = "PARAMS")]
    pub volume_clone_pvc: Vec<String>,
    /// DEPRECATED: use --volume-import with type:blank and the same params.
    #[arg(long = "volume-blank", value_name = "PARAMS")]
    pub volume_blank: Vec<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

/// Validates the flags and builds the manifest. `namespace` is the explicit `--namespace`.
///
/// # Errors
/// [`Error::Flag`] naming the offending flag, or [`Error::Invalid`] for inference problems.
pub fn plan(
    args: &VmArgs,
    namespace: Option<String>,
    rng: &mut dyn rand::RngCore,
) -> Result<Manifest> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("vm-{}", random_suffix(rng)));
    let mut vm = VmBuilder::new(name, namespace);
    let mut warnings = Vec::new();

    let memory = args.memory.as_deref().unwrap_or("512Mi");
    vm.memory = Some(quantity::canonical(memory).map_err(|reason| Error::flag("memory", reason))?);
    if !RUN_STRATEGIES.contains(&args.run_strategy.as_str()) {
        return Err(Error::flag(
            "run-strategy",
            format!(
                "invalid RunStrategy \"{}\", supported values are: {}",
                args.run_strategy,
                RUN_STRATEGIES.join(", ")
            ),
        ));
    }
    vm.run_strategy = args.run_strategy.clone();
    vm.termination_grace_period = args.termination_grace_period;

    if let Some(instancetype) = &args.instancetype {
        vm.instancetype = Some(matcher(
            "instancetype",
            instancetype,
            [
                "virtualmachineinstancetype",
                "virtualmachineclusterinstancetype",
            ],
        )?);
        vm.memory = None;
    }
    if let Some(preference) = &args.preference {
        vm.preference = Some(matcher(
            "preference",
            preference,
            [
                "virtualmachinepreference",
                "virtualmachineclusterpreference",
            ],
        )?);
    }

    volume::add_containerdisks(&mut vm, &args.volume_containerdisk)?;
    volume::add_pvcs(&mut vm, &args.volume_pvc)?;
    let (imports, deprecations) = volume::alias_deprecated(
        &args.volume_datasource,
        &args.volume_clone_pvc,
        &args.volume_blank,
        &args.volume_import,
    )?;
    warnings.extend(deprecations);
    volume::add_imports(&mut vm, &imports, rng)?;
    if let Some(sysprep) = &args.volume_sysprep {
        volume::add_sysprep(&mut vm, sysprep)?;
    }

    let mut cloud_init = CloudInitOptions {
        user: args.user.clone(),
        password_file: args.password_file.clone(),
        ssh_keys: args.ssh_key.clone(),
        ga_manage_ssh: args.ga_manage_ssh,
        data_source: args.cloud_init.clone(),
        user_data_base64: args.cloud_init_user_data.clone(),
        network_data_base64: args.cloud_init_network_data.clone(),
    };
    if let Some(data) = &args.cloud_init_user_data {
        cloudinit::check_base64("cloud-init-user-data", data)?;
    }
    if let Some(data) = &args.cloud_init_network_data {
        cloudinit::check_base64("cloud-init-network-data", data)?;
    }
    cloudinit::add_access_credentials(&mut vm, &args.access_cred, &mut cloud_init)?;
    cloudinit::add_cloud_init(&mut vm, &cloud_init, &mut warnings)?;

    infer(&mut vm, args)?;
    Ok(Manifest {
        object: vm.into_manifest(),
        format: args.output,
        warnings,
    })
}

/// Builds an instancetype or preference matcher from `[kind/]name`.
fn matcher(flag: &'static str, value: &str, kinds: [&str; 2]) -> Result<Value> {
    let (kind, name) = split_prefixed_name(value).map_err(|reason| Error::flag(flag, reason))?;
    match kind {
        None => Ok(json!({ "name": name })),
        Some(kind) if kinds.contains(&kind) => Ok(json!({ "kind": kind, "name": name })),
        Some(kind) => Err(Error::flag(
            flag,
            format!(
                "invalid {flag} kind \"{kind}\", supported values are: {}",
                kinds.join(", ")
            ),
        )),
    }
}

/// Instancetype and preference inference, on by default. Implicit inference (no
/// `--infer-*` flag) never fails the command: it is skipped when no volume qualifies, and
/// asks the server to ignore inference failures while keeping the default memory.
fn infer(vm: &mut VmBuilder, args: &VmArgs) -> Result<()> {
    let explicit = args.infer_instancetype.is_some() || args.infer_instancetype_from.is_some();
    let enabled = args.infer_instancetype.unwrap_or(true);
    if enabled && args.instancetype.is_none() && args.memory.is_none() {
        match inference_volume(vm, args.infer_instancetype_from.as_deref()) {
            Ok(volume) => {
                let mut matcher = json!({ "inferFromVolume": volume });
                if explicit {
                    vm.memory = None;
                } else {
                    matcher["inferFromVolumeFailurePolicy"] = "Ignore".into();
                }
                vm.instancetype = Some(matcher);
            }
            Err(err) if explicit => return Err(err),
            Err(_) => {}
        }
    }

    let explicit = args.infer_preference.is_some() || args.infer_preference_from.is_some();
    let enabled = args.infer_preference.unwrap_or(true);
    if enabled && args.preference.is_none() {
        match inference_volume(vm, args.infer_preference_from.as_deref()) {
            Ok(volume) => {
                let mut matcher = json!({ "inferFromVolume": volume });
                if !explicit {
                    matcher["inferFromVolumeFailurePolicy"] = "Ignore".into();
                }
                vm.preference = Some(matcher);
            }
            Err(err) if explicit => return Err(err),
            Err(_) => {}
        }
    }
    Ok(())
}

fn inference_volume(vm: &VmBuilder, from: Option<&str>) -> Result<String> {
    let name = match from {
        Some(name) => name.to_owned(),
        None => vm.default_inference_volume()?,
    };
    vm.check_inference_volume(&name)?;
    Ok(name)
}

#[cfg(test)]
#[path = "vm_tests.rs"]
mod tests;

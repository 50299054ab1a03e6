//! `virtctl create preference`: prints a VirtualMachineClusterPreference manifest, or a
//! namespaced VirtualMachinePreference with `--namespaced` (or an explicit `--namespace`).

use serde_json::json;

use super::instancetype::object;
use super::params::random_suffix;
use super::Manifest;
use crate::error::{Error, Result};
use crate::output::OutputFormat;

const CPU_TOPOLOGIES: [&str; 3] = ["preferCores", "preferSockets", "preferThreads"];

const EXAMPLES: &str = "Examples:
  # A VirtualMachineClusterPreference with a random name:
  virtctl create preference

  # A namespaced VirtualMachinePreference preferring sockets:
  virtctl create preference --cpu-topology preferSockets --namespaced

  # Create it right away:
  virtctl create preference --volume-storage-class hostpath-provisioner | kubectl create -f -";

/// Flags of `virtctl create preference`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct PreferenceArgs {
    /// Specify if VirtualMachinePreference should be created. By default
    /// VirtualMachineClusterPreference is created.
    #[arg(long)]
    pub namespaced: bool,
    /// Specify the name of the Preference (default: a random name).
    #[arg(long)]
    pub name: Option<String>,
    /// Defines the preferred storage class.
    #[arg(long = "volume-storage-class")]
    pub volume_storage_class: Option<String>,
    /// Defines the preferred machine type to use.
    #[arg(long = "machine-type")]
    pub machine_type: Option<String>,
    /// Defines the preferred guest visible CPU topology: preferCores, preferSockets or
    /// preferThreads.
    #[arg(long = "cpu-topology")]
    pub cpu_topology: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

/// Validates the flags and builds the manifest.
///
/// # Errors
/// [`Error::Flag`] for an unknown CPU topology.
pub fn plan(
    args: &PreferenceArgs,
    namespace: Option<String>,
    rng: &mut dyn rand::RngCore,
) -> Result<Manifest> {
    let namespaced = args.namespaced || namespace.is_some();
    let mut spec = json!({});
    if let Some(class) = &args.volume_storage_class {
        spec["volumes"] = json!({ "preferredStorageClassName": class });
    }
    if let Some(machine) = &args.machine_type {
        spec["machine"] = json!({ "preferredMachineType": machine });
    }
    if let Some(topology) = &args.cpu_topology {
        if !CPU_TOPOLOGIES.contains(&topology.as_str()) {
            return Err(Error::flag(
                "cpu-topology",
                "CPU topology must have a value of preferCores, preferSockets or preferThreads",
            ));
        }
        spec["cpu"] = json!({ "preferredCPUTopology": topology });
    }
    let (kind, prefix) = if namespaced {
        ("VirtualMachinePreference", "preference")
    } else {
        ("VirtualMachineClusterPreference", "clusterpreference")
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{prefix}-{}", random_suffix(rng)));
    Ok(Manifest {
        object: object(kind, name, namespace.filter(|_| namespaced), spec),
        format: args.output,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render;
    use rand::SeedableRng;
    use serde_json::Value;

    fn build(args: &PreferenceArgs, namespace: Option<&str>) -> Result<Value> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        plan(args, namespace.map(str::to_owned), &mut rng).map(|m| m.object)
    }

    #[test]
    fn bare_preference_is_cluster_scoped_with_empty_spec() {
        let object = build(&PreferenceArgs::default(), None).expect("builds");
        assert_eq!(object["kind"], "VirtualMachineClusterPreference");
        assert_eq!(object["apiVersion"], "instancetype.kubevirt.io/v1beta1");
        assert!(object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("clusterpreference-")));
        let args = PreferenceArgs {
            name: Some("p".into()),
            ..Default::default()
        };
        let yaml =
            render(&build(&args, None).expect("builds"), OutputFormat::Yaml).expect("renders");
        assert_eq!(
            yaml,
            "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterPreference\nmetadata:\n  name: p\nspec: {}\n"
        );
    }

    #[test]
    fn every_flag_lands_in_the_spec() {
        let args = PreferenceArgs {
            namespaced: true,
            cpu_topology: Some("preferSockets".into()),
            machine_type: Some("q35".into()),
            volume_storage_class: Some("local".into()),
            ..Default::default()
        };
        let object = build(&args, None).expect("builds");
        assert_eq!(object["kind"], "VirtualMachinePreference");
        assert_eq!(
            object["spec"],
            json!({
                "cpu": {"preferredCPUTopology": "preferSockets"},
                "machine": {"preferredMachineType": "q35"},
                "volumes": {"preferredStorageClassName": "local"},
            })
        );
    }

    #[test]
    fn explicit_namespace_makes_it_namespaced() {
        let object = build(&PreferenceArgs::default(), Some("team")).expect("builds");
        assert_eq!(object["kind"], "VirtualMachinePreference");
        assert_eq!(object["metadata"]["namespace"], "team");
    }

    #[test]
    fn unknown_cpu_topology_is_rejected() {
        let args = PreferenceArgs {
            cpu_topology: Some("preferNothing".into()),
            ..Default::default()
        };
        let err = build(&args, None).expect_err("rejected");
        assert_eq!(
            err.to_string(),
            "failed to parse \"--cpu-topology\" flag: CPU topology must have a value of preferCores, preferSockets or preferThreads"
        );
    }
}

//! `virtctl create instancetype`: prints a VirtualMachineClusterInstancetype manifest, or a
//! namespaced VirtualMachineInstancetype with `--namespaced` (or an explicit `--namespace`).

use serde_json::{json, Map, Value};

use super::params::{random_suffix, Params};
use super::Manifest;
use crate::error::{Error, Result};
use crate::output::OutputFormat;
use crate::quantity;

/// The API version of instancetypes and preferences.
pub const INSTANCETYPE_API_VERSION: &str = "instancetype.kubevirt.io/v1beta1";

const EXAMPLES: &str = "Examples:
  # A VirtualMachineClusterInstancetype with a random name:
  virtctl create instancetype --cpu 2 --memory 256Mi

  # A namespaced VirtualMachineInstancetype with a name and a vGPU:
  virtctl create instancetype --namespaced --name my-instancetype --cpu 2 --memory 256Mi --gpu name:gpu1,devicename:nvidia

  # Create it right away:
  virtctl create instancetype --cpu 2 --memory 256Mi | kubectl create -f -";

/// Flags of `virtctl create instancetype`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct InstancetypeArgs {
    /// Specify the name of the Instancetype (default: a random name).
    #[arg(long)]
    pub name: Option<String>,
    /// Specify the count of CPUs of the Instancetype.
    #[arg(long, required = true)]
    pub cpu: Option<u32>,
    /// Specify the amount of memory of the Instancetype.
    #[arg(long, required = true)]
    pub memory: Option<String>,
    /// Specify the list of vGPUs to passthrough (name:NAME,devicename:DEVICE). Can be provided
    /// multiple times.
    #[arg(long, value_name = "PARAMS")]
    pub gpu: Vec<String>,
    /// Specify the list of HostDevices to passthrough (name:NAME,devicename:DEVICE). Can be
    /// provided multiple times.
    #[arg(long, value_name = "PARAMS")]
    pub hostdevice: Vec<String>,
    /// Specify IOThreadsPolicy to be used. Only valid values are "auto" and "shared".
    #[arg(long)]
    pub iothreadspolicy: Option<String>,
    /// Specify if VirtualMachineInstancetype should be created. By default
    /// VirtualMachineClusterInstancetype is created.
    #[arg(long)]
    pub namespaced: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

/// Validates the flags and builds the manifest. An explicit `namespace` makes the object
/// namespaced, as upstream does.
///
/// # Errors
/// [`Error::Flag`] naming the offending flag.
pub fn plan(
    args: &InstancetypeArgs,
    namespace: Option<String>,
    rng: &mut dyn rand::RngCore,
) -> Result<Manifest> {
    let namespaced = args.namespaced || namespace.is_some();
    let cpu = args
        .cpu
        .ok_or_else(|| Error::flag("cpu", "flag is required"))?;
    if cpu == 0 {
        return Err(Error::flag("cpu", "cpu value must be greater than zero"));
    }
    let memory = args
        .memory
        .as_deref()
        .ok_or_else(|| Error::flag("memory", "flag is required"))?;
    let memory = quantity::canonical(memory).map_err(|reason| Error::flag("memory", reason))?;

    let mut spec = json!({
        "cpu": { "guest": cpu },
        "memory": { "guest": memory },
    });
    if !args.gpu.is_empty() {
        spec["gpus"] = devices("gpu", &args.gpu)?;
    }
    if !args.hostdevice.is_empty() {
        spec["hostDevices"] = devices("hostdevice", &args.hostdevice)?;
    }
    if let Some(policy) = &args.iothreadspolicy {
        if policy != "auto" && policy != "shared" {
            return Err(Error::flag(
                "iothreadspolicy",
                "IOThread must be of value auto or shared",
            ));
        }
        spec["ioThreadsPolicy"] = policy.as_str().into();
    }

    let (kind, prefix) = if namespaced {
        ("VirtualMachineInstancetype", "instancetype")
    } else {
        ("VirtualMachineClusterInstancetype", "clusterinstancetype")
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

/// Parses `--gpu` / `--hostdevice` values (`name:NAME,devicename:DEVICE`).
fn devices(flag: &'static str, values: &[String]) -> Result<Value> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let mut params = Params::parse(flag, value)?;
        let name = params.take_nonempty("name");
        let device = params.take_nonempty("devicename");
        params.finish()?;
        let name = name.ok_or_else(|| Error::flag(flag, "name must be specified"))?;
        let device = device.ok_or_else(|| Error::flag(flag, "deviceName must be specified"))?;
        out.push(json!({ "name": name, "deviceName": device }));
    }
    Ok(Value::Array(out))
}

/// An `instancetype.kubevirt.io/v1beta1` object of `kind` (these kinds have no status).
pub(super) fn object(kind: &str, name: String, namespace: Option<String>, spec: Value) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if let Some(namespace) = namespace {
        metadata.insert("namespace".into(), namespace.into());
    }
    json!({
        "apiVersion": INSTANCETYPE_API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render;
    use rand::SeedableRng;

    fn args(cpu: u32, memory: &str) -> InstancetypeArgs {
        InstancetypeArgs {
            cpu: Some(cpu),
            memory: Some(memory.into()),
            ..Default::default()
        }
    }

    fn build(args: &InstancetypeArgs, namespace: Option<&str>) -> Result<Value> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        plan(args, namespace.map(str::to_owned), &mut rng).map(|m| m.object)
    }

    #[test]
    fn default_is_a_cluster_instancetype_with_a_random_name() {
        let object = build(&args(2, "256Mi"), None).expect("builds");
        assert_eq!(object["apiVersion"], "instancetype.kubevirt.io/v1beta1");
        assert_eq!(object["kind"], "VirtualMachineClusterInstancetype");
        let name = object["metadata"]["name"].as_str().expect("name");
        assert!(
            name.starts_with("clusterinstancetype-") && name.len() == 25,
            "{name}"
        );
        assert_eq!(
            object["spec"],
            json!({"cpu": {"guest": 2}, "memory": {"guest": "256Mi"}})
        );
    }

    #[test]
    fn manual_example_renders_like_upstream() {
        let mut a = args(2, "256Mi");
        a.name = Some("example".into());
        let object = build(&a, None).expect("builds");
        let yaml = render(&object, OutputFormat::Yaml).expect("renders");
        assert_eq!(
            yaml,
            "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterInstancetype\n\
             metadata:\n  name: example\nspec:\n  cpu:\n    guest: 2\n  memory:\n    guest: 256Mi\n"
        );
    }

    #[test]
    fn namespaced_flag_or_explicit_namespace_gives_a_namespaced_kind() {
        let mut a = args(1, "1Gi");
        a.namespaced = true;
        let object = build(&a, None).expect("builds");
        assert_eq!(object["kind"], "VirtualMachineInstancetype");
        assert!(object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("instancetype-")));
        assert!(object["metadata"].get("namespace").is_none());

        let object = build(&args(1, "1Gi"), Some("team")).expect("builds");
        assert_eq!(object["kind"], "VirtualMachineInstancetype");
        assert_eq!(object["metadata"]["namespace"], "team");
    }

    #[test]
    fn gpus_hostdevices_and_iothreads_policy_are_added() {
        let mut a = args(4, "8Gi");
        a.gpu = vec!["name:gpu1,devicename:nvidia.com/A100".into()];
        a.hostdevice = vec!["name:dev1,devicename:intel.com/qat".into()];
        a.iothreadspolicy = Some("shared".into());
        let spec = build(&a, None).expect("builds")["spec"].clone();
        assert_eq!(
            spec["gpus"],
            json!([{"name": "gpu1", "deviceName": "nvidia.com/A100"}])
        );
        assert_eq!(
            spec["hostDevices"],
            json!([{"name": "dev1", "deviceName": "intel.com/qat"}])
        );
        assert_eq!(spec["ioThreadsPolicy"], "shared");
    }

    #[test]
    fn invalid_values_name_their_flag() {
        let err = build(&args(0, "1Gi"), None).expect_err("zero cpu");
        assert_eq!(
            err.to_string(),
            "failed to parse \"--cpu\" flag: cpu value must be greater than zero"
        );
        let err = build(&args(1, "lots"), None).expect_err("bad memory");
        assert!(err
            .to_string()
            .starts_with("failed to parse \"--memory\" flag: quantities must match"));
        let mut a = args(1, "1Gi");
        a.iothreadspolicy = Some("dedicated".into());
        let err = build(&a, None).expect_err("bad policy");
        assert!(err
            .to_string()
            .ends_with("IOThread must be of value auto or shared"));
        let mut a = args(1, "1Gi");
        a.gpu = vec!["name:gpu1".into()];
        let err = build(&a, None).expect_err("no device");
        assert_eq!(
            err.to_string(),
            "failed to parse \"--gpu\" flag: deviceName must be specified"
        );
        let mut a = args(1, "1Gi");
        a.hostdevice = vec!["devicename:x,foo:bar".into()];
        let err = build(&a, None).expect_err("unknown");
        assert!(err.to_string().ends_with("unknown param(s): foo:bar"));
    }
}

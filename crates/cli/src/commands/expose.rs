//! `virtctl expose vm|vmi|vmirs NAME --name SVC --port N [--target-port N] [--type T]
//! [--protocol P] ...` (the manual's §7.4.4): a client-side command, as upstream's, that
//! creates a Service selecting the VM's launcher Pods — by the VM template's labels, the
//! VMI's labels, or the replica set's selector.

use std::io::Write;

use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Map, Value};

use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// `virtctl expose` flags (upstream's names).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ExposeArgs {
    /// `vm|vmi|vmirs NAME`.
    #[arg(required = true, num_args = 2)]
    pub args: Vec<String>,
    /// Name of the service created for the exposure of the VM.
    #[arg(long)]
    pub name: Option<String>,
    /// The port that the service should serve on.
    #[arg(long)]
    pub port: Option<i64>,
    /// Name or number for the port on the VM that the service should direct traffic to.
    #[arg(long = "target-port")]
    pub target_port: Option<String>,
    /// The network protocol for the service to be created.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Type for this service: ClusterIP, NodePort, or LoadBalancer.
    #[arg(long = "type", default_value = "ClusterIP")]
    pub service_type: String,
    /// ClusterIP to be assigned to the service. Leave empty to auto-allocate, or set to 'None' to create a headless service.
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// Additional external IP address (not managed by the cluster) to accept for the service.
    #[arg(long = "external-ip")]
    pub external_ip: Option<String>,
    /// IP to assign to the Load Balancer. If empty, an ephemeral IP will be created and used.
    #[arg(long = "load-balancer-ip")]
    pub load_balancer_ip: Option<String>,
    /// Name of the port. Optional.
    #[arg(long = "port-name")]
    pub port_name: Option<String>,
    /// IP family over which the service will be exposed: IPv4 or IPv6.
    #[arg(long = "ip-family")]
    pub ip_family: Option<String>,
    /// IP family policy: SingleStack, PreferDualStack or RequireDualStack.
    #[arg(long = "ip-family-policy")]
    pub ip_family_policy: Option<String>,
}

/// What is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Vm,
    Vmi,
    ReplicaSet,
}

impl Target {
    fn kind(self) -> &'static str {
        match self {
            Target::Vm => "VirtualMachine",
            Target::Vmi => "VirtualMachineInstance",
            Target::ReplicaSet => "VirtualMachineInstanceReplicaSet",
        }
    }
}

/// A validated `virtctl expose`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposeRequest {
    pub target: Target,
    /// The word the user typed (`vm`, `vmi`, ...), echoed in the success message.
    pub target_word: String,
    pub name: String,
    /// The Service, without its selector (that comes from the cluster).
    pub service: Value,
    pub connection: ConnectionOptions,
}

impl ExposeRequest {
    /// Checks the flags and builds the Service.
    ///
    /// # Errors
    /// [`Error::Invalid`] / [`Error::Flag`] with upstream's wording.
    pub fn from_args(args: ExposeArgs, connection: ConnectionOptions) -> Result<Self> {
        let [kind, name] = args.args.as_slice() else {
            return Err(Error::Invalid(
                "usage: virtctl expose (TYPE NAME) --name SERVICE --port PORT".into(),
            ));
        };
        let target = match kind.to_lowercase().as_str() {
            "vm" | "vms" | "virtualmachine" | "virtualmachines" => Target::Vm,
            "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => Target::Vmi,
            "vmirs"
            | "vmirss"
            | "virtualmachineinstancereplicaset"
            | "virtualmachineinstancereplicasets" => Target::ReplicaSet,
            other => {
                return Err(Error::Invalid(format!(
                    "unsupported resource type: {other}"
                )))
            }
        };
        let service_name = args
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Invalid("service name is missing".into()))?;
        if let Some(port) = args.port.filter(|p| !(1..=65535).contains(p)) {
            return Err(Error::Flag {
                flag: "port",
                reason: format!("{port} is not a valid port number"),
            });
        }
        let protocol = args.protocol.to_uppercase();
        if !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP") {
            return Err(Error::Flag {
                flag: "protocol",
                reason: format!("unsupported protocol {}", args.protocol),
            });
        }
        let service_type = match args.service_type.to_lowercase().as_str() {
            "clusterip" => "ClusterIP",
            "nodeport" => "NodePort",
            "loadbalancer" => "LoadBalancer",
            "externalname" => "ExternalName",
            other => return Err(Error::Invalid(format!("invalid service type {other}"))),
        };
        // Without --port, the ports come from the VM's pod-network interface (`run`).
        let ports: Vec<Value> = args
            .port
            .map(|port| {
                let target_port = match args.target_port.as_deref() {
                    None => json!(port),
                    Some(text) => text
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!(text)),
                };
                let mut entry =
                    json!({"port": port, "protocol": protocol, "targetPort": target_port});
                if let Some(port_name) = &args.port_name {
                    entry["name"] = json!(port_name);
                }
                entry
            })
            .into_iter()
            .collect();
        let mut spec = json!({"type": service_type, "ports": ports});
        if let Some(ip) = args.cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        if let Some(ip) = args.external_ip {
            spec["externalIPs"] = json!([ip]);
        }
        if let Some(ip) = args.load_balancer_ip {
            spec["loadBalancerIP"] = json!(ip);
        }
        if let Some(family) = args.ip_family {
            spec["ipFamilies"] = json!([family]);
        }
        if let Some(policy) = args.ip_family_policy {
            spec["ipFamilyPolicy"] = json!(policy);
        }
        Ok(ExposeRequest {
            target,
            target_word: kind.clone(),
            name: name.clone(),
            service: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": service_name}, "spec": spec}),
            connection,
        })
    }
}

/// The selector of the Service exposing `obj` (upstream's choice per kind).
///
/// # Errors
/// [`Error::Invalid`] when there are no labels to select by.
pub fn selector(
    target: Target,
    target_word: &str,
    name: &str,
    obj: &Value,
) -> Result<Map<String, Value>> {
    let labels = match target {
        Target::Vm => obj["spec"]["template"]["metadata"]["labels"].clone(),
        Target::Vmi => obj["metadata"]["labels"].clone(),
        Target::ReplicaSet => obj["spec"]["selector"]["matchLabels"].clone(),
    };
    let mut labels = labels.as_object().cloned().unwrap_or_default();
    // The node a VMI runs on is no property of the Service's backends.
    labels.remove("kubevirt.io/nodeName");
    if labels.is_empty() {
        return Err(Error::Invalid(format!(
            "missing label information for {target_word}: {name}"
        )));
    }
    Ok(labels)
}

/// The ports listed on the pod-network interfaces of `obj` (the VMI spec of a VMI, the
/// template's of a VM or replica set), as Service ports to the same port numbers: what
/// `virtctl expose` serves when no `--port` is given.
pub fn introspected_ports(target: Target, obj: &Value) -> Vec<Value> {
    let spec = match target {
        Target::Vmi => &obj["spec"],
        Target::Vm | Target::ReplicaSet => &obj["spec"]["template"]["spec"],
    };
    let on_pod_network = |name: &Value| {
        spec["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["name"] == *name && n.get("pod").is_some())
    };
    spec["domain"]["devices"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| on_pod_network(&i["name"]))
        .flat_map(|i| i["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| {
            let number = p["port"].as_i64()?;
            let mut entry = json!({"port": number, "targetPort": number,
                "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            if let Some(name) = p["name"].as_str() {
                entry["name"] = json!(name);
            }
            Some(entry)
        })
        .collect()
}

/// Reads the target, creates the Service and prints upstream's confirmation.
///
/// # Errors
/// [`Error::Config`], [`Error::Refused`] with the server's words, [`Error::Invalid`].
pub fn run(request: &ExposeRequest, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", request.target.kind());
        let api: Api<DynamicObject> = Api::namespaced_with(
            session.client.clone(),
            &session.namespace,
            &ApiResource::from_gvk(&gvk),
        );
        let refused = |e: kube::Error| match e {
            kube::Error::Api(status) => Error::Refused(status.message),
            other => Error::Refused(other.to_string()),
        };
        let obj = api.get(&request.name).await.map_err(refused)?;
        let obj = serde_json::to_value(&obj).map_err(|e| Error::Refused(e.to_string()))?;
        let selector = selector(request.target, &request.target_word, &request.name, &obj)?;
        let mut service = request.service.clone();
        service["metadata"]["namespace"] = json!(session.namespace);
        service["spec"]["selector"] = Value::Object(selector);
        if service["spec"]["ports"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            let found = introspected_ports(request.target, &obj);
            if found.is_empty() {
                return Err(Error::Invalid(
                    "couldn't find port via --port flag or introspection".into(),
                ));
            }
            service["spec"]["ports"] = Value::Array(found);
        }
        let service: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(service).map_err(|e| Error::Invalid(e.to_string()))?;
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(session.client.clone(), &session.namespace);
        services
            .create(&PostParams::default(), &service)
            .await
            .map_err(refused)?;
        let service_name = request.service["metadata"]["name"]
            .as_str()
            .unwrap_or_default();
        writeln!(
            out,
            "Service {service_name} successfully exposed for {} {}",
            request.target_word, request.name
        )
        .map_err(Error::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ExposeArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ExposeArgs,
        }
        let mut argv = vec!["expose"];
        argv.extend_from_slice(extra);
        Wrap::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn a_node_port_service_for_a_vm_has_upstreams_shape() {
        let req = ExposeRequest::from_args(
            args(&[
                "vm",
                "web",
                "--name",
                "web-ssh",
                "--type",
                "NodePort",
                "--port",
                "27017",
                "--target-port",
                "22",
            ]),
            ConnectionOptions::default(),
        )
        .unwrap();
        assert_eq!(req.target, Target::Vm);
        assert_eq!(req.service["spec"]["type"], "NodePort");
        assert_eq!(
            req.service["spec"]["ports"][0],
            json!({"port": 27017, "protocol": "TCP", "targetPort": 22})
        );
    }

    #[test]
    fn without_port_the_pod_interfaces_ports_are_served() {
        let req = ExposeRequest::from_args(
            args(&["vm", "web", "--name", "web"]),
            ConnectionOptions::default(),
        )
        .unwrap();
        assert_eq!(req.service["spec"]["ports"], json!([]));
        let vm = json!({"spec": {"template": {"spec": {
            "domain": {"devices": {"interfaces": [
                {"name": "default", "masquerade": {}, "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]},
                {"name": "sec", "bridge": {}, "ports": [{"port": 9}]}]}},
            "networks": [{"name": "default", "pod": {}}, {"name": "sec", "multus": {"networkName": "br"}}]}}}});
        assert_eq!(
            introspected_ports(Target::Vm, &vm),
            [
                json!({"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}),
                json!({"port": 53, "targetPort": 53, "protocol": "UDP"}),
            ]
        );
        assert_eq!(introspected_ports(Target::Vmi, &vm), Vec::<Value>::new());
    }

    #[test]
    fn missing_name_port_or_bad_type_are_refused() {
        let no_name = ExposeRequest::from_args(
            args(&["vmi", "a", "--port", "80"]),
            ConnectionOptions::default(),
        );
        assert!(no_name
            .unwrap_err()
            .to_string()
            .contains("service name is missing"));
        let bad_port = ExposeRequest::from_args(
            args(&["vmi", "a", "--name", "s", "--port", "70000"]),
            ConnectionOptions::default(),
        );
        assert!(bad_port.unwrap_err().to_string().contains("70000"));
        let bad = ExposeRequest::from_args(
            args(&["pod", "a", "--name", "s", "--port", "1"]),
            ConnectionOptions::default(),
        );
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unsupported resource type"));
    }

    #[test]
    fn selectors_come_from_template_labels_vmi_labels_or_the_replica_set() {
        let vm = json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}});
        assert_eq!(
            selector(Target::Vm, "vm", "web", &vm).unwrap()["app"],
            "web"
        );
        let vmi = json!({"metadata": {"labels": {"app": "x", "kubevirt.io/nodeName": "n1"}}});
        let s = selector(Target::Vmi, "vmi", "x", &vmi).unwrap();
        assert!(s.get("kubevirt.io/nodeName").is_none() && s["app"] == "x");
        let bare = json!({"spec": {"template": {"metadata": {}}}});
        let e = selector(Target::Vm, "vm", "bare", &bare).unwrap_err();
        assert_eq!(e.to_string(), "missing label information for vm: bare");
    }
}

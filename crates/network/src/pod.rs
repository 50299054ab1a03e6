//! A launcher Pod's network namespace: a veth to the node bridge carrying the pod IP, and
//! per pod-network interface the binding's plumbing (in-Pod bridge `k6t-eth0`, tap `tap0`,
//! NAT for masquerade). The result is an [`Attachment`]: what the agent records and the
//! [`PodNetworkPlan`] the launcher needs.
//!
//! Safe to repeat: attaching a Pod again rebuilds its namespace (same address, same MACs),
//! so an agent that restarts mid-way simply runs it again. The plumbing runs as one `ip`
//! script on the host and one inside the namespace ([`batch`]), not a process per step.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{self, InsideSteps, IpScript};
use crate::cidr::Cidr;
use crate::exec;
use crate::ipam::{self, Ipam};
use crate::masquerade;
use crate::node::{stable_hash, NodeNetwork};
use crate::plan::{Binding, DhcpPlan, InterfacePlan, PodNetworkPlan};
use crate::secondary::{self, BridgeNetwork};

/// The pod-side end of the veth.
pub const POD_IF: &str = "eth0";
/// The link-local address the in-Pod bridge of a bridge binding answers DHCP from (upstream's).
const BRIDGE_DHCP_SERVER: Ipv4Addr = Ipv4Addr::new(169, 254, 75, 10);

/// Why a Pod's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No pod address is left.
    #[error("allocating the pod IP")]
    Ipam(#[from] ipam::Error),
    /// A host command failed.
    #[error("plumbing the network of Pod {pod}: {what}")]
    Host {
        pod: String,
        what: String,
        #[source]
        source: exec::Error,
    },
    /// The VMI asks for something the pod network cannot do.
    #[error("interface {interface}: {message}")]
    Unsupported { interface: String, message: String },
}

/// A Pod's network as set up: recorded by the agent, reported as `status.podIP(s)` and in
/// the VMI's `status.interfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The Pod's namespace (`ip netns` name).
    pub netns: String,
    /// The host end of the veth.
    pub host_veth: String,
    /// The pod IP.
    pub pod_ip: Ipv4Addr,
    /// The Pod's IPv6 address (dual stack only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip6: Option<std::net::Ipv6Addr>,
    /// The NICs for the launcher.
    pub plan: PodNetworkPlan,
}

impl Attachment {
    /// The VMI `status.interfaces` entries the pod network knows without a guest agent.
    pub fn vmi_interfaces(&self) -> Vec<Value> {
        self.plan
            .interfaces
            .iter()
            .map(|nic| {
                let mut entry = serde_json::json!({
                    "name": nic.name,
                    "mac": nic.mac,
                    "infoSource": if nic.dhcp.is_some() { "domain" } else { "domain, multus-status" },
                    "queueCount": nic.queues,
                });
                if nic.dhcp.is_some() {
                    // Pod-network NICs: the pod IP is the VM's address, known from the Pod
                    // (the guest's own name for the NIC needs the guest agent).
                    entry["ipAddress"] = Value::from(self.pod_ip.to_string());
                    let mut all = vec![self.pod_ip.to_string()];
                    all.extend(self.pod_ip6.map(|ip| ip.to_string()));
                    entry["ipAddresses"] = serde_json::json!(all);
                }
                entry
            })
            .collect()
    }
}

/// A stable locally administered-looking MAC in QEMU's 52:54:00 range for a NIC without
/// `macAddress` (KubeMacPool assigns real ones to VMs).
pub fn default_mac(vmi_uid: &str, interface: &str) -> String {
    let h = stable_hash(&format!("{vmi_uid}/{interface}"));
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (h >> 16) & 0xff,
        (h >> 8) & 0xff,
        h & 0xff
    )
}

/// The iPXE ROM for NIC `model` on this node (EFI-capable first, as QEMU prefers).
fn boot_rom(model: &str) -> Option<String> {
    ["/usr/share/qemu", "/usr/lib/ipxe/qemu"]
        .iter()
        .flat_map(|dir| {
            [
                format!("{dir}/efi-{model}.rom"),
                format!("{dir}/pxe-{model}.rom"),
            ]
        })
        .find(|p| std::path::Path::new(p).exists())
}

/// What a default MAC derives from: the owning VM's uid (stable across the VM's restarts),
/// else the VMI's.
fn mac_seed(vmi: &Value) -> &str {
    vmi["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|l| l.iter().find(|o| o["kind"] == "VirtualMachine"))
        .and_then(|o| o["uid"].as_str())
        .or_else(|| vmi["metadata"]["uid"].as_str())
        .unwrap_or_default()
}

/// A Pod's plumbing as two scripts: the host's steps and the steps inside the Pod's
/// namespace `netns` (see [`batch`]).
struct Plumbing {
    netns: String,
    /// The user QEMU runs as: it gets the taps (`None`: QEMU is as privileged as we are).
    tap_owner: Option<(String, String)>,
    host: IpScript,
    inside: InsideSteps,
}

/// The VMI interfaces on the pod network, with their binding: (interface, binding).
///
/// # Errors
/// [`Error::Unsupported`] for a binding the pod network of a root node cannot give
/// (`passt`, `slirp`, `macvtap`, `sriov`, or none): the VM would otherwise start without the
/// NIC it asked for.
fn pod_interfaces(vmi: &Value) -> Result<Vec<(Value, Binding)>, Error> {
    let networks = vmi["spec"]["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let on_pod = |name: &str| {
        networks
            .iter()
            .any(|n| n["name"] == name && n.get("pod").is_some())
    };
    vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| on_pod(i["name"].as_str().unwrap_or_default()))
        .filter(|i| i["state"] != "absent")
        .map(|i| {
            let binding = if i.get("masquerade").is_some() {
                Binding::Masquerade
            } else if i.get("bridge").is_some() {
                Binding::Bridge
            } else {
                let asked = ["passt", "slirp", "macvtap", "sriov", "binding"]
                    .into_iter()
                    .find(|b| i.get(*b).is_some())
                    .unwrap_or("no binding");
                return Err(Error::Unsupported {
                    interface: i["name"].as_str().unwrap_or_default().into(),
                    message: format!(
                        "{asked} is not supported on the pod network: use masquerade or bridge"
                    ),
                });
            };
            Ok((i.clone(), binding))
        })
        .collect()
}

fn nic_plan(
    node: &NodeNetwork,
    vmi: &Value,
    iface: &Value,
    binding: Binding,
    dhcp: DhcpPlan,
) -> InterfacePlan {
    let name = iface["name"].as_str().unwrap_or_default().to_string();
    let uid = mac_seed(vmi);
    let model = iface["model"].as_str().unwrap_or("virtio").to_string();
    InterfacePlan {
        mac: iface["macAddress"]
            .as_str()
            .map(str::to_lowercase)
            .unwrap_or_else(|| default_mac(uid, &name)),
        queues: queue_count(vmi, &model),
        name,
        binding,
        tap: "tap0".into(),
        model,
        pci_address: iface["pciAddress"].as_str().map(str::to_string),
        boot_order: iface["bootOrder"]
            .as_u64()
            .and_then(|b| u32::try_from(b).ok()),
        rom: iface["bootOrder"]
            .as_u64()
            .and_then(|_| boot_rom(iface["model"].as_str().unwrap_or("virtio"))),
        mtu: node.config.mtu,
        vhost: std::path::Path::new("/dev/vhost-net").exists(),
        dhcp: Some(dhcp),
    }
}

/// Creates the Pod's namespace, veth, address and binding plumbing (rebuilding what an
/// earlier attempt left).
///
/// # Errors
/// [`Error`] naming the step; a half-made namespace is left for [`detach`].
pub async fn attach(
    node: &NodeNetwork,
    pod_uid: &str,
    vmi: &Value,
    secondary: &BTreeMap<String, BridgeNetwork>,
    qemu_owner: Option<(u32, u32)>,
) -> Result<Attachment, Error> {
    let netns = node.netns_name(pod_uid);
    let pod = format!(
        "{}/{}",
        vmi["metadata"]["namespace"].as_str().unwrap_or_default(),
        vmi["metadata"]["name"].as_str().unwrap_or_default()
    );
    let ipam = Ipam::new(node.state_dir.join("ipam"), node.pod_cidr);
    let pod_ip = ipam.allocate(pod_uid)?;
    let host_veth = host_veth_name(pod_uid);
    let pod_cidr = Cidr::new(pod_ip, node.pod_cidr.len);
    let pod_ip6 = node
        .pod_prefix_v6
        .map(|prefix| crate::node::v6_host(prefix, u16::from(pod_ip.octets()[3])));
    let mtu = node.config.mtu.to_string();

    let ifaces = pod_interfaces(vmi)?;
    if ifaces.len() > 1 {
        return Err(Error::Unsupported {
            interface: ifaces[1].0["name"].as_str().unwrap_or_default().into(),
            message: "only one interface may use the pod network".into(),
        });
    }
    let secondaries = secondary_interfaces(vmi, secondary)?;
    let host_error = |what: String| {
        let pod = pod.clone();
        move |source| Error::Host { pod, what, source }
    };
    // Attach runs before the Pod's launcher exists; a namespace found now is what an earlier
    // attempt left (the agent restarted, or a later step failed), so it is rebuilt whole.
    if netns_exists(&netns) {
        remove_links(node, pod_uid).await;
    }
    let mut work = Plumbing {
        netns: netns.clone(),
        tap_owner: qemu_owner.map(|(uid, gid)| (uid.to_string(), gid.to_string())),
        host: IpScript::default(),
        inside: InsideSteps::default(),
    };
    work.host.push(&["netns", "add", &netns]);
    work.host.push(&[
        "link", "add", &host_veth, "mtu", &mtu, "type", "veth", "peer", "name", POD_IF, "netns",
        &netns,
    ]);
    work.host
        .push(&["link", "set", &host_veth, "master", &node.bridge, "up"]);
    work.inside.ip.push(&["link", "set", "lo", "up"]);

    let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    let subdomain = vmi["spec"]["subdomain"].as_str();
    let hostname = vmi["spec"]["hostname"]
        .as_str()
        .or_else(|| vmi["metadata"]["name"].as_str())
        .map(str::to_string);
    let dns = vec![node.config.cluster_dns];
    let search = node.config.search_domains(namespace, subdomain);
    let mut plan = PodNetworkPlan::default();
    match ifaces.first() {
        None => {
            // No NIC on the pod network: the Pod still owns its IP (Services may point at
            // it), like a Pod whose VM ignores it.
            pod_address(&mut work, pod_cidr, node.gateway);
            pod_address_v6(&mut work, node, pod_ip6);
        }
        Some((iface, Binding::Masquerade)) => {
            pod_address(&mut work, pod_cidr, node.gateway);
            pod_address_v6(&mut work, node, pod_ip6);
            let k6t = format!("k6t-{POD_IF}");
            let at = masquerade_addresses(vmi, iface)?;
            let gateway = Cidr::new(at.gateway, at.network.len);
            in_pod_bridge(&mut work, &k6t, &gateway.to_string(), &mtu);
            tap(&mut work, "tap0", &k6t, &mtu, vmi, iface);
            work.inside.sysctls.push("/proc/sys/net/ipv4/ip_forward");
            let ports = ports(iface)?;
            work.inside
                .nft
                .push(masquerade::ruleset(POD_IF, pod_ip, &ports, &at));
            if let Some(ip6) = pod_ip6 {
                // Dual stack as upstream: the guest sets its address (default
                // fd10:0:2::2/120) itself (cloud-init), the Pod routes its IPv6 address to it.
                let gateway6 = format!("{}/{}", at.gateway6, at.prefix6);
                work.inside
                    .ip
                    .push(&["addr", "replace", &gateway6, "dev", &k6t, "nodad"]);
                work.inside
                    .sysctls
                    .push("/proc/sys/net/ipv6/conf/all/forwarding");
                work.inside
                    .nft
                    .push(masquerade::ruleset_v6(POD_IF, ip6, &ports, &at));
            }
            let dhcp = DhcpPlan {
                server_interface: k6t,
                server_ip: at.gateway,
                address: at.guest,
                prefix: at.network.len,
                gateway: Some(at.gateway),
                dns,
                search,
                hostname,
                mtu: node.config.mtu,
            };
            plan.interfaces
                .push(nic_plan(node, vmi, iface, Binding::Masquerade, dhcp));
        }
        Some((iface, Binding::Bridge)) => {
            // The guest owns the pod IP: eth0 keeps no address and joins the in-Pod bridge.
            let k6t = format!("k6t-{POD_IF}");
            let server = Cidr::new(BRIDGE_DHCP_SERVER, 32);
            in_pod_bridge(&mut work, &k6t, &server.to_string(), &mtu);
            work.inside
                .ip
                .push(&["link", "set", POD_IF, "master", &k6t, "mtu", &mtu, "up"]);
            tap(&mut work, "tap0", &k6t, &mtu, vmi, iface);
            let dhcp = DhcpPlan {
                server_interface: k6t,
                server_ip: BRIDGE_DHCP_SERVER,
                address: pod_ip,
                prefix: node.pod_cidr.len,
                gateway: Some(node.gateway),
                dns,
                search,
                hostname,
                mtu: node.config.mtu,
            };
            plan.interfaces
                .push(nic_plan(node, vmi, iface, Binding::Bridge, dhcp));
        }
    }
    let mut spoof = Vec::new();
    let mut vlans = Vec::new();
    for (index, (iface, net)) in secondaries.into_iter().enumerate() {
        let name = iface["name"].as_str().unwrap_or_default().to_string();
        let host = secondary::host_veth(pod_uid, &name);
        let joined = secondary::ensure_host_bridge(&net, node.config.mtu)
            .await
            .map_err(host_error(format!("host bridge {}", net.bridge)))?;
        let nic = attach_secondary(
            node,
            &mut work,
            vmi,
            &iface,
            &net,
            &host,
            &joined,
            index + 1,
        );
        if net.macspoofchk {
            spoof.push((host.clone(), nic.mac.clone()));
        }
        vlans.push((net, joined, host));
        plan.interfaces.push(nic);
    }
    batch::run_host(work.host)
        .await
        .map_err(host_error("the host side of the Pod's network".into()))?;
    for (net, joined, host) in &vlans {
        secondary::set_vlan(net, joined, host)
            .await
            .map_err(host_error(format!("VLAN {:?} on {host}", net.vlan)))?;
    }
    batch::run_inside(&netns, work.inside)
        .await
        .map_err(host_error("the Pod's side of its network".into()))?;
    if !spoof.is_empty() {
        let table = secondary::spoof_table(node, pod_uid);
        exec::nft(None, &secondary::spoof_ruleset(&table, &spoof))
            .await
            .map_err(host_error("loading the MAC spoof check".into()))?;
    }
    if qemu_owner.is_some() && !open_to_others(std::path::Path::new("/dev/vhost-net")) {
        // An unprivileged QEMU cannot open a root-only vhost-net: virtio in QEMU instead.
        for nic in &mut plan.interfaces {
            nic.vhost = false;
        }
    }
    // QEMU places NICs in argv order, and the guest names them in that order: keep the
    // order of spec.domain.devices.interfaces.
    let order: Vec<String> = vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect();
    plan.interfaces.sort_by_key(|nic| {
        order
            .iter()
            .position(|n| *n == nic.name)
            .unwrap_or(usize::MAX)
    });
    Ok(Attachment {
        netns,
        host_veth,
        pod_ip,
        pod_ip6,
        plan,
    })
}

/// The VMI's bridge-bound interfaces on Multus networks, with their network, in order.
fn secondary_interfaces(
    vmi: &Value,
    secondary: &BTreeMap<String, BridgeNetwork>,
) -> Result<Vec<(Value, BridgeNetwork)>, Error> {
    let networks = vmi["spec"]["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for iface in vmi["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = iface["name"].as_str().unwrap_or_default();
        let Some(network) = networks.iter().find(|n| n["name"] == name) else {
            continue;
        };
        if network.get("multus").is_none() || iface["state"] == "absent" {
            continue;
        }
        if iface.get("bridge").is_none() {
            return Err(Error::Unsupported {
                interface: name.into(),
                message: "only the bridge binding is supported on secondary networks".into(),
            });
        }
        let net = secondary
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Unsupported {
                interface: name.into(),
                message: "its NetworkAttachmentDefinition was not resolved".into(),
            })?;
        out.push((iface.clone(), net));
    }
    Ok(out)
}

/// Adds secondary NIC `n` (bridge binding on a Linux-bridge network): a veth from the host
/// bridge `joined` (host end `host`) to `net<n>`, an in-Pod bridge and tap `tap<n>`.
#[allow(clippy::too_many_arguments)]
fn attach_secondary(
    node: &NodeNetwork,
    work: &mut Plumbing,
    vmi: &Value,
    iface: &Value,
    net: &BridgeNetwork,
    host: &str,
    joined: &str,
    n: usize,
) -> InterfacePlan {
    let name = iface["name"].as_str().unwrap_or_default().to_string();
    let pod_if = format!("net{n}");
    let mtu = net.mtu.unwrap_or(node.config.mtu).to_string();
    work.host.push(&[
        "link",
        "add",
        host,
        "mtu",
        &mtu,
        "type",
        "veth",
        "peer",
        "name",
        &pod_if,
        "netns",
        &work.netns.clone(),
    ]);
    work.host
        .push(&["link", "set", host, "master", joined, "up"]);
    let k6t = format!("k6t-{pod_if}");
    work.inside
        .ip
        .push(&["link", "add", &k6t, "type", "bridge"]);
    work.inside
        .ip
        .push(&["link", "set", &k6t, "mtu", &mtu, "up"]);
    work.inside
        .ip
        .push(&["link", "set", &pod_if, "master", &k6t, "mtu", &mtu, "up"]);
    let tap_name = format!("tap{n}");
    let model = iface["model"].as_str().unwrap_or("virtio").to_string();
    let queues = queue_count(vmi, &model);
    add_tap(work, &tap_name, queues > 1);
    work.inside
        .ip
        .push(&["link", "set", &tap_name, "master", &k6t, "mtu", &mtu, "up"]);
    let uid = mac_seed(vmi);
    InterfacePlan {
        mac: iface["macAddress"]
            .as_str()
            .map(str::to_lowercase)
            .unwrap_or_else(|| default_mac(uid, &name)),
        name,
        binding: Binding::Bridge,
        tap: tap_name,
        model,
        queues,
        pci_address: iface["pciAddress"].as_str().map(str::to_string),
        boot_order: iface["bootOrder"]
            .as_u64()
            .and_then(|b| u32::try_from(b).ok()),
        rom: iface["bootOrder"]
            .as_u64()
            .and_then(|_| boot_rom(iface["model"].as_str().unwrap_or("virtio"))),
        mtu: net.mtu.unwrap_or(node.config.mtu),
        vhost: std::path::Path::new("/dev/vhost-net").exists(),
        dhcp: None,
    }
}

fn pod_address(work: &mut Plumbing, address: Cidr, gateway: Ipv4Addr) {
    let (address, gateway) = (address.to_string(), gateway.to_string());
    let ip = &mut work.inside.ip;
    ip.push(&["addr", "replace", &address, "dev", POD_IF]);
    ip.push(&["link", "set", POD_IF, "up"]);
    ip.push(&[
        "route", "replace", "default", "via", &gateway, "dev", POD_IF,
    ]);
}

fn pod_address_v6(work: &mut Plumbing, node: &NodeNetwork, ip: Option<std::net::Ipv6Addr>) {
    let (Some(ip), Some(prefix)) = (ip, node.pod_prefix_v6) else {
        return;
    };
    let gateway = crate::node::v6_host(prefix, 1).to_string();
    let script = &mut work.inside.ip;
    script.push(&[
        "addr",
        "replace",
        &format!("{ip}/64"),
        "dev",
        POD_IF,
        "nodad",
    ]);
    script.push(&[
        "route", "replace", "default", "via", &gateway, "dev", POD_IF,
    ]);
}

/// The queues of a NIC of `model`: one per vCPU with `networkInterfaceMultiqueue` on a
/// virtio NIC (as upstream), else one.
fn queue_count(vmi: &Value, model: &str) -> u32 {
    let multiqueue = vmi["spec"]["domain"]["devices"]["networkInterfaceMultiqueue"] == true;
    if !multiqueue || model != "virtio" {
        return 1;
    }
    let vcpus = ["sockets", "cores", "threads"]
        .iter()
        .map(|k| vmi["spec"]["domain"]["cpu"][k].as_u64().unwrap_or(1).max(1))
        .product::<u64>();
    u32::try_from(vcpus).unwrap_or(1)
}

/// Creates tap `name`, owned by QEMU's user when QEMU is unprivileged (a tap's owner may
/// attach to it without CAP_NET_ADMIN).
fn add_tap(work: &mut Plumbing, name: &str, multiqueue: bool) {
    let mut args = vec!["tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"];
    if multiqueue {
        args.push("multi_queue");
    }
    let owner = work.tap_owner.clone();
    if let Some((uid, gid)) = &owner {
        args.extend(["user", uid.as_str(), "group", gid.as_str()]);
    }
    work.inside.ip.push(&args);
}

fn in_pod_bridge(work: &mut Plumbing, name: &str, address: &str, mtu: &str) {
    let ip = &mut work.inside.ip;
    ip.push(&["link", "add", name, "type", "bridge"]);
    ip.push(&["addr", "replace", address, "dev", name]);
    ip.push(&["link", "set", name, "mtu", mtu, "up"]);
}

/// The pod-network tap of `iface`, multi-queue when the NIC gets several queues.
fn tap(work: &mut Plumbing, name: &str, bridge: &str, mtu: &str, vmi: &Value, iface: &Value) {
    let model = iface["model"].as_str().unwrap_or("virtio");
    add_tap(work, name, queue_count(vmi, model) > 1);
    work.inside
        .ip
        .push(&["link", "set", name, "master", bridge, "mtu", mtu, "up"]);
}

/// The masquerade addresses of `iface`'s pod network (its `vmNetworkCIDR`s).
fn masquerade_addresses(vmi: &Value, iface: &Value) -> Result<masquerade::Addresses, Error> {
    let network = vmi["spec"]["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == iface["name"])
        .cloned()
        .unwrap_or_default();
    masquerade::Addresses::of_network(&network).map_err(|message| Error::Unsupported {
        interface: iface["name"].as_str().unwrap_or_default().into(),
        message,
    })
}

/// The masquerade allow-list. An entry that cannot be used fails the attachment: dropping it
/// could empty the list, and an empty list opens every port.
fn ports(iface: &Value) -> Result<Vec<masquerade::Port>, Error> {
    iface["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            let port = p["port"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            match (port, protocol) {
                (Some(port), "TCP" | "UDP") => Ok(masquerade::Port {
                    protocol: protocol.to_lowercase(),
                    port,
                }),
                _ => Err(Error::Unsupported {
                    interface: iface["name"].as_str().unwrap_or_default().into(),
                    message: format!("port {p} cannot be forwarded (a port 1-65535, TCP or UDP)"),
                }),
            }
        })
        .collect()
}

/// Removes the Pod's namespace and veth and frees its address. Safe to repeat.
pub async fn detach(node: &NodeNetwork, pod_uid: &str) {
    remove_links(node, pod_uid).await;
    // The spoof table is the node's, not the namespace's.
    let _ = exec::run(
        None,
        "nft",
        &[
            "delete",
            "table",
            "bridge",
            &secondary::spoof_table(node, pod_uid),
        ],
    )
    .await;
    Ipam::new(node.state_dir.join("ipam"), node.pod_cidr).release(pod_uid);
}

fn open_to_others(device: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(device).is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

/// Whether the namespace exists (`ip netns add` bind-mounts it under `/run/netns`).
fn netns_exists(netns: &str) -> bool {
    std::path::Path::new("/run/netns").join(netns).exists()
}

/// Deletes the Pod's host veth and namespace, whatever exists of them (secondary veths and
/// everything inside die with the namespace).
async fn remove_links(node: &NodeNetwork, pod_uid: &str) {
    let mut script = IpScript::default();
    script.push(&["link", "del", &host_veth_name(pod_uid)]);
    script.push(&["netns", "del", &node.netns_name(pod_uid)]);
    // Missing pieces are fine: this also cleans up after a half-made attach.
    let _ = batch::run_host_forced(script).await;
}

fn host_veth_name(pod_uid: &str) -> String {
    format!("oxv{:08x}", stable_hash(pod_uid) & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_macs_are_stable_per_vmi_and_interface() {
        let a = default_mac("uid-1", "default");
        assert_eq!(a, default_mac("uid-1", "default"));
        assert_ne!(a, default_mac("uid-2", "default"));
        assert!(a.starts_with("52:54:00:") && a.len() == 17, "{a}");
    }

    #[test]
    fn only_pod_network_interfaces_with_a_binding_are_plumbed() {
        let vmi = serde_json::json!({"spec": {
            "domain": {"devices": {"interfaces": [
                {"name": "default", "masquerade": {}},
                {"name": "sec", "bridge": {}}]}},
            "networks": [{"name": "default", "pod": {}},
                         {"name": "sec", "multus": {"networkName": "br"}}]}});
        let found = pod_interfaces(&vmi).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, Binding::Masquerade);
    }

    #[test]
    fn a_binding_the_pod_network_cannot_give_fails_instead_of_dropping_the_nic() {
        let vmi = serde_json::json!({"spec": {
            "domain": {"devices": {"interfaces": [{"name": "default", "passt": {}}]}},
            "networks": [{"name": "default", "pod": {}}]}});
        let e = pod_interfaces(&vmi).unwrap_err().to_string();
        assert_eq!(
            e,
            "interface default: passt is not supported on the pod network: use masquerade or bridge"
        );
    }

    #[test]
    fn multiqueue_gives_virtio_nics_a_queue_per_vcpu() {
        let vmi = serde_json::json!({"spec": {"domain": {
            "cpu": {"sockets": 2, "cores": 2},
            "devices": {"networkInterfaceMultiqueue": true}}}});
        assert_eq!(queue_count(&vmi, "virtio"), 4);
        assert_eq!(queue_count(&vmi, "e1000e"), 1);
        let single = serde_json::json!({"spec": {"domain": {"cpu": {"cores": 4}}}});
        assert_eq!(queue_count(&single, "virtio"), 1);
    }

    #[test]
    fn an_unusable_port_fails_rather_than_opening_every_port() {
        let ok = serde_json::json!({"name": "default", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]});
        assert_eq!(ports(&ok).unwrap().len(), 2);
        for bad in [
            serde_json::json!({"port": 70000}),
            serde_json::json!({"port": 0}),
            serde_json::json!({"port": -1}),
            serde_json::json!({"port": "80"}),
            serde_json::json!({"port": 80, "protocol": "SCTP"}),
        ] {
            let iface = serde_json::json!({"name": "default", "ports": [bad]});
            assert!(ports(&iface).is_err(), "{iface}");
        }
    }
}

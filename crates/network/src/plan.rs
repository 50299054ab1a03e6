//! The contract between the node agent and the launcher for NICs: the `network` field of
//! `launch.json`. The agent plumbs the Pod's namespace (taps, bridges, NAT) and writes this
//! plan; the launcher turns it into QEMU netdevs and runs the DHCP server it describes.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Every NIC of one VM, in the order of `spec.domain.devices.interfaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNetworkPlan {
    /// The NICs.
    pub interfaces: Vec<InterfacePlan>,
    /// The pod-network NIC through `passt` (user-mode networking), when this node has no
    /// pod network (the agent is not root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_mode: Option<UserModePlan>,
}

/// A NIC whose frames go to a `passt` process the launcher starts: the guest gets the
/// host's address by passt's DHCP and reaches out through the host's own sockets; inbound,
/// only the forwarded ports reach it (on the host's addresses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserModePlan {
    /// The VMI interface (and network) name.
    pub name: String,
    /// The guest MAC.
    pub mac: String,
    /// The NIC model (`virtio`, `e1000e`, ...).
    pub model: String,
    /// Host TCP ports forwarded to the same guest ports (the interface's `ports`).
    #[serde(default)]
    pub tcp_ports: Vec<u16>,
    /// Host UDP ports forwarded likewise.
    #[serde(default)]
    pub udp_ports: Vec<u16>,
    /// The VMI's other interfaces (secondary networks), which user-mode networking cannot
    /// connect: the VMI's condition names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

/// How the NIC is bound (upstream's binding names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Binding {
    /// NAT behind the pod IP; the guest gets the second address of `vmNetworkCIDR`
    /// (10.0.2.2 by default) by DHCP.
    Masquerade,
    /// The guest owns the network's address (the pod IP on the pod network) through a bridge.
    Bridge,
}

/// One NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfacePlan {
    /// The VMI interface (and network) name.
    pub name: String,
    /// The binding.
    pub binding: Binding,
    /// The tap device inside the Pod's namespace that QEMU opens.
    pub tap: String,
    /// The guest MAC.
    pub mac: String,
    /// `virtio` or `e1000e` (QEMU device `virtio-net-pci` / `e1000e`).
    pub model: String,
    /// Queues (`networkInterfaceMultiqueue`: one per vCPU), 1 otherwise.
    pub queues: u32,
    /// Guest PCI address (`0000:07:00.0`), when the VMI fixes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// Boot order, when the VMI gives one (PXE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_order: Option<u32>,
    /// The NIC's iPXE option ROM on this node, for PXE boots (Debian ships them in
    /// `ipxe-qemu` outside QEMU's own data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rom: Option<String>,
    /// The MTU of the link.
    pub mtu: u32,
    /// Whether the node offers vhost-net (`/dev/vhost-net`) for virtio NICs.
    #[serde(default)]
    pub vhost: bool,
    /// What the launcher's DHCP server hands this NIC, if it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpPlan>,
}

/// One DHCP lease the launcher serves on `server_interface` inside the Pod's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpPlan {
    /// The in-Pod interface (a bridge) the server listens on.
    pub server_interface: String,
    /// The server's own address (DHCP option 54).
    pub server_ip: Ipv4Addr,
    /// The guest's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// DNS search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// The guest's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The MTU (option 26).
    pub mtu: u32,
}

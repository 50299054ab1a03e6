//! oxivirt's networking (ARCHITECTURE §7, docs/design/0006-network.md).
//!
//! **Owns**: the node's pod prefix, bridge and NAT table ([`node`]) and, on dual stack,
//! its IPv6 forwarding ([`forwarding`]); each launcher Pod's
//! network namespace, veth, address and binding plumbing ([`pod`], [`masquerade`]); the
//! `launch.json` network contract ([`plan`]); the launcher's DHCP server ([`dhcp`]); Service
//! addresses, Endpoints/EndpointSlices and their nftables rules ([`services`]); the cluster
//! DNS ([`dns`]).
//!
//! **Must not**: start VMs or write VMI phases (the node agent and launcher do), or touch
//! host objects it did not name (`oxb*`, `oxv*`, `oxi-*`).
//!
//! Host state is changed through `ip` and `nft` ([`exec`]); without root or those tools the
//! pod network is unavailable and VMs run without NICs.

pub mod batch;
pub mod bridge_marker;
pub mod cidr;
pub mod config;
pub mod dhcp;
pub mod dns;
pub mod exec;
pub mod forwarding;
pub mod ipam;
pub mod macpool;
pub mod masquerade;
pub mod nmstate;
pub mod node;
pub mod plan;
pub mod pod;
pub mod routes;
pub mod secondary;
pub mod services;

pub use cidr::Cidr;
pub use config::NetworkConfig;
pub use node::NodeNetwork;
pub use plan::{Binding, DhcpPlan, InterfacePlan, PodNetworkPlan, UserModePlan};
pub use pod::Attachment;

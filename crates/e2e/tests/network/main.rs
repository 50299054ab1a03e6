//! End-to-end tests: networking (issue 6) — the pod network with the masquerade binding,
//! Services through `virtctl expose`, the cluster DNS — with real QEMU, the test guest, real
//! nftables, curl and ssh; dual stack; and the benchmarks (`bench`, ignored). Skipped with a
//! printed reason without root or the tools.

mod support;

mod bench;
mod cgroup_twin;
mod dns;
mod dual_stack;
mod macpool;
mod multinode;
mod nic_hotplug;
mod nmstate;
mod pod_network;
mod pxe;
mod resource_name;
mod secondary;
mod services;
mod user_mode;

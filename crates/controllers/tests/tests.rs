//! Controllers against the real in-process API server (HTTPS, kube-rs client), as the
//! node agent and virt-controller roles will run.

mod harness;
mod instancetype;
mod nic_hotplug;
mod scheduler;
mod vm;
mod vmi;

//! End-to-end tests of the VM runtime (issue 4) with real components: the `oxivirt server`
//! (API, controllers, scheduler, node agent), real launchers and QEMU under TCG, the test
//! guest as a containerDisk in a real `docker-registry`, the stock `kubectl` and our `virtctl`.
//!
//! Guests are CPU-heavy under TCG on two cores: each test boots as few guests as its claim
//! needs, and timeouts are generous (a guest reaches its banner in ~4 s when the machine is
//! idle, several times that under a parallel build).

mod common;
mod config_disks;
mod emulation;
mod guest_agent;
mod lifecycle;
mod restart;
mod scheduling;
mod secure_boot;
mod strategies;
mod tpm;
mod tpm_persistent;

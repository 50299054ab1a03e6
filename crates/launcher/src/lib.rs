//! The launcher: one process per VM (the virt-launcher role, without libvirt).
//!
//! **Owns:** turning a [`LaunchSpec`] (`launch.json`, written by the node agent) into a
//! QEMU command line — a pure, golden-tested function, [`qemu_config`] — preparing the
//! files it needs (containerDisk overlays, empty disks, cloud-init seeds, UEFI NVRAM),
//! running QEMU paused, resuming it over QMP, and supervising it: `status.json`,
//! `control.sock`, the serial console log and relay, and the final verdict when QEMU goes
//! away (guest shutdown, crash, panic, kill).
//!
//! **Must not:** parse Kubernetes HTTP or call the API: everything it knows arrives in
//! `launch.json`, and everything it reports leaves through the run directory
//! (docs/design/0004-vm-runtime-contracts.md).
//!
//! Run directory (see [`RunPaths`]): the node agent writes `launch.json`; the launcher
//! writes `launcher.pid`, `status.json` (atomically), `console.log` (bounded), serves
//! `control.sock` and `console.sock` (a relay of the serial port), makes `disks/`
//! (overlays, empty disks, seeds; discarded on stop) and `nvram.fd`; QEMU listens on
//! `qmp.sock`, `qga.sock`, `vnc.sock` and `serial.sock` (the launcher's only). A
//! `kernelBoot.container` image comes as `launch.json` `disks.kernelBoot` (its unpacked
//! root); without it, `kernelPath`/`initrdPath` are host paths.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // What `oxivirt launcher --run-dir DIR` does:
//! oxivirt_launcher::run(std::path::Path::new("/var/lib/oxivirt/pods/ns_pod_uid")).await
//! # }
//! ```
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod args;
pub mod config_disks;
pub mod console;
pub mod control;
mod error;
pub mod guest_ops;
pub mod hotplug;
pub mod iso9660;
mod memory_dump;
mod network;
pub mod nic_hotplug;
mod prepare;
pub mod qcow2;
mod qemu_process;
pub mod quantity;
pub mod seed;
pub mod spec;
pub mod status;
mod supervisor;
mod tpm;
mod user_net;
pub mod vmi;

pub use args::{qemu_config, FileToCreate, QemuCommand};
pub use error::{Error, Result};
pub use spec::{Accel, LaunchSpec, RunPaths};
pub use supervisor::run;

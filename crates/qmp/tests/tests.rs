//! The crate's one integration-test binary: the QMP client against the fake server, the
//! guest-agent client against the fake agent (and the real `qemu-ga` when installed), and
//! real QEMU under TCG when `qemu-system-x86_64` is installed.

mod agent;
mod client;
mod qemu;
mod support;

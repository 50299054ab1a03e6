//! End-to-end tests: storage and CDI (issue 5) against a real `oxivirt server`, the stock
//! kubectl, real `qemu-img`, a real HTTP server (this binary's, in `common`), Debian's
//! `docker-registry` and, for boots, real QEMU with the project's test guest.

mod bench;
mod block;
mod clone;
mod clone_auth;
mod common;
mod hostile;
mod hotplug;
mod import;
mod memory_dump;
mod provisioner;
mod upload;
mod vm;

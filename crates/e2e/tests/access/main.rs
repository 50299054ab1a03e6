//! End-to-end tests: consoles, SSH, RBAC (issue 7).
//!
//! RBAC tests need only the API server. Stream tests share one server with one test guest
//! booted under TCG (see `docs/test-guest.md`) and drive it with real clients: `virtctl` on
//! a pseudo-terminal, the system `ssh`/`scp`, and a VNC client library (`vncdotool`).

mod bench;
mod common;
mod console;
mod first_boot_keys;
mod guest_interfaces;
mod port_forward;
mod pty;
mod rbac;
mod ssh;
mod vnc;
mod vnc_token;

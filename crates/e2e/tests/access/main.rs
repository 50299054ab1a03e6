//! End-to-end tests: consoles, SSH, RBAC (issue 7).
//!
//! RBAC tests need only the API server. Stream tests boot the test guest under TCG (see
//! `docs/test-guest.md`) and drive it with real clients: `virtctl` in a pseudo-terminal,
//! the system `ssh`/`scp`, and a VNC client library.

mod common;
mod rbac;

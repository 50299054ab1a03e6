//! End-to-end test harness for oxivirt: starts a real `oxivirt server` on a free port in a
//! temporary data directory and drives it with the stock `kubectl` (and, in the tests, kube-rs).
//!
//! Boundary: this crate only starts processes and inspects what clients see. It never links
//! the server's crates, so every assertion is made through the public Kubernetes API.
//! The tests themselves live in `tests/` (one binary, `tests/tests.rs`).

mod binary;
mod guest;
mod json;
mod kubectl;
mod manifest;
mod server;
mod shared;

pub use binary::{bench_bin, kubectl_bin, oxivirt_bin, repo_root, shared_dir, virtctl_bin};
pub use guest::{
    guest_registry, kill_processes_under, pids_matching, qemu_pids, test_guest_dir, GuestRegistry,
};
pub use json::{assert_subset, subset_difference, without_nulls};
pub use kubectl::{Background, Kubectl, Run};
pub use manifest::{
    cluster_scoped_kinds, describe, items, namespace_of, namespaces, placed_in, stream,
    yaml_documents,
};
pub use server::{unprivileged_qemu, Server, READY_TIMEOUT};
pub use shared::SharedServer;

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

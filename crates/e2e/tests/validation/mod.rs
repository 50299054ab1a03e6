//! Every admission rule of `crates/webhooks/RULES.md` that has a message, one negative test
//! each, through `kubectl`: the request is refused and kubectl's stderr shows the message.
//! `kubevirt` holds the KubeVirt kinds' rules, `cluster` those of CDI, HyperConverged,
//! StorageClass and SR-IOV.
//!
//! The tests share one server and use a namespace each; cluster-scoped objects get names of
//! their own. Only `hyperconverged_cert_config_*_manuals_exact_message` changes the
//! HyperConverged singleton, so the other HyperConverged tests send complete values.
//! Manifests go through `kubectl create --validate=false`: the rules under test are the
//! server's admission, and skipping kubectl's OpenAPI download keeps each test fast.

mod cluster;
mod kubevirt;

use oxivirt_e2e::{Kubectl, Run, Server, SharedServer};
use std::sync::Arc;

pub(super) static SERVER: SharedServer = SharedServer::new();

/// A kubectl for the shared server and a fresh namespace `name`.
pub(super) fn setup(name: &str) -> (Arc<Server>, Kubectl) {
    let server = SERVER.get();
    let k = server.kubectl();
    create(
        &k,
        "default",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"),
    )
    .ok();
    (server, k)
}

/// Runs `kubectl create` of `manifest` in `namespace` (status, stdout and stderr).
pub(super) fn create(k: &Kubectl, namespace: &str, manifest: &str) -> Run {
    k.run_stdin(
        &["create", "--validate=false", "-n", namespace, "-f", "-"],
        manifest,
    )
}

/// Asserts that creating `manifest` in `namespace` is refused with `message` on stderr.
pub(super) fn refused(k: &Kubectl, namespace: &str, manifest: &str, message: &str) {
    let err = create(k, namespace, manifest).fails();
    assert!(
        err.contains(message),
        "expected {message:?} in kubectl's stderr:\n{err}"
    );
}

/// Asserts that `kubectl args…` fails with `message` on stderr.
pub(super) fn refused_command(k: &Kubectl, args: &[&str], message: &str) {
    let err = k.fails(args);
    assert!(
        err.contains(message),
        "expected {message:?} in kubectl's stderr:\n{err}"
    );
}

/// A VMI whose `spec` is `spec` (YAML flow or block text indented by two spaces).
pub(super) fn vmi(name: &str, spec: &str) -> String {
    format!("apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {{name: {name}}}\nspec:\n{spec}\n")
}

/// A VM whose `spec` is `spec`.
pub(super) fn vm(name: &str, spec: &str) -> String {
    format!("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {{name: {name}}}\nspec:\n{spec}\n")
}

pub(super) const SMALL_DOMAIN: &str = "  domain: {devices: {}, memory: {guest: 64Mi}}";

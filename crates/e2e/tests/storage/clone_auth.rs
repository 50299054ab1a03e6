//! Cross-namespace clone authorization: the creator of a DataVolume (or of a VM whose
//! `dataVolumeTemplates` clone) must be allowed `create` on `datavolumes/source` in the
//! source namespace, as CDI's and KubeVirt's webhooks check (upstream's `view` role grants it).

use std::time::Duration;

use oxivirt_e2e::Server;

use crate::common::{data_volume, wait_for};

const WAIT: Duration = Duration::from_secs(180);

fn clone_dv(name: &str) -> String {
    data_volume(
        name,
        r#"{"pvc": {"name": "golden", "namespace": "images"}}"#,
        "64Mi",
    )
}

const CLONING_VM: &str = r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-clone"},
    "spec": {"runStrategy": "Halted",
      "dataVolumeTemplates": [{"metadata": {"name": "vm-clone-root"},
        "spec": {"source": {"pvc": {"name": "golden", "namespace": "images"}}, "storage": {"resources": {"requests": {"storage": "64Mi"}}}}}],
      "template": {"spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}},
        "volumes": [{"name": "root", "dataVolume": {"name": "vm-clone-root"}}]}}}}"#;

#[test]
fn a_cross_namespace_clone_needs_datavolumes_source_in_the_source_namespace() {
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.create_namespace("images");
    kubectl.create_namespace("team");
    let golden = data_volume("golden", r#"{"blank": {}}"#, "64Mi");
    let out = kubectl.run_stdin(&["apply", "-n", "images", "-f", "-"], &golden);
    assert!(out.status.success(), "{}", out.stderr);
    wait_for(
        &kubectl,
        &["get", "dv", "golden", "-n", "images"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    // alice edits in team and has no role in images.
    kubectl.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "team",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    let as_alice = |stdin: &str| {
        kubectl.run_stdin(&["--as", "alice", "create", "-n", "team", "-f", "-"], stdin)
    };
    let refused = as_alice(&clone_dv("copy"));
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains("User alice has insufficient permissions in clone source namespace images"),
        "{}",
        refused.stderr
    );
    let refused = as_alice(CLONING_VM);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("Authorization failed, message is: User alice has insufficient permissions in clone source namespace images"),
        "{}",
        refused.stderr
    );
    // Upstream's view role grants datavolumes/source: a viewer of images may clone from it.
    kubectl.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "-n",
        "images",
        "--clusterrole=view",
        "--user=alice",
    ]);
    let allowed = as_alice(&clone_dv("copy"));
    assert!(allowed.status.success(), "{}", allowed.stderr);
    let allowed = as_alice(CLONING_VM);
    assert!(allowed.status.success(), "{}", allowed.stderr);
    wait_for(
        &kubectl,
        &["get", "dv", "copy", "-n", "team"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
}

//! `virtctl create vm|instancetype|preference` prints manifests that `kubectl apply -f -`
//! accepts as they are (issue 3 item 7), like `virtctl create … | kubectl apply -f -`.

use std::process::Command;

use oxivirt_e2e::{virtctl_bin, Kubectl, Server, SharedServer};

static SERVER: SharedServer = SharedServer::new();

/// Runs `virtctl args…` and returns the manifest it printed.
fn virtctl(server: &Server, args: &[&str]) -> String {
    let output = Command::new(virtctl_bin())
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run virtctl {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "virtctl {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `kubectl apply --validate=strict [-n namespace] -f -` of `manifest`; returns stdout.
fn apply(k: &Kubectl, namespace: Option<&str>, manifest: &str) -> String {
    let mut args = vec!["apply", "--validate=strict"];
    if let Some(namespace) = namespace {
        args.extend(["-n", namespace]);
    }
    args.extend(["-f", "-"]);
    k.run_stdin(&args, manifest).ok()
}

#[test]
fn virtctl_create_vm_with_a_container_disk_is_accepted_by_kubectl_apply() {
    let server = SERVER.get();
    let k = server.kubectl();
    k.create_namespace("virtctl-vm");
    let manifest = virtctl(
        &server,
        &[
            "create",
            "vm",
            "--name",
            "x",
            "--volume-containerdisk",
            "src:quay.io/containerdisks/fedora:latest",
        ],
    );
    let out = apply(&k, Some("virtctl-vm"), &manifest);
    assert!(
        out.contains("virtualmachine.kubevirt.io/x created"),
        "{out}"
    );
    let volumes = k.jsonpath(
        &["vm", "x", "-n", "virtctl-vm"],
        "{.spec.template.spec.volumes[0].name} {.spec.template.spec.volumes[0].containerDisk.image}",
    );
    // `src:` is the flag's source key; upstream names the volume `<vm>-containerdisk-<n>`.
    assert_eq!(
        volumes,
        "x-containerdisk-0 quay.io/containerdisks/fedora:latest"
    );
}

#[test]
fn virtctl_create_instancetype_makes_a_cluster_instancetype_through_kubectl_apply() {
    let server = SERVER.get();
    let k = server.kubectl();
    let manifest = virtctl(
        &server,
        &["create", "instancetype", "--cpu", "2", "--memory", "256Mi"],
    );
    let out = apply(&k, None, &manifest);
    // Upstream names it `clusterinstancetype-<random>` when --name is not given.
    let name = out
        .lines()
        .find_map(|line| {
            line.strip_prefix("virtualmachineclusterinstancetype.instancetype.kubevirt.io/")
                .and_then(|rest| rest.strip_suffix(" created"))
        })
        .unwrap_or_else(|| panic!("a cluster instance type is created:\n{out}"));
    assert_eq!(
        k.jsonpath(&["vmcf", name], "{.spec.cpu.guest} {.spec.memory.guest}"),
        "2 256Mi"
    );
}

#[test]
fn virtctl_create_namespaced_preference_is_accepted_by_kubectl_apply() {
    let server = SERVER.get();
    let k = server.kubectl();
    k.create_namespace("virtctl-preference");
    let manifest = virtctl(
        &server,
        &["create", "preference", "--name", "p", "--namespaced"],
    );
    let out = apply(&k, Some("virtctl-preference"), &manifest);
    assert!(
        out.contains("virtualmachinepreference.instancetype.kubevirt.io/p created"),
        "{out}"
    );
    assert!(k.exists(&["vmpref", "p", "-n", "virtctl-preference"]));
}

//! `useEmulation` (issue 4 item 4, design 0004 "Acceleration"): on a node whose agent
//! offers KVM, the KubeVirt CR's `spec.configuration.developerConfiguration.useEmulation`
//! makes VMs run under TCG — QEMU's command line says so and the VMI's SoftwareEmulation
//! condition names the reason.

use oxivirt_e2e::{qemu_pids, wait_until, Server};

use crate::common::{get, vm, wait_banner, wait_vmi_running, BOOT};

#[test]
fn use_emulation_in_the_kubevirt_cr_runs_vms_under_tcg_on_a_kvm_node() {
    // The agent is told KVM works (as its probe says on a host with working KVM).
    let server = Server::start_with_accel("kvm");
    let k = server.kubectl();
    k.create(
        r#"{"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": "kubevirt-kubevirt-hyperconverged", "namespace": "openshift-cnv"},
            "spec": {"configuration": {"developerConfiguration": {"useEmulation": true}}}}"#,
    );
    k.create(&vm("emu", "Always", None));

    wait_vmi_running(&k, "emu");
    wait_banner(&k, "emu");
    let pid = wait_until("the QEMU of emu", BOOT, || {
        qemu_pids(&server.data_dir(), "default", "emu")
            .first()
            .copied()
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("qemu's cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("accel=tcg"), "{cmdline}");
    let vmi = get(&k, "vmi", "emu").expect("the VMI");
    let emulation = vmi["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "SoftwareEmulation")
        .cloned()
        .unwrap_or_default();
    assert_eq!(emulation["status"], "True", "{vmi}");
    assert_eq!(emulation["reason"], "UseEmulation", "{vmi}");
}

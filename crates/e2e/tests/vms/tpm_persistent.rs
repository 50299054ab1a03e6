//! Persistent vTPM (manual §7.11, `devices.tpm.persistent: true`): the VM controller makes
//! the claim `persistent-state-for-<vm>`, the node agent hands its directory to the launcher,
//! swtpm keeps its state there, and the same TPM comes back after restart and stop/start;
//! the claim and its data go with the VM.

use std::path::PathBuf;

use oxivirt_e2e::{wait_until, Kubectl, Server};
use serde_json::{json, Value};

use crate::common::{
    console_log, get, launcher_pod, virtctl, vm, wait_banner, wait_vm_status, wait_vmi_running,
    BOOT,
};

/// Reads 512 bytes of the EK certificate swtpm_setup wrote at manufacture (NV index
/// 0x01c00002) with a raw TPM2_NV_Read (owner authorisation, empty password session) on
/// `/dev/tpm0` — the guest has no tpm2-tools — and prints a digest of the answer. A newly
/// manufactured TPM has a new key and certificate serial, so the digest names the TPM.
const PROBE: &str = r#"#!/bin/sh
if [ -e /dev/tpm0 ]; then
  printf '\200\002\000\000\000\043\000\000\001\116\100\000\000\001\001\300\000\002\000\000\000\011\100\000\000\011\000\000\000\000\000\002\000\000\000' >/tmp/nvread
  exec 3<>/dev/tpm0
  dd if=/tmp/nvread bs=35 count=1 >&3 2>/dev/null
  dd bs=4096 count=1 <&3 >/tmp/nvresp 2>/dev/null
  exec 3>&-
  echo "TPM-EK-CERT rc=$(od -An -tx1 -j6 -N4 /tmp/nvresp | tr -d ' ') bytes=$(wc -c </tmp/nvresp) md5=$(md5sum </tmp/nvresp | cut -d' ' -f1)"
else
  echo "TPM-EK-CERT absent"
fi
"#;

/// The probe's line on the console of the current run of `name`.
fn ek_certificate(k: &Kubectl, name: &str) -> String {
    wait_banner(k, name);
    let log = console_log(k, name);
    let line = log
        .lines()
        .find(|l| l.starts_with("TPM-EK-CERT"))
        .unwrap_or_else(|| panic!("no TPM-EK-CERT line on the console:\n{log}"))
        .trim()
        .to_string();
    assert!(
        line.contains("rc=00000000"),
        "TPM2_NV_Read succeeded: {line}"
    );
    line
}

/// The launcher's own log of the current run (what it did with the TPM state).
fn launcher_log(k: &Kubectl, name: &str) -> String {
    let pod = launcher_pod(k, name);
    k.run(&["logs", &pod, "-c", "compute"]).stdout
}

fn claim_dir(k: &Kubectl, claim: &str) -> PathBuf {
    wait_until(&format!("claim {claim} to be bound"), BOOT, || {
        let claim = get(k, "pvc", claim)?;
        (claim["status"]["phase"] == "Bound").then_some(())?;
        let volume = claim["spec"]["volumeName"].as_str()?.to_string();
        let pv = get(k, "pv", &volume)?;
        pv["spec"]["hostPath"]["path"].as_str().map(PathBuf::from)
    })
}

#[test]
fn a_persistent_tpm_keeps_its_state_on_the_vm_state_claim_across_restart_and_stop_start() {
    let installed = |tool| std::process::Command::new(tool).arg("--version").output();
    if installed("swtpm").is_err() || installed("swtpm_setup").is_err() {
        eprintln!("SKIPPED: swtpm is not installed (Debian packages swtpm, swtpm-tools)");
        return;
    }
    let server = Server::start();
    let k = server.kubectl();
    let mut manifest: Value = serde_json::from_str(&vm("ptpm", "Always", Some(PROBE))).unwrap();
    manifest["spec"]["template"]["spec"]["domain"]["devices"]["tpm"] = json!({"persistent": true});
    k.create(&manifest.to_string());

    let claim = get(&k, "pvc", "persistent-state-for-ptpm").expect("the VM's state claim");
    assert_eq!(claim["metadata"]["labels"]["persistent-state-for"], "ptpm");
    assert_eq!(
        claim["metadata"]["ownerReferences"][0]["kind"],
        "VirtualMachine"
    );
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
    let dir = claim_dir(&k, "persistent-state-for-ptpm");

    let first_uid = wait_vmi_running(&k, "ptpm");
    let first = ek_certificate(&k, "ptpm");
    assert!(
        dir.join("swtpm/tpm2-00.permall").is_file(),
        "swtpm's state on the claim in {}",
        dir.display()
    );
    assert!(
        launcher_log(&k, "ptpm").contains("manufactured a new TPM"),
        "the first run manufactures the TPM"
    );

    virtctl(&server, &["restart", "ptpm"]).ok();
    wait_until("a new VMI after restart", BOOT, || {
        let vmi = get(&k, "vmi", "ptpm")?;
        (vmi["metadata"]["uid"] != first_uid.as_str() && vmi["status"]["phase"] == "Running")
            .then_some(())
    });
    assert_eq!(
        ek_certificate(&k, "ptpm"),
        first,
        "the same TPM after restart"
    );
    let log = launcher_log(&k, "ptpm");
    assert!(
        log.contains("reusing the TPM state of an earlier run")
            && !log.contains("manufactured a new TPM"),
        "the restarted launcher reuses the state:\n{log}"
    );

    virtctl(&server, &["stop", "ptpm"]).ok();
    wait_vm_status(&k, "ptpm", "Stopped");
    assert!(
        dir.join("swtpm/tpm2-00.permall").is_file(),
        "the state outlives the stopped VM"
    );
    virtctl(&server, &["start", "ptpm"]).ok();
    wait_vmi_running(&k, "ptpm");
    assert_eq!(
        ek_certificate(&k, "ptpm"),
        first,
        "the same TPM after stop/start"
    );

    k.ok(&["delete", "vm", "ptpm"]);
    wait_until(
        "the state claim and its data to go with the VM",
        BOOT,
        || (get(&k, "pvc", "persistent-state-for-ptpm").is_none() && !dir.exists()).then_some(()),
    );
}

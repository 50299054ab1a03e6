//! Persistent vTPM (manual §7.11, `devices.tpm.persistent: true`): the VM controller makes
//! the claim `persistent-state-for-<vm>`, the node agent hands its directory to the launcher,
//! swtpm keeps its state there, and the same TPM comes back after restart and stop/start;
//! the claim and its data go with the VM. Checked from inside the guest (the EK certificate and
//! an NV index the guest defines and writes) and from the launcher's log.

use std::path::PathBuf;

use oxivirt_e2e::{wait_until, Kubectl, Server};
use serde_json::{json, Value};

use crate::common::{
    console_log, get, launcher_pod, swtpm_installed, virtctl, vm, wait_banner, wait_vm_status,
    wait_vmi_running, BOOT,
};

/// Talks to the TPM with raw commands on `/dev/tpm0` (the guest has no tpm2-tools; one
/// command and its answer per open, written in one piece by `dd`), owner authorisation with
/// an empty password session:
/// * TPM2_NV_Read of 512 bytes of the EK certificate swtpm_setup wrote at manufacture (NV
///   index 0x01c00002): a newly manufactured TPM has a new key and certificate serial, so a
///   digest of the answer names the TPM;
/// * TPM2_NV_Read of 16 bytes of an index of the guest's own (0x01500001); when it is not
///   there, TPM2_NV_DefineSpace (owner/auth read and write) and TPM2_NV_Write of 16 random
///   bytes — data the guest wrote into the TPM's NVRAM, to be read back after a restart.
const PROBE: &str = r#"#!/bin/sh
tpm() {
  exec 3<>/dev/tpm0
  dd if="$1" bs=4096 count=1 >&3 2>/dev/null
  dd bs=4096 count=1 <&3 >"$2" 2>/dev/null
  exec 3>&-
}
rc() { od -An -tx1 -j6 -N4 "$1" | tr -d ' \n'; }
if [ ! -e /dev/tpm0 ]; then echo "TPM-EK-CERT absent"; exit 0; fi
printf '\200\002\000\000\000\043\000\000\001\116\100\000\000\001\001\300\000\002\000\000\000\011\100\000\000\011\000\000\000\000\000\002\000\000\000' >/tmp/ekr
tpm /tmp/ekr /tmp/ekr.out
echo "TPM-EK-CERT rc=$(rc /tmp/ekr.out) bytes=$(wc -c </tmp/ekr.out) md5=$(md5sum </tmp/ekr.out | cut -d' ' -f1)"
printf '\200\002\000\000\000\043\000\000\001\116\100\000\000\001\001\120\000\001\000\000\000\011\100\000\000\011\000\000\000\000\000\000\020\000\000' >/tmp/nvr
tpm /tmp/nvr /tmp/nvr.out
if [ "$(rc /tmp/nvr.out)" = 00000000 ]; then
  echo "TPM-NV kept $(od -An -tx1 -j16 -N16 /tmp/nvr.out | tr -d ' \n')"
else
  printf '\200\002\000\000\000\055\000\000\001\052\100\000\000\001\000\000\000\011\100\000\000\011\000\000\000\000\000\000\000\000\016\001\120\000\001\000\013\000\006\000\006\000\000\000\020' >/tmp/nvd
  tpm /tmp/nvd /tmp/nvd.out
  head -c 16 /dev/urandom >/tmp/mark
  { printf '\200\002\000\000\000\063\000\000\001\067\100\000\000\001\001\120\000\001\000\000\000\011\100\000\000\011\000\000\000\000\000\000\020'; cat /tmp/mark; printf '\000\000'; } >/tmp/nvw
  tpm /tmp/nvw /tmp/nvw.out
  echo "TPM-NV written $(od -An -tx1 /tmp/mark | tr -d ' \n') define=$(rc /tmp/nvd.out) write=$(rc /tmp/nvw.out)"
fi
"#;

/// The bytes after `TPM-NV <word>` on the console of the current run.
fn nv_mark(k: &Kubectl, name: &str, word: &str) -> String {
    let log = console_log(k, name);
    let prefix = format!("TPM-NV {word} ");
    let rest = log
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line on the console:\n{log}"));
    let mark = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(mark.len(), 32, "16 bytes in hex: {rest}");
    if word == "written" {
        assert!(
            rest.contains("define=00000000 write=00000000"),
            "NV_DefineSpace and NV_Write succeeded: {rest}"
        );
    }
    mark
}

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
    if !swtpm_installed() {
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
    let written = nv_mark(&k, "ptpm", "written");
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
    assert_eq!(
        nv_mark(&k, "ptpm", "kept"),
        written,
        "what the guest wrote into the TPM's NVRAM is there after restart"
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
    assert_eq!(nv_mark(&k, "ptpm", "kept"), written, "and after stop/start");

    k.ok(&["delete", "vm", "ptpm"]);
    wait_until(
        "the state claim and its data to go with the VM",
        BOOT,
        || (get(&k, "pvc", "persistent-state-for-ptpm").is_none() && !dir.exists()).then_some(()),
    );
}

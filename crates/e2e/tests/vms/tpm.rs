//! vTPM (manual §7.11; issue 4 item 4): `devices.tpm` gives the guest a TPM 2.0 served by a
//! real `swtpm` that lives and ends with the VM.

use oxivirt_e2e::{pids_matching, wait_until, Server};
use serde_json::{json, Value};

use crate::common::{console_log, swtpm_installed, virtctl, vm, wait_banner, wait_vm_status, BOOT};

const PROBE: &str = r#"#!/bin/sh
if [ -e /dev/tpm0 ]; then
  echo "TPM present version=$(cat /sys/class/tpm/tpm0/tpm_version_major)"
else
  echo "TPM absent"
fi
"#;

fn swtpms(server: &Server) -> Vec<u32> {
    pids_matching(&["swtpm", "--tpm2", &server.data_dir().display().to_string()])
}

#[test]
fn a_vm_with_a_tpm_sees_a_tpm2_device_served_by_swtpm_which_stops_with_the_vm() {
    if !swtpm_installed() {
        return;
    }
    let server = Server::start();
    let k = server.kubectl();
    let mut manifest: Value = serde_json::from_str(&vm("vtpm", "Always", Some(PROBE))).unwrap();
    manifest["spec"]["template"]["spec"]["domain"]["devices"]["tpm"] = json!({"persistent": true});
    k.create(&manifest.to_string());

    wait_vm_status(&k, "vtpm", "Running");
    wait_banner(&k, "vtpm");
    let log = console_log(&k, "vtpm");
    assert!(log.contains("TPM present version=2"), "{log}");
    assert_eq!(swtpms(&server).len(), 1, "one swtpm for the VM");

    virtctl(&server, &["stop", "vtpm"]).ok();
    wait_vm_status(&k, "vtpm", "Stopped");
    wait_until("swtpm to end with its VM", BOOT, || {
        swtpms(&server).is_empty().then_some(())
    });
}

//! UEFI Secure Boot (manual §7.14.6; issue 4 item 4): `firmware.bootloader.efi: {}` means
//! Secure Boot, as upstream, and needs `features.smm`. The test guest's disk carries Debian's
//! signed chain (shim → GRUB → kernel), which OVMF's Microsoft keys verify.

use oxivirt_e2e::{pids_matching, wait_until, Server};
use serde_json::{json, Value};

use crate::common::{
    console_log, get, virtctl, vm, wait_banner, wait_vm_status, wait_vmi_running, BOOT,
};

/// The kernel's own word that it booted under Secure Boot (the console runs `quiet`), and a
/// UEFI variable of the guest's own (attributes NV|BS|RT, then a random id) written on the
/// first boot and read back on later ones: `efi.persistent` keeps the store across runs.
/// efivarfs takes a variable in one write, hence `dd` from a file.
const PROBE: &str = r#"#!/bin/sh
echo "KERNEL-SAYS: $(dmesg | grep -o 'secureboot: Secure boot enabled')"
V=/sys/firmware/efi/efivars/OxivirtMark-3cc3a2e4-5e58-4b3a-9b2b-8a8c1a0f5e11
if [ -e "$V" ]; then
  echo "EFI-MARK kept $(tail -c +5 "$V")"
else
  printf '\007\000\000\000%s' "$(cat /proc/sys/kernel/random/uuid)" >/tmp/mark
  dd if=/tmp/mark of="$V" bs=4096 2>/dev/null && echo "EFI-MARK written $(tail -c +5 "$V")"
fi
"#;

/// The id after `EFI-MARK <word>` on the console of the current run.
fn efi_mark(log: &str, word: &str) -> String {
    let prefix = format!("EFI-MARK {word} ");
    log.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line on the console:\n{log}"))
        .trim()
        .to_string()
}

fn ovmf_with_secure_boot() -> bool {
    ["OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"]
        .iter()
        .all(|f| std::path::Path::new("/usr/share/OVMF").join(f).is_file())
}

#[test]
fn a_vm_with_efi_boots_the_signed_test_guest_under_secure_boot_with_smm() {
    if !ovmf_with_secure_boot() {
        eprintln!("SKIPPED: OVMF with Secure Boot is not installed (Debian package ovmf)");
        return;
    }
    let server = Server::start();
    let k = server.kubectl();
    let mut manifest: Value = serde_json::from_str(&vm("sb", "Always", Some(PROBE))).unwrap();
    // Upstream's default for `efi: {}` is Secure Boot; the NVRAM is kept on the state claim.
    manifest["spec"]["template"]["spec"]["domain"]["firmware"] =
        json!({"bootloader": {"efi": {"persistent": true}}});
    // Without SMM the webhook refuses Secure Boot, as upstream's does.
    let refused = k.run_stdin(&["create", "-f", "-"], &manifest.to_string());
    assert!(
        !refused.status.success(),
        "Secure Boot without SMM accepted"
    );
    assert!(
        refused.stderr.contains("SecureBoot requires SMM"),
        "{}",
        refused.stderr
    );
    let domain = &mut manifest["spec"]["template"]["spec"]["domain"];
    domain["features"] = json!({"smm": {}});
    // GRUB on OVMF needs more than the usual 128 MiB to load the kernel and initrd.
    domain["resources"] = json!({"requests": {"memory": "256Mi"}});
    k.create(&manifest.to_string());

    wait_vm_status(&k, "sb", "Running");
    let qemu = pids_matching(&[
        "qemu-system",
        "OVMF_CODE_4M.secboot.fd",
        "smm=on",
        &server.data_dir().display().to_string(),
    ]);
    assert_eq!(qemu.len(), 1, "QEMU runs the Secure Boot OVMF with SMM");
    wait_banner(&k, "sb");
    let log = console_log(&k, "sb");
    assert!(
        log.contains("oxivirt-test-guest: firmware=uefi secureboot=on"),
        "the firmware's SecureBoot variable is 1 inside the guest:\n{log}"
    );
    assert!(
        log.contains("KERNEL-SAYS: secureboot: Secure boot enabled"),
        "the kernel booted under Secure Boot:\n{log}"
    );

    let mark = efi_mark(&log, "written");
    assert_eq!(mark.len(), 36, "a UUID: {mark}");

    // `efi.persistent`: the variable store lives on the VM's state claim.
    let claim = get(&k, "pvc", "persistent-state-for-sb").expect("the VM's state claim");
    let volume = claim["spec"]["volumeName"].as_str().unwrap_or_default();
    let pv = get(&k, "pv", volume).expect("the state claim's volume");
    let dir = std::path::PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap());
    assert!(
        dir.join("nvram/default_sb_VARS.fd").is_file(),
        "NVRAM on the claim in {}",
        dir.display()
    );
    // ... and the guest's own variable is still there after a restart (a new VMI and QEMU).
    let first = wait_vmi_running(&k, "sb");
    virtctl(&server, &["restart", "sb"]).ok();
    wait_until("a new VMI after restart", BOOT, || {
        let vmi = get(&k, "vmi", "sb")?;
        (vmi["metadata"]["uid"] != first.as_str() && vmi["status"]["phase"] == "Running")
            .then_some(())
    });
    wait_banner(&k, "sb");
    let log = console_log(&k, "sb");
    assert_eq!(
        efi_mark(&log, "kept"),
        mark,
        "the UEFI variable survives a restart"
    );
    assert!(log.contains("secureboot=on"), "still Secure Boot:\n{log}");

    k.ok(&["delete", "vm", "sb", "--wait=false"]);
    wait_until("QEMU to end with the VM", BOOT, || {
        pids_matching(&["qemu-system", "OVMF_CODE_4M.secboot.fd"])
            .iter()
            .all(|pid| !qemu.contains(pid))
            .then_some(())
    });
}

//! Firmware: SeaBIOS (QEMU's default, nothing to add), OVMF with an optional Secure Boot
//! and a per-VM variable store, and direct kernel boot.

use std::path::{Path, PathBuf};

use super::{path_str, Builder, FileToCreate, Props};
use crate::error::{Error, Result};
use crate::spec::{LaunchSpec, RunPaths, KERNEL_BOOT_DISK};
use crate::vmi::VirtualMachineInstance;

/// `None` for BIOS; `Some(secure)` for EFI. Upstream turns Secure Boot on unless the VMI
/// says `secureBoot: false`.
pub(super) fn secure_boot(vmi: &VirtualMachineInstance) -> Option<bool> {
    let efi = vmi
        .spec
        .domain
        .firmware
        .as_ref()?
        .bootloader
        .as_ref()?
        .efi
        .as_ref()?;
    Some(efi.secure_boot.unwrap_or(true))
}

pub(super) fn add(
    spec: &LaunchSpec,
    secure_boot: Option<bool>,
    paths: &RunPaths,
    out: &mut Builder,
) -> Result<()> {
    let Some(firmware) = spec.vmi.spec.domain.firmware.as_ref() else {
        return Ok(());
    };
    if let Some(secure) = secure_boot {
        efi(spec, secure, paths, out)?;
    } else if firmware
        .bootloader
        .as_ref()
        .and_then(|b| b.bios.as_ref())
        .and_then(|bios| bios.get("useSerial"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        out.note("bios.useSerial ignored: SeaBIOS prints to the serial port only via sgabios");
    }
    if let Some(kernel_boot) = &firmware.kernel_boot {
        let field = "spec.domain.firmware.kernelBoot";
        let container = kernel_boot
            .container
            .as_ref()
            .ok_or_else(|| Error::config(field, "kernelBoot needs a container"))?;
        let kernel = container.kernel_path.as_deref().ok_or_else(|| {
            Error::config(
                format!("{field}.container.kernelPath"),
                "a kernel path is required",
            )
        })?;
        let root = spec
            .disks
            .get(KERNEL_BOOT_DISK)
            .map(|disk| disk.path.as_path());
        let kernel = in_image(root, kernel);
        out.arg("-kernel", path_str(field, &kernel)?);
        if let Some(initrd) = container.initrd_path.as_deref() {
            let initrd = in_image(root, initrd);
            out.arg("-initrd", path_str(field, &initrd)?);
        }
        if let Some(args) = kernel_boot.kernel_args.as_deref().filter(|a| !a.is_empty()) {
            out.arg("-append", args);
        }
    }
    Ok(())
}

/// `path` inside the unpacked image at `root` (the node agent's `kernelBoot` disk entry),
/// or `path` itself when the agent gave no root (a host path, as tests use).
fn in_image(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(root) => root.join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

fn efi(spec: &LaunchSpec, secure: bool, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    let field = "spec.domain.firmware.bootloader.efi";
    let firmware = &spec.firmware;
    let (code, vars) = if secure {
        (&firmware.ovmf_code_secure, &firmware.ovmf_vars_secure)
    } else {
        (&firmware.ovmf_code, &firmware.ovmf_vars)
    };
    if secure {
        // Only SMM code may write the flash holding the Secure Boot keys.
        out.arg("-global", "driver=cfi.pflash01,property=secure,value=on");
        // No S3 (suspend to RAM) with the SMM build of OVMF: edk2 before 2023 cannot resume
        // from S3 with a 64-bit PEI and SMM and asks for S3 to be off (OvmfPkg README; libvirt
        // does it for `<suspend-to-mem enabled='no'/>`). Measured with Debian 12's OVMF: with
        // S3 advertised, Debian's signed kernel triple-faults in its EFI stub in 256 MiB
        // (docs/test-guest.md); without, it boots there.
        out.arg(
            "-global",
            format!("{}.disable_s3=1", power_management_device(spec)),
        );
    }
    let persistent = spec
        .vmi
        .spec
        .domain
        .firmware
        .as_ref()
        .and_then(|f| f.bootloader.as_ref())
        .and_then(|b| b.efi.as_ref())
        .and_then(|efi| efi.persistent)
        == Some(true);
    // `efi.persistent`: the variable store lives on the VM's state claim and is made from
    // the template only the first time (upstream keeps it in the same claim, beside the TPM).
    let state = spec.persistent_state().filter(|_| persistent);
    let nvram = match state {
        Some(state) => persistent_nvram(state, spec),
        None => paths.nvram(),
    };
    out.arg(
        "-drive",
        Props::new("if=pflash")
            .set("format", "raw")
            .set("unit", 0)
            .path("file", code)?
            .set("readonly", "on")
            .to_string(),
    );
    out.arg(
        "-drive",
        Props::new("if=pflash")
            .set("format", "raw")
            .set("unit", 1)
            .path("file", &nvram)?
            .to_string(),
    );
    path_str(field, vars)?;
    if state.is_some() {
        out.file(FileToCreate::CopyIfMissing {
            path: nvram,
            source: vars.clone(),
        });
    } else {
        out.file(FileToCreate::CopyOf {
            path: nvram,
            source: vars.clone(),
        });
        if persistent {
            out.note("efi.persistent: the node agent gave no persistent-state claim; NVRAM lives in the run directory and is not kept");
        }
    }
    Ok(())
}

/// The ACPI power-management device of the machine type: ICH9's LPC bridge on q35, PIIX4's
/// on the i440fx `pc` machines.
fn power_management_device(spec: &LaunchSpec) -> &'static str {
    let machine = spec
        .vmi
        .spec
        .domain
        .machine
        .as_ref()
        .and_then(|m| m.machine_type.as_deref())
        .unwrap_or("q35");
    if machine == "pc" || machine.starts_with("pc-i440fx") {
        "PIIX4_PM"
    } else {
        "ICH9-LPC"
    }
}

/// `nvram/<namespace>_<name>_VARS.fd` in the state claim, named as libvirt names a domain's
/// variable store, so a store is never taken for another VM's.
fn persistent_nvram(state: &Path, spec: &LaunchSpec) -> PathBuf {
    let vmi = &spec.vmi;
    state
        .join("nvram")
        .join(format!("{}_{}_VARS.fd", vmi.namespace(), vmi.metadata.name))
}

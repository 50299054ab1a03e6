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
    }
    let nvram = paths.nvram();
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
    out.file(FileToCreate::CopyOf {
        path: nvram,
        source: vars.clone(),
    });
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
    if persistent {
        out.note(
            "efi.persistent: NVRAM lives in the run directory and is not kept across restarts yet",
        );
    }
    Ok(())
}

//! `launch.json` (what the node agent asks for) and the run directory's file layout.
//!
//! The contract is docs/design/0004-vm-runtime-contracts.md. Fields beyond the contract
//! (`firmware`, `sandbox`) are optional with defaults that suit a Debian 12 host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::vmi::VirtualMachineInstance;

/// The key of [`LaunchSpec::disks`] under which the node agent gives the unpacked root of
/// a `kernelBoot.container` image. Volume names are DNS labels (lowercase), so this key
/// cannot collide with one.
pub const KERNEL_BOOT_DISK: &str = "kernelBoot";

/// The key of [`LaunchSpec::disks`] under which the node agent gives the directory of the VM's
/// persistent-state claim (upstream's `persistent-state-for-<vm>`), when the VMI asks for a
/// persistent TPM or persistent EFI variables. camelCase, so no volume name can be it.
pub const PERSISTENT_STATE_DISK: &str = "persistentState";

/// The contents of `launch.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchSpec {
    /// The VMI, with upstream's defaults applied on load.
    #[serde(deserialize_with = "vmi_with_defaults")]
    pub vmi: VirtualMachineInstance,
    /// The accelerator the node agent's probe chose.
    #[serde(default)]
    pub accel: Accel,
    /// Where each volume's data lives on this node, by volume name.
    #[serde(default)]
    pub disks: BTreeMap<String, DiskSource>,
    /// The QEMU binary.
    #[serde(default = "default_qemu")]
    pub qemu: String,
    /// Run QEMU as this user (the launcher stays as it is).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Run QEMU with this group.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Firmware image locations.
    #[serde(default)]
    pub firmware: FirmwarePaths,
    /// Whether to enable QEMU's seccomp sandbox (`-sandbox`); default on. The launcher
    /// retries without it when this QEMU was built without seccomp.
    #[serde(default = "default_true")]
    pub sandbox: bool,
    /// NICs the node agent plumbed in the Pod's network namespace (none: no pod network).
    #[serde(default)]
    pub network: Option<oxivirt_network::PodNetworkPlan>,
}

impl LaunchSpec {
    /// The directory of the VM's persistent-state claim, when the node agent mounted one.
    pub fn persistent_state(&self) -> Option<&Path> {
        self.disks
            .get(PERSISTENT_STATE_DISK)
            .map(|disk| disk.path.as_path())
    }
}

fn default_qemu() -> String {
    "qemu-system-x86_64".to_owned()
}

fn default_true() -> bool {
    true
}

fn vmi_with_defaults<'de, D>(deserializer: D) -> Result<VirtualMachineInstance, D::Error>
where
    D: serde::Deserializer<'de>,
{
    VirtualMachineInstance::deserialize(deserializer).map(VirtualMachineInstance::with_defaults)
}

/// The hardware accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation (only when the agent's probe proved it works).
    Kvm,
    /// Software emulation.
    #[default]
    Tcg,
}

impl Accel {
    /// QEMU's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One entry of `launch.json`'s `disks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskSource {
    /// The image file (or, for [`KERNEL_BOOT_DISK`], the unpacked image root).
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    #[serde(default)]
    pub format: ImageFormat,
    /// Open read-only.
    #[serde(default)]
    pub readonly: bool,
    /// Write to a throwaway overlay in the run directory instead of the file.
    #[serde(default)]
    pub ephemeral: bool,
}

/// A disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// QEMU copy-on-write v2.
    Qcow2,
    /// A plain file.
    #[default]
    Raw,
}

impl ImageFormat {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Raw => "raw",
        }
    }
}

/// OVMF images (Debian's `ovmf` package layout by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FirmwarePaths {
    /// OVMF code without Secure Boot.
    pub ovmf_code: PathBuf,
    /// Empty variable store template for [`FirmwarePaths::ovmf_code`].
    pub ovmf_vars: PathBuf,
    /// OVMF code with Secure Boot (needs SMM).
    pub ovmf_code_secure: PathBuf,
    /// Variable store template with Microsoft's keys enrolled.
    pub ovmf_vars_secure: PathBuf,
}

impl Default for FirmwarePaths {
    fn default() -> Self {
        let ovmf = Path::new("/usr/share/OVMF");
        FirmwarePaths {
            ovmf_code: ovmf.join("OVMF_CODE_4M.fd"),
            ovmf_vars: ovmf.join("OVMF_VARS_4M.fd"),
            ovmf_code_secure: ovmf.join("OVMF_CODE_4M.secboot.fd"),
            ovmf_vars_secure: ovmf.join("OVMF_VARS_4M.ms.fd"),
        }
    }
}

impl LaunchSpec {
    /// Parses `launch.json` text.
    ///
    /// # Errors
    /// [`Error::ParseLaunchSpec`] naming `path`.
    pub fn from_json(path: &Path, text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|source| Error::ParseLaunchSpec {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads and parses `launch.json` from the run directory.
    ///
    /// # Errors
    /// [`Error::ReadLaunchSpec`] or [`Error::ParseLaunchSpec`].
    pub fn read(paths: &RunPaths) -> Result<Self> {
        let path = paths.launch_json();
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadLaunchSpec {
            path: path.clone(),
            source,
        })?;
        Self::from_json(&path, &text)
    }

    /// The grace period for a SIGTERM: `terminationGracePeriodSeconds`, default 30.
    pub fn grace_seconds(&self) -> u64 {
        self.vmi
            .spec
            .termination_grace_period_seconds
            .map_or(30, |seconds| u64::try_from(seconds).unwrap_or(0))
    }
}

/// The files of one run directory (`<data-dir>/pods/<ns>_<pod>_<uid>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    dir: PathBuf,
}

impl RunPaths {
    /// The layout under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunPaths { dir: dir.into() }
    }

    /// The run directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `launch.json`, written by the node agent.
    pub fn launch_json(&self) -> PathBuf {
        self.dir.join("launch.json")
    }

    /// `status.json`, written by the launcher.
    pub fn status_json(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// `launcher.pid`.
    pub fn launcher_pid(&self) -> PathBuf {
        self.dir.join("launcher.pid")
    }

    /// `control.sock`: the launcher's command socket.
    pub fn control_sock(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// `console.log`: the bounded serial console log.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// `console.sock`: the launcher's relay of the serial console to clients.
    pub fn console_sock(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// `serial.sock`: QEMU's end of the serial port; only the launcher connects to it.
    pub fn serial_sock(&self) -> PathBuf {
        self.dir.join("serial.sock")
    }

    /// `qmp.sock`: QEMU's monitor.
    pub fn qmp_sock(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// `qga.sock`: the guest agent channel.
    pub fn qga_sock(&self) -> PathBuf {
        self.dir.join("qga.sock")
    }

    /// `vnc.sock`: the VNC server.
    pub fn vnc_sock(&self) -> PathBuf {
        self.dir.join("vnc.sock")
    }

    /// `disks/`: overlays, empty disks and seeds made by the launcher.
    pub fn disks_dir(&self) -> PathBuf {
        self.dir.join("disks")
    }

    /// The image the launcher makes for volume `volume` (`disks/<volume>.<ext>`).
    pub fn disk_file(&self, volume: &str, extension: &str) -> PathBuf {
        self.disks_dir().join(format!("{volume}.{extension}"))
    }

    /// `nvram.fd`: this VM's copy of the UEFI variable store.
    pub fn nvram(&self) -> PathBuf {
        self.dir.join("nvram.fd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_launch_json_gets_defaults() {
        let text = r#"{"vmi": {"metadata": {"name": "a"}, "spec": {"domain": {}}}}"#;
        let spec = LaunchSpec::from_json(Path::new("launch.json"), text).expect("parses");
        assert_eq!(spec.accel, Accel::Tcg);
        assert_eq!(spec.qemu, "qemu-system-x86_64");
        assert!(spec.sandbox);
        assert_eq!(spec.grace_seconds(), 30);
        assert_eq!(spec.vmi.namespace(), "default");
    }

    #[test]
    fn contract_fields_parse() {
        let text = r#"{"vmi": {"metadata": {"name": "a", "namespace": "ns"},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}},
            "accel": "kvm", "uid": 107, "gid": 107,
            "disks": {"root": {"path": "/cache/x.qcow2", "format": "qcow2", "readonly": false,
                               "ephemeral": true}}}"#;
        let spec = LaunchSpec::from_json(Path::new("launch.json"), text).expect("parses");
        assert_eq!(spec.accel, Accel::Kvm);
        assert_eq!(spec.uid, Some(107));
        assert_eq!(spec.grace_seconds(), 0);
        let root = &spec.disks["root"];
        assert!(root.ephemeral);
        assert_eq!(root.format, ImageFormat::Qcow2);
        // The volume got its default disk.
        assert_eq!(spec.vmi.spec.domain.devices.disks[0].name, "root");
    }

    #[test]
    fn broken_launch_json_names_the_file() {
        let error = LaunchSpec::from_json(Path::new("/run/x/launch.json"), "{").expect_err("bad");
        assert!(error.to_string().contains("/run/x/launch.json"));
    }
}

//! The pure mapping from a [`LaunchSpec`] to a QEMU command line plus the files the
//! launcher must create first. No I/O happens here: the result is data, golden-tested
//! against VMI fixtures in `tests/fixtures/`.
//!
//! Split by device family: [`firmware`] (SeaBIOS, OVMF, direct kernel boot), [`disks`]
//! (buses, volumes, overlays, seeds) and [`devices`] (consoles, VNC, RNG, watchdog, ...).
//! This module holds the machine, CPU, memory and naming options.

mod devices;
mod disks;
mod firmware;
mod props;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::quantity;
use crate::seed::SeedImage;
use crate::spec::{Accel, LaunchSpec, RunPaths};
use crate::vmi::VirtualMachineInstance;

pub(crate) use props::Props;

/// The longest Unix socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A QEMU invocation, as data.
#[derive(Debug, Clone, PartialEq)]
pub struct QemuCommand {
    /// The binary to run.
    pub program: String,
    /// Its arguments, in order.
    pub args: Vec<String>,
    /// Files the launcher must create before starting QEMU, in order.
    pub files: Vec<FileToCreate>,
    /// Parts of the VMI that were ignored or adjusted, for the log.
    pub notes: Vec<String>,
}

/// A file the launcher creates in preparation.
#[derive(Debug, Clone, PartialEq)]
pub enum FileToCreate {
    /// A qcow2 overlay over a base image that is never written
    /// (`qemu-img create -f qcow2 -b backing -F format path`).
    Overlay {
        /// The overlay.
        path: PathBuf,
        /// The base image.
        backing: PathBuf,
        /// The base image's format.
        backing_format: &'static str,
    },
    /// A blank qcow2 image of `size` bytes.
    EmptyDisk {
        /// The image.
        path: PathBuf,
        /// Virtual size in bytes.
        size: u64,
    },
    /// A sparse raw file of `size` bytes, only if `path` does not exist (`DiskOrCreate`).
    RawIfMissing {
        /// The file.
        path: PathBuf,
        /// Size in bytes.
        size: u64,
    },
    /// A copy of `source` (the per-VM UEFI variable store).
    CopyOf {
        /// The copy.
        path: PathBuf,
        /// The template.
        source: PathBuf,
    },
    /// A copy of `source` only if `path` does not exist yet, in a directory made if missing
    /// (persistent UEFI variables on the VM's state claim, kept across restarts).
    CopyIfMissing {
        /// The copy.
        path: PathBuf,
        /// The template.
        source: PathBuf,
    },
    /// A cloud-init seed image (ISO 9660 with Joliet names).
    Seed {
        /// The image.
        path: PathBuf,
        /// Its label and files.
        image: SeedImage,
    },
    /// An ISO 9660 image of the files under `source`, a config volume's directory
    /// (see [`crate::config_disks`]).
    IsoOfDirectory {
        /// The image.
        path: PathBuf,
        /// Its volume label.
        label: String,
        /// The directory the node agent filled.
        source: PathBuf,
    },
}

impl FileToCreate {
    /// The file this creates.
    pub fn path(&self) -> &Path {
        match self {
            FileToCreate::Overlay { path, .. }
            | FileToCreate::EmptyDisk { path, .. }
            | FileToCreate::RawIfMissing { path, .. }
            | FileToCreate::CopyOf { path, .. }
            | FileToCreate::CopyIfMissing { path, .. }
            | FileToCreate::Seed { path, .. }
            | FileToCreate::IsoOfDirectory { path, .. } => path,
        }
    }
}

impl QemuCommand {
    /// The same command without `-sandbox` (for a QEMU built without seccomp).
    pub fn without_sandbox(&self) -> QemuCommand {
        let mut args = Vec::with_capacity(self.args.len());
        let mut iter = self.args.iter();
        while let Some(arg) = iter.next() {
            if arg == "-sandbox" {
                iter.next();
            } else {
                args.push(arg.clone());
            }
        }
        QemuCommand {
            args,
            ..self.clone()
        }
    }
}

/// Accumulates arguments, files and notes while the families add their parts.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    args: Vec<String>,
    files: Vec<FileToCreate>,
    notes: Vec<String>,
}

impl Builder {
    pub(crate) fn arg(&mut self, flag: &str, value: impl Into<String>) {
        self.args.push(flag.to_owned());
        self.args.push(value.into());
    }

    pub(crate) fn flag(&mut self, flag: &str) {
        self.args.push(flag.to_owned());
    }

    pub(crate) fn device(&mut self, props: Props) {
        self.arg("-device", props.to_string());
    }

    pub(crate) fn file(&mut self, file: FileToCreate) {
        self.files.push(file);
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// Builds the QEMU command for `spec`, with every socket and file under `paths`.
///
/// # Errors
/// [`Error::Config`] or [`Error::Quantity`] naming the VMI field that cannot be expressed
/// (a disk without a volume, a missing `launch.json` disk source, a bad quantity, ...).
///
/// # Guarantees
/// Pure and deterministic: the same inputs give the same argv, byte for byte.
pub fn qemu_config(spec: &LaunchSpec, paths: &RunPaths) -> Result<QemuCommand> {
    let vmi = &spec.vmi;
    let longest = paths.console_sock().as_os_str().len();
    if longest > MAX_SOCKET_PATH {
        return Err(Error::config(
            "run directory",
            format!(
                "{} is too long for Unix socket paths ({longest} > {MAX_SOCKET_PATH} bytes)",
                paths.dir().display()
            ),
        ));
    }
    let mut out = Builder::default();
    let secure_boot = firmware::secure_boot(vmi);

    out.arg(
        "-name",
        format!(
            "guest={}_{},debug-threads=on",
            vmi.namespace(),
            vmi.metadata.name
        ),
    );
    if let Some(uuid) = firmware_uuid(vmi)? {
        out.arg("-uuid", uuid);
    }
    out.flag("-S");
    out.flag("-nodefaults");
    out.flag("-no-user-config");
    out.flag("-nographic");
    out.arg("-machine", machine(spec, secure_boot));
    cpu(spec, &mut out)?;
    memory(vmi, &mut out)?;
    smbios(vmi, &mut out)?;
    out.arg("-rtc", "base=utc");
    out.arg("-boot", "strict=on");
    out.arg("-msg", "timestamp=on");
    if spec.sandbox {
        out.arg(
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        );
    }
    out.arg(
        "-chardev",
        Props::new("socket")
            .set("id", "charmonitor")
            .path("path", &paths.qmp_sock())?
            .set("server", "on")
            .set("wait", "off")
            .to_string(),
    );
    out.arg("-mon", "chardev=charmonitor,id=monitor,mode=control");
    out.arg("-action", devices::actions(vmi));
    firmware::add(spec, secure_boot, paths, &mut out)?;
    disks::add(spec, paths, &mut out)?;
    devices::add(vmi, paths, &mut out)?;
    if let Some(note) = crate::tpm::state_note(spec) {
        out.note(note);
    }
    crate::network::add(spec, paths, &mut out)?;

    Ok(QemuCommand {
        program: spec.qemu.clone(),
        args: out.args,
        files: out.files,
        notes: out.notes,
    })
}

fn machine(spec: &LaunchSpec, secure_boot: Option<bool>) -> String {
    let vmi = &spec.vmi;
    let machine_type = vmi
        .spec
        .domain
        .machine
        .as_ref()
        .and_then(|machine| machine.machine_type.as_deref())
        .filter(|name| !name.is_empty())
        .unwrap_or("q35");
    let mut props = Props::new(machine_type)
        .set("accel", spec.accel.as_str())
        .set("usb", "off")
        .set("vmport", "off")
        .set("dump-guest-core", "off");
    let features = vmi.spec.domain.features.as_ref();
    let smm = features
        .and_then(|f| f.smm.as_ref())
        .map(|s| s.is_enabled());
    match (secure_boot, smm) {
        // Secure Boot needs SMM so the guest cannot write the variable store directly.
        (Some(true), _) | (_, Some(true)) => props = props.set("smm", "on"),
        (_, Some(false)) => props = props.set("smm", "off"),
        _ => {}
    }
    if features
        .and_then(|f| f.acpi.as_ref())
        .is_some_and(|a| !a.is_enabled())
    {
        props = props.set("acpi", "off");
    }
    props.to_string()
}

fn cpu(spec: &LaunchSpec, out: &mut Builder) -> Result<()> {
    let domain = &spec.vmi.spec.domain;
    let cpu = domain.cpu.clone().unwrap_or_default();
    let (mut sockets, mut cores, mut threads) = (cpu.sockets, cpu.cores, cpu.threads);
    if sockets == 0 && cores == 0 && threads == 0 {
        // Upstream's default: one socket per requested (or limited) CPU.
        let resources = &domain.resources;
        let from = resources.limits.get("cpu").map(|v| ("limits", v));
        let from = from.or_else(|| resources.requests.get("cpu").map(|v| ("requests", v)));
        sockets = match from {
            Some((kind, value)) => {
                let field = format!("spec.domain.resources.{kind}.cpu");
                u32::try_from(quantity::parse_value(&field, value)?.max(1))
                    .map_err(|_| Error::config(field, "too many CPUs"))?
            }
            None => 1,
        };
    }
    for value in [&mut sockets, &mut cores, &mut threads] {
        if *value == 0 {
            *value = 1;
        }
    }
    let total = sockets
        .checked_mul(cores)
        .and_then(|n| n.checked_mul(threads))
        .ok_or_else(|| Error::config("spec.domain.cpu", "topology overflows"))?;

    let requested = cpu
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or("host-model");
    let model = match (requested, spec.accel) {
        ("host-model" | "host-passthrough", Accel::Kvm) => "host".to_owned(),
        ("host-model" | "host-passthrough", Accel::Tcg) => {
            // No host CPU to mirror under emulation: `max` is every feature TCG can
            // emulate (x86-64-v2 and more), which modern guests need; `qemu64` lacks it.
            out.note(format!("cpu model {requested} under TCG: using max"));
            "max".to_owned()
        }
        (named, _) => named.to_owned(),
    };
    let mut value = model;
    for feature in &cpu.features {
        let sign = match feature.policy.as_deref().unwrap_or("require") {
            "require" | "force" | "optional" => '+',
            "disable" | "forbid" => '-',
            other => {
                return Err(Error::config(
                    format!("spec.domain.cpu.features[{}].policy", feature.name),
                    format!("unknown policy {other:?}"),
                ))
            }
        };
        value.push_str(&format!(",{sign}{}", feature.name));
    }
    out.arg("-cpu", value);
    out.arg(
        "-smp",
        format!("{total},sockets={sockets},dies=1,cores={cores},threads={threads}"),
    );
    Ok(())
}

fn memory(vmi: &VirtualMachineInstance, out: &mut Builder) -> Result<()> {
    let domain = &vmi.spec.domain;
    let guest = domain.memory.as_ref().and_then(|m| m.guest.as_deref());
    let bytes = match guest {
        Some(text) => quantity::parse("spec.domain.memory.guest", text)?,
        None => {
            let resources = &domain.resources;
            let (field, value) = resources
                .requests
                .get("memory")
                .map(|v| ("spec.domain.resources.requests.memory", v))
                .or_else(|| {
                    resources
                        .limits
                        .get("memory")
                        .map(|v| ("spec.domain.resources.limits.memory", v))
                })
                .ok_or_else(|| {
                    Error::config(
                        "spec.domain.memory.guest",
                        "no guest memory: set memory.guest or resources.requests.memory",
                    )
                })?;
            quantity::parse_value(field, value)?
        }
    };
    let mib = bytes.div_ceil(1 << 20);
    if mib << 20 != bytes {
        out.note(format!(
            "guest memory {bytes} bytes rounded up to {mib} MiB"
        ));
    }
    out.arg("-m", format!("size={mib}M"));
    Ok(())
}

fn firmware_uuid(vmi: &VirtualMachineInstance) -> Result<Option<String>> {
    let firmware = vmi.spec.domain.firmware.as_ref();
    match firmware.and_then(|f| f.uuid.as_deref()) {
        Some(uuid) if is_uuid(uuid) => Ok(Some(uuid.to_owned())),
        Some(uuid) => Err(Error::config(
            "spec.domain.firmware.uuid",
            format!("{uuid:?} is not a UUID"),
        )),
        // Upstream's webhook always sets one; a VMI that skipped it gets the object's UID.
        None => Ok(vmi.metadata.uid.clone().filter(|uid| is_uuid(uid))),
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn smbios(vmi: &VirtualMachineInstance, out: &mut Builder) -> Result<()> {
    // Upstream's SMBIOS defaults: family and manufacturer KubeVirt, product None.
    let mut props = Props::new("type=1")
        .set("manufacturer", "KubeVirt")
        .set("product", "None")
        .set("family", "KubeVirt");
    if let Some(uuid) = firmware_uuid(vmi)? {
        props = props.set("uuid", uuid);
    }
    if let Some(serial) = vmi
        .spec
        .domain
        .firmware
        .as_ref()
        .and_then(|f| f.serial.as_deref())
    {
        props = props.set("serial", serial);
    }
    out.arg("-smbios", props.to_string());
    Ok(())
}

/// A path as an argument string; QEMU's option parser needs UTF-8 here.
pub(crate) fn path_str<'a>(field: &str, path: &'a Path) -> Result<&'a str> {
    path.to_str()
        .ok_or_else(|| Error::config(field, format!("path {} is not UTF-8", path.display())))
}

//! Disks and CD-ROMs: the volume behind each one (and the file the launcher makes for it),
//! the `-blockdev` backend (cache, aio, read-only) and the guest device on its bus
//! (virtio-blk, AHCI `ide-hd`/`ide-cd`, virtio-scsi `scsi-hd`/`scsi-cd`).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{path_str, Builder, FileToCreate, Props};
use crate::config_disks;
use crate::error::{Error, Result};
use crate::quantity;
use crate::seed;
use crate::spec::{ImageFormat, LaunchSpec, RunPaths};
use crate::vmi::{Disk, Volume};

/// q35's built-in AHCI controller has six ports, `ide.0` to `ide.5`.
const SATA_PORTS: u32 = 6;

/// The image behind a disk.
struct Backing {
    path: PathBuf,
    format: &'static str,
    readonly: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Disk,
    Cdrom,
    Lun,
}

pub(super) fn add(spec: &LaunchSpec, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    let vmi = &spec.vmi;
    let mut sata_port = 0;
    let mut scsi_lun = 0;
    let mut scsi_controller = false;
    let boot_disk = pinned_boot_disk(&vmi.spec.domain.devices.disks);
    for (index, disk) in vmi.spec.domain.devices.disks.iter().enumerate() {
        let field = format!("spec.domain.devices.disks[{}]", disk.name);
        let volume = vmi
            .volume(&disk.name)
            .ok_or_else(|| Error::config(&field, format!("no volume named {:?}", disk.name)))?;
        let (kind, target) = match (&disk.disk, &disk.cdrom, &disk.lun) {
            (Some(t), _, _) => (Kind::Disk, t),
            (None, Some(t), _) => (Kind::Cdrom, t),
            (None, None, Some(t)) => (Kind::Lun, t),
            (None, None, None) => return Err(Error::config(&field, "no disk, cdrom or lun")),
        };
        let default_bus = if kind == Kind::Lun { "scsi" } else { "sata" };
        let bus = target.bus.as_deref().unwrap_or(default_bus);
        let mut backing = backing(spec, paths, volume, out)?;
        if target.readonly == Some(true) || kind == Kind::Cdrom && target.readonly != Some(false) {
            backing.readonly = true;
        }
        if backing.readonly && bus == "sata" && kind == Kind::Disk && target.readonly.is_none() {
            // AHCI hard disks cannot be read-only; a config volume's image is made for this
            // run alone, so letting the guest write to it harms nothing.
            if config_disks::label(volume).is_some() {
                backing.readonly = false;
                out.note(format!(
                    "{field}: SATA config disk is writable (AHCI disks cannot be read-only); \
                     its image is discarded on stop"
                ));
            }
        }
        let node = format!("d{index}");
        blockdev(disk, &backing, &node, &field, out)?;

        let id = format!("ua-{}", disk.name);
        let driver = match (bus, kind) {
            ("virtio", Kind::Disk) => "virtio-blk-pci",
            ("sata", Kind::Disk) => "ide-hd",
            ("sata", Kind::Cdrom) => "ide-cd",
            ("scsi", Kind::Disk | Kind::Lun) => "scsi-hd",
            ("scsi", Kind::Cdrom) => "scsi-cd",
            ("virtio", _) => {
                return Err(Error::config(
                    &field,
                    "a cdrom or lun cannot use the virtio bus",
                ))
            }
            (other, _) => {
                return Err(Error::config(
                    &field,
                    format!("bus {other:?} is not supported"),
                ))
            }
        };
        if kind == Kind::Lun {
            out.note(format!(
                "{field}: lun served as a plain SCSI disk (no passthrough)"
            ));
        }
        let mut props = Props::new(driver);
        match bus {
            "sata" => {
                if sata_port == SATA_PORTS {
                    return Err(Error::config(&field, "more than 6 SATA disks and CD-ROMs"));
                }
                if kind == Kind::Disk && backing.readonly {
                    return Err(Error::config(
                        &field,
                        "a SATA disk cannot be read-only (use a cdrom or virtio)",
                    ));
                }
                props = props.set("bus", format!("ide.{sata_port}"));
                sata_port += 1;
            }
            "scsi" => {
                if !scsi_controller {
                    out.device(
                        Props::new("virtio-scsi-pci").set("id", crate::hotplug::SCSI_CONTROLLER),
                    );
                    scsi_controller = true;
                }
                props = props
                    .set("bus", "scsi0.0")
                    .set("channel", 0)
                    .set("scsi-id", 0)
                    .set("lun", scsi_lun);
                scsi_lun += 1;
            }
            _ => {
                if disk.dedicated_io_thread == Some(true) {
                    let thread = format!("io-{node}");
                    out.arg("-object", format!("iothread,id={thread}"));
                    props = props.set("iothread", thread);
                }
            }
        }
        props = props
            .set("drive", format!("{node}-fmt"))
            .set("id", id)
            .set_opt(
                "bootindex",
                disk.boot_order
                    .or((boot_disk == Some(disk.name.as_str())).then_some(1)),
            )
            .set_opt("serial", disk.serial.as_deref());
        if !backing.readonly {
            let write_cache = match disk.cache.as_deref() {
                Some("writethrough") => Some("off"),
                Some("none" | "writeback") => Some("on"),
                _ => None,
            };
            props = props.set_opt("write-cache", write_cache);
            if kind != Kind::Cdrom {
                let (werror, rerror) = match disk.error_policy.as_deref() {
                    Some("stop") => (Some("stop"), Some("stop")),
                    Some("ignore") => (Some("ignore"), Some("ignore")),
                    Some("report") => (Some("report"), Some("report")),
                    Some("enospace") => (Some("enospc"), Some("report")),
                    Some(other) => {
                        return Err(Error::config(
                            &field,
                            format!("unknown errorPolicy {other:?}"),
                        ))
                    }
                    None => (None, None),
                };
                props = props.set_opt("werror", werror).set_opt("rerror", rerror);
            }
        }
        if disk.shareable == Some(true) {
            props = props.set("share-rw", "on");
        }
        if let Some(custom) = disk.block_size.as_ref().and_then(|b| b.custom.as_ref()) {
            props = props
                .set("logical_block_size", custom.logical)
                .set("physical_block_size", custom.physical);
        }
        out.device(props);
    }
    // Every VM gets the virtio-scsi controller even without SCSI disks, as upstream does:
    // hot-plugged disks go on it (a virtio disk would need a PCI slot reserved in advance).
    if !scsi_controller {
        out.device(Props::new("virtio-scsi-pci").set("id", crate::hotplug::SCSI_CONTROLLER));
    }
    Ok(())
}

/// The disk to give boot index 1 when no disk has a `bootOrder` but a SCSI hard disk is
/// there (e.g. a hot-plugged disk persisted into the VM): the firmware would otherwise try
/// the SCSI disk first. The first hard disk boots, as libvirt does for `<boot dev='hd'/>`.
fn pinned_boot_disk(disks: &[Disk]) -> Option<&str> {
    let scsi_disk = disks
        .iter()
        .any(|d| d.disk.as_ref().and_then(|t| t.bus.as_deref()) == Some("scsi"));
    if !scsi_disk || disks.iter().any(|d| d.boot_order.is_some()) {
        return None;
    }
    disks
        .iter()
        .find(|d| d.disk.is_some())
        .map(|d| d.name.as_str())
}

/// Adds the file node and the format node for `backing`: `<node>-file` and `<node>-fmt`.
fn blockdev(
    disk: &Disk,
    backing: &Backing,
    node: &str,
    field: &str,
    out: &mut Builder,
) -> Result<()> {
    let path = path_str(field, &backing.path)?;
    let direct = match disk.cache.as_deref() {
        None | Some("writeback" | "writethrough") => false,
        Some("none") => true,
        Some(other) => {
            return Err(Error::config(
                field,
                format!("unknown cache mode {other:?}"),
            ))
        }
    };
    // A shareable disk must not be cached on the host: another writer would not see it.
    let direct = direct || disk.shareable == Some(true);
    let aio = match disk.io.as_deref() {
        Some("native") if direct => "native",
        Some("native") => {
            out.note(format!(
                "{field}: io native needs cache none; using threads"
            ));
            "threads"
        }
        None | Some("threads" | "default") => "threads",
        Some(other) => return Err(Error::config(field, format!("unknown io mode {other:?}"))),
    };
    let driver = if path.starts_with("/dev/") {
        "host_device"
    } else {
        "file"
    };
    let cache = json!({"direct": direct, "no-flush": false});
    let file = json!({
        "driver": driver, "filename": path, "node-name": format!("{node}-file"),
        "read-only": backing.readonly, "cache": cache, "aio": aio, "discard": "unmap",
    });
    let format = json!({
        "driver": backing.format, "file": format!("{node}-file"), "node-name": format!("{node}-fmt"),
        "read-only": backing.readonly, "cache": cache, "discard": "unmap",
    });
    out.arg("-blockdev", file.to_string());
    out.arg("-blockdev", format.to_string());
    Ok(())
}

/// Works out which file serves `volume` and records the files to create for it.
fn backing(
    spec: &LaunchSpec,
    paths: &RunPaths,
    volume: &Volume,
    out: &mut Builder,
) -> Result<Backing> {
    let name = &volume.name;
    let field = format!("spec.volumes[{name}]");
    let source = spec.disks.get(name);
    let needs_source = || {
        source.ok_or_else(|| {
            Error::config(
                format!("launch.json disks.{name}"),
                "missing: the node agent gives no path for this volume",
            )
        })
    };
    let overlay = |source_path: &Path, format: ImageFormat, out: &mut Builder| {
        let path = paths.disk_file(name, "qcow2");
        out.file(FileToCreate::Overlay {
            path: path.clone(),
            backing: source_path.to_owned(),
            backing_format: format.as_str(),
        });
        Backing {
            path,
            format: "qcow2",
            readonly: false,
        }
    };
    if volume.container_disk.is_some() || volume.ephemeral.is_some() {
        // Each VMI writes to its own overlay; the base in the node cache stays untouched.
        let source = needs_source()?;
        return Ok(overlay(&source.path, source.format, out));
    }
    if let Some(empty) = &volume.empty_disk {
        let capacity = empty
            .capacity
            .as_ref()
            .ok_or_else(|| Error::config(format!("{field}.emptyDisk.capacity"), "required"))?;
        let size = quantity::parse_value(&format!("{field}.emptyDisk.capacity"), capacity)?;
        let path = paths.disk_file(name, "qcow2");
        out.file(FileToCreate::EmptyDisk {
            path: path.clone(),
            size,
        });
        return Ok(Backing {
            path,
            format: "qcow2",
            readonly: false,
        });
    }
    if let Some(host) = &volume.host_disk {
        let path = source.map_or_else(|| PathBuf::from(&host.path), |s| s.path.clone());
        if host.disk_type.as_deref() == Some("DiskOrCreate") {
            let capacity = host.capacity.as_ref().ok_or_else(|| {
                Error::config(
                    format!("{field}.hostDisk.capacity"),
                    "required with DiskOrCreate",
                )
            })?;
            let size = quantity::parse_value(&format!("{field}.hostDisk.capacity"), capacity)?;
            out.file(FileToCreate::RawIfMissing {
                path: path.clone(),
                size,
            });
        }
        let readonly = source.is_some_and(|s| s.readonly);
        return Ok(Backing {
            path,
            format: "raw",
            readonly,
        });
    }
    if let Some(cloud_init) = &volume.cloud_init_no_cloud {
        let path = paths.disk_file(name, "iso");
        let image = seed::no_cloud(&spec.vmi, &field, cloud_init)?;
        out.file(FileToCreate::Seed {
            path: path.clone(),
            image,
        });
        return Ok(Backing {
            path,
            format: "raw",
            readonly: false,
        });
    }
    if let Some(cloud_init) = &volume.cloud_init_config_drive {
        let path = paths.disk_file(name, "iso");
        let image = seed::config_drive(&spec.vmi, &field, cloud_init)?;
        out.file(FileToCreate::Seed {
            path: path.clone(),
            image,
        });
        return Ok(Backing {
            path,
            format: "raw",
            readonly: false,
        });
    }
    if let Some(label) = config_disks::label(volume) {
        // The node agent wrote the volume's files into a directory: make an image of it.
        let source = needs_source()?;
        let path = paths.disk_file(name, "iso");
        out.file(FileToCreate::IsoOfDirectory {
            path: path.clone(),
            label: label.to_owned(),
            source: source.path.clone(),
        });
        return Ok(Backing {
            path,
            format: "raw",
            readonly: true,
        });
    }
    if volume.persistent_volume_claim.is_some() || volume.data_volume.is_some() {
        let source = needs_source()?;
        if source.ephemeral {
            return Ok(overlay(&source.path, source.format, out));
        }
        return Ok(Backing {
            path: source.path.clone(),
            format: source.format.as_str(),
            readonly: source.readonly,
        });
    }
    Err(Error::config(
        field,
        "this volume type is not supported by the launcher yet",
    ))
}

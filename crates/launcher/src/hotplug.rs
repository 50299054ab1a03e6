//! Disk hot-plug (manual 7.15.1): the VM actor attaches a volume's image to the running
//! QEMU over QMP — `blockdev-add` of a file node and a format node, then `device_add
//! scsi-hd` on the `scsi0` virtio-scsi controller every VM has — and detaches it with
//! `device_del` and `blockdev-del`.
//!
//! Cold-plugged disks use SCSI target 0 (one LUN each, see `args::disks`); each hot-plugged
//! disk gets a target of its own (1–255) with LUN 0, so the guest's hot-plug event names
//! exactly the new target. The state lives in the actor: it is what this QEMU has, and a
//! new QEMU starts from its launch spec again.

use std::collections::BTreeMap;
use std::time::Duration;

use oxivirt_qmp::QmpClient;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::vmi::VirtualMachineInstance;

/// The controller `args::disks` always adds.
pub const SCSI_CONTROLLER: &str = "scsi0";
/// SCSI targets a virtio-scsi controller offers hot-plugged disks (0 is the cold disks').
const TARGETS: std::ops::RangeInclusive<u32> = 1..=255;
/// How long QEMU may take to confirm an unplug (`DEVICE_DELETED`); SCSI unplugs need no
/// guest cooperation, so this is seconds at most.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(15);

/// A disk to attach, as the node agent sends it on `control.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HotplugDisk {
    /// The volume (and disk) name.
    pub name: String,
    /// The image: a file or a block device.
    pub path: String,
    /// `raw` or `qcow2`.
    pub format: String,
    /// The serial the guest sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// `none`, `writethrough` or `writeback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// The guest may not write the disk.
    #[serde(default)]
    pub readonly: bool,
}

/// One disk this QEMU has.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attached {
    /// The block node prefix: `<node>-file` and `<node>-fmt`.
    node: String,
    /// The SCSI target of a hot-plugged disk (none for a cold-plugged one).
    target: Option<u32>,
}

/// The disks of the running QEMU, by volume name.
#[derive(Debug, Clone, Default)]
pub struct Disks {
    attached: BTreeMap<String, Attached>,
    next_node: u32,
    /// The disk to pin as the boot disk before the first hot-plug (see [`Disks::new`]).
    boot_disk: Option<String>,
}

fn device_id(name: &str) -> String {
    format!("ua-{name}")
}

impl Disks {
    /// The cold-plugged disks of `vmi`, named as `args::disks` names their nodes.
    ///
    /// Without any `bootOrder`, the firmware boots the first hard disk it finds, and after
    /// a reboot that can be a hot-plugged (blank) SCSI disk. So, as libvirt does for
    /// `<boot dev='hd'/>`, the VMI's first hard disk is given boot index 1 before the
    /// first hot-plug (QEMU rebuilds the firmware's boot order on reset).
    pub fn new(vmi: &VirtualMachineInstance) -> Self {
        let disks = &vmi.spec.domain.devices.disks;
        let boot_disk = disks
            .iter()
            .all(|d| d.boot_order.is_none())
            .then(|| disks.iter().find(|d| d.disk.is_some()))
            .flatten()
            .map(|d| d.name.clone());
        let attached = disks
            .iter()
            .enumerate()
            .map(|(index, disk)| {
                let node = format!("d{index}");
                (disk.name.clone(), Attached { node, target: None })
            })
            .collect();
        Disks {
            attached,
            next_node: 0,
            boot_disk,
        }
    }

    /// Every disk QEMU has: `[{"name", "hotplugged"}]`, for the node agent to compare
    /// with the VMI spec.
    pub fn list(&self) -> Value {
        let list: Vec<Value> = self
            .attached
            .iter()
            .map(|(name, a)| json!({"name": name, "hotplugged": a.target.is_some()}))
            .collect();
        json!(list)
    }

    /// Attaches `disk`; attaching a name QEMU already has does nothing.
    ///
    /// # Errors
    /// A message naming the QMP step that failed (nothing is left half-attached), or that
    /// every SCSI target is taken.
    pub async fn attach(&mut self, qmp: &QmpClient, disk: &HotplugDisk) -> Result<(), String> {
        if self.attached.contains_key(&disk.name) {
            return Ok(());
        }
        let used: Vec<u32> = self.attached.values().filter_map(|a| a.target).collect();
        let target = TARGETS
            .clone()
            .find(|t| !used.contains(t))
            .ok_or_else(|| format!("no free SCSI target for disk {}", disk.name))?;
        if let Some(boot) = self.boot_disk.take() {
            let path = format!("/machine/peripheral/{}", device_id(&boot));
            let pinned = qmp
                .execute(
                    "qom-set",
                    json!({"path": path, "property": "bootindex", "value": 1}),
                )
                .await;
            if let Err(error) = pinned {
                tracing::warn!(disk = %boot, %error, "cannot pin the boot disk; a reboot may try a hot-plugged disk first");
            }
        }
        let node = format!("hp{}", self.next_node);
        self.next_node += 1;
        let (file, format) = blockdev_options(disk, &node)?;
        qmp.blockdev_add(file)
            .await
            .map_err(|e| format!("blockdev-add of {} for disk {}: {e}", disk.path, disk.name))?;
        if let Err(e) = qmp.blockdev_add(format).await {
            let _ = qmp.blockdev_del(&format!("{node}-file")).await;
            return Err(format!(
                "blockdev-add of the {} format node for disk {}: {e}",
                disk.format, disk.name
            ));
        }
        let props = device_props(disk, &node, target);
        if let Err(e) = qmp
            .device_add("scsi-hd", &device_id(&disk.name), props)
            .await
        {
            let _ = qmp.blockdev_del(&format!("{node}-fmt")).await;
            let _ = qmp.blockdev_del(&format!("{node}-file")).await;
            return Err(format!("device_add scsi-hd for disk {}: {e}", disk.name));
        }
        tracing::info!(disk = %disk.name, target, path = %disk.path, "disk hot-plugged");
        self.attached.insert(
            disk.name.clone(),
            Attached {
                node,
                target: Some(target),
            },
        );
        Ok(())
    }

    /// Detaches disk `name`; a name QEMU does not have is already detached.
    ///
    /// # Errors
    /// A message naming the QMP step that failed.
    pub async fn detach(&mut self, qmp: &QmpClient, name: &str) -> Result<(), String> {
        let Some(attached) = self.attached.get(name).cloned() else {
            return Ok(());
        };
        qmp.device_del_and_wait(&device_id(name), UNPLUG_TIMEOUT)
            .await
            .map_err(|e| format!("device_del of disk {name}: {e}"))?;
        // The device is gone from here on, whatever happens to its block nodes.
        self.attached.remove(name);
        for suffix in ["fmt", "file"] {
            let node = format!("{}-{suffix}", attached.node);
            qmp.blockdev_del(&node)
                .await
                .map_err(|e| format!("blockdev-del {node} of disk {name}: {e}"))?;
        }
        tracing::info!(disk = %name, "disk unplugged");
        Ok(())
    }
}

/// The file and format nodes of a hot-plugged disk (as `args::disks` builds cold ones).
fn blockdev_options(disk: &HotplugDisk, node: &str) -> Result<(Value, Value), String> {
    let direct = match disk.cache.as_deref() {
        None | Some("writeback" | "writethrough") => false,
        Some("none") => true,
        Some(other) => return Err(format!("disk {}: unknown cache mode {other:?}", disk.name)),
    };
    let format = match disk.format.as_str() {
        f @ ("raw" | "qcow2") => f,
        other => {
            return Err(format!(
                "disk {}: unknown image format {other:?}",
                disk.name
            ))
        }
    };
    let driver = if disk.path.starts_with("/dev/") {
        "host_device"
    } else {
        "file"
    };
    let cache = json!({"direct": direct, "no-flush": false});
    let file = json!({
        "driver": driver, "filename": disk.path, "node-name": format!("{node}-file"),
        "read-only": disk.readonly, "cache": cache, "aio": "threads", "discard": "unmap",
    });
    let format = json!({
        "driver": format, "file": format!("{node}-file"), "node-name": format!("{node}-fmt"),
        "read-only": disk.readonly, "cache": cache, "discard": "unmap",
    });
    Ok((file, format))
}

fn device_props(disk: &HotplugDisk, node: &str, target: u32) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("bus".into(), json!(format!("{SCSI_CONTROLLER}.0")));
    props.insert("channel".into(), json!(0));
    props.insert("scsi-id".into(), json!(target));
    props.insert("lun".into(), json!(0));
    props.insert("drive".into(), json!(format!("{node}-fmt")));
    if let Some(serial) = &disk.serial {
        props.insert("serial".into(), json!(serial));
    }
    if !disk.readonly {
        let write_cache = match disk.cache.as_deref() {
            Some("writethrough") => Some("off"),
            Some("none" | "writeback") => Some("on"),
            _ => None,
        };
        if let Some(w) = write_cache {
            props.insert("write-cache".into(), json!(w));
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> HotplugDisk {
        HotplugDisk {
            name: "data".into(),
            path: "/var/lib/pv/disk.img".into(),
            format: "raw".into(),
            serial: Some("HP01".into()),
            cache: Some("none".into()),
            readonly: false,
        }
    }

    #[test]
    fn a_hotplugged_disk_is_a_scsi_hd_on_its_own_target() {
        let (file, format) = blockdev_options(&disk(), "hp0").expect("valid");
        assert_eq!(file["node-name"], "hp0-file");
        assert_eq!(file["cache"]["direct"], true);
        assert_eq!(format["file"], "hp0-file");
        assert_eq!(format["driver"], "raw");
        let props = device_props(&disk(), "hp0", 3);
        assert_eq!(props["bus"], "scsi0.0");
        assert_eq!(props["scsi-id"], 3);
        assert_eq!(props["lun"], 0);
        assert_eq!(props["serial"], "HP01");
        assert_eq!(props["write-cache"], "on");
    }

    #[test]
    fn unknown_cache_modes_and_formats_are_refused_by_name() {
        let mut bad = disk();
        bad.cache = Some("unsafe".into());
        assert!(blockdev_options(&bad, "hp0")
            .expect_err("cache")
            .contains("unknown cache mode"));
        let mut bad = disk();
        bad.format = "vmdk".into();
        assert!(blockdev_options(&bad, "hp0")
            .expect_err("format")
            .contains("unknown image format"));
    }

    #[test]
    fn requests_parse_in_contract_spelling() {
        let parsed: HotplugDisk = serde_json::from_str(
            r#"{"name":"d","path":"/p","format":"qcow2","serial":"S","readonly":true}"#,
        )
        .expect("parses");
        assert!(parsed.readonly);
        assert_eq!(parsed.cache, None);
    }
}

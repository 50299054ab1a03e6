//! Disk hot-plug on this node (upstream: virt-handler's hotplug volume sync): the API
//! server's `addvolume`/`removevolume` and the VM controller edit the VMI spec; this loop
//! makes each running launcher's QEMU have exactly the VMI's disks, and reports hot-plugged
//! volumes in `status.volumeStatus[]` with upstream's phases: `Pending` while the claim is
//! unbound (on a `WaitForFirstConsumer` class the binder provisions it on this node because
//! the VMI now names it), `Bound` while its DataVolume populates, `Ready`/`VolumeReady`
//! once attached ([`readiness`]).
//!
//! Level-triggered: a VMI watch mirrors VMIs into a store and wakes the loop; a pass also
//! runs every [`RESYNC`] while some VMI has hot-plugged volumes, and every
//! [`WAITING_RESYNC`] while one of them waits for its claim, which is how a claim becoming
//! `Bound` or a DataVolume `Succeeded` is noticed (claims are not watched: a wait is rare
//! and short next to the cost of mirroring every claim and DataVolume on every node). Each pass asks the
//! launcher which disks QEMU has (`volumes` on `control.sock`), attaches the hotpluggable
//! volumes it lacks and detaches the disks no longer in the spec. A guest reboot keeps
//! hot-plugged devices (QEMU resets them, it does not remove them); a new VMI of a VM that
//! persisted the volume starts with it as a cold disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::rundir::{self, LauncherPhase, RunDir};
use readiness::Waiting;

mod readiness;

/// How often every running VMI is re-checked when nothing changes.
const RESYNC: Duration = Duration::from_secs(3);

/// How often VMIs are re-checked while a hot-plugged volume waits for its claim to be
/// bound or populated (a few reads per waiting volume).
const WAITING_RESYNC: Duration = Duration::from_millis(500);

/// Runs until the process ends.
pub(crate) async fn run(client: kube::Client, data_dir: PathBuf, qemu_owner: Option<(u32, u32)>) {
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance");
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let writer = reflector::store::Writer::new(resource);
    let store = writer.as_reader();
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    tokio::spawn(async move {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|event| {
                match event {
                    Ok(_) => woken.notify_one(),
                    Err(e) => tracing::debug!(error = %e, "hotplug VMI watch error"),
                }
                futures::future::ready(())
            })
            .await;
    });
    let mut waiting = false;
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(if waiting { WAITING_RESYNC } else { RESYNC }) => {}
        }
        // VMIs change several times a second while VMs start; almost none of them have
        // hot-plugged disks. A pass looks at run directories only when some VMI does, and
        // passes come at most every SETTLE.
        if store.state().iter().any(|vmi| involves_hotplug(vmi)) {
            waiting = sync_all(&client, &data_dir, &store, qemu_owner).await;
        } else {
            waiting = false;
        }
        tokio::time::sleep(SETTLE).await;
    }
}

/// How long VMI changes gather before a pass.
const SETTLE: Duration = Duration::from_millis(100);

/// Whether `vmi` has hotpluggable volumes in its spec or hot-plugged ones in its status
/// (a volume being removed, or a persisted hot-plug that a new VMI starts with as a cold
/// disk: its launcher still reports it as hot-plugged until the spec drops it).
fn involves_hotplug(vmi: &DynamicObject) -> bool {
    !hotpluggable(&vmi.data["spec"]).is_empty()
        || vmi.data["status"]["volumeStatus"]
            .as_array()
            .is_some_and(|s| s.iter().any(|e| e.get("hotplugVolume").is_some()))
}

/// One pass over this node's running launchers; whether some volume waits for its claim.
async fn sync_all(
    client: &kube::Client,
    data_dir: &Path,
    store: &Store<DynamicObject>,
    qemu_owner: Option<(u32, u32)>,
) -> bool {
    let mut waiting = false;
    for (_, dir) in rundir::list(data_dir) {
        if dir.read_status().map(|s| s.phase) != Some(LauncherPhase::Running)
            && dir.read_status().map(|s| s.phase) != Some(LauncherPhase::Paused)
        {
            continue;
        }
        let Some(launched) = std::fs::read(dir.file("launch.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|l| l["vmi"]["metadata"].clone())
        else {
            continue;
        };
        let (Some(namespace), Some(name)) =
            (launched["namespace"].as_str(), launched["name"].as_str())
        else {
            continue;
        };
        let Some(vmi) = store.state().into_iter().find(|v| {
            v.metadata.name.as_deref() == Some(name)
                && v.metadata.namespace.as_deref() == Some(namespace)
        }) else {
            continue;
        };
        // A VMI of the same name that is not the one this launcher runs is left alone.
        if vmi.metadata.uid.as_deref() != launched["uid"].as_str() {
            continue;
        }
        let Ok(vmi) = serde_json::to_value(vmi.as_ref()) else {
            continue;
        };
        match sync(client, &dir, &vmi, qemu_owner).await {
            Ok(waits) => waiting |= waits,
            Err(error) => {
                tracing::warn!(vmi = %format!("{namespace}/{name}"), %error, "hotplug sync failed; retrying");
            }
        }
    }
    waiting
}

/// The hot-pluggable volumes of `spec`, by name.
fn hotpluggable(spec: &Value) -> BTreeMap<String, Value> {
    spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v["persistentVolumeClaim"]["hotpluggable"] == true
                || v["dataVolume"]["hotpluggable"] == true
        })
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v.clone())))
        .collect()
}

/// The guest's name for the `index`-th SCSI disk (`sda`, …, `sdz`, `sdaa`, …), as libvirt
/// names the target upstream reports.
fn scsi_target(index: usize) -> String {
    let letters = |mut n: usize| {
        let mut out = Vec::new();
        loop {
            out.push(b'a' + (n % 26) as u8);
            if n < 26 {
                break;
            }
            n = n / 26 - 1;
        }
        out.reverse();
        String::from_utf8_lossy(&out).into_owned()
    };
    format!("sd{}", letters(index))
}

/// One pass for one VMI: attach, detach, report; whether a volume waits for its claim.
async fn sync(
    client: &kube::Client,
    dir: &RunDir,
    vmi: &Value,
    qemu_owner: Option<(u32, u32)>,
) -> Result<bool, String> {
    let wanted = hotpluggable(&vmi["spec"]);
    let in_spec: Vec<&str> = vmi["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let has_status = vmi["status"]["volumeStatus"]
        .as_array()
        .is_some_and(|s| s.iter().any(|e| e.get("hotplugVolume").is_some()));
    if wanted.is_empty() && !has_status && !launched_with_hotplug(dir) {
        return Ok(false);
    }
    let reply = crate::endpoint::control::send(dir, &json!({"command": "volumes"})).await?;
    let attached: BTreeMap<String, bool> = reply["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["name"].as_str()?.to_string(), d["hotplugged"] == true)))
        .collect();
    for name in attached.keys() {
        if !in_spec.contains(&name.as_str()) {
            let reply = crate::endpoint::control::send(
                dir,
                &json!({"command": "removevolume", "name": name}),
            )
            .await?;
            if reply["ok"] != true {
                return Err(format!(
                    "unplugging {name}: {}",
                    reply["error"].as_str().unwrap_or("the launcher refused")
                ));
            }
        }
    }
    let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut outcomes: BTreeMap<String, Result<(), Waiting>> = BTreeMap::new();
    for (name, volume) in &wanted {
        if attached.contains_key(name) {
            outcomes.insert(name.clone(), Ok(()));
            continue;
        }
        // A claim still being provisioned or populated is reported, not tried: the next
        // pass (a VMI change, or at most WAITING_RESYNC later) looks again.
        let outcome = match readiness::check(client, namespace, volume).await {
            Ok(Some(waiting)) => Err(waiting),
            Ok(None) => attach(client, dir, vmi, name, volume, qemu_owner).await,
            Err(error) => Err(Waiting::sync_failed("Pending", error)),
        };
        if let Err(Waiting {
            reason: "FailedHotplugSync",
            message,
            ..
        }) = &outcome
        {
            tracing::warn!(volume = %name, error = %message, "hot-plug failed; retrying");
        }
        outcomes.insert(name.clone(), outcome);
    }
    write_status(client, vmi, &outcomes).await?;
    let waits = outcomes
        .values()
        .any(|o| matches!(o, Err(w) if w.on_its_way));
    Ok(waits)
}

/// Whether this launcher's spec had hotpluggable volumes (a persisted hot-plug): their
/// removal must still be noticed once the VMI spec has none.
fn launched_with_hotplug(dir: &RunDir) -> bool {
    std::fs::read(dir.file("launch.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|l| !hotpluggable(&l["vmi"]["spec"]).is_empty())
}

/// Resolves the volume's claim to its image on this node and has the launcher attach it.
///
/// # Errors
/// `Bound` when the image cannot be resolved or handed to QEMU's user, `MountedToPod` when
/// the launcher cannot be asked or refuses the disk.
async fn attach(
    client: &kube::Client,
    dir: &RunDir,
    vmi: &Value,
    name: &str,
    volume: &Value,
    qemu_owner: Option<(u32, u32)>,
) -> Result<(), Waiting> {
    let one = json!({
        "metadata": {"namespace": vmi["metadata"]["namespace"]},
        "spec": {"volumes": [volume]},
    });
    let disks = crate::volumes::claim_disks(client, &one, qemu_owner)
        .await
        .map_err(|e| Waiting::sync_failed("Bound", crate::status::chain(&e)))?;
    let source = disks.get(name).ok_or_else(|| {
        Waiting::sync_failed("Bound", format!("volume {name} has no claim to attach"))
    })?;
    let disk = vmi["spec"]["domain"]["devices"]["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap_or_default();
    let readonly =
        source.readonly || disk["disk"]["readonly"] == true || disk["lun"]["readonly"] == true;
    let request = json!({
        "command": "addvolume",
        "name": name,
        "path": source.path,
        "format": source.format,
        "serial": disk["serial"],
        "cache": disk["cache"],
        "readonly": readonly,
    });
    let mounted = |message: String| Waiting::sync_failed("MountedToPod", message);
    let reply = crate::endpoint::control::send(dir, &request)
        .await
        .map_err(mounted)?;
    if reply["ok"] == true {
        Ok(())
    } else {
        Err(mounted(
            reply["error"]
                .as_str()
                .unwrap_or("the launcher refused the disk")
                .to_string(),
        ))
    }
}

/// `status.volumeStatus[]` with the hot-plugged volumes' outcomes; other entries kept.
fn volume_status(vmi: &Value, outcomes: &BTreeMap<String, Result<(), Waiting>>) -> Vec<Value> {
    let current = vmi["status"]["volumeStatus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cold_scsi = vmi["spec"]["domain"]["devices"]["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            let name = d["name"].as_str().unwrap_or_default();
            !outcomes.contains_key(name)
                && (d["disk"]["bus"] == "scsi"
                    || d["lun"]["bus"] == "scsi"
                    || d["cdrom"]["bus"] == "scsi")
        })
        .count();
    let mut out: Vec<Value> = current
        .into_iter()
        .filter(|e| e.get("hotplugVolume").is_none())
        .collect();
    for (index, (name, outcome)) in outcomes.iter().enumerate() {
        let previous = vmi["status"]["volumeStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name.as_str());
        let mut entry = json!({
            "name": name,
            "target": scsi_target(cold_scsi + index),
            "hotplugVolume": {},
        });
        match outcome {
            Ok(()) => {
                entry["phase"] = json!("Ready");
                entry["reason"] = json!("VolumeReady");
                entry["message"] = json!(format!(
                    "Successfully attach hotplugged volume {name} to VM"
                ));
            }
            Err(waiting) => {
                entry["phase"] = json!(waiting.phase);
                entry["reason"] = json!(waiting.reason);
                entry["message"] = json!(waiting.message);
            }
        }
        if let Some(claim) = previous.and_then(|p| p.get("persistentVolumeClaimInfo")) {
            entry["persistentVolumeClaimInfo"] = claim.clone();
        }
        out.push(entry);
    }
    out
}

async fn write_status(
    client: &kube::Client,
    vmi: &Value,
    outcomes: &BTreeMap<String, Result<(), Waiting>>,
) -> Result<(), String> {
    let entries = volume_status(vmi, outcomes);
    let current = vmi["status"]["volumeStatus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if entries == current {
        return Ok(());
    }
    let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = vmi["metadata"]["name"].as_str().unwrap_or_default();
    let mut updated = vmi.clone();
    if entries.is_empty() {
        if let Some(status) = updated["status"].as_object_mut() {
            status.remove("volumeStatus");
        }
    } else {
        updated["status"]["volumeStatus"] = json!(entries);
    }
    let object: DynamicObject =
        serde_json::from_value(updated).map_err(|e| format!("VMI {namespace}/{name}: {e}"))?;
    // A conflict with another status writer is retried on the next pass (the store then
    // holds the newer VMI).
    crate::realise::vmi_api(client, namespace)
        .replace(name, &PostParams::default(), &object)
        .await
        .map(drop)
        .map_err(|e| format!("writing the volume status of VMI {namespace}/{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scsi_targets_are_named_as_the_guest_names_them() {
        assert_eq!(scsi_target(0), "sda");
        assert_eq!(scsi_target(25), "sdz");
        assert_eq!(scsi_target(26), "sdaa");
    }

    #[test]
    fn ready_and_failed_hotplugs_are_reported_and_other_entries_kept() {
        let vmi = json!({
            "spec": {"domain": {"devices": {"disks": [
                {"name": "root", "disk": {"bus": "scsi"}},
                {"name": "hp1", "disk": {"bus": "scsi"}},
                {"name": "hp2", "disk": {"bus": "scsi"}}]}}},
            "status": {"volumeStatus": [{"name": "root", "target": "sda"}]},
        });
        let outcomes = BTreeMap::from([
            ("hp1".to_string(), Ok(())),
            (
                "hp2".to_string(),
                Err(Waiting {
                    phase: "Pending",
                    reason: "PVCNotReady",
                    message: "PVC is in phase Pending".to_string(),
                    on_its_way: true,
                }),
            ),
        ]);
        let status = volume_status(&vmi, &outcomes);
        assert_eq!(status[0], json!({"name": "root", "target": "sda"}));
        assert_eq!(status[1]["target"], "sdb");
        assert_eq!(status[1]["phase"], "Ready");
        assert_eq!(status[1]["reason"], "VolumeReady");
        assert_eq!(
            status[1]["message"],
            "Successfully attach hotplugged volume hp1 to VM"
        );
        assert_eq!(status[2]["phase"], "Pending");
        assert_eq!(status[2]["reason"], "PVCNotReady");
        assert_eq!(status[2]["message"], "PVC is in phase Pending");
        assert!(volume_status(&vmi, &BTreeMap::new()).len() == 1);
    }

    #[test]
    fn only_hotpluggable_claims_are_synced() {
        let spec = json!({"volumes": [
            {"name": "root", "containerDisk": {"image": "x"}},
            {"name": "cold", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "hot", "dataVolume": {"name": "d", "hotpluggable": true}}]});
        assert_eq!(hotpluggable(&spec).keys().collect::<Vec<_>>(), vec!["hot"]);
    }
}

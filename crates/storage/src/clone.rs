//! DataVolumes with a `pvc` source: the clone strategy (manual §7.2.7, §9.2), then either the
//! provisioner's native clone (a claim with `dataSource`, made as qcow2 overlays in O(1)) or a
//! host-assisted copy by a worker Pod (`cdi-clone-<target>`, `qemu-img convert` of the
//! source's disk), with CDI's `cdi.kubevirt.io/cloneType` / `cloneFallbackReason`
//! annotations and the `IncompatibleVolumeModes` warning.

use serde_json::{json, Value};

use crate::kinds::{
    self, annotation, name, namespace, str_at, DATA_VOLUME, PV, PVC, STORAGE_PROFILE,
};
use crate::world::World;

pub const ANN_CLONE_TYPE: &str = "cdi.kubevirt.io/cloneType";
pub const ANN_FALLBACK_REASON: &str = "cdi.kubevirt.io/cloneFallbackReason";

/// How a clone is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The provisioner clones (`csi-clone` or `snapshot` as the profile asks; both are qcow2
    /// overlays on the hostpath provisioner).
    Native(&'static str),
    /// A worker copies the data (`copy`), with why the native way was not taken, if it was
    /// wanted.
    Copy(Option<String>),
}

/// `(namespace, name)` of a DataVolume's source claim.
pub fn source_ref(dv: &Value) -> Option<(String, String)> {
    let pvc = &dv["spec"]["source"]["pvc"];
    let name = pvc["name"].as_str()?;
    let ns = pvc["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace(dv));
    Some((ns.to_string(), name.to_string()))
}

/// The source claim of a clone DataVolume, if it exists.
pub fn source_claim(world: &World, dv: &Value) -> Option<Value> {
    let (ns, name) = source_ref(dv)?;
    world.get(PVC, &ns, &name)
}

fn provisioner_of(world: &World, claim: &Value) -> Option<String> {
    let class = crate::classes::class_of_claim(claim)?;
    world
        .get(crate::kinds::STORAGE_CLASS, "", class)
        .and_then(|c| c["provisioner"].as_str().map(str::to_string))
}

fn volume_mode(claim: &Value) -> &str {
    str_at(claim, "/spec/volumeMode").unwrap_or("Filesystem")
}

/// Picks the strategy for cloning `source` into a claim rendered as `target_spec`.
pub fn strategy(world: &World, source: &Value, target_spec: &Value) -> Strategy {
    let target_class = target_spec["storageClassName"].as_str().unwrap_or_default();
    let wanted = world
        .get(STORAGE_PROFILE, "", target_class)
        .and_then(|p| p["status"]["cloneStrategy"].as_str().map(str::to_string))
        .unwrap_or_else(|| "snapshot".into());
    if wanted == "copy" {
        return Strategy::Copy(None);
    }
    let source_ours = provisioner_of(world, source).is_some_and(|p| crate::classes::is_ours(&p));
    let target_ours = world
        .get(crate::kinds::STORAGE_CLASS, "", target_class)
        .is_some_and(|c| crate::classes::is_ours(c["provisioner"].as_str().unwrap_or_default()));
    let same_class = crate::classes::class_of_claim(source) == Some(target_class);
    let same_mode =
        volume_mode(source) == target_spec["volumeMode"].as_str().unwrap_or("Filesystem");
    if !same_mode {
        return Strategy::Copy(Some("volume modes of source and target differ".into()));
    }
    if !(source_ours && target_ours && same_class) {
        return Strategy::Copy(Some(format!(
            "{wanted} clone needs the source and target in the same storage class of a provisioner that clones"
        )));
    }
    Strategy::Native(if wanted == "csi-clone" {
        "csi-clone"
    } else {
        "snapshot"
    })
}

/// Whether the source is ready to be cloned: bound, and if a DataVolume populates it, done.
pub fn source_ready(world: &World, source: &Value) -> Result<(), String> {
    let (ns, source_name) = (namespace(source), name(source));
    if kinds::phase(source) != "Bound" {
        return Err(format!("source PVC {ns}/{source_name} is not bound"));
    }
    if let Some(dv) = world.get(DATA_VOLUME, ns, source_name) {
        if kinds::phase(&dv) != "Succeeded" {
            return Err(format!(
                "source DataVolume {ns}/{source_name} is not populated yet"
            ));
        }
    }
    let volume = str_at(source, "/spec/volumeName").and_then(|v| world.get(PV, "", v));
    if volume.is_none() {
        return Err(format!("source PVC {ns}/{source_name} has no volume"));
    }
    Ok(())
}

/// The annotations a clone DataVolume carries.
pub fn annotations_for(strategy: &Strategy) -> Value {
    match strategy {
        Strategy::Native(kind) => json!({ANN_CLONE_TYPE: kind}),
        Strategy::Copy(None) => json!({ANN_CLONE_TYPE: "copy"}),
        Strategy::Copy(Some(reason)) => {
            json!({ANN_CLONE_TYPE: "copy", ANN_FALLBACK_REASON: reason})
        }
    }
}

/// The worker Pod copying `source`'s disk into the bound `target` (host-assisted clone).
pub fn copy_pod(world: &World, dv: &Value, source: &Value, target: &Value) -> Option<Value> {
    let mut pod = crate::importer_pod::importer_pod(world, dv, target)?;
    pod["metadata"]["name"] = json!(format!("cdi-clone-{}", name(target)));
    pod["metadata"]["labels"][crate::well_known::CDI_COMPONENT_LABEL] = json!("cdi-clone-source");
    let container = &mut pod["spec"]["containers"][0];
    if let Some(env) = container["env"].as_array_mut() {
        for var in env.iter_mut() {
            if var["name"] == crate::well_known::env::SOURCE {
                var["value"] = json!("pvc");
            }
            if var["name"] == crate::well_known::env::ENDPOINT {
                var["value"] = json!("/source");
            }
        }
    }
    if let Some(mounts) = container["volumeMounts"].as_array_mut() {
        mounts.push(json!({"name": "cdi-source-vol", "mountPath": "/source", "readOnly": true}));
    }
    // The source may be in another namespace, which a claim volume cannot reach: the worker
    // mounts the source's volume directory itself (Pods are created only by oxivirt).
    let source_dir = str_at(source, "/spec/volumeName")
        .and_then(|v| world.get(PV, "", v))
        .and_then(|pv| str_at(&pv, "/spec/hostPath/path").map(str::to_string))?;
    if let Some(volumes) = pod["spec"]["volumes"].as_array_mut() {
        volumes.push(json!({"name": "cdi-source-vol", "hostPath": {"path": source_dir, "type": "Directory"}}));
    }
    Some(pod)
}

/// Whether the copy worker may run: source and target on one node (local volumes).
pub fn colocated(world: &World, source: &Value, target: &Value) -> bool {
    let node = |c: &Value| crate::importer_pod::claim_node(world, c);
    node(source).is_some() && node(source) == node(target)
}

/// The source's node, for placing the target of a copy next to it.
pub fn source_node(world: &World, source: &Value) -> Option<String> {
    crate::importer_pod::claim_node(world, source)
}

/// `true` when a DataVolume has a `pvc` source.
pub fn is_clone(dv: &Value) -> bool {
    crate::claim::source_type(dv) == Some("pvc")
}

/// A short text naming the source for Events.
pub fn describe(dv: &Value) -> String {
    source_ref(dv)
        .map(|(ns, n)| format!("{ns}/{n}"))
        .unwrap_or_default()
}

/// Whether a claim was made by our native clone (it names its source).
pub fn native_claim(claim: &Value) -> bool {
    claim["spec"]["dataSource"]["kind"] == "PersistentVolumeClaim"
        || annotation(claim, ANN_CLONE_TYPE).is_some_and(|t| t != "copy")
}

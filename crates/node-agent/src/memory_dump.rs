//! Memory dumps on this node (`virtctl memory-dump get`): the API server, having recorded
//! the request in the VM's `status.memoryDumpRequest`, asks the agent (`PUT …/memorydump?
//! claimName=&fileName=&vm=`) to have the launcher dump the guest's memory into a file on
//! the claim's volume; a task then follows QEMU's `query-dump` and moves the request to
//! `Completed` or `Failed`.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Api;
use serde_json::{json, Value};

use crate::rundir::RunDir;

/// How often QEMU is asked how far the dump is.
const POLL: Duration = Duration::from_millis(500);
/// Longest a dump may take (a large guest on a slow disk).
const LIMIT: Duration = Duration::from_secs(3600);

/// The directory of the Filesystem volume bound to `claim`, on this node.
async fn claim_dir(client: &kube::Client, namespace: &str, claim: &str) -> Result<PathBuf, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = claims
        .get(claim)
        .await
        .map_err(|e| format!("reading persistentvolumeclaim {namespace}/{claim}: {e}"))?;
    let volume = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" is not bound"))?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let spec = pvs
        .get(&volume)
        .await
        .map_err(|e| format!("reading persistentvolume {volume}: {e}"))?
        .spec
        .unwrap_or_default();
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(format!("persistentvolume \"{volume}\" is a Block volume"));
    }
    spec.host_path
        .map(|h| h.path)
        .or_else(|| spec.local.map(|l| l.path))
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            format!("persistentvolume \"{volume}\" is not a local directory on this node")
        })
}

/// QEMU's user and group, as the launcher runs it (`launch.json` `uid`/`gid`).
fn qemu_owner(dir: &RunDir) -> Option<(u32, u32)> {
    let launch: Value =
        serde_json::from_slice(&std::fs::read(dir.file("launch.json")).ok()?).ok()?;
    let uid = u32::try_from(launch["uid"].as_u64()?).ok()?;
    let gid = launch["gid"]
        .as_u64()
        .and_then(|g| u32::try_from(g).ok())
        .unwrap_or(uid);
    Some((uid, gid))
}

/// Starts the dump; `Ok` once QEMU has begun writing.
///
/// # Errors
/// A message for the API server (answered as 409): the claim cannot be used, the file
/// cannot be made, or QEMU refused.
pub(crate) async fn start(
    client: &kube::Client,
    dir: RunDir,
    namespace: &str,
    query: Option<&str>,
) -> Result<(), String> {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let (Some(claim), Some(file), Some(vm)) = (
        params.get("claimName"),
        params.get("fileName"),
        params.get("vm"),
    ) else {
        return Err("memorydump needs claimName, fileName and vm".into());
    };
    if file.contains('/') || file.starts_with('.') {
        return Err(format!(
            "memory dump file name {file:?} is not a plain file name"
        ));
    }
    let path = claim_dir(client, namespace, claim).await?.join(file);
    // QEMU opens the file as its own user: make it and hand it over first.
    std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    crate::qemu_user::hand_over(&path, qemu_owner(&dir))?;
    let path_text = path.to_string_lossy().into_owned();
    let reply =
        crate::endpoint::control::send(&dir, &json!({"command": "dumpmemory", "path": path_text}))
            .await?;
    if reply["ok"] != true {
        let _ = std::fs::remove_file(&path);
        return Err(reply["error"]
            .as_str()
            .unwrap_or("the launcher refused the memory dump")
            .to_string());
    }
    tracing::info!(vm = %format!("{namespace}/{vm}"), path = %path_text, "memory dump started");
    tokio::spawn(follow(
        client.clone(),
        dir,
        namespace.to_string(),
        vm.clone(),
        file.clone(),
    ));
    Ok(())
}

/// Waits for QEMU to finish and records the outcome in the VM status.
async fn follow(client: kube::Client, dir: RunDir, namespace: String, vm: String, file: String) {
    let started = std::time::Instant::now();
    let outcome = loop {
        tokio::time::sleep(POLL).await;
        if started.elapsed() > LIMIT {
            break Err(format!(
                "the memory dump did not finish within {} s",
                LIMIT.as_secs()
            ));
        }
        match crate::endpoint::control::send(&dir, &json!({"command": "dumpstatus"})).await {
            Ok(reply) if reply["ok"] == true => match reply["data"]["status"].as_str() {
                Some("completed") => break Ok(()),
                Some("failed") => break Err("QEMU failed to write the memory dump".to_string()),
                _ => continue,
            },
            Ok(reply) => {
                break Err(reply["error"]
                    .as_str()
                    .unwrap_or("the launcher cannot report the memory dump")
                    .to_string())
            }
            Err(e) => break Err(e),
        }
    };
    let now = crate::status::now();
    let update = match &outcome {
        Ok(()) => json!({"phase": "Completed", "endTimestamp": now}),
        Err(message) => json!({"phase": "Failed", "endTimestamp": now, "message": message}),
    };
    if let Err(error) = record(&client, &namespace, &vm, &file, update).await {
        tracing::warn!(vm = %format!("{namespace}/{vm}"), %error, "cannot record the memory dump outcome");
    }
}

/// Merges `update` into the VM's request, if it is still the one for `file`.
async fn record(
    client: &kube::Client,
    namespace: &str,
    vm: &str,
    file: &str,
    update: Value,
) -> Result<(), String> {
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
    let current = api.get(vm).await.map_err(|e| e.to_string())?;
    if current.data["status"]["memoryDumpRequest"]["fileName"] != file {
        return Ok(());
    }
    let patch = json!({"status": {"memoryDumpRequest": update}});
    api.patch_status(vm, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

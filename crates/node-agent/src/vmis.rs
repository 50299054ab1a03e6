//! The VMIs being deleted, as virt-handler watches them: a running guest whose VMI is deleted
//! is shut down by the agent (ACPI, then kill after the VMI's `terminationGracePeriodSeconds`),
//! while the VMI controller leaves its Pod alone until the VMI ends or the grace period
//! passes. Supervisors read the shared [`Deleting`] map by their VMI's UID (the Pod label
//! `kubevirt.io/created-by`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use tokio::sync::watch;

/// Upstream's default `terminationGracePeriodSeconds` of a VMI.
const DEFAULT_GRACE_SECONDS: u64 = 30;
/// How long a deleted VMI's entry is kept for Pods that still reference it.
const KEEP: Duration = Duration::from_secs(3600);

/// VMI UID → (grace seconds, when the deletion was seen), for VMIs being deleted or gone.
pub(crate) type Deleting = HashMap<String, (u64, Instant)>;

/// Watches every VMI and records those being deleted (or deleted) in `tx`.
pub(crate) async fn run(client: kube::Client, tx: watch::Sender<Deleting>) {
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance");
    let api: Api<DynamicObject> = Api::all_with(client, &ApiResource::from_gvk(&gvk));
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let (vmi, gone) = match event {
            Ok(Event::Apply(vmi) | Event::InitApply(vmi)) => (vmi, false),
            Ok(Event::Delete(vmi)) => (vmi, true),
            Ok(Event::Init | Event::InitDone) => continue,
            Err(e) => {
                tracing::warn!(error = %crate::status::chain(&e), "VMI watch failed; retrying");
                continue;
            }
        };
        if !gone && vmi.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let Some(uid) = vmi.uid() else { continue };
        let grace = vmi.data["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        tx.send_if_modified(|map| {
            map.retain(|_, (_, seen)| seen.elapsed() < KEEP);
            map.insert(uid, (grace, Instant::now())).is_none()
        });
    }
}

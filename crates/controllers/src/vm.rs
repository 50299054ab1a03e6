//! The VirtualMachine controller: keeps a VMI (same name, controlled by the VM) in line
//! with the run strategy and the state change requests, creates the VM's DataVolumes, and
//! writes the VM status (`printableStatus`, `ready`, `created`, `runStrategy`, conditions,
//! `startFailure`, generations), as upstream's `pkg/virt-controller/watch/vm` does.
//!
//! # Guarantees
//! Idempotent and level-triggered: every pass reads the VM and VMI afresh from the API,
//! and every status write carries the resourceVersion it was computed from, so a pass that
//! raced another writer fails with a conflict and is retried. Every `.await` is a
//! cancellation point; an interrupted pass is redone from the start.

mod instance;
mod interfaces;
mod persistent_state;
mod status;
mod strategy;
mod volume_requests;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{EventType, Regarding};
use crate::object::{
    conditions, data_volume_resource, finalizers_with, has_condition, has_finalizer,
    is_controlled_by, is_deleting, resource_version, str_at, to_json, vm_resource, vmi_resource,
};
use crate::well_known::{reason, ORPHAN_FINALIZER, VM_FINALIZER, VM_GENERATION_ANNOTATION};
use status::Observed;
use strategy::Decision;

/// How often a VM is looked at even when nothing about it changed.
const RESYNC: Duration = Duration::from_secs(300);

/// What a pass reads besides the API: the VMI cache, filled by the watch that also wakes
/// the controller for VMI changes.
struct Shared {
    ctx: Context,
    vmis: Store<DynamicObject>,
}

/// Runs the controller until its watches end.
pub async fn run(ctx: Context) {
    let client = ctx.client().clone();
    let vms: Api<DynamicObject> = Api::all_with(client.clone(), &vm_resource());
    let (vmi_cache, vmi_changes) = crate::cache::reflected(
        Api::<DynamicObject>::all_with(client.clone(), &vmi_resource()),
        vmi_resource(),
    );
    let dvs: Api<DynamicObject> = Api::all_with(client, &data_volume_resource());
    let shared = Shared {
        ctx,
        vmis: vmi_cache,
    };
    Controller::new_with(vms, watcher::Config::default(), vm_resource())
        .owns_stream_with(vmi_changes, vmi_resource())
        .owns_with(dvs, data_volume_resource(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(shared))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "virtualmachine reconcile failed");
            }
        })
        .await;
}

fn error_policy(_vm: Arc<DynamicObject>, error: &Error, _shared: Arc<Shared>) -> Action {
    match error {
        Error::Api { source, .. } if is_conflict(source) => {
            Action::requeue(Duration::from_millis(200))
        }
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One pass over a VM: the state it observed and what it did.
struct Pass<'a> {
    ctx: &'a Context,
    vmi_cache: &'a Store<DynamicObject>,
    vms: Api<DynamicObject>,
    vmis: Api<DynamicObject>,
    vm: DynamicObject,
    json: Value,
    regarding: Regarding,
    start_expected: bool,
    stop_expected: bool,
    /// `(reason, message)` of what went wrong (the `Failure` condition).
    failure: Option<(String, String)>,
    /// `Some(Some(message))` sets `RestartRequired`, `Some(None)` clears it.
    restart_required: Option<Option<String>>,
}

/// # Errors
/// API failures (conflicts are retried quickly by [`error_policy`]).
///
/// The VM is the one from the controller's cache: a pass that computed from a VM older
/// than the stored one writes with its resourceVersion and gets a conflict (and a quick
/// retry), so reading it again from the API on every pass bought nothing.
async fn reconcile(vm: Arc<DynamicObject>, shared: Arc<Shared>) -> Result<Action> {
    let ns = vm
        .namespace()
        .ok_or(Error::Malformed("metadata.namespace"))?;
    let ctx = &shared.ctx;
    let vms: Api<DynamicObject> = Api::namespaced_with(ctx.client().clone(), &ns, &vm_resource());
    let vmis: Api<DynamicObject> = Api::namespaced_with(ctx.client().clone(), &ns, &vmi_resource());
    let vm = DynamicObject::clone(&vm);
    let json = to_json(&vm);
    let mut pass = Pass {
        ctx,
        vmi_cache: &shared.vmis,
        regarding: Regarding::of(&json, "kubevirt.io/v1", "VirtualMachine"),
        vms,
        vmis,
        vm,
        json,
        start_expected: false,
        stop_expected: false,
        failure: None,
        restart_required: None,
    };
    let vmi = pass.current_vmi().await?;
    if is_deleting(&pass.json) {
        pass.finish_deletion(vmi.as_ref()).await?;
        return Ok(Action::await_change());
    }
    pass.ensure_finalizer().await?;
    // Before a VMI may be started from the template: it then starts with the disks.
    let vmi = volume_requests::handle(&mut pass, vmi).await?;
    if let Some(failure) = strategy::start_failure(&pass.json, vmi.as_ref()) {
        // Written before the VMI is deleted, or the failure would go unseen.
        pass.patch_status(Map::from_iter([("startFailure".into(), failure)]))
            .await?;
    }
    let strategy = strategy::run_strategy(&pass.json).to_string();
    let ready = instance::sync_data_volumes(pass.ctx, &pass.vm, &pass.json).await?;
    let mut action = Action::requeue(RESYNC);
    let mut vmi = vmi;
    if ready || strategy == "Halted" {
        match strategy::decide(&pass.json, vmi.as_ref()) {
            Decision::Nothing => {}
            // The status below then describes the VMI just created, in one write, rather
            // than "VMI does not exist" now and the VMI in the pass its watch event wakes.
            Decision::Start => vmi = pass.start().await?.or(vmi),
            Decision::Stop => pass.stop(vmi.as_ref()).await,
            Decision::StopAndRequestStart => {
                pass.request_start().await?;
                pass.stop(vmi.as_ref()).await;
            }
            Decision::SwitchToAlways => pass.switch_to_always().await?,
            Decision::Backoff(left) => {
                let left = u64::try_from(left).unwrap_or(1);
                action = Action::requeue(Duration::from_secs(left));
            }
        }
    }
    let vmi = pass.sync_generation(vmi).await?;
    pass.write_status(vmi.as_ref()).await?;
    if pass.failure.is_some() {
        action = Action::requeue(Duration::from_secs(10));
    }
    Ok(action)
}

impl Pass<'_> {
    fn what(&self) -> String {
        format!(
            "VirtualMachine {}/{}",
            self.vm.namespace().unwrap_or_default(),
            self.vm.name_any()
        )
    }

    async fn event(&self, type_: EventType, reason: &str, message: &str) {
        self.ctx
            .recorder()
            .publish(&self.regarding, type_, reason, message)
            .await;
    }

    /// The VMI of the same name if this VM controls it; an orphan is adopted, one
    /// controlled by something else is left alone (and blocks starting).
    ///
    /// From the VMI cache; only a miss asks the API, so a VMI the previous pass created
    /// and the cache has not seen yet is never created twice.
    async fn current_vmi(&mut self) -> Result<Option<Value>> {
        let name = self.vm.name_any();
        let what = format!("VirtualMachineInstance of {}", self.what());
        let ns = self.vm.namespace().unwrap_or_default();
        let vmi = match crate::cache::cached(self.vmi_cache, &vmi_resource(), &ns, &name) {
            Some(vmi) => to_json(&vmi),
            None => match self.vmis.get_opt(&name).await.map_err(Error::api(&what))? {
                Some(vmi) => to_json(&vmi),
                None => return Ok(None),
            },
        };
        let uid = self.vm.uid().unwrap_or_default();
        if is_controlled_by(&vmi, &uid) {
            return Ok(Some(vmi));
        }
        let has_controller = vmi["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["controller"] == true));
        if has_controller || is_deleting(&vmi) {
            self.failure = Some((
                reason::FAILED_CREATE.into(),
                format!("VirtualMachineInstance {name} exists and is controlled by another object"),
            ));
            return Ok(None);
        }
        let mut refs = vmi["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        refs.push(crate::object::controller_ref(
            &self.vm,
            "kubevirt.io/v1",
            "VirtualMachine",
        ));
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": resource_version(&vmi)}});
        let adopted = self
            .vmis
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(&what))?;
        Ok(Some(to_json(&adopted)))
    }

    /// A deleted VM stops its VMI first, then lets go of its finalizer.
    async fn finish_deletion(&mut self, vmi: Option<&Value>) -> Result<()> {
        let orphan = has_finalizer(&self.json, ORPHAN_FINALIZER);
        if let (Some(vmi), false) = (vmi, orphan) {
            self.stop(Some(vmi)).await;
            return self.write_status(Some(vmi)).await;
        }
        if has_finalizer(&self.json, VM_FINALIZER) {
            let patch = json!({"metadata": {
                "finalizers": finalizers_with(&self.json, VM_FINALIZER, false),
                "resourceVersion": resource_version(&self.json),
            }});
            let what = self.what();
            match self
                .vms
                .patch(
                    &self.vm.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::api(what)(e)),
            }
        }
        self.ctx
            .remember_start_revision(&self.vm.uid().unwrap_or_default(), None);
        Ok(())
    }

    async fn ensure_finalizer(&mut self) -> Result<()> {
        if has_finalizer(&self.json, VM_FINALIZER) {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "finalizers": finalizers_with(&self.json, VM_FINALIZER, true),
            "resourceVersion": resource_version(&self.json),
        }});
        let updated = self
            .vms
            .patch(
                &self.vm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::api(self.what()))?;
        self.set_vm(updated);
        Ok(())
    }

    fn set_vm(&mut self, vm: DynamicObject) {
        self.json = to_json(&vm);
        self.vm = vm;
    }

    /// Creates the VMI (upstream `startVMI`), once referenced instance types are captured;
    /// returns it when it was created.
    async fn start(&mut self) -> Result<Option<Value>> {
        let expanded = match instance::expanded_vm(self.ctx, &self.vm, &self.json).await {
            Ok(Some(expanded)) => expanded,
            Ok(None) => return Ok(None), // the instancetype controller's status write wakes us
            Err(e @ Error::Expand { .. }) => {
                let message = format!(
                    "Error creating virtual machine instance: {e}: {}",
                    error_chain(&e)
                );
                self.event(EventType::Warning, reason::FAILED_CREATE, &message)
                    .await;
                self.failure = Some((reason::FAILED_CREATE.into(), message));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        instance::record_start_revision(self.ctx, &self.vm, &self.json).await?;
        // Before the VMI: its launcher waits for this claim (persistent TPM / EFI vars).
        persistent_state::ensure(self.ctx, &self.vm, &expanded).await?;
        let vmi = instance::vmi_from_vm(&self.vm, &self.json, &expanded);
        let vmi: DynamicObject =
            serde_json::from_value(vmi).map_err(|_| Error::Malformed("spec.template"))?;
        let name = self.vm.name_any();
        match self.vmis.create(&PostParams::default(), &vmi).await {
            Ok(created) => {
                self.start_expected = true;
                self.restart_required = Some(None);
                let message = format!(
                    "Started the virtual machine by creating the new virtual machine instance {name}"
                );
                self.event(EventType::Normal, reason::SUCCESSFUL_CREATE, &message)
                    .await;
                return Ok(Some(to_json(&created)));
            }
            // Taken by a VMI this VM does not control (reported by `current_vmi`), or one
            // created since this pass read: either way the next pass sees it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let message = format!("Error creating virtual machine instance: {e}");
                self.event(EventType::Warning, reason::FAILED_CREATE, &message)
                    .await;
                self.failure = Some((reason::FAILED_CREATE.into(), message));
            }
        }
        Ok(None)
    }

    /// Deletes the VMI (upstream `stopVMI`); a failure becomes the `Failure` condition.
    async fn stop(&mut self, vmi: Option<&Value>) {
        let Some(vmi) = vmi.filter(|v| !is_deleting(v)) else {
            return;
        };
        let name = str_at(vmi, "/metadata/name").unwrap_or_default();
        let uid = str_at(vmi, "/metadata/uid").unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.vmis.delete(name, &params).await {
            Ok(_) => {
                self.stop_expected = true;
                self.restart_required = Some(None);
                let message = format!(
                    "Stopped the virtual machine by deleting the virtual machine instance {uid}"
                );
                self.event(EventType::Normal, reason::SUCCESSFUL_DELETE, &message)
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                let message = format!("Error deleting virtual machine instance {name}: {e}");
                self.event(EventType::Warning, reason::FAILED_DELETE, &message)
                    .await;
                self.failure = Some((reason::FAILED_DELETE.into(), message));
            }
        }
    }

    /// RerunOnFailure: remember to start again before the failed VMI goes.
    async fn request_start(&mut self) -> Result<()> {
        if strategy::has_start_request(&self.json) {
            return Ok(());
        }
        let mut requests = self.json["status"]["stateChangeRequests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        requests.push(json!({"action": "Start"}));
        self.patch_status(Map::from_iter([(
            "stateChangeRequests".into(),
            json!(requests),
        )]))
        .await
    }

    /// A Start request on a Halted VM turns it into Always (`running: true` when the VM
    /// uses `running`).
    async fn switch_to_always(&mut self) -> Result<()> {
        let uses_running = self.json["spec"]["running"].is_boolean()
            && str_at(&self.json, "/spec/runStrategy").is_none();
        let spec = if uses_running {
            json!({"running": true})
        } else {
            json!({"runStrategy": "Always"})
        };
        let patch =
            json!({"metadata": {"resourceVersion": resource_version(&self.json)}, "spec": spec});
        let updated = self
            .vms
            .patch(
                &self.vm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::api(self.what()))?;
        self.set_vm(updated);
        Ok(())
    }

    /// `RestartRequired` and the VMI's `kubevirt.io/vm-generation` annotation: both
    /// compare the VM spec recorded at start with the current one.
    async fn sync_generation(&mut self, vmi: Option<Value>) -> Result<Option<Value>> {
        let Some(vmi) = vmi else {
            return Ok(None);
        };
        if is_deleting(&vmi) || strategy::is_final(&vmi) || self.stop_expected {
            return Ok(Some(vmi));
        }
        let Some(started) = instance::start_revision_spec(self.ctx, &self.vm).await? else {
            return Ok(Some(vmi));
        };
        let vmi = self.propagate_interfaces(vmi).await?;
        let same =
            instance::restart_relevant(&started) == instance::restart_relevant(&self.json["spec"]);
        self.restart_required = Some(
            (!same).then(|| "a non-live-updatable field was changed in the template spec".into()),
        );
        let generation = self.vm.metadata.generation.unwrap_or(1).to_string();
        let annotated = str_at(
            &vmi,
            &format!(
                "/metadata/annotations/{}",
                VM_GENERATION_ANNOTATION.replace('/', "~1")
            ),
        );
        if !same || annotated == Some(generation.as_str()) {
            return Ok(Some(vmi));
        }
        let patch = json!({"metadata": {"annotations": {VM_GENERATION_ANNOTATION: generation}}});
        let name = self.vm.name_any();
        let updated = self
            .vmis
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(format!(
                "VirtualMachineInstance of {}",
                self.what()
            )))?;
        Ok(Some(to_json(&updated)))
    }

    /// Adds hot-plugged interfaces to the running VMI's spec and marks unplugged ones
    /// `absent` there (see [`interfaces`]); the VMI as it now is.
    async fn propagate_interfaces(&mut self, vmi: Value) -> Result<Value> {
        let template = &self.json["spec"]["template"]["spec"];
        let Some((ifaces, nets)) = interfaces::requested_on_vmi(template, &vmi["spec"]) else {
            return Ok(vmi);
        };
        let patch = json!({
            "metadata": {"resourceVersion": resource_version(&vmi)},
            "spec": {"domain": {"devices": {"interfaces": ifaces}}, "networks": nets},
        });
        let updated = self
            .vmis
            .patch(
                &self.vm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::api(format!(
                "interfaces of the VirtualMachineInstance of {}",
                self.what()
            )))?;
        Ok(to_json(&updated))
    }

    /// Computes the status from what was observed and writes the fields that changed.
    async fn write_status(&mut self, vmi: Option<&Value>) -> Result<()> {
        let (data_volumes, claims) = instance::referenced_volumes(self.ctx, &self.json).await;
        let vm = &self.json;
        let current = &vm["status"];
        let mut wanted = Map::new();
        let created = vmi.is_some();
        wanted.insert("created".into(), json!(created));
        let ready = vmi.is_some_and(|v| has_condition(v, "Ready", "True", None));
        wanted.insert("ready".into(), json!(ready));
        if created
            || current["runStrategy"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        {
            wanted.insert("runStrategy".into(), json!(strategy::run_strategy(vm)));
        }
        if strategy::first_request_done(vm, vmi) {
            let rest: Vec<Value> = current["stateChangeRequests"]
                .as_array()
                .map(|r| r.iter().skip(1).cloned().collect())
                .unwrap_or_default();
            wanted.insert("stateChangeRequests".into(), json!(rest));
        }
        let failure = self.failure.as_ref().map(|(r, m)| (r.as_str(), m.as_str()));
        let restart = self.restart_required.as_ref().map(Option::as_deref);
        let conds = status::conditions(&conditions(vm), vmi, failure, restart);
        wanted.insert("conditions".into(), json!(conds));
        let observed = Observed {
            vm,
            vmi,
            start_expected: self.start_expected,
            stop_expected: self.stop_expected,
            data_volumes: &data_volumes,
            claims: &claims,
        };
        wanted.insert(
            "printableStatus".into(),
            json!(status::printable_status(&observed)),
        );
        if let Some(vmi) = vmi {
            let annotation = format!(
                "/metadata/annotations/{}",
                VM_GENERATION_ANNOTATION.replace('/', "~1")
            );
            if let Some(observed) = str_at(vmi, &annotation).and_then(|g| g.parse::<i64>().ok()) {
                wanted.insert("observedGeneration".into(), json!(observed));
            }
            wanted.insert(
                "desiredGeneration".into(),
                json!(self.vm.metadata.generation.unwrap_or(1)),
            );
        }
        wanted.retain(|k, v| current.get(k.as_str()) != Some(v));
        if wanted.is_empty() {
            return Ok(());
        }
        match self.patch_status(wanted).await {
            Err(Error::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 404 => Ok(()),
            other => other,
        }
    }

    /// Merge-patches `status` with `fields`, conditional on the resourceVersion read.
    async fn patch_status(&mut self, fields: Map<String, Value>) -> Result<()> {
        let patch = json!({
            "metadata": {"resourceVersion": resource_version(&self.json)},
            "status": Value::Object(fields),
        });
        let updated = self
            .vms
            .patch_status(
                &self.vm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::api(format!("status of {}", self.what())))?;
        self.set_vm(updated);
        Ok(())
    }
}

/// `e` with its sources, for messages shown to users (conditions, Events).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

//! Pod realisation: a watch on the Pods bound to this node, and one supervisor task per Pod
//! (the actor owning that Pod's run directory and launcher).
//!
//! A supervisor is level-triggered: on every Pod change and every poll tick it compares what
//! should be (the Pod) with what is (run directory, `launcher.pid`, `status.json`) and acts:
//! spawn, re-adopt, mirror status, or tear down. Every `.await` is a cancellation point;
//! cancelling (agent shutdown) leaves launchers running for the next agent to re-adopt.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::events::{About, Events};
use crate::registry::ImageCache;
use crate::rundir::{LaunchSpec, PodKey, RunDir};
use crate::status::{self, chain, Observed};
use crate::well_known as wk;
use crate::{adopt, launcher, realise, vmis, AccelDecision, AgentConfig};

/// The longest Unix socket path Linux accepts (`sun_path` holds 108 bytes with the NUL):
/// the launcher and QEMU bind sockets in the run directory and refuse longer paths.
const MAX_SOCKET_PATH: usize = 107;

/// Shared by all supervisors.
pub(crate) struct Ctx {
    pub(crate) client: kube::Client,
    pub(crate) cgroups: crate::cgroup::PodCgroups,
    pub(crate) events: Events,
    pub(crate) config: AgentConfig,
    pub(crate) accel: AccelDecision,
    pub(crate) host_ip: String,
    pub(crate) images: ImageCache,
    pub(crate) network: crate::netns::PodNet,
}

/// Watches the node's Pods until the watch stream ends, supervising each.
///
/// # Errors
/// Never in practice: watch errors are retried with backoff.
pub(crate) async fn run(ctx: Ctx) -> anyhow::Result<()> {
    let ctx = Arc::new(ctx);
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.node_name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut supervisors: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let (deleting_tx, deleting) = watch::channel(vmis::Deleting::new());
    tasks.spawn(vmis::run(ctx.client.clone(), deleting_tx));
    let mut listing: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) => {
                listing
                    .get_or_insert_with(HashSet::new)
                    .insert(pod.uid().unwrap_or_default());
                deliver(&ctx, &deleting, &mut supervisors, &mut tasks, pod);
            }
            Ok(Event::InitDone) => {
                let live = listing.take().unwrap_or_default();
                for (uid, tx) in &supervisors {
                    if !live.contains(uid) {
                        tx.send_replace(None);
                    }
                }
                let mut known = live;
                known.extend(supervisors.keys().cloned());
                let data_dir = ctx.config.data_dir.clone();
                tasks.spawn(async move {
                    let reaped = adopt::reap_orphans(&data_dir, &known).await;
                    if reaped > 0 {
                        tracing::info!(
                            reaped,
                            "removed run directories of Pods that no longer exist"
                        );
                    }
                });
            }
            Ok(Event::Apply(pod)) => deliver(&ctx, &deleting, &mut supervisors, &mut tasks, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(tx) = supervisors.remove(&pod.uid().unwrap_or_default()) {
                    tx.send_replace(None);
                }
            }
            Err(e) => tracing::warn!(error = %chain(&e), "Pod watch failed; retrying"),
        }
        supervisors.retain(|_, tx| !tx.is_closed());
        while tasks.try_join_next().is_some() {}
    }
    Ok(())
}

fn deliver(
    ctx: &Arc<Ctx>,
    deleting: &watch::Receiver<vmis::Deleting>,
    supervisors: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    tasks: &mut JoinSet<()>,
    pod: Pod,
) {
    if crate::volumes::is_cdi_worker(&pod) {
        return; // run by the node's storage (oxivirt_storage::node), not as a launcher
    }
    let uid = pod.uid().unwrap_or_default();
    if let Some(tx) = supervisors.get(&uid) {
        tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    tasks.spawn(supervise(ctx.clone(), rx, deleting.clone()));
    supervisors.insert(uid, tx);
}

/// One Pod's supervisor state.
struct Supervisor {
    ctx: Arc<Ctx>,
    dir: RunDir,
    pid: Option<u32>,
    /// The launcher when this agent started it (not when re-adopted).
    launched: Option<launcher::Launched>,
    start_time: Option<String>,
    finished_at: Option<String>,
    written_pod_status: Option<Value>,
    written_vmi: Option<Observed>,
    /// The Pod version and observation whose statuses were last found written (the Pod's
    /// status is a function of both and of the Pod's network, set before its launcher
    /// starts): while a launcher starts it is looked at every few milliseconds, and
    /// rebuilding the Pod's status each time to find nothing changed cost more than the look.
    in_sync: Option<(Option<String>, Observed)>,
    /// Whether the last `write_statuses` left the Pod status as computed.
    pod_status_written: bool,
    pull_failures: u32,
    retry_at: Option<Instant>,
    cannot_run: Option<(String, String)>,
    announced_running: bool,
    announced_finished: bool,
    /// Until when the Pod's cgroup keeps its startup weight (see `cgroup`); `None` while it
    /// has its request's weight. Set when the launcher is spawned, and to now when one is
    /// re-adopted (its startup may have ended while no agent watched).
    startup_boost_until: Option<Instant>,
    /// Until when a start in progress goes unreported (see [`QUIET_START`]); set when this
    /// agent first prepares the Pod, `None` for a re-adopted launcher.
    quiet_until: Option<Instant>,
    /// The VMI this Pod runs (label `kubevirt.io/created-by`).
    vmi_uid: Option<String>,
    /// VMIs being deleted, shared by all supervisors.
    deleting: watch::Receiver<vmis::Deleting>,
    /// Set when the agent asked the launcher to shut down for a VMI deletion: the kill time.
    kill_at: Option<Instant>,
}

async fn supervise(
    ctx: Arc<Ctx>,
    mut rx: watch::Receiver<Option<Pod>>,
    mut deleting: watch::Receiver<vmis::Deleting>,
) {
    let Some(first) = rx.borrow().clone() else {
        return;
    };
    let key = PodKey {
        namespace: first.namespace().unwrap_or_default(),
        name: first.name_any(),
        uid: first.uid().unwrap_or_default(),
    };
    let mut sup = Supervisor {
        dir: RunDir::for_pod(&ctx.config.data_dir, &key),
        ctx,
        pid: None,
        launched: None,
        start_time: None,
        finished_at: None,
        written_pod_status: None,
        written_vmi: None,
        in_sync: None,
        pod_status_written: false,
        pull_failures: 0,
        retry_at: None,
        cannot_run: None,
        announced_running: false,
        announced_finished: false,
        startup_boost_until: None,
        quiet_until: None,
        vmi_uid: first.labels().get("kubevirt.io/created-by").cloned(),
        deleting: deleting.clone(),
        kill_at: None,
    };
    // The Pod is copied out of the channel only when it changed: a starting launcher is
    // looked at every few milliseconds, and copying the Pod each time cost more than the look.
    let mut current = first;
    let mut pod_changed = false;
    loop {
        if std::mem::take(&mut pod_changed) || rx.has_changed().unwrap_or(false) {
            let latest = rx.borrow_and_update().clone();
            match latest {
                Some(pod) => current = pod,
                None => return sup.teardown(None).await,
            }
        }
        if current.metadata.deletion_timestamp.is_some() {
            return sup.teardown(Some(&current)).await;
        }
        sup.step(&current).await;
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { return }
                pod_changed = true;
            }
            _ = deleting.changed() => {}
            () = tokio::time::sleep(sup.next_poll()) => {}
        }
    }
}

fn is_launcher_pod(pod: &Pod) -> bool {
    pod.labels().get(wk::APP_LABEL).map(String::as_str) == Some(wk::VIRT_LAUNCHER)
}

/// How long a start in progress goes unreported: most guests run sooner, and then the
/// Pod's `Running` replaces its "container started, not ready", and the VMI's first status
/// from the node (conditions, launcher version) comes with its `Running`, in one write each
/// rather than two (every write wakes every watcher of its kind; the VMI's also the VM's
/// status). A start that takes longer is reported as the kubelet and virt-handler would;
/// a failure (an image that cannot be pulled, a launcher that cannot run) at once.
const QUIET_START: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a launcher that is starting is looked at: its `Running` is the moment users
/// (and the create→Running figure) wait for, and reading a small file is cheap.
const STARTING_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl Supervisor {
    /// The wait before the next look at the launcher: short while it starts.
    fn next_poll(&self) -> std::time::Duration {
        if self.pid.is_some() && !self.announced_running && !self.announced_finished {
            STARTING_POLL.min(self.ctx.config.poll_interval)
        } else {
            self.ctx.config.poll_interval
        }
    }

    async fn step(&mut self, pod: &Pod) {
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(&s.start_time).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(status::now),
            );
        }
        if !is_launcher_pod(pod) {
            let message =
                "oxivirt has no container runtime: this node runs only virt-launcher Pods \
                           (label kubevirt.io=virt-launcher) created for VirtualMachineInstances";
            return self
                .sync(
                    pod,
                    Observed::CannotRun {
                        reason: "NoContainerRuntime".into(),
                        message: message.into(),
                    },
                )
                .await;
        }
        if let Some((reason, message)) = self.cannot_run.clone() {
            return self
                .sync(pod, Observed::CannotRun { reason, message })
                .await;
        }
        let vmi_grace = self.vmi_grace();
        if self.pid.is_none() {
            if let Some(pid) = adopt::live_launcher(&self.dir) {
                tracing::info!(pod = %pod.name_any(), pid, "re-adopted running launcher");
                self.pid = Some(pid);
                self.startup_boost_until = Some(Instant::now());
            } else if adopt::was_launched(&self.dir) {
                // The launcher ended while no agent watched: report it, never restart it.
                return self.observe_and_sync(pod, false).await;
            } else if is_final(pod) || vmi_grace.is_some() {
                return; // over before this agent started (or never runnable): nothing to do
            } else {
                return self.realise(pod).await;
            }
        }
        if let (Some(grace), Some(pid)) = (vmi_grace, self.pid) {
            self.shut_down_for_vmi_deletion(pod, pid, grace).await;
        }
        let alive = match &self.launched {
            Some(launched) => !launched.has_exited(),
            None => self
                .pid
                .is_some_and(|pid| launcher::is_our_launcher(pid, &self.dir.path)),
        };
        self.observe_and_sync(pod, alive).await;
    }

    async fn observe_and_sync(&mut self, pod: &Pod, alive: bool) {
        let launcher_status = self.dir.read_status();
        let final_now = !alive || launcher_status.as_ref().is_some_and(|s| s.phase.is_final());
        if final_now && self.finished_at.is_none() {
            self.finished_at = Some(status::now());
        }
        let finished_at = self.finished_at.clone().unwrap_or_default();
        let observed = status::observe(launcher_status, alive, &finished_at);
        self.end_startup_boost(pod, &observed);
        self.sync(pod, observed).await;
    }

    async fn realise(&mut self, pod: &Pod) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.quiet_until
            .get_or_insert_with(|| Instant::now() + QUIET_START);
        let ctx = self.ctx.clone();
        let longest_socket = self.dir.file("console.sock").as_os_str().len();
        if longest_socket > MAX_SOCKET_PATH {
            let (reason, message) = (
                "RunDirectoryTooLong".to_string(),
                format!(
                    "run directory {} is too long for the launcher's Unix sockets ({longest_socket} > \
                     {MAX_SOCKET_PATH} bytes); give the agent a shorter data directory",
                    self.dir.path.display()
                ),
            );
            self.cannot_run = Some((reason.clone(), message.clone()));
            return self
                .sync(pod, Observed::CannotRun { reason, message })
                .await;
        }
        if let Err(e) = realise::set_finalizer(&ctx.client, pod, true).await {
            return tracing::warn!(error = %chain(&e), "cannot add the launcher finalizer; retrying");
        }
        let mut vmi = match realise::fetch_vmi(&ctx.client, pod).await {
            Ok(vmi) => vmi,
            Err(e @ (realise::Error::NoDomain { .. } | realise::Error::VmiNotFound { .. })) => {
                let (reason, message) = ("VirtualMachineInstanceNotFound".to_string(), chain(&e));
                self.cannot_run = Some((reason.clone(), message.clone()));
                return self
                    .sync(pod, Observed::CannotRun { reason, message })
                    .await;
            }
            Err(e) => return tracing::warn!(error = %chain(&e), "cannot read the VMI; retrying"),
        };
        let waiting = if self.pull_failures == 0 {
            "ContainerCreating"
        } else {
            "ImagePullBackOff"
        };
        self.sync(
            pod,
            Observed::Preparing {
                reason: waiting.into(),
                message: String::new(),
            },
        )
        .await;
        let pulled =
            realise::pull_container_disks(&ctx.client, &ctx.events, &ctx.images, pod, &vmi).await;
        let mut disks = match pulled {
            Ok(disks) => disks,
            Err(e) => {
                self.pull_failures += 1;
                let backoff = Duration::from_secs(5 << self.pull_failures.min(6))
                    .min(Duration::from_secs(300));
                self.retry_at = Some(Instant::now() + backoff);
                tracing::warn!(error = %chain(&e), ?backoff, "containerDisk pull failed");
                ctx.events
                    .publish(pod, About::Pod, true, "Failed", chain(&e))
                    .await;
                let observed = Observed::Preparing {
                    reason: "ErrImagePull".into(),
                    message: chain(&e),
                };
                return self.sync(pod, observed).await;
            }
        };
        match crate::volumes::claim_disks(&ctx.client, &vmi, ctx.config.qemu_owner).await {
            Ok(claimed) => disks.extend(claimed),
            Err(e) => {
                self.retry_at = Some(Instant::now() + Duration::from_secs(2));
                let observed = Observed::Preparing {
                    reason: "ContainerCreating".into(),
                    message: chain(&e),
                };
                return self.sync(pod, observed).await;
            }
        }
        let config = async {
            let found = crate::config_volumes::materialise(
                &ctx.client,
                &ctx.config.cluster_ca,
                pod,
                &vmi,
                &self.dir.path,
            )
            .await?;
            // cloud-init's Secrets go into the launcher's copy of the VMI.
            crate::cloud_init::resolve(&ctx.client, &mut vmi).await?;
            Ok::<_, crate::config_volumes::Error>(found)
        };
        match config.await {
            Ok(found) => disks.extend(found),
            Err(e) => {
                let message = chain(&e);
                ctx.events
                    .publish(pod, About::Pod, true, "FailedMount", message.clone())
                    .await;
                if !e.is_permanent() {
                    self.retry_at = Some(Instant::now() + Duration::from_secs(2));
                    let observed = Observed::Preparing {
                        reason: "ContainerCreating".into(),
                        message,
                    };
                    return self.sync(pod, observed).await;
                }
                let reason = "FailedMount".to_string();
                self.cannot_run = Some((reason.clone(), message.clone()));
                return self
                    .sync(pod, Observed::CannotRun { reason, message })
                    .await;
            }
        }
        let network = match ctx
            .network
            .attach(&ctx.client, pod, &vmi, ctx.config.qemu_owner)
            .await
        {
            Ok(plan) => plan,
            Err(message) => {
                let reason = "NetworkSetupFailed".to_string();
                // The kubelet's reason for a Pod whose network cannot be set up; the Event
                // outlives the Pod, which the VM controller replaces.
                ctx.events
                    .publish(
                        pod,
                        About::Pod,
                        true,
                        "FailedCreatePodSandBox",
                        message.clone(),
                    )
                    .await;
                self.cannot_run = Some((reason.clone(), message.clone()));
                return self
                    .sync(pod, Observed::CannotRun { reason, message })
                    .await;
            }
        };
        let spec = LaunchSpec {
            network,
            vmi,
            accel: crate::accel::for_launch(&ctx.client, &ctx.accel)
                .await
                .accel,
            disks,
            qemu: ctx.config.qemu.clone(),
            uid: ctx.config.qemu_owner.map(|(uid, _)| uid),
            gid: ctx.config.qemu_owner.map(|(_, gid)| gid),
        };
        let started = self
            .dir
            .create()
            .and_then(|()| self.dir.write_launch_spec(&spec))
            .map_err(|e| chain(&e))
            // QEMU creates its sockets in the run directory.
            .and_then(|()| crate::qemu_user::hand_over(&self.dir.path, ctx.config.qemu_owner));
        let spawned = match started {
            Ok(()) => {
                let command = ctx
                    .network
                    .launcher_command(&ctx.config.launcher_command, &pod.uid().unwrap_or_default());
                let uid = pod.uid().unwrap_or_default();
                let cgroup = ctx.cgroups.prepare(&uid, crate::cgroup::pod_cpu(pod));
                launcher::spawn(&command, &self.dir, cgroup).map_err(|e| chain(&e))
            }
            Err(message) => Err(message),
        };
        let written = spawned.and_then(|launched| {
            let pid = launched.pid;
            self.dir
                .write_pid(pid)
                .map(|()| launched)
                .map_err(|e| chain(&e))
        });
        match written {
            Ok(launched) => {
                let pid = launched.pid;
                tracing::info!(pod = %pod.name_any(), pid, run_dir = %self.dir.path.display(), "launcher started");
                self.pid = Some(pid);
                self.launched = Some(launched);
                self.startup_boost_until =
                    Some(Instant::now() + crate::cgroup::STARTUP_BOOST_LIMIT);
                let note = format!("Started launcher (pid {pid})");
                ctx.events
                    .publish(pod, About::Pod, false, "Started", note)
                    .await;
                self.observe_and_sync(pod, true).await;
            }
            Err(message) => {
                let reason = "LauncherFailed".to_string();
                self.cannot_run = Some((reason.clone(), message.clone()));
                self.sync(pod, Observed::CannotRun { reason, message })
                    .await;
            }
        }
    }

    /// Whether `observed` is a start in progress that goes unreported for now.
    fn is_quiet(&self, observed: &Observed) -> bool {
        let in_progress = match observed {
            Observed::Starting => true,
            // The first look while preparing; pull failures and other waits say why.
            Observed::Preparing { reason, message } => {
                reason == "ContainerCreating" && message.is_empty()
            }
            _ => false,
        };
        in_progress && self.quiet_until.is_some_and(|t| Instant::now() < t)
    }

    /// Drops the Pod's cgroup to its request's weight once the guest runs (before its status
    /// is written: the writes need no boost) or the startup took too long.
    fn end_startup_boost(&mut self, pod: &Pod, observed: &Observed) {
        let Some(until) = self.startup_boost_until else {
            return;
        };
        if matches!(observed, Observed::Starting | Observed::Preparing { .. })
            && Instant::now() < until
        {
            return;
        }
        self.startup_boost_until = None;
        let uid = pod.uid().unwrap_or_default();
        self.ctx.cgroups.settle(&uid, crate::cgroup::pod_cpu(pod));
    }

    /// Mirrors an observation into the Pod status and the VMI status, writing only changes.
    async fn sync(&mut self, pod: &Pod, observed: Observed) {
        let stamp = (pod.resource_version(), observed);
        if self.in_sync.as_ref() == Some(&stamp) {
            return;
        }
        if matches!(stamp.1, Observed::Starting) && self.is_quiet(&stamp.1) {
            return; // looked at again in `STARTING_POLL`
        }
        let observed = stamp.1.clone();
        self.write_statuses(pod, observed).await;
        let vmi_done = !is_launcher_pod(pod) || self.written_vmi.as_ref() == Some(&stamp.1);
        self.in_sync = (vmi_done && self.pod_status_written).then_some(stamp);
    }

    async fn write_statuses(&mut self, pod: &Pod, observed: Observed) {
        let ctx = self.ctx.clone();
        let pod_json = serde_json::to_value(pod).unwrap_or_default();
        let start = self.start_time.clone().unwrap_or_else(status::now);
        let mut pod_status = status::pod_status(&pod_json, &observed, &ctx.host_ip, &start);
        ctx.network
            .add_pod_ips(&mut pod_status, &pod.uid().unwrap_or_default());
        self.pod_status_written = self.written_pod_status.as_ref() == Some(&pod_status);
        if !self.pod_status_written {
            match realise::write_pod_status(&ctx.client, pod, &pod_status).await {
                Ok(()) => {
                    tracing::debug!(pod = %pod.name_any(), phase = %pod_status["phase"], "Pod status written");
                    self.written_pod_status = Some(pod_status);
                    self.pod_status_written = true;
                }
                Err(e) => tracing::warn!(error = %chain(&e), "cannot write Pod status; retrying"),
            }
        }
        if !is_launcher_pod(pod)
            || self.written_vmi.as_ref() == Some(&observed)
            || self.is_quiet(&observed)
        {
            return;
        }
        let running = matches!(observed, Observed::Running(_));
        let mut interfaces_written = false;
        let interfaces = |current: &Value| {
            let merged = ctx
                .network
                .interfaces_status(pod, current)
                .filter(|_| running);
            interfaces_written = merged.is_some();
            merged
        };
        match realise::write_vmi_status(
            &ctx.client,
            pod,
            &observed,
            &ctx.accel,
            &ctx.config.node_name,
            interfaces,
        )
        .await
        {
            Ok(()) => {
                self.announce(pod, &observed).await;
                if running && !interfaces_written {
                    ctx.network.report_interfaces(&ctx.client, pod).await;
                }
                self.written_vmi = Some(observed);
            }
            Err(e) => tracing::debug!(error = %chain(&e), "cannot write VMI status; retrying"),
        }
    }

    /// The grace period of this Pod's VMI if it is being deleted (or gone).
    fn vmi_grace(&self) -> Option<u64> {
        let uid = self.vmi_uid.as_ref()?;
        self.deleting.borrow().get(uid).map(|(grace, _)| *grace)
    }

    /// Asks the launcher to shut the guest down once; kills it when the grace period (plus
    /// 10 s for the launcher's own kill) has passed. The guest's end is then reported as
    /// usual, which lets the VMI controller delete the Pod.
    async fn shut_down_for_vmi_deletion(&mut self, pod: &Pod, pid: u32, grace: u64) {
        if !launcher::is_our_launcher(pid, &self.dir.path) {
            return;
        }
        match self.kill_at {
            None => {
                self.kill_at = Some(Instant::now() + Duration::from_secs(grace + 10));
                tracing::info!(pod = %pod.name_any(), pid, grace, "VMI deleted; shutting the guest down");
                let note = "Signaled Graceful Shutdown".to_string();
                self.ctx
                    .events
                    .publish(pod, About::Vmi, false, "ShuttingDown", note)
                    .await;
                let request = serde_json::json!({"command": "shutdown", "graceSeconds": grace});
                if let Err(e) = launcher::control(&self.dir, request).await {
                    tracing::warn!(error = %chain(&e), "shutdown request failed; killing the launcher");
                    launcher::kill(pid);
                }
            }
            Some(at) if Instant::now() >= at => {
                tracing::warn!(pid, "launcher outlived the VMI's grace period; killing it");
                launcher::kill(pid);
            }
            Some(_) => {}
        }
    }

    /// VMI events for the transitions a user cares about, once each.
    async fn announce(&mut self, pod: &Pod, observed: &Observed) {
        let events = &self.ctx.events;
        match observed {
            Observed::Running(_) if !self.announced_running => {
                self.announced_running = true;
                let note = "VirtualMachineInstance started.".to_string();
                events
                    .publish(pod, About::Vmi, false, "Started", note)
                    .await;
            }
            Observed::Finished { status, .. } if !self.announced_finished => {
                self.announced_finished = true;
                let failed = status.phase != crate::rundir::LauncherPhase::Succeeded;
                let note = match (failed, &status.message) {
                    (false, _) => "The VirtualMachineInstance was shut down.".to_string(),
                    (true, Some(m)) => format!("The VirtualMachineInstance failed: {m}"),
                    (true, None) => "The VirtualMachineInstance failed.".to_string(),
                };
                events
                    .publish(pod, About::Vmi, failed, "Stopped", note)
                    .await;
            }
            _ => {}
        }
    }

    /// Stops the launcher (gracefully, with the Pod's grace period), reports the final VMI
    /// state, removes the run directory and releases the Pod's finalizer.
    async fn teardown(&mut self, pod: Option<&Pod>) {
        let grace = pod.map_or(30, grace_seconds);
        let pid = self.pid.or_else(|| adopt::live_launcher(&self.dir));
        if let Some(pid) = pid {
            tracing::info!(pid, grace, run_dir = %self.dir.path.display(), "stopping launcher");
            if let Some(pod) = pod {
                let events = &self.ctx.events;
                let note = format!("Stopping launcher with a grace period of {grace}s");
                events
                    .publish(pod, About::Pod, false, "Killing", note)
                    .await;
                let note = "Signaled Graceful Shutdown".to_string();
                events
                    .publish(pod, About::Vmi, false, "ShuttingDown", note)
                    .await;
            }
            launcher::stop(&self.dir, pid, grace).await;
        }
        if let (Some(pod), true) = (pod, adopt::was_launched(&self.dir)) {
            if is_launcher_pod(pod) {
                self.finished_at.get_or_insert_with(status::now);
                let observed = status::observe(
                    self.dir.read_status(),
                    false,
                    self.finished_at.as_deref().unwrap_or_default(),
                );
                let written = realise::write_vmi_status(
                    &self.ctx.client,
                    pod,
                    &observed,
                    &self.ctx.accel,
                    &self.ctx.config.node_name,
                    |_| None,
                )
                .await;
                match written {
                    Ok(()) => self.announce(pod, &observed).await,
                    Err(e) => {
                        tracing::debug!(error = %chain(&e), "cannot write the final VMI status")
                    }
                }
            }
        }
        if let Err(e) = self.dir.remove() {
            tracing::warn!(error = %chain(&e), "cannot remove run directory");
        }
        if let Some(key) = &self.dir.owner {
            self.ctx.network.detach(&key.uid).await;
            self.ctx.cgroups.remove(&key.uid).await;
        }
        let Some(pod) = pod else { return };
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &pod.namespace().unwrap_or_default(),
        );
        for _ in 0..5 {
            let current = match api.get_opt(&pod.name_any()).await {
                Ok(Some(current)) if current.uid() == pod.uid() => current,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "cannot read Pod to release its finalizer");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match realise::set_finalizer(&self.ctx.client, &current, false).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %chain(&e), "releasing the finalizer failed; retrying")
                }
            }
        }
    }
}

fn is_final(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The Pod's grace period: `deletionGracePeriodSeconds` when positive (our API server always
/// writes 0 there), else `terminationGracePeriodSeconds`, else 30.
fn grace_seconds(pod: &Pod) -> u64 {
    let from_delete = pod
        .metadata
        .deletion_grace_period_seconds
        .filter(|&g| g > 0);
    let from_spec = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds);
    from_delete
        .or(from_spec)
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(30)
}

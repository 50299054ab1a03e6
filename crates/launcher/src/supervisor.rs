//! The launcher process: start-up (read `launch.json`, prepare files, spawn QEMU paused,
//! connect QMP, `cont`) and the VM actor that then owns QEMU until it is gone.
//!
//! The actor is one task. Everything that can happen — a control request, a QMP event,
//! QEMU exiting, SIGTERM, the grace period running out, the guest agent answering — is
//! turned into a [`Wake`] by one `select!` and handled with the actor's state in hand, so
//! no state is shared and no lock is held across an await.

use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxivirt_qmp::agent::{AgentOptions, GuestAgent};
use oxivirt_qmp::{
    ActionPolicy, Event, EventKind, EventStream, QmpClient, ShutdownAction, ShutdownInfo,
};
use serde_json::json;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use crate::args::qemu_config;
use crate::console::Console;
use crate::control::{ControlServer, Envelope, Reply, Request};
use crate::error::{Error, Result};
use crate::prepare;
use crate::qemu_process::{describe, QemuProcess};
use crate::spec::{LaunchSpec, RunPaths};
use crate::status::{now, Phase, StartupTimings, StatusFile};

/// Runs one VM from the run directory `run_dir` until QEMU is gone and the final status is
/// written. See the crate documentation for the files involved.
///
/// # Errors
/// Start-up failures (bad `launch.json`, a file that cannot be prepared, QEMU refusing to
/// start), after `status.json` says `Failed` with the reason; or a failure to write
/// `status.json` at all.
pub async fn run(run_dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let paths = RunPaths::new(run_dir);
    let pid_file = paths.launcher_pid();
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| Error::write(&pid_file, e))?;
    let mut status = StatusFile::new(paths.status_json());
    status.write()?;
    let mut terminate = Signals::new()?;

    let outcome = tokio::select! {
        vm = start(&paths, started, &mut status) => vm,
        () = terminate.recv() => Err(Error::Interrupted),
    };
    match outcome {
        Ok(vm) => Ok(vm.supervise(&mut status, terminate).await?),
        Err(error) => {
            let message = chain(&error);
            tracing::error!(%message, "vm failed to start");
            status.set_phase(Phase::Failed, error.reason(), &message)?;
            prepare::discard(&paths);
            Err(anyhow::Error::new(error).context(format!("launcher in {}", run_dir.display())))
        }
    }
}

/// SIGTERM and SIGINT, both meaning "stop gracefully".
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let install = |kind| {
            signal(kind).map_err(|source| Error::Process {
                what: "install a signal handler",
                source,
            })
        };
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn start(paths: &RunPaths, started: Instant, status: &mut StatusFile) -> Result<Vm> {
    let spec = LaunchSpec::read(paths)?;
    status.update(|s| s.accel = spec.accel)?;
    let mut command = qemu_config(&spec, paths)?;
    for note in &command.notes {
        tracing::info!(vmi = %spec.vmi.metadata.name, "{note}");
    }
    let owner = spec.uid.map(|uid| (uid, spec.gid.unwrap_or(uid)));
    prepare::create_files(paths, &command.files, owner).await?;
    crate::network::serve_dhcp(spec.network.as_ref());
    let tpm = crate::tpm::start(&spec, paths, owner).await?;
    crate::user_net::start(&spec, paths).await?;

    let mut qemu = QemuProcess::spawn(&command, paths, owner)?;
    let spawned_ms = millis(started);
    let qmp = match qemu.connect_monitor(paths).await {
        Err(Error::EarlyExit { stderr, .. }) if spec.sandbox && stderr.contains("sandbox") => {
            tracing::warn!(%stderr, "qemu has no seccomp sandbox; starting it without one");
            command = command.without_sandbox();
            qemu = QemuProcess::spawn(&command, paths, owner)?;
            qemu.connect_monitor(paths).await?
        }
        other => other?,
    };
    let qmp_ready_ms = millis(started);
    status.update(|s| s.qemu_pid = Some(qemu.pid()))?;
    let events = qmp.events();
    let console = if spec.vmi.spec.domain.devices.autoattach_serial_console == Some(false) {
        None
    } else {
        let console = Console::start(
            &paths.serial_sock(),
            &paths.console_log(),
            &paths.console_sock(),
        )
        .await?;
        Some(console)
    };

    qmp.cont().await.map_err(|source| Error::Qmp {
        step: "cont",
        source,
    })?;
    let running_ms = millis(started);
    tracing::info!(
        spawned_ms,
        qmp_ready_ms,
        running_ms,
        pid = qemu.pid(),
        "vm running"
    );
    // control.sock is served before the status says Running: whoever reads Running may
    // send a command at once (requests wait in the channel until the actor runs).
    let (commands_tx, commands) = mpsc::channel(16);
    let control = ControlServer::start(&paths.control_sock(), commands_tx)?;
    status.update(|s| {
        s.phase = Phase::Running;
        s.started_at = Some(now());
        s.startup = Some(StartupTimings {
            spawned_ms,
            qmp_ready_ms,
            running_ms,
        });
    })?;

    let agent = Arc::new(GuestAgent::new(paths.qga_sock(), AgentOptions::default()));
    let (os_info_tx, os_info) = mpsc::channel(1);
    let poller = tokio::spawn(poll_os_info(agent.clone(), os_info_tx));
    Ok(Vm {
        grace_seconds: spec.grace_seconds(),
        paths: paths.clone(),
        qemu,
        qmp,
        events,
        events_open: true,
        guest_ops: crate::guest_ops::GuestOps::new(agent.clone()),
        agent,
        console,
        commands,
        _control: control,
        os_info,
        poller,
        deadline: None,
        kill_reason: None,
        shutdown: None,
        panicked: false,
        watchdog: None,
        fake_reboot: false,
        io_error: false,
        tpm,
        disks: crate::hotplug::Disks::new(&spec.vmi),
    })
}

/// Asks the guest agent for the OS info until it answers once.
async fn poll_os_info(agent: Arc<GuestAgent>, found: mpsc::Sender<serde_json::Value>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Ok(info) = agent.get_osinfo().await {
            let _ = found
                .send(serde_json::to_value(info).unwrap_or_default())
                .await;
            return;
        }
    }
}

/// What woke the actor.
enum Wake {
    Exited(Result<ExitStatus>),
    Command(Envelope),
    Event(Event),
    EventsEnded,
    Terminate,
    GraceExpired,
    OsInfo(serde_json::Value),
}

/// The VM actor's state: it alone talks to QEMU once the VM runs.
struct Vm {
    grace_seconds: u64,
    paths: RunPaths,
    qemu: QemuProcess,
    qmp: QmpClient,
    events: EventStream,
    events_open: bool,
    agent: Arc<GuestAgent>,
    /// Guest-agent requests of `control.sock`, served off the actor.
    guest_ops: Arc<crate::guest_ops::GuestOps>,
    /// The serial console relay, unless the VMI switched the serial port off.
    console: Option<Console>,
    commands: mpsc::Receiver<Envelope>,
    _control: ControlServer,
    os_info: mpsc::Receiver<serde_json::Value>,
    poller: tokio::task::JoinHandle<()>,
    /// When a graceful shutdown turns into a kill.
    deadline: Option<tokio::time::Instant>,
    /// Set when the launcher killed QEMU, with the reason to report.
    kill_reason: Option<(&'static str, String)>,
    /// The last `SHUTDOWN` event.
    shutdown: Option<ShutdownInfo>,
    panicked: bool,
    /// The action of the last `WATCHDOG` event (`poweroff` exits QEMU without `SHUTDOWN`).
    watchdog: Option<String>,
    /// An ACPI-button reboot is in progress: the next `SHUTDOWN` becomes a reset.
    fake_reboot: bool,
    io_error: bool,
    /// swtpm, when the VM has a TPM: stopped after QEMU.
    tpm: Option<crate::tpm::Swtpm>,
    /// The disks QEMU has, for hot-plug.
    disks: crate::hotplug::Disks,
}

impl Vm {
    async fn supervise(mut self, status: &mut StatusFile, mut terminate: Signals) -> Result<()> {
        let exit = loop {
            let deadline = self.deadline;
            let wake = tokio::select! {
                exit = self.qemu.wait() => Wake::Exited(exit),
                Some(envelope) = self.commands.recv() => Wake::Command(envelope),
                event = self.events.next(), if self.events_open => event.map_or(Wake::EventsEnded, Wake::Event),
                () = terminate.recv() => Wake::Terminate,
                () = sleep_until(deadline), if deadline.is_some() => Wake::GraceExpired,
                Some(info) = self.os_info.recv() => Wake::OsInfo(info),
            };
            match wake {
                Wake::Exited(exit) => break exit,
                Wake::Command(Envelope { request, reply }) if request.is_guest_agent() => {
                    let ops = self.guest_ops.clone();
                    tokio::spawn(async move { reply.send(ops.run(request).await) });
                }
                Wake::Command(Envelope { request, reply }) => {
                    let answer = self.handle(request, status).await;
                    let _ = reply.send(answer);
                }
                Wake::Event(event) => self.on_event(event, status).await?,
                Wake::EventsEnded => self.events_open = false,
                Wake::Terminate => {
                    tracing::info!(grace_seconds = self.grace_seconds, "signal: shutting down");
                    let reply = self.shut_down(self.grace_seconds).await;
                    if let Some(error) = reply.error {
                        tracing::warn!(%error, "graceful shutdown failed");
                    }
                }
                Wake::GraceExpired => {
                    let message =
                        format!("guest did not power off within {} s", self.grace_seconds);
                    self.kill("GracePeriodExpired", message);
                }
                Wake::OsInfo(info) => status.update(|s| s.guest_os_info = Some(info))?,
            }
        };
        self.finish(exit, status).await
    }

    async fn handle(&mut self, request: Request, status: &mut StatusFile) -> Reply {
        let result = match request {
            Request::Status => {
                return Reply {
                    status: Some(status.current().clone()),
                    ..Reply::ok()
                };
            }
            Request::Pause => self
                .qmp
                .stop()
                .await
                .map(|()| (Phase::Paused, "PausedByUser")),
            Request::Unpause => self.qmp.cont().await.map(|()| (Phase::Running, "")),
            Request::Reset => self
                .qmp
                .system_reset()
                .await
                .map(|()| (status.current().phase, "")),
            Request::Softreboot => return self.soft_reboot().await,
            Request::Shutdown { grace_seconds } => {
                return self
                    .shut_down(grace_seconds.unwrap_or(self.grace_seconds))
                    .await;
            }
            Request::Kill => {
                self.kill("Killed", "killed on request".to_owned());
                return Reply::ok();
            }
            Request::Addvolume(disk) => {
                return match self.disks.attach(&self.qmp, &disk).await {
                    Ok(()) => Reply::ok(),
                    Err(message) => Reply::error(message),
                }
            }
            Request::Removevolume { name } => {
                return match self.disks.detach(&self.qmp, &name).await {
                    Ok(()) => Reply::ok(),
                    Err(message) => Reply::error(message),
                }
            }
            Request::Volumes => {
                return Reply {
                    data: Some(self.disks.list()),
                    ..Reply::ok()
                }
            }
            Request::Dumpmemory { path } => {
                return match crate::memory_dump::start(&self.qmp, &path).await {
                    Ok(()) => Reply::ok(),
                    Err(message) => Reply::error(message),
                }
            }
            Request::Dumpstatus => {
                return match crate::memory_dump::status(&self.qmp).await {
                    Ok(data) => Reply {
                        data: Some(data),
                        ..Reply::ok()
                    },
                    Err(message) => Reply::error(message),
                }
            }
            guest => return self.guest_ops.clone().run(guest).await,
        };
        match result {
            Ok((phase, reason)) => match status.set_phase(phase, reason, "") {
                Ok(()) => Reply::ok(),
                Err(error) => Reply::error(chain(&error)),
            },
            Err(error) => Reply::error(chain(&error)),
        }
    }

    /// ACPI power button, then kill after `grace` seconds (at once for 0).
    async fn shut_down(&mut self, grace: u64) -> Reply {
        if grace == 0 {
            self.kill("Killed", "killed: grace period 0".to_owned());
            return Reply::ok();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(grace);
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self.fake_reboot = false;
        match self.qmp.system_powerdown().await {
            Ok(()) => Reply::ok(),
            Err(error) => Reply::error(chain(&error)),
        }
    }

    fn kill(&mut self, reason: &'static str, message: String) {
        tracing::info!(reason, %message, "killing qemu");
        self.kill_reason.get_or_insert((reason, message));
        self.qemu.kill();
    }

    /// Through the guest agent when it answers; else the ACPI button, with the resulting
    /// shutdown turned into a reset (upstream's fallback).
    async fn soft_reboot(&mut self) -> Reply {
        if self.agent.sync().await.is_ok() {
            let arguments = json!({"mode": "reboot"});
            return match self
                .agent
                .execute_with_timeout("guest-shutdown", arguments, Duration::from_secs(1))
                .await
            {
                // The agent never answers a successful guest-shutdown.
                Ok(_) | Err(oxivirt_qmp::Error::Timeout { .. }) => Reply::ok(),
                Err(error) => Reply::error(chain(&error)),
            };
        }
        let policy = ActionPolicy {
            shutdown: Some(ShutdownAction::Pause),
            ..ActionPolicy::default()
        };
        if let Err(error) = self.qmp.set_action(policy).await {
            return Reply::error(chain(&error));
        }
        self.fake_reboot = true;
        match self.qmp.system_powerdown().await {
            Ok(()) => Reply::ok(),
            Err(error) => Reply::error(chain(&error)),
        }
    }

    async fn on_event(&mut self, event: Event, status: &mut StatusFile) -> Result<()> {
        match event.kind() {
            EventKind::Shutdown(info) if self.fake_reboot => {
                tracing::info!(?info, "guest powered off for a soft reboot: resetting");
                self.fake_reboot = false;
                let restore = ActionPolicy {
                    shutdown: Some(ShutdownAction::Poweroff),
                    ..ActionPolicy::default()
                };
                for (step, result) in [
                    ("system_reset", self.qmp.system_reset().await),
                    ("cont", self.qmp.cont().await),
                    ("set-action", self.qmp.set_action(restore).await),
                ] {
                    if let Err(error) = result {
                        tracing::warn!(step, error = %chain(&error), "soft reboot step failed");
                    }
                }
            }
            EventKind::Shutdown(info) => {
                tracing::info!(?info, "qemu reports shutdown");
                self.shutdown = Some(info);
            }
            EventKind::GuestPanicked { action, .. } => {
                tracing::warn!(%action, "guest panicked");
                self.panicked = true;
            }
            EventKind::Stop if self.shutdown.is_none() && !self.fake_reboot => {
                let reason = if self.io_error {
                    "PausedIOError"
                } else {
                    "Paused"
                };
                if status.current().phase == Phase::Running {
                    status.set_phase(Phase::Paused, reason, "")?;
                }
            }
            EventKind::Resume => {
                self.io_error = false;
                status.set_phase(Phase::Running, "", "")?;
            }
            EventKind::Reset(info) => tracing::info!(?info, "vm reset"),
            EventKind::BlockIoError(error) => {
                tracing::warn!(?error, "disk i/o error");
                self.io_error = true;
            }
            EventKind::Watchdog { action } => {
                tracing::warn!(%action, "watchdog fired");
                self.watchdog = Some(action);
            }
            _ => tracing::debug!(event = %event.name, "qmp event"),
        }
        Ok(())
    }

    /// QEMU is gone: work out why, flush the console, discard the run's disks and write
    /// the final status.
    async fn finish(self, exit: Result<ExitStatus>, status: &mut StatusFile) -> Result<()> {
        self.poller.abort();
        let closed = tokio::time::timeout(Duration::from_secs(2), self.qmp.closed())
            .await
            .ok();
        let shutdown = self
            .shutdown
            .or_else(|| closed.as_ref().and_then(|c| c.last_shutdown.clone()));
        let panicked = self.panicked
            || closed
                .as_ref()
                .is_some_and(|c| c.saw_event("GUEST_PANICKED"));
        let exit_text = match &exit {
            Ok(exit) => describe(*exit),
            Err(error) => chain(error),
        };
        let (phase, reason, message) = if let Some((reason, message)) = self.kill_reason {
            (Phase::Failed, reason, message)
        } else if panicked {
            (
                Phase::Failed,
                "GuestPanicked",
                "the guest kernel panicked".to_owned(),
            )
        } else {
            match shutdown {
                Some(info) if info.guest || info.reason.is_guest() => (
                    Phase::Succeeded,
                    "GuestShutdown",
                    "the guest powered off".to_owned(),
                ),
                Some(info) => (
                    Phase::Failed,
                    "QemuTerminated",
                    format!(
                        "qemu shut down by the host ({:?}), {exit_text}",
                        info.reason
                    ),
                ),
                None if self.watchdog.is_some() => {
                    let action = self.watchdog.unwrap_or_default();
                    (
                        Phase::Failed,
                        "WatchdogFired",
                        format!("the watchdog fired (action {action}), {exit_text}"),
                    )
                }
                None => {
                    let diagnostics = self.qemu.diagnostics();
                    let mut message = format!("qemu exited without a shutdown: {exit_text}");
                    if !diagnostics.is_empty() {
                        message.push_str(&format!(": {diagnostics}"));
                    }
                    (Phase::Failed, "QemuCrashed", message)
                }
            }
        };
        if let Some(console) = self.console {
            console.finish(Duration::from_secs(2)).await;
        }
        if let Some(tpm) = self.tpm {
            tpm.stop().await;
        }
        prepare::discard(&self.paths);
        status.set_phase(phase, reason, &message)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

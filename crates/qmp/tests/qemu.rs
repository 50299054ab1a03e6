//! Real QEMU under TCG, with no disk: the protocol floor the launcher builds on.
//! Skipped, with a printed reason, when `qemu-system-x86_64` is not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use oxivirt_qmp::{
    ActionPolicy, EventKind, PanicAction, QmpClient, QmpOptions, RebootAction, RunState,
    ShutdownAction, ShutdownCause,
};
use serde_json::{json, Map};
use tokio::process::{Child, Command};

use crate::support::{find_program, Sandbox};

const WAIT: Duration = Duration::from_secs(10);

struct Qemu {
    child: Child,
    client: QmpClient,
    spawned: Instant,
}

impl Qemu {
    /// Starts paused QEMU with the launcher's minimal command line plus `extra` and
    /// connects as soon as the QMP socket accepts.
    async fn start(binary: &Path, socket: &Path, extra: &[&str]) -> Qemu {
        let mut command = Command::new(binary);
        command
            .args([
                "-machine",
                "q35,accel=tcg",
                "-nodefaults",
                "-nographic",
                "-S",
                "-m",
                "64",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command.spawn().expect("spawn qemu");
        let options = QmpOptions {
            connect_timeout: WAIT,
            ..QmpOptions::default()
        };
        let client = QmpClient::connect_with(socket, options)
            .await
            .expect("qmp handshake");
        Qemu {
            child,
            client,
            spawned,
        }
    }

    /// (exec → greeting, exec → capabilities negotiated).
    fn handshake_times(&self) -> (Duration, Duration) {
        let timings = self.client.timings();
        (
            timings.greeting - self.spawned,
            timings.negotiated - self.spawned,
        )
    }

    async fn wait_exit(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("qemu exits")
            .expect("wait")
    }
}

fn qemu(test: &str) -> Option<PathBuf> {
    find_program("qemu-system-x86_64", test)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[tokio::test]
async fn real_qemu_goes_prelaunch_running_paused_reset_and_quits() {
    let Some(binary) = qemu("real_qemu_goes_prelaunch_running_paused_reset_and_quits") else {
        return;
    };
    let sandbox = Sandbox::new();
    let vm = Qemu::start(&binary, &sandbox.path("qmp.sock"), &[]).await;
    let (greeting, negotiated) = vm.handshake_times();
    eprintln!(
        "qemu {:?}: exec->greeting {}, exec->capabilities negotiated {}",
        vm.client.greeting().version.qemu,
        ms(greeting),
        ms(negotiated)
    );
    let client = vm.client.clone();
    let mut events = client.events();

    let status = client.query_status().await.expect("status");
    assert_eq!(
        (status.status, status.running),
        (RunState::Prelaunch, false)
    );
    client.cont().await.expect("cont");
    assert_eq!(
        client.query_status().await.expect("status").status,
        RunState::Running
    );
    client.stop().await.expect("stop");
    assert_eq!(
        client.query_status().await.expect("status").status,
        RunState::Paused
    );
    client.system_reset().await.expect("reset");
    client.system_powerdown().await.expect("powerdown");

    assert_eq!(
        events.next().await.expect("event").kind(),
        EventKind::Resume
    );
    assert_eq!(events.next().await.expect("event").kind(), EventKind::Stop);
    let reset = events.next().await.expect("event");
    assert!(
        matches!(reset.kind(), EventKind::Reset(info) if info.reason == ShutdownCause::HostQmpSystemReset)
    );
    assert_eq!(
        events.next().await.expect("event").kind(),
        EventKind::Powerdown
    );

    client.quit().await.expect("quit");
    assert!(client.is_closed());
    let closed = client.closed().await;
    assert!(!closed.is_crash());
    assert_eq!(
        closed.last_shutdown.expect("shutdown").reason,
        ShutdownCause::HostQmpQuit
    );
    assert!(vm.wait_exit().await.success());
}

#[tokio::test]
async fn real_qemu_start_to_qmp_ready_floor() {
    let Some(binary) = qemu("real_qemu_start_to_qmp_ready_floor") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut greetings = Vec::new();
    let mut negotiations = Vec::new();
    for run in 0..5 {
        let vm = Qemu::start(&binary, &sandbox.path(&format!("qmp{run}.sock")), &[]).await;
        let (greeting, negotiated) = vm.handshake_times();
        greetings.push(greeting);
        negotiations.push(negotiated);
        vm.client.quit().await.expect("quit");
        vm.wait_exit().await;
    }
    greetings.sort();
    negotiations.sort();
    eprintln!(
        "qemu start floor over 5 runs: exec->greeting min {} median {} max {}; exec->negotiated min {} median {} max {}",
        ms(greetings[0]), ms(greetings[2]), ms(greetings[4]),
        ms(negotiations[0]), ms(negotiations[2]), ms(negotiations[4])
    );
    assert!(negotiations[2] < WAIT);
}

#[tokio::test]
async fn real_qemu_accepts_the_launcher_start_sequence_commands() {
    let Some(binary) = qemu("real_qemu_accepts_the_launcher_start_sequence_commands") else {
        return;
    };
    let sandbox = Sandbox::new();
    let extra = [
        "-chardev",
        "ringbuf,id=console,size=65536",
        "-device",
        "VGA",
        "-device",
        "pcie-root-port,id=rp1,chassis=1",
    ];
    let vm = Qemu::start(&binary, &sandbox.path("qmp.sock"), &extra).await;
    let client = vm.client.clone();

    let policy = ActionPolicy {
        reboot: Some(RebootAction::Reset),
        shutdown: Some(ShutdownAction::Poweroff),
        panic: Some(PanicAction::Pause),
        watchdog: None,
    };
    client.set_action(policy).await.expect("set-action");
    client
        .blockdev_add(json!({"driver": "null-co", "node-name": "disk0", "size": 1 << 20}))
        .await
        .expect("blockdev-add");
    let mut properties = Map::new();
    properties.insert("drive".into(), json!("disk0"));
    properties.insert("bus".into(), json!("rp1"));
    client
        .device_add("virtio-blk-pci", "vd0", properties)
        .await
        .expect("device_add");
    let blocks = client.query_block().await.expect("query-block");
    assert!(
        blocks.iter().any(|b| b
            .inserted
            .as_ref()
            .is_some_and(|i| i["node-name"] == "disk0")),
        "{blocks:?}"
    );

    client
        .execute(
            "ringbuf-write",
            json!({"device": "console", "data": "Ym9vdP8K", "format": "base64"}),
        )
        .await
        .expect("ringbuf-write");
    assert_eq!(
        client
            .ringbuf_read("console", 4096)
            .await
            .expect("ringbuf-read"),
        b"boot\xff\n"
    );

    let png = sandbox.path("screen.png");
    client.screendump(&png).await.expect("screendump");
    assert_eq!(&std::fs::read(&png).expect("png")[..4], b"\x89PNG");

    let hmp = client
        .human_monitor_command("info status")
        .await
        .expect("hmp");
    assert!(hmp.contains("prelaunch"), "{hmp}");
    assert_eq!(client.query_cpus_fast().await.expect("cpus").len(), 1);
    assert_eq!(
        client.query_version().await.expect("version"),
        client.greeting().version
    );
    assert_eq!(client.query_migrate().await.expect("migrate").status, None);
    let missing = client.device_del("nope").await.expect_err("unknown device");
    assert_eq!(missing.class(), Some("DeviceNotFound"));

    client.quit().await.expect("quit");
    vm.wait_exit().await;
}

#[tokio::test]
async fn real_qemu_killed_is_reported_as_a_crash() {
    let Some(binary) = qemu("real_qemu_killed_is_reported_as_a_crash") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut vm = Qemu::start(&binary, &sandbox.path("qmp.sock"), &[]).await;
    vm.client.cont().await.expect("cont");
    vm.child.start_kill().expect("kill -9");
    let closed = tokio::time::timeout(WAIT, vm.client.closed())
        .await
        .expect("closed in time");
    assert!(closed.is_crash(), "{closed:?}");
    assert!(closed.saw_event("RESUME"));
    assert!(vm
        .client
        .query_status()
        .await
        .expect_err("gone")
        .is_closed());
    vm.wait_exit().await;
}

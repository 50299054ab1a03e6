//! Real QEMU under TCG, driven through `oxivirt_launcher::run` and the run directory's
//! files exactly as the node agent will use them. Skipped, saying why, without QEMU or
//! the test guest.

use std::path::Path;
use std::time::Duration;

use oxivirt_launcher::status::Phase;
use serde_json::{json, Value};

use crate::support::{
    console_count, control, run_dir, status, test_guest, wait_console, wait_phase, write_launch,
};

const BANNER: &str = "OXIVIRT-TEST-GUEST READY";
/// Generous: TCG on two cores shared with other test binaries.
const BOOT: Duration = Duration::from_secs(180);
const START: Duration = Duration::from_secs(60);

fn kernel_boot_vmi(name: &str, guest: &Path, volumes: Value, disks: Value) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": "tests", "uid": "0b6c2d7e-3333-4c4c-8d8d-0123456789ab"},
        "spec": {
            "terminationGracePeriodSeconds": 60,
            "domain": {
                "memory": {"guest": "256Mi"},
                "firmware": {"kernelBoot": {
                    "kernelArgs": "console=ttyS0 quiet",
                    "container": {"image": "test-guest", "kernelPath": guest.join("vmlinuz"),
                                  "initrdPath": guest.join("initrd.img")}}},
                "devices": {"disks": disks},
            },
            "volumes": volumes,
        }
    })
}

fn spawn_launcher(dir: &Path) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let dir = dir.to_owned();
    tokio::spawn(async move { oxivirt_launcher::run(&dir).await })
}

async fn wait_launcher(launcher: tokio::task::JoinHandle<anyhow::Result<()>>, timeout: Duration) {
    tokio::time::timeout(timeout, launcher)
        .await
        .expect("launcher exits in time")
        .expect("launcher task")
        .expect("launcher returns Ok");
}

fn print_timings(test: &str, dir: &Path) {
    if let Some(startup) = status(dir).and_then(|s| s.startup) {
        println!(
            "{test}: launcher start -> qemu spawned {} ms, QMP ready {} ms, cont {} ms",
            startup.spawned_ms, startup.qmp_ready_ms, startup.running_ms
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_boot_runs_pauses_resets_reboots_and_shuts_down_gracefully() {
    let test = "kernel_boot_runs_pauses_resets_reboots_and_shuts_down_gracefully";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let dir = run_dir();
    // A ConfigDrive seed (nested directories in the launcher's ISO) sets the hostname.
    let user_data = "#cloud-config\nruncmd:\n  - echo OXIVIRT-CONFIGDRIVE-OK\n";
    let volumes = json!([{"name": "cd", "cloudInitConfigDrive": {"userData": user_data}}]);
    let disks = json!([{"name": "cd", "disk": {"bus": "virtio"}}]);
    let vmi = kernel_boot_vmi("kernel", &guest, volumes, disks);
    write_launch(dir.path(), &json!({"vmi": vmi, "accel": "tcg"}));
    let launcher = spawn_launcher(dir.path());

    let running = wait_phase(dir.path(), Phase::Running, START).await;
    assert!(running.qemu_pid.is_some() && running.started_at.is_some());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("launcher.pid"))
            .expect("pid")
            .trim(),
        std::process::id().to_string()
    );
    print_timings(test, dir.path());
    let boot = wait_console(dir.path(), BANNER, BOOT).await;
    println!("{test}: banner {boot:?} after Running");
    wait_console(dir.path(), "OXIVIRT-CONFIGDRIVE-OK", START).await;
    wait_console(dir.path(), "hostname=kernel ", START).await;

    assert_eq!(
        control(dir.path(), r#"{"command":"pause"}"#).await,
        json!({"ok": true})
    );
    let paused = wait_phase(dir.path(), Phase::Paused, START).await;
    assert_eq!(paused.reason, "PausedByUser");
    let reply = control(dir.path(), r#"{"command":"status"}"#).await;
    assert_eq!(reply["status"]["phase"], "Paused");
    assert_eq!(
        control(dir.path(), r#"{"command":"unpause"}"#).await,
        json!({"ok": true})
    );
    wait_phase(dir.path(), Phase::Running, START).await;

    assert_eq!(
        control(dir.path(), r#"{"command":"reset"}"#).await,
        json!({"ok": true})
    );
    assert_eq!(status(dir.path()).expect("status").phase, Phase::Running);
    let start = std::time::Instant::now();
    while console_count(dir.path(), BANNER) < 2 {
        assert!(start.elapsed() < BOOT, "no second banner after reset");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Soft reboot through the real qemu-guest-agent: the banner comes once more.
    assert_eq!(
        control(dir.path(), r#"{"command":"softreboot"}"#).await,
        json!({"ok": true})
    );
    let start = std::time::Instant::now();
    while console_count(dir.path(), BANNER) < 3 {
        assert!(start.elapsed() < BOOT, "no third banner after softreboot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(dir.path()).expect("status").phase, Phase::Running);
    let os = status(dir.path()).and_then(|s| s.guest_os_info);
    println!("{test}: guestOsInfo {os:?}");

    let reply = control(dir.path(), r#"{"command":"shutdown","graceSeconds":120}"#).await;
    assert_eq!(reply, json!({"ok": true}));
    wait_launcher(launcher, BOOT).await;
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Succeeded, "GuestShutdown"),
        "{done:?}"
    );
    assert!(!dir.path().join("control.sock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_disk_boots_from_an_overlay_and_leaves_the_base_untouched() {
    let test = "container_disk_boots_from_an_overlay_and_leaves_the_base_untouched";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let base = guest.join("disk.qcow2");
    let before = std::fs::read(&base).expect("base image");
    let dir = run_dir();
    let vmi = json!({
        "metadata": {"name": "cdisk", "namespace": "tests"},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {"memory": {"guest": "256Mi"},
                       "devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]}},
            "volumes": [{"name": "containerdisk", "containerDisk": {"image": "test-guest"}}],
        }
    });
    let disks = json!({"containerdisk": {"path": base, "format": "qcow2", "ephemeral": true}});
    write_launch(dir.path(), &json!({"vmi": vmi, "disks": disks}));
    let launcher = spawn_launcher(dir.path());

    wait_phase(dir.path(), Phase::Running, START).await;
    print_timings(test, dir.path());
    let overlay = dir.path().join("disks/containerdisk.qcow2");
    assert!(overlay.is_file(), "overlay missing");
    let boot = wait_console(dir.path(), BANNER, BOOT).await;
    println!("{test}: banner {boot:?} after Running (SeaBIOS, GRUB, overlay)");

    assert_eq!(
        control(dir.path(), r#"{"command":"kill"}"#).await,
        json!({"ok": true})
    );
    wait_launcher(launcher, START).await;
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Failed, "Killed"),
        "{done:?}"
    );
    assert!(!overlay.exists(), "the overlay is discarded on stop");
    assert!(
        std::fs::read(&base).expect("base image") == before,
        "base image changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_qemu_is_reported_as_a_crash() {
    let test = "killing_qemu_is_reported_as_a_crash";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let dir = run_dir();
    let vmi = kernel_boot_vmi("crash", &guest, json!([]), json!([]));
    write_launch(dir.path(), &json!({"vmi": vmi}));
    let launcher = spawn_launcher(dir.path());

    let running = wait_phase(dir.path(), Phase::Running, START).await;
    print_timings(test, dir.path());
    let pid = running.qemu_pid.expect("qemu pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_launcher(launcher, START).await;
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Failed, "QemuCrashed"),
        "{done:?}"
    );
    assert!(done.message.contains("SIGKILL"), "{}", done.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_init_runcmd_output_reaches_the_console_and_a_panic_fails_the_vm() {
    let test = "cloud_init_runcmd_output_reaches_the_console_and_a_panic_fails_the_vm";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let dir = run_dir();
    // The pause lets the guest's console output drain before the panic stops the kernel.
    let user_data = "#cloud-config\nruncmd:\n  - echo OXIVIRT-RUNCMD-$((6*7))\n  - sleep 1\n  - echo c > /proc/sysrq-trigger\n";
    let volumes = json!([{"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data}}]);
    let disks = json!([{"name": "cloudinit", "disk": {"bus": "virtio"}}]);
    let vmi = kernel_boot_vmi("seeded", &guest, volumes, disks);
    write_launch(dir.path(), &json!({"vmi": vmi}));
    let launcher = spawn_launcher(dir.path());

    wait_phase(dir.path(), Phase::Running, START).await;
    print_timings(test, dir.path());
    let seen = wait_console(dir.path(), "OXIVIRT-RUNCMD-42", BOOT).await;
    println!("{test}: runcmd output {seen:?} after Running");
    wait_launcher(launcher, BOOT).await;
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Failed, "GuestPanicked"),
        "{done:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_that_cannot_start_fails_with_its_diagnostics() {
    let test = "a_qemu_that_cannot_start_fails_with_its_diagnostics";
    if !crate::support::qemu_installed(test) {
        return;
    }
    let dir = run_dir();
    let vmi = json!({"metadata": {"name": "bad"}, "spec": {"domain": {
        "memory": {"guest": "64Mi"}, "machine": {"type": "no-such-machine"}}}});
    write_launch(dir.path(), &json!({"vmi": vmi}));
    let result = oxivirt_launcher::run(dir.path()).await;
    assert!(result.is_err());
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Failed, "QemuStartFailed"),
        "{done:?}"
    );
    assert!(
        done.message.contains("unsupported machine type"),
        "{}",
        done.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_ignores_the_power_button_is_killed_after_the_grace_period() {
    let test = "a_guest_that_ignores_the_power_button_is_killed_after_the_grace_period";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let dir = run_dir();
    let vmi = kernel_boot_vmi("stubborn", &guest, json!([]), json!([]));
    write_launch(dir.path(), &json!({"vmi": vmi}));
    let launcher = spawn_launcher(dir.path());

    // Right after `cont` the guest is still in its firmware: nothing handles ACPI yet.
    wait_phase(dir.path(), Phase::Running, START).await;
    let reply = control(dir.path(), r#"{"command":"shutdown","graceSeconds":1}"#).await;
    assert_eq!(reply, json!({"ok": true}));
    wait_launcher(launcher, START).await;
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Failed, "GracePeriodExpired"),
        "{done:?}"
    );
}

/// Set to a run directory, this test runs the launcher in its own process, so a signal
/// sent to it reaches no other test's launcher. Without it, it does nothing.
const CHILD_ENV: &str = "OXIVIRT_LAUNCHER_CHILD_RUN_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_launcher_runs_only_when_re_executed_by_the_signal_test() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        oxivirt_launcher::run(Path::new(&dir))
            .await
            .expect("launcher");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_the_guest_down_gracefully() {
    let test = "sigterm_shuts_the_guest_down_gracefully";
    let Some(guest) = test_guest(test) else {
        return;
    };
    let dir = run_dir();
    let vmi = kernel_boot_vmi("sigterm", &guest, json!([]), json!([]));
    write_launch(dir.path(), &json!({"vmi": vmi}));
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "qemu::child_launcher_runs_only_when_re_executed_by_the_signal_test",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir.path())
        // Its own "test result" line would be counted as a test of this binary.
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("child launcher");

    let running = wait_phase(dir.path(), Phase::Running, START).await;
    assert_eq!(running.launcher_pid, child.id());
    wait_console(dir.path(), BANNER, BOOT).await;
    let proc_status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let rss = proc_status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?");
    println!("{test}: launcher process (test harness included) {rss}");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "launcher exited with {exit}");
    let done = status(dir.path()).expect("final status");
    assert_eq!(
        (done.phase, done.reason.as_str()),
        (Phase::Succeeded, "GuestShutdown"),
        "{done:?}"
    );
}

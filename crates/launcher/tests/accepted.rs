//! Every golden fixture's configuration is accepted by the real QEMU: the fixture's
//! `launch.json` with its image paths pointed at small scratch images is run through
//! `oxivirt_launcher::run` until the VM runs, then killed. This catches device strings
//! that read well in a golden file but that QEMU refuses.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oxivirt_launcher::status::Phase;
use serde_json::{json, Value};

use crate::golden::{fixture_launch, FIXTURES};
use crate::support::{
    control, qemu_installed, run_dir, status, test_guest, wait_started, write_launch,
};

fn image(path: &Path, format: &str) {
    let created = Command::new("qemu-img")
        .args(["create", "-q", "-f", format])
        .arg(path)
        .arg("16M")
        .status()
        .expect("qemu-img");
    assert!(created.success(), "qemu-img create {}", path.display());
}

/// Points every path of `launch` into `scratch`, creating the images it names.
fn localise(launch: &mut Value, scratch: &Path, guest: Option<&Path>) -> bool {
    launch["accel"] = json!("tcg");
    launch["uid"] = Value::Null;
    launch["gid"] = Value::Null;
    let config_volumes: Vec<String> = launch
        .pointer("/vmi/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| {
            [
                "configMap",
                "secret",
                "serviceAccount",
                "downwardAPI",
                "sysprep",
            ]
            .iter()
            .any(|kind| v.get(kind).is_some())
        })
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let disks = launch["disks"].as_object_mut().expect("disks");
    for (name, disk) in disks.iter_mut() {
        if name == "kernelBoot" {
            let Some(guest) = guest else { return false };
            let root = scratch.join("kernel-root");
            std::fs::create_dir_all(root.join("boot")).expect("kernel root");
            std::os::unix::fs::symlink(guest.join("vmlinuz"), root.join("boot/vmlinuz-virt"))
                .expect("link");
            std::os::unix::fs::symlink(guest.join("initrd.img"), root.join("boot/initramfs-virt"))
                .expect("link");
            disk["path"] = json!(root);
            continue;
        }
        if name == "persistentState" {
            // The state claim's volume directory (the launcher makes swtpm/ and nvram/ in it).
            let dir = scratch.join("persistent-state");
            std::fs::create_dir_all(&dir).expect("state dir");
            disk["path"] = json!(dir);
            continue;
        }
        if config_volumes.contains(name) {
            // What the node agent writes for a config volume: a directory of files.
            let dir = scratch.join(format!("config-{name}"));
            std::fs::create_dir_all(&dir).expect("config dir");
            std::fs::write(dir.join("autounattend.xml"), "<unattend/>").expect("file");
            disk["path"] = json!(dir);
            continue;
        }
        let format = disk["format"].as_str().unwrap_or("raw").to_owned();
        let path = scratch.join(format!("{name}.{format}"));
        image(&path, &format);
        disk["path"] = json!(path);
    }
    let volumes = launch
        .pointer_mut("/vmi/spec/volumes")
        .and_then(Value::as_array_mut);
    for volume in volumes.into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default().to_owned();
        if let Some(host) = volume.get_mut("hostDisk") {
            let path = scratch.join(format!("host-{name}.img"));
            if host["type"] == "Disk" {
                image(&path, "raw");
            }
            host["path"] = json!(path);
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_configuration_is_accepted_by_qemu() {
    let test = "every_fixture_configuration_is_accepted_by_qemu";
    if !qemu_installed(test) {
        return;
    }
    let guest = test_guest(test);
    let mut refused = Vec::new();
    for name in FIXTURES {
        let scratch = run_dir();
        let dir = run_dir();
        let mut launch = fixture_launch(name);
        let efi = launch
            .pointer("/vmi/spec/domain/firmware/bootloader/efi")
            .is_some();
        if efi && !Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file() {
            eprintln!("SKIPPED {test} for {name}: OVMF is not installed (Debian package ovmf)");
            continue;
        }
        let tpm = launch.pointer("/vmi/spec/domain/devices/tpm").is_some();
        let missing = |tool| Command::new(tool).arg("--version").output().is_err();
        if tpm && (missing("swtpm") || missing("swtpm_setup")) {
            eprintln!("SKIPPED {test} for {name}: needs Debian packages swtpm, swtpm-tools");
            continue;
        }
        if launch.get("network").is_some() {
            // The taps live in a Pod's network namespace, made by the node agent as root:
            // the network e2e tests (`--test network`) boot such VMs.
            eprintln!("SKIPPED {test} for {name}: needs the Pod's taps (see --test network)");
            continue;
        }
        if !localise(&mut launch, scratch.path(), guest.as_deref()) {
            eprintln!("SKIPPED {test} for {name}: needs the test guest's kernel");
            continue;
        }
        write_launch(dir.path(), &launch);
        let run_path = dir.path().to_owned();
        let launcher = tokio::spawn(async move { oxivirt_launcher::run(&run_path).await });
        let started = wait_started(dir.path(), Duration::from_secs(60)).await;
        if started.phase == Phase::Running {
            assert_eq!(
                control(dir.path(), r#"{"command":"kill"}"#).await,
                json!({"ok": true})
            );
        } else {
            refused.push(format!("{name}: {} {}", started.reason, started.message));
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), launcher).await;
    }
    assert!(refused.is_empty(), "QEMU refused:\n{}", refused.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_runs_as_the_unprivileged_user_from_launch_json() {
    let test = "qemu_runs_as_the_unprivileged_user_from_launch_json";
    if !qemu_installed(test) {
        return;
    }
    let scratch = run_dir();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let dir = run_dir();
    let mut launch = fixture_launch("vmi-ephemeral");
    localise(&mut launch, scratch.path(), None);
    launch["uid"] = json!(65534);
    launch["gid"] = json!(65534);
    write_launch(dir.path(), &launch);
    let run_path = dir.path().to_owned();
    let launcher = tokio::spawn(async move { oxivirt_launcher::run(&run_path).await });
    let started = wait_started(dir.path(), Duration::from_secs(60)).await;
    assert_eq!(started.phase, Phase::Running, "{started:?}");
    let pid = started.qemu_pid.expect("qemu pid");
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uid_line = proc_status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id == "65534"),
        "{uid_line}"
    );
    assert_eq!(
        control(dir.path(), r#"{"command":"kill"}"#).await,
        json!({"ok": true})
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), launcher).await;
    assert_eq!(status(dir.path()).expect("status").phase, Phase::Failed);
}

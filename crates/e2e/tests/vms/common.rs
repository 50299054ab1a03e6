//! Manifests and waits shared by the VM tests.

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::{guest_registry, virtctl_bin, wait_until, Kubectl, Run, Server};
use serde_json::{json, Value};

/// How long a guest may take to boot to its banner, or a VM to change state, on a loaded
/// two-core machine under TCG.
pub const BOOT: Duration = Duration::from_secs(180);

/// A VM running the test guest from the registry, with no network (networking has its own
/// tests) and `user_data` as NoCloud user data when given.
pub fn vm(name: &str, run_strategy: &str, user_data: Option<&str>) -> String {
    let mut volumes =
        vec![json!({"name": "root", "containerDisk": {"image": guest_registry().image()}})];
    let mut disks = vec![json!({"name": "root", "disk": {"bus": "virtio"}})];
    if let Some(user_data) = user_data {
        volumes.push(json!({"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data}}));
        disks.push(json!({"name": "cloudinit", "disk": {"bus": "virtio"}}));
    }
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": run_strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "domain": {
                        "devices": {"disks": disks, "interfaces": []},
                        "resources": {"requests": {"memory": "128Mi"}},
                    },
                    "networks": [],
                    "volumes": volumes,
                },
            },
        },
    })
    .to_string()
}

/// Runs `virtctl args…` against `server`.
pub fn virtctl(server: &Server, args: &[&str]) -> Run {
    let output = Command::new(virtctl_bin())
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run virtctl {args:?}: {e}"));
    Run {
        command: format!("virtctl {}", args.join(" ")),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The object as JSON, or `None` when it does not exist.
pub fn get(k: &Kubectl, kind: &str, name: &str) -> Option<Value> {
    let run = k.run(&["get", kind, name, "-o", "json"]);
    if !run.status.success() {
        return None;
    }
    serde_json::from_str(&run.stdout).ok()
}

/// Waits until the VM's `printableStatus` is `status`.
pub fn wait_vm_status(k: &Kubectl, name: &str, status: &str) {
    wait_until(&format!("VM {name} to be {status}"), BOOT, || {
        (get(k, "vm", name)?["status"]["printableStatus"] == status).then_some(())
    });
}

/// The VMI's uid once it is Running.
pub fn wait_vmi_running(k: &Kubectl, name: &str) -> String {
    wait_until(&format!("VMI {name} to run"), BOOT, || {
        let vmi = get(k, "vmi", name)?;
        (vmi["status"]["phase"] == "Running").then(|| {
            vmi["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    })
}

/// The name of the VMI's launcher Pod.
pub fn launcher_pod(k: &Kubectl, name: &str) -> String {
    wait_until(&format!("the launcher Pod of {name}"), BOOT, || {
        let pods: Value = serde_json::from_str(&k.ok(&[
            "get",
            "pods",
            "-l",
            &format!("vm.kubevirt.io/name={name}"),
            "-o",
            "json",
        ]))
        .ok()?;
        pods["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["deletionTimestamp"].is_null())
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    })
}

/// The guest's serial console log as `kubectl logs <pod> -c guest-console-log` shows it.
pub fn console_log(k: &Kubectl, name: &str) -> String {
    let pod = launcher_pod(k, name);
    k.run(&["logs", &pod, "-c", "guest-console-log"]).stdout
}

/// Waits until the guest has printed its banner on the serial console.
pub fn wait_banner(k: &Kubectl, name: &str) {
    wait_until(
        &format!("the banner of {name} on its console log"),
        BOOT,
        || {
            console_log(k, name)
                .contains("OXIVIRT-TEST-GUEST READY")
                .then_some(())
        },
    );
}

/// Whether `swtpm` and `swtpm_setup` are installed; says the test is skipped when not.
pub fn swtpm_installed() -> bool {
    let installed = |tool| std::process::Command::new(tool).arg("--version").output();
    if installed("swtpm").is_err() || installed("swtpm_setup").is_err() {
        eprintln!("SKIPPED: swtpm is not installed (Debian packages swtpm, swtpm-tools)");
        return false;
    }
    true
}

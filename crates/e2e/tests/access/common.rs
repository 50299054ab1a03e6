//! Identities, VMs and `virtctl` runs shared by the access tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::{guest_registry, virtctl_bin, wait_until, Kubectl, Run, Server};
use serde_json::{json, Value};

/// How long a guest may take to boot, or a VM to change state, on a loaded two-core machine
/// under TCG.
pub const BOOT: Duration = Duration::from_secs(180);

/// A ServiceAccount `name` in `ns` bound (RoleBinding in `ns`) to ClusterRole `role`, and a
/// kubeconfig carrying a token for it made with `kubectl create token`.
pub fn service_account_with_role(server: &Server, ns: &str, name: &str, role: &str) -> PathBuf {
    let k = server.kubectl();
    k.ok(&["create", "serviceaccount", name, "-n", ns]);
    if !role.is_empty() {
        k.ok(&[
            "create",
            "rolebinding",
            &format!("{name}-{}", role.replace([':', '.'], "-")),
            "-n",
            ns,
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={ns}:{name}"),
        ]);
    }
    let token = k.ok(&["create", "token", name, "-n", ns]);
    kubeconfig_with_token(server, &format!("{ns}-{name}.kubeconfig"), token.trim(), ns)
}

/// A copy of the admin kubeconfig whose user is just `token` and whose namespace is `ns`.
pub fn kubeconfig_with_token(server: &Server, file: &str, token: &str, ns: &str) -> PathBuf {
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read admin kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    for entry in config["users"].as_sequence_mut().expect("users") {
        let mut user = serde_yaml::Mapping::new();
        user.insert("token".into(), token.into());
        entry["user"] = serde_yaml::Value::Mapping(user);
    }
    for entry in config["contexts"].as_sequence_mut().expect("contexts") {
        entry["context"]["namespace"] = ns.into();
    }
    server.write_file(file, &serde_yaml::to_string(&config).expect("yaml"))
}

/// A `kubectl` for `kubeconfig` with its own discovery cache.
pub fn kubectl_as(server: &Server, kubeconfig: &std::path::Path) -> Kubectl {
    let cache = server.scratch().join(format!(
        "cache-{}",
        kubeconfig
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
    ));
    Kubectl::new(kubeconfig, cache)
}

/// Runs `virtctl args…` with `kubeconfig` (killed after 120 s).
pub fn virtctl(kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let mut command = Command::new(virtctl_bin());
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null());
    let output = run_with_timeout(command, Duration::from_secs(120));
    Run {
        command: format!("virtctl {}", args.join(" ")),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `command` to completion, killing it after `timeout`.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> std::process::Output {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("cannot start the command");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -KILL {pid} 2>/dev/null"))
                .status();
        }
    });
    let output = child
        .wait_with_output()
        .expect("cannot wait for the command");
    let _ = done_tx.send(());
    output
}

/// A VM running the test guest from the registry, without networking unless `pod_network`,
/// with `user_data` as NoCloud user data when given.
pub fn vm(name: &str, user_data: Option<&str>, pod_network: bool) -> String {
    let mut volumes =
        vec![json!({"name": "root", "containerDisk": {"image": guest_registry().image()}})];
    let mut disks = vec![json!({"name": "root", "disk": {"bus": "virtio"}})];
    if let Some(user_data) = user_data {
        volumes.push(json!({"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data}}));
        disks.push(json!({"name": "cloudinit", "disk": {"bus": "virtio"}}));
    }
    let (interfaces, networks) = if pod_network {
        (
            json!([{"name": "default", "masquerade": {}}]),
            json!([{"name": "default", "pod": {}}]),
        )
    } else {
        (json!([]), json!([]))
    };
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "domain": {
                        "devices": {"disks": disks, "interfaces": interfaces},
                        "resources": {"requests": {"memory": "128Mi"}},
                    },
                    "networks": networks,
                    "volumes": volumes,
                },
            },
        },
    })
    .to_string()
}

/// The object as JSON, or `None` when it does not exist.
pub fn get(k: &Kubectl, kind: &str, name: &str) -> Option<Value> {
    let run = k.run(&["get", kind, name, "-o", "json"]);
    if !run.status.success() {
        return None;
    }
    serde_json::from_str(&run.stdout).ok()
}

/// Waits until the VMI runs.
pub fn wait_vmi_running(k: &Kubectl, name: &str) {
    wait_until(&format!("VMI {name} to run"), BOOT, || {
        (get(k, "vmi", name)?["status"]["phase"] == "Running").then_some(())
    });
}

/// The guest's serial console log as `kubectl logs <launcher> -c guest-console-log` shows it.
pub fn console_log(k: &Kubectl, name: &str) -> String {
    let pods = k.json(&["get", "pods", "-l", &format!("vm.kubevirt.io/name={name}")]);
    let Some(pod) = pods["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|p| p["metadata"]["deletionTimestamp"].is_null())
        })
        .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    else {
        return String::new();
    };
    k.run(&["logs", &pod, "-c", "guest-console-log"]).stdout
}

/// Waits until the guest printed its banner on the serial console.
pub fn wait_banner(k: &Kubectl, name: &str) {
    wait_until(&format!("the banner of {name}"), BOOT, || {
        console_log(k, name)
            .contains("OXIVIRT-TEST-GUEST READY")
            .then_some(())
    });
}

/// The user the shared guest creates for SSH, with [`ssh_key`] authorised.
pub const GUEST_USER: &str = "tester";
/// The name of the shared guest's VM.
pub const GUEST: &str = "guest";

/// A private key (ed25519, no passphrase) made once per test process with `ssh-keygen`.
pub fn ssh_key() -> &'static std::path::Path {
    static KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("oxivirt-e2e-ssh-")
            .tempdir()
            .expect("cannot create the key directory")
            .keep();
        let key = dir.join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "oxivirt-e2e", "-f"])
            .arg(&key)
            .status()
            .expect("cannot run ssh-keygen (apt-get install openssh-client)");
        assert!(status.success(), "ssh-keygen failed");
        key
    })
}

/// One server with one running test guest ([`GUEST`] in `default`), shared by the stream
/// tests while any of them runs: a guest boot is the expensive part of these tests.
static SHARED: oxivirt_e2e::SharedServer = oxivirt_e2e::SharedServer::new();

/// The shared server, with the guest booted to its banner.
pub fn shared_guest() -> std::sync::Arc<Server> {
    let server = SHARED.get();
    let k = server.kubectl();
    let public = std::fs::read_to_string(ssh_key().with_extension("pub")).expect("public key");
    let user_data = format!(
        "#cloud-config\nusers:\n  - name: {GUEST_USER}\n    ssh_authorized_keys:\n      - {}\n",
        public.trim()
    );
    // Whichever test comes first creates the VM; concurrent applies would race to create.
    static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    {
        let _one_at_a_time = CREATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        k.apply(&vm(GUEST, Some(&user_data), false));
    }
    wait_vmi_running(&k, GUEST);
    wait_banner(&k, GUEST);
    server
}

/// `-i KEY` and the options that keep ssh from consulting or writing known_hosts: every
/// test server's guest has fresh host keys.
pub fn ssh_options() -> Vec<String> {
    vec![
        "-i".into(),
        ssh_key().display().to_string(),
        "-t".into(),
        "-oStrictHostKeyChecking=no".into(),
        "-t".into(),
        "-oUserKnownHostsFile=/dev/null".into(),
        "-t".into(),
        "-oLogLevel=ERROR".into(),
    ]
}

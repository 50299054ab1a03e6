//! What the network tests share: the reasons to skip (no root, no nft, no registry), the
//! test guest and a registry serving its containerDisk, a server whose host network objects
//! are removed when the test ends, and VM manifests.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use oxivirt_e2e::{repo_root, wait_until, Kubectl, Server};
use serde_json::{json, Value};

/// How long a VM may take from creation to its guest's READY banner under TCG.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why these tests cannot run here, if they cannot (printed, never silent).
pub fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("the pod network needs root".into());
    }
    for tool in ["ip", "nft", "docker-registry", "qemu-system-x86_64", "curl"] {
        if !have(tool) {
            return Some(format!("{tool} is not installed (apt-get install iproute2 nftables docker-registry qemu-system-x86 curl)"));
        }
    }
    None
}

/// Returns early from a test, saying why, when it cannot run here.
#[macro_export]
macro_rules! skip_unless_possible {
    () => {
        if let Some(reason) = $crate::support::skip_reason() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

/// The test guest's build directory (`$OXIVIRT_TEST_GUEST`, else `build.sh`'s output).
pub fn guest_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("OXIVIRT_TEST_GUEST") {
            return dir.into();
        }
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/test-guest/build.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run scripts/test-guest/build.sh");
        assert!(
            out.status.success(),
            "build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
    })
    .clone()
}

/// The containerDisk reference of the test guest in a registry that lives as long as this
/// test process (a shell stops it when the process is gone).
pub fn guest_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let guest = guest_dir();
            let dir = tempfile::Builder::new().prefix("oxivirt-net-registry-").tempdir().unwrap().keep();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let script = format!(
                "docker-registry serve {} >/dev/null 2>&1 & r=$!; while kill -0 {} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 1; done; kill $r; rm -rf {}",
                config.display(),
                std::process::id(),
                dir.display()
            );
            let mut watcher = Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).spawn().unwrap();
            // Reaped when it ends (with this process); never a zombie meanwhile.
            std::thread::spawn(move || watcher.wait());
            let address = format!("127.0.0.1:{port}");
            wait_until("docker-registry", Duration::from_secs(30), || std::net::TcpStream::connect(&address).ok());
            let image = format!("{address}/oxivirt/test-guest:latest");
            let push = Command::new("bash")
                .arg(guest.join("push-containerdisk.sh"))
                .arg("-d")
                .arg(guest.join("containerdisk"))
                .arg(&image)
                .output()
                .unwrap();
            assert!(push.status.success(), "push failed: {}", String::from_utf8_lossy(&push.stderr));
            image
        })
        .clone()
}

/// A server for one test; on drop its launchers, QEMUs and host network objects go too.
pub struct NetServer {
    pub server: Server,
}

impl NetServer {
    pub fn start() -> Self {
        NetServer {
            server: Server::start(),
        }
    }

    pub fn kubectl(&self) -> Kubectl {
        self.server.kubectl()
    }

    /// The network ids of the cluster's nodes (from their `oxivirt.io/pod-network`
    /// annotations).
    pub fn node_ids(&self) -> Vec<String> {
        let notes = self
            .kubectl()
            .run(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.annotations.oxivirt\\.io/pod-network}{\"\\n\"}{end}"])
            .stdout;
        notes
            .lines()
            .filter_map(|n| {
                n.split_whitespace()
                    .last()?
                    .strip_prefix("oxb")
                    .map(str::to_string)
            })
            .collect()
    }
}

impl Drop for NetServer {
    fn drop(&mut self) {
        let ids = self.node_ids();
        let data = self.server.data_dir();
        self.server.kill();
        remove_leftovers(&data, ids);
    }
}

/// A server started with extra environment (the harness's `Server` takes none), for
/// settings such as dual stack that must not reach the other tests' servers.
pub struct EnvServer {
    root: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl EnvServer {
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1:0", env)
    }

    /// A server listening on `listen` (an address other hosts, such as nodes in network
    /// namespaces, can reach; it becomes a name in the serving certificate).
    pub fn start_on(listen: &str, env: &[(&str, &str)]) -> Self {
        let root = tempfile::Builder::new()
            .prefix("oxivirt-e2e-net-")
            .tempdir()
            .unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::File::create(root.path().join("server.log")).unwrap();
        let child = Command::new(oxivirt_e2e::oxivirt_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", listen])
            .env("OXIVIRT_ACCEL", "tcg")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = EnvServer {
            root,
            child: Some(child),
        };
        let k = server.kubectl();
        wait_until("the server to be ready", Duration::from_secs(60), || {
            server.kubeconfig().exists().then_some(())?;
            k.run(&["get", "--raw", "/readyz"])
                .status
                .success()
                .then_some(())
        });
        server
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.root.path().join("data/admin.kubeconfig")
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubeconfig(), self.root.path().join("kube-cache"))
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for EnvServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
            eprintln!("server log:\n{log}");
        }
        let notes = self
            .kubectl()
            .run(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.annotations.oxivirt\\.io/pod-network}{\"\\n\"}{end}"])
            .stdout;
        let ids = notes
            .lines()
            .filter_map(|n| {
                n.split_whitespace()
                    .last()?
                    .strip_prefix("oxb")
                    .map(str::to_string)
            })
            .collect();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_leftovers(&self.root.path().join("data"), ids);
    }
}

/// Kills what runs from `data` (launchers, QEMUs) and removes the host objects of `ids`.
fn remove_leftovers(data: &std::path::Path, ids: Vec<String>) {
    {
        // Launchers and QEMUs outlive their server by design; this test's must not.
        let needle = data.to_string_lossy().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&needle) && pid != std::process::id()
                {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
        for id in ids {
            let script = format!(
                "for n in $(ip netns list | awk '{{print $1}}' | grep '^oxi-{id}-'); do ip netns del $n; done; \
                 nft list tables | awk '$3 == \"oxi-{id}\" || index($3, \"oxi-{id}-\") == 1 {{print $2, $3}}' | \
                 while read f t; do nft delete table $f $t; done; \
                 ip link del oxb{id} 2>/dev/null; rm -f /run/oxivirt-net/{id}.lock; true"
            );
            let _ = Command::new("sh").args(["-c", &script]).status();
        }
    }
}

/// A VM running the test guest whose cloud-init starts busybox httpd on `ports`, each
/// serving `<name>:<port>`, with `labels` on its template and `extra` merged into the
/// template spec.
pub fn vm(name: &str, labels: Value, ports: &[u16], extra: Value) -> Value {
    let mut runcmd = vec![];
    for port in ports {
        runcmd.push(format!(
            "mkdir -p /www{port} && echo {name}:{port} > /www{port}/index.html && httpd -p {port} -h /www{port}"
        ));
    }
    let user_data = format!(
        "#cloud-config\nssh_authorized_keys:\n  - {}\nruncmd:\n{}",
        ssh_public_key(),
        runcmd
            .iter()
            .map(|c| format!("  - {c}\n"))
            .collect::<String>()
    );
    let mut spec = json!({
        "domain": {
            "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}},
                                  {"name": "cloudinit", "disk": {"bus": "virtio"}}]},
            "resources": {"requests": {"memory": "256Mi"}}
        },
        "volumes": [
            {"name": "root", "containerDisk": {"image": guest_image()}},
            {"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data}}
        ]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}, "spec": spec}}
    })
}

/// A key pair for ssh tests (made once with ssh-keygen or dropbearkey).
pub fn ssh_key_path() -> PathBuf {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("oxivirt-net-ssh-")
            .tempdir()
            .unwrap()
            .keep();
        let key = dir.join("id_ed25519");
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ssh-keygen failed (apt-get install openssh-client)");
        key
    })
    .clone()
}

pub fn ssh_public_key() -> String {
    let path = ssh_key_path().with_extension("pub");
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// Waits until the VM's guest printed its READY banner; returns the launcher Pod's name.
pub fn wait_guest_ready(k: &Kubectl, vm: &str) -> String {
    wait_until(
        &format!("the guest of {vm} to be ready"),
        BOOT_TIMEOUT,
        || {
            let pod = k
                .run(&[
                    "get",
                    "pods",
                    "-l",
                    &format!("vm.kubevirt.io/name={vm}"),
                    "-o",
                    "jsonpath={.items[0].metadata.name}",
                ])
                .stdout;
            if pod.is_empty() {
                return None;
            }
            let log = k.run(&["logs", &pod, "-c", "guest-console-log"]).stdout;
            log.contains("OXIVIRT-TEST-GUEST READY").then_some(pod)
        },
    )
}

/// Waits up to 10 s for Service `name`'s field `template` (a jsonpath the Service controller
/// fills in after creation: ClusterIP, NodePort, LoadBalancer IP) and returns it.
pub fn wait_service_field(k: &Kubectl, what: &str, name: &str, template: &str) -> String {
    let output = format!("jsonpath={template}");
    wait_until(what, Duration::from_secs(10), || {
        let value = k.ok(&["get", "svc", name, "-o", &output]);
        (!value.is_empty()).then_some(value)
    })
}

/// `curl -s --max-time 3 URL`: the body on success.
pub fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

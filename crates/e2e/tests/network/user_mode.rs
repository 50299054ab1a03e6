//! Without root (issue 6 item 9): the whole server runs as `nobody`, so there is no pod
//! network, and a VM's pod-network interface goes through passt. The guest gets an address
//! by passt's DHCP, reaches a server on the host (outbound), and its declared port is
//! forwarded from the host (inbound); the VMI says `UserModeNetworking`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxivirt_e2e::{wait_until, Kubectl};
use serde_json::json;

use crate::support::{self, curl};

/// `nobody` and `nogroup` on Debian.
const NOBODY: u32 = 65534;

/// An `oxivirt server` running as `nobody` from a copy of the binary it may execute (the
/// build's target directory is usually under root's private home).
struct NobodyServer {
    root: tempfile::TempDir,
    child: Option<Child>,
}

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
}

impl NobodyServer {
    fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("oxivirt-e2e-nobody-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let bin = root.path().join("oxivirt");
        std::fs::copy(oxivirt_e2e::oxivirt_bin(), &bin).expect("copy the oxivirt binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("the data directory");
        chown_nobody(&data);
        let log = std::fs::File::create(root.path().join("server.log")).expect("a log");
        // setpriv execs in place: the child is the server itself, so killing it kills it.
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
            ])
            .arg(&bin)
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &data)
            .env("OXIVIRT_ACCEL", "tcg")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot run setpriv");
        let server = NobodyServer {
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

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data().join("admin.kubeconfig")
    }

    fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubeconfig(), self.root.path().join("kube-cache"))
    }
}

impl Drop for NobodyServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
            eprintln!("server log:\n{log}");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Launchers, QEMUs and passt outlive their server by design; this test's must not.
        oxivirt_e2e::kill_processes_under(&self.data());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A one-line HTTP server on all host addresses, answering `body` until the test ends.
fn host_http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn without_root_a_vm_gets_dhcp_and_traffic_through_passt_and_says_so() {
    crate::skip_unless_possible!();
    if Command::new("passt").arg("--version").output().is_err() {
        eprintln!("skipped: passt is not installed (apt-get install passt)");
        return;
    }
    let server = NobodyServer::start();
    let k = server.kubectl();
    let node = k.json(&["get", "nodes"]);
    let note = node["items"][0]["metadata"]["annotations"]["oxivirt.io/pod-network"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("passt"), "{note}");

    let outside = host_http_server("hello-from-the-host");
    let inbound = free_port();
    // The guest fetches from the host through its DHCP default gateway (passt maps it to
    // the host), into the directory its forwarded web server serves.
    let fetch = format!(
        "for i in $(seq 60); do gw=$(ip route | awk '/^default/ {{print $3}}'); \
         [ -n \"$gw\" ] && wget -q -O /www{inbound}/outbound.txt http://$gw:{outside}/ && break; sleep 2; done"
    );
    let mut vm = support::vm(
        "um",
        json!({"app": "um"}),
        &[inbound],
        json!({
            "domain": {
                "devices": {
                    "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {}, "ports": [{"port": inbound}]}]
                },
                "resources": {"requests": {"memory": "256Mi"}}
            },
            "networks": [{"name": "default", "pod": {}}]
        }),
    );
    let volume = &mut vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"];
    let user_data = volume["userData"].as_str().unwrap_or_default().to_string();
    volume["userData"] = json!(format!("{user_data}  - {fetch}\n"));
    k.create(&vm.to_string());
    support::wait_guest_ready(&k, "um");

    let vmi = k.json(&["get", "vmi", "um"]);
    let condition = vmi["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "UserModeNetworking"))
        .cloned()
        .unwrap_or_else(|| panic!("no UserModeNetworking condition: {}", vmi["status"]));
    assert_eq!(condition["status"], "True", "{condition}");
    assert_eq!(condition["reason"], "NoPodNetwork", "{condition}");

    let url = format!("http://127.0.0.1:{inbound}/outbound.txt");
    let body = wait_until(
        "the guest's forwarded port to serve what it fetched from the host",
        Duration::from_secs(120),
        || curl(&url).filter(|b| b.contains("hello-from-the-host")),
    );
    assert_eq!(body, "hello-from-the-host");
}

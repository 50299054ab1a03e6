//! Peers the storage tests need: a small real HTTP/1.1 file server (basic auth, 404s,
//! throttling), the test guest's images, tool checks, and polling helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use oxivirt_e2e::{Kubectl, Server};

/// A file server on a free loopback port serving `root`, stopped on drop.
pub struct FileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

/// How a [`FileServer`] behaves.
#[derive(Clone, Default)]
pub struct Serve {
    /// Paths under `/auth/` need `Authorization: Basic` with this `user:password`.
    pub basic_auth: Option<String>,
    /// Bytes per second (0 = unlimited).
    pub rate: u64,
}

impl FileServer {
    pub fn start(root: &Path, serve: Serve) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let (root, flag) = (root.to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, serve) = (root.clone(), serve.clone());
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = handle(stream, &root, &serve);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FileServer { port, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(mut stream: TcpStream, root: &Path, serve: &Serve) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    if path.starts_with("/auth/") {
        let wanted = serve.basic_auth.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        if authorization != wanted {
            let body = "unauthorized";
            return write!(stream, "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    }
    let file = root.join(path.trim_start_matches("/auth").trim_start_matches('/'));
    let Ok(mut f) = std::fs::File::open(&file) else {
        let body = "404 page not found\n";
        return write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let length = f.metadata()?.len();
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
        if serve.rate > 0 {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / serve.rate as f64));
        }
    }
}

/// Whether every tool is installed; prints why a test is skipped otherwise.
pub fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}

/// The test guest's output directory (`OXIVIRT_TEST_GUEST`, else built by
/// `scripts/test-guest/build.sh`), or `None` (with the reason printed) when unavailable.
pub fn test_guest() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("OXIVIRT_TEST_GUEST") {
        return Some(PathBuf::from(dir));
    }
    let script = oxivirt_e2e::repo_root().join("scripts/test-guest/build.sh");
    let output = Command::new("bash").arg(&script).output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .filter(|d| d.join("disk.qcow2").exists());
    if dir.is_none() {
        eprintln!(
            "skipped: the test guest could not be built: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    dir
}

/// Runs a shell pipeline, panicking with its output on failure.
pub fn sh(script: &str) {
    let output = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls a jsonpath of an object until it equals `wanted`.
pub fn wait_for(kubectl: &Kubectl, args: &[&str], template: &str, wanted: &str, timeout: Duration) {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        last = kubectl
            .run(&[args, &["-o", &format!("jsonpath={template}")]].concat())
            .stdout;
        if last == wanted {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{args:?} {template}: wanted {wanted:?}, last {last:?}");
}

/// A DataVolume that imports `source` (JSON) with immediate binding.
pub fn data_volume(name: &str, source: &str, size: &str) -> String {
    format!(
        r#"{{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {{"name": "{name}", "annotations": {{"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}}}},
            "spec": {{"source": {source}, "storage": {{"resources": {{"requests": {{"storage": "{size}"}}}}}}}}}}"#
    )
}

/// The directory of the volume bound to a claim.
pub fn volume_dir(server: &Server, claim: &str) -> PathBuf {
    let kubectl = server.kubectl();
    let volume = kubectl.jsonpath(&["pvc", claim], "{.spec.volumeName}");
    PathBuf::from(kubectl.jsonpath(&["pv", &volume], "{.spec.hostPath.path}"))
}

/// The condition of `kind` in a DataVolume's status, as (status, reason, message).
pub fn condition(kubectl: &Kubectl, dv: &str, kind: &str) -> (String, String, String) {
    let status = kubectl.json(&["get", "dv", dv]);
    let found = status["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or_default();
    let text = |k: &str| found[k].as_str().unwrap_or_default().to_string();
    (text("status"), text("reason"), text("message"))
}

/// Debian's `docker-registry` on a free loopback port, killed on drop.
pub struct Registry {
    pub address: String,
    child: std::process::Child,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.join("registry");
        std::fs::create_dir_all(&storage).unwrap();
        let config = dir.join("registry.yml");
        std::fs::write(&config, format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        ))
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let address = format!("127.0.0.1:{port}");
        oxivirt_e2e::wait_until("docker-registry listens", Duration::from_secs(20), || {
            TcpStream::connect(&address).ok()
        });
        Registry { address, child }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

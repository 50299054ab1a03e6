//! What tests with real guests share: the test guest (built once by
//! `scripts/test-guest/build.sh`, cached across runs), a real `docker-registry` serving its
//! containerDisk, and process inspection (the QEMU of a VM, leftovers of a server).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::binary::repo_root;

/// The test guest's build directory: `$OXIVIRT_TEST_GUEST`, else what `build.sh` prints.
///
/// # Panics
/// When the build fails; its stderr is shown.
pub fn test_guest_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("OXIVIRT_TEST_GUEST") {
            return PathBuf::from(dir);
        }
        let script = repo_root().join("scripts/test-guest/build.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
    })
    .clone()
}

/// A `docker-registry` on a free loopback port holding the test guest's containerDisk as
/// `oxivirt/test-guest:latest`; it lives as long as the test process.
pub struct GuestRegistry {
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl GuestRegistry {
    /// The image reference of the test guest's containerDisk.
    pub fn image(&self) -> String {
        format!("{}/oxivirt/test-guest:latest", self.address)
    }
}

/// The registry, started and filled on first use.
///
/// # Panics
/// When `docker-registry` is missing or the push fails.
pub fn guest_registry() -> &'static GuestRegistry {
    static REGISTRY: OnceLock<GuestRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let guest = test_guest_dir();
        let dir = tempfile::Builder::new()
            .prefix("oxivirt-e2e-registry-")
            .tempdir()
            .expect("cannot create the registry directory")
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free port")
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .expect("cannot write the registry config");
        // The registry must not outlive the test process (a static is never dropped): a
        // shell watches this process and stops the registry when it is gone.
        let watcher = format!(
            "docker-registry serve {cfg} >{log} 2>&1 & r=$!; while kill -0 {me} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 1; done; kill $r 2>/dev/null; rm -rf {dir}",
            cfg = config.display(),
            log = dir.join("registry.log").display(),
            me = std::process::id(),
            dir = dir.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(watcher)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start docker-registry (apt-get install docker-registry)");
        let address = format!("127.0.0.1:{port}");
        crate::wait_until("docker-registry to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&address).ok()
        });
        let registry = GuestRegistry { address };
        let push = Command::new("bash")
            .arg(repo_root().join("scripts/test-guest/push-containerdisk.sh"))
            .arg("-d")
            .arg(guest.join("containerdisk"))
            .arg(registry.image())
            .output()
            .expect("cannot run push-containerdisk.sh");
        assert!(
            push.status.success(),
            "pushing the test guest failed:\n{}",
            String::from_utf8_lossy(&push.stderr)
        );
        registry
    })
}

/// PIDs of processes whose command line contains every one of `needles`.
pub fn pids_matching(needles: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            needles.iter().all(|n| cmdline.contains(n)).then_some(pid)
        })
        .collect()
}

/// The QEMU process of VMI `namespace/name` started by the server on `data_dir`: upstream's
/// `-name guest=<namespace>_<name>` identifies it.
pub fn qemu_pids(data_dir: &Path, namespace: &str, name: &str) -> Vec<u32> {
    let guest = format!("guest={namespace}_{name},");
    let data = data_dir.display().to_string();
    pids_matching(&["qemu-system", &guest, &data])
}

/// SIGKILLs every process whose command line mentions `dir` (launchers and QEMUs of a
/// server that is gone: they are built to outlive their managers).
pub fn kill_processes_under(dir: &Path) {
    let needle = dir.display().to_string();
    for pid in pids_matching(&[&needle]) {
        if pid != std::process::id() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -KILL {pid} 2>/dev/null"))
                .status();
        }
    }
}

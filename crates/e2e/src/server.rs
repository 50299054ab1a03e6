//! One `oxivirt server` process per test, in its own temporary data directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::oxivirt_bin;
use crate::kubectl::Kubectl;

/// How long a server may take to write its kubeconfig and answer `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `oxivirt server --data-dir <tmp> --listen 127.0.0.1:0`, killed on drop.
///
/// When the test panics, the server log is printed on drop so failures explain themselves.
#[derive(Debug)]
pub struct Server {
    /// Holds the temporary directory (data dir, logs, kubectl cache) alive.
    root: TempDir,
    child: Option<Child>,
    starts: u32,
    /// `OXIVIRT_ACCEL` for the node agent (default: the test's own, else `tcg`).
    accel: Option<String>,
}

/// Whether test servers let the node agent run QEMU unprivileged (uid 107); set
/// `OXIVIRT_E2E_UNPRIVILEGED=0` to keep QEMU as root.
pub fn unprivileged_qemu() -> bool {
    std::env::var("OXIVIRT_E2E_UNPRIVILEGED").map_or(true, |v| v != "0")
}

impl Server {
    /// Starts a server in a fresh temporary directory and waits until it is ready.
    ///
    /// # Panics
    /// When the server does not become ready within [`READY_TIMEOUT`]; the log is printed.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server whose node agent takes `accel` (`kvm` or `tcg`) as its probe's answer,
    /// for tests of what overrides the node's acceleration.
    pub fn start_with_accel(accel: &str) -> Self {
        Self::start_with(Some(accel.to_owned()))
    }

    fn start_with(accel: Option<String>) -> Self {
        let root = tempfile::Builder::new()
            .prefix("oxivirt-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        std::fs::create_dir_all(root.path().join("data")).expect("cannot create the data dir");
        if unprivileged_qemu() {
            // A traversable root lets the node agent run QEMU as uid 107, as on a real host
            // (the data directory's own files stay private).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))
                .expect("cannot open the test directory for traversal");
        }
        let mut server = Self {
            root,
            child: None,
            starts: 0,
            accel,
        };
        server.launch();
        server
    }

    /// The server's data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    /// A scratch directory for test files, removed with the server.
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }

    /// Writes `contents` to a scratch file and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.root.path().join(name);
        std::fs::write(&path, contents).expect("cannot write a scratch file");
        path
    }

    /// A `kubectl` that talks to this server as admin.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubeconfig(), self.root.path().join("kube-cache"))
    }

    /// A `kubectl` with a custom kubeconfig (for example one without credentials).
    pub fn kubectl_with(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl::new(kubeconfig, self.root.path().join("kube-cache-other"))
    }

    /// The server log of every start so far.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
                format!("----- server start #{n} -----\n{text}")
            })
            .collect()
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns its exit status.
    ///
    /// # Panics
    /// When it is still running after 15 s.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(STOP_TIMEOUT)
            .unwrap_or_else(|| panic!("server did not exit within {STOP_TIMEOUT:?} of SIGTERM"))
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)) and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() needs the server stopped first"
        );
        self.launch();
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("server-{start}.log"))
    }

    fn launch(&mut self) {
        // The server rewrites the kubeconfig on every start (the port changes); removing the
        // old one makes "the file exists" mean "this start is ready".
        let _ = std::fs::remove_file(self.kubeconfig());
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("cannot create the server log");
        let log_err = log
            .try_clone()
            .expect("cannot duplicate the log file handle");
        let child = Command::new(oxivirt_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", "127.0.0.1:0"])
            // These API-level tests need no hypervisor decision: skip the node agent's KVM
            // probe (a QEMU start per server) unless the caller chose otherwise.
            .env(
                "OXIVIRT_ACCEL",
                self.accel.clone().unwrap_or_else(|| {
                    std::env::var("OXIVIRT_ACCEL").unwrap_or_else(|_| "tcg".into())
                }),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", oxivirt_bin().display()));
        self.child = Some(child);
        self.watch_for_exit();
        if let Err(why) = self.wait_ready() {
            let log = self.log();
            self.kill();
            panic!("server not ready: {why}\n{log}");
        }
    }

    /// Shared servers live in statics, which are never dropped: a shell watches the test
    /// process and, once it is gone, kills what is left of this server — the server and the
    /// launchers and QEMUs it started (they outlive their server by design). Once per server.
    fn watch_for_exit(&self) {
        if self.starts > 1 {
            return;
        }
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
             for p in /proc/[0-9]*; do \
               [ \"${{p#/proc/}}\" = \"$$\" ] && continue; \
               if tr '\\0' ' ' <$p/cmdline 2>/dev/null | grep -qF -- '{dir}'; then kill -9 ${{p#/proc/}} 2>/dev/null; fi; \
             done",
            me = std::process::id(),
            dir = self.root.path().display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let kubectl = self.kubectl();
        let mut last = String::from("kubeconfig not written yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("server exited early with {status}"));
                }
            }
            if self.kubeconfig().exists() {
                let run = kubectl.run(&["get", "--raw", "/readyz", "--request-timeout=5s"]);
                if run.status.success() {
                    return Ok(());
                }
                last = format!("/readyz: {}{}", run.stdout, run.stderr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready within {READY_TIMEOUT:?}; last: {last}"))
    }

    fn signal(&self, signal: &str) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        // The shell's builtin `kill`: no dependency on procps being installed.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{signal} {}", child.id()))
            .status()
            .expect("cannot run sh");
        assert!(status.success(), "kill -{signal} {} failed", child.id());
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "server log ({}):\n{}",
                self.data_dir().display(),
                self.log()
            );
        }
        self.kill();
        // Launchers and QEMUs survive their server by design; a finished test must not
        // leave them running.
        crate::guest::kill_processes_under(&self.data_dir());
    }
}

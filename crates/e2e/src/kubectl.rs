//! Running the stock `kubectl` against a test server, with a timeout on every invocation.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::binary::kubectl_bin;

/// How long one foreground `kubectl` invocation may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A `kubectl` bound to one kubeconfig and a private discovery cache.
///
/// The cache directory is private so that a server reusing a port of an earlier run never
/// sees that run's cached discovery documents.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

/// The outcome of one `kubectl` run.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// Panics with the full output unless the command succeeded; returns stdout.
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "`{}` failed:\n{}",
            self.command,
            self.describe()
        );
        self.stdout
    }

    /// Panics unless the command failed; returns stderr.
    pub fn fails(self) -> String {
        assert!(
            !self.status.success(),
            "`{}` succeeded but should have failed:\n{}",
            self.command,
            self.describe()
        );
        self.stderr
    }

    fn describe(&self) -> String {
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Kubectl {
    /// A `kubectl` using `kubeconfig`, caching discovery under `cache_dir`.
    pub fn new(kubeconfig: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
            cache_dir: cache_dir.into(),
        }
    }

    /// The kubeconfig this `kubectl` uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The base command with `--kubeconfig` and `--cache-dir` set and `KUBECONFIG` cleared.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_bin());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        command
    }

    /// Runs `kubectl args…` to completion (killed after 60 s).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs `kubectl args…` with `stdin` as its standard input (for `-f -`).
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with_stdin(args, Some(stdin))
    }

    /// Runs `kubectl args…` and returns stdout, panicking with the output if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok()
    }

    /// Runs `kubectl args…` and returns stderr, panicking if it succeeded.
    pub fn fails(&self, args: &[&str]) -> String {
        self.run(args).fails()
    }

    /// `kubectl apply -f -` with `yaml` on stdin; returns stdout.
    pub fn apply(&self, yaml: &str) -> String {
        self.run_stdin(&["apply", "-f", "-"], yaml).ok()
    }

    /// `kubectl create -f -` with `yaml` on stdin; returns stdout.
    pub fn create(&self, yaml: &str) -> String {
        self.run_stdin(&["create", "-f", "-"], yaml).ok()
    }

    /// Creates ConfigMap `name` with `data` in the default namespace; returns stdout.
    ///
    /// Goes through `kubectl create -f -` with a JSON manifest: the imperative
    /// `kubectl create configmap` sends a protobuf body (kubectl's typed client), which has
    /// tests of its own, so setup steps elsewhere do not depend on it.
    pub fn create_configmap(&self, name: &str, data: &[(&str, &str)]) -> String {
        self.create_configmap_in("default", name, data)
    }

    /// Like [`create_configmap`](Self::create_configmap), in `namespace`.
    pub fn create_configmap_in(
        &self,
        namespace: &str,
        name: &str,
        data: &[(&str, &str)],
    ) -> String {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        });
        self.create(&manifest.to_string())
    }

    /// Creates Namespace `name` from a JSON manifest (see
    /// [`create_configmap`](Self::create_configmap) for why); returns stdout.
    pub fn create_namespace(&self, name: &str) -> String {
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name},
        });
        self.create(&manifest.to_string())
    }

    /// Runs `kubectl args… -o json` and parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl {all:?}: bad JSON: {e}\n{out}"))
    }

    /// Runs `kubectl get args… -o jsonpath=TEMPLATE` and returns the rendered text.
    pub fn jsonpath(&self, args: &[&str], template: &str) -> String {
        let mut all = vec!["get"];
        all.extend(args);
        let output = format!("jsonpath={template}");
        all.extend(["-o", &output]);
        self.ok(&all)
    }

    /// Whether `kubectl get args…` finds the object (false on NotFound, panics otherwise).
    pub fn exists(&self, args: &[&str]) -> bool {
        let mut all = vec!["get"];
        all.extend(args);
        let run = self.run(&all);
        if run.status.success() {
            return true;
        }
        assert!(
            run.stderr.contains("NotFound") || run.stderr.contains("not found"),
            "`{}` failed for another reason than NotFound:\n{}",
            run.command,
            run.stderr
        );
        false
    }

    /// Starts `kubectl args…` in the background, streaming its stdout lines.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl {args:?}: {e}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout was piped above");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr was piped above");
        let stderr = std::thread::spawn(move || read_all(stderr));
        Background {
            command: format!("kubectl {}", args.join(" ")),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Runs `kubectl args…` with extra environment variables (for `KUBE_EDITOR`).
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_full(args, None, env)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        self.run_full(args, stdin, &[])
    }

    fn run_full(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let description = format!("kubectl {}", args.join(" "));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was piped above");
            let input = input.to_owned();
            // A separate thread, so a kubectl that stops reading cannot deadlock us.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let stdout = child.stdout.take().expect("stdout was piped above");
        let stderr = child.stderr.take().expect("stderr was piped above");
        let stdout = std::thread::spawn(move || read_all(stdout));
        let stderr = std::thread::spawn(move || read_all(stderr));
        let status = wait_with_timeout(&mut child, COMMAND_TIMEOUT)
            .unwrap_or_else(|| panic!("`{description}` did not finish within {COMMAND_TIMEOUT:?}"));
        Run {
            command: description,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

/// A `kubectl` running in the background (`get -w`, `wait`), killed on drop.
#[derive(Debug)]
pub struct Background {
    command: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    /// Waits up to `timeout` for a stdout line containing every one of `needles`; returns it.
    ///
    /// # Panics
    /// On timeout, with every line seen so far and the command's stderr.
    pub fn expect_line(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "`{}`: no line containing {needles:?} within {timeout:?}\nlines seen:\n{}\nstderr:\n{stderr}",
                        self.command,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; returns its status, stdout and stderr.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let status = wait_with_timeout(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("`{}` did not finish within {timeout:?}", self.command));
        let mut stdout: Vec<String> = std::mem::take(&mut self.seen);
        // The reader thread ends (and the channel disconnects) once the pipe reaches EOF.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            stdout.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Run {
            command: self.command.clone(),
            status,
            stdout: stdout.join("\n"),
            stderr,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(mut reader: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = reader.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits for `child` up to `timeout`; kills it and returns `None` if it is still running.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

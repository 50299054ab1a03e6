//! Shared helpers for the real-QEMU tests: finding QEMU and the test guest (skipping with
//! a printed reason when either is missing), a run directory, the control socket, and
//! polling `status.json` and `console.log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oxivirt_launcher::status::{Phase, Status};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The test guest's OUT_DIR, or `None` after printing why `test` is skipped.
pub fn test_guest(test: &str) -> Option<PathBuf> {
    if !qemu_installed(test) {
        return None;
    }
    static GUEST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match GUEST.get_or_init(build_guest) {
        Ok(dir) => Some(dir.clone()),
        Err(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

fn build_guest() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("OXIVIRT_TEST_GUEST") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../scripts/test-guest/build.sh");
    // The script caches its output; a complete build is reused in about a second.
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "the test guest did not build: {}",
            tail.join(" | ")
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    if dir.is_empty() || !Path::new(dir).join("vmlinuz").is_file() {
        return Err(format!("build.sh printed no usable OUT_DIR ({dir:?})"));
    }
    Ok(PathBuf::from(dir))
}

/// A run directory under /tmp (short, for the 108-byte socket path limit).
pub fn run_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("oxl-")
        .tempdir_in("/tmp")
        .expect("run dir")
}

/// Writes `launch.json` into `dir`.
pub fn write_launch(dir: &Path, launch: &Value) {
    std::fs::write(dir.join("launch.json"), launch.to_string()).expect("launch.json");
}

/// Sends one control request and returns the reply.
pub async fn control(dir: &Path, request: &str) -> Value {
    let stream = UnixStream::connect(dir.join("control.sock"))
        .await
        .expect("control.sock");
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{request}\n").as_bytes())
        .await
        .expect("send");
    let mut lines = BufReader::new(read).lines();
    let line = lines.next_line().await.expect("reply").expect("a line");
    serde_json::from_str(&line).expect("reply is JSON")
}

/// The current `status.json`, if readable.
pub fn status(dir: &Path) -> Option<Status> {
    let text = std::fs::read_to_string(dir.join("status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits until `status.json` shows `phase`, failing with the last status after `timeout`.
pub async fn wait_phase(dir: &Path, phase: Phase, timeout: Duration) -> Status {
    let start = Instant::now();
    loop {
        let current = status(dir);
        if let Some(status) = current.as_ref().filter(|s| s.phase == phase) {
            return status.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "no {phase:?} within {timeout:?}; status: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `console.log` contains `text`, failing with its tail after `timeout`.
pub async fn wait_console(dir: &Path, text: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
        if log.contains(text) {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            let tail: String = log
                .chars()
                .rev()
                .take(1500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("{text:?} not in console.log within {timeout:?}; tail:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times `text` occurs in `console.log`.
pub fn console_count(dir: &Path, text: &str) -> usize {
    std::fs::read_to_string(dir.join("console.log"))
        .unwrap_or_default()
        .matches(text)
        .count()
}

/// True if QEMU is installed; prints why `test` is skipped otherwise.
pub fn qemu_installed(test: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("qemu-system-x86_64").is_file())
    });
    if !found {
        eprintln!("SKIPPED {test}: qemu-system-x86_64 is not installed");
    }
    found
}

/// Waits until `status.json` shows a phase other than `Starting`.
pub async fn wait_started(dir: &Path, timeout: Duration) -> Status {
    let start = Instant::now();
    loop {
        if let Some(status) = status(dir).filter(|s| s.phase != Phase::Starting) {
            return status;
        }
        assert!(
            start.elapsed() < timeout,
            "still Starting after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

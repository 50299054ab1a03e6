//! Launcher processes: spawning them detached, recognising them after an agent restart, and
//! talking to them over `control.sock` (design 0004).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::rundir::RunDir;

/// How long a control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong with a launcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The launcher command is empty.
    #[error("the launcher command is empty")]
    NoCommand,
    /// The launcher could not be started (or its log opened).
    #[error("cannot start the launcher {program:?} for {}", run_dir.display())]
    Spawn {
        program: OsString,
        run_dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The launcher's control socket could not be reached or answered badly.
    #[error("control request {command:?} to {} failed", socket.display())]
    Control {
        command: String,
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The launcher answered `{"ok": false}`.
    #[error("the launcher refused {command:?}: {message}")]
    Refused { command: String, message: String },
}

/// Spawns `command --run-dir DIR` in its own session (so it outlives the agent), with stdout
/// and stderr appended to `DIR/compute.log`, and records `launcher.pid`. The child is reaped
/// by a background task.
///
/// # Errors
/// [`Error::Spawn`] when the log cannot be opened or the process cannot start.
///
/// With `cgroup` (the Pod's open `cgroup.procs`, see [`crate::cgroup`]) the launcher moves
/// itself there before it runs, so it and the QEMU it starts never run outside it.
/// A launcher this agent started: its pid, and whether it has exited (known from reaping
/// it, so a starting launcher looked at every few milliseconds costs no `/proc` reads).
#[derive(Debug, Clone)]
pub(crate) struct Launched {
    pub pid: u32,
    exited: Arc<AtomicBool>,
}

impl Launched {
    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }
}

pub(crate) fn spawn(
    command: &[OsString],
    dir: &RunDir,
    cgroup: Option<std::fs::File>,
) -> Result<Launched, Error> {
    let (program, args) = command.split_first().ok_or(Error::NoCommand)?;
    let spawn_err = |source| Error::Spawn {
        program: program.clone(),
        run_dir: dir.path.clone(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.file("compute.log"))
        .map_err(spawn_err)?;
    let log2 = log.try_clone().map_err(spawn_err)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .arg("--run-dir")
        .arg(&dir.path)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(false);
    new_session(&mut cmd, cgroup);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let pid = child
        .id()
        .ok_or_else(|| spawn_err(io::Error::other("the launcher exited at once")))?;
    let exited = Arc::new(AtomicBool::new(false));
    let reaped = exited.clone();
    tokio::spawn(async move {
        let _ = child.wait().await;
        reaped.store(true, Ordering::Release);
    });
    Ok(Launched { pid, exited })
}

#[allow(
    unsafe_code,
    reason = "setsid between fork and exec has no safe std API"
)]
fn new_session(cmd: &mut tokio::process::Command, cgroup: Option<std::fs::File>) {
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2) and
    // write(2) on a descriptor opened before the fork, both async-signal-safe; it allocates
    // nothing and touches no other memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid().map_err(io::Error::from)?;
            if let Some(procs) = &cgroup {
                // "0" is the writing process itself.
                rustix::io::write(procs, b"0").map_err(io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// True when `pid` is a live (not zombie) process whose command line ends with
/// `--run-dir <dir>`, i.e. the launcher the agent spawned for this run directory — not a
/// process that merely reuses the PID.
pub(crate) fn is_our_launcher(pid: u32, dir: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X" | "x") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    matches!(args.as_slice(), [.., flag, path]
        if *flag == b"--run-dir" && *path == dir.as_os_str().as_bytes())
}

/// Sends one request over `control.sock` and returns the reply.
///
/// # Errors
/// [`Error::Control`] when the socket cannot be used; [`Error::Refused`] on `{"ok": false}`.
pub(crate) async fn control(dir: &RunDir, request: Value) -> Result<Value, Error> {
    let socket = dir.file("control.sock");
    let command = request["command"].as_str().unwrap_or("?").to_string();
    let reply = exchange(dir, &request, CONTROL_TIMEOUT)
        .await
        .map_err(|source| Error::Control {
            command: command.clone(),
            socket,
            source,
        })?;
    if reply["ok"] == json!(true) {
        Ok(reply)
    } else {
        Err(Error::Refused {
            command,
            message: reply["error"].as_str().unwrap_or("no reason given").into(),
        })
    }
}

/// One request line over `control.sock` and the launcher's reply line, whatever it says
/// (`{"ok": false, …}` included), within `timeout`.
///
/// # Errors
/// The I/O error of the socket, a reply that is not JSON, or `TimedOut`.
pub(crate) async fn exchange(
    dir: &RunDir,
    request: &Value,
    timeout: Duration,
) -> io::Result<Value> {
    let socket = dir.file("control.sock");
    let exchange = async {
        let stream = connect(&socket).await?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        write.write_all(&line).await?;
        let mut reply = String::new();
        BufReader::new(read).read_line(&mut reply).await?;
        let value: Value = serde_json::from_str(&reply)?;
        io::Result::Ok(value)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no reply")))
}

/// Connects to a Unix socket whose path may exceed `sun_path` (108 bytes, easily passed by
/// `<data-dir>/pods/<namespace>_<pod>_<uid>/control.sock`): long paths are reached through
/// `/proc/self/fd/<dir fd>/<name>`, which resolves to the same socket.
async fn connect(socket: &Path) -> io::Result<UnixStream> {
    if socket.as_os_str().len() < 100 {
        return UnixStream::connect(socket).await;
    }
    let (Some(parent), Some(name)) = (socket.parent(), socket.file_name()) else {
        return UnixStream::connect(socket).await;
    };
    let dir = std::fs::File::open(parent)?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ))
    .join(name);
    let stream = UnixStream::connect(short).await;
    drop(dir);
    stream
}

/// Stops a launcher: `shutdown` with `grace` seconds (ACPI powerdown, then the launcher's own
/// kill), then waits `grace` + 10 s for it to exit, then kills its process group. A launcher
/// that cannot be reached over `control.sock` gets SIGTERM instead. Whatever is left of its
/// session afterwards (a QEMU it failed to reap) is killed too.
pub(crate) async fn stop(dir: &RunDir, pid: u32, grace: u64) {
    if !is_our_launcher(pid, &dir.path) {
        return;
    }
    if let Err(e) = control(dir, json!({"command": "shutdown", "graceSeconds": grace})).await {
        tracing::warn!(error = %crate::status::chain(&e), "graceful shutdown request failed; sending SIGTERM");
        signal(pid, rustix::process::Signal::TERM, false);
    }
    if !wait_exit(pid, &dir.path, Duration::from_secs(grace + 10)).await {
        tracing::warn!(pid, run_dir = %dir.path.display(), "launcher outlived its grace period; killing it");
        signal(pid, rustix::process::Signal::KILL, false);
        wait_exit(pid, &dir.path, Duration::from_secs(5)).await;
    }
    signal(pid, rustix::process::Signal::KILL, true);
}

/// Sends SIGKILL to the launcher and its process group (its session, hence QEMU too).
pub(crate) fn kill(pid: u32) {
    signal(pid, rustix::process::Signal::KILL, false);
    signal(pid, rustix::process::Signal::KILL, true);
}

fn signal(pid: u32, signal: rustix::process::Signal, group: bool) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = if group {
        rustix::process::kill_process_group(pid, signal)
    } else {
        rustix::process::kill_process(pid, signal)
    };
}

/// Waits until the launcher is gone; false if it still runs after `limit`.
pub(crate) async fn wait_exit(pid: u32, dir: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while is_our_launcher(pid, dir) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_a_launcher_and_a_dead_pid_is_not_alive() {
        assert!(!is_our_launcher(std::process::id(), Path::new("/nowhere")));
        assert!(!is_our_launcher(u32::MAX - 1, Path::new("/nowhere")));
    }

    #[tokio::test]
    async fn a_spawned_process_is_recognised_by_its_run_dir_and_killed_with_its_group() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
            owner: None,
        };
        let command: Vec<OsString> = vec![
            "sh".into(),
            "-c".into(),
            "echo started; sleep 30; : \"$@\"".into(),
            "sh".into(),
        ];
        let pid = spawn(&command, &dir, None).unwrap().pid;
        assert!(is_our_launcher(pid, &dir.path));
        assert!(!is_our_launcher(pid, Path::new("/elsewhere")));
        let log = dir.file("compute.log");
        for _ in 0..100 {
            if std::fs::read_to_string(&log).unwrap().contains("started") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(std::fs::read_to_string(&log).unwrap().contains("started"));
        kill(pid);
        assert!(wait_exit(pid, &dir.path, Duration::from_secs(5)).await);
    }

    /// The v1 `cpu` cgroup directory of process `pid`.
    fn cgroup_dir(pid: u32) -> PathBuf {
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let path = membership
            .lines()
            .find_map(|l| {
                l.split_once(":cpu:")
                    .or_else(|| l.split_once(":cpu,cpuacct:"))
            })
            .map(|(_, path)| path.to_string())
            .unwrap();
        Path::new("/sys/fs/cgroup/cpu").join(path.trim_start_matches('/'))
    }

    /// Where the host has a writable CPU controller (CI runs as root), the launcher and
    /// what it starts run in the Pod's cgroup from their first instruction, with the
    /// node's weight until it settles to its request's.
    #[tokio::test]
    async fn a_launcher_given_a_cgroup_runs_in_it_with_the_pods_weight() {
        let cgroups = crate::cgroup::PodCgroups::start("launcher-unit-test", 2000);
        let uid = format!("test-{}", std::process::id());
        let cpu = crate::cgroup::CpuResources {
            request_millis: 250,
            limit_millis: Some(500),
        };
        let Some(procs) = cgroups.prepare(&uid, cpu) else {
            assert!(
                !rustix::process::geteuid().is_root()
                    || !Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists(),
                "root on a cgroup v1 host must get Pod cgroups"
            );
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
            owner: None,
        };
        let command: Vec<OsString> = vec![
            "sh".into(),
            "-c".into(),
            "sleep 30; : \"$@\"".into(),
            "sh".into(),
        ];
        let pid = spawn(&command, &dir, Some(procs)).unwrap().pid;
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let expected = format!("/oxivirt/launcher-unit-test/pod{uid}");
        assert!(membership.contains(&expected), "{membership}");
        // Starting, the Pod weighs as the node (2 CPUs); settled, as its request (250m).
        if Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists() {
            let group = cgroup_dir(pid);
            let shares = || std::fs::read_to_string(group.join("cpu.shares")).unwrap();
            let quota = std::fs::read_to_string(group.join("cpu.cfs_quota_us")).unwrap();
            assert_eq!((shares().trim(), quota.trim()), ("2048", "50000"));
            cgroups.settle(&uid, cpu);
            assert_eq!(shares().trim(), "256");
        }
        kill(pid);
        assert!(wait_exit(pid, &dir.path, Duration::from_secs(5)).await);
        cgroups.remove(&uid).await;
    }
}

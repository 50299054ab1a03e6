//! Plumbing in a few process runs instead of one per step. A Pod's network used to take about
//! thirty `ip`/`nft` processes (each `ip netns exec` a second process and a fresh mount
//! namespace); on a node starting ten VMs a second that was a fifth of the agent's CPU. Here
//! the host's steps are one `ip -batch` script, and the namespace's steps run from a thread
//! that entered the namespace itself: its sysctls written directly, then one `ip -batch` and
//! one `nft -f` (children inherit the thread's namespace).
//!
//! Scripts stay readable: a failure names the script line that failed, so every step can
//! still be reproduced by hand from the log.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use crate::exec::Error;

/// An `ip -batch` script: one `ip` command per line, without the leading `ip`.
#[derive(Debug, Default, Clone)]
pub struct IpScript {
    lines: Vec<String>,
}

impl IpScript {
    /// Appends one command (`args` as they would follow `ip`).
    pub fn push(&mut self, args: &[&str]) {
        self.lines.push(args.join(" "));
    }

    /// True without commands.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    /// The command on 1-based `line`, for error messages.
    fn line(&self, line: usize) -> Option<&str> {
        self.lines.get(line.checked_sub(1)?).map(String::as_str)
    }
}

/// Steps inside a network namespace: sysctls set to `1`, then the `ip` script, then the
/// nftables scripts, in that order.
#[derive(Debug, Default)]
pub struct InsideSteps {
    /// `/proc/sys/...` paths written with `1` (they are per network namespace).
    pub sysctls: Vec<&'static str>,
    /// `ip` commands run inside.
    pub ip: IpScript,
    /// `nft -f` scripts loaded inside.
    pub nft: Vec<String>,
}

/// Runs `script` with `ip -batch -` on the host.
///
/// # Errors
/// [`Error`] naming the failing command and `ip`'s message.
pub async fn run_host(script: IpScript) -> Result<(), Error> {
    run_host_with(script, false).await
}

/// As [`run_host`], but every command runs even after one failed (`ip -force`); the error
/// then names the first failure.
///
/// # Errors
/// As [`run_host`].
pub async fn run_host_forced(script: IpScript) -> Result<(), Error> {
    run_host_with(script, true).await
}

async fn run_host_with(script: IpScript, force: bool) -> Result<(), Error> {
    if script.is_empty() {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || run_ip(&script, "on the host", force))
        .await
        .map_err(|e| Error::Failed {
            command: "ip -batch -".into(),
            stderr: format!("the worker thread failed: {e}"),
        })?
}

/// Runs `steps` inside the named namespace (`/run/netns/<netns>`).
///
/// # Errors
/// [`Error`] naming the step that failed.
pub async fn run_inside(netns: &str, steps: InsideSteps) -> Result<(), Error> {
    let netns = netns.to_string();
    let (done, result) = tokio::sync::oneshot::channel();
    // A thread of its own, which dies afterwards: a pooled thread must never be left in a
    // Pod's namespace.
    std::thread::Builder::new()
        .name("netns-steps".into())
        .spawn(move || {
            let _ = done.send(inside(&netns, &steps));
        })
        .map_err(|source| Error::Spawn {
            program: "a thread for the Pod's namespace".into(),
            source,
        })?;
    result.await.unwrap_or_else(|_| {
        Err(Error::Failed {
            command: "steps inside the Pod's namespace".into(),
            stderr: "the thread ended without an answer".into(),
        })
    })
}

fn inside(netns: &str, steps: &InsideSteps) -> Result<(), Error> {
    let path = format!("/run/netns/{netns}");
    let entered = std::fs::File::open(&path).and_then(|file| {
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(std::io::Error::from)
    });
    entered.map_err(|e| Error::Failed {
        command: format!("entering network namespace {path}"),
        stderr: e.to_string(),
    })?;
    for sysctl in &steps.sysctls {
        std::fs::write(sysctl, "1").map_err(|e| Error::Failed {
            command: format!("echo 1 > {sysctl} (in {netns})"),
            stderr: e.to_string(),
        })?;
    }
    if !steps.ip.is_empty() {
        run_ip(&steps.ip, &format!("in {netns}"), false)?;
    }
    for script in &steps.nft {
        let output = run_with_stdin("nft", &["-f", "-"], script)?;
        if !output.status.success() {
            return Err(Error::Failed {
                command: format!("nft -f - (in {netns})"),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

fn run_ip(script: &IpScript, place: &str, force: bool) -> Result<(), Error> {
    let args: &[&str] = if force {
        &["-force", "-batch", "-"]
    } else {
        &["-batch", "-"]
    };
    let output = run_with_stdin("ip", args, &script.text())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let command = match failed_line(&stderr).and_then(|n| script.line(n)) {
        Some(line) => format!("ip {line} ({place})"),
        None => format!("ip -batch - ({place})"),
    };
    Err(Error::Failed { command, stderr })
}

/// The script line `ip -batch` reports as failed ("Command failed -:3").
fn failed_line(stderr: &str) -> Option<usize> {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Command failed -:"))
        .and_then(|n| n.trim().parse().ok())
}

fn run_with_stdin(
    program: &str,
    args: &[&str],
    input: &str,
) -> Result<std::process::Output, Error> {
    let spawn_error = |source| Error::Spawn {
        program: program.into(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A short write shows up as the program's own error.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().map_err(spawn_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_script_line() {
        let mut script = IpScript::default();
        script.push(&["link", "set", "lo", "up"]);
        script.push(&["link", "add", "x", "type", "bridge"]);
        let stderr = "RTNETLINK answers: File exists\nCommand failed -:2";
        assert_eq!(failed_line(stderr), Some(2));
        assert_eq!(script.line(2), Some("link add x type bridge"));
        assert_eq!(script.line(0), None);
        assert_eq!(script.text(), "link set lo up\nlink add x type bridge\n");
    }
}

//! Running the host tools that own kernel state (`ip`, `nft`), with errors that name the
//! command and carry its stderr. Commands rather than raw netlink: every step is then
//! reproducible by hand from the log, and the workspace denies `unsafe_code`.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A host command that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started (usually: not installed).
    #[error("cannot run {program} (is it installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Runs `program args…` (optionally inside network namespace `netns`) and returns stdout.
///
/// # Errors
/// [`Error::Spawn`] or [`Error::Failed`] (with the command line and stderr).
pub async fn run(netns: Option<&str>, program: &str, args: &[&str]) -> Result<String, Error> {
    run_with_input(netns, program, args, None).await
}

/// As [`run`], feeding `input` on stdin (for `nft -f -`).
///
/// # Errors
/// As [`run`].
pub async fn run_with_input(
    netns: Option<&str>,
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, Error> {
    let mut argv: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.push(program);
    argv.extend_from_slice(args);
    let command = argv.join(" ");
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: argv[0].to_string(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A failed write shows up as the program's own error below.
        let _ = stdin.write_all(text.as_bytes()).await;
        drop(stdin);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| Error::Spawn {
            program: argv[0].to_string(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::Failed { command, stderr });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip args…` on the host (or in `netns`).
///
/// # Errors
/// As [`run`].
pub async fn ip(netns: Option<&str>, args: &[&str]) -> Result<String, Error> {
    run(netns, "ip", args).await
}

/// `ip`'s family flag for `addr` and `addr` as a host prefix (`/32`, `/128`).
pub fn host_prefix(addr: &std::net::IpAddr) -> (&'static str, String) {
    match addr {
        std::net::IpAddr::V4(v4) => ("-4", format!("{v4}/32")),
        std::net::IpAddr::V6(v6) => ("-6", format!("{v6}/128")),
    }
}

/// Loads an nftables script (`nft -f -`) on the host (or in `netns`).
///
/// # Errors
/// As [`run`].
pub async fn nft(netns: Option<&str>, script: &str) -> Result<String, Error> {
    run_with_input(netns, "nft", &["-f", "-"], Some(script)).await
}

/// Why the network features cannot work here (not root, `ip` or `nft` missing), or None.
pub async fn unavailable_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("the node agent does not run as root".into());
    }
    for (program, args) in [("ip", ["-V"]), ("nft", ["--version"])] {
        if let Err(e) = run(None, program, &args).await {
            return Some(format!("{e}"));
        }
    }
    None
}

//! vTPM: `devices.tpm` as a TPM 2.0 emulated by the real `swtpm` (Debian packages `swtpm`,
//! `swtpm-tools`), started by the launcher before QEMU and reached by QEMU's `emulator`
//! TPM backend over a Unix control socket in the run directory, with upstream's device model
//! (`tpm-tis`, what KubeVirt's domain converter picks on x86).
//!
//! swtpm runs with `--terminate`, so it ends when QEMU closes the control channel; the
//! launcher also stops it when the VM is over, and kills it if QEMU never came up. It is in
//! the launcher's session, so the node agent's group kill reaches it too. The state lives in
//! `<run dir>/tpm/` for the VMI's life: `persistent: true` cannot outlive the run directory
//! yet (upstream keeps it on a PVC of `vmStateStorageClass`).

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::error::{Error, Result};
use crate::spec::{LaunchSpec, RunPaths};
use crate::vmi::VirtualMachineInstance;

/// The swtpm binary.
const SWTPM: &str = "swtpm";
/// How long swtpm may take to create its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long swtpm may take to save its state and exit once QEMU is gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// `swtpm.sock`: swtpm's control channel, which QEMU connects to.
pub(crate) fn socket(paths: &RunPaths) -> PathBuf {
    paths.dir().join("swtpm.sock")
}

/// `tpm/`: swtpm's state (its NVRAM and keys).
pub(crate) fn state_dir(paths: &RunPaths) -> PathBuf {
    paths.dir().join("tpm")
}

/// The VMI's TPM, unless it has none or `enabled: false`.
pub(crate) fn wanted(vmi: &VirtualMachineInstance) -> Option<&crate::vmi::Tpm> {
    vmi.spec
        .domain
        .devices
        .tpm
        .as_ref()
        .filter(|tpm| tpm.is_enabled())
}

/// A running swtpm. Dropping it kills swtpm (a failed start leaves nothing behind).
#[derive(Debug)]
pub(crate) struct Swtpm {
    child: Child,
}

/// Starts swtpm for `spec` when its VMI has a TPM, as QEMU's user, and waits for its
/// control socket.
///
/// # Errors
/// [`Error::Swtpm`] when swtpm is missing, exits, or does not create its socket in time;
/// [`Error::WriteFile`] when the state directory cannot be made.
pub(crate) async fn start(
    spec: &LaunchSpec,
    paths: &RunPaths,
    owner: Option<(u32, u32)>,
) -> Result<Option<Swtpm>> {
    if wanted(&spec.vmi).is_none() {
        return Ok(None);
    }
    let state = state_dir(paths);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| Error::write(&state, e))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&state, Some(uid), Some(gid))
            .map_err(|e| Error::write(&state, e))?;
    }
    let socket = socket(paths);
    let _ = std::fs::remove_file(&socket);
    let (state_arg, socket_arg) = (option_path(&state)?, option_path(&socket)?);
    let mut command = Command::new(SWTPM);
    command
        .args(["socket", "--tpm2", "--terminate"])
        .arg("--tpmstate")
        .arg(format!("dir={state_arg},mode=0600"))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={socket_arg},mode=0600"))
        .current_dir(paths.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    let mut child = command.spawn().map_err(|e| Error::Swtpm {
        reason: format!("cannot run {SWTPM}: {e}"),
    })?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            return Err(Error::Swtpm {
                reason: format!("{SWTPM} exited ({status}): {}", stderr.trim()),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Swtpm {
                reason: format!(
                    "{} did not appear within {} s",
                    socket.display(),
                    START_TIMEOUT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(pid = child.id(), socket = %socket.display(), "swtpm running");
    Ok(Some(Swtpm { child }))
}

/// swtpm's option parser splits on commas and has no escape for them.
fn option_path(path: &std::path::Path) -> Result<&str> {
    let text = crate::args::path_str("devices.tpm", path)?;
    if text.contains(',') {
        return Err(Error::Swtpm {
            reason: format!("{text} holds a comma, which swtpm options cannot carry"),
        });
    }
    Ok(text)
}

impl Swtpm {
    /// Lets swtpm finish on its own (it saves its state and exits once QEMU has closed the
    /// control channel), killing it after a short wait.
    pub(crate) async fn stop(mut self) {
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => tracing::debug!(%status, "swtpm exited"),
            _ => {
                tracing::warn!("swtpm still running after qemu ended; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn swtpm_starts_creates_its_socket_and_stops() {
        if std::process::Command::new(SWTPM)
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: swtpm is not installed (Debian package swtpm)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = RunPaths::new(dir.path());
        let text = json!({"vmi": {"metadata": {"name": "t"},
            "spec": {"domain": {"devices": {"tpm": {}}}}}})
        .to_string();
        let spec = LaunchSpec::from_json(&paths.launch_json(), &text).expect("spec");
        let swtpm = start(&spec, &paths, None)
            .await
            .expect("starts")
            .expect("wanted");
        assert!(socket(&paths).exists());
        assert!(state_dir(&paths).is_dir());
        swtpm.stop().await;
    }
}

//! vTPM: `devices.tpm` as a TPM 2.0 emulated by the real `swtpm` (Debian packages `swtpm`,
//! `swtpm-tools`), started by the launcher before QEMU and reached by QEMU's `emulator`
//! TPM backend over a Unix control socket in the run directory, with upstream's device model
//! (`tpm-tis`, what KubeVirt's domain converter picks on x86).
//!
//! A new state is manufactured first with `swtpm_setup` (EK and platform certificates from
//! swtpm's local CA), as libvirt does for upstream. swtpm runs with `--terminate`, so it ends when QEMU closes the control channel; the
//! launcher also stops it when the VM is over, and kills it if QEMU never came up. It is in
//! the launcher's session, so the node agent's group kill reaches it too. The state lives in
//! `<run dir>/tpm/` for the VMI's life; with `persistent: true` it lives in `swtpm/` of the
//! VM's persistent-state claim (upstream's `persistent-state-for-<vm>` PVC of
//! `vmStateStorageClass`), which the node agent gives as
//! [`crate::spec::PERSISTENT_STATE_DISK`], and is
//! manufactured only once: every later run of the VM reuses that TPM.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{Error, Result};
use crate::spec::{LaunchSpec, RunPaths};
use crate::vmi::VirtualMachineInstance;

/// The swtpm binary.
const SWTPM: &str = "swtpm";
/// The TPM manufacturing tool (package swtpm-tools).
const SWTPM_SETUP: &str = "swtpm_setup";
/// The file of a manufactured TPM 2.0 state.
const STATE_FILE: &str = "tpm2-00.permall";
/// How long swtpm may take to create its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long swtpm may take to save its state and exit once QEMU is gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// `swtpm.sock`: swtpm's control channel, which QEMU connects to.
pub(crate) fn socket(paths: &RunPaths) -> PathBuf {
    paths.dir().join("swtpm.sock")
}

/// swtpm's state (its NVRAM and keys): `swtpm/` in the VM's persistent-state claim for a
/// persistent TPM whose claim the node agent gave, else `tpm/` in the run directory.
pub(crate) fn state_dir(spec: &LaunchSpec, paths: &RunPaths) -> PathBuf {
    let persistent = wanted(&spec.vmi).and_then(|tpm| tpm.persistent) == Some(true);
    match spec.persistent_state().filter(|_| persistent) {
        Some(claim) => claim.join("swtpm"),
        None => paths.dir().join("tpm"),
    }
}

/// What a persistent TPM's state outlives, when the node agent gave no state claim (a VMI
/// without a VirtualMachine, or a launcher run by hand).
pub(crate) fn state_note(spec: &LaunchSpec) -> Option<&'static str> {
    let persistent = wanted(&spec.vmi).and_then(|tpm| tpm.persistent) == Some(true);
    (persistent && spec.persistent_state().is_none()).then_some(
        "devices.tpm.persistent: no persistent-state claim; the TPM state is kept in the run \
         directory (tpm/) and lasts as long as this VMI, not across a stop and start",
    )
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
    let state = state_dir(spec, paths);
    let persistent = wanted(&spec.vmi).and_then(|tpm| tpm.persistent) == Some(true);
    if persistent && spec.persistent_state().is_none() {
        tracing::warn!("devices.tpm.persistent: the node agent gave no persistent-state claim; the TPM state lives only as long as this run directory");
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| Error::write(&state, e))?;
    if state.join(STATE_FILE).exists() {
        tracing::info!(state = %state.display(), "reusing the TPM state of an earlier run");
    } else {
        manufacture(&spec.vmi, &state).await?;
        tracing::info!(state = %state.display(), "manufactured a new TPM");
    }
    if let Some((uid, gid)) = owner {
        for path in std::iter::once(state.clone()).chain(entries(&state)?) {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| Error::write(&path, e))?;
        }
    }
    let socket = socket(paths);
    let _ = std::fs::remove_file(&socket);
    let (state_arg, socket_arg) = (option_path(&state)?, option_path(&socket)?);
    // swtpm's diagnostics go to a file: an unread pipe could fill up and stall it.
    let log_path = paths.dir().join("swtpm.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::write(&log_path, e))?;
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
        .stderr(log)
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
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last: Vec<&str> = said.lines().rev().take(4).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            return Err(Error::Swtpm {
                reason: format!("{SWTPM} exited ({status}): {}", last.join("; ")),
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

/// Manufactures a fresh TPM as libvirt does for upstream's virt-launcher: an endorsement
/// key with its certificate and a platform certificate from swtpm's local CA
/// (`swtpm_setup`, Debian package swtpm-tools), NVRAM locked, SHA-256 PCR bank. Run as the
/// launcher's user, because the local CA's keys under `/var/lib/swtpm-localca` are root's.
async fn manufacture(vmi: &VirtualMachineInstance, state: &Path) -> Result<()> {
    let mut vmid = format!("{}_{}", vmi.namespace(), vmi.metadata.name);
    if let Some(uid) = &vmi.metadata.uid {
        vmid.push(':');
        vmid.push_str(uid);
    }
    let output = Command::new(SWTPM_SETUP)
        .args(["--tpm2", "--tpmstate"])
        .arg(state)
        .arg("--vmid")
        .arg(&vmid)
        .args(["--createek", "--create-ek-cert", "--create-platform-cert"])
        .args(["--lock-nvram", "--not-overwrite"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Swtpm {
            reason: format!("cannot run {SWTPM_SETUP}: {e}"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stdout));
    let last: Vec<&str> = said.lines().rev().take(4).collect();
    Err(Error::Swtpm {
        reason: format!(
            "{SWTPM_SETUP} failed ({}): {}",
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join("; ")
        ),
    })
}

/// The files in `dir` (swtpm's state is flat).
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let listed = std::fs::read_dir(dir).map_err(|e| Error::write(dir, e))?;
    listed
        .map(|entry| entry.map(|e| e.path()).map_err(|e| Error::write(dir, e)))
        .collect()
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
    use crate::spec::PERSISTENT_STATE_DISK;
    use serde_json::json;

    #[test]
    fn paths_with_commas_are_refused_for_swtpm() {
        let error = option_path(Path::new("/run/a,b/tpm")).expect_err("comma");
        assert!(error.to_string().contains("comma"), "{error}");
        assert_eq!(
            option_path(Path::new("/run/a/tpm")).expect("plain"),
            "/run/a/tpm"
        );
    }

    #[tokio::test]
    async fn swtpm_starts_creates_its_socket_and_stops() {
        let installed = |tool| std::process::Command::new(tool).arg("--version").output();
        if installed(SWTPM).is_err() || installed(SWTPM_SETUP).is_err() {
            eprintln!("skipped: swtpm is not installed (Debian packages swtpm, swtpm-tools)");
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
        assert!(
            state_dir(&spec, &paths).join(STATE_FILE).is_file(),
            "manufactured by swtpm_setup"
        );
        swtpm.stop().await;
    }

    #[test]
    fn a_persistent_tpm_keeps_its_state_on_the_state_claim_only_when_one_is_given() {
        let paths = RunPaths::new(Path::new("/run/p"));
        let vmi = json!({"metadata": {"name": "t"},
            "spec": {"domain": {"devices": {"tpm": {"persistent": true}}}}});
        let with_claim = json!({"vmi": vmi,
            "disks": {PERSISTENT_STATE_DISK: {"path": "/pool/pvc-1"}}});
        let spec =
            LaunchSpec::from_json(&paths.launch_json(), &with_claim.to_string()).expect("spec");
        assert_eq!(state_dir(&spec, &paths), Path::new("/pool/pvc-1/swtpm"));
        let without = json!({"vmi": vmi});
        let spec = LaunchSpec::from_json(&paths.launch_json(), &without.to_string()).expect("spec");
        assert_eq!(state_dir(&spec, &paths), Path::new("/run/p/tpm"));
        let not_persistent = json!({"vmi": {"metadata": {"name": "t"},
            "spec": {"domain": {"devices": {"tpm": {}}}}},
            "disks": {PERSISTENT_STATE_DISK: {"path": "/pool/pvc-1"}}});
        let spec =
            LaunchSpec::from_json(&paths.launch_json(), &not_persistent.to_string()).expect("spec");
        assert_eq!(state_dir(&spec, &paths), Path::new("/run/p/tpm"));
    }
}

//! A Pod's run directory `<data-dir>/pods/<namespace>_<pod>_<uid>/` (design 0004): the files
//! the agent writes (`launch.json`, `launcher.pid`) and reads (`status.json`).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accel::Accel;

/// What went wrong with a run directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file in the run directory could not be created, written or removed.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `launch.json`: everything the launcher needs, written before it is spawned.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchSpec {
    pub(crate) vmi: Value,
    pub(crate) accel: Accel,
    pub(crate) disks: BTreeMap<String, DiskSpec>,
    pub(crate) qemu: String,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    /// The NICs plumbed in the Pod's network namespace (crate `oxivirt-network`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<oxivirt_network::PodNetworkPlan>,
}

/// One disk in `launch.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DiskSpec {
    pub(crate) path: PathBuf,
    pub(crate) format: String,
    pub(crate) readonly: bool,
    pub(crate) ephemeral: bool,
}

/// The launcher's phases in `status.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum LauncherPhase {
    Starting,
    Running,
    Paused,
    Succeeded,
    Failed,
    #[serde(other)]
    Unknown,
}

impl LauncherPhase {
    pub(crate) fn is_final(self) -> bool {
        matches!(self, LauncherPhase::Succeeded | LauncherPhase::Failed)
    }
}

/// `status.json`, written by the launcher on every change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LauncherStatus {
    pub(crate) phase: LauncherPhase,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) qemu_pid: Option<u32>,
    #[serde(default)]
    pub(crate) launcher_pid: Option<u32>,
    #[serde(default)]
    pub(crate) started_at: Option<String>,
    #[serde(default)]
    pub(crate) accel: Option<Accel>,
    #[serde(default)]
    pub(crate) guest_os_info: Option<Value>,
    #[serde(default)]
    pub(crate) updated_at: Option<String>,
}

/// The identity of the Pod a run directory belongs to: the directory is named after the
/// Pod's uid (short, so socket paths stay under the 107-byte limit of Unix sockets) and
/// holds the namespace and name in its `pod` file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PodKey {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
}

/// One Pod's run directory.
#[derive(Debug, Clone)]
pub(crate) struct RunDir {
    pub(crate) path: PathBuf,
    /// The Pod, recorded in the `pod` file when the directory is created.
    pub(crate) owner: Option<PodKey>,
}

/// The file naming the Pod a run directory belongs to: `<namespace>/<name>/<uid>`.
const OWNER_FILE: &str = "pod";

/// `<data-dir>/pods`.
pub(crate) fn pods_root(data_dir: &Path) -> PathBuf {
    data_dir.join("pods")
}

impl RunDir {
    /// The run directory of a Pod: `<data-dir>/pods/<uid>`.
    pub(crate) fn for_pod(data_dir: &Path, key: &PodKey) -> Self {
        RunDir {
            path: pods_root(data_dir).join(&key.uid),
            owner: Some(key.clone()),
        }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory (mode 0700) if it does not exist, and records its Pod.
    pub(crate) fn create(&self) -> Result<(), Error> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })?;
        match &self.owner {
            Some(key) => self.write_atomic(
                OWNER_FILE,
                format!("{}/{}/{}\n", key.namespace, key.name, key.uid).as_bytes(),
            ),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Writes `launch.json` atomically (temp file + rename).
    pub(crate) fn write_launch_spec(&self, spec: &LaunchSpec) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(spec).map_err(|e| Error::Write {
            path: self.file("launch.json"),
            source: e.into(),
        })?;
        self.write_atomic("launch.json", &bytes)
    }

    pub(crate) fn write_pid(&self, pid: u32) -> Result<(), Error> {
        self.write_atomic("launcher.pid", format!("{pid}\n").as_bytes())
    }

    pub(crate) fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.file("launcher.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The launcher's last `status.json`, if it has written one that parses.
    pub(crate) fn read_status(&self) -> Option<LauncherStatus> {
        let bytes = std::fs::read(self.file("status.json")).ok()?;
        let mut status: LauncherStatus = serde_json::from_slice(&bytes).ok()?;
        // The launcher writes "" for "no reason"; treat it as absent.
        status.reason = status.reason.filter(|r| !r.is_empty());
        status.message = status.message.filter(|m| !m.is_empty());
        Some(status)
    }

    /// Replaces `name` whole (temp file + rename), so a reader — the launcher, or this agent
    /// re-adopting after a restart — never sees half a file. Not fsynced: the run directory
    /// only has to outlive the agent's process, and after a host crash its launchers and
    /// guests are gone with it (an fsync per file was a journal commit per VM start).
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(bytes)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| Error::Write { path, source })
    }

    /// Removes the directory and everything in it.
    pub(crate) fn remove(&self) -> Result<(), Error> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Parses `<namespace>_<pod>_<uid>` (a compact way to name Pods in tests).
#[cfg(test)]
pub(crate) fn parse_dir_name(name: &str) -> Option<PodKey> {
    let mut parts = name.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if namespace.is_empty() || pod.is_empty() || uid.is_empty() || uid.contains('_') {
        return None;
    }
    Some(PodKey {
        namespace: namespace.into(),
        name: pod.into(),
        uid: uid.into(),
    })
}

/// Every run directory under `<data-dir>/pods` with the Pod it belongs to.
pub(crate) fn list(data_dir: &Path) -> Vec<(PodKey, RunDir)> {
    let Ok(entries) = std::fs::read_dir(pods_root(data_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let recorded = std::fs::read_to_string(e.path().join(OWNER_FILE)).ok()?;
            let mut parts = recorded.trim().splitn(3, '/');
            let key = PodKey {
                namespace: parts.next()?.to_string(),
                name: parts.next()?.to_string(),
                uid: parts.next()?.to_string(),
            };
            if e.file_name().to_str() != Some(key.uid.as_str()) {
                return None;
            }
            Some((
                key.clone(),
                RunDir {
                    path: e.path(),
                    owner: Some(key),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dir_names_round_trip_to_the_pod_key() {
        let key = PodKey {
            namespace: "default".into(),
            name: "virt-launcher-vm1-abcde".into(),
            uid: "0f4c-11".into(),
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::for_pod(tmp.path(), &key);
        assert_eq!(dir.path, tmp.path().join("pods/0f4c-11"));
        dir.create().unwrap();
        let listed = list(tmp.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, key);
        assert_eq!(parse_dir_name("no-underscores"), None);
    }

    #[test]
    fn status_json_of_the_contract_parses_and_unknown_phases_are_tolerated() {
        let status: LauncherStatus = serde_json::from_str(
            r#"{"phase":"Running","qemuPid":12,"launcherPid":11,"accel":"tcg",
                "startedAt":"2026-01-01T00:00:00Z","guestOsInfo":{"id":"x"},"future":1}"#,
        )
        .unwrap();
        assert_eq!(status.phase, LauncherPhase::Running);
        assert_eq!(status.accel, Some(Accel::Tcg));
        let odd: LauncherStatus = serde_json::from_str(r#"{"phase":"Migrating"}"#).unwrap();
        assert_eq!(odd.phase, LauncherPhase::Unknown);
    }

    #[test]
    fn run_dir_is_private_and_files_are_written_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let key = parse_dir_name("ns_pod_uid").unwrap();
        let dir = RunDir::for_pod(tmp.path(), &key);
        dir.create().unwrap();
        let mode = std::fs::metadata(&dir.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        dir.write_pid(42).unwrap();
        assert_eq!(dir.read_pid(), Some(42));
        assert_eq!(list(tmp.path()).len(), 1);
        dir.remove().unwrap();
        assert!(!dir.exists());
    }
}

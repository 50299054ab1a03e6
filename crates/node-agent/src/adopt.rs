//! Re-adoption after an agent restart: launchers are separate processes in their own
//! sessions, so a restarted agent finds them through `launcher.pid` in each run directory.
//! A run directory whose Pod still exists is re-attached by that Pod's supervisor (see
//! [`live_launcher`]); one whose Pod is gone is shut down and removed ([`reap_orphans`]).

use crate::launcher;
use crate::rundir::{self, RunDir};
use std::collections::HashSet;
use std::path::Path;

/// Grace period for launchers whose Pod no longer exists (the Pod's own is unknown).
const ORPHAN_GRACE_SECONDS: u64 = 30;

/// The PID of the live launcher of `dir`, if `launcher.pid` names a process that is still
/// this directory's launcher (checked in `/proc`, so a reused PID is not mistaken for it).
pub(crate) fn live_launcher(dir: &RunDir) -> Option<u32> {
    dir.read_pid()
        .filter(|&pid| launcher::is_our_launcher(pid, &dir.path))
}

/// True when the directory was realised before (a launcher was spawned for it), whether or
/// not that launcher still runs.
pub(crate) fn was_launched(dir: &RunDir) -> bool {
    dir.file("launcher.pid").exists()
}

/// Stops and removes every run directory whose Pod UID is not in `live_uids`, returning the
/// number handled. Each launcher gets a graceful shutdown first.
pub(crate) async fn reap_orphans(data_dir: &Path, live_uids: &HashSet<String>) -> usize {
    let orphans: Vec<_> = rundir::list(data_dir)
        .into_iter()
        .filter(|(key, _)| !live_uids.contains(&key.uid))
        .collect();
    let count = orphans.len();
    let stops = orphans.into_iter().map(|(key, dir)| async move {
        if let Some(pid) = live_launcher(&dir) {
            tracing::info!(namespace = %key.namespace, pod = %key.name, pid,
                "Pod no longer exists; shutting its launcher down");
            launcher::stop(&dir, pid, ORPHAN_GRACE_SECONDS).await;
        }
        if let Err(e) = dir.remove() {
            tracing::warn!(error = %crate::status::chain(&e), "cannot remove orphaned run directory");
        }
    });
    futures::future::join_all(stops).await;
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::time::Duration;

    #[tokio::test]
    async fn orphaned_run_dirs_are_stopped_and_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let keep = RunDir::for_pod(tmp.path(), &rundir::parse_dir_name("ns_a_keep").unwrap());
        let gone = RunDir::for_pod(tmp.path(), &rundir::parse_dir_name("ns_b_gone").unwrap());
        keep.create().unwrap();
        gone.create().unwrap();
        let command: Vec<OsString> = vec![
            "sh".into(),
            "-c".into(),
            "sleep 30; : \"$@\"".into(),
            "sh".into(),
        ];
        let pid = launcher::spawn(&command, &gone, None).unwrap().pid;
        gone.write_pid(pid).unwrap();
        assert_eq!(live_launcher(&gone), Some(pid));
        assert!(was_launched(&gone) && !was_launched(&keep));
        let live = HashSet::from(["keep".to_string()]);
        // No control socket: the shutdown request fails, SIGTERM ends sh and the group
        // kill ends its sleep.
        let reaped = tokio::time::timeout(Duration::from_secs(60), reap_orphans(tmp.path(), &live))
            .await
            .unwrap();
        assert_eq!(reaped, 1);
        assert!(keep.exists());
        assert!(!gone.exists());
        assert!(!launcher::is_our_launcher(pid, &gone.path));
    }
}

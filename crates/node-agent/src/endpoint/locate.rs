//! Finding the run directory behind a request: a VMI's (through the VMI recorded in its
//! `launch.json`) or a Pod's (through the `pod` file).

use std::path::Path;

use crate::rundir::{self, RunDir};

/// The run directory of VMI `namespace/name` on this node: the one whose launcher has not
/// finished, else the newest (a stopped VM's console log is still worth reading).
pub(crate) fn vmi_run_dir(data_dir: &Path, namespace: &str, name: &str) -> Option<RunDir> {
    let mut candidates: Vec<(bool, std::time::SystemTime, RunDir)> = rundir::list(data_dir)
        .into_iter()
        .filter(|(key, _)| key.namespace == namespace)
        .filter_map(|(_, dir)| {
            let launch = std::fs::read(dir.file("launch.json")).ok()?;
            let launch: serde_json::Value = serde_json::from_slice(&launch).ok()?;
            let meta = &launch["vmi"]["metadata"];
            if meta["name"].as_str() != Some(name) || meta["namespace"].as_str() != Some(namespace)
            {
                return None;
            }
            let live = dir.read_status().is_none_or(|s| !s.phase.is_final());
            let modified = std::fs::metadata(dir.file("launch.json"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            Some((live, modified, dir))
        })
        .collect();
    candidates.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    candidates.pop().map(|(_, _, dir)| dir)
}

/// The run directory of Pod `namespace/name` on this node.
pub(crate) fn pod_run_dir(data_dir: &Path, namespace: &str, name: &str) -> Option<RunDir> {
    rundir::list(data_dir)
        .into_iter()
        .find(|(key, _)| key.namespace == namespace && key.name == name)
        .map(|(_, dir)| dir)
}

//! A CPU cgroup chain shaped like a running VM's, for the benchmark's baseline QEMUs.
//!
//! The node agent runs each VM's QEMU inside `oxivirt/<node>/pod<uid>`, whose CPU weights
//! follow the node's allocatable CPU and the Pod's request. A QEMU left in the root cgroup
//! instead competes thread by thread at the top level (on cgroup v1 each runnable thread
//! weighs as much as a whole group), so whenever anything else wants the CPU it gets a
//! larger share than the VMs' QEMUs, and a throughput ratio would measure the scheduler, not
//! the network path. The twin copies the weight of every level of the VM's chain into a
//! fresh chain beside it, with one leaf per baseline QEMU.

use std::path::{Path, PathBuf};

/// The twin chain; removed when dropped (after its processes are gone).
pub(crate) struct CgroupTwin {
    /// Created directories, outermost first.
    created: Vec<PathBuf>,
    leaf_parent: PathBuf,
    leaf_weight: (String, String),
    version_v2: bool,
}

impl CgroupTwin {
    /// Mirrors the CPU cgroup chain of process `pid` under `oxivirt-bench-<tag>`. `Err` says
    /// why it cannot (no CPU controller, not root).
    pub(crate) fn of_process(pid: u32, tag: &str) -> Result<CgroupTwin, String> {
        let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|e| format!("cannot read /proc/{pid}/cgroup: {e}"))?;
        let (mount, relative, v2) = cpu_cgroup(&table)?;
        let levels: Vec<&str> = relative
            .trim_start_matches('/')
            .split('/')
            .filter(|l| !l.is_empty())
            .collect();
        let (leaf, ancestors) = levels
            .split_last()
            .ok_or_else(|| format!("process {pid} is in the root CPU cgroup"))?;
        let file = if v2 { "cpu.weight" } else { "cpu.shares" };
        let read = |dir: &Path| {
            std::fs::read_to_string(dir.join(file))
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("cannot read {}/{file}: {e}", dir.display()))
        };
        let mut twin = CgroupTwin {
            created: Vec::new(),
            leaf_parent: PathBuf::new(),
            leaf_weight: (file.to_string(), read(&mount.join(&relative[1..]))?),
            version_v2: v2,
        };
        let mut original = mount.clone();
        let mut copy = mount.clone();
        for (depth, level) in ancestors.iter().enumerate() {
            original.push(level);
            copy.push(if depth == 0 {
                format!("oxivirt-bench-{tag}")
            } else {
                level.to_string()
            });
            twin.make(&copy, &read(&original)?)?;
        }
        if ancestors.is_empty() {
            return Err(format!(
                "process {pid}'s CPU cgroup {leaf} has no parent group"
            ));
        }
        twin.leaf_parent = copy;
        Ok(twin)
    }

    /// Moves process `pid` (all its threads) into leaf `name` of the twin.
    pub(crate) fn adopt(&mut self, name: &str, pid: u32) -> Result<(), String> {
        let leaf = self.leaf_parent.join(name);
        let weight = self.leaf_weight.1.clone();
        self.make(&leaf, &weight)?;
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("cannot move process {pid} into {}: {e}", leaf.display()))
    }

    fn make(&mut self, dir: &Path, weight: &str) -> Result<(), String> {
        std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        self.created.push(dir.to_path_buf());
        if self.version_v2 {
            // The parent must hand the CPU controller down before the child has `cpu.weight`.
            if let Some(parent) = dir.parent() {
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+cpu");
            }
        }
        let file = dir.join(&self.leaf_weight.0);
        std::fs::write(&file, weight).map_err(|e| format!("cannot write {}: {e}", file.display()))
    }
}

impl Drop for CgroupTwin {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            // A process that is still exiting keeps its group busy for a moment.
            for _ in 0..20 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// The CPU controller's mount, the process's path under it (with a leading `/`), and
/// whether it is cgroup v2, from a `/proc/<pid>/cgroup` table.
fn cpu_cgroup(table: &str) -> Result<(PathBuf, String, bool), String> {
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "cpu") {
            let mount = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
                .iter()
                .map(PathBuf::from)
                .find(|m| m.join("cpu.shares").exists())
                .ok_or("no cgroup v1 CPU controller mounted")?;
            return Ok((mount, path.to_string(), false));
        }
    }
    for line in table.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            return Ok((PathBuf::from("/sys/fs/cgroup"), path.to_string(), true));
        }
    }
    Err("no CPU cgroup in the process's table".to_string())
}

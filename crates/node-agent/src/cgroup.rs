//! CPU shares and quota per Pod, as the kubelet's cgroup manager gives them: every launcher
//! Pod's processes (the launcher and its QEMU) run in a cgroup of their own whose CPU
//! weight follows the Pod's CPU request and whose CFS quota follows its CPU limit, all
//! inside one `oxivirt` group weighted by the node's allocatable CPU.
//!
//! Why: without it a guest is one more process beside the control plane, and a node busy
//! booting guests starves the API server and the agent that start the next ones. With it a
//! VM gets the CPU it asked for and what is left over, as on Kubernetes.
//!
//! A Pod that is starting weighs as much as the whole node until its guest runs (or
//! [`STARTUP_BOOST_LIMIT`] passes), then drops to its request: starting a VM is a short
//! burst (the launcher, QEMU's initialisation up to its first instruction) on the path a
//! user waits on, and without the boost it gets only its request's share beside every guest
//! already booting, so a node starting many VMs at once starts each one later the more it
//! has started. The guests lose a few milliseconds each; `kube-startup-cpu-boost` makes the
//! same trade for Kubernetes Pods.
//!
//! Where the host offers no writable CPU controller (an unprivileged agent, a container
//! without cgroup delegation) Pods run without one, and the agent says so once at start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// cgroup v1's `cpu.shares` for one CPU (the kubelet's `SharesPerCPU`).
const SHARES_PER_CPU: i128 = 1024;
/// The kubelet's `MinShares`.
const MIN_SHARES: i128 = 2;
/// cgroup v1's maximum `cpu.shares`.
const MAX_SHARES: i128 = 262_144;
/// The CFS period the kubelet uses (100 ms), in µs.
const QUOTA_PERIOD_US: i128 = 100_000;
/// The smallest quota the kernel accepts, in µs.
const MIN_QUOTA_US: i128 = 1_000;

/// Which cgroup interface the host mounts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    /// `/sys/fs/cgroup/cpu` (`cpu.shares`, `cpu.cfs_quota_us`).
    V1,
    /// The unified hierarchy (`cpu.weight`, `cpu.max`).
    V2,
}

/// The longest a starting Pod keeps the node's weight (a launcher that never reports its
/// guest running must not keep it).
pub(crate) const STARTUP_BOOST_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The node's Pod cgroups; `None` inside when the host gives the agent none.
#[derive(Debug, Clone)]
pub(crate) struct PodCgroups {
    root: Option<(PathBuf, Version)>,
    /// The node's allocatable CPU as shares: a starting Pod's weight.
    startup_shares: i128,
}

/// What a Pod's cgroup is sized from: the sums of its containers' CPU requests and limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuResources {
    pub request_millis: i128,
    /// `None`: no limit.
    pub limit_millis: Option<i128>,
}

impl PodCgroups {
    /// Finds the host's CPU controller and creates the node's group under it, weighted by
    /// `allocatable_millis`.
    pub(crate) fn start(node_name: &str, allocatable_millis: i128) -> PodCgroups {
        let found = find_controller().and_then(|(base, version)| {
            let root = base.join("oxivirt").join(sanitize(node_name));
            let created = std::fs::create_dir_all(&root)
                .map_err(|e| format!("cannot create {}: {e}", root.display()))
                .and_then(|()| {
                    if version == Version::V2 {
                        enable_cpu_controller(&base.join("oxivirt"), &base)?;
                    }
                    // Both levels weigh what the node offers Pods, as the kubelet's
                    // `kubepods` group does.
                    let weight = shares(allocatable_millis);
                    write_weight(&base.join("oxivirt"), version, weight)?;
                    write_weight(&root, version, weight)
                });
            match created {
                Ok(()) => Some((root, version)),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "Pods run without CPU cgroups: their requests and limits are not enforced"
                    );
                    None
                }
            }
        });
        if let Some((root, version)) = &found {
            tracing::info!(root = %root.display(), ?version, "Pod CPU cgroups");
        }
        PodCgroups {
            root: found,
            startup_shares: shares(allocatable_millis),
        }
    }

    /// Creates (or resizes) the cgroup of Pod `uid`, with the startup weight, and opens its
    /// process list, into which the launcher moves itself before it runs (see
    /// `launcher::spawn`). `None` when the node has no Pod cgroups or this one cannot be
    /// made (logged; the Pod runs anyway). [`PodCgroups::settle`] ends the startup weight.
    pub(crate) fn prepare(&self, uid: &str, cpu: CpuResources) -> Option<File> {
        let (root, version) = self.root.as_ref()?;
        let dir = root.join(format!("pod{}", sanitize(uid)));
        let startup = shares(cpu.request_millis).max(self.startup_shares);
        let made = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))
            .and_then(|()| write_weight(&dir, *version, startup))
            .and_then(|()| write_quota(&dir, *version, cpu.limit_millis))
            .and_then(|()| {
                let procs = dir.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&procs)
                    .map_err(|e| format!("cannot open {}: {e}", procs.display()))
            });
        match made {
            Ok(procs) => Some(procs),
            Err(e) => {
                tracing::warn!(pod = uid, error = %e, "the Pod runs without its CPU cgroup");
                None
            }
        }
    }

    /// Gives Pod `uid` the weight of its CPU request, ending its startup weight (also for a
    /// re-adopted launcher, whose startup the agent did not see end).
    pub(crate) fn settle(&self, uid: &str, cpu: CpuResources) {
        let Some((root, version)) = &self.root else {
            return;
        };
        let dir = root.join(format!("pod{}", sanitize(uid)));
        if let Err(e) = write_weight(&dir, *version, shares(cpu.request_millis)) {
            tracing::warn!(pod = uid, error = %e, "cannot set the Pod's CPU weight to its request");
        }
    }

    /// Removes the cgroup of Pod `uid` once its processes are gone. QEMU may outlive its
    /// launcher by a moment, so this waits up to a second; a cgroup still busy then is
    /// left to [`PodCgroups::sweep`] at the agent's next start.
    pub(crate) async fn remove(&self, uid: &str) {
        let Some((root, _)) = &self.root else { return };
        let dir = root.join(format!("pod{}", sanitize(uid)));
        for _ in 0..20 {
            match std::fs::remove_dir(&dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        tracing::debug!(path = %dir.display(), "Pod cgroup still busy; left for the next start");
    }

    /// Removes the Pod cgroups no process uses any more (those of Pods torn down while the
    /// agent was away, or left busy); the ones of re-adopted launchers stay.
    pub(crate) fn sweep(&self) {
        let Some((root, _)) = &self.root else { return };
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("pod") {
                // Fails with EBUSY for a cgroup with processes: it is still in use.
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

/// The kubelet's `MilliCPUToShares`.
fn shares(millis: i128) -> i128 {
    if millis <= 0 {
        return MIN_SHARES;
    }
    (millis * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// cgroup v2's weight for v1 shares (the runc/kubelet conversion).
fn weight_from_shares(shares: i128) -> i128 {
    1 + ((shares - 2) * 9999) / 262_142
}

/// The kubelet's `MilliCPUToQuota`: µs per 100 ms period.
fn quota_us(limit_millis: i128) -> i128 {
    (limit_millis * QUOTA_PERIOD_US / 1000).max(MIN_QUOTA_US)
}

fn write_weight(dir: &Path, version: Version, shares: i128) -> Result<(), String> {
    match version {
        Version::V1 => write(&dir.join("cpu.shares"), &shares.to_string()),
        Version::V2 => write(
            &dir.join("cpu.weight"),
            &weight_from_shares(shares).to_string(),
        ),
    }
}

fn write_quota(dir: &Path, version: Version, limit_millis: Option<i128>) -> Result<(), String> {
    match (version, limit_millis) {
        (Version::V1, Some(l)) => {
            write(&dir.join("cpu.cfs_period_us"), &QUOTA_PERIOD_US.to_string())?;
            write(&dir.join("cpu.cfs_quota_us"), &quota_us(l).to_string())
        }
        (Version::V1, None) => write(&dir.join("cpu.cfs_quota_us"), "-1"),
        (Version::V2, Some(l)) => write(
            &dir.join("cpu.max"),
            &format!("{} {QUOTA_PERIOD_US}", quota_us(l)),
        ),
        (Version::V2, None) => write(&dir.join("cpu.max"), &format!("max {QUOTA_PERIOD_US}")),
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.write_all(value.as_bytes())
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// The mounted CPU controller: v1's `cpu` hierarchy, or the unified one when it offers
/// `cpu`. `OXIVIRT_CGROUP_ROOT` points elsewhere (e.g. a delegated subtree).
fn find_controller() -> Option<(PathBuf, Version)> {
    let base = std::env::var_os("OXIVIRT_CGROUP_ROOT")
        .map_or_else(|| PathBuf::from("/sys/fs/cgroup"), PathBuf::from);
    let v1 = base.join("cpu");
    if v1.join("cpu.shares").exists() {
        return Some((v1, Version::V1));
    }
    let controllers = std::fs::read_to_string(base.join("cgroup.controllers")).ok()?;
    if controllers.split_whitespace().any(|c| c == "cpu") {
        return Some((base, Version::V2));
    }
    tracing::warn!(base = %base.display(), "no CPU cgroup controller: Pods run without CPU cgroups");
    None
}

/// v2 only hands a controller to children whose parent enabled it.
fn enable_cpu_controller(group: &Path, base: &Path) -> Result<(), String> {
    write(&base.join("cgroup.subtree_control"), "+cpu")?;
    write(&group.join("cgroup.subtree_control"), "+cpu")
}

/// A path component from a name or UID (they are DNS labels and UUIDs; anything else is
/// replaced rather than trusted).
fn sanitize(name: &str) -> String {
    name.char_indices()
        .map(|(i, c)| {
            if c.is_ascii_alphanumeric() || c == '-' || (c == '.' && i > 0) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The sums of the CPU requests and limits of `pod`'s containers (a container without a
/// request but with a limit requests its limit, as Kubernetes defaults it).
pub(crate) fn pod_cpu(pod: &k8s_openapi::api::core::v1::Pod) -> CpuResources {
    let millis = |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.and_then(|q| oxivirt_webhooks::Quantity::parse(&q.0).ok())
            .map(|q| q.milli_value())
    };
    let mut request_millis = 0;
    let mut limit_millis = Some(0);
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        let resources = container.resources.as_ref();
        let limit = millis(resources.and_then(|r| r.limits.as_ref()?.get("cpu")));
        let request = millis(resources.and_then(|r| r.requests.as_ref()?.get("cpu"))).or(limit);
        request_millis += request.unwrap_or(0);
        limit_millis = match (limit_millis, limit) {
            (Some(sum), Some(l)) => Some(sum + l),
            _ => None, // one unlimited container leaves the Pod unlimited
        };
    }
    CpuResources {
        request_millis,
        limit_millis: limit_millis.filter(|&l| l > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_quota_follow_the_kubelet() {
        assert_eq!(shares(0), 2);
        assert_eq!(shares(1), 2, "never below MinShares");
        assert_eq!(shares(10), 10);
        assert_eq!(shares(100), 102);
        assert_eq!(shares(2000), 2048);
        assert_eq!(quota_us(500), 50_000);
        assert_eq!(quota_us(1), 1_000, "never below the kernel's minimum");
        assert_eq!(weight_from_shares(2), 1);
        assert_eq!(weight_from_shares(1024), 39);
        assert_eq!(weight_from_shares(262_144), 10_000);
    }

    #[test]
    fn pod_cpu_sums_containers_and_a_limitless_one_lifts_the_limit() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [
                {"name": "compute", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}},
                {"name": "side", "resources": {"limits": {"cpu": "250m"}}},
            ]}
        }))
        .expect("a Pod");
        assert_eq!(
            pod_cpu(&pod),
            CpuResources {
                request_millis: 350,
                limit_millis: Some(1250)
            }
        );
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [
                {"name": "compute", "resources": {"requests": {"cpu": "10m"}}},
            ]}
        }))
        .expect("a Pod");
        assert_eq!(
            pod_cpu(&pod),
            CpuResources {
                request_millis: 10,
                limit_millis: None
            }
        );
    }

    #[test]
    fn names_cannot_leave_the_node_group() {
        assert_eq!(sanitize("../../etc"), "_._.._etc");
        assert_eq!(sanitize(".."), "_.");
        assert_eq!(sanitize("3f2a-9b"), "3f2a-9b");
    }
}

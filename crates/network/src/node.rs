//! The node's share of the pod network: a /24 of the cluster range on a Linux bridge
//! (`oxb<id>`, gateway `.1`), an nftables table (`ip oxi-<id>`) masquerading pod traffic
//! that leaves the node, and the bookkeeping that lets several independent oxivirt nodes
//! share one host (parallel tests, nodes in network namespaces).
//!
//! Every host object carries the node's `id` (a hash of its data directory), and a live node
//! holds `flock` on `/run/oxivirt-net/<id>.lock`. A node starting up removes what nodes that
//! no longer hold their lock left behind (a SIGKILLed server cannot clean up after itself).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::config::NetworkConfig;
use crate::exec;

/// Where live nodes hold their locks (tmpfs: cleared with the bridges at reboot).
pub const LOCK_DIR: &str = "/run/oxivirt-net";

/// What went wrong preparing the node's network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lock or state file could not be used.
    #[error("cannot use {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another live process already runs a node on this data directory.
    #[error("another oxivirt node holds {} (same data directory?)", path.display())]
    Busy { path: PathBuf },
    /// Every /24 of the cluster range is routed on this host already.
    #[error("no free /24 left in the cluster range {cidr} on this host")]
    Exhausted { cidr: Cidr },
    /// Forwarding for the node's Pods could not be switched on.
    #[error("switching on forwarding for the node's Pods")]
    Forwarding(#[from] crate::forwarding::Error),
    /// A host command failed.
    #[error("setting up the node network {what}")]
    Host {
        what: String,
        #[source]
        source: exec::Error,
    },
}

/// The node network, ready for Pods. Holding it keeps the node's lock.
#[derive(Debug)]
pub struct NodeNetwork {
    /// Short hash naming this node's host objects.
    pub id: String,
    /// The node bridge.
    pub bridge: String,
    /// The node's pod prefix.
    pub pod_cidr: Cidr,
    /// The bridge's address: the Pods' gateway, and where the node's DNS listens.
    pub gateway: Ipv4Addr,
    /// The node's IPv6 /64 (dual stack only): the IPv4 /24's number in the IPv6 range.
    pub pod_prefix_v6: Option<std::net::Ipv6Addr>,
    /// The cluster settings.
    pub config: NetworkConfig,
    /// `<data-dir>/node`, where the address allocations live.
    pub state_dir: PathBuf,
    _lock: File,
}

/// What survives a restart in `<data-dir>/node/network.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    pod_cidr: String,
}

/// FNV-1a: a stable hash (std's hasher may change between Rust releases).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_path_buf(),
        source,
    }
}

fn host_err(what: impl Into<String>) -> impl FnOnce(exec::Error) -> Error {
    let what = what.into();
    move |source| Error::Host { what, source }
}

/// Opens (creating) `path` and takes `flock` on it; `Ok(None)` when someone else holds it.
fn try_lock(path: &Path, wait: bool) -> Result<Option<File>, Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(file_err(path))?;
    let op = if wait {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(file.as_fd(), op) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(file_err(path)(e.into())),
    }
}

impl NodeNetwork {
    /// Takes the node's lock, removes leftovers of dead nodes, picks (or re-takes) the
    /// node's /24 and brings up its bridge and NAT table. Idempotent across restarts.
    /// `elsewhere` are the pod prefixes other Nodes of the cluster hold: nodes on other
    /// hosts (or in other network namespaces) route theirs only once this node runs, so the
    /// host's routes alone do not show them.
    ///
    /// # Errors
    /// [`Error`] naming the step that failed.
    pub async fn start(
        config: &NetworkConfig,
        data_dir: &Path,
        elsewhere: &[Cidr],
    ) -> Result<Self, Error> {
        let state_dir = data_dir.join("node");
        std::fs::create_dir_all(&state_dir).map_err(file_err(&state_dir))?;
        std::fs::create_dir_all(LOCK_DIR).map_err(file_err(Path::new(LOCK_DIR)))?;
        let canonical = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.into());
        let id = format!(
            "{:06x}",
            stable_hash(&canonical.to_string_lossy()) & 0xff_ffff
        );
        let lock_path = Path::new(LOCK_DIR).join(format!("{id}.lock"));
        let lock = try_lock(&lock_path, false)?.ok_or(Error::Busy { path: lock_path })?;
        // One node at a time chooses a prefix and reaps the dead, so two never pick the same.
        let global_path = Path::new(LOCK_DIR).join("global.lock");
        let _global = try_lock(&global_path, true)?;
        reap_dead_nodes(&id).await;
        let bridge = format!("oxb{id}");
        let persisted_path = state_dir.join("network.json");
        let previous = std::fs::read(&persisted_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Persisted>(&b).ok())
            .and_then(|p| p.pod_cidr.parse::<Cidr>().ok())
            .filter(|c| config.cluster_cidr.overlaps(*c));
        let pod_cidr = choose_prefix(config, &id, &bridge, previous, elsewhere).await?;
        let gateway = pod_cidr.nth(1).ok_or(Error::Exhausted { cidr: pod_cidr })?;
        ensure_bridge(&bridge, Cidr::new(gateway, pod_cidr.len), config.mtu).await?;
        let persisted = serde_json::to_vec(&Persisted {
            pod_cidr: pod_cidr.to_string(),
        })
        .unwrap_or_default();
        std::fs::write(&persisted_path, persisted).map_err(file_err(&persisted_path))?;
        let pod_prefix_v6 = config.cluster_cidr_v6.map(|(base, _)| {
            let mut segments = base.segments();
            segments[3] = u16::from(pod_cidr.network().octets()[2]);
            std::net::Ipv6Addr::from(segments)
        });
        if let Some(prefix) = pod_prefix_v6 {
            let gateway6 = format!("{}/64", v6_host(prefix, 1));
            exec::ip(
                None,
                &["-6", "addr", "replace", &gateway6, "dev", &bridge, "nodad"],
            )
            .await
            .map_err(host_err(format!("address {gateway6} on {bridge}")))?;
            // Pod → IPv6 ClusterIP → Pod is routed through the bridge (see `forwarding`).
            crate::forwarding::enable_for_node(&bridge, &state_dir)?;
        }
        let node = NodeNetwork {
            pod_prefix_v6,
            bridge,
            pod_cidr,
            gateway,
            config: config.clone(),
            state_dir,
            id,
            _lock: lock,
        };
        exec::nft(None, &node.nat_table())
            .await
            .map_err(host_err(format!("table ip {}", node.nat_table_name())))?;
        if let Some(table) = node.nat_table_v6() {
            exec::nft(None, &table)
                .await
                .map_err(host_err(format!("table ip6 {}", node.nat_table_name())))?;
        }
        tracing::info!(bridge = %node.bridge, pod_cidr = %node.pod_cidr, "node pod network ready");
        Ok(node)
    }

    /// The node's own nftables table name.
    pub fn nat_table_name(&self) -> String {
        format!("oxi-{}", self.id)
    }

    /// Pods reach beyond the cluster from their pod IP masqueraded behind the node's
    /// address; traffic between Pods (on any node) keeps its source. Replaces the table
    /// atomically.
    fn nat_table(&self) -> String {
        let (t, br, cidr) = (self.nat_table_name(), &self.bridge, self.pod_cidr);
        let cluster = self.config.cluster_cidr;
        format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\
             \tchain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
             \t\tip saddr {cidr} ip daddr != {cluster} oifname != \"{br}\" masquerade\n\t}}\n\
             \tchain forward {{ type filter hook forward priority filter; policy accept;\n\
             \t\tiifname \"{br}\" accept\n\t\toifname \"{br}\" ct state established,related accept\n\t}}\n}}\n"
        )
    }

    /// The IPv6 half of [`NodeNetwork::nat_table`] on dual-stack nodes: Pods reach beyond
    /// the cluster's IPv6 range behind the node's IPv6 address.
    fn nat_table_v6(&self) -> Option<String> {
        let prefix = self.pod_prefix_v6_cidr()?;
        let (range, len) = self.config.cluster_cidr_v6?;
        let (t, br) = (self.nat_table_name(), &self.bridge);
        Some(format!(
            "table ip6 {t}\ndelete table ip6 {t}\ntable ip6 {t} {{\n\
             \tchain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
             \t\tip6 saddr {prefix} ip6 daddr != {range}/{len} oifname != \"{br}\" masquerade\n\t}}\n\
             \tchain forward {{ type filter hook forward priority filter; policy accept;\n\
             \t\tiifname \"{br}\" accept\n\t\toifname \"{br}\" ct state established,related accept\n\t}}\n}}\n"
        ))
    }

    /// The node's IPv6 pod prefix as `spec.podCIDRs` lists it (dual stack only).
    pub fn pod_prefix_v6_cidr(&self) -> Option<String> {
        self.pod_prefix_v6.map(|p| format!("{p}/64"))
    }

    /// The network namespace of the Pod with `uid`.
    pub fn netns_name(&self, uid: &str) -> String {
        format!("oxi-{}-{uid}", self.id)
    }

    /// Removes the node's host objects (bridge, table); Pods' namespaces go with their Pods.
    pub async fn shutdown(&self) {
        for family in ["ip", "ip6"] {
            let _ = exec::run(
                None,
                "nft",
                &["delete", "table", family, &self.nat_table_name()],
            )
            .await;
        }
        let _ = exec::ip(None, &["link", "del", &self.bridge]).await;
        let _ = std::fs::remove_file(Path::new(LOCK_DIR).join(format!("{}.lock", self.id)));
    }
}

/// Host `n` of an IPv6 /64 prefix.
pub fn v6_host(prefix: std::net::Ipv6Addr, n: u16) -> std::net::Ipv6Addr {
    let mut segments = prefix.segments();
    segments[4..].copy_from_slice(&[0, 0, 0, n]);
    std::net::Ipv6Addr::from(segments)
}

/// Deletes the bridges, tables and Pod namespaces of nodes whose lock nobody holds.
async fn reap_dead_nodes(own: &str) {
    let Ok(entries) = std::fs::read_dir(LOCK_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".lock") else {
            continue;
        };
        if id == own || id == "global" {
            continue;
        }
        let Ok(Some(_held)) = try_lock(&entry.path(), false) else {
            continue; // alive
        };
        if has_running_pods(id).await {
            // Launchers outlive their agent by design; the node's network stays for them
            // until the agent comes back (same data directory, same id) or they end.
            continue;
        }
        tracing::info!(node = id, "removing the network of a node that is gone");
        remove_node_objects(id).await;
        let _ = std::fs::remove_file(entry.path());
    }
}

/// Whether a process still runs in one of node `id`'s Pod namespaces.
async fn has_running_pods(id: &str) -> bool {
    let prefix = format!("oxi-{id}-");
    let Ok(list) = exec::ip(None, &["netns", "list"]).await else {
        return false;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.starts_with(&prefix)
            && exec::ip(None, &["netns", "pids", ns])
                .await
                .is_ok_and(|pids| !pids.trim().is_empty())
        {
            return true;
        }
    }
    false
}

/// Removes every host object named after node `id`.
pub async fn remove_node_objects(id: &str) {
    let prefix = format!("oxi-{id}-");
    if let Ok(list) = exec::ip(None, &["netns", "list"]).await {
        for line in list.lines() {
            let ns = line.split_whitespace().next().unwrap_or_default();
            if ns.starts_with(&prefix) {
                let _ = exec::ip(None, &["netns", "del", ns]).await;
            }
        }
    }
    if let Ok(tables) = exec::run(None, "nft", &["list", "tables"]).await {
        for line in tables.lines() {
            let mut words = line.split_whitespace().skip(1);
            if let (Some(family), Some(table)) = (words.next(), words.next()) {
                if table == format!("oxi-{id}") || table.starts_with(&prefix) {
                    let _ = exec::run(None, "nft", &["delete", "table", family, table]).await;
                }
            }
        }
    }
    let _ = exec::ip(None, &["link", "del", &format!("oxb{id}")]).await;
}

/// The IPv4 prefixes routed on this host, with their device.
async fn host_routes() -> Result<Vec<(Cidr, String)>, Error> {
    let out = exec::ip(None, &["-j", "-4", "route", "show", "table", "all"])
        .await
        .map_err(host_err("listing routes"))?;
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(routes
        .iter()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?;
            let cidr = if dst.contains('/') {
                dst.parse().ok()?
            } else {
                Cidr::new(dst.parse().ok()?, 32)
            };
            Some((cidr, r["dev"].as_str().unwrap_or_default().to_string()))
        })
        .collect())
}

/// The previous prefix if nobody else routes it, else the first free /24 from a start
/// derived from the node id (so parallel nodes rarely race for the same one).
async fn choose_prefix(
    config: &NetworkConfig,
    id: &str,
    bridge: &str,
    previous: Option<Cidr>,
    elsewhere: &[Cidr],
) -> Result<Cidr, Error> {
    let routes = host_routes().await?;
    let taken = |c: Cidr| {
        elsewhere.iter().any(|e| e.overlaps(c))
            || routes
                .iter()
                .any(|(r, dev)| dev != bridge && r.len > 0 && r.overlaps(c))
    };
    if let Some(prev) = previous.filter(|p| !taken(*p)) {
        return Ok(prev);
    }
    let count = config.cluster_cidr.subnets(24);
    let start = u32::try_from(stable_hash(id) % u64::from(count.max(1))).unwrap_or(0);
    (0..count)
        .filter_map(|i| config.cluster_cidr.subnet(24, (start + i) % count))
        .find(|c| !taken(*c))
        .ok_or(Error::Exhausted {
            cidr: config.cluster_cidr,
        })
}

async fn ensure_bridge(bridge: &str, address: Cidr, mtu: u32) -> Result<(), Error> {
    if exec::ip(None, &["link", "show", bridge]).await.is_err() {
        exec::ip(None, &["link", "add", bridge, "type", "bridge"])
            .await
            .map_err(host_err(format!("bridge {bridge}")))?;
    }
    let mtu = mtu.to_string();
    exec::ip(None, &["link", "set", bridge, "mtu", &mtu, "up"])
        .await
        .map_err(host_err(format!("bridge {bridge} up")))?;
    exec::ip(
        None,
        &["addr", "replace", &address.to_string(), "dev", bridge],
    )
    .await
    .map_err(host_err(format!("address {address} on {bridge}")))?;
    // Forwarding on the bridge alone: Pod-to-Pod and Service traffic is routed by the host
    // without switching forwarding on for the host's other interfaces.
    crate::forwarding::enable_ipv4(bridge)?;
    Ok(())
}

//! IPv6 forwarding for dual-stack nodes. A Pod's IPv6 packet to an IPv6 ClusterIP enters the
//! node bridge, is DNATed to another Pod's address and must be routed back out of the
//! bridge; IPv6 routing needs forwarding. IPv4 has a per-interface switch, which the node
//! sets on its bridge alone (`node.rs`); IPv6 had none until Linux 6.17.
//!
//! - **Kernels with `force_forwarding`** (6.17+): set on the node bridge only. Everything
//!   that needs forwarding on one node enters through the bridge (requests and replies), so
//!   the host's other interfaces keep their behaviour, exactly as with IPv4.
//! - **Older kernels**: the host-wide `net.ipv6.conf.all.forwarding=1` that Kubernetes lists
//!   as a dual-stack prerequisite. It turns every interface into a router, and routers
//!   ignore Router Advertisements when `accept_ra` is 1: the host would lose its
//!   RA-learned default route at once (the kernel purges them when forwarding turns on) and
//!   its SLAAC addresses when they expire. So first every interface with `accept_ra=1` (and
//!   `default`, the template of interfaces created later) gets `accept_ra=2` ("accept even
//!   when forwarding"), and only then forwarding goes on. What was changed is logged and
//!   recorded in `<data-dir>/node/ipv6-forwarding.json`, which names what to undo.
//!
//! Nothing is changed when the host forwards IPv6 already. Nothing is undone at shutdown:
//! other nodes on the host may rely on it, and `accept_ra=2` keeps the host as it was.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the kernel's per-interface IPv6 settings live.
pub const CONF_DIR: &str = "/proc/sys/net/ipv6/conf";

/// The file recording host-wide changes, in the node's state directory.
pub const RECORD_FILE: &str = "ipv6-forwarding.json";

/// A setting that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {}", path.display())]
pub struct Error {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// How IPv6 forwarding came to be on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum Outcome {
    /// `all/forwarding` was 1 already: nothing was changed.
    AlreadyOn,
    /// `force_forwarding=1` on the node bridge only.
    Bridge {
        /// The bridge.
        bridge: String,
    },
    /// `all/forwarding` switched from 0 to 1, after `accept_ra` 1 → 2 where listed.
    Host {
        /// The entries of `conf/` (interfaces, and `default`) whose `accept_ra` went 1 → 2.
        #[serde(rename = "acceptRa")]
        accept_ra: Vec<String>,
    },
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error {
            path: path.into(),
            source,
        })
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::write(path, value).map_err(|source| Error {
        path: path.into(),
        source,
    })
}

/// oxivirt's own interfaces (`oxb`/`oxv`/`oxs`/`oxq` + hex): they never need Router
/// Advertisements, so the record does not list them.
fn is_ours(name: &str) -> bool {
    ["oxb", "oxv", "oxs", "oxq"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

/// Turns IPv6 forwarding on for `bridge` under `conf` ([`CONF_DIR`] on a real host), as the
/// module doc says. Idempotent.
///
/// # Errors
/// [`Error`] naming the setting that could not be read or written. `accept_ra` values
/// already raised stay raised: with forwarding off, 2 behaves as 1.
pub fn enable(conf: &Path, bridge: &str) -> Result<Outcome, Error> {
    let all = conf.join("all/forwarding");
    if read(&all)? == "1" {
        return Ok(Outcome::AlreadyOn);
    }
    let force = conf.join(bridge).join("force_forwarding");
    if force.exists() {
        write(&force, "1")?;
        return Ok(Outcome::Bridge {
            bridge: bridge.to_string(),
        });
    }
    let entries = std::fs::read_dir(conf).map_err(|source| Error {
        path: conf.into(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // `all/accept_ra` is never read by the kernel; loopback gets no advertisements.
        .filter(|name| name != "all" && name != "lo" && !is_ours(name))
        .collect();
    names.sort();
    let mut raised = Vec::new();
    for name in names {
        let path = conf.join(&name).join("accept_ra");
        match std::fs::read_to_string(&path) {
            Ok(value) if value.trim() == "1" => {}
            Ok(_) => continue,
            // The interface went away meanwhile: nothing to keep for it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error { path, source }),
        }
        write(&path, "2")?;
        raised.push(name);
    }
    write(&all, "1")?;
    Ok(Outcome::Host { accept_ra: raised })
}

/// IPv4 forwarding for packets entering through `interface` alone: IPv4 has always had a
/// per-interface switch, so nothing else on the host changes.
///
/// # Errors
/// [`Error`] naming the setting that could not be written.
pub fn enable_ipv4(interface: &str) -> Result<(), Error> {
    let path = Path::new("/proc/sys/net/ipv4/conf")
        .join(interface)
        .join("forwarding");
    write(&path, "1")
}

/// [`enable`] on the host for `interface` (the node bridge, or the uplink other nodes' Pods
/// reach this node's through), logging the outcome and recording host-wide changes in
/// `state_dir`.
///
/// # Errors
/// [`Error`].
pub fn enable_for_node(interface: &str, state_dir: &Path) -> Result<Outcome, Error> {
    let outcome = enable(Path::new(CONF_DIR), interface)?;
    match &outcome {
        Outcome::AlreadyOn => {
            tracing::debug!("IPv6 forwarding is on already (net.ipv6.conf.all.forwarding=1)");
        }
        Outcome::Bridge { bridge } => tracing::info!(
            interface = bridge,
            "IPv6 forwarding for this interface only (net.ipv6.conf.{bridge}.force_forwarding=1)"
        ),
        Outcome::Host { accept_ra } => {
            tracing::warn!(
                accept_ra_raised = ?accept_ra,
                "IPv6 forwarding switched on host-wide for dual stack \
                 (net.ipv6.conf.all.forwarding=1; this kernel has no per-interface switch); \
                 accept_ra 1 -> 2 first on the interfaces listed, so they keep taking Router Advertisements"
            );
            let path = state_dir.join(RECORD_FILE);
            let text = serde_json::to_vec_pretty(&outcome).unwrap_or_default();
            write(&path, &String::from_utf8_lossy(&text))?;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `conf/` tree: `(entry, accept_ra)`, plus `all/forwarding` = `forwarding`.
    fn conf(entries: &[(&str, &str)], forwarding: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, accept_ra) in entries {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("accept_ra"), accept_ra).unwrap();
            std::fs::write(dir.path().join(name).join("forwarding"), "0\n").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("all")).unwrap();
        std::fs::write(dir.path().join("all/forwarding"), forwarding).unwrap();
        dir
    }

    fn value(dir: &tempfile::TempDir, path: &str) -> String {
        std::fs::read_to_string(dir.path().join(path))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn without_a_per_interface_switch_accept_ra_1_becomes_2_before_forwarding_goes_on() {
        let dir = conf(
            &[
                ("all", "1\n"),
                ("default", "1\n"),
                ("eth0", "1\n"),
                ("eth1", "0\n"),
                ("wlan0", "2\n"),
                ("lo", "1\n"),
                ("oxb1a2b3c", "1\n"),
                ("oxbow", "1\n"),
            ],
            "0\n",
        );
        let outcome = enable(dir.path(), "oxb1a2b3c").unwrap();
        assert_eq!(
            outcome,
            Outcome::Host {
                accept_ra: vec!["default".into(), "eth0".into(), "oxbow".into()]
            }
        );
        assert_eq!(value(&dir, "all/forwarding"), "1");
        assert_eq!(value(&dir, "eth0/accept_ra"), "2");
        assert_eq!(value(&dir, "default/accept_ra"), "2");
        // Only interfaces that took advertisements are touched.
        assert_eq!(value(&dir, "eth1/accept_ra"), "0");
        assert_eq!(value(&dir, "wlan0/accept_ra"), "2");
        assert_eq!(value(&dir, "lo/accept_ra"), "1");
        assert_eq!(value(&dir, "oxb1a2b3c/accept_ra"), "1");
        assert_eq!(value(&dir, "all/accept_ra"), "1");
        // A second start finds forwarding on and changes nothing.
        std::fs::write(dir.path().join("eth1/accept_ra"), "1").unwrap();
        assert_eq!(enable(dir.path(), "oxb1a2b3c").unwrap(), Outcome::AlreadyOn);
        assert_eq!(value(&dir, "eth1/accept_ra"), "1");
    }

    #[test]
    fn with_force_forwarding_only_the_bridge_forwards() {
        let dir = conf(
            &[("default", "1\n"), ("eth0", "1\n"), ("oxbabc", "1\n")],
            "0\n",
        );
        std::fs::write(dir.path().join("oxbabc/force_forwarding"), "0\n").unwrap();
        let outcome = enable(dir.path(), "oxbabc").unwrap();
        assert_eq!(
            outcome,
            Outcome::Bridge {
                bridge: "oxbabc".into()
            }
        );
        assert_eq!(value(&dir, "oxbabc/force_forwarding"), "1");
        assert_eq!(value(&dir, "all/forwarding"), "0");
        assert_eq!(value(&dir, "eth0/accept_ra"), "1");
    }

    #[test]
    fn a_host_that_forwards_already_is_left_alone() {
        let dir = conf(&[("eth0", "1\n"), ("oxbabc", "1\n")], "1\n");
        std::fs::write(dir.path().join("oxbabc/force_forwarding"), "0\n").unwrap();
        assert_eq!(enable(dir.path(), "oxbabc").unwrap(), Outcome::AlreadyOn);
        assert_eq!(value(&dir, "oxbabc/force_forwarding"), "0");
        assert_eq!(value(&dir, "eth0/accept_ra"), "1");
    }

    #[test]
    fn a_missing_setting_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = enable(dir.path(), "oxbabc").unwrap_err();
        assert!(e.to_string().contains("all/forwarding"), "{e}");
    }

    #[test]
    fn the_record_names_the_mode_and_what_changed() {
        let text = serde_json::to_value(Outcome::Host {
            accept_ra: vec!["eth0".into()],
        })
        .unwrap();
        assert_eq!(
            text,
            serde_json::json!({"mode": "host", "acceptRa": ["eth0"]})
        );
    }
}

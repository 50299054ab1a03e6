//! User-mode networking for a VM on a node without a pod network (the agent is not root):
//! the pod-network NIC's frames go over a Unix socket to `passt` (Debian package `passt`),
//! which answers the guest's DHCP with the host's address, gateway and DNS and carries its
//! traffic through ordinary host sockets — no tap, no bridge, no privilege. Inbound, only
//! the interface's declared `ports` are forwarded (from the same host ports).
//!
//! passt runs with `--one-off`, so it ends when QEMU closes the socket: it lives exactly as
//! long as the VM without the launcher holding it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oxivirt_network::UserModePlan;
use tokio::process::Command;

use crate::args::{Builder, Props};
use crate::error::{Error, Result};
use crate::spec::{LaunchSpec, RunPaths};

/// The passt binary.
const PASST: &str = "passt";
/// How long passt may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// passt's socket in the run directory.
pub(crate) fn socket(paths: &RunPaths) -> PathBuf {
    paths.dir().join("passt.sock")
}

/// Adds the NIC: a `stream` netdev connecting to passt's socket, and the device.
///
/// # Errors
/// [`Error::Config`] for a model QEMU cannot express, or a socket path too long.
pub(crate) fn add(nic: &UserModePlan, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    let netdev = format!("hostua-{}", nic.name);
    out.arg(
        "-netdev",
        Props::new("stream")
            .set("id", netdev.clone())
            .set("server", "off")
            .set("addr.type", "unix")
            .path("addr.path", &socket(paths))?
            .to_string(),
    );
    let driver = crate::network::nic_driver(&nic.model).ok_or_else(|| {
        Error::config(
            format!("spec.domain.devices.interfaces[{}].model", nic.name),
            format!("unsupported NIC model {:?}", nic.model),
        )
    })?;
    out.device(
        Props::new(driver)
            .set("netdev", netdev)
            .set("id", format!("ua-{}", nic.name))
            .set("mac", nic.mac.clone())
            .set("romfile", ""),
    );
    out.note(format!(
        "interface {} uses passt user-mode networking: this node has no pod network",
        nic.name
    ));
    Ok(())
}

fn ports_arg(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// passt's arguments for `nic`, its socket at `socket` and log at `log`.
fn passt_args(nic: &UserModePlan, socket: &Path, log: &Path) -> Vec<String> {
    let mut args = vec![
        "--foreground".to_string(),
        "--one-off".to_string(),
        "--quiet".to_string(),
        "--socket".to_string(),
        socket.display().to_string(),
        "--log-file".to_string(),
        log.display().to_string(),
        // IPv4 only: the pod network's guests are IPv4 too, and the address is the host's.
        "--ipv4-only".to_string(),
    ];
    if !nic.tcp_ports.is_empty() {
        args.extend(["--tcp-ports".to_string(), ports_arg(&nic.tcp_ports)]);
    }
    if !nic.udp_ports.is_empty() {
        args.extend(["--udp-ports".to_string(), ports_arg(&nic.udp_ports)]);
    }
    args
}

/// Starts passt for the VM's user-mode NIC, if it has one, and waits for its socket.
///
/// # Errors
/// [`Error::Passt`] when passt is missing, exits, or does not create its socket in time.
pub(crate) async fn start(spec: &LaunchSpec, paths: &RunPaths) -> Result<()> {
    let Some(nic) = spec.network.as_ref().and_then(|p| p.user_mode.as_ref()) else {
        return Ok(());
    };
    let socket = socket(paths);
    let _ = std::fs::remove_file(&socket);
    let log = paths.dir().join("passt.log");
    let mut child = Command::new(PASST)
        .args(passt_args(nic, &socket, &log))
        .current_dir(paths.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // passt also tries syslog and says so on stderr when there is none: not worth a file.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Passt {
            reason: format!("cannot run {PASST}: {e}"),
        })?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let last: Vec<&str> = said.lines().rev().take(3).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            return Err(Error::Passt {
                reason: format!("{PASST} exited ({status}): {}", last.join("; ")),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err(Error::Passt {
                reason: format!(
                    "{} did not appear within {} s",
                    socket.display(),
                    START_TIMEOUT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(pid = child.id(), socket = %socket.display(), "passt running");
    // Reaped when it ends (after QEMU disconnects); never a zombie meanwhile.
    tokio::spawn(async move { child.wait().await });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LaunchSpec;

    fn nic(tcp: Vec<u16>) -> UserModePlan {
        UserModePlan {
            name: "default".into(),
            mac: "02:00:00:00:00:21".into(),
            model: "virtio".into(),
            tcp_ports: tcp,
            udp_ports: vec![],
            left_out: vec![],
        }
    }

    #[test]
    fn the_nic_is_a_stream_netdev_on_passts_socket() {
        let spec: LaunchSpec = serde_json::from_value(serde_json::json!({
            "vmi": {"metadata": {"name": "vm1", "namespace": "ns"},
                    "spec": {"domain": {"resources": {"requests": {"memory": "128Mi"}},
                                        "devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
                             "networks": [{"name": "default", "pod": {}}]}},
            "network": {"interfaces": [], "userMode": nic(vec![])},
        }))
        .expect("a launch spec");
        let paths = RunPaths::new(Path::new("/run/x"));
        let args = crate::args::qemu_config(&spec, &paths)
            .expect("argv")
            .args
            .join(" ");
        assert!(
            args.contains("-netdev stream,id=hostua-default,server=off,addr.type=unix,addr.path=/run/x/passt.sock"),
            "{args}"
        );
        assert!(
            args.contains("-device virtio-net-pci,netdev=hostua-default,id=ua-default,mac=02:00:00:00:00:21,romfile="),
            "{args}"
        );
        assert!(
            !args.contains("pcie-root-port"),
            "no hot-plug without a pod network: {args}"
        );
    }

    #[test]
    fn declared_ports_are_forwarded_and_passt_ends_with_its_client() {
        let args = passt_args(&nic(vec![22, 80]), Path::new("/s"), Path::new("/l")).join(" ");
        assert!(args.contains("--one-off"), "{args}");
        assert!(args.contains("--tcp-ports 22,80"), "{args}");
        assert!(!args.contains("--udp-ports"), "{args}");
    }
}

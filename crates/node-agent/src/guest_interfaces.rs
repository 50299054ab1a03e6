//! What the guest agent says about the guest's network and itself, in the VMI status
//! (upstream: virt-handler from virt-launcher's agent poller):
//!
//! - `status.interfaces[]`: an entry of the pod network (written by `netns`) whose MAC the
//!   guest reports gains `interfaceName` and `guest-agent` in `infoSource`; NICs without an
//!   address of their own (not the pod network, whose address is the Pod's as upstream
//!   reports it for masquerade) get the guest's `ipAddress`/`ipAddresses`; a guest NIC no
//!   VMI interface names (a VLAN, a bond) is listed with `infoSource: guest-agent` alone.
//! - condition `AgentVersionNotSupported` (True, the reason upstream gives) when the agent
//!   lacks or has disabled a command upstream requires: the basic ones always, the SSH-key
//!   or password ones when `accessCredentials` propagate through the agent, the exec ones
//!   for exec probes. It goes away once the agent supports them.
//!
//! Asked every [`POLL_PERIOD`] of each running VMI whose agent has answered, through the
//! launcher's `control.sock`; the VMI is written only when something changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::rundir::{self, LauncherPhase};

/// How often the guest is asked (upstream's agent poller asks for interfaces every 10 s).
const POLL_PERIOD: Duration = Duration::from_secs(10);
pub(crate) const UNSUPPORTED: &str = "AgentVersionNotSupported";
const GUEST_AGENT: &str = "guest-agent";

const REQUIRED: &[&str] = &[
    "guest-ping",
    "guest-get-time",
    "guest-info",
    "guest-shutdown",
    "guest-network-get-interfaces",
    "guest-get-fsinfo",
    "guest-get-host-name",
    "guest-get-users",
    "guest-get-timezone",
    "guest-get-osinfo",
];
const SSH_KEYS: &[&str] = &[
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
];
const PASSWORD: &[&str] = &["guest-set-user-password"];
const EXEC_PROBE: &[&str] = &["guest-exec-status", "guest-exec"];

/// Why the agent of a VMI with `spec` is not supported (upstream's words), from its
/// `guest-info` reply; `None` when it is.
pub(crate) fn unsupported(spec: &Value, guest_info: &Value) -> Option<&'static str> {
    let enabled = |command: &str| {
        guest_info["supported_commands"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == command && c["enabled"] == json!(true))
    };
    let all = |commands: &[&str]| commands.iter().all(|c| enabled(c));
    if !all(REQUIRED) {
        return Some("This guest agent doesn't support required basic commands");
    }
    let credentials = spec["accessCredentials"].as_array().into_iter().flatten();
    let (mut ssh, mut password) = (false, false);
    for credential in credentials {
        ssh |= credential["sshPublicKey"]["propagationMethod"]["qemuGuestAgent"].is_object();
        password |= credential["userPassword"]["propagationMethod"]["qemuGuestAgent"].is_object();
    }
    if ssh && !all(SSH_KEYS) {
        return Some("This guest agent doesn't support required public key commands");
    }
    if password && !all(PASSWORD) {
        return Some("This guest agent doesn't support required password commands");
    }
    let exec_probe = ["readinessProbe", "livenessProbe"]
        .iter()
        .any(|p| spec[*p]["exec"].is_object());
    if exec_probe && !all(EXEC_PROBE) {
        return Some("This guest agent doesn't support required exec probe commands");
    }
    None
}

/// The guest's addresses on one NIC: IPv4 first, link-local IPv6 left out (it says
/// nothing about how the VM is reached).
fn addresses(interface: &Value) -> Vec<String> {
    let mut list: Vec<(bool, String)> = interface["ip-addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let ip = a["ip-address"].as_str()?;
            let v6 = a["ip-address-type"] == "ipv6";
            (!(v6 && ip.to_ascii_lowercase().starts_with("fe80:"))).then(|| (v6, ip.to_string()))
        })
        .collect();
    list.sort_by_key(|(v6, _)| *v6);
    list.into_iter().map(|(_, ip)| ip).collect()
}

/// `current` status interfaces with what the guest reported (`guest-network-get-interfaces`)
/// merged in.
pub(crate) fn merge(current: &Value, guest: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = current.as_array().cloned().unwrap_or_default();
    for interface in guest.as_array().into_iter().flatten() {
        let name = interface["name"].as_str().unwrap_or_default();
        let mac = interface["hardware-address"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name == "lo" || mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        let ips = addresses(interface);
        let known = out.iter_mut().find(|e| {
            e["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
        });
        match known {
            Some(entry) => {
                entry["interfaceName"] = json!(name);
                let source = entry["infoSource"].as_str().unwrap_or("domain").to_string();
                if !source.split(", ").any(|s| s == GUEST_AGENT) {
                    entry["infoSource"] = json!(format!("{source}, {GUEST_AGENT}"));
                }
                if entry.get("ipAddress").is_none() && !ips.is_empty() {
                    entry["ipAddress"] = json!(ips[0]);
                    entry["ipAddresses"] = json!(ips);
                }
            }
            None => {
                let mut entry =
                    json!({"interfaceName": name, "mac": mac, "infoSource": GUEST_AGENT});
                if !ips.is_empty() {
                    entry["ipAddress"] = json!(ips[0]);
                    entry["ipAddresses"] = json!(ips);
                }
                out.push(entry);
            }
        }
    }
    out
}

/// Runs until the process ends.
pub(crate) async fn run(client: kube::Client, data_dir: PathBuf) {
    loop {
        sync_all(&client, &data_dir).await;
        tokio::time::sleep(POLL_PERIOD).await;
    }
}

async fn sync_all(client: &kube::Client, data_dir: &Path) {
    for (_, dir) in rundir::list(data_dir) {
        let Some(status) = dir.read_status() else {
            continue;
        };
        if status.phase != LauncherPhase::Running || status.guest_os_info.is_none() {
            continue;
        }
        let Some(vmi) = std::fs::read(dir.file("launch.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|l| l["vmi"].clone())
        else {
            continue;
        };
        let ask = |command: &'static str| {
            let dir = &dir;
            async move {
                crate::endpoint::control::send(dir, &json!({ "command": command }))
                    .await
                    .ok()
                    .filter(|r| r["ok"] == json!(true))
                    .map(|r| r["data"].clone())
            }
        };
        let (Some(info), Some(interfaces)) = (ask("guestinfo").await, ask("interfaces").await)
        else {
            continue;
        };
        let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = vmi["metadata"]["name"].as_str().unwrap_or_default();
        let reason = unsupported(&vmi["spec"], &info);
        if let Err(error) = write(client, namespace, name, &interfaces, reason).await {
            tracing::debug!(%error, vmi = %format!("{namespace}/{name}"), "cannot write the guest's interfaces; retrying");
        }
    }
}

/// Writes the merged interfaces and the condition unless the VMI already says so.
async fn write(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    guest: &Value,
    unsupported: Option<&str>,
) -> Result<(), kube::Error> {
    let api = crate::realise::vmi_api(client, namespace);
    let vmi = api.get(name).await?;
    let mut value = serde_json::to_value(&vmi).map_err(kube::Error::SerdeError)?;
    let before = value["status"].clone();
    value["status"]["interfaces"] = json!(merge(&value["status"]["interfaces"], guest));
    let mut conditions = value["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match unsupported {
        Some(reason) => {
            if !conditions
                .iter()
                .any(|c| c["type"] == UNSUPPORTED && c["reason"] == reason)
            {
                conditions.retain(|c| c["type"] != UNSUPPORTED);
                conditions.push(json!({
                    "type": UNSUPPORTED, "status": "True", "reason": reason,
                    "lastProbeTime": null, "lastTransitionTime": crate::status::now(),
                }));
            }
        }
        None => conditions.retain(|c| c["type"] != UNSUPPORTED),
    }
    value["status"]["conditions"] = json!(conditions);
    if value["status"] == before {
        return Ok(());
    }
    let updated: DynamicObject = serde_json::from_value(value).map_err(kube::Error::SerdeError)?;
    // A conflict with another status writer is retried on the next pass.
    api.replace(name, &PostParams::default(), &updated)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(commands: &[&str], disabled: &[&str]) -> Value {
        let list: Vec<Value> = commands
            .iter()
            .map(|c| json!({"name": c, "enabled": !disabled.contains(c), "success-response": true}))
            .collect();
        json!({"version": "7.2.22", "supported_commands": list})
    }

    #[test]
    fn an_agent_is_supported_only_with_the_commands_the_vmi_needs_enabled() {
        let basic: Vec<&str> = REQUIRED.to_vec();
        assert_eq!(unsupported(&json!({}), &info(&basic, &[])), None);
        assert_eq!(
            unsupported(&json!({}), &info(&basic, &["guest-get-osinfo"])),
            Some("This guest agent doesn't support required basic commands")
        );
        assert_eq!(
            unsupported(&json!({}), &info(&basic[1..], &[])),
            Some("This guest agent doesn't support required basic commands")
        );
        let ssh = json!({"accessCredentials": [{"sshPublicKey": {"propagationMethod": {"qemuGuestAgent": {"users": ["u"]}}}}]});
        assert_eq!(
            unsupported(&ssh, &info(&basic, &[])),
            Some("This guest agent doesn't support required public key commands")
        );
        let with_ssh: Vec<&str> = basic.iter().chain(SSH_KEYS).copied().collect();
        assert_eq!(unsupported(&ssh, &info(&with_ssh, &[])), None);
        // First-boot propagation needs nothing of the agent.
        let no_cloud = json!({"accessCredentials": [{"sshPublicKey": {"propagationMethod": {"noCloud": {}}}}]});
        assert_eq!(unsupported(&no_cloud, &info(&basic, &[])), None);
        let password = json!({"accessCredentials": [{"userPassword": {"propagationMethod": {"qemuGuestAgent": {}}}}]});
        assert!(unsupported(&password, &info(&basic, &[])).is_some_and(|r| r.contains("password")));
        let probe = json!({"readinessProbe": {"exec": {"command": ["true"]}}});
        assert!(unsupported(&probe, &info(&basic, &[])).is_some_and(|r| r.contains("exec probe")));
    }

    #[test]
    fn guest_nics_are_matched_by_mac_and_others_are_added() {
        let current = json!([
            {"name": "default", "mac": "52:54:00:AA:BB:CC", "infoSource": "domain",
             "ipAddress": "10.244.1.5", "ipAddresses": ["10.244.1.5"], "queueCount": 1},
            {"name": "blue", "mac": "52:54:00:00:00:02", "infoSource": "domain, multus-status"},
        ]);
        let guest = json!([
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
            {"name": "eth0", "hardware-address": "52:54:00:aa:bb:cc",
             "ip-addresses": [{"ip-address": "10.0.2.2", "ip-address-type": "ipv4", "prefix": 24}]},
            {"name": "eth1", "hardware-address": "52:54:00:00:00:02",
             "ip-addresses": [
                {"ip-address": "fe80::1", "ip-address-type": "ipv6", "prefix": 64},
                {"ip-address": "fd00::5", "ip-address-type": "ipv6", "prefix": 64},
                {"ip-address": "192.168.1.5", "ip-address-type": "ipv4", "prefix": 24}]},
            {"name": "eth1.100", "hardware-address": "52:54:00:00:00:09", "ip-addresses": []},
        ]);
        let merged = merge(&current, &guest);
        assert_eq!(merged.len(), 3);
        // The pod network keeps the Pod's address, as upstream reports masquerade NICs.
        assert_eq!(merged[0]["interfaceName"], "eth0");
        assert_eq!(merged[0]["infoSource"], "domain, guest-agent");
        assert_eq!(merged[0]["ipAddress"], "10.244.1.5");
        assert_eq!(merged[0]["queueCount"], 1);
        assert_eq!(merged[1]["interfaceName"], "eth1");
        assert_eq!(
            merged[1]["infoSource"],
            "domain, multus-status, guest-agent"
        );
        assert_eq!(merged[1]["ipAddresses"], json!(["192.168.1.5", "fd00::5"]));
        assert_eq!(
            merged[2],
            json!({"interfaceName": "eth1.100", "mac": "52:54:00:00:00:09", "infoSource": "guest-agent"})
        );
        // Merging again changes nothing.
        assert_eq!(merge(&json!(merged), &guest), merged);
    }
}

//! `accessCredentials` propagated through the guest agent (upstream: virt-launcher's access
//! credential manager): `sshPublicKey` with `propagationMethod.qemuGuestAgent.users[]` and
//! `userPassword` with `propagationMethod.qemuGuestAgent`. The Secrets are read every
//! [`SYNC_PERIOD`], so a key added to or removed from a Secret reaches the running guest
//! within that time; the outcome is the VMI condition `AccessCredentialsSynchronized`.
//!
//! The VMI comes from each run directory's `launch.json` (its spec does not change while it
//! runs), the guest is only asked once the launcher has heard from its agent, and nothing is
//! sent while the wanted state equals what was last applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::rundir::{self, LauncherPhase, RunDir};

/// How often Secrets are re-read (the manual's "within a minute" for a new key).
const SYNC_PERIOD: Duration = Duration::from_secs(5);

const CONDITION: &str = "AccessCredentialsSynchronized";
const SYNC_SUCCESS: &str = "AccessCredentialsSyncSuccess";
const SYNC_FAILED: &str = "AccessCredentialsSyncFailed";

/// What the guest should have: per user, the keys in `authorized_keys`, and passwords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    keys: BTreeMap<String, BTreeSet<String>>,
    passwords: BTreeMap<String, String>,
}

/// The Secret names the credentials propagated by the guest agent read.
fn secret_names(credentials: &Value) -> BTreeSet<String> {
    credentials
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let (kind, by_agent) = if c["sshPublicKey"].is_object() {
                (
                    "sshPublicKey",
                    c["sshPublicKey"]["propagationMethod"]["qemuGuestAgent"].is_object(),
                )
            } else {
                (
                    "userPassword",
                    c["userPassword"]["propagationMethod"]["qemuGuestAgent"].is_object(),
                )
            };
            by_agent
                .then(|| {
                    c[kind]["source"]["secret"]["secretName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .flatten()
        })
        .collect()
}

/// Public keys in a Secret value: one per line, blank lines and `#` comments skipped.
fn keys_of(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}

/// The wanted state from the VMI's `accessCredentials` and the Secrets' data by name.
///
/// # Errors
/// A message naming the Secret that is missing.
pub(crate) fn wanted(
    credentials: &Value,
    secrets: &HashMap<String, BTreeMap<String, String>>,
) -> Result<Wanted, String> {
    let mut out = Wanted::default();
    for credential in credentials.as_array().into_iter().flatten() {
        let ssh = &credential["sshPublicKey"];
        let password = &credential["userPassword"];
        let (source, agent) = if ssh.is_object() {
            (&ssh["source"], &ssh["propagationMethod"]["qemuGuestAgent"])
        } else {
            (
                &password["source"],
                &password["propagationMethod"]["qemuGuestAgent"],
            )
        };
        if !agent.is_object() {
            continue;
        }
        let name = source["secret"]["secretName"].as_str().unwrap_or_default();
        let data = secrets
            .get(name)
            .ok_or_else(|| format!("Secret {name:?} of the access credentials was not found"))?;
        if ssh.is_object() {
            for user in agent["users"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let keys = out.keys.entry(user.to_owned()).or_default();
                keys.extend(data.values().flat_map(|v| keys_of(v)));
            }
        } else {
            // userPassword Secrets map user names to passwords.
            out.passwords
                .extend(data.iter().map(|(user, pass)| (user.clone(), pass.clone())));
        }
    }
    Ok(out)
}

/// The `control.sock` requests that take the guest from `applied` to `wanted`: every
/// wanted user's keys (the launcher adds present keys idempotently), an empty set for a
/// user no longer managed (removing only what was added), and changed passwords.
pub(crate) fn requests(applied: &Wanted, wanted: &Wanted) -> Vec<Value> {
    let mut out = Vec::new();
    let users: BTreeSet<&String> = wanted.keys.keys().chain(applied.keys.keys()).collect();
    for user in users {
        let keys = wanted.keys.get(user).cloned().unwrap_or_default();
        if applied.keys.get(user) != Some(&keys) {
            out.push(json!({"command": "sshkeys", "user": user, "keys": keys}));
        }
    }
    for (user, password) in &wanted.passwords {
        if applied.passwords.get(user) != Some(password) {
            out.push(json!({"command": "setpassword", "user": user, "password": password}));
        }
    }
    out
}

/// Runs until the process ends.
pub(crate) async fn run(client: kube::Client, data_dir: PathBuf) {
    let mut applied: HashMap<PathBuf, Wanted> = HashMap::new();
    loop {
        let live = sync_all(&client, &data_dir, &mut applied).await;
        applied.retain(|dir, _| live.contains(dir));
        tokio::time::sleep(SYNC_PERIOD).await;
    }
}

/// One pass over the running VMs; returns the run directories still live.
async fn sync_all(
    client: &kube::Client,
    data_dir: &Path,
    applied: &mut HashMap<PathBuf, Wanted>,
) -> BTreeSet<PathBuf> {
    let mut live = BTreeSet::new();
    for (_, dir) in rundir::list(data_dir) {
        let Some(status) = dir.read_status() else {
            continue;
        };
        if !matches!(status.phase, LauncherPhase::Running | LauncherPhase::Paused) {
            continue;
        }
        let Some(vmi) = std::fs::read(dir.file("launch.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|l| l["vmi"].clone())
        else {
            continue;
        };
        let credentials = &vmi["spec"]["accessCredentials"];
        let names = secret_names(credentials);
        // The agent's first answer (the OS info) says it is there to be asked.
        if names.is_empty() || status.guest_os_info.is_none() {
            continue;
        }
        let key = dir.file("control.sock");
        live.insert(key.clone());
        let namespace = vmi["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = vmi["metadata"]["name"].as_str().unwrap_or_default();
        let previous = applied.get(&key).cloned().unwrap_or_default();
        let outcome = sync_one(client, &dir, namespace, credentials, &names, &previous).await;
        let condition = match &outcome {
            Ok(done) => {
                applied.insert(key, done.clone());
                Ok(())
            }
            Err(message) => {
                tracing::warn!(vmi = %format!("{namespace}/{name}"), %message, "access credentials not synchronized");
                Err(message.clone())
            }
        };
        if let Err(error) = set_condition(client, namespace, name, condition).await {
            tracing::debug!(%error, "cannot write the AccessCredentialsSynchronized condition");
        }
    }
    live
}

async fn sync_one(
    client: &kube::Client,
    dir: &RunDir,
    namespace: &str,
    credentials: &Value,
    names: &BTreeSet<String>,
    previous: &Wanted,
) -> Result<Wanted, String> {
    let secrets_api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let mut secrets = HashMap::new();
    for name in names {
        match secrets_api.get_opt(name).await {
            Ok(Some(secret)) => {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                secrets.insert(name.clone(), data);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("cannot read Secret {namespace}/{name}: {e}")),
        }
    }
    let target = wanted(credentials, &secrets)?;
    for request in requests(previous, &target) {
        let reply = crate::endpoint::control::send(dir, &request).await?;
        if reply["ok"] != json!(true) {
            let what = request["command"].as_str().unwrap_or_default();
            let user = request["user"].as_str().unwrap_or_default();
            return Err(format!(
                "{what} for guest user {user}: {}",
                reply["error"].as_str().unwrap_or("the launcher refused")
            ));
        }
    }
    Ok(target)
}

/// Sets the condition on the VMI unless it already says the same.
async fn set_condition(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    outcome: Result<(), String>,
) -> Result<(), kube::Error> {
    let api = crate::realise::vmi_api(client, namespace);
    let vmi = api.get(name).await?;
    let mut value = serde_json::to_value(&vmi).map_err(kube::Error::SerdeError)?;
    let (status, reason, message) = match &outcome {
        Ok(()) => ("True", SYNC_SUCCESS, String::new()),
        Err(message) => ("False", SYNC_FAILED, message.clone()),
    };
    let mut conditions = value["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == CONDITION);
    if current.is_some_and(|c| {
        c["status"] == status && c["reason"] == reason && c["message"] == message.as_str()
    }) {
        return Ok(());
    }
    conditions.retain(|c| c["type"] != CONDITION);
    conditions.push(json!({
        "type": CONDITION, "status": status, "reason": reason, "message": message,
        "lastProbeTime": null, "lastTransitionTime": crate::status::now(),
    }));
    value["status"]["conditions"] = json!(conditions);
    let updated: DynamicObject = serde_json::from_value(value).map_err(kube::Error::SerdeError)?;
    // A conflict with the status sync is retried on the next pass.
    api.replace(name, &PostParams::default(), &updated)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(entries: &[(&str, &[(&str, &str)])]) -> HashMap<String, BTreeMap<String, String>> {
        entries
            .iter()
            .map(|(name, data)| {
                (
                    name.to_string(),
                    data.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    fn credentials() -> Value {
        json!([
            {"sshPublicKey": {"source": {"secret": {"secretName": "keys"}},
                "propagationMethod": {"qemuGuestAgent": {"users": ["root", "tester"]}}}},
            {"sshPublicKey": {"source": {"secret": {"secretName": "boot-keys"}},
                "propagationMethod": {"noCloud": {}}}},
            {"userPassword": {"source": {"secret": {"secretName": "passwords"}},
                "propagationMethod": {"qemuGuestAgent": {}}}},
        ])
    }

    #[test]
    fn only_secrets_propagated_by_the_agent_are_read() {
        let names: Vec<String> = secret_names(&credentials()).into_iter().collect();
        assert_eq!(names, ["keys", "passwords"]);
    }

    #[test]
    fn every_key_line_goes_to_every_user_and_passwords_map_users() {
        let data = secrets(&[
            (
                "keys",
                &[
                    ("a", "ssh-ed25519 AAA a\n\n# old\nssh-rsa BBB b\n"),
                    ("c", "ssh-ed25519 CCC c"),
                ],
            ),
            ("passwords", &[("tester", "s3cret")]),
        ]);
        let w = wanted(&credentials(), &data).expect("all secrets present");
        let root: Vec<&String> = w.keys["root"].iter().collect();
        assert_eq!(
            root,
            ["ssh-ed25519 AAA a", "ssh-ed25519 CCC c", "ssh-rsa BBB b"]
        );
        assert_eq!(w.keys["tester"], w.keys["root"]);
        assert_eq!(w.passwords["tester"], "s3cret");
    }

    #[test]
    fn a_missing_secret_is_named() {
        let error =
            wanted(&credentials(), &secrets(&[("keys", &[])])).expect_err("passwords missing");
        assert!(error.contains("\"passwords\""), "{error}");
    }

    #[test]
    fn only_changes_are_sent_and_dropped_users_are_emptied() {
        let mut before = Wanted::default();
        before.keys.insert("root".into(), ["k1".to_string()].into());
        before.keys.insert("old".into(), ["k1".to_string()].into());
        before.passwords.insert("root".into(), "p".into());
        let mut after = before.clone();
        after.keys.remove("old");
        after.keys.insert("root".into(), ["k2".to_string()].into());
        let sent = requests(&before, &after);
        assert_eq!(
            sent,
            [
                json!({"command": "sshkeys", "user": "old", "keys": []}),
                json!({"command": "sshkeys", "user": "root", "keys": ["k2"]}),
            ]
        );
        assert!(requests(&after, &after).is_empty());
    }
}

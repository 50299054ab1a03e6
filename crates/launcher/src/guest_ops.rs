//! `control.sock` requests carried out by the guest agent: user and filesystem lists,
//! filesystem freeze/thaw (with the automatic thaw upstream's `unfreezeTimeout` asks for),
//! SSH keys and passwords from `accessCredentials`.
//!
//! These run on their own tasks, not on the VM actor: a freeze may take up to a minute
//! while every guest filesystem syncs, and an absent agent costs a sync timeout per call;
//! neither may hold up pause, shutdown or QMP events. The agent client serialises its own
//! commands, so concurrent requests are safe.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxivirt_qmp::agent::GuestAgent;
use tokio::task::JoinHandle;

use crate::control::{Reply, Request, AGENT_NOT_CONNECTED};

/// The guest-agent side of the launcher; shared by the tasks serving requests.
#[derive(Debug)]
pub struct GuestOps {
    agent: Arc<GuestAgent>,
    /// The pending automatic thaw of the last freeze, cancelled by `unfreeze`.
    auto_thaw: Mutex<Option<JoinHandle<()>>>,
    /// Per guest user, the keys this launcher put into `authorized_keys`: only these are
    /// ever removed, so keys from cloud-init or the guest's owner stay.
    managed_keys: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Drop for GuestOps {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.auto_thaw.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }
}

impl GuestOps {
    /// Serves guest-agent requests through `agent`.
    pub fn new(agent: Arc<GuestAgent>) -> Arc<Self> {
        Arc::new(GuestOps {
            agent,
            auto_thaw: Mutex::new(None),
            managed_keys: Mutex::new(HashMap::new()),
        })
    }

    /// Carries out `request`; requests that are not guest-agent ones are refused.
    pub async fn run(self: Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Userlist => match self.agent.execute("guest-get-users", None).await {
                Ok(users) => with_data(users),
                Err(error) => failure(&error),
            },
            Request::Filesystemlist => match self.agent.execute("guest-get-fsinfo", None).await {
                Ok(filesystems) => with_data(filesystems),
                Err(error) => failure(&error),
            },
            Request::Interfaces => {
                match self
                    .agent
                    .execute("guest-network-get-interfaces", None)
                    .await
                {
                    Ok(interfaces) => with_data(interfaces),
                    Err(error) => failure(&error),
                }
            }
            Request::Guestinfo => match self.agent.execute("guest-info", None).await {
                Ok(info) => with_data(info),
                Err(error) => failure(&error),
            },
            Request::Freeze {
                unfreeze_timeout_seconds,
            } => self.freeze(unfreeze_timeout_seconds.unwrap_or(0)).await,
            Request::Unfreeze => {
                self.cancel_auto_thaw();
                match self.agent.fsfreeze_thaw().await {
                    Ok(_) => Reply::ok(),
                    Err(error) => failure(&error),
                }
            }
            Request::Sshkeys { user, keys } => self.set_keys(&user, keys).await,
            Request::Setpassword { user, password } => {
                match self.agent.set_user_password(&user, &password, false).await {
                    Ok(()) => Reply::ok(),
                    Err(error) => failure(&error),
                }
            }
            other => Reply::error(format!("{other:?} is not a guest agent request")),
        }
    }

    async fn freeze(self: &Arc<Self>, unfreeze_after: u64) -> Reply {
        self.cancel_auto_thaw();
        if let Err(error) = self.agent.fsfreeze_freeze().await {
            return failure(&error);
        }
        if unfreeze_after > 0 {
            let agent = self.agent.clone();
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(unfreeze_after)).await;
                tracing::warn!(
                    unfreeze_after,
                    "no unfreeze came in time: thawing the guest"
                );
                if let Err(error) = agent.fsfreeze_thaw().await {
                    tracing::warn!(%error, "automatic thaw failed");
                }
            });
            if let Ok(mut slot) = self.auto_thaw.lock() {
                *slot = Some(task);
            }
        }
        Reply::ok()
    }

    fn cancel_auto_thaw(&self) {
        if let Ok(mut slot) = self.auto_thaw.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }

    /// Adds `keys` for `user` and removes the keys this launcher added before that are no
    /// longer wanted.
    async fn set_keys(&self, user: &str, keys: Vec<String>) -> Reply {
        let wanted: BTreeSet<String> = keys
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        let previous = self
            .managed_keys
            .lock()
            .map(|m| m.get(user).cloned().unwrap_or_default())
            .unwrap_or_default();
        let (add, remove) = key_changes(&previous, &wanted);
        if !remove.is_empty() {
            if let Err(error) = self.agent.ssh_remove_authorized_keys(user, &remove).await {
                return failure(&error);
            }
        }
        if !add.is_empty() {
            // Adding keys already present is a no-op for the agent, so after a launcher
            // restart (empty memory) the whole set is simply added again.
            if let Err(error) = self.agent.ssh_add_authorized_keys(user, &add, false).await {
                return failure(&error);
            }
        }
        if let Ok(mut managed) = self.managed_keys.lock() {
            managed.insert(user.to_owned(), wanted);
        }
        Reply::ok()
    }
}

/// The keys to add (all wanted ones: the agent skips present keys, and a guest user may
/// have deleted one) and those to remove (added before, not wanted now).
fn key_changes(
    previous: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let add = wanted.iter().cloned().collect();
    let remove = previous.difference(wanted).cloned().collect();
    (add, remove)
}

fn with_data(data: serde_json::Value) -> Reply {
    Reply {
        data: Some(data),
        ..Reply::ok()
    }
}

/// A failed agent command; an agent that cannot be reached or does not answer is reported
/// as [`AGENT_NOT_CONNECTED`] so the node agent can answer upstream's conflict.
fn failure(error: &oxivirt_qmp::Error) -> Reply {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let not_connected = matches!(
        error,
        oxivirt_qmp::Error::Timeout { .. }
            | oxivirt_qmp::Error::Connect { .. }
            | oxivirt_qmp::Error::Closed { .. }
    );
    Reply {
        reason: not_connected.then(|| AGENT_NOT_CONNECTED.to_owned()),
        ..Reply::error(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn only_keys_added_before_are_removed() {
        let (add, remove) = key_changes(
            &set(&["ssh-ed25519 A", "ssh-ed25519 B"]),
            &set(&["ssh-ed25519 B", "ssh-ed25519 C"]),
        );
        assert_eq!(add, ["ssh-ed25519 B", "ssh-ed25519 C"]);
        assert_eq!(remove, ["ssh-ed25519 A"]);
    }

    #[test]
    fn an_unreachable_agent_is_reported_as_not_connected() {
        let timeout = oxivirt_qmp::Error::Timeout {
            command: "guest-get-users".into(),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(
            failure(&timeout).reason.as_deref(),
            Some(AGENT_NOT_CONNECTED)
        );
        let refused = oxivirt_qmp::Error::Command {
            command: "guest-fsfreeze-freeze".into(),
            class: "GenericError".into(),
            desc: "busy".into(),
        };
        let reply = failure(&refused);
        assert_eq!(reply.reason, None);
        assert!(reply.error.unwrap_or_default().contains("busy"));
    }

    #[tokio::test]
    async fn a_query_without_an_agent_says_not_connected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = GuestAgent::new(
            dir.path().join("qga.sock"),
            oxivirt_qmp::agent::AgentOptions::default(),
        );
        let reply = GuestOps::new(Arc::new(agent)).run(Request::Userlist).await;
        assert!(!reply.ok);
        assert_eq!(reply.reason.as_deref(), Some(AGENT_NOT_CONNECTED));
    }
}

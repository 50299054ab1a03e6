//! The guest-agent subresources of a VMI (upstream: virt-handler's `userlist`,
//! `filesystemlist`, `freeze`, `unfreeze`): each is one `control.sock` request to the
//! launcher, which asks the guest agent live.

use http::StatusCode;
use serde_json::{json, Value};

use super::{control, error, full, Body};
use crate::rundir::RunDir;

/// Upstream's conflict message when the guest agent is not there.
pub(super) const NOT_CONNECTED: &str = "VMI does not have guest agent connected";

/// The launcher's `reason` for an agent that does not answer (`oxivirt_launcher::control`).
const AGENT_NOT_CONNECTED: &str = "AgentNotConnected";

/// `GET …/userlist` and `…/filesystemlist`.
pub(super) async fn list(dir: &RunDir, which: &str) -> http::Response<Body> {
    let (command, convert): (&str, fn(&Value) -> Value) = match which {
        "userlist" => ("userlist", crate::guest_info::user_list),
        _ => ("filesystemlist", crate::guest_info::filesystem_list),
    };
    match ask(dir, &json!({"command": command})).await {
        Ok(reply) => full(
            StatusCode::OK,
            "application/json",
            convert(&reply["data"]).to_string(),
        ),
        Err(response) => response,
    }
}

/// `PUT …/freeze?unfreezeTimeoutSeconds=N` and `PUT …/unfreeze`.
pub(super) async fn freeze(dir: &RunDir, verb: &str, query: Option<&str>) -> http::Response<Body> {
    let request = if verb == "freeze" {
        json!({"command": "freeze", "unfreezeTimeoutSeconds": unfreeze_timeout(query)})
    } else {
        json!({"command": "unfreeze"})
    };
    match ask(dir, &request).await {
        Ok(_) => full(StatusCode::OK, "application/json", "{\"ok\":true}"),
        Err(response) => response,
    }
}

/// `unfreezeTimeoutSeconds` of the query; 0 (no automatic thaw) when absent.
fn unfreeze_timeout(query: Option<&str>) -> u64 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("unfreezeTimeoutSeconds="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` to the launcher; a refusal becomes the response to give: 409 with
/// upstream's words when the agent is not connected, 409 with the agent's words when it
/// refused, 503 when
/// the launcher cannot be reached.
async fn ask(dir: &RunDir, request: &Value) -> Result<Value, http::Response<Body>> {
    match control::send(dir, request).await {
        Ok(reply) if reply["ok"] == json!(true) => Ok(reply),
        Ok(reply) if reply["reason"] == AGENT_NOT_CONNECTED => {
            Err(error(StatusCode::CONFLICT, NOT_CONNECTED))
        }
        // The guest refused (a frozen guest refuses most commands, a disabled command):
        // its state, not the request, is at fault, and the user must see the agent's words.
        Ok(reply) => Err(error(
            StatusCode::CONFLICT,
            format!(
                "the guest agent failed: {}",
                reply["error"].as_str().unwrap_or("no reason given")
            ),
        )),
        Err(message) => Err(error(StatusCode::SERVICE_UNAVAILABLE, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unfreeze_timeout_comes_from_the_query() {
        assert_eq!(unfreeze_timeout(Some("unfreezeTimeoutSeconds=300")), 300);
        assert_eq!(
            unfreeze_timeout(Some("dryRun=All&unfreezeTimeoutSeconds=5")),
            5
        );
        assert_eq!(unfreeze_timeout(None), 0);
        assert_eq!(unfreeze_timeout(Some("unfreezeTimeoutSeconds=x")), 0);
    }
}

//! VMI subresources served by the node agent of the VMI's node (upstream: virt-api proxying
//! to virt-handler): `pause`, `unpause`, `softreboot`, `reset`, `guestosinfo`, the guest
//! agent's `userlist`, `filesystemlist`, `freeze` and `unfreeze`, and the
//! websocket streams `console`, `vnc` and `portforward/{port}[/{protocol}]` (also on VMs).
//!
//! Websockets speak upstream's `plain.kubevirt.io` subprotocol: binary messages carry the raw
//! byte stream both ways. The agent side is a raw upgraded HTTP connection.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::node_relay::agent_refusal;
use crate::service::Api;

/// The websocket subprotocol of KubeVirt's streams.
pub const PLAIN_SUBPROTOCOL: &str = "plain.kubevirt.io";

/// A VM command relayed to the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Unpause,
    SoftReboot,
    Reset,
}

impl Command {
    pub fn parse(verb: &str) -> Option<Self> {
        Some(match verb {
            "pause" => Command::Pause,
            "unpause" => Command::Unpause,
            "softreboot" => Command::SoftReboot,
            "reset" => Command::Reset,
            _ => return None,
        })
    }

    fn verb(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Unpause => "unpause",
            Command::SoftReboot => "softreboot",
            Command::Reset => "reset",
        }
    }
}

fn conflict(name: &str, detail: &str) -> ApiError {
    ApiError::conflict("kubevirt.io", "virtualmachineinstance", name, detail)
}

async fn vmi(api: &Api, ns: &str, name: &str) -> ApiResult<Value> {
    let info = api
        .registry
        .by_group_resource("kubevirt.io", "virtualmachineinstances")
        .ok_or_else(|| ApiError::not_found("kubevirt.io", "virtualmachineinstances", name))?;
    api.get(&info, ns, name, "v1").await
}

fn is_paused(vmi: &Value) -> bool {
    vmi["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Paused" && c["status"] == "True")
    })
}

/// The node of a running VMI, or why there is none.
fn running_node(vmi: &Value, name: &str) -> ApiResult<String> {
    if vmi["status"]["phase"] != "Running" {
        return Err(conflict(name, "VMI is not running"));
    }
    vmi["status"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| conflict(name, "VMI is not running on a node"))
}

fn agent_path(ns: &str, name: &str, rest: &str) -> String {
    format!("/v1/namespaces/{ns}/virtualmachineinstances/{name}/{rest}")
}

/// `PUT …/virtualmachineinstances/{name}/{pause,unpause,softreboot,reset}`.
///
/// # Errors
/// 404 for a missing VMI, 409 when the VMI's state does not allow the command (upstream's
/// messages), 503 when the node agent cannot be reached.
pub async fn command(
    api: &Api,
    ns: &str,
    name: &str,
    command: Command,
    dry_run: bool,
) -> ApiResult<()> {
    let vmi = vmi(api, ns, name).await?;
    let node = running_node(&vmi, name)?;
    // Whether the VM is paused is checked by the agent against the launcher's own state:
    // the VMI's Paused condition lags a command by one status sync.
    let path = agent_path(ns, name, command.verb());
    let path = if dry_run {
        format!("{path}?dryRun=All")
    } else {
        path
    };
    let (status, body) = crate::node_relay::of(api)?
        .call(api, &node, Method::PUT, &path)
        .await?;
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::CONFLICT => Err(conflict(name, &crate::node_relay::agent_message(&body))),
        s => Err(agent_refusal(s, &body)),
    }
}

/// `GET …/virtualmachineinstances/{name}/guestosinfo`.
///
/// # Errors
/// As [`command`]; 409 when no guest agent has reported.
pub async fn guest_os_info(api: &Api, ns: &str, name: &str) -> ApiResult<Response> {
    let vmi = vmi(api, ns, name).await?;
    let node = running_node(&vmi, name)?;
    let (status, body) = crate::node_relay::of(api)?
        .call(
            api,
            &node,
            Method::GET,
            &agent_path(ns, name, "guestosinfo"),
        )
        .await?;
    if !status.is_success() {
        return Err(agent_refusal(status, &body));
    }
    let info: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Internal(format!("the agent's guest OS info: {e}")))?;
    Ok(json_response(StatusCode::OK, &info, vec![]))
}

/// `GET …/virtualmachineinstances/{name}/vnc/screenshot[?moveCursor=true]`: a PNG of the
/// guest's screen, taken by the node agent over the VM's VNC display.
///
/// # Errors
/// 404 for a missing VMI, 400 without a graphics device, 409 when it is not running, 503
/// when the agent or the display cannot be reached.
pub async fn screenshot(api: &Api, ns: &str, name: &str, move_cursor: bool) -> ApiResult<Response> {
    let vmi = vmi(api, ns, name).await?;
    if vmi["spec"]["domain"]["devices"]["autoattachGraphicsDevice"] == Value::Bool(false) {
        return Err(ApiError::BadRequest(
            "No graphics devices are present.".into(),
        ));
    }
    let node = running_node(&vmi, name)?;
    let rest = if move_cursor {
        "vnc/screenshot?moveCursor=true"
    } else {
        "vnc/screenshot"
    };
    let (status, body) = crate::node_relay::of(api)?
        .call(api, &node, Method::GET, &agent_path(ns, name, rest))
        .await?;
    if !status.is_success() {
        return Err(agent_refusal(status, &body));
    }
    Ok(([(http::header::CONTENT_TYPE, "image/png")], body).into_response())
}

/// Upstream's conflict when a guest-agent subresource meets a VMI without an agent.
const NO_AGENT: &str = "VMI does not have guest agent connected";

fn agent_connected(vmi: &Value) -> bool {
    vmi["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "AgentConnected" && c["status"] == "True")
    })
}

/// `GET …/virtualmachineinstances/{name}/{userlist,filesystemlist}`: the guest agent's
/// answer, asked live, as `VirtualMachineInstanceGuestOSUserList` /
/// `VirtualMachineInstanceFileSystemList`.
///
/// # Errors
/// 404 for a missing VMI, 409 when it is not running or has no guest agent connected
/// (upstream's messages), 503 when the node agent cannot be reached.
pub async fn guest_list(api: &Api, ns: &str, name: &str, which: &str) -> ApiResult<Response> {
    let vmi = vmi(api, ns, name).await?;
    let node = running_node(&vmi, name)?;
    if !agent_connected(&vmi) {
        return Err(conflict(name, NO_AGENT));
    }
    let (status, body) = crate::node_relay::of(api)?
        .call(api, &node, Method::GET, &agent_path(ns, name, which))
        .await?;
    match status {
        s if s.is_success() => {
            let list: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Internal(format!("the agent's {which}: {e}")))?;
            Ok(json_response(StatusCode::OK, &list, vec![]))
        }
        StatusCode::CONFLICT => Err(conflict(name, &crate::node_relay::agent_message(&body))),
        s => Err(agent_refusal(s, &body)),
    }
}

/// `PUT …/freeze` (`unfreeze_after` from `unfreezeTimeout`) or, with `None`, `…/unfreeze`.
///
/// # Errors
/// As [`guest_list`]; 409 with the agent's words when the guest agent refuses.
pub async fn freeze(
    api: &Api,
    ns: &str,
    name: &str,
    unfreeze_after: Option<std::time::Duration>,
) -> ApiResult<()> {
    let vmi = vmi(api, ns, name).await?;
    let node = running_node(&vmi, name)?;
    let path = match unfreeze_after {
        // Rounded up: a timeout under a second must still thaw, not mean "never".
        Some(after) => {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            agent_path(
                ns,
                name,
                &format!("freeze?unfreezeTimeoutSeconds={seconds}"),
            )
        }
        None => agent_path(ns, name, "unfreeze"),
    };
    let (status, body) = crate::node_relay::of(api)?
        .call(api, &node, Method::PUT, &path)
        .await?;
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::CONFLICT => Err(conflict(name, &crate::node_relay::agent_message(&body))),
        s => Err(agent_refusal(s, &body)),
    }
}

/// `unfreezeTimeout` of a freeze request body (`v1.FreezeUnfreezeTimeout`, a Go duration
/// such as `"5m0s"`), with upstream's refusals.
///
/// # Errors
/// 400 when the body is not JSON, the timeout is missing, malformed or negative.
pub fn unfreeze_timeout(body: &[u8]) -> ApiResult<std::time::Duration> {
    let options: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "Can not unmarshal Request body to struct, error: {e}"
        ))
    })?;
    let text = match &options["unfreezeTimeout"] {
        Value::String(text) => text.clone(),
        Value::Null => {
            return Err(ApiError::BadRequest(
                "Unfreeze timeout must be specified".into(),
            ))
        }
        other => other.to_string(),
    };
    if text.trim_start().starts_with('-') {
        return Err(ApiError::BadRequest(
            "Unfreeze timeout must be positive".into(),
        ));
    }
    go_duration(&text)
        .ok_or_else(|| ApiError::BadRequest(format!("time: invalid duration {text:?}")))
}

/// A Go `time.Duration` string (`1h2m3.5s`, `300ms`, `0`), as `time.ParseDuration` reads it.
pub(crate) fn go_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim().trim_start_matches('+');
    if text == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut rest = text;
    let mut nanos = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += value * scale;
        rest = &rest[unit_end..];
    }
    Some(std::time::Duration::from_nanos(nanos as u64))
}

/// Which stream a websocket request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    Console,
    Vnc,
    PortForward { port: u16, protocol: String },
}

/// Opens `stream` of VMI `ns/name` on its node and answers the websocket handshake.
///
/// # Errors
/// 400 for a request that is not a websocket upgrade or a VMI without that device, 404 for a
/// missing VMI, 409 when it is not running (or paused, for port-forward), 503 when the
/// agent cannot be reached.
pub async fn open(
    api: Arc<Api>,
    req: Request,
    ns: &str,
    name: &str,
    stream: Stream,
) -> ApiResult<Response> {
    let (mut parts, _body) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| {
            ApiError::BadRequest(format!("this subresource needs a websocket upgrade: {e}"))
        })?;
    let vmi = vmi(&api, ns, name).await?;
    let devices = &vmi["spec"]["domain"]["devices"];
    match &stream {
        Stream::Console if devices["autoattachSerialConsole"] == Value::Bool(false) => {
            return Err(ApiError::BadRequest(
                "No serial consoles are present.".into(),
            ))
        }
        Stream::Vnc if devices["autoattachGraphicsDevice"] == Value::Bool(false) => {
            return Err(ApiError::BadRequest(
                "No graphics devices are present.".into(),
            ))
        }
        Stream::PortForward { .. } if is_paused(&vmi) => {
            return Err(conflict(name, "VMI is paused"))
        }
        _ => {}
    }
    if vmi["status"]["phase"] == "Failed" {
        return Err(conflict(name, "VMI is in failed status"));
    }
    let node = running_node(&vmi, name)?;
    let rest = match &stream {
        Stream::Console => "console".to_string(),
        Stream::Vnc => "vnc".to_string(),
        Stream::PortForward { port, protocol } => format!("portforward/{port}/{protocol}"),
    };
    let datagrams = matches!(&stream, Stream::PortForward { protocol, .. } if protocol == "udp");
    let agent = crate::node_relay::of(&api)?
        .open_stream(&api, &node, &agent_path(ns, name, &rest))
        .await?;
    Ok(upgrade
        .protocols([PLAIN_SUBPROTOCOL])
        .on_upgrade(move |socket| async move {
            if datagrams {
                bridge_datagrams(socket, agent).await
            } else {
                bridge(socket, agent).await
            }
        })
        .into_response())
}

/// UDP port-forward: one websocket message is one datagram, as upstream. The agent hop is a
/// byte stream, so there each datagram travels as a 2-byte big-endian length and its bytes.
async fn bridge_datagrams(socket: WebSocket, agent: Upgraded) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut agent_rx, mut agent_tx) = tokio::io::split(TokioIo::new(agent));
    let to_agent = async {
        while let Some(Ok(message)) = ws_rx.next().await {
            let bytes = match message {
                Message::Binary(b) => b,
                Message::Text(t) => bytes::Bytes::copy_from_slice(t.as_str().as_bytes()),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            // A datagram cannot be longer than 65535 bytes; longer messages are cut.
            let len = bytes.len().min(usize::from(u16::MAX));
            let mut frame = Vec::with_capacity(len + 2);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
            frame.extend_from_slice(&bytes[..len]);
            if agent_tx.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = agent_tx.shutdown().await;
    };
    let from_agent = async {
        let mut buffer = vec![0u8; usize::from(u16::MAX)];
        loop {
            let Ok(len) = agent_rx.read_u16().await else {
                break;
            };
            let datagram = &mut buffer[..usize::from(len)];
            if agent_rx.read_exact(datagram).await.is_err() {
                break;
            }
            let chunk = bytes::Bytes::copy_from_slice(datagram);
            if ws_tx.send(Message::Binary(chunk)).await.is_err() {
                break;
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = to_agent => {}
        () = from_agent => {}
    }
}

/// Copies websocket messages to the agent stream and the stream's bytes back as binary
/// messages, until either side closes.
async fn bridge(socket: WebSocket, agent: Upgraded) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut agent_rx, mut agent_tx) = tokio::io::split(TokioIo::new(agent));
    let to_agent = async {
        while let Some(Ok(message)) = ws_rx.next().await {
            let bytes = match message {
                Message::Binary(b) => b,
                Message::Text(t) => bytes::Bytes::copy_from_slice(t.as_str().as_bytes()),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if agent_tx.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = agent_tx.shutdown().await;
    };
    let from_agent = async {
        // As large as the agent's own copy buffer, so one read is usually one message.
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match agent_rx.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
                    if ws_tx.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = to_agent => {}
        () = from_agent => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unfreeze_timeouts_read_as_go_durations() {
        assert_eq!(
            unfreeze_timeout(br#"{"unfreezeTimeout":"5m0s"}"#).ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            unfreeze_timeout(br#"{"unfreezeTimeout":"1h2m3.5s"}"#).ok(),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(
            unfreeze_timeout(br#"{"unfreezeTimeout":"0"}"#).ok(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            unfreeze_timeout(br#"{"unfreezeTimeout":"250ms"}"#).ok(),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn a_missing_negative_or_bad_timeout_is_refused() {
        for body in [
            &br#"{}"#[..],
            br#"{"unfreezeTimeout":"-1s"}"#,
            br#"{"unfreezeTimeout":"5 minutes"}"#,
            b"nope",
        ] {
            assert!(
                matches!(unfreeze_timeout(body), Err(ApiError::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

//! VMI subresources served by the node agent of the VMI's node (upstream: virt-api proxying
//! to virt-handler): `pause`, `unpause`, `softreboot`, `reset`, `guestosinfo`, and the
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
    vmi["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Paused" && c["status"] == "True"))
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

fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

fn relay(api: &Api) -> ApiResult<&crate::node_relay::NodeRelay> {
    api.node_relay
        .get()
        .ok_or_else(|| ApiError::ServiceUnavailable("this API server has no node relay".into()))
}

fn agent_path(ns: &str, name: &str, rest: &str) -> String {
    format!("/v1/namespaces/{ns}/virtualmachineinstances/{name}/{rest}")
}

/// `PUT …/virtualmachineinstances/{name}/{pause,unpause,softreboot,reset}`.
///
/// # Errors
/// 404 for a missing VMI, 409 when the VMI's state does not allow the command (upstream's
/// messages), 503 when the node agent cannot be reached.
pub async fn command(api: &Api, ns: &str, name: &str, command: Command, dry_run: bool) -> ApiResult<()> {
    let vmi = vmi(api, ns, name).await?;
    let node = running_node(&vmi, name)?;
    // Whether the VM is paused is checked by the agent against the launcher's own state:
    // the VMI's Paused condition lags a command by one status sync.
    let path = agent_path(ns, name, command.verb());
    let path = if dry_run { format!("{path}?dryRun=All") } else { path };
    let (status, body) = relay(api)?.call(api, &node, Method::PUT, &path).await?;
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::CONFLICT => Err(conflict(name, &refusal_message(&body))),
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
    let (status, body) = relay(api)?
        .call(api, &node, Method::GET, &agent_path(ns, name, "guestosinfo"))
        .await?;
    if !status.is_success() {
        return Err(agent_refusal(status, &body));
    }
    let info: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Internal(format!("the agent's guest OS info: {e}")))?;
    Ok(json_response(StatusCode::OK, &info, vec![]))
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
pub async fn open(api: Arc<Api>, req: Request, ns: &str, name: &str, stream: Stream) -> ApiResult<Response> {
    let (mut parts, _body) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("this subresource needs a websocket upgrade: {e}")))?;
    let vmi = vmi(&api, ns, name).await?;
    let devices = &vmi["spec"]["domain"]["devices"];
    match &stream {
        Stream::Console if devices["autoattachSerialConsole"] == Value::Bool(false) => {
            return Err(ApiError::BadRequest("No serial consoles are present.".into()))
        }
        Stream::Vnc if devices["autoattachGraphicsDevice"] == Value::Bool(false) => {
            return Err(ApiError::BadRequest("No graphics devices are present.".into()))
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
    let agent = relay(&api)?.open_stream(&api, &node, &agent_path(ns, name, &rest)).await?;
    Ok(upgrade
        .protocols([PLAIN_SUBPROTOCOL])
        .on_upgrade(move |socket| bridge(socket, agent))
        .into_response())
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
        let mut buffer = vec![0u8; 32 << 10];
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

//! The websocket streams of `subresources.kubevirt.io` (console, vnc, portforward), as
//! upstream's virtctl opens them: a GET upgraded to a websocket with the subprotocol
//! `plain.kubevirt.io`, whose binary messages carry the raw byte stream both ways.
//!
//! The upgrade goes through the kube-rs client, so every credential a kubeconfig can hold
//! (tokens, client certificates, exec plugins, impersonation) works as for any request.

use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::client::ClientError;
use crate::error::Error;

/// The subprotocol of KubeVirt's streams.
pub const PLAIN_SUBPROTOCOL: &str = "plain.kubevirt.io";

/// An open stream to the API server.
pub type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a stream could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The server answered with an error status: its code and `Status.message`.
    Refused { code: u16, message: String },
    /// The request did not get an answer (or not a websocket).
    Failed(Error),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Refused { message, .. } => Error::Refused(message),
            OpenError::Failed(e) => e,
        }
    }
}

/// The path of a VMI or VM stream subresource, e.g. `console` or `portforward/22/tcp`.
pub fn path(kind: Kind, namespace: &str, name: &str, subresource: &str) -> String {
    let plural = match kind {
        Kind::Vm => "virtualmachines",
        Kind::Vmi => "virtualmachineinstances",
    };
    format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/{plural}/{name}/{subresource}"
    )
}

/// Which object a stream is opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vm,
    Vmi,
}

/// Opens the websocket at `path_and_query`.
///
/// # Errors
/// [`OpenError::Refused`] with the server's message for an error status;
/// [`OpenError::Failed`] when the server is unreachable or does not switch protocols.
pub async fn open(client: &kube::Client, path_and_query: &str) -> Result<Stream, OpenError> {
    let key = generate_key();
    let failed = |source: kube::Error| {
        OpenError::Failed(Error::Api {
            action: format!("cannot open the stream {path_and_query}"),
            source: ClientError::Request {
                path: path_and_query.to_owned(),
                source,
            },
        })
    };
    let request = http::Request::get(path_and_query)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, &key)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, PLAIN_SUBPROTOCOL)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| failed(kube::Error::HttpError(e)))?;
    let response = client.send(request).await.map_err(failed)?;
    let status = response.status();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        return Err(OpenError::Refused {
            code: status.as_u16(),
            message: status_message(status, &body),
        });
    }
    let accept = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept != derive_accept_key(key.as_bytes()) {
        return Err(OpenError::Failed(Error::Invalid(format!(
            "the server's websocket handshake for {path_and_query} does not match the request"
        ))));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
        OpenError::Failed(Error::Local {
            action: format!("cannot take over the connection of {path_and_query}"),
            source: std::io::Error::other(e),
        })
    })?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

/// `GET path_and_query` for a binary answer (the VNC screenshot's PNG).
///
/// # Errors
/// As [`open`]: the server's message for an error status, else the transport failure.
pub async fn get_bytes(client: &kube::Client, path_and_query: &str) -> Result<Vec<u8>, OpenError> {
    let failed = |source: kube::Error| {
        OpenError::Failed(Error::Api {
            action: format!("cannot get {path_and_query}"),
            source: ClientError::Request {
                path: path_and_query.to_owned(),
                source,
            },
        })
    };
    let request = http::Request::get(path_and_query)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| failed(kube::Error::HttpError(e)))?;
    let response = client.send(request).await.map_err(failed)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| failed(kube::Error::Service(Box::new(e))))?;
    if !status.is_success() {
        return Err(OpenError::Refused {
            code: status.as_u16(),
            message: status_message(status, &body),
        });
    }
    Ok(body.to_vec())
}

/// `Status.message` of an error body, else the body as text, else the HTTP reason.
fn status_message(status: http::StatusCode, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str())
    {
        return message.to_owned();
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() {
        format!("the server answered {status}")
    } else {
        text
    }
}

/// How a pumped stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The local side reached end of input (and the server then closed).
    Local,
    /// The server closed the stream (or the connection dropped) first.
    Remote,
}

/// Copies `local_in` to the stream and the stream to `local_out` until the server closes.
/// When `local_in` ends first, a close frame is sent and the server's remaining output is
/// still delivered, so nothing the guest sent before the close is lost.
///
/// # Errors
/// Local I/O failures; a broken connection to the server counts as [`Ended::Remote`].
pub async fn pump(
    stream: Stream,
    mut local_in: impl AsyncRead + Unpin,
    mut local_out: impl AsyncWrite + Unpin,
) -> std::io::Result<Ended> {
    let (mut sink, mut source) = stream.split();
    let mut buf = vec![0u8; 64 * 1024];
    let mut input_open = true;
    let mut ended = Ended::Remote;
    loop {
        tokio::select! {
            read = local_in.read(&mut buf), if input_open => {
                let n = read?;
                if n == 0 {
                    input_open = false;
                    ended = Ended::Local;
                    // The server answers with its own close; keep reading until then.
                    if sink.send(Message::Close(None)).await.is_err() {
                        break;
                    }
                    continue;
                }
                let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                if sink.send(Message::Binary(data)).await.is_err() {
                    break;
                }
            }
            message = source.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    local_out.write_all(&data).await?;
                    local_out.flush().await?;
                }
                Some(Ok(Message::Text(text))) => {
                    local_out.write_all(text.as_bytes()).await?;
                    local_out.flush().await?;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    Ok(ended)
}

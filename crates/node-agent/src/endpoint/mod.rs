//! The agent's HTTPS endpoint (upstream: virt-handler's internal API and the kubelet's log
//! endpoint): the API server relays consoles, VNC, port-forward, VM commands and container
//! logs of this node's VMs through it.
//!
//! Mutual TLS both ways: the agent serves a self-signed certificate it publishes in the Node
//! annotation [`AGENT_CERTIFICATE_ANNOTATION`] (the API server pins it), and accepts only the
//! API server's relay certificate, issued by the cluster CA. Paths follow virt-handler's:
//!
//! | method | path | what |
//! |---|---|---|
//! | PUT | `/v1/namespaces/{ns}/virtualmachineinstances/{name}/{pause,unpause,reset,softreboot}` | command to the launcher |
//! | GET | `…/{name}/{console,vnc}` | upgrade to a raw stream to the launcher's socket |
//! | GET | `…/{name}/portforward/{port}[/tcp\|/udp]` | upgrade to a raw stream to the Pod's port (UDP: length-framed datagrams) |
//! | GET | `…/{name}/vnc/screenshot[?moveCursor=true]` | PNG of the screen, read over `vnc.sock` |
//! | GET | `…/{name}/guestosinfo` | what the guest agent reported |
//! | GET | `…/{name}/{userlist,filesystemlist}` | asked of the guest agent live |
//! | PUT | `…/{name}/freeze[?unfreezeTimeoutSeconds=N]`, `…/{name}/unfreeze` | guest filesystem freeze |
//! | PUT | `…/{name}/memorydump?claimName=&fileName=&vm=` | guest memory dump into a claim |
//! | GET | `/containerLogs/{ns}/{pod}/{container}` | `compute` / `guest-console-log` logs |
//! | GET | `/cdiUpload/{pod uid}` | upgrade to a raw stream to a CDI upload worker's server |
//!
//! [`AGENT_CERTIFICATE_ANNOTATION`]: oxivirt_api::well_known::AGENT_CERTIFICATE_ANNOTATION

pub(crate) mod control;
mod guest;
mod locate;
mod logs;
mod screenshot;
mod streams;
pub mod tls;
mod udp;
mod worker_logs;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use oxivirt_api::well_known::AGENT_STREAM_UPGRADE;
use serde_json::json;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, std::io::Error>;

/// The bound (not yet serving) endpoint.
pub(crate) struct Endpoint {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    /// The port the Node advertises in `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub(crate) port: u16,
    /// The serving certificate the Node advertises.
    pub(crate) cert_pem: String,
}

/// What requests need.
pub(crate) struct State {
    pub(crate) data_dir: PathBuf,
    pub(crate) client: kube::Client,
    sessions: streams::Sessions,
}

impl State {
    pub(crate) fn new(data_dir: PathBuf, client: kube::Client) -> Self {
        State {
            data_dir,
            client,
            sessions: streams::Sessions::default(),
        }
    }
}

/// Binds `listen` (port 0 = any free port) with a fresh serving certificate.
///
/// # Errors
/// When the address cannot be bound or the TLS configuration cannot be made.
pub(crate) async fn bind(
    listen: &str,
    node: &str,
    ips: &[String],
    cluster_ca: &[Vec<u8>],
) -> anyhow::Result<Endpoint> {
    let tls = tls::serving(node, ips, cluster_ca)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the agent endpoint: {e}"))?;
    let port = listener.local_addr()?.port();
    Ok(Endpoint {
        listener,
        acceptor: tokio_rustls::TlsAcceptor::from(tls.config),
        port,
        cert_pem: tls.cert_pem,
    })
}

/// Serves until the process ends.
pub(crate) async fn serve(endpoint: Endpoint, state: Arc<State>) {
    loop {
        let (tcp, peer) = match endpoint.listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "agent endpoint accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = endpoint.acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%peer, %error, "agent endpoint TLS handshake failed");
                    return;
                }
            };
            let trusted =
                tls::is_api_server(tls.get_ref().1.peer_certificates().and_then(|c| c.first()));
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move {
                    if !trusted {
                        return Ok::<_, Infallible>(error(
                            StatusCode::FORBIDDEN,
                            "only the API server may use the node agent's endpoint",
                        ));
                    }
                    Ok(handle(state, req).await)
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%peer, %error, "agent endpoint connection ended with an error");
            }
        });
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    full(
        status,
        "application/json",
        json!({"message": message.into()}).to_string(),
    )
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["healthz"]) => full(StatusCode::OK, "text/plain", "ok"),
        (Method::GET, ["cdiUpload", pod_uid]) => upload_stream(req, &state, pod_uid).await,
        (Method::GET, ["containerLogs", ns, pod, container]) => {
            container_logs(&state, ns, pod, container, req.uri().query()).await
        }
        (method, ["v1", "namespaces", ns, "virtualmachineinstances", name, rest @ ..]) => {
            let Some(dir) = locate::vmi_run_dir(&state.data_dir, ns, name) else {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("VirtualMachineInstance {ns}/{name} does not run on this node"),
                );
            };
            match (method, rest) {
                (Method::PUT, [command @ ("pause" | "unpause" | "reset" | "softreboot")]) => {
                    let paused = dir
                        .read_status()
                        .is_some_and(|s| s.phase == crate::rundir::LauncherPhase::Paused);
                    let refusal = match (*command, paused) {
                        ("pause", true) => Some("VMI is already paused"),
                        ("unpause", false) => Some("VMI is not paused"),
                        ("softreboot", true) => Some("VMI is paused"),
                        _ => None,
                    };
                    if let Some(message) = refusal {
                        return error(StatusCode::CONFLICT, message);
                    }
                    if req.uri().query().is_some_and(|q| q.contains("dryRun=All")) {
                        return full(StatusCode::OK, "application/json", "{\"ok\":true}");
                    }
                    match control::send(&dir, &json!({"command": command})).await {
                        Ok(reply) if reply["ok"] == json!(true) => {
                            full(StatusCode::OK, "application/json", reply.to_string())
                        }
                        Ok(reply) => error(
                            StatusCode::CONFLICT,
                            reply["error"]
                                .as_str()
                                .unwrap_or("the launcher refused the command"),
                        ),
                        Err(message) => error(StatusCode::SERVICE_UNAVAILABLE, message),
                    }
                }
                (Method::GET, ["guestosinfo"]) => {
                    match dir.read_status().and_then(|s| s.guest_os_info) {
                        Some(info) => full(
                            StatusCode::OK,
                            "application/json",
                            crate::guest_info::agent_info(&info).to_string(),
                        ),
                        None => error(StatusCode::CONFLICT, guest::NOT_CONNECTED),
                    }
                }
                (Method::PUT, ["memorydump"]) => {
                    match crate::memory_dump::start(&state.client, dir, ns, req.uri().query()).await
                    {
                        Ok(()) => full(StatusCode::OK, "application/json", "{\"ok\":true}"),
                        Err(message) => error(StatusCode::CONFLICT, message),
                    }
                }
                (Method::GET, [which @ ("userlist" | "filesystemlist")]) => {
                    guest::list(&dir, which).await
                }
                (Method::PUT, [verb @ ("freeze" | "unfreeze")]) => {
                    guest::freeze(&dir, verb, req.uri().query()).await
                }
                (Method::GET, ["vnc", "screenshot"]) => {
                    let move_cursor = req
                        .uri()
                        .query()
                        .is_some_and(|q| q.split('&').any(|p| p == "moveCursor=true"));
                    match screenshot::capture(&dir.file("vnc.sock"), move_cursor).await {
                        Ok(frame) => full(StatusCode::OK, "image/png", screenshot::png(&frame)),
                        Err(message) => error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot take a screenshot of VMI {ns}/{name}: {message}"),
                        ),
                    }
                }
                (Method::GET, [kind @ ("console" | "vnc")]) => {
                    let socket = dir.file(if *kind == "console" {
                        "console.sock"
                    } else {
                        "vnc.sock"
                    });
                    match tokio::net::UnixStream::connect(&socket).await {
                        Ok(target) => upgrade(req, target, Some((state.clone(), socket))),
                        Err(e) => error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot connect to the {kind} of VMI {ns}/{name}: {e}"),
                        ),
                    }
                }
                (Method::GET, ["portforward", port, protocol @ ..]) => {
                    port_forward(&state, req, &dir, port, protocol).await
                }
                _ => error(
                    StatusCode::NOT_FOUND,
                    format!("no such VMI endpoint: {path}"),
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

/// Bridges the upload proxy to the upload server of CDI worker Pod `pod_uid` (its socket in
/// the worker directory the node's storage gives it).
async fn upload_stream(req: Request<Incoming>, state: &State, pod_uid: &str) -> Response<Body> {
    if pod_uid.is_empty()
        || !pod_uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid Pod uid {pod_uid:?}"),
        );
    }
    let socket = state
        .data_dir
        .join("storage/workers")
        .join(pod_uid)
        .join("upload.sock");
    match tokio::net::UnixStream::connect(&socket).await {
        Ok(target) => upgrade(req, target, None),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the upload server of Pod {pod_uid} is not listening: {e}"),
        ),
    }
}

/// Answers 101 and bridges the upgraded connection to `target` in the background.
fn upgrade<T>(
    mut req: Request<Incoming>,
    target: T,
    exclusive: Option<(Arc<State>, PathBuf)>,
) -> Response<Body>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(AGENT_STREAM_UPGRADE));
    if !wants {
        return error(
            StatusCode::BAD_REQUEST,
            format!("this endpoint needs `Upgrade: {AGENT_STREAM_UPGRADE}`"),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => match &exclusive {
                Some((state, socket)) => {
                    streams::bridge(upgraded, target, Some((&state.sessions, socket.clone()))).await
                }
                None => streams::bridge(upgraded, target, None).await,
            },
            Err(error) => tracing::debug!(%error, "agent stream upgrade failed"),
        }
    });
    let mut response = full(
        StatusCode::SWITCHING_PROTOCOLS,
        "application/octet-stream",
        Bytes::new(),
    );
    response.headers_mut().insert(
        header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    response.headers_mut().insert(
        header::UPGRADE,
        http::HeaderValue::from_static(AGENT_STREAM_UPGRADE),
    );
    response
}

async fn port_forward(
    state: &State,
    req: Request<Incoming>,
    dir: &crate::rundir::RunDir,
    port: &str,
    protocol: &[&str],
) -> Response<Body> {
    let Ok(port) = port.parse::<u16>() else {
        return error(StatusCode::BAD_REQUEST, format!("invalid port {port:?}"));
    };
    let udp = match protocol {
        [] | ["tcp"] => false,
        ["udp"] => true,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unsupported protocol {:?}: tcp or udp", protocol.join("/")),
            )
        }
    };
    let Some(owner) = &dir.owner else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the VM's Pod is unknown");
    };
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(state.client.clone(), &owner.namespace);
    let ip = match pods.get(&owner.name).await {
        Ok(pod) => pod.status.and_then(|s| s.pod_ip),
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read Pod {}: {e}", owner.name),
            )
        }
    };
    let Some(ip) = ip else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the VM has no pod network address to forward to",
        );
    };
    if udp {
        return match udp::connect(&ip, port).await {
            Ok(socket) => {
                // The upgraded connection is bridged to one end of a pipe; the other end
                // carries the framed datagrams to and from the socket.
                let (near, far) = tokio::io::duplex(1 << 17);
                tokio::spawn(udp::relay(far, socket));
                upgrade(req, near, None)
            }
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                format!("cannot open UDP to {ip}:{port}: {e}"),
            ),
        };
    }
    match tokio::net::TcpStream::connect((ip.as_str(), port)).await {
        Ok(target) => upgrade(req, target, None),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot connect to {ip}:{port}: {e}"),
        ),
    }
}

/// The log of a CDI worker Pod (importer, upload, clone) the node's storage runs.
async fn worker_log(
    state: &State,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let path = match worker_logs::file_of(&state.client, &state.data_dir, ns, pod, container).await
    {
        Ok(Some(path)) => path,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} does not run on this node"),
            )
        }
        Err((code, message)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, message);
        }
    };
    match worker_logs::stream(path, logs::LogOptions::from_query(query)).await {
        Ok(chunks) => {
            use futures::StreamExt;
            let body = StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data)));
            let mut response = Response::new(BodyExt::boxed(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            response
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the log of {container}: {e}"),
        ),
    }
}

async fn container_logs(
    state: &State,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let Some(dir) = locate::pod_run_dir(&state.data_dir, ns, pod) else {
        return worker_log(state, ns, pod, container, query).await;
    };
    let Some(path) = logs::file_of(&dir, container) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {pod}"),
        );
    };
    match logs::stream(dir, path, logs::LogOptions::from_query(query)).await {
        Ok(chunks) => {
            use futures::StreamExt;
            let body = StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data)));
            let mut response = Response::new(BodyExt::boxed(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            response
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the log of {container}: {e}"),
        ),
    }
}

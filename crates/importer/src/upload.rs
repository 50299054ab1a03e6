//! The upload worker (`cdi-upload-<claim>`, upstream's `cdi-uploadserver`): serves HTTP on
//! the Unix socket `upload.sock` in its status directory — the node agent splices the API
//! server's upload proxy to it — accepts exactly one upload and imports it through the same
//! transfer, limits, validation and conversion as an HTTP import.
//!
//! Paths (upstream's): `/v1beta1/upload` (answers when the image is in the volume),
//! `/v1beta1/upload-async` (answers when the bytes are received), `/v1beta1/upload-form`
//! and `/v1beta1/upload-form-async` (multipart, field `file`), the `/v1alpha1/` twins, and
//! `/healthz`. A second upload while one runs is refused with 503, one after it completed
//! with 409. Any failure after an upload began ends the worker with the reason as its
//! termination message (the DataVolume's `Running` condition shows it; the Pod restarts and
//! a new upload may be tried).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::process::{import_upload, Stream};
use crate::transfer::Input;
use crate::Error;

/// The socket's file name in the status directory (the node agent connects to it).
pub const SOCKET: &str = "upload.sock";

/// Bytes buffered between the request and the import.
const PIPE: usize = 4 << 20;

/// How long finished responses may take to reach the client before the worker exits.
const DRAIN: Duration = Duration::from_secs(10);

enum State {
    Idle(oneshot::Sender<Result<(), Error>>),
    Busy,
    Done,
}

struct Shared {
    config: Config,
    state: Mutex<Option<State>>,
    connections: AtomicUsize,
}

/// One kind of upload request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    form: bool,
    asynchronous: bool,
}

/// The kind of upload `path` asks for; `None` for a path that is no upload path.
fn kind_of(path: &str) -> Option<Kind> {
    let rest = path
        .strip_prefix("/v1beta1/")
        .or_else(|| path.strip_prefix("/v1alpha1/"))?;
    let kind = |form, asynchronous| Some(Kind { form, asynchronous });
    match rest {
        "upload" => kind(false, false),
        "upload-async" => kind(false, true),
        "upload-form" => kind(true, false),
        "upload-form-async" => kind(true, true),
        _ => None,
    }
}

/// Serves until one upload has been imported (Ok) or has failed (its error).
///
/// # Errors
/// [`Error::Transfer`] when the socket cannot be bound; else the failed upload's error.
pub async fn serve(config: &Config) -> Result<(), Error> {
    let socket = config.status_dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .map_err(|e| Error::Transfer(format!("listening on {}: {e}", socket.display())))?;
    let (result_tx, mut result_rx) = oneshot::channel();
    let shared = Arc::new(Shared {
        config: config.clone(),
        state: Mutex::new(Some(State::Idle(result_tx))),
        connections: AtomicUsize::new(0),
    });
    tracing::info!(socket = %socket.display(), "upload server ready");
    let result = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn({
                        let shared = shared.clone();
                        move |req| handle(shared.clone(), req)
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "upload connection ended with an error");
                    }
                    shared.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
            result = &mut result_rx => {
                break result.unwrap_or_else(|_| Err(Error::Transfer("the upload was abandoned".into())));
            }
        }
    };
    let _ = std::fs::remove_file(&socket);
    let deadline = tokio::time::Instant::now() + DRAIN;
    while shared.connections.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    result
}

/// Passes the request body on as a byte stream; once the reader is gone (the import stopped),
/// the rest of the body is read and dropped, so the client gets to read the answer.
fn pipe(mut body: Incoming) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    let (reader, mut writer) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(async move {
        let mut open = true;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let (true, Ok(data)) = (open, frame.into_data()) {
                open = writer.write_all(&data).await.is_ok();
            }
        }
        let _ = writer.shutdown().await;
    });
    (reader, task)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return Ok(text(StatusCode::OK, ""));
    }
    let Some(kind) = kind_of(&path) else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!("no upload path {path}"),
        ));
    };
    match *req.method() {
        // virtctl asks with HEAD whether the async path exists.
        Method::HEAD => return Ok(text(StatusCode::OK, "")),
        Method::POST | Method::PUT => {}
        _ => {
            return Ok(text(
                StatusCode::METHOD_NOT_ALLOWED,
                "uploads are POST requests",
            ))
        }
    }
    let result_tx = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.take() {
            Some(State::Idle(tx)) => {
                *state = Some(State::Busy);
                tx
            }
            Some(State::Done) => {
                *state = Some(State::Done);
                return Ok(text(StatusCode::CONFLICT, "Upload already completed"));
            }
            other => {
                *state = other;
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Upload in progress, try again later",
                ));
            }
        }
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if kind.form && crate::multipart::boundary(&content_type).is_none() {
        // Nothing was taken: the upload may be tried again.
        *shared.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(State::Idle(result_tx));
        return Ok(text(
            StatusCode::BAD_REQUEST,
            format!("an upload-form request must be multipart/form-data with a boundary, not {content_type:?}"),
        ));
    }
    let (body, drained) = pipe(req.into_body());
    let input = match crate::multipart::boundary(&content_type).filter(|_| kind.form) {
        Some(boundary) => Input::Reader(Box::new(crate::multipart::file_field(boundary, body))),
        None => Input::Reader(Box::new(body)),
    };
    let (received_tx, received_rx) = oneshot::channel();
    let stream = Stream {
        input,
        // The multipart envelope is larger than the file: progress is then approximate.
        length,
        received: Some(received_tx),
    };
    let worker = shared.clone();
    let task = tokio::spawn(async move {
        let result = import_upload(&worker.config, stream).await;
        let reply = result.as_ref().err().map(ToString::to_string);
        if result.is_ok() {
            *worker.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(State::Done);
        }
        let _ = result_tx.send(result);
        reply
    });
    if kind.asynchronous && received_rx.await.is_ok() {
        return Ok(text(StatusCode::OK, ""));
    }
    let outcome = task.await;
    // An HTTP/1 client still sending would see a broken connection rather than the answer.
    let _ = drained.await;
    Ok(match outcome {
        Ok(None) => text(StatusCode::OK, ""),
        Ok(Some(message)) => text(StatusCode::BAD_REQUEST, message),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the upload task failed: {e}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_paths_and_only_they_are_uploads() {
        let plain = Kind {
            form: false,
            asynchronous: false,
        };
        assert_eq!(kind_of("/v1beta1/upload"), Some(plain));
        assert_eq!(kind_of("/v1alpha1/upload"), Some(plain));
        assert_eq!(
            kind_of("/v1beta1/upload-form-async"),
            Some(Kind {
                form: true,
                asynchronous: true
            })
        );
        assert_eq!(kind_of("/v1beta1/upload-archive"), None);
        assert_eq!(kind_of("/v2/upload"), None);
    }
}

//! One keep-alive HTTPS/1.1 connection to the API server, as a benchmark client uses it.
//!
//! Built on hyper's low-level `client::conn` so each benchmark client owns exactly one
//! connection: no pool, no hidden concurrency.

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::kubeconfig::Target;

/// A connected client.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
}

impl Conn {
    /// Opens a TCP connection, completes the TLS handshake and the HTTP/1.1 setup.
    ///
    /// # Errors
    /// When the server is unreachable or the TLS handshake fails.
    pub async fn connect(target: &Arc<Target>) -> Result<Self> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", target.host, target.port))?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(target.tls.clone())
            .connect(target.server_name.clone(), tcp)
            .await
            .context("TLS handshake failed")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake failed")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            target: target.clone(),
        })
    }

    /// Sends a request and returns its status and whole body.
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let response = self.start(method, path, body).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading body")?
            .to_bytes();
        Ok((status, body))
    }

    /// Like [`send`](Self::send) but fails unless the status is 2xx.
    ///
    /// # Errors
    /// When the connection fails or the server answers with an error status.
    pub async fn expect_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes> {
        let (status, bytes) = self.send(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }

    /// Sends a request and returns the response with its body still streaming (for watches).
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn start(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(
                header::HOST,
                format!("{}:{}", self.target.host, self.target.port),
            )
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "oxivirt-bench");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.target.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building request")?;
        self.sender
            .send_request(request)
            .await
            .context("request failed")
    }
}

//! The API server's side of the node agent endpoint (the agent's `endpoint` module): finds the
//! agent of a node, connects with mutual TLS — presenting the relay client certificate and
//! pinning the exact certificate the agent published on its Node — and forwards requests or
//! opens raw byte streams.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use oxivirt_api::well_known::{AGENT_CERTIFICATE_ANNOTATION, AGENT_STREAM_UPGRADE};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::service::Api;

/// How long connecting to an agent may take before the request fails.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The relay's client identity.
pub struct NodeRelay {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Where a node's agent listens and which certificate it serves.
struct AgentAddress {
    host: String,
    port: u16,
    cert: CertificateDer<'static>,
}

fn unavailable(message: String) -> ApiError {
    ApiError::ServiceUnavailable(message)
}

impl NodeRelay {
    /// Parses the relay certificate and key (PEM).
    ///
    /// # Errors
    /// When either does not parse.
    pub fn new(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let cert_chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("parsing the relay certificate: {e}"))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("parsing the relay key: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("the relay key PEM holds no key"))?;
        Ok(NodeRelay { cert_chain, key })
    }

    async fn agent_of(api: &Api, node: &str) -> ApiResult<AgentAddress> {
        let info = api
            .registry
            .by_group_resource("", "nodes")
            .ok_or_else(|| unavailable("nodes are not served".into()))?;
        let object: Value = api.get(&info, "", node, "v1").await.map_err(|e| match e {
            ApiError::NotFound { .. } => unavailable(format!("node {node} does not exist")),
            other => other,
        })?;
        let host = object["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .ok_or_else(|| unavailable(format!("node {node} has no InternalIP address")))?
            .to_string();
        let port = object["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| unavailable(format!("the agent of node {node} has no endpoint")))?;
        let pem = object["metadata"]["annotations"][AGENT_CERTIFICATE_ANNOTATION]
            .as_str()
            .ok_or_else(|| {
                unavailable(format!(
                    "node {node} does not publish its agent certificate"
                ))
            })?;
        let cert = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| {
                unavailable(format!(
                    "the agent certificate of node {node} does not parse"
                ))
            })?;
        Ok(AgentAddress { host, port, cert })
    }

    async fn connect(
        &self,
        api: &Api,
        node: &str,
    ) -> ApiResult<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let agent = Self::agent_of(api, node).await?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| unavailable(format!("relay TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                cert: agent.cert,
                provider,
            }))
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| unavailable(format!("relay TLS configuration: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let address = format!("{}:{}", agent.host, agent.port);
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            let _ = tcp.set_nodelay(true);
            // The name is not checked (the certificate is pinned); it only fills SNI.
            let name = ServerName::try_from("oxivirt-agent")
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            connector.connect(name, tcp).await
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "the agent of node {node} at {address} did not answer"
                ))
            })?
            .map_err(|e| {
                unavailable(format!(
                    "cannot reach the agent of node {node} at {address}: {e}"
                ))
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(format!("agent of node {node}: {e}")))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "agent relay connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `method path` to the agent of `node` and returns its response, body unread.
    ///
    /// # Errors
    /// 503 ServiceUnavailable when the agent cannot be reached.
    pub async fn send(
        &self,
        api: &Api,
        node: &str,
        method: Method,
        path: &str,
    ) -> ApiResult<http::Response<Incoming>> {
        let mut sender = self.connect(api, node).await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "oxivirt-agent")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ApiError::Internal(format!("building the relay request: {e}")))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(format!("agent of node {node}: {e}")))
    }

    /// Like [`send`](Self::send) but reads the whole body; a non-2xx answer becomes an
    /// error carrying the agent's message.
    ///
    /// # Errors
    /// 503 when the agent cannot be reached, else the agent's refusal: 404 → NotFound-like
    /// ServiceUnavailable, 409 → Conflict, others → InternalError.
    pub async fn call(
        &self,
        api: &Api,
        node: &str,
        method: Method,
        path: &str,
    ) -> ApiResult<(StatusCode, Bytes)> {
        let response = self.send(api, node, method, path).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(format!("agent of node {node}: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    /// Opens a raw byte stream to `path` on the agent of `node`.
    ///
    /// # Errors
    /// 503 when the agent cannot be reached, or the agent's refusal as an error.
    pub async fn open_stream(&self, api: &Api, node: &str, path: &str) -> ApiResult<Upgraded> {
        let mut sender = self.connect(api, node).await?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, "oxivirt-agent")
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, AGENT_STREAM_UPGRADE)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ApiError::Internal(format!("building the relay request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(format!("agent of node {node}: {e}")))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(agent_refusal(status, &body));
        }
        hyper::upgrade::on(response)
            .await
            .map_err(|e| unavailable(format!("agent of node {node}: {e}")))
    }
}

/// The relay of `api`.
///
/// # Errors
/// 503 for an API without one (the in-memory APIs of component tests).
pub fn of(api: &Api) -> ApiResult<&NodeRelay> {
    api.node_relay
        .get()
        .ok_or_else(|| ApiError::ServiceUnavailable("this API server has no node relay".into()))
}

/// The message of an agent's refusal body `{"message": ...}` (else the body as text).
pub fn agent_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// The agent's answer `{"message": ...}` with `status`, as an API error.
pub fn agent_refusal(status: StatusCode, body: &[u8]) -> ApiError {
    let message = agent_message(body);
    match status {
        StatusCode::CONFLICT => ApiError::conflict_plain("", "", "", &message),
        StatusCode::BAD_REQUEST => ApiError::BadRequest(message),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::NOT_FOUND | StatusCode::BAD_GATEWAY => {
            unavailable(message)
        }
        _ => ApiError::Internal(message),
    }
}

/// Accepts exactly one certificate: the one the agent published on its Node.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the agent's certificate is not the one its Node publishes".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

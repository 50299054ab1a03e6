//! The HTTP(S) source: one GET, following redirects, with basic auth, extra headers and an
//! optional CA bundle, answering upstream's error text for a non-200 status.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{Config, Credentials};
use crate::Error;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Redirects followed before giving up (as Go's client).
const MAX_REDIRECTS: usize = 10;

/// Builds the client: system roots plus every certificate in `cert_dir`.
///
/// # Errors
/// [`Error::Tls`] when the CA files cannot be read.
pub fn client(cert_dir: Option<&Path>) -> Result<HttpsClient, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(dir) = cert_dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Tls(format!("reading {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let pem = std::fs::read(&path)
                .map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("certificate in {}: {e}", path.display())))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The response of a successful GET: its body and `Content-Length`, if given.
pub struct Download {
    pub body: Incoming,
    pub length: Option<u64>,
}

fn basic(credentials: &Credentials) -> String {
    let raw = format!("{}:{}", credentials.user, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// GETs `url` (following redirects; credentials only go to the original host).
///
/// # Errors
/// [`Error::Connect`] with upstream's wording for transport failures and non-200 answers.
pub async fn get(config: &Config, url: &str) -> Result<Download, Error> {
    let client = client(config.cert_dir.as_deref())?;
    let original =
        url::Url::parse(url).map_err(|e| Error::Connect(format!("invalid URL {url:?}: {e}")))?;
    let mut current = original.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut request =
            http::Request::get(current.as_str()).header("User-Agent", "oxivirt-importer");
        if current.host_str() == original.host_str() {
            if let Some(credentials) = &config.credentials {
                request = request.header(http::header::AUTHORIZATION, basic(credentials));
            }
        }
        for header in &config.extra_headers {
            if let Some((name, value)) = header.split_once(':') {
                request = request.header(name.trim(), value.trim());
            }
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::Connect(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| Error::Connect(format!("{}", ErrorChain(&e))))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| Error::Connect(format!("redirect {status} without a Location")))?;
            current = current
                .join(location)
                .map_err(|e| Error::Connect(format!("bad redirect {location:?}: {e}")))?;
            continue;
        }
        if status != http::StatusCode::OK {
            // Upstream's text, which the manual quotes ("... got 404. Status: 404 Not Found").
            return Err(Error::Connect(format!(
                "expected status code 200, got {}. Status: {} {}",
                status.as_u16(),
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            )));
        }
        let length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return Ok(Download {
            body: response.into_body(),
            length,
        });
    }
    Err(Error::Connect(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

/// Displays an error with its sources (`a: b: c`).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

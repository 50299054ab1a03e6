//! The OCI distribution API over HTTP(S): requests with the registry auth dance (anonymous,
//! Basic, and Bearer tokens from the `WWW-Authenticate` realm), redirects, manifests and
//! digest-verified blob downloads.

use std::path::Path;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use url::Url;

use super::{Credentials, Error, Result};

/// Manifest media types accepted, most specific first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
/// Manifests larger than this are refused (real ones are a few KiB).
const MAX_MANIFEST: usize = 4 << 20;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An HTTP(S) client for one pull: it remembers the Authorization it negotiated.
pub(crate) struct Session {
    client: HttpsClient,
    /// `http://host` or `https://host`.
    pub(crate) base: Url,
    pub(crate) repository: String,
    credentials: Option<Credentials>,
    authorization: Option<String>,
}

/// Builds the shared HTTPS-capable client (system roots when available).
/// The node's registry client: made once (reading the system's CA certificates is the
/// expensive part) and shared, with its connection pool, by every pull.
pub(crate) fn client() -> HttpsClient {
    static CLIENT: std::sync::OnceLock<HttpsClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(new_client).clone()
}

fn new_client() -> HttpsClient {
    let provider = || std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(provider()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates; HTTPS registries will fail verification");
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            match config {
                Ok(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
                Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                ),
            }
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

impl Session {
    pub(crate) fn new(
        client: HttpsClient,
        base: Url,
        repository: String,
        credentials: Option<Credentials>,
    ) -> Self {
        Session {
            client,
            base,
            repository,
            credentials,
            authorization: None,
        }
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(&format!("/v2/{}/{path}", self.repository))
            .map_err(|e| Error::Protocol {
                registry: self.base.to_string(),
                message: format!("bad URL for {path}: {e}"),
            })
    }

    /// GETs `/v2/<repo>/<path>`, negotiating auth on 401 and following redirects.
    async fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Response<Incoming>> {
        let url = self.url(path)?;
        let mut retried_auth = false;
        loop {
            let response = self.get_following(&url, accept).await?;
            if response.status() == StatusCode::UNAUTHORIZED && !retried_auth {
                retried_auth = true;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                self.authorization = Some(self.authorize(&challenge).await?);
                continue;
            }
            return match response.status() {
                s if s.is_success() => Ok(response),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::Unauthorized {
                    registry: self.base.to_string(),
                    repository: self.repository.clone(),
                }),
                StatusCode::NOT_FOUND => Err(Error::NotFound {
                    registry: self.base.to_string(),
                    what: format!("{}/{path}", self.repository),
                }),
                s => Err(Error::Protocol {
                    registry: self.base.to_string(),
                    message: format!("GET {url} answered {s}"),
                }),
            };
        }
    }

    /// One GET with up to five redirects; Authorization is only sent to the registry itself.
    async fn get_following(&self, url: &Url, accept: Option<&str>) -> Result<Response<Incoming>> {
        let mut url = url.clone();
        for _ in 0..5 {
            let mut request = Request::get(url.as_str());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let (Some(auth), true) = (&self.authorization, same_origin(&url, &self.base)) {
                request = request.header(AUTHORIZATION, auth);
            }
            let request = request.body(Empty::new()).map_err(|e| Error::Protocol {
                registry: self.base.to_string(),
                message: format!("bad request for {url}: {e}"),
            })?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|source| Error::Http {
                    url: url.to_string(),
                    source: Box::new(source),
                })?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok());
            url = location.ok_or_else(|| Error::Protocol {
                registry: self.base.to_string(),
                message: format!("redirect without a usable Location from {url}"),
            })?;
        }
        Err(Error::Protocol {
            registry: self.base.to_string(),
            message: format!("too many redirects from {url}"),
        })
    }

    /// Answers a `WWW-Authenticate` challenge with an Authorization header value.
    async fn authorize(&self, challenge: &str) -> Result<String> {
        let unauthorized = || Error::Unauthorized {
            registry: self.base.to_string(),
            repository: self.repository.clone(),
        };
        let (scheme, params) = parse_challenge(challenge);
        let basic = self.credentials.as_ref().map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        if scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(unauthorized);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized());
        }
        let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v);
        let mut url = realm
            .and_then(|r| Url::parse(r).ok())
            .ok_or_else(|| Error::Protocol {
                registry: self.base.to_string(),
                message: format!("bearer challenge without a usable realm: {challenge}"),
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                query.append_pair("service", service);
            }
            let scope = params
                .iter()
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
            query.append_pair("scope", &scope);
        }
        let mut request = Request::get(url.as_str());
        if let Some(basic) = &basic {
            request = request.header(AUTHORIZATION, basic);
        }
        let request = request.body(Empty::new()).map_err(|e| Error::Protocol {
            registry: self.base.to_string(),
            message: format!("bad token request {url}: {e}"),
        })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|source| Error::Http {
                url: url.to_string(),
                source: Box::new(source),
            })?;
        if !response.status().is_success() {
            return Err(unauthorized());
        }
        let body = read_limited(response, MAX_MANIFEST, &self.base).await?;
        let token: Value = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            registry: self.base.to_string(),
            message: format!("token response is not JSON: {e}"),
        })?;
        token["token"]
            .as_str()
            .or_else(|| token["access_token"].as_str())
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(unauthorized)
    }

    /// Fetches a manifest (or index) by tag or digest: its bytes, media type and digest. The
    /// digest is computed from the bytes and must match a requested digest and the
    /// registry's `Docker-Content-Digest`.
    pub(crate) async fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        let response = self
            .get(&format!("manifests/{reference}"), Some(MANIFEST_ACCEPT))
            .await?;
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = read_limited(response, MAX_MANIFEST, &self.base).await?;
        let digest = sha256_digest(&body);
        for expected in [Some(reference), header_digest.as_deref()]
            .into_iter()
            .flatten()
            .filter(|d| d.starts_with("sha256:"))
        {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {}@{reference}", self.repository),
                    expected: expected.into(),
                    actual: digest,
                });
            }
        }
        let media_type = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or(content_type);
        Ok((body, media_type, digest))
    }

    /// Downloads blob `digest` into `dest`, verifying its SHA-256 as it streams.
    pub(crate) async fn blob_to_file(&mut self, digest: &str, dest: &Path) -> Result<()> {
        let response = self.get(&format!("blobs/{digest}"), None).await?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|source| Error::Io {
                path: dest.to_path_buf(),
                source,
            })?;
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| Error::Http {
                url: format!("{}v2/{}/blobs/{digest}", self.base, self.repository),
                source: Box::new(source),
            })?;
            if let Ok(data) = frame.into_data() {
                hash.update(&data);
                file.write_all(&data).await.map_err(|source| Error::Io {
                    path: dest.to_path_buf(),
                    source,
                })?;
            }
        }
        file.flush().await.map_err(|source| Error::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        let actual = format!("sha256:{}", hex(hash.finish().as_ref()));
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob of {}", self.repository),
                expected: digest.into(),
                actual,
            });
        }
        Ok(())
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

async fn read_limited(response: Response<Incoming>, limit: usize, base: &Url) -> Result<Vec<u8>> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| Error::Http {
            url: base.to_string(),
            source: Box::new(source),
        })?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Err(Error::Protocol {
                    registry: base.to_string(),
                    message: format!("response larger than {limit} bytes"),
                });
            }
        }
    }
    Ok(out)
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `Bearer realm="https://a/token",service="reg",scope="repository:x:pull"` into the
/// scheme and its parameters (quoted values may hold commas).
pub(crate) fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed_with_quoted_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params[0],
            ("realm".into(), "https://auth.example/token".into())
        );
        assert_eq!(params[1], ("service".into(), "registry.example".into()));
        assert_eq!(
            params[2],
            ("scope".into(), "repository:a/b:pull,push".into())
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((scheme.as_str(), params.len()), ("Basic", 1));
    }

    #[test]
    fn digests_are_lowercase_sha256() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

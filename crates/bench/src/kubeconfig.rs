//! Reading a kubeconfig into what one HTTPS connection needs: address, CA, credentials.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;

/// Where and how to reach the API server.
#[derive(Debug)]
pub struct Target {
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The name the server certificate must carry.
    pub server_name: ServerName<'static>,
    /// TLS settings: the cluster CA and, when the user has one, the client certificate.
    pub tls: Arc<ClientConfig>,
    /// A bearer token, when the user authenticates with one.
    pub token: Option<String>,
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    clusters: Vec<NamedCluster>,
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: ContextRef,
}

#[derive(Deserialize)]
struct ContextRef {
    cluster: String,
    user: String,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca_file: Option<String>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: User,
}

#[derive(Deserialize, Default)]
struct User {
    token: Option<String>,
    #[serde(rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(rename = "client-key-data")]
    key_data: Option<String>,
    #[serde(rename = "client-certificate")]
    cert_file: Option<String>,
    #[serde(rename = "client-key")]
    key_file: Option<String>,
}

impl Target {
    /// Loads the current context of the kubeconfig at `path`.
    ///
    /// # Errors
    /// When the file is unreadable, is not a kubeconfig, names a missing cluster or user,
    /// uses a plain-HTTP server, or carries unparsable PEM data.
    pub fn from_kubeconfig(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
        let config: Kubeconfig = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
        let (cluster_name, user_name) = match (&config.current_context, config.contexts.first()) {
            (Some(current), _) => {
                let context = config
                    .contexts
                    .iter()
                    .find(|c| &c.name == current)
                    .with_context(|| format!("current context {current} is not defined"))?;
                (
                    context.context.cluster.clone(),
                    context.context.user.clone(),
                )
            }
            (None, Some(first)) => (first.context.cluster.clone(), first.context.user.clone()),
            (None, None) => (
                config
                    .clusters
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                config
                    .users
                    .first()
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
            ),
        };
        let cluster = &config
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .with_context(|| format!("cluster {cluster_name} is not defined"))?
            .cluster;
        let user = config
            .users
            .into_iter()
            .find(|u| u.name == user_name)
            .map(|u| u.user)
            .unwrap_or_default();
        Self::new(cluster, user)
    }

    fn new(cluster: &Cluster, user: User) -> Result<Self> {
        let uri: http::Uri = cluster.server.parse().context("server is not a URL")?;
        if uri.scheme_str() != Some("https") {
            bail!("server {} is not https", cluster.server);
        }
        let host = uri
            .host()
            .context("server URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).context("bad server host name")?;

        let ca_pem = read_pem(cluster.ca_data.as_deref(), cluster.ca_file.as_deref())?
            .context("kubeconfig has no certificate authority")?;
        let mut roots = RootCertStore::empty();
        for cert in certs(&ca_pem)? {
            roots.add(cert).context("bad CA certificate")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots);
        let cert_pem = read_pem(user.cert_data.as_deref(), user.cert_file.as_deref())?;
        let key_pem = read_pem(user.key_data.as_deref(), user.key_file.as_deref())?;
        let tls = match (cert_pem, key_pem) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certs(&cert)?, private_key(&key)?)
                .context("bad client certificate or key")?,
            _ => builder.with_no_client_auth(),
        };
        Ok(Self {
            host,
            port,
            server_name,
            tls: Arc::new(tls),
            token: user.token,
        })
    }
}

/// PEM bytes from inline base64 data or from a file.
fn read_pem(data: Option<&str>, file: Option<&str>) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("kubeconfig data is not base64")?;
        return Ok(Some(pem));
    }
    file.map(|f| std::fs::read(f).with_context(|| format!("cannot read {f}")))
        .transpose()
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .context("bad PEM certificate")?;
    if certs.is_empty() {
        bail!("no certificate in PEM data");
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..])
        .context("bad PEM private key")?
        .context("no private key in PEM data")
}

//! Client plumbing: turns the global connection flags into a kube-rs [`kube::Client`].
//!
//! The kubeconfig is found the way `kubectl` finds it: `--kubeconfig` if given, else the
//! `KUBECONFIG` variable (a list of files, merged), else `~/.kube/config`, else the in-cluster
//! service account. Flags such as `--server`, `--token` or `--namespace` then override what
//! the kubeconfig says. Commands that need the API call [`connect`] and get a [`Session`].

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The file named by `--kubeconfig` could not be read or parsed.
    #[error("cannot load kubeconfig {path}")]
    KubeconfigFile {
        /// The path given with `--kubeconfig`.
        path: PathBuf,
        /// Why loading failed.
        #[source]
        source: KubeconfigError,
    },
    /// The kubeconfig was read but the selected context, cluster or user is unusable.
    #[error("invalid kubeconfig")]
    Kubeconfig(#[source] KubeconfigError),
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor an in-cluster service account
    /// was found, and `--server` was not given.
    #[error(
        "no kubeconfig found (set KUBECONFIG, create ~/.kube/config or pass --kubeconfig/--server)"
    )]
    NoConfig(#[source] KubeconfigError),
    /// `--server` is not a valid URL.
    #[error("invalid --server URL {url:?}")]
    InvalidServer {
        /// The value given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// `--request-timeout` is not a duration such as `0`, `30`, `30s`, `2m` or `1h`.
    #[error("invalid --request-timeout {0:?}: use a number with an optional unit s, m or h")]
    InvalidTimeout(String),
    /// `--token` or the impersonation flags could not be applied to the configuration.
    #[error("cannot apply credential flags")]
    Credentials(#[source] serde_json::Error),
    /// Building the HTTP client failed (TLS material unreadable, bad proxy settings).
    #[error("cannot build the API client")]
    Build(#[source] kube::Error),
    /// A request failed (connection refused, TLS failure, error status from the server).
    #[error("request to {path} failed")]
    Request {
        /// The request path.
        path: String,
        /// The underlying failure.
        #[source]
        source: kube::Error,
    },
}

/// Connection settings from the global flags. Every field is optional: an unset field
/// leaves the kubeconfig's value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `--kubeconfig`: use this file instead of `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: the kubeconfig context to use.
    pub context: Option<String>,
    /// `--cluster`: the kubeconfig cluster to use.
    pub cluster: Option<String>,
    /// `--user`: the kubeconfig user to use.
    pub user: Option<String>,
    /// `-n/--namespace`: the namespace; when unset, the context's namespace or `default`.
    pub namespace: Option<String>,
    /// `-s/--server`: the API server URL.
    pub server: Option<String>,
    /// `--token`: a bearer token, replacing the kubeconfig user's credentials.
    pub token: Option<String>,
    /// `--certificate-authority`: a PEM CA bundle to trust.
    pub certificate_authority: Option<PathBuf>,
    /// `--client-certificate`: a PEM client certificate.
    pub client_certificate: Option<PathBuf>,
    /// `--client-key`: the PEM key of the client certificate.
    pub client_key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`: do not verify the server certificate.
    pub insecure_skip_tls_verify: bool,
    /// `--tls-server-name`: the name to verify the server certificate against.
    pub tls_server_name: Option<String>,
    /// `--as`: the user to impersonate.
    pub impersonate: Option<String>,
    /// `--as-group`: the groups to impersonate.
    pub impersonate_groups: Vec<String>,
    /// `--request-timeout`: `0` (no timeout) or a duration such as `30s`.
    pub request_timeout: Option<String>,
}

/// A connected client and the namespace commands act in.
pub struct Session {
    /// The kube-rs client.
    pub client: kube::Client,
    /// `--namespace`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
}

/// Loads the client configuration for `opts` (see the module docs for the search order).
///
/// # Errors
/// [`ClientError::NoConfig`] when nothing is found, the other variants when what was found
/// is unusable.
pub async fn load_config(opts: &ConnectionOptions) -> Result<kube::Config, ClientError> {
    let select = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: opts.cluster.clone(),
        user: opts.user.clone(),
    };
    let mut config = if let Some(path) = &opts.kubeconfig {
        let file = Kubeconfig::read_from(path).map_err(|source| ClientError::KubeconfigFile {
            path: path.clone(),
            source,
        })?;
        kube::Config::from_custom_kubeconfig(file, &select)
            .await
            .map_err(ClientError::Kubeconfig)?
    } else {
        match kube::Config::from_kubeconfig(&select).await {
            Ok(config) => config,
            Err(err) => fallback_config(opts, err)?,
        }
    };
    apply_overrides(&mut config, opts)?;
    Ok(config)
}

/// Used when no kubeconfig was found: `--server` alone, else the in-cluster config.
fn fallback_config(
    opts: &ConnectionOptions,
    err: KubeconfigError,
) -> Result<kube::Config, ClientError> {
    // Only a missing file falls back; a kubeconfig that exists but is broken is reported.
    let missing = matches!(
        err,
        KubeconfigError::FindPath | KubeconfigError::ReadConfig(..)
    );
    if !missing {
        return Err(ClientError::Kubeconfig(err));
    }
    if let Some(server) = &opts.server {
        return Ok(kube::Config::new(parse_server(server)?));
    }
    kube::Config::incluster().map_err(|_| ClientError::NoConfig(err))
}

fn parse_server(url: &str) -> Result<http::Uri, ClientError> {
    url.parse().map_err(|source| ClientError::InvalidServer {
        url: url.to_owned(),
        source,
    })
}

/// Applies the flags that override the kubeconfig, as `kubectl` does.
fn apply_overrides(config: &mut kube::Config, opts: &ConnectionOptions) -> Result<(), ClientError> {
    if let Some(server) = &opts.server {
        config.cluster_url = parse_server(server)?;
    }
    if let Some(namespace) = &opts.namespace {
        config.default_namespace = namespace.clone();
    }
    if let Some(ca) = &opts.certificate_authority {
        config.root_cert_file = Some(ca.clone());
    }
    if opts.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(name) = &opts.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(token) = &opts.token {
        // A token replaces whatever credentials the kubeconfig user carried. AuthInfo keeps
        // secrets in a type we do not name, so it is built through its serde form.
        config.auth_info = auth_info(serde_json::json!({ "token": token }))?;
    }
    if let Some(cert) = &opts.client_certificate {
        config.auth_info.client_certificate = Some(cert.display().to_string());
        config.auth_info.client_certificate_data = None;
    }
    if let Some(key) = &opts.client_key {
        config.auth_info.client_key = Some(key.display().to_string());
        config.auth_info.client_key_data = None;
    }
    if let Some(user) = &opts.impersonate {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !opts.impersonate_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(opts.impersonate_groups.clone());
    }
    if let Some(timeout) = &opts.request_timeout {
        let timeout = parse_timeout(timeout)?;
        config.read_timeout = timeout;
        config.write_timeout = timeout;
    }
    Ok(())
}

fn auth_info(value: serde_json::Value) -> Result<AuthInfo, ClientError> {
    serde_json::from_value(value).map_err(ClientError::Credentials)
}

/// Parses kubectl's `--request-timeout`: `0` means none; a bare number is seconds.
fn parse_timeout(text: &str) -> Result<Option<Duration>, ClientError> {
    let invalid = || ClientError::InvalidTimeout(text.to_owned());
    let (digits, scale) = match text.as_bytes().last() {
        Some(b's') => (&text[..text.len() - 1], 1),
        Some(b'm') => (&text[..text.len() - 1], 60),
        Some(b'h') => (&text[..text.len() - 1], 3600),
        _ => (text, 1),
    };
    let value: u64 = digits.parse().map_err(|_| invalid())?;
    let seconds = value.checked_mul(scale).ok_or_else(invalid)?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// Loads the configuration and builds a client.
///
/// # Errors
/// See [`load_config`]; also [`ClientError::Build`] when TLS material cannot be loaded.
pub async fn connect(opts: &ConnectionOptions) -> Result<Session, ClientError> {
    let config = load_config(opts).await?;
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(ClientError::Build)?;
    Ok(Session { client, namespace })
}

/// `GET path` returning the decoded JSON body.
///
/// # Errors
/// [`ClientError::Request`] on any transport failure or non-success status.
pub async fn get_json(client: &kube::Client, path: &str) -> Result<serde_json::Value, ClientError> {
    let request =
        http::Request::get(path)
            .body(Vec::new())
            .map_err(|err| ClientError::Request {
                path: path.to_owned(),
                source: kube::Error::HttpError(err),
            })?;
    client
        .request::<serde_json::Value>(request)
        .await
        .map_err(|source| ClientError::Request {
            path: path.to_owned(),
            source,
        })
}

impl ClientError {
    /// True when the server answered `404 Not Found` (the path is not served).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Request { source: kube::Error::Api(status), .. } if status.code == 404)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeout_accepts_kubectl_forms() {
        assert_eq!(parse_timeout("0").ok(), Some(None));
        assert_eq!(
            parse_timeout("30").ok(),
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parse_timeout("2m").ok(),
            Some(Some(Duration::from_secs(120)))
        );
        assert_eq!(
            parse_timeout("1h").ok(),
            Some(Some(Duration::from_secs(3600)))
        );
        assert!(parse_timeout("soon").is_err());
    }

    #[tokio::test]
    async fn kubeconfig_flag_selects_file_and_flags_override_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
             clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: a\n  context:\n    cluster: c\n    user: u\n    namespace: team\n\
             users:\n- name: u\n  user:\n    token: abc\n",
        )
        .expect("write kubeconfig");
        let mut opts = ConnectionOptions {
            kubeconfig: Some(path),
            ..Default::default()
        };
        let config = load_config(&opts).await.expect("config loads");
        assert_eq!(config.default_namespace, "team");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");

        opts.namespace = Some("other".into());
        opts.server = Some("https://10.0.0.1:443".into());
        opts.insecure_skip_tls_verify = true;
        opts.token = Some("xyz".into());
        let config = load_config(&opts).await.expect("config loads");
        assert_eq!(config.default_namespace, "other");
        assert_eq!(config.cluster_url.host(), Some("10.0.0.1"));
        assert!(config.accept_invalid_certs);
        assert!(config.auth_info.token.is_some());
    }

    #[tokio::test]
    async fn missing_kubeconfig_file_is_reported_with_its_path() {
        let opts = ConnectionOptions {
            kubeconfig: Some("/nonexistent/virtctl-test-config".into()),
            ..Default::default()
        };
        let err = load_config(&opts).await.expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/virtctl-test-config"));
    }
}

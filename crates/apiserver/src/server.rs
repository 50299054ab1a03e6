//! Process wiring: store, registry, bootstrap, background controllers, TLS listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{identity_from_cert, Authenticator, PeerIdentity};
use crate::context::UserInfo;
use crate::registry::Registry;
use crate::service::Api;
use crate::{bootstrap, builtin, gc, kubeconfig, pki, routes};

/// What `oxivirt server` runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `HOST:PORT`; port 0 picks a free port.
    pub listen: String,
}

/// A started server: its address and the task serving it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub api: Arc<Api>,
    pub kubeconfig: PathBuf,
    /// Credentials of oxivirt's own components (controllers, the local node agent).
    pub components_kubeconfig: PathBuf,
    router: axum::Router,
}

/// The API as a tower service for oxivirt's own components in this process (controllers,
/// the local node agent): see [`RunningServer::components_service`].
pub type ComponentsService = tower::util::MapRequest<
    axum::Router,
    fn(http::Request<axum::body::Body>) -> http::Request<axum::body::Body>,
>;

impl RunningServer {
    /// The API for components running in the server's own process, as a tower service:
    /// requests go straight to the router, without TLS, HTTP framing or a socket (both
    /// sides of each, client and server, in one process), and carry the components'
    /// identity, as their client certificate or token would. Everything after that
    /// (authorization, admission, audit of who did what) is the same as over the network.
    pub fn components_service(&self) -> ComponentsService {
        fn as_components(
            mut request: http::Request<axum::body::Body>,
        ) -> http::Request<axum::body::Body> {
            request
                .extensions_mut()
                .insert(PeerIdentity(Some(UserInfo::system("components"))));
            request
        }
        tower::util::MapRequest::new(self.router.clone(), as_components as fn(_) -> _)
    }
}

fn subject_alt_names(addr: &SocketAddr) -> Vec<String> {
    let mut sans: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !sans.iter().any(|s| s == host) {
            sans.push(host.to_string());
        }
    }
    if !addr.ip().is_unspecified() && !sans.contains(&addr.ip().to_string()) {
        sans.push(addr.ip().to_string());
    }
    sans
}

fn tls_acceptor(pki: &pki::Pki) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .context("parsing the serving certificate")?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.server_key_pem.as_bytes())
            .context("parsing the serving key")?
            .context("the serving key file holds no key")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots
            .add(ca.context("parsing the CA certificate")?)
            .context("adding the CA to the trust store")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .context("building the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("loading the serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// An API over an in-memory store with the built-in kinds, the bootstrap objects and the
/// garbage collector running: for component tests of this crate and of controllers.
pub async fn in_memory_api() -> Result<Arc<Api>> {
    let store = oxivirt_store::MemoryStore::new();
    let signer = crate::tokens::TokenSigner::new(b"in-memory-test-signing-key-000000");
    let api = Arc::new(Api::new(
        Arc::new(store),
        Registry::new(builtin::resources()),
        signer,
    ));
    bootstrap::run(&api)
        .await
        .context("bootstrapping the cluster objects")?;
    tokio::spawn(gc::run(api.clone()));
    Ok(api)
}

/// Opens the store, prepares the API and starts listening; returns once the server is
/// ready and the admin kubeconfig is written. Serving continues on spawned tasks.
pub async fn start(config: ServerConfig) -> Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let pki = pki::load_or_create(&config.data_dir, &subject_alt_names(&addr))
        .context("preparing certificates")?;
    let db = config.data_dir.join("store.db");
    let store = oxivirt_store::SqliteStore::open(&db)
        .with_context(|| format!("opening store {}", db.display()))?;
    let signer = crate::tokens::TokenSigner::new(pki.service_account_key.as_bytes());
    let api = Arc::new(Api::new(
        Arc::new(store),
        Registry::new(builtin::resources()),
        signer,
    ));
    bootstrap::run(&api)
        .await
        .context("bootstrapping the cluster objects")?;
    tokio::spawn(gc::run(api.clone()));
    tokio::spawn(bootstrap::compaction(api.clone()));
    let relay = crate::node_relay::NodeRelay::new(&pki.relay_cert_pem, &pki.relay_key_pem)
        .context("preparing the node agent relay")?;
    let _ = api.node_relay.set(relay);

    let acceptor = tls_acceptor(&pki)?;
    let auth = Arc::new(Authenticator::new(
        &pki.admin_token,
        &pki.components_token,
        api.clone(),
    ));
    let router = routes::router(api.clone(), auth);
    tokio::spawn(accept_loop(listener, acceptor, router.clone()));

    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{}", addr.port());
    let components_kubeconfig = config.data_dir.join("components.kubeconfig");
    kubeconfig::write_components(&components_kubeconfig, &url, &pki)?;
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    kubeconfig::write_admin(&kubeconfig, &url, &pki)?;
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "oxivirt API server ready");
    Ok(RunningServer {
        addr,
        api,
        kubeconfig,
        components_kubeconfig,
        router,
    })
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, router: axum::Router) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let identity = PeerIdentity(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| identity_from_cert(c)),
            );
            let service =
                router.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(identity.clone());
                    req
                });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(tls),
                    TowerToHyperService::new(service),
                )
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

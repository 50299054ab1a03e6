//! The endpoint's TLS: a self-signed serving certificate made at every start (the API server
//! pins it through the Node annotation) and client authentication that accepts only the API
//! server's relay certificate, issued by the cluster CA.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// What can go wrong while preparing the endpoint's TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the certificate parameters.
    #[error("cannot generate the agent's serving certificate")]
    Generate(#[from] rcgen::Error),
    /// None of the cluster CA certificates could be used as a trust anchor.
    #[error("no usable cluster CA certificate to verify the API server with")]
    NoClusterCa,
    /// rustls refused the configuration.
    #[error("cannot build the agent's TLS configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The serving identity and the acceptor built from it.
pub struct ServingTls {
    /// PEM of the self-signed certificate, published on the Node.
    pub cert_pem: String,
    /// The rustls server configuration.
    pub config: Arc<rustls::ServerConfig>,
}

/// Makes a fresh key and self-signed certificate for `node` and `ips`, trusting client
/// certificates issued by `cluster_ca` (DER).
///
/// # Errors
/// [`TlsError`] when a certificate cannot be generated or no CA certificate is usable.
pub fn serving(node: &str, ips: &[String], cluster_ca: &[Vec<u8>]) -> Result<ServingTls, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("oxivirt-agent:{node}"));
    let mut sans = vec![SanType::DnsName("localhost".try_into()?)];
    if let Ok(name) = node.to_string().try_into() {
        sans.push(SanType::DnsName(name));
    }
    for ip in ips {
        if let Ok(ip) = ip.parse() {
            sans.push(SanType::IpAddress(ip));
        }
    }
    params.subject_alt_names = sans;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    let mut roots = RootCertStore::empty();
    for der in cluster_ca {
        // A CA certificate that does not parse is skipped; none at all is an error below.
        let _ = roots.add(CertificateDer::from(der.clone()));
    }
    if roots.is_empty() {
        return Err(TlsError::NoClusterCa);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| TlsError::Config(Box::new(e)))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(Box::new(e)))?
    .with_client_cert_verifier(verifier)
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .map_err(|e| TlsError::Config(Box::new(e)))?;
    Ok(ServingTls {
        cert_pem: cert.pem(),
        config: Arc::new(config),
    })
}

/// Whether the verified client certificate is the API server's relay identity. Any other
/// certificate of the cluster CA (an administrator's, say) is refused: users reach VMs
/// through the API server, where RBAC applies, never directly.
pub fn is_api_server(peer: Option<&CertificateDer<'_>>) -> bool {
    let Some(der) = peer else { return false };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let is_relay = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        == Some(oxivirt_api::well_known::AGENT_CLIENT_COMMON_NAME);
    is_relay
}

//! HTTPS to the upload proxy for `virtctl image-upload`: one request per connection, the
//! body streamed from the image file with a progress line.
//!
//! Trust: the kubeconfig cluster's CA and the system roots; `--insecure` (like upstream's)
//! verifies nothing.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncReadExt;

/// Bytes read from the image per chunk.
const CHUNK: usize = 1 << 20;

/// Where and how to reach the proxy.
pub struct Target {
    pub url: url::Url,
    pub insecure: bool,
    /// DER CA certificates of the kubeconfig's cluster.
    pub roots: Vec<Vec<u8>>,
}

/// The status and body text of an answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

type Boxed = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn tls_config(target: &Target) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    if target.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    for der in &target.roots {
        let _ = roots.add(CertificateDer::from(der.clone()));
    }
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Sends `method path` with `token` and `body`, returning the answer.
///
/// # Errors
/// A message naming the proxy when it cannot be reached or the TLS handshake fails.
async fn send(
    target: &Target,
    method: http::Method,
    path: &str,
    token: &str,
    body: Boxed,
    length: Option<u64>,
) -> Result<Answer, String> {
    let url = &target.url;
    let host = url
        .host_str()
        .ok_or_else(|| format!("the upload proxy URL {url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to the upload proxy {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if url.scheme() == "http" {
        Box::new(tcp)
    } else {
        let name = ServerName::try_from(host.clone())
            .map_err(|e| format!("invalid upload proxy host {host}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(target)?));
        Box::new(connector.connect(name, tcp).await.map_err(|e| {
            format!("TLS handshake with the upload proxy {host}:{port} failed: {e} (use --insecure to skip verification)")
        })?)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("upload proxy {host}:{port}: {e}"))?;
    tokio::spawn(connection);
    let full_path = format!("{}{path}", url.path().trim_end_matches('/'));
    let mut request = http::Request::builder()
        .method(method)
        .uri(full_path)
        .header(http::header::HOST, url.authority())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(length) = length {
        request = request
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::CONTENT_LENGTH, length);
    }
    let request = request
        .body(body)
        .map_err(|e| format!("building the upload request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("upload proxy {host}:{port}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// `HEAD path`: whether the proxy serves it (virtctl's probe for the async path).
pub async fn head_ok(target: &Target, path: &str, token: &str) -> bool {
    let empty = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    send(target, http::Method::HEAD, path, token, empty, None)
        .await
        .is_ok_and(|a| a.status == 200)
}

/// POSTs the file at `image` to `path`, showing progress on `progress_out`.
///
/// # Errors
/// A message when the file cannot be read or the proxy cannot be reached.
pub async fn post_file(
    target: &Target,
    path: &str,
    token: &str,
    image: &Path,
    progress_out: &mut dyn Write,
) -> Result<Answer, String> {
    let file = tokio::fs::File::open(image)
        .await
        .map_err(|e| format!("open {}: {e}", image.display()))?;
    let total = file
        .metadata()
        .await
        .map_err(|e| format!("stat {}: {e}", image.display()))?
        .len();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let chunks = futures::stream::unfold(Some((file, counter)), |state| async move {
        let (mut file, counter) = state?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some((file, counter))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let body = StreamBody::new(chunks).boxed();
    let started = Instant::now();
    let upload = send(target, http::Method::POST, path, token, body, Some(total));
    tokio::pin!(upload);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let answer = loop {
        tokio::select! {
            answer = &mut upload => break answer,
            _ = tick.tick() => show(progress_out, sent.load(Ordering::Relaxed), total, started),
        }
    };
    show(progress_out, sent.load(Ordering::Relaxed), total, started);
    let _ = writeln!(progress_out);
    answer
}

fn show(out: &mut dyn Write, sent: u64, total: u64, started: Instant) {
    const MIB: f64 = (1u64 << 20) as f64;
    let percent = if total == 0 {
        100.0
    } else {
        sent as f64 * 100.0 / total as f64
    };
    let width = 40usize;
    let filled = ((percent / 100.0) * width as f64) as usize;
    let rate = sent as f64 / MIB / started.elapsed().as_secs_f64().max(0.001);
    let _ = write!(
        out,
        "\r {:.2} MiB / {:.2} MiB [{}{}] {percent:.2}% {rate:.2} MiB/s",
        sent as f64 / MIB,
        total as f64 / MIB,
        "=".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width)),
    );
    let _ = out.flush();
}

/// `--insecure`: accepts any certificate, as upstream's `InsecureSkipVerify`.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

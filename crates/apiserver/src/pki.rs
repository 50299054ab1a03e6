//! The cluster CA, serving certificate, admin credentials and static tokens, created on
//! first start under `<data-dir>/pki` and reused afterwards.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::Datelike;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Credentials and certificates the server runs with.
pub struct Pki {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub admin_token: String,
    /// The token oxivirt's own components (controllers, node agents) authenticate with.
    pub components_token: String,
    /// The secret ServiceAccount tokens are signed with.
    pub service_account_key: String,
    /// The client certificate and key the API server presents to node agents (issued
    /// afresh on every start, like the serving certificate).
    pub relay_cert_pem: String,
    pub relay_key_pem: String,
}

/// Certificates are valid from yesterday (clock skew) for `years`.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let now = chrono::Utc::now();
    let yesterday = now - chrono::TimeDelta::days(1);
    params.not_before = rcgen::date_time_ymd(
        yesterday.year(),
        yesterday.month() as u8,
        yesterday.day() as u8,
    );
    params.not_after = rcgen::date_time_ymd(
        now.year() + years,
        now.month() as u8,
        now.day().min(28) as u8,
    );
}

/// Writes a file readable by its owner only, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", path.display()))?;
    Ok(())
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn client_cert(issuer: &Issuer<'_, KeyPair>, cn: &str, org: &str) -> Result<(String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Loads the CA and credentials from `data_dir/pki`, creating what is missing; the
/// serving certificate is issued afresh on every start for the given names and IPs.
pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Pki> {
    let dir: PathBuf = data_dir.join("pki");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    if !ca_cert_path.exists() || !ca_key_path.exists() {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "oxivirt-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, 10);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_private(&ca_cert_path, cert.pem().as_bytes())?;
    }
    let ca_cert_pem = fs::read_to_string(&ca_cert_path)
        .with_context(|| format!("reading {}", ca_cert_path.display()))?;
    let ca_key =
        KeyPair::from_pem(&fs::read_to_string(&ca_key_path)?).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).context("parsing the CA certificate")?;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "oxivirt-apiserver");
    for san in sans {
        params
            .subject_alt_names
            .push(match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.clone().try_into()?),
            });
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params, 1);
    let server_key = KeyPair::generate()?;
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let (relay_cert_pem, relay_key_pem) = client_cert(
        &issuer,
        oxivirt_api::well_known::AGENT_CLIENT_COMMON_NAME,
        "oxivirt:apiserver",
    )?;

    let admin_cert_path = dir.join("admin.crt");
    let admin_key_path = dir.join("admin.key");
    if !admin_cert_path.exists() || !admin_key_path.exists() {
        let (cert, key) = client_cert(&issuer, "kubernetes-admin", crate::context::GROUP_MASTERS)?;
        write_private(&admin_key_path, key.as_bytes())?;
        write_private(&admin_cert_path, cert.as_bytes())?;
    }
    let token = |file: &str| -> Result<String> {
        let path = dir.join(file);
        if !path.exists() {
            write_private(&path, random_token().as_bytes())?;
        }
        Ok(fs::read_to_string(&path)?.trim().to_string())
    };
    Ok(Pki {
        ca_cert_pem,
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        relay_cert_pem,
        relay_key_pem,
        admin_cert_pem: fs::read_to_string(&admin_cert_path)?,
        admin_key_pem: fs::read_to_string(&admin_key_path)?,
        admin_token: token("admin.token")?,
        components_token: token("components.token")?,
        service_account_key: token("serviceaccount.key")?,
    })
}

//! The admin kubeconfig written into the data directory once the server is ready.

use std::path::Path;

use anyhow::Result;
use base64::Engine;

use crate::pki::{write_private, Pki};

/// Writes `admin.kubeconfig` atomically: the default context uses the admin client
/// certificate, the `oxivirt-token` context the admin bearer token.
pub fn write_admin(path: &Path, server_url: &str, pki: &Pki) -> Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: oxivirt
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: kubernetes-admin-token
  user:
    token: {token}
contexts:
- name: oxivirt
  context:
    cluster: oxivirt
    user: kubernetes-admin
    namespace: default
- name: oxivirt-token
  context:
    cluster: oxivirt
    user: kubernetes-admin-token
    namespace: default
current-context: oxivirt
preferences: {{}}
",
        ca = b64(&pki.ca_cert_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
        token = pki.admin_token,
    );
    write_private(path, text.as_bytes())
}

/// Writes `components.kubeconfig`: the identity oxivirt's own controllers and local node
/// agent use (bearer token of the `system:oxivirt-components` group).
pub fn write_components(path: &Path, server_url: &str, pki: &Pki) -> Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(pki.ca_cert_pem.as_bytes());
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: oxivirt
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: oxivirt-components
  user:
    token: {token}
contexts:
- name: oxivirt-components
  context:
    cluster: oxivirt
    user: oxivirt-components
current-context: oxivirt-components
",
        token = pki.components_token,
    );
    write_private(path, text.as_bytes())
}

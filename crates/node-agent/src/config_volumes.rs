//! Config volumes of a VMI (`configMap`, `secret`, `serviceAccount`, `downwardAPI`,
//! `sysprep`): what a kubelet mounts into upstream's virt-launcher Pod, written here into
//! `<run dir>/config/<volume>/` (0700, files 0600) and named in `launch.json` `disks`. The
//! launcher makes an ISO image of each directory (`oxivirt_launcher::config_disks`).
//!
//! Objects are read from the VMI's namespace only (the manual's same-namespace rule). A
//! missing ConfigMap or Secret (unless `optional`), ServiceAccount or sysprep source is a
//! [`Error::Missing`] that the caller reports as a failed Pod and VMI — after a short wait,
//! because a VM and its ConfigMap applied together may arrive in either order. A
//! ServiceAccount's `token` comes from a TokenRequest bound to the Pod, as a kubelet's
//! projected volume gets it; `ca.crt` from the namespace's `kube-root-ca.crt`, else the
//! cluster CA the agent was given.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::rundir::DiskSpec;

/// How long a missing object is waited for before the Pod fails.
const MISSING_WAIT: Duration = Duration::from_secs(10);
/// How often a missing object is looked for again.
const MISSING_POLL: Duration = Duration::from_millis(500);
/// The token lifetime a kubelet asks for (one hour plus seven seconds).
const TOKEN_SECONDS: i64 = 3607;

/// Why a config volume cannot be provided.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The object the volume names does not exist in the VMI's namespace.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {kind} \"{name}\" not found")]
    Missing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    /// The volume cannot be filled as asked.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    Invalid { volume: String, reason: String },
    /// An API call failed (retried).
    #[error("volume {volume}: {action} failed")]
    Api {
        volume: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The volume's directory could not be written (retried).
    #[error("volume {volume}: cannot write {}", path.display())]
    Write {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when retrying cannot help: the Pod fails with this error.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, Error::Missing { .. } | Error::Invalid { .. })
    }
}

/// The files of one volume, by relative path.
type Files = BTreeMap<String, Vec<u8>>;

/// Writes every config volume of `vmi` under `run_dir/config/` and returns their
/// `launch.json` disks.
///
/// # Errors
/// [`Error::Missing`] or [`Error::Invalid`] (permanent), [`Error::Api`] or [`Error::Write`]
/// (worth a retry).
pub(crate) async fn materialise(
    client: &kube::Client,
    cluster_ca: &[Vec<u8>],
    pod: &Pod,
    vmi: &Value,
    run_dir: &Path,
) -> Result<BTreeMap<String, DiskSpec>, Error> {
    let namespace = pod.namespace().unwrap_or_default();
    let reader = Reader {
        client,
        namespace: &namespace,
    };
    let mut disks = BTreeMap::new();
    for volume in vmi["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default().to_string();
        let files = if let Some(source) = volume.get("configMap") {
            let object = source["name"].as_str().unwrap_or_default();
            let optional = source["optional"] == true;
            reader.config_map(&name, object, optional).await?
        } else if let Some(source) = volume.get("secret") {
            let object = source["secretName"].as_str().unwrap_or_default();
            let optional = source["optional"] == true;
            reader.secret(&name, object, optional).await?
        } else if let Some(source) = volume.get("serviceAccount") {
            let account = source["serviceAccountName"].as_str().unwrap_or_default();
            reader
                .service_account(&name, account, pod, cluster_ca)
                .await?
        } else if let Some(source) = volume.get("downwardAPI") {
            let allocatable = if crate::downward_api::needs_allocatable(source) {
                reader.allocatable(&name, pod).await?
            } else {
                BTreeMap::new()
            };
            crate::downward_api::files(source, pod, &allocatable).map_err(|reason| {
                Error::Invalid {
                    volume: name.clone(),
                    reason,
                }
            })?
        } else if let Some(source) = volume.get("sysprep") {
            reader.sysprep(&name, source).await?
        } else {
            continue;
        };
        let dir = run_dir.join("config").join(&name);
        write_volume(&name, &dir, &files)?;
        disks.insert(
            name,
            DiskSpec {
                path: dir,
                format: "raw".into(),
                readonly: true,
                ephemeral: false,
            },
        );
    }
    Ok(disks)
}

struct Reader<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
}

impl Reader<'_> {
    /// Gets `name`, waiting up to [`MISSING_WAIT`] for it to appear.
    async fn get<K>(&self, volume: &str, kind: &'static str, name: &str) -> Result<Option<K>, Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let deadline = tokio::time::Instant::now() + MISSING_WAIT;
        loop {
            let found = api.get_opt(name).await.map_err(|source| Error::Api {
                volume: volume.into(),
                action: format!("reading {kind} {}/{name}", self.namespace),
                source,
            })?;
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(MISSING_POLL).await;
        }
    }

    /// The allocatable resources of the Pod's node: a kubelet's value for an unset limit.
    async fn allocatable(
        &self,
        volume: &str,
        pod: &Pod,
    ) -> Result<BTreeMap<String, Quantity>, Error> {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let found = nodes.get(&node).await.map_err(|source| Error::Api {
            volume: volume.into(),
            action: format!("reading node {node}"),
            source,
        })?;
        Ok(found.status.and_then(|s| s.allocatable).unwrap_or_default())
    }

    async fn config_map(&self, volume: &str, name: &str, optional: bool) -> Result<Files, Error> {
        let Some(map) = self.get::<ConfigMap>(volume, "configmap", name).await? else {
            return missing_unless(optional, volume, "configmap", name);
        };
        Ok(config_map_files(&map))
    }

    async fn secret(&self, volume: &str, name: &str, optional: bool) -> Result<Files, Error> {
        let Some(secret) = self.get::<Secret>(volume, "secret", name).await? else {
            return missing_unless(optional, volume, "secret", name);
        };
        Ok(secret_files(&secret))
    }

    async fn sysprep(&self, volume: &str, source: &Value) -> Result<Files, Error> {
        let files = if let Some(name) = source.pointer("/configMap/name").and_then(Value::as_str) {
            self.config_map(volume, name, false).await?
        } else if let Some(name) = source.pointer("/secret/name").and_then(Value::as_str) {
            self.secret(volume, name, false).await?
        } else {
            return Err(Error::Invalid {
                volume: volume.into(),
                reason: "sysprep names neither a configMap nor a secret".into(),
            });
        };
        let answer = |f: &String| {
            let lower = f.to_ascii_lowercase();
            lower == "autounattend.xml" || lower == "unattend.xml"
        };
        if !files.keys().any(answer) {
            // Upstream's own words for this mistake.
            return Err(Error::Invalid {
                volume: volume.into(),
                reason: "Sysprep drive should contain autounattend.xml or unattend.xml but neither were found.".into(),
            });
        }
        Ok(files)
    }

    async fn service_account(
        &self,
        volume: &str,
        account: &str,
        pod: &Pod,
        cluster_ca: &[Vec<u8>],
    ) -> Result<Files, Error> {
        if self
            .get::<ServiceAccount>(volume, "serviceaccount", account)
            .await?
            .is_none()
        {
            return missing_unless(false, volume, "serviceaccount", account);
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(TOKEN_SECONDS),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod.name_any()),
                    uid: pod.uid(),
                }),
            },
            ..TokenRequest::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), self.namespace);
        let issued = api
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|source| Error::Api {
                volume: volume.into(),
                action: format!(
                    "requesting a token for serviceaccount {}/{account}",
                    self.namespace
                ),
                source,
            })?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        let roots: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
        let published = roots
            .get_opt("kube-root-ca.crt")
            .await
            .ok()
            .flatten()
            .and_then(|map| map.data?.get("ca.crt").cloned());
        let ca = published.unwrap_or_else(|| pem_certificates(cluster_ca));
        Ok(Files::from([
            ("ca.crt".to_string(), ca.into_bytes()),
            ("namespace".to_string(), self.namespace.as_bytes().to_vec()),
            ("token".to_string(), token.into_bytes()),
        ]))
    }
}

fn missing_unless(
    optional: bool,
    volume: &str,
    kind: &'static str,
    name: &str,
) -> Result<Files, Error> {
    if optional {
        return Ok(Files::new());
    }
    Err(Error::Missing {
        volume: volume.into(),
        kind,
        name: name.into(),
    })
}

/// `data` as text and `binaryData` as bytes, one file per key.
fn config_map_files(map: &ConfigMap) -> Files {
    let text = map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

/// `data`, decoded, one file per key.
fn secret_files(secret: &Secret) -> Files {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// The cluster CA certificates (DER) as PEM, what `ca.crt` holds.
fn pem_certificates(ders: &[Vec<u8>]) -> String {
    let mut pem = String::new();
    for der in ders {
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// Replaces `dir` with `files`. Paths are relative and stay inside `dir` (keys the API
/// server accepted, or downward API paths, which the kubelet also confines).
fn write_volume(volume: &str, dir: &Path, files: &Files) -> Result<(), Error> {
    let write_err = |path: &Path| {
        let (volume, path) = (volume.to_string(), path.to_owned());
        move |source| Error::Write {
            volume,
            path,
            source,
        }
    };
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write_err(dir)(e)),
        _ => {}
    }
    let mkdir = |path: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(write_err(path))
    };
    mkdir(dir)?;
    for (relative, data) in files {
        let relative = Path::new(relative);
        let confined = !relative.as_os_str().is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !confined {
            return Err(Error::Invalid {
                volume: volume.into(),
                reason: format!(
                    "file path {} must be relative without '..'",
                    relative.display()
                ),
            });
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(write_err(&path))?;
        file.write_all(data).map_err(write_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_volume_directory_is_replaced_and_confined() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("config/v");
        let files = Files::from([("a".into(), b"1".to_vec()), ("sub/b".into(), b"2".to_vec())]);
        write_volume("v", &dir, &files).unwrap();
        write_volume("v", &dir, &Files::from([("a".into(), b"3".to_vec())])).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert!(!dir.join("sub").exists(), "the previous contents are gone");
        for bad in ["../x", "/etc/x", ""] {
            let error =
                write_volume("v", &dir, &Files::from([(bad.into(), Vec::new())])).unwrap_err();
            assert!(error.is_permanent(), "{bad}: {error}");
        }
    }

    #[test]
    fn missing_objects_fail_unless_optional_with_the_kubelets_words() {
        let error = missing_unless(false, "cfg", "configmap", "app").unwrap_err();
        assert_eq!(
            error.to_string(),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"app\" not found"
        );
        assert!(missing_unless(true, "cfg", "configmap", "app")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn config_map_and_secret_keys_become_files() {
        let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"},
            "data": {"greeting": "hello"}, "binaryData": {"blob": "AAE="}}))
        .unwrap();
        let files = config_map_files(&map);
        assert_eq!(files["greeting"], b"hello");
        assert_eq!(files["blob"], [0, 1]);
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "s"},
            "data": {"password": "czNjcjN0"}}))
        .unwrap();
        assert_eq!(secret_files(&secret)["password"], b"s3cr3t");
    }

    #[test]
    fn ca_certificates_are_pem_wrapped_at_64_columns() {
        let pem = pem_certificates(&[vec![0u8; 60]]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}

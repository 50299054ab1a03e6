//! containerDisk pulls into the node's image cache.
//!
//! An image is resolved over the OCI distribution API (module `oci`): a manifest list picks
//! linux/amd64, every blob is verified against its digest, and the single regular file under
//! `/disk/` (the manual's containerDisk format) is extracted to
//! `<data-dir>/images/sha256/<hex of the manifest digest>/disk.img`, with its format (`qcow2`
//! or `raw`, from `qemu-img info`) in `image.json` beside it. Images whose qcow2 has a backing
//! file or an external data file are refused: such a header makes QEMU open a host path the
//! image's author chose.
//!
//! Plain HTTP is used for loopback registries and for those listed as insecure (HyperConverged
//! `spec.storageImport.insecureRegistries`, the list CDI uses); everything else is HTTPS.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use oci::Session;

mod extract;
mod oci;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image reference does not parse.
    #[error("invalid image reference {image:?}: {message}")]
    InvalidReference { image: String, message: String },
    /// The registry could not be reached or the connection broke.
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry refused our (lack of) credentials.
    #[error("registry {registry} refused access to {repository}")]
    Unauthorized {
        registry: String,
        repository: String,
    },
    /// The registry has no such manifest or blob.
    #[error("registry {registry} has no {what}")]
    NotFound { registry: String, what: String },
    /// The registry answered something the distribution API does not allow.
    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },
    /// Content did not hash to the digest that names it.
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The manifest is not a containerDisk we can use.
    #[error("image {image} is not a usable containerDisk: {message}")]
    NotAContainerDisk { image: String, message: String },
    /// The disk would make QEMU open files the image chose (backing or data files).
    #[error("image {image} is refused: {message}")]
    HostileImage { image: String, message: String },
    /// `imagePullPolicy: Never` and the image is not in the cache.
    #[error("image {image} is not present on this node and imagePullPolicy is Never")]
    NotPresent { image: String },
    /// A cache file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `qemu-img info` could not be run or did not understand the disk.
    #[error("qemu-img info failed for {}: {message}", path.display())]
    QemuImg { path: PathBuf, message: String },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kubernetes `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference at the registry on every pull (the cache still saves blobs).
    Always,
    /// Use the cached image for this reference when there is one.
    IfNotPresent,
    /// Never contact a registry.
    Never,
}

impl PullPolicy {
    /// The policy named `value`, else KubeVirt's default: `Always` for `:latest` or no tag,
    /// `IfNotPresent` otherwise.
    pub fn from_spec(value: Option<&str>, image: &str) -> Self {
        match value {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => match ImageReference::parse(image) {
                Ok(r) if r.digest.is_some() => PullPolicy::IfNotPresent,
                Ok(r) if r.tag.as_deref().is_some_and(|t| t != "latest") => {
                    PullPolicy::IfNotPresent
                }
                _ => PullPolicy::Always,
            },
        }
    }
}

/// Registry credentials (from a dockerconfigjson pull secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `host[:port]` as written (Docker Hub is `docker.io`).
    pub registry: String,
    /// Repository path (`library/` added for Docker Hub's single-name images).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// `sha256:<hex>` digest, if any.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `image` (a `docker://` prefix is accepted).
    ///
    /// # Errors
    /// [`Error::InvalidReference`] for an empty repository or a malformed digest.
    pub fn parse(image: &str) -> Result<Self> {
        let invalid = |message: &str| Error::InvalidReference {
            image: image.into(),
            message: message.into(),
        };
        let rest = image.strip_prefix("docker://").unwrap_or(image);
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) if d.starts_with("sha256:") && d.len() == 71 => (r, Some(d.to_string())),
            Some(_) => return Err(invalid("digest must be sha256:<64 hex digits>")),
            None => (rest, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path)
            }
            _ => ("docker.io".to_string(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        if repository.is_empty() || tag.as_deref() == Some("") {
            return Err(invalid("empty repository or tag"));
        }
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest to ask the registry for.
    fn reference(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| "latest".into())
    }

    /// The registry host the API is served from.
    fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// True for `localhost`, `127.0.0.0/8` and `[::1]` registries.
    fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    self.registry.as_str()
                }
            });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// What one pull asks for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The image reference.
    pub image: String,
    /// When to contact the registry.
    pub policy: PullPolicy,
    /// Credentials for the image's registry, if a pull secret has some.
    pub credentials: Option<Credentials>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

/// The format of a cached disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// QEMU's qcow2 (no backing file, no external data file).
    Qcow2,
    /// A raw disk image.
    Raw,
}

impl DiskFormat {
    /// `qcow2` or `raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// A containerDisk in the node cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The image manifest's digest (the cache key).
    pub digest: String,
    /// `.../disk.img`, never to be written to (VMs use overlays).
    pub path: PathBuf,
    /// The disk's format.
    pub format: DiskFormat,
    /// True when no blob had to be downloaded.
    pub cached: bool,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: DiskFormat,
    image: String,
    digest: String,
}

/// The node's containerDisk cache under `<data-dir>/images`.
#[derive(Clone)]
pub struct ImageCache {
    root: PathBuf,
    qemu_img: String,
}

impl ImageCache {
    /// A cache rooted at `<data_dir>/images`, using `qemu-img` from `PATH`.
    pub fn new(data_dir: &Path) -> Self {
        ImageCache {
            root: data_dir.join("images"),
            qemu_img: "qemu-img".into(),
        }
    }

    fn entry_dir(&self, digest: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn ref_file(&self, image: &ImageReference) -> PathBuf {
        let key = format!(
            "{}/{}:{}",
            image.registry,
            image.repository,
            image.reference()
        );
        self.root
            .join("refs")
            .join(&oci::sha256_digest(key.as_bytes())[7..])
    }

    fn cached(&self, digest: &str) -> Option<PulledImage> {
        let dir = self.entry_dir(digest);
        let entry: CacheEntry =
            serde_json::from_slice(&std::fs::read(dir.join("image.json")).ok()?).ok()?;
        let path = dir.join("disk.img");
        path.is_file().then_some(PulledImage {
            digest: entry.digest,
            path,
            format: entry.format,
            cached: true,
        })
    }

    /// Makes `request.image` present in the cache and returns it.
    ///
    /// # Errors
    /// Any [`Error`]: unreachable or refusing registry, digest mismatch, not a containerDisk,
    /// hostile disk, `Never` without a cached copy, cache I/O.
    pub async fn pull(&self, request: &PullRequest) -> Result<PulledImage> {
        let image = ImageReference::parse(&request.image)?;
        let known = match &image.digest {
            Some(d) => Some(d.clone()),
            None => std::fs::read_to_string(self.ref_file(&image)).ok(),
        };
        let hit = known.as_deref().and_then(|d| self.cached(d.trim()));
        match (request.policy, hit) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(hit)) => return Ok(hit),
            (PullPolicy::Never, None) => {
                return Err(Error::NotPresent {
                    image: request.image.clone(),
                })
            }
            _ => {}
        }
        let insecure = image.is_loopback()
            || request.insecure_registries.iter().any(|r| {
                r.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    == image.registry
            });
        let scheme = if insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", image.api_host())).map_err(|e| {
            Error::InvalidReference {
                image: request.image.clone(),
                message: e.to_string(),
            }
        })?;
        let mut session = Session::new(
            oci::client(),
            base,
            image.repository.clone(),
            request.credentials.clone(),
        );
        let (manifest, digest) = self.resolve(&mut session, &image, &request.image).await?;
        let pulled = match self.cached(&digest) {
            Some(hit) => hit,
            None => {
                self.download(&mut session, &manifest, &digest, &request.image)
                    .await?
            }
        };
        let ref_file = self.ref_file(&image);
        let io_err = |source| Error::Io {
            path: ref_file.clone(),
            source,
        };
        std::fs::create_dir_all(self.root.join("refs")).map_err(io_err)?;
        std::fs::write(&ref_file, &digest).map_err(io_err)?;
        Ok(pulled)
    }

    /// Resolves the reference to a linux/amd64 image manifest and its digest.
    async fn resolve(
        &self,
        session: &mut Session,
        image: &ImageReference,
        name: &str,
    ) -> Result<(Value, String)> {
        let not_disk = |message: String| Error::NotAContainerDisk {
            image: name.into(),
            message,
        };
        let (body, media_type, digest) = session.manifest(&image.reference()).await?;
        let parsed: Value = serde_json::from_slice(&body)
            .map_err(|e| not_disk(format!("manifest is not JSON: {e}")))?;
        if !(media_type.contains("index") || media_type.contains("manifest.list")) {
            return Ok((parsed, digest));
        }
        let chosen = parsed["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                let p = &m["platform"];
                p.is_null() || (p["os"] == "linux" && p["architecture"] == "amd64")
            })
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| not_disk("the manifest list has no linux/amd64 image".into()))?
            .to_string();
        let (body, _, digest) = session.manifest(&chosen).await?;
        let parsed = serde_json::from_slice(&body)
            .map_err(|e| not_disk(format!("manifest is not JSON: {e}")))?;
        Ok((parsed, digest))
    }

    /// Downloads and verifies every layer, extracts `/disk/<file>`, checks it and moves it
    /// into the cache.
    async fn download(
        &self,
        session: &mut Session,
        manifest: &Value,
        digest: &str,
        name: &str,
    ) -> Result<PulledImage> {
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["digest"].as_str().map(str::to_string))
            .collect();
        if layers.is_empty() {
            return Err(Error::NotAContainerDisk {
                image: name.into(),
                message: "the manifest has no layers".into(),
            });
        }
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let tmp = self
            .root
            .join(format!(".pull-{}-{}", std::process::id(), &digest[7..19]));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let result = async {
            let disk = tmp.join("disk.img");
            let mut found = Vec::new();
            for (i, layer) in layers.iter().enumerate() {
                let blob = tmp.join(format!("layer-{i}"));
                session.blob_to_file(layer, &blob).await?;
                let (blob2, disk2, name2) = (blob.clone(), disk.clone(), name.to_string());
                let names = tokio::task::spawn_blocking(move || {
                    extract::disk_from_layer(&blob2, &disk2, &name2)
                })
                .await
                .map_err(|e| Error::Io {
                    path: blob.clone(),
                    source: std::io::Error::other(e),
                })??;
                found.extend(names);
                let _ = std::fs::remove_file(&blob);
            }
            found.sort();
            found.dedup();
            if found.len() != 1 {
                return Err(Error::NotAContainerDisk {
                    image: name.into(),
                    message: format!("expected one file under /disk/, found {found:?}"),
                });
            }
            let format = extract::check_disk(&self.qemu_img, &disk, name).await?;
            let entry = CacheEntry {
                format,
                image: name.into(),
                digest: digest.into(),
            };
            let json = serde_json::to_vec_pretty(&entry).map_err(|e| Error::Io {
                path: tmp.join("image.json"),
                source: e.into(),
            })?;
            std::fs::write(tmp.join("image.json"), json).map_err(io_err(&tmp))?;
            let dest = self.entry_dir(digest);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            if std::fs::rename(&tmp, &dest).is_err() && self.cached(digest).is_none() {
                return Err(Error::Io {
                    path: dest,
                    source: std::io::Error::other("cannot move the pulled image into the cache"),
                });
            }
            Ok(PulledImage {
                digest: digest.into(),
                path: self.entry_dir(digest).join("disk.img"),
                format,
                cached: false,
            })
        }
        .await;
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }
}

/// Credentials for `registry` from a `.dockerconfigjson` (`{"auths": {...}}`) or legacy
/// `.dockercfg` document; keys may carry a scheme and path (`https://index.docker.io/v1/`).
pub fn credentials_from_docker_config(document: &[u8], registry: &str) -> Option<Credentials> {
    use base64::Engine;
    let value: Value = serde_json::from_slice(document).ok()?;
    let auths = value.get("auths").unwrap_or(&value).as_object()?;
    let wanted = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let (_, entry) = auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or(host);
        host == wanted || (wanted == "index.docker.io" && host == "docker.io")
    })?;
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Some(Credentials {
            username: u.into(),
            password: p.into(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let (u, p) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Credentials {
        username: u.into(),
        password: p.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker_does() {
        let r = ImageReference::parse("quay.io/containerdisks/fedora:41").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("quay.io", "containerdisks/fedora", Some("41"))
        );
        let r = ImageReference::parse("127.0.0.1:5000/oxivirt/test-guest").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", None)
        );
        assert!(r.is_loopback());
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageReference::parse(&format!("docker://localhost:5000/x@{digest}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert!(r.is_loopback());
        assert!(ImageReference::parse("x@sha256:short").is_err());
        assert!(!ImageReference::parse("registry.example:5000/a")
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn default_pull_policy_follows_kubevirt() {
        assert_eq!(
            PullPolicy::from_spec(None, "r.io/a:latest"),
            PullPolicy::Always
        );
        assert_eq!(PullPolicy::from_spec(None, "r.io/a"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_spec(None, "r.io/a:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_spec(Some("Never"), "r.io/a"),
            PullPolicy::Never
        );
    }

    #[test]
    fn docker_config_credentials_match_by_host() {
        let doc = br#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"},
                                 "reg.example:5000": {"username": "a", "password": "b"}}}"#;
        assert_eq!(
            credentials_from_docker_config(doc, "docker.io")
                .unwrap()
                .username,
            "u"
        );
        assert_eq!(
            credentials_from_docker_config(doc, "reg.example:5000")
                .unwrap()
                .password,
            "b"
        );
        assert_eq!(credentials_from_docker_config(doc, "other.example"), None);
    }
}

//! containerDisk pulls into the node's image cache.
//!
//! An image is resolved over the OCI distribution API (module `oci`): a manifest list picks
//! linux/amd64, every blob is verified against its digest, and the single regular file under
//! `/disk/` (the manual's containerDisk format) is extracted to
//! `<data-dir>/images/sha256/<hex of the manifest digest>/disk.img`, with its format (`qcow2`
//! or `raw`, from `qemu-img info`) in `image.json` beside it. Images whose qcow2 has a backing
//! file or an external data file are refused: such a header makes QEMU open a host path the
//! image's author chose. For `kernelBoot.container` images only the named regular files
//! (kernel, initrd) are unpacked, under `<data-dir>/images/files/sha256/<hex>/`.
//!
//! Plain HTTP is used for loopback registries and for those listed as insecure (HyperConverged
//! `spec.storageImport.insecureRegistries`, the list CDI uses); everything else is HTTPS.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use oci::Session;

mod extract;
mod oci;
mod reference;

pub use reference::{credentials_from_docker_config, Credentials, ImageReference, PullPolicy};

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

/// Files unpacked from an image (see [`ImageCache::pull_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledFiles {
    /// The image manifest's digest.
    pub digest: String,
    /// The root the files were unpacked under (`root.join("boot/vmlinuz")`).
    pub root: PathBuf,
    /// True when no blob had to be downloaded.
    pub cached: bool,
}

/// What the pull policy and the registry say about an image.
enum Located {
    /// The cache has the image under this digest.
    Cached(String),
    /// It must be downloaded.
    Remote {
        session: Box<Session>,
        manifest: Value,
        digest: String,
    },
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
    /// One pull at a time per image reference (as the kubelet's image puller): VMs that
    /// start together from an image the node lacks wait for the first pull and then find
    /// it cached, rather than each downloading, unpacking and hashing it.
    pulls:
        std::sync::Arc<std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>>,
}

impl ImageCache {
    /// A cache rooted at `<data_dir>/images`, using `qemu-img` from `PATH`.
    pub fn new(data_dir: &Path) -> Self {
        ImageCache {
            root: data_dir.join("images"),
            qemu_img: "qemu-img".into(),
            pulls: Default::default(),
        }
    }

    fn entry_dir(&self, digest: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn files_root(&self, digest: &str) -> PathBuf {
        self.root
            .join("files/sha256")
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
        let _turn = self.turn(&request.image).await;
        let have = |digest: &str| self.cached(digest).is_some();
        match self.locate(request, have).await? {
            Located::Cached(digest) => self.cached(&digest).ok_or(Error::NotPresent {
                image: request.image.clone(),
            }),
            Located::Remote {
                mut session,
                manifest,
                digest,
            } => {
                self.download(&mut session, &manifest, &digest, &request.image)
                    .await
            }
        }
    }

    /// Makes the regular files `paths` (absolute paths inside the image, e.g. a
    /// `kernelBoot.container`'s `kernelPath` and `initrdPath`) present under a cached root
    /// directory and returns it; nothing else of the image is unpacked.
    ///
    /// # Errors
    /// As [`ImageCache::pull`]; [`Error::NotAContainerDisk`] for a path with `..`, a path the
    /// image lacks, or one that is not a regular file.
    pub async fn pull_files(&self, request: &PullRequest, paths: &[String]) -> Result<PulledFiles> {
        let _turn = self.turn(&request.image).await;
        let wanted = extract::normalize_paths(paths, &request.image)?;
        let have = |digest: &str| {
            let root = self.files_root(digest);
            wanted.iter().all(|p| root.join(p).is_file())
        };
        let (digest, cached) = match self.locate(request, have).await? {
            Located::Cached(digest) => (digest, true),
            Located::Remote {
                mut session,
                manifest,
                digest,
            } => {
                self.download_files(&mut session, &manifest, &digest, &request.image, &wanted)
                    .await?;
                (digest, false)
            }
        };
        Ok(PulledFiles {
            root: self.files_root(&digest),
            digest,
            cached,
        })
    }

    /// Waits for other pulls of `image` on this node to end; the turn lasts as long as the
    /// guard. The entry stays in the map (one per image reference the node has pulled).
    async fn turn(&self, image: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .pulls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(image.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Applies the pull policy: a cached digest (`have`) when the policy allows, else the
    /// resolved manifest with an open registry session. Records reference → digest.
    async fn locate(&self, request: &PullRequest, have: impl Fn(&str) -> bool) -> Result<Located> {
        let image = ImageReference::parse(&request.image)?;
        let known = match &image.digest {
            Some(d) => Some(d.clone()),
            None => std::fs::read_to_string(self.ref_file(&image)).ok(),
        };
        let hit = known.map(|d| d.trim().to_string()).filter(|d| have(d));
        match (request.policy, hit) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(hit)) => {
                return Ok(Located::Cached(hit))
            }
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
        let ref_file = self.ref_file(&image);
        let io_err = |source| Error::Io {
            path: ref_file.clone(),
            source,
        };
        std::fs::create_dir_all(self.root.join("refs")).map_err(io_err)?;
        std::fs::write(&ref_file, &digest).map_err(io_err)?;
        if have(&digest) {
            return Ok(Located::Cached(digest));
        }
        Ok(Located::Remote {
            session: Box::new(session),
            manifest,
            digest,
        })
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

    /// A fresh scratch directory for one pull (removed by the caller).
    fn scratch(&self, digest: &str) -> Result<PathBuf> {
        // Unique per pull: two VMs of one image start together on a fresh node, and a shared
        // scratch directory would be wiped by the second pull under the first.
        static PULLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PULLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = digest.get(7..19).unwrap_or(digest);
        let tmp = self
            .root
            .join(format!(".pull-{}-{n}-{prefix}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        Ok(tmp)
    }

    /// Downloads and verifies every layer in order into `tmp`, running `extract` on each
    /// (in a blocking task) and returning the union of what it found.
    async fn fetch_layers<F>(
        session: &mut Session,
        manifest: &Value,
        name: &str,
        tmp: &Path,
        extract: F,
    ) -> Result<Vec<String>>
    where
        F: Fn(&Path) -> Result<Vec<String>> + Clone + Send + 'static,
    {
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
        let mut found = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let blob = tmp.join(format!("layer-{i}"));
            session.blob_to_file(layer, &blob).await?;
            let (run, blob2) = (extract.clone(), blob.clone());
            let names = tokio::task::spawn_blocking(move || run(&blob2))
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
        Ok(found)
    }

    /// Downloads the image, extracts `/disk/<file>`, checks it and moves it into the cache.
    async fn download(
        &self,
        session: &mut Session,
        manifest: &Value,
        digest: &str,
        name: &str,
    ) -> Result<PulledImage> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let tmp = self.scratch(digest)?;
        let result = async {
            let disk = tmp.join("disk.img");
            let (disk2, name2) = (disk.clone(), name.to_string());
            let found = Self::fetch_layers(session, manifest, name, &tmp, move |blob: &Path| {
                extract::disk_from_layer(blob, &disk2, &name2)
            })
            .await?;
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
                // A concurrent pull won the rename, or an interrupted one left an incomplete
                // entry: an entry without its image.json and disk is replaced, never trusted.
                let _ = std::fs::remove_dir_all(&dest);
                if std::fs::rename(&tmp, &dest).is_err() && self.cached(digest).is_none() {
                    return Err(Error::Io {
                        path: dest,
                        source: std::io::Error::other(
                            "cannot move the pulled image into the cache",
                        ),
                    });
                }
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

    /// Downloads the image and moves the `wanted` files into its files root.
    async fn download_files(
        &self,
        session: &mut Session,
        manifest: &Value,
        digest: &str,
        name: &str,
        wanted: &[String],
    ) -> Result<()> {
        let tmp = self.scratch(digest)?;
        let result = async {
            let unpacked = tmp.join("root");
            let (root2, name2, wanted2) = (unpacked.clone(), name.to_string(), wanted.to_vec());
            let found = Self::fetch_layers(session, manifest, name, &tmp, move |blob: &Path| {
                extract::files_from_layer(blob, &wanted2, &root2, &name2)
            })
            .await?;
            if let Some(missing) = wanted.iter().find(|w| !found.contains(w)) {
                return Err(Error::NotAContainerDisk {
                    image: name.into(),
                    message: format!("the image has no regular file /{missing}"),
                });
            }
            let root = self.files_root(digest);
            for path in wanted {
                let dest = root.join(path);
                if dest.is_file() {
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                std::fs::rename(unpacked.join(path), &dest).map_err(|source| Error::Io {
                    path: dest.clone(),
                    source,
                })?;
            }
            Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }
}

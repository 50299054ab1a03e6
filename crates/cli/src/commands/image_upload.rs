//! `virtctl image-upload dv|pvc NAME --image-path FILE [--size SIZE] [--no-create]
//! [--insecure] [--uploadproxy-url URL] [--storage-class C] [--access-mode M]
//! [--volume-mode block|filesystem] [--block-volume] [--force-bind] [--wait-secs N]`
//! (the manual's §7.2.4.3), as upstream's: creates an upload DataVolume (or an annotated
//! claim), waits for its upload worker, gets an UploadTokenRequest token, sends the image
//! to the upload proxy (async path when the proxy answers HEAD on it) with a progress line,
//! and waits until the claim says the processing succeeded.
//!
//! The proxy URL: `--uploadproxy-url`, else CDIConfig `status.uploadProxyURL`, else — an
//! oxivirt rule — the kubeconfig's API server, which serves the upload paths itself.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::upload_http::{self, Target};
use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// Upstream's poll interval, the slowest ours gets (see [`Poll`]).
const POLL: Duration = Duration::from_secs(2);
/// The first wait between polls.
const FIRST_POLL: Duration = Duration::from_millis(100);

/// Waits between polls that start at [`FIRST_POLL`] and double up to upstream's [`POLL`]:
/// a worker is often ready, and a small upload processed, well within upstream's first
/// 2 s wait, which was most of the time of an upload of a few hundred MiB; long waits
/// still ask the API server only every 2 s.
struct Poll(Duration);

impl Poll {
    fn new() -> Poll {
        Poll(FIRST_POLL)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(POLL);
    }
}
/// Upstream's bound on waiting for the processing after the bytes are sent.
const PROCESSING_WAIT: Duration = Duration::from_secs(24 * 3600);
const UPLOAD_TARGET: &str = "cdi.kubevirt.io/storage.upload.target";
const BIND_IMMEDIATE: &str = "cdi.kubevirt.io/storage.bind.immediate.requested";
const POD_READY: &str = "cdi.kubevirt.io/storage.pod.ready";
const POD_PHASE: &str = "cdi.kubevirt.io/storage.pod.phase";
const RUNNING_REASON: &str = "cdi.kubevirt.io/storage.condition.running.reason";
const RUNNING_MESSAGE: &str = "cdi.kubevirt.io/storage.condition.running.message";

/// `virtctl image-upload` flags (upstream's names).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ImageUploadArgs {
    /// `dv|pvc NAME`.
    #[arg(num_args = 0..=2)]
    pub args: Vec<String>,
    /// Allow insecure server connections when using HTTPS.
    #[arg(long)]
    pub insecure: bool,
    /// The URL of the cdi-upload proxy service.
    #[arg(long = "uploadproxy-url")]
    pub uploadproxy_url: Option<String>,
    /// DEPRECATED - The destination DataVolume/PVC name.
    #[arg(long = "pvc-name")]
    pub pvc_name: Option<String>,
    /// DEPRECATED - The size of the PVC to create (ex. 10Gi, 500Mi).
    #[arg(long = "pvc-size")]
    pub pvc_size: Option<String>,
    /// The size of the DataVolume to create (ex. 10Gi, 500Mi).
    #[arg(long)]
    pub size: Option<String>,
    /// The storage class for the PVC.
    #[arg(long = "storage-class")]
    pub storage_class: Option<String>,
    /// The access mode for the PVC.
    #[arg(long = "access-mode")]
    pub access_mode: Option<String>,
    /// DEPRECATED - Create a PVC with VolumeMode=Block (default Filesystem).
    #[arg(long = "block-volume")]
    pub block_volume: bool,
    /// Specify the VolumeMode (block/filesystem) used to create the PVC.
    #[arg(long = "volume-mode")]
    pub volume_mode: Option<String>,
    /// Path to the local VM image.
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Don't attempt to create a new DataVolume/PVC.
    #[arg(long = "no-create")]
    pub no_create: bool,
    /// Seconds to wait for upload pod to start.
    #[arg(long = "wait-secs", default_value_t = 300)]
    pub wait_secs: u64,
    /// Force bind the PVC, ignoring the WaitForFirstConsumer logic.
    #[arg(long = "force-bind")]
    pub force_bind: bool,
}

/// A validated `image-upload`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUploadRequest {
    pub pvc: bool,
    pub name: String,
    pub size: Option<String>,
    pub image: PathBuf,
    pub volume_mode: Option<&'static str>,
    pub args: ImageUploadArgs,
    pub connection: ConnectionOptions,
}

impl ImageUploadRequest {
    /// Checks the arguments as upstream does.
    ///
    /// # Errors
    /// [`Error::Invalid`] with upstream's messages.
    pub fn from_args(args: ImageUploadArgs, connection: ConnectionOptions) -> Result<Self> {
        let size = match (&args.size, &args.pvc_size) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::Invalid("--pvc-size deprecated, use --size".into()))
            }
            (Some(s), _) | (None, Some(s)) => Some(s.clone()),
            (None, None) => None,
        };
        let (pvc, name) = match (&args.pvc_name, args.args.as_slice()) {
            (Some(_), [_, ..]) => {
                return Err(Error::Invalid("cannot use --pvc-name and args".into()))
            }
            (Some(name), []) => (true, name.clone()),
            (None, [kind, name]) => match kind.to_ascii_lowercase().as_str() {
                "dv" => (false, name.clone()),
                "pvc" => (true, name.clone()),
                other => return Err(Error::Invalid(format!("invalid resource type {other}"))),
            },
            (None, _) => return Err(Error::Invalid("expecting two args".into())),
        };
        let image = args
            .image_path
            .clone()
            .ok_or_else(|| Error::Invalid("required flag(s) \"image-path\" not set".into()))?;
        let volume_mode = match (args.volume_mode.as_deref(), args.block_volume) {
            (Some("block"), _) | (None, true) => Some("Block"),
            (Some("filesystem"), false) => Some("Filesystem"),
            (Some("filesystem"), true) => {
                return Err(Error::Invalid(
                    "incompatible --volume-mode 'filesystem' and --block-volume".into(),
                ))
            }
            (Some(other), _) => {
                return Err(Error::Invalid(format!(
                    "Invalid volume mode '{other}'. Valid values are 'block' and 'filesystem'."
                )))
            }
            (None, false) => None,
        };
        // A missing --size is refused only when a claim must be created (known once connected).
        Ok(ImageUploadRequest {
            pvc,
            name,
            size,
            image,
            volume_mode,
            args,
            connection,
        })
    }
}

fn refused(e: client::ClientError) -> Error {
    match e {
        client::ClientError::Request {
            source: kube::Error::Api(status),
            ..
        } => Error::Refused(status.message),
        other => Error::Refused(format!("{other}: {}", source_text(&other))),
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(ToString::to_string).unwrap_or_default()
}

async fn request(
    kube: &kube::Client,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> std::result::Result<Value, client::ClientError> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .map_err(|err| client::ClientError::Request {
            path: path.to_owned(),
            source: kube::Error::HttpError(err),
        })?;
    kube.request::<Value>(req)
        .await
        .map_err(|source| client::ClientError::Request {
            path: path.to_owned(),
            source,
        })
}

/// Runs the upload.
///
/// # Errors
/// Upstream's messages for refusals and timeouts; the proxy's answer for a failed upload.
pub fn run(req: &ImageUploadRequest, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(upload(req, out, err))
}

fn say(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "{text}").map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

async fn upload(req: &ImageUploadRequest, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    std::fs::File::open(&req.image)
        .map_err(|e| Error::Invalid(format!("open {}: {e}", req.image.display())))?;
    let config = client::load_config(&req.connection)
        .await
        .map_err(Error::Config)?;
    let ns = config.default_namespace.clone();
    let cluster_url = config.cluster_url.to_string();
    let roots = config.root_cert.clone().unwrap_or_default();
    let kube =
        kube::Client::try_from(config).map_err(|e| Error::Config(client::ClientError::Build(e)))?;
    let name = &req.name;
    let pvc_path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}");
    match request(&kube, http::Method::GET, &pvc_path, None).await {
        Ok(claim) => {
            let annotations = &claim["metadata"]["annotations"];
            if !annotations[UPLOAD_TARGET].is_string() {
                return Err(Error::Refused(format!(
                    "PVC {ns}/{name} not available for upload"
                )));
            }
            if annotations[POD_PHASE] == "Succeeded" {
                return Err(Error::Refused(format!(
                    "PVC {ns}/{name} already successfully imported/cloned/updated"
                )));
            }
            say(out, &format!("Using existing PVC {ns}/{name}"))?;
        }
        Err(e) if e.is_not_found() && !req.args.no_create => {
            let Some(size) = &req.size else {
                return Err(Error::Invalid(
                    "when creating a resource, the size must be specified".into(),
                ));
            };
            create(&kube, req, &ns, size).await?;
            let kind = if req.pvc {
                "PersistentVolumeClaim"
            } else {
                "DataVolume"
            };
            say(out, &format!("{kind} {ns}/{name} created"))?;
        }
        Err(e) => return Err(refused(e)),
    }
    wait_ready(&kube, req, &ns, out).await?;
    let proxy = proxy_url(&kube, req, &cluster_url).await?;
    say(out, &format!("Uploading data to {proxy}"))?;
    let token_request = json!({
        "apiVersion": "upload.cdi.kubevirt.io/v1beta1", "kind": "UploadTokenRequest",
        "metadata": {"name": "token-for-virtctl"},
        "spec": {"pvcName": name},
    });
    let token = request(
        &kube,
        http::Method::POST,
        &format!("/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/{ns}/uploadtokenrequests"),
        Some(&token_request),
    )
    .await
    .map_err(refused)?["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = url::Url::parse(&proxy)
        .map_err(|e| Error::Invalid(format!("invalid upload proxy URL {proxy}: {e}")))?;
    let target = Target {
        url,
        insecure: req.args.insecure,
        roots,
    };
    let path = if upload_http::head_ok(&target, "/v1beta1/upload-async", &token).await {
        "/v1beta1/upload-async"
    } else {
        "/v1beta1/upload"
    };
    say(out, "")?;
    let answer = upload_http::post_file(&target, path, &token, &req.image, err)
        .await
        .map_err(Error::Refused)?;
    if answer.status != 200 {
        return Err(Error::Refused(format!(
            "unexpected return value {}, {}",
            answer.status, answer.body
        )));
    }
    say(out, "Uploading data completed successfully, waiting for processing to complete, you can hit ctrl-c without interrupting the progress")?;
    match wait_processed(&kube, &pvc_path).await {
        Ok(()) => {
            say(out, "Processing completed successfully")?;
            say(
                out,
                &format!("Uploading {} completed successfully", req.image.display()),
            )
        }
        Err(e) => Err(e),
    }
}

async fn create(kube: &kube::Client, req: &ImageUploadRequest, ns: &str, size: &str) -> Result<()> {
    let mut annotations = serde_json::Map::new();
    if req.args.force_bind {
        annotations.insert(BIND_IMMEDIATE.into(), json!(""));
    }
    let mut spec = json!({"resources": {"requests": {"storage": size}}});
    if let Some(class) = &req.args.storage_class {
        spec["storageClassName"] = json!(class);
    }
    if let Some(mode) = &req.args.access_mode {
        spec["accessModes"] = json!([mode]);
    }
    if let Some(mode) = req.volume_mode {
        spec["volumeMode"] = json!(mode);
    }
    let (path, object) = if req.pvc {
        annotations.insert(UPLOAD_TARGET.into(), json!(""));
        if spec["accessModes"].is_null() {
            spec["accessModes"] = json!(["ReadWriteOnce"]);
        }
        (
            format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": req.name, "namespace": ns, "annotations": annotations},
                "spec": spec}),
        )
    } else {
        (
            format!("/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes"),
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                "metadata": {"name": req.name, "namespace": ns, "annotations": annotations},
                "spec": {"source": {"upload": {}}, "contentType": "kubevirt", "storage": spec}}),
        )
    };
    request(kube, http::Method::POST, &path, Some(&object))
        .await
        .map_err(refused)?;
    Ok(())
}

/// Waits for the upload worker: a DataVolume's `UploadReady`, a claim's
/// `storage.pod.ready`.
async fn wait_ready(
    kube: &kube::Client,
    req: &ImageUploadRequest,
    ns: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let name = &req.name;
    let deadline = Instant::now() + Duration::from_secs(req.args.wait_secs);
    let mut logged = false;
    let mut poll = Poll::new();
    loop {
        let ready = if req.pvc {
            let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}");
            match request(kube, http::Method::GET, &path, None).await {
                Ok(claim) => claim["metadata"]["annotations"][POD_READY] == "true",
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(refused(e)),
            }
        } else {
            let path = format!("/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes/{name}");
            match request(kube, http::Method::GET, &path, None).await {
                Ok(dv) => {
                    if dv["status"]["phase"] == "WaitForFirstConsumer" {
                        return Err(Error::Refused("cannot upload to DataVolume in WaitForFirstConsumer state, make sure the PVC is Bound".into()));
                    }
                    dv["status"]["phase"] == "UploadReady"
                }
                Err(e) if e.is_not_found() => {
                    say(out, &format!("DV {name} not found... "))?;
                    false
                }
                Err(e) => return Err(refused(e)),
            }
        };
        if ready {
            if logged {
                say(out, "Pod now ready")?;
            }
            return Ok(());
        }
        if !logged {
            say(
                out,
                &format!("Waiting for PVC {name} upload pod to be ready..."),
            )?;
            logged = true;
        }
        if Instant::now() >= deadline {
            return Err(Error::Refused("timed out waiting for the condition".into()));
        }
        poll.wait().await;
    }
}

/// `--uploadproxy-url`, else CDIConfig's `status.uploadProxyURL`, else the API server.
async fn proxy_url(
    kube: &kube::Client,
    req: &ImageUploadRequest,
    cluster_url: &str,
) -> Result<String> {
    let url = match &req.args.uploadproxy_url {
        Some(url) => url.clone(),
        None => {
            let config = request(
                kube,
                http::Method::GET,
                "/apis/cdi.kubevirt.io/v1beta1/cdiconfigs/config",
                None,
            )
            .await
            .ok();
            config
                .and_then(|c| c["status"]["uploadProxyURL"].as_str().map(str::to_string))
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| cluster_url.trim_end_matches('/').to_string())
        }
    };
    Ok(if url.contains("://") {
        url
    } else {
        format!("https://{url}")
    })
}

/// Waits for `storage.pod.phase: Succeeded` on the claim; a worker that failed the
/// processing (its claim's Running reason is `Error`) ends the wait with its message.
async fn wait_processed(kube: &kube::Client, pvc_path: &str) -> Result<()> {
    let deadline = Instant::now() + PROCESSING_WAIT;
    let mut poll = Poll::new();
    loop {
        let claim = request(kube, http::Method::GET, pvc_path, None)
            .await
            .map_err(refused)?;
        let annotations = &claim["metadata"]["annotations"];
        if annotations[POD_PHASE] == "Succeeded" {
            return Ok(());
        }
        if annotations[RUNNING_REASON] == "Error" {
            return Err(Error::Refused(format!(
                "processing the upload failed: {}",
                annotations[RUNNING_MESSAGE].as_str().unwrap_or_default()
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Refused("Timed out waiting for post upload processing to complete, please check upload pod status for progress".into()));
        }
        poll.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> ImageUploadArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ImageUploadArgs,
        }
        let full = std::iter::once("image-upload").chain(list.iter().copied());
        <Wrapper as clap::Parser>::try_parse_from(full)
            .map(|w| w.args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn refusal(list: &[&str]) -> String {
        ImageUploadRequest::from_args(args(list), ConnectionOptions::default())
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn arguments_are_checked_with_upstreams_messages() {
        assert_eq!(refusal(&["dv", "x", "--image-path", "f"]), "");
        assert_eq!(
            refusal(&["vm", "x", "--image-path", "f"]),
            "invalid resource type vm"
        );
        assert_eq!(refusal(&["dv", "--image-path", "f"]), "expecting two args");
        assert_eq!(
            refusal(&["dv", "x"]),
            "required flag(s) \"image-path\" not set"
        );
        assert_eq!(
            refusal(&[
                "dv",
                "x",
                "--image-path",
                "f",
                "--size",
                "1Gi",
                "--pvc-size",
                "2Gi"
            ]),
            "--pvc-size deprecated, use --size"
        );
        assert_eq!(
            refusal(&["dv", "x", "--image-path", "f", "--volume-mode", "disk"]),
            "Invalid volume mode 'disk'. Valid values are 'block' and 'filesystem'."
        );
    }

    #[test]
    fn the_deprecated_pvc_name_means_a_claim_and_block_volume_means_block() {
        let request = ImageUploadRequest::from_args(
            args(&[
                "--pvc-name",
                "p",
                "--image-path",
                "f",
                "--block-volume",
                "--pvc-size",
                "1Gi",
            ]),
            ConnectionOptions::default(),
        )
        .unwrap();
        assert!(request.pvc);
        assert_eq!(request.name, "p");
        assert_eq!(request.size.as_deref(), Some("1Gi"));
        assert_eq!(request.volume_mode, Some("Block"));
    }
}

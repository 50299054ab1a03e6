//! containerDisk pulls from a real registry (Debian's `docker-registry`), pushed with the
//! project's `push-containerdisk.sh`. Skipped, saying why, when a tool is missing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use flate2::write::GzEncoder;
use oxivirt_node_agent::registry::{
    Credentials, DiskFormat, Error, ImageCache, PullPolicy, PullRequest,
};
use serde_json::json;

pub fn missing_tool() -> Option<&'static str> {
    ["docker-registry", "qemu-img", "curl"]
        .into_iter()
        .find(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
}

pub struct Registry {
    child: Child,
    pub port: u16,
    storage: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user and the bcrypt hash of its password (`s3cret`), for htpasswd auth.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret";
const BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK";

/// Starts `docker-registry` on a free loopback port; with `htpasswd`, only [`USER`] may use it.
pub fn start_registry(dir: &Path, htpasswd: bool) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = dir.join("registry-data");
    let config = dir.join("registry.yml");
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if htpasswd {
        let file = dir.join("htpasswd");
        std::fs::write(&file, format!("{USER}:{BCRYPT}\n")).unwrap();
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: oxivirt-test\n    path: {}\n",
            file.display()
        ));
    }
    std::fs::write(&config, yaml).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry {
        child,
        port,
        storage,
    };
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            let status = reply.split_whitespace().nth(1).unwrap_or_default();
            if status == "200" || (htpasswd && status == "401") {
                return registry;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("docker-registry did not come up on port {port}");
}

/// Writes an OCI image layout with one gzip layer holding `disk/disk.qcow2` (107:107, 0444)
/// as the test guest's containerDisk has.
pub fn layout(dir: &Path, disk: &Path) -> PathBuf {
    let name = disk.file_stem().unwrap().to_string_lossy().to_string();
    let data = std::fs::read(disk).unwrap();
    layout_with(dir, &name, &[("disk/disk.qcow2", &data)])
}

/// An OCI image layout named `name` with one gzip layer holding `files` (107:107, 0444)
/// under a `disk/` directory entry.
pub fn layout_with(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let out = dir.join(format!("layout-{name}"));
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir_header = tar::Header::new_gnu();
    dir_header.set_entry_type(tar::EntryType::Directory);
    dir_header.set_mode(0o555);
    dir_header.set_uid(107);
    dir_header.set_gid(107);
    dir_header.set_size(0);
    dir_header.set_cksum();
    tar.append_data(&mut dir_header, "disk/", std::io::empty())
        .unwrap();
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o444);
        header.set_uid(107);
        header.set_gid(107);
        header.set_size(data.len() as u64);
        header.set_cksum();
        tar.append_data(&mut header, path, *data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = put(&gz.finish().unwrap());
    let diff_id = format!(
        "sha256:{}",
        ring::digest::digest(&ring::digest::SHA256, &tar)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let config = put(json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    .to_string()
    .as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.0, "size": layer.1}]});
    let manifest = put(manifest.to_string().as_bytes());
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(out.join("index.json"), json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.0, "size": manifest.1}]}).to_string()).unwrap();
    out
}

pub fn push(layout: &Path, reference: &str, auth: Option<&str>) -> String {
    let script = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../scripts/test-guest/push-containerdisk.sh");
    let mut command = Command::new("bash");
    command.arg(script).arg("-d").arg(layout);
    if let Some(auth) = auth {
        command.arg("-u").arg(auth);
    }
    let output = command.arg(reference).output().unwrap();
    assert!(
        output.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

pub fn qemu_img(args: &[&str]) {
    let status = Command::new("qemu-img")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "qemu-img {args:?}");
}

fn request(image: &str, policy: PullPolicy) -> PullRequest {
    PullRequest {
        image: image.into(),
        policy,
        credentials: None,
        insecure_registries: vec![],
    }
}

#[tokio::test]
async fn registry_pull_verifies_digests_extracts_the_disk_and_hits_the_cache() {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "skipped: {tool} is not installed (apt-get install docker-registry qemu-utils curl)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path(), false);
    let disk = tmp.path().join("guest.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", disk.to_str().unwrap(), "4M"]);
    let image = format!("127.0.0.1:{}/oxivirt/disk:v1", registry.port);
    let digest = push(&layout(tmp.path(), &disk), &image, None);

    let cache = ImageCache::new(&tmp.path().join("node"));
    let pulled = cache
        .pull(&request(&image, PullPolicy::IfNotPresent))
        .await
        .unwrap();
    assert_eq!(pulled.digest, digest);
    assert!(!pulled.cached);
    assert_eq!(pulled.format, DiskFormat::Qcow2);
    assert_eq!(
        pulled.path,
        tmp.path()
            .join("node/images/sha256")
            .join(&digest[7..])
            .join("disk.img")
    );
    assert_eq!(
        std::fs::read(&pulled.path).unwrap(),
        std::fs::read(&disk).unwrap()
    );

    let again = cache
        .pull(&request(&image, PullPolicy::IfNotPresent))
        .await
        .unwrap();
    assert!(again.cached, "IfNotPresent reuses the cached image");
    let always = cache
        .pull(&request(&image, PullPolicy::Always))
        .await
        .unwrap();
    assert!(
        always.cached,
        "Always re-resolves the tag but downloads no blob for a known digest"
    );
    assert_eq!(always.digest, digest);
    let by_digest = format!("127.0.0.1:{}/oxivirt/disk@{digest}", registry.port);
    assert!(
        cache
            .pull(&request(&by_digest, PullPolicy::Never))
            .await
            .unwrap()
            .cached
    );

    // Corrupt the layer in the registry's storage: a fresh cache must refuse it.
    let layer_digest = {
        let manifest = std::fs::read_to_string(
            tmp.path()
                .join("layout-guest/blobs/sha256")
                .join(&digest[7..]),
        )
        .unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string()
    };
    let stored = registry
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer_digest[..2])
        .join(&layer_digest)
        .join("data");
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let fresh = ImageCache::new(&tmp.path().join("other-node"));
    let err = fresh
        .pull(&request(&image, PullPolicy::IfNotPresent))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let never = fresh
        .pull(&request(&image, PullPolicy::Never))
        .await
        .unwrap_err();
    assert!(matches!(never, Error::NotPresent { .. }), "{never}");
}

#[tokio::test]
async fn containerdisk_whose_qcow2_has_a_backing_file_is_refused() {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "skipped: {tool} is not installed (apt-get install docker-registry qemu-utils curl)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path(), false);
    let disk = tmp.path().join("hostile.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "/etc/hostname",
        "-F",
        "raw",
        disk.to_str().unwrap(),
        "1M",
    ]);
    let image = format!("127.0.0.1:{}/oxivirt/hostile:v1", registry.port);
    push(&layout(tmp.path(), &disk), &image, None);
    let cache = ImageCache::new(&tmp.path().join("node"));
    let err = cache
        .pull(&request(&image, PullPolicy::IfNotPresent))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HostileImage { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("node/images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "refs")
        .collect();
    assert!(cached.is_empty(), "nothing enters the cache: {cached:?}");
}

/// A minimal registry on a raw socket that demands a Bearer token from its own realm, which
/// in turn demands Basic credentials: the distribution API's token flow.
async fn token_registry(layout: PathBuf, manifest_digest: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (layout, manifest_digest) = (layout.clone(), manifest_digest.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let auth = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_string())
                });
                let basic = format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("{USER}:{PASSWORD}")
                    )
                );
                let blob = |digest: &str| {
                    std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).ok()
                };
                let (status, headers, body): (&str, String, Vec<u8>) = if path.starts_with("/token")
                {
                    if auth.as_deref() == Some(basic.as_str())
                        && path.contains("scope=repository%3Aoxivirt%2Fdisk%3Apull")
                    {
                        ("200 OK", String::new(), br#"{"token":"T0K3N"}"#.to_vec())
                    } else {
                        ("401 Unauthorized", String::new(), Vec::new())
                    }
                } else if auth.as_deref() != Some("Bearer T0K3N") {
                    let challenge = format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:oxivirt/disk:pull\"\r\n");
                    ("401 Unauthorized", challenge, Vec::new())
                } else if path == "/v2/oxivirt/disk/manifests/multi" {
                    // A manifest list whose first entry is for another platform.
                    let size = blob(&manifest_digest).unwrap().len();
                    let index = serde_json::json!({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
                        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                         "digest": format!("sha256:{}", "0".repeat(64)),
                         "platform": {"os": "linux", "architecture": "arm64"}},
                        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": size,
                         "digest": manifest_digest, "platform": {"os": "linux", "architecture": "amd64"}}]});
                    let headers =
                        "Content-Type: application/vnd.oci.image.index.v1+json\r\n".to_string();
                    ("200 OK", headers, index.to_string().into_bytes())
                } else if path == "/v2/oxivirt/disk/manifests/v1"
                    || path == format!("/v2/oxivirt/disk/manifests/{manifest_digest}")
                {
                    let headers = format!("Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {manifest_digest}\r\n");
                    ("200 OK", headers, blob(&manifest_digest).unwrap())
                } else if let Some(body) =
                    path.strip_prefix("/v2/oxivirt/disk/blobs/").and_then(blob)
                {
                    ("200 OK", String::new(), body)
                } else {
                    ("404 Not Found", String::new(), Vec::new())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn bearer_token_challenge_is_answered_through_the_realm_and_manifest_lists_pick_linux_amd64()
{
    if Command::new("qemu-img").arg("--version").output().is_err() {
        eprintln!("skipped: qemu-img is not installed (apt-get install qemu-utils)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("guest.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", disk.to_str().unwrap(), "1M"]);
    let layout = layout(tmp.path(), &disk);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let port = token_registry(layout, digest.clone()).await;
    let image = format!("127.0.0.1:{port}/oxivirt/disk:v1");

    let cache = ImageCache::new(&tmp.path().join("node"));
    let anonymous = cache
        .pull(&request(&image, PullPolicy::Always))
        .await
        .unwrap_err();
    assert!(
        matches!(anonymous, Error::Unauthorized { .. }),
        "{anonymous}"
    );
    let mut with_secret = request(&image, PullPolicy::Always);
    with_secret.credentials = Some(Credentials {
        username: USER.into(),
        password: PASSWORD.into(),
    });
    let pulled = cache.pull(&with_secret).await.unwrap();
    assert_eq!(pulled.digest, digest);
    assert_eq!(pulled.format, DiskFormat::Qcow2);
    assert_eq!(
        std::fs::read(&pulled.path).unwrap(),
        std::fs::read(&disk).unwrap()
    );
    with_secret.image = format!("127.0.0.1:{port}/oxivirt/disk:multi");
    let from_list = cache.pull(&with_secret).await.unwrap();
    assert_eq!(
        from_list.digest, digest,
        "the linux/amd64 entry of the manifest list"
    );
    assert!(from_list.cached);
}

#[tokio::test]
async fn kernel_boot_files_are_unpacked_alone_refusing_dot_dot_and_cached() {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "skipped: {tool} is not installed (apt-get install docker-registry qemu-utils curl)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path(), false);
    let files: [(&str, &[u8]); 3] = [
        ("boot/vmlinuz", b"kernel"),
        ("boot/initrd.img", b"initrd"),
        ("etc/passwd", b"root:x:0:0"),
    ];
    let image = format!("127.0.0.1:{}/oxivirt/kernel:v1", registry.port);
    let digest = push(&layout_with(tmp.path(), "kernel", &files), &image, None);
    let cache = ImageCache::new(&tmp.path().join("node"));
    let wanted = ["/boot/vmlinuz".to_string(), "/boot/initrd.img".to_string()];
    let pulled = cache
        .pull_files(&request(&image, PullPolicy::IfNotPresent), &wanted)
        .await
        .unwrap();
    assert_eq!(pulled.digest, digest);
    assert!(!pulled.cached);
    assert_eq!(
        std::fs::read(pulled.root.join("boot/vmlinuz")).unwrap(),
        b"kernel"
    );
    assert_eq!(
        std::fs::read(pulled.root.join("boot/initrd.img")).unwrap(),
        b"initrd"
    );
    assert!(
        !pulled.root.join("etc/passwd").exists(),
        "only the named files are unpacked"
    );
    let again = cache
        .pull_files(&request(&image, PullPolicy::IfNotPresent), &wanted)
        .await
        .unwrap();
    assert!(again.cached);
    let escape = ["/boot/../etc/passwd".to_string()];
    let err = cache
        .pull_files(&request(&image, PullPolicy::IfNotPresent), &escape)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAContainerDisk { .. }), "{err}");
    let absent = ["/boot/missing".to_string()];
    let err = cache
        .pull_files(&request(&image, PullPolicy::IfNotPresent), &absent)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/boot/missing"), "{err}");
}

/// Two VMs of one image starting together on a fresh node pull it concurrently: both get
/// the image, and the cache entry is whole afterwards (a shared scratch directory once made
/// one pull wipe the other's and left a broken entry that failed every later start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_both_succeed_and_leave_a_whole_entry() {
    if let Some(tool) = missing_tool() {
        eprintln!(
            "skipped: {tool} is not installed (apt-get install docker-registry qemu-utils curl)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path(), false);
    let disk = tmp.path().join("guest.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", disk.to_str().unwrap(), "4M"]);
    let image = format!("127.0.0.1:{}/oxivirt/disk:v1", registry.port);
    let digest = push(&layout(tmp.path(), &disk), &image, None);
    let cache = std::sync::Arc::new(ImageCache::new(&tmp.path().join("node")));
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (cache, image) = (cache.clone(), image.clone());
            tokio::spawn(async move { cache.pull(&request(&image, PullPolicy::Always)).await })
        })
        .collect();
    for pull in pulls {
        let pulled = pull.await.unwrap().unwrap();
        assert_eq!(pulled.digest, digest);
        assert!(pulled.path.is_file());
    }
    let again = cache
        .pull(&request(&image, PullPolicy::IfNotPresent))
        .await
        .unwrap();
    assert!(again.cached, "the entry is whole and used from the cache");
}

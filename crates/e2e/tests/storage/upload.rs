//! Uploads (manual §7.2.4.3): the real `virtctl image-upload` and `curl` against the upload
//! proxy the API server serves, UploadTokenRequests made with the stock kubectl, the test
//! guest's qcow2 converted by real qemu-img, and a VM booting the uploaded disk.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use oxivirt_e2e::{virtctl_bin, wait_until, Kubectl, Server};

use crate::common::{condition, have, sh, test_guest, volume_dir, wait_for};

/// Generous bounds for a loaded 2-core machine (upper bounds only).
const READY: Duration = Duration::from_secs(120);

fn virtctl(server: &Server, args: &[&str]) -> Output {
    Command::new(virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .expect("run virtctl")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The API server's URL (where the upload proxy is served).
fn server_url(kubectl: &Kubectl) -> String {
    kubectl.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
}

fn token_for(kubectl: &Kubectl, claim: &str) -> String {
    let out = kubectl.run_stdin(
        &["create", "-f", "-", "-o", "jsonpath={.status.token}"],
        &format!(
            r#"{{"apiVersion": "upload.cdi.kubevirt.io/v1beta1", "kind": "UploadTokenRequest",
                "metadata": {{"name": "t-{claim}"}}, "spec": {{"pvcName": "{claim}"}}}}"#
        ),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!out.stdout.is_empty(), "no token issued");
    out.stdout
}

/// `curl` to the proxy: returns (HTTP status, body).
fn curl(url: &str, extra: &[&str]) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}", url])
        .args(extra)
        .output()
        .expect("run curl");
    let all = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
    (code.to_string(), body.to_string())
}

fn upload_dv(name: &str, size: &str) -> String {
    format!(
        r#"{{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {{"name": "{name}"}},
            "spec": {{"source": {{"upload": {{}}}}, "storage": {{"resources": {{"requests": {{"storage": "{size}"}}}}}}}}}}"#
    )
}

/// Whether the volume holds exactly the guest image's content.
fn same_content(disk: &Path, qcow2: &Path) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(disk)
        .arg(qcow2)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn virtctl_uploads_the_test_guest_into_a_data_volume_and_a_vm_boots_it() {
    if !have(&["qemu-img", "qemu-system-x86_64"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let kubectl = server.kubectl();
    let image = guest.join("disk.qcow2");
    let image_arg = image.display().to_string();
    let started = std::time::Instant::now();
    let out = virtctl(
        &server,
        &[
            "image-upload",
            "dv",
            "up-dv",
            "--size=200Mi",
            "--image-path",
            &image_arg,
            "--insecure",
        ],
    );
    let elapsed = started.elapsed();
    let said = text(&out);
    assert!(out.status.success(), "{said}\n{}", server.log());
    for line in [
        "DataVolume default/up-dv created",
        "Waiting for PVC up-dv upload pod to be ready...",
        "Pod now ready",
        &format!("Uploading data to {}", server_url(&kubectl)),
        "Uploading data completed successfully, waiting for processing to complete",
        "Processing completed successfully",
        &format!("Uploading {image_arg} completed successfully"),
    ] {
        assert!(said.contains(line), "missing {line:?} in:\n{said}");
    }
    eprintln!(
        "uploaded {} bytes in {elapsed:?}",
        std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0)
    );
    assert_eq!(
        kubectl.jsonpath(&["dv", "up-dv"], "{.status.phase}"),
        "Succeeded"
    );
    assert_eq!(condition(&kubectl, "up-dv", "Ready").0, "True");
    let events = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=up-dv",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["UploadScheduled", "UploadReady", "UploadSucceeded"] {
        assert!(events.contains(reason), "events: {events}");
    }
    // qcow2 converted to raw, content identical to the image uploaded.
    let disk = volume_dir(&server, "up-dv").join("disk.img");
    assert!(
        same_content(&disk, &image),
        "the volume differs from the image"
    );
    // The worker is gone; a second upload into the finished volume is refused.
    wait_until("the upload worker is removed", READY, || {
        (!kubectl.exists(&["pod", "cdi-upload-up-dv"])).then_some(())
    });
    let again = virtctl(
        &server,
        &[
            "image-upload",
            "dv",
            "up-dv",
            "--no-create",
            "--image-path",
            &image_arg,
            "--insecure",
        ],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("PVC default/up-dv already successfully imported/cloned/updated"),
        "{}",
        text(&again)
    );
    // A VM boots the uploaded disk.
    kubectl.apply(
        r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-up"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                       "resources": {"requests": {"memory": "256Mi"}}},
            "volumes": [{"name": "root", "dataVolume": {"name": "up-dv"}}]}}}}"#,
    );
    wait_until(
        "the guest boots from the uploaded disk",
        Duration::from_secs(240),
        || crate::vm::guest_ready(&server).then_some(()),
    );
    kubectl.ok(&["delete", "vm", "vm-up", "--wait=false"]);
}

#[test]
fn the_upload_proxy_checks_tokens_and_refuses_hostile_and_oversized_images() {
    if !have(&["qemu-img", "curl"]) {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    let scratch = server.scratch().to_path_buf();
    kubectl.apply(&upload_dv("target-a", "64Mi"));
    kubectl.apply(&upload_dv("target-b", "64Mi"));
    kubectl.apply(&upload_dv("hostile", "64Mi"));
    for dv in ["target-a", "target-b", "hostile"] {
        wait_for(
            &kubectl,
            &["get", "dv", dv],
            "{.status.phase}",
            "UploadReady",
            READY,
        );
    }
    let log = kubectl.ok(&["logs", "cdi-upload-target-a"]);
    assert!(log.contains("upload server ready"), "{log}");
    let base = server_url(&kubectl);
    let url = format!("{base}/v1beta1/upload");
    // Header missing or malformed: 400; a token not ours: 401.
    assert_eq!(curl(&url, &["--data-binary", "x"]).0, "400");
    assert_eq!(
        curl(
            &url,
            &["-H", "Authorization: Basic abc", "--data-binary", "x"]
        )
        .0,
        "400"
    );
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJuYW1lIjoidGFyZ2V0LWEifQ.c2lnbmF0dXJl";
    let (code, body) = curl(
        &url,
        &[
            "-H",
            &format!("Authorization: Bearer {forged}"),
            "--data-binary",
            "x",
        ],
    );
    assert_eq!(code, "401", "{body}");
    // A ServiceAccount token is no upload token.
    kubectl.ok(&["create", "serviceaccount", "uploader"]);
    let sa_token = kubectl.ok(&["create", "token", "uploader"]);
    let (code, _) = curl(
        &url,
        &[
            "-H",
            &format!("Authorization: Bearer {}", sa_token.trim()),
            "--data-binary",
            "x",
        ],
    );
    assert_eq!(code, "401");
    // A token for a claim that is no upload target in waiting: 503, nothing to upload to.
    let token_nope = token_for(&kubectl, "nope");
    let (code, body) = curl(
        &url,
        &[
            "-H",
            &format!("Authorization: Bearer {token_nope}"),
            "--data-binary",
            "x",
        ],
    );
    assert_eq!(code, "503", "{body}");
    assert!(body.contains("PVC default/nope not found"), "{body}");
    // Tokens are for those allowed to create UploadTokenRequests (not a viewer).
    kubectl.ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
    ]);
    let denied = kubectl.run_stdin(
        &["--as", "bob", "create", "-f", "-"],
        r#"{"apiVersion": "upload.cdi.kubevirt.io/v1beta1", "kind": "UploadTokenRequest",
            "metadata": {"name": "t-bob"}, "spec": {"pvcName": "target-a"}}"#,
    );
    assert!(!denied.status.success());
    assert!(denied.stderr.contains("forbidden"), "{}", denied.stderr);
    // UploadTokenRequests are create-only.
    let refused = kubectl.fails(&["get", "uploadtokenrequests"]);
    assert!(refused.contains("can only be created"), "{refused}");
    // A token is scoped to its claim: B's token fills B, never A.
    let raw = scratch.join("small.raw");
    sh(&format!(
        "qemu-img create -f raw {0} 8M >/dev/null && printf 'OXIVIRT-UPLOAD' | dd of={0} conv=notrunc status=none",
        raw.display()
    ));
    let token_b = token_for(&kubectl, "target-b");
    let (code, body) = curl(
        &format!("{base}/v1beta1/upload-async"),
        &[
            "-H",
            &format!("Authorization: Bearer {token_b}"),
            "--data-binary",
            &format!("@{}", raw.display()),
        ],
    );
    assert_eq!(code, "200", "{body}");
    wait_for(
        &kubectl,
        &["get", "dv", "target-b"],
        "{.status.phase}",
        "Succeeded",
        READY,
    );
    assert_eq!(
        kubectl.jsonpath(&["dv", "target-a"], "{.status.phase}"),
        "UploadReady"
    );
    let disk_b = std::fs::read(volume_dir(&server, "target-b").join("disk.img")).unwrap();
    assert!(disk_b.starts_with(b"OXIVIRT-UPLOAD"));
    // After completion the same token gets 409.
    let (code, _) = curl(
        &url,
        &[
            "-H",
            &format!("Authorization: Bearer {token_b}"),
            "--data-binary",
            "x",
        ],
    );
    assert_eq!(code, "409");
    // Oversized: 100 MiB of raw data into a 64 Mi volume (sync path: refused in the answer).
    let big = scratch.join("big.raw");
    sh(&format!("head -c 100M /dev/urandom > {}", big.display()));
    let token_a = token_for(&kubectl, "target-a");
    // HTTP/1.1 as virtctl speaks it: the refusal comes while the body is still being sent.
    let (code, body) = curl(
        &url,
        &[
            "--http1.1",
            "-H",
            &format!("Authorization: Bearer {token_a}"),
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("A larger PVC is required"), "{body}");
    assert!(!volume_dir(&server, "target-a").join("disk.img").exists());
    // Hostile: a qcow2 naming /etc/passwd as its backing file, through virtctl.
    let evil = scratch.join("evil.qcow2");
    sh(&format!(
        "qemu-img create -f qcow2 -u -b /etc/passwd -F raw {} 16M >/dev/null",
        evil.display()
    ));
    let evil_arg = evil.display().to_string();
    let out = virtctl(
        &server,
        &[
            "image-upload",
            "dv",
            "hostile",
            "--no-create",
            "--image-path",
            &evil_arg,
            "--insecure",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("has backing file /etc/passwd"),
        "{}",
        text(&out)
    );
    wait_until("the refusal shows in the Running condition", READY, || {
        let (_, reason, message) = condition(&kubectl, "hostile", "Running");
        (reason == "Error" && message.contains("backing file")).then_some(())
    });
    assert!(!volume_dir(&server, "hostile").join("disk.img").exists());
}

#[test]
fn a_claim_annotated_as_upload_target_takes_a_form_upload() {
    if !have(&["qemu-img", "curl"]) {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "plain", "annotations": {"cdi.kubevirt.io/storage.upload.target": ""}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}"#,
    );
    wait_for(
        &kubectl,
        &["get", "pvc", "plain"],
        "{.metadata.annotations.cdi\\.kubevirt\\.io/storage\\.pod\\.ready}",
        "true",
        READY,
    );
    let image = server.scratch().join("form.qcow2");
    sh(&format!(
        "qemu-img create -f raw {0}.raw 16M >/dev/null && printf 'FORM-UPLOAD' | dd of={0}.raw conv=notrunc status=none && qemu-img convert -O qcow2 {0}.raw {0}",
        image.display()
    ));
    let token = token_for(&kubectl, "plain");
    let (code, body) = curl(
        &format!("{}/v1beta1/upload-form", server_url(&kubectl)),
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            "note=ignored",
            "-F",
            &format!("file=@{}", image.display()),
        ],
    );
    assert_eq!(code, "200", "{body}\n{}", server.log());
    wait_for(
        &kubectl,
        &["get", "pvc", "plain"],
        "{.metadata.annotations.cdi\\.kubevirt\\.io/storage\\.pod\\.phase}",
        "Succeeded",
        READY,
    );
    let disk = std::fs::read(volume_dir(&server, "plain").join("disk.img")).unwrap();
    assert!(disk.starts_with(b"FORM-UPLOAD"));
}

#[test]
fn virtctl_uploads_a_qcow2_xz_into_a_new_claim_and_refuses_a_volume_smaller_than_the_image() {
    if !have(&["qemu-img", "xz"]) {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    let base = server.scratch().join("small");
    let b = base.display();
    sh(&format!(
        "qemu-img create -f raw {b}.raw 24M >/dev/null && printf 'XZ-UPLOAD' | dd of={b}.raw conv=notrunc status=none \
         && qemu-img convert -O qcow2 {b}.raw {b}.qcow2 && xz -k -T0 {b}.qcow2"
    ));
    let xz = format!("{b}.qcow2.xz");
    let out = virtctl(
        &server,
        &[
            "image-upload",
            "pvc",
            "up-pvc",
            "--size=64Mi",
            "--image-path",
            &xz,
            "--insecure",
        ],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}\n{}", server.log());
    assert!(
        said.contains("PersistentVolumeClaim default/up-pvc created"),
        "{said}"
    );
    assert!(said.contains("Processing completed successfully"), "{said}");
    let disk = std::fs::read(volume_dir(&server, "up-pvc").join("disk.img")).unwrap();
    assert!(disk.starts_with(b"XZ-UPLOAD"));
    assert_eq!(
        kubectl.jsonpath(
            &["pvc", "up-pvc"],
            "{.metadata.annotations.cdi\\.kubevirt\\.io/storage\\.pod\\.phase}"
        ),
        "Succeeded"
    );
    // The manual's rule: the volume must be larger than the image's virtual size.
    sh(&format!(
        "qemu-img create -f qcow2 {b}-big.qcow2 200M >/dev/null"
    ));
    let big = format!("{b}-big.qcow2");
    let out = virtctl(
        &server,
        &[
            "image-upload",
            "dv",
            "too-small",
            "--size=64Mi",
            "--image-path",
            &big,
            "--insecure",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("A larger PVC is required"),
        "{}",
        text(&out)
    );
    // Missing arguments are refused before anything is created.
    let out = virtctl(
        &server,
        &["image-upload", "dv", "nosize", "--image-path", &big],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("when creating a resource, the size must be specified"),
        "{}",
        text(&out)
    );
    assert!(!kubectl.exists(&["dv", "nosize"]));
}

//! DataVolume imports over HTTP and from a registry, into the hostpath provisioner.

use std::time::Duration;

use oxivirt_e2e::{wait_until, Server};

use crate::common::{
    condition, data_volume, have, sh, test_guest, volume_dir, wait_for, FileServer, Serve,
};

const IMPORT: Duration = Duration::from_secs(240);

#[test]
fn http_imports_of_qcow2_vmdk_vdi_vhd_vhdx_gz_xz_zst_and_basic_auth_give_the_guest_disk() {
    if !have(&["qemu-img", "gzip", "xz", "zstd"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let www = server.scratch().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let (raw, qcow2) = (guest.join("disk.raw"), guest.join("disk.qcow2"));
    let w = www.display();
    sh(&format!("cp {} {w}/disk.qcow2 && gzip -c {w}/disk.qcow2 > {w}/disk.qcow2.gz && xz -T0 -c {} > {w}/disk.raw.xz && zstd -q -c {} > {w}/disk.raw.zst", qcow2.display(), raw.display(), raw.display()));
    for (format, file) in [
        ("vmdk", "disk.vmdk"),
        ("vdi", "disk.vdi"),
        ("vhdx", "disk.vhdx"),
        ("vpc", "disk.vhd"),
    ] {
        sh(&format!(
            "qemu-img convert -f qcow2 -O {format} {w}/disk.qcow2 {w}/{file}"
        ));
    }
    let http = FileServer::start(
        &www,
        Serve {
            basic_auth: Some("user:s3cret".into()),
            rate: 0,
        },
    );
    let kubectl = server.kubectl();
    kubectl.apply(r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "endpoint-secret", "labels": {"app": "containerized-data-importer"}},
        "type": "Opaque", "data": {"accessKeyId": "dXNlcg==", "secretKey": "czNjcmV0"}}"#);
    let cases = [
        ("qcow2", http.url("disk.qcow2"), None),
        ("gz", http.url("disk.qcow2.gz"), None),
        ("xz", http.url("disk.raw.xz"), None),
        ("zst", http.url("disk.raw.zst"), None),
        ("auth", http.url("auth/disk.qcow2"), Some("endpoint-secret")),
        ("vmdk", http.url("disk.vmdk"), None),
        ("vdi", http.url("disk.vdi"), None),
        ("vhdx", http.url("disk.vhdx"), None),
        ("vhd", http.url("disk.vhd"), None),
    ];
    for (name, url, secret) in &cases {
        let secret = secret
            .map(|s| format!(r#", "secretRef": "{s}""#))
            .unwrap_or_default();
        kubectl.apply(&data_volume(
            name,
            &format!(r#"{{"http": {{"url": "{url}"{secret}}}}}"#),
            "200Mi",
        ));
    }
    for (name, ..) in &cases {
        wait_for(
            &kubectl,
            &["get", "dv", name],
            "{.status.phase}",
            "Succeeded",
            IMPORT,
        );
        assert_eq!(
            kubectl.jsonpath(&["dv", name], "{.status.progress}"),
            "100.0%"
        );
        assert_eq!(condition(&kubectl, name, "Ready").0, "True");
        assert_eq!(
            condition(&kubectl, name, "Running"),
            ("False".into(), "Completed".into(), "Import Complete".into())
        );
        let disk = volume_dir(&server, name).join("disk.img");
        // The claim asked 200Mi; with 5.5% overhead the claim is larger and the disk is 200Mi.
        assert_eq!(std::fs::metadata(&disk).unwrap().len(), 200 << 20, "{name}");
        // Not strict: the tail past the guest's 128 MiB (and VHD's CHS rounding) reads zero.
        sh(&format!(
            "qemu-img compare -q -f raw -F raw {} {}",
            disk.display(),
            raw.display()
        ));
        assert!(
            !kubectl.exists(&["pod", &format!("importer-{name}")]),
            "the importer Pod is removed after success"
        );
    }
    let events = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=qcow2",
    ]);
    for text in [
        "PVC qcow2 Bound",
        "Import into qcow2 scheduled",
        "Successfully imported into PVC qcow2",
    ] {
        assert!(events.contains(text), "missing {text:?} in\n{events}");
    }
}

#[test]
fn a_missing_image_reports_upstreams_404_error_and_retries() {
    let server = Server::start();
    let www = server.scratch().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let http = FileServer::start(&www, Serve::default());
    let kubectl = server.kubectl();
    kubectl.apply(&data_volume(
        "gone",
        &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url("nothere.qcow2")),
        "100Mi",
    ));
    let text = "Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found";
    wait_until("the 404 condition", IMPORT, || {
        let (status, reason, message) = condition(&kubectl, "gone", "Running");
        (status == "False" && reason == "Error" && message == text).then_some(())
    });
    wait_until("a Warning event from datavolume-controller", IMPORT, || {
        let events = kubectl.json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=gone,type=Warning",
        ]);
        events["items"].as_array()?.iter().find(|e| {
            e["reason"] == "Error"
                && e["message"] == text
                && e["source"]["component"] == "datavolume-controller"
        })?;
        Some(())
    });
    wait_until("a retry", IMPORT, || {
        let restarts: i64 = kubectl
            .jsonpath(&["dv", "gone"], "{.status.restartCount}")
            .parse()
            .ok()?;
        (restarts >= 1).then_some(())
    });
    // `kubectl logs` shows the importer's own log (served by the node agent).
    wait_until("the importer's log names the failure", IMPORT, || {
        let log = kubectl.run(&["logs", "importer-gone"]);
        (log.status.success() && log.stdout.contains(text)).then_some(())
    });
    let tail = kubectl.ok(&["logs", "importer-gone", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert_ne!(
        kubectl.jsonpath(&["dv", "gone"], "{.status.phase}"),
        "Succeeded"
    );
    assert!(
        !volume_dir(&server, "gone").join("disk.img").exists(),
        "a failed import leaves no disk"
    );
}

#[test]
fn a_blank_data_volume_is_a_sparse_raw_disk_of_the_requested_size() {
    let server = Server::start();
    let kubectl = server.kubectl();
    kubectl.apply(&data_volume("empty", r#"{"blank": {}}"#, "1Gi"));
    wait_for(
        &kubectl,
        &["get", "dv", "empty"],
        "{.status.phase}",
        "Succeeded",
        IMPORT,
    );
    // The claim is grown by the 5.5% overhead (1Gi / 0.945, rounded up to MiB).
    assert_eq!(
        kubectl.jsonpath(&["pvc", "empty"], "{.spec.resources.requests.storage}"),
        "1084Mi"
    );
    let disk = volume_dir(&server, "empty").join("disk.img");
    let meta = std::fs::metadata(&disk).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() * 512 < 1 << 20, "blank disks are sparse");
}

#[test]
fn a_registry_import_pulls_the_containerdisk_of_an_insecure_registry() {
    if !have(&["docker-registry", "curl", "qemu-img"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let registry = crate::common::Registry::start(server.scratch());
    sh(&format!(
        "{} {}/oxivirt/test-guest:v1 >/dev/null 2>&1",
        guest.join("push-containerdisk.sh").display(),
        registry.address
    ));
    let kubectl = server.kubectl();
    kubectl.ok(&[
        "patch",
        "hyperconverged",
        "-n",
        "openshift-cnv",
        "kubevirt-hyperconverged",
        "--type",
        "merge",
        "-p",
        &format!(
            r#"{{"spec": {{"storageImport": {{"insecureRegistries": ["{}"]}}}}}}"#,
            registry.address
        ),
    ]);
    let url = format!("docker://{}/oxivirt/test-guest:v1", registry.address);
    kubectl.apply(&data_volume(
        "fromreg",
        &format!(r#"{{"registry": {{"url": "{url}"}}}}"#),
        "200Mi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "fromreg"],
        "{.status.phase}",
        "Succeeded",
        IMPORT,
    );
    let disk = volume_dir(&server, "fromreg").join("disk.img");
    sh(&format!(
        "qemu-img compare -q -f raw -F raw {} {}",
        disk.display(),
        guest.join("disk.raw").display()
    ));
}

#[test]
fn https_with_a_self_signed_ca_needs_the_cert_config_map() {
    if !have(&["openssl", "qemu-img"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let tls = server.scratch().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let t = tls.display();
    sh(&format!(
        "cd {t} && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1' > san.ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null && \
         cp {} disk.qcow2",
        guest.join("disk.qcow2").display()
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // openssl's own HTTPS file server (`-WWW` serves files of its working directory).
    let mut https = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-WWW",
        ])
        .current_dir(&tls)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    wait_until("openssl s_server listens", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let kubectl = server.kubectl();
    let ca = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    kubectl.create_configmap("tls-certs", &[("ca.pem", &ca)]);
    let url = format!("https://127.0.0.1:{port}/disk.qcow2");
    kubectl.apply(&data_volume(
        "trusted",
        &format!(r#"{{"http": {{"url": "{url}", "certConfigMap": "tls-certs"}}}}"#),
        "200Mi",
    ));
    kubectl.apply(&data_volume(
        "untrusted",
        &format!(r#"{{"http": {{"url": "{url}"}}}}"#),
        "200Mi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "trusted"],
        "{.status.phase}",
        "Succeeded",
        IMPORT,
    );
    wait_until(
        "the untrusted import fails on the certificate",
        IMPORT,
        || {
            let (_, reason, message) = condition(&kubectl, "untrusted", "Running");
            (reason == "Error"
                && message.starts_with("Unable to connect to http data source")
                && message.contains("certificate"))
            .then_some(())
        },
    );
    let _ = https.kill();
    let _ = https.wait();
    let disk = volume_dir(&server, "trusted").join("disk.img");
    sh(&format!(
        "qemu-img compare -q -f raw -F raw {} {}",
        disk.display(),
        guest.join("disk.raw").display()
    ));
}

#[test]
fn an_iso_imports_as_it_is_and_preallocation_allocates_the_disk() {
    if !have(&["xorriso", "qemu-img"]) {
        return;
    }
    let server = Server::start();
    let www = server.scratch().join("www");
    std::fs::create_dir_all(www.join("content")).unwrap();
    let w = www.display();
    sh(&format!("echo hello > {w}/content/hello.txt && xorriso -as mkisofs -quiet -V TESTISO -o {w}/test.iso {w}/content"));
    let http = FileServer::start(&www, Serve::default());
    let kubectl = server.kubectl();
    kubectl.apply(&data_volume(
        "iso",
        &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url("test.iso")),
        "64Mi",
    ));
    kubectl.apply(
        &data_volume("full", r#"{"blank": {}}"#, "64Mi")
            .replace(r#""source""#, r#""preallocation": true, "source""#),
    );
    wait_for(
        &kubectl,
        &["get", "dv", "iso"],
        "{.status.phase}",
        "Succeeded",
        IMPORT,
    );
    wait_for(
        &kubectl,
        &["get", "dv", "full"],
        "{.status.phase}",
        "Succeeded",
        IMPORT,
    );
    let iso = std::fs::read(volume_dir(&server, "iso").join("disk.img")).unwrap();
    let original = std::fs::read(www.join("test.iso")).unwrap();
    assert_eq!(
        &iso[..original.len()],
        &original[..],
        "the ISO's bytes are the disk's first bytes"
    );
    assert_eq!(&iso[0x8001..0x8006], b"CD001");
    use std::os::unix::fs::MetadataExt;
    let full = std::fs::metadata(volume_dir(&server, "full").join("disk.img")).unwrap();
    assert_eq!(full.len(), 64 << 20);
    assert!(
        full.blocks() * 512 >= 64 << 20,
        "a preallocated disk has its blocks allocated"
    );
}

#[test]
fn a_data_import_cron_imports_at_once_and_manages_its_data_source() {
    if !have(&["docker-registry", "curl", "qemu-img"]) {
        return;
    }
    let Some(guest) = test_guest() else { return };
    let server = Server::start();
    let registry = crate::common::Registry::start(server.scratch());
    sh(&format!(
        "{} {}/containerdisks/test-guest:latest >/dev/null 2>&1",
        guest.join("push-containerdisk.sh").display(),
        registry.address
    ));
    let kubectl = server.kubectl();
    kubectl.ok(&[
        "patch",
        "hyperconverged",
        "-n",
        "openshift-cnv",
        "kubevirt-hyperconverged",
        "--type",
        "merge",
        "-p",
        &format!(
            r#"{{"spec": {{"storageImport": {{"insecureRegistries": ["{}"]}}}}}}"#,
            registry.address
        ),
    ]);
    kubectl.apply(&format!(
        r#"{{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataImportCron", "metadata": {{"name": "guest-image-cron",
            "annotations": {{"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}}}},
          "spec": {{"schedule": "55 8/12 * * *", "managedDataSource": "test-guest", "importsToKeep": 2,
            "template": {{"spec": {{"source": {{"registry": {{"url": "docker://{}/containerdisks/test-guest:latest"}}}},
                                    "storage": {{"resources": {{"requests": {{"storage": "200Mi"}}}}}}}}}}}}}}"#,
        registry.address
    ));
    wait_for(
        &kubectl,
        &["get", "dataimportcron", "guest-image-cron"],
        "{.status.conditions[?(@.type==\"UpToDate\")].status}",
        "True",
        IMPORT,
    );
    let imported = kubectl.jsonpath(
        &["dataimportcron", "guest-image-cron"],
        "{.status.lastImportedPVC.name}",
    );
    assert!(imported.starts_with("test-guest-"), "{imported}");
    wait_for(
        &kubectl,
        &["get", "datasource", "test-guest"],
        "{.spec.source.pvc.name}",
        &imported,
        IMPORT,
    );
    wait_for(
        &kubectl,
        &["get", "datasource", "test-guest"],
        "{.status.conditions[0].status}",
        "True",
        IMPORT,
    );
    let disk = volume_dir(&server, &imported).join("disk.img");
    sh(&format!(
        "qemu-img compare -q -f raw -F raw {} {}",
        disk.display(),
        guest.join("disk.raw").display()
    ));
}

//! Storage benchmarks (issue 5 item 10), run by hand — their numbers depend on the machine:
//!
//! ```sh
//! cargo build --release -p oxivirt-server --bin oxivirt
//! cargo test --release -p oxivirt-e2e --test storage -- --ignored --nocapture bench::
//! ```
//!
//! Results go to BENCHMARKS.md ("Storage").

use std::time::{Duration, Instant};

use oxivirt_e2e::Server;

use crate::common::{data_volume, have, sh, wait_for, FileServer, Serve};

const WAIT: Duration = Duration::from_secs(900);

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[test]
#[ignore = "benchmark: minutes of I/O, run by hand"]
fn import_of_a_2gib_qcow2_against_curl_and_qemu_img_convert() {
    if !have(&["qemu-img", "curl"]) {
        return;
    }
    let server = Server::start();
    let www = server.scratch().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let w = www.display();
    // 2 GiB of incompressible data in a qcow2 (what a cloud image's data looks like to I/O).
    sh(&format!("head -c 2147483648 /dev/urandom > {w}/src.raw && qemu-img convert -O qcow2 {w}/src.raw {w}/big.qcow2 && rm {w}/src.raw"));
    let http = FileServer::start(&www, Serve::default());
    let size = std::fs::metadata(www.join("big.qcow2")).unwrap().len();

    // Ours first, then the baseline, each ending with everything on disk (`sync`).
    sh("sync");
    let kubectl = server.kubectl();
    let started = Instant::now();
    kubectl.apply(&data_volume(
        "big",
        &format!(r#"{{"http": {{"url": "{}"}}}}"#, http.url("big.qcow2")),
        "2200Mi",
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "big"],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    sh("sync");
    let ours = started.elapsed();

    let started = Instant::now();
    sh(&format!(
        "curl -sS -o {w}/dl.qcow2 {} && qemu-img convert -t writeback -O raw {w}/dl.qcow2 {w}/out.raw && sync",
        http.url("big.qcow2")
    ));
    let baseline = started.elapsed();
    sh(&format!("rm -f {w}/dl.qcow2 {w}/out.raw"));
    let mib = size as f64 / f64::from(1 << 20);
    println!(
        "BENCH import 2GiB qcow2 ({mib:.0} MiB): curl+qemu-img convert {} ({:.0} MiB/s); DataVolume http import {} ({:.0} MiB/s); ratio {:.2}x",
        secs(baseline),
        mib / baseline.as_secs_f64(),
        secs(ours),
        mib / ours.as_secs_f64(),
        baseline.as_secs_f64() / ours.as_secs_f64()
    );
}

#[test]
#[ignore = "benchmark: run by hand"]
fn clone_of_a_10gib_volume_takes_constant_time() {
    if !have(&["qemu-img"]) {
        return;
    }
    let server = Server::start();
    let kubectl = server.kubectl();
    for (name, size) in [("small", "1Gi"), ("large", "10Gi")] {
        kubectl.apply(&data_volume(name, r#"{"blank": {}}"#, size));
        wait_for(
            &kubectl,
            &["get", "dv", name],
            "{.status.phase}",
            "Succeeded",
            WAIT,
        );
        // Fill a volume's first GiB so the clone has real data under it.
        let dir = crate::common::volume_dir(&server, name);
        sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=1024 conv=notrunc status=none",
            dir.join("disk.img").display()
        ));
        let started = Instant::now();
        let clone = format!("{name}-clone");
        kubectl.apply(&data_volume(
            &clone,
            &format!(r#"{{"pvc": {{"name": "{name}", "namespace": "default"}}}}"#),
            size,
        ));
        wait_for(
            &kubectl,
            &["get", "dv", &clone],
            "{.status.phase}",
            "Succeeded",
            WAIT,
        );
        let total = started.elapsed();
        let log = server.log();
        let core = log
            .lines()
            .rev()
            .filter(|l| l.contains("cloned volume"))
            .find_map(|l| {
                l.split("elapsed_ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(f64::NAN);
        println!("BENCH clone of a {size} volume: provisioner clone {core:.1} ms; DataVolume created → Succeeded {}", secs(total));
    }
}

/// Seconds until `dv` has Succeeded, polled every 100 ms.
fn until_succeeded(kubectl: &oxivirt_e2e::Kubectl, dv: &str, started: Instant) -> Duration {
    wait_for(
        kubectl,
        &["get", "dv", dv],
        "{.status.phase}",
        "Succeeded",
        WAIT,
    );
    started.elapsed()
}

#[test]
#[ignore = "benchmark: run by hand"]
fn upload_with_virtctl_against_curl_data_binary() {
    if !have(&["curl"]) {
        return;
    }
    let mib: u64 = std::env::var("OXIVIRT_BENCH_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let server = Server::start();
    let kubectl = server.kubectl();
    let image = server.scratch().join("upload.raw");
    // Incompressible raw data: no conversion, so the figure is the transfer path's.
    sh(&format!(
        "head -c {} /dev/urandom > {}",
        mib << 20,
        image.display()
    ));
    let size = format!("{}Mi", mib + 64);
    let url = kubectl.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);

    // Baseline: curl --data-binary to the same proxy (sync path: answers once stored).
    kubectl.apply(&format!(
        r#"{{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {{"name": "by-curl"}},
            "spec": {{"source": {{"upload": {{}}}}, "storage": {{"resources": {{"requests": {{"storage": "{size}"}}}}}}}}}}"#
    ));
    wait_for(
        &kubectl,
        &["get", "dv", "by-curl"],
        "{.status.phase}",
        "UploadReady",
        WAIT,
    );
    let token = kubectl
        .run_stdin(
            &["create", "-f", "-", "-o", "jsonpath={.status.token}"],
            r#"{"apiVersion": "upload.cdi.kubevirt.io/v1beta1", "kind": "UploadTokenRequest",
                "metadata": {"name": "t"}, "spec": {"pvcName": "by-curl"}}"#,
        )
        .stdout;
    sh("sync");
    let started = Instant::now();
    sh(&format!(
        "curl -sSfk --http1.1 -H 'Authorization: Bearer {token}' --data-binary @{} {url}/v1beta1/upload",
        image.display()
    ));
    let curl = until_succeeded(&kubectl, "by-curl", started);

    // virtctl: creates the DataVolume, waits for the worker, uploads (async), waits.
    let image_arg = image.display().to_string();
    let started = Instant::now();
    let out = std::process::Command::new(oxivirt_e2e::virtctl_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "image-upload",
            "dv",
            "by-virtctl",
            "--insecure",
            "--size",
            &size,
            "--image-path",
            &image_arg,
        ])
        .output()
        .expect("run virtctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let virtctl = until_succeeded(&kubectl, "by-virtctl", started);
    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    println!(
        "upload of {mib} MiB raw: curl --data-binary {} ({:.0} MiB/s), virtctl image-upload (incl. DataVolume creation and worker start) {} ({:.0} MiB/s): {:.2}x",
        secs(curl),
        rate(curl),
        secs(virtctl),
        rate(virtctl),
        curl.as_secs_f64() / virtctl.as_secs_f64()
    );
}

//! `--vms`: the VM runtime's figures (issue 4 item 9), through the API like a user:
//!
//! * **single**: one VM at a time on an idle node: time from the `POST` of a VirtualMachine
//!   (`runStrategy: Always`) to a watch event showing its VMI `Running` (QEMU executing guest
//!   code), `runs` times; each VM is deleted and its launcher gone before the next.
//! * **floor**, in the same run: raw QEMU started by hand the way the launcher starts it
//!   (paused, QMP socket), from spawn to QMP answering `cont` — the part no control plane
//!   can remove.
//! * **burst floor**, in the same run: `burst` raw QEMUs started at `rate` per second and
//!   left running, each from spawn to `cont` answered — what QEMU alone costs at that rate.
//! * **burst**: `burst` VMs created at `rate` per second, each timed from its `POST` to its
//!   VMI `Running`; the guests boot `burst_image` (a disk that halts at once, see
//!   `scripts/bench/halt-containerdisk.sh`) or, without one, have no disk, so their firmware
//!   keeps retrying to boot.
//! * **launcher memory**: RSS of every `oxivirt launcher` process while the burst runs
//!   (QEMU excluded), read from `/proc/<pid>/status`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use crate::client::Conn;
use crate::kubeconfig::Target;
use crate::stats::Samples;

/// How long one VM may take to run before the benchmark gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What to measure.
pub struct Options {
    pub runs: usize,
    pub burst: usize,
    pub rate: f64,
    /// containerDisk for the single runs (none: a diskless guest).
    pub image: Option<String>,
    /// containerDisk for the burst (none: a diskless guest).
    pub burst_image: Option<String>,
    /// The server's data directory, where its launchers' run directories are.
    pub data_dir: PathBuf,
    pub qemu: String,
    /// The server process, when the benchmark started it: its CPU time during the burst
    /// is the control plane's cost per VM.
    pub server_pid: Option<u32>,
}

/// The figures.
pub struct Results {
    pub single: Samples,
    pub floor: Samples,
    pub burst: Samples,
    /// Raw QEMUs started at the burst's rate, spawn → `cont` answered.
    pub floor_burst: Samples,
    pub burst_count: usize,
    pub rate: f64,
    /// Launcher RSS in KiB, one sample per launcher.
    pub launcher_rss_kib: Vec<u64>,
    pub qemu_rss_kib: Vec<u64>,
    /// Server CPU from the burst's first `POST` to its last VMI `Running`, per VM.
    pub burst_server_cpu_ms: Option<f64>,
}

/// When each VMI was first seen Running, fed by one watch.
#[derive(Default)]
struct Running {
    seen: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Running {
    async fn wait(&self, name: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(at) = self
                .seen
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .get(name)
            {
                return Ok(*at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("VMI {name} was not Running within {timeout:?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

/// A VM of the benchmark; `cpu` is its CPU request (the burst's halting guests need almost
/// none, and a 2-core node has room for only 20 VMs at the default 100m).
fn vm(name: &str, image: Option<&str>, cpu: &str) -> Vec<u8> {
    let (volumes, disks) = match image {
        Some(image) => (
            json!([{"name": "root", "containerDisk": {"image": image}}]),
            json!([{"name": "root", "disk": {"bus": "virtio"}}]),
        ),
        None => (json!([]), json!([])),
    };
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {"devices": {"disks": disks, "interfaces": []},
                       "resources": {"requests": {"memory": "64Mi", "cpu": cpu}}},
            "networks": [], "volumes": volumes,
        }}},
    })
    .to_string()
    .into_bytes()
}

fn vms_path(ns: &str) -> String {
    format!("/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines")
}

async fn watch_running(target: Arc<Target>, ns: String, running: Arc<Running>) -> Result<()> {
    let mut conn = Conn::connect(&target).await?;
    let path = format!("/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances?watch=true");
    let response = conn.start(Method::GET, &path, None).await?;
    if !response.status().is_success() {
        bail!("watch answered {}", response.status());
    }
    let mut body = response.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.context("watch broke")?.into_data() else {
            continue;
        };
        let now = Instant::now();
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let object = &event["object"];
            if object["status"]["phase"] == "Running" {
                if let Some(name) = object["metadata"]["name"].as_str() {
                    let mut seen = running
                        .seen
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?;
                    seen.entry(name.to_string()).or_insert(now);
                }
                running.changed.notify_waiters();
            }
        }
    }
    Ok(())
}

/// PIDs and RSS (KiB) of processes whose command line contains all of `needles`.
fn rss_of(needles: &[&str]) -> Vec<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !needles.iter().all(|n| cmdline.contains(n)) {
                return None;
            }
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((pid, rss))
        })
        .collect()
}

fn launchers(data_dir: &Path) -> Vec<(u32, u64)> {
    let dir = data_dir.display().to_string();
    rss_of(&["launcher", "--run-dir", &dir])
}

async fn wait_no_launchers(data_dir: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !launchers(data_dir).is_empty() {
        if Instant::now() >= deadline {
            bail!("launchers still running {timeout:?} after their VMs were deleted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Raw QEMU as the launcher starts it: paused, QMP on a socket; time to `cont` answered.
async fn qemu_floor(qemu: &str, dir: &Path) -> Result<Duration> {
    let (elapsed, mut child) = start_raw_qemu(qemu, &dir.join("floor-qmp.sock")).await?;
    let _ = child.kill().await;
    Ok(elapsed)
}

/// The burst's reference: `count` raw QEMUs started at `rate` per second, each left
/// running (as the burst's guests are) until the last answered `cont`; spawn → `cont`
/// answered for each. Shows what QEMU alone costs at that rate on this machine.
async fn qemu_burst_floor(qemu: &str, dir: &Path, count: usize, rate: f64) -> Result<Samples> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut started = Vec::with_capacity(count);
    for i in 0..count {
        ticker.tick().await;
        let (qemu, socket) = (qemu.to_string(), dir.join(format!("floor-{i}.sock")));
        started.push(tokio::spawn(
            async move { start_raw_qemu(&qemu, &socket).await },
        ));
    }
    let mut samples = Samples::with_capacity(count);
    let mut children = Vec::with_capacity(count);
    for task in started {
        let (elapsed, child) = task.await.context("a floor QEMU task panicked")??;
        samples.push(elapsed);
        children.push(child);
    }
    for mut child in children {
        let _ = child.kill().await;
    }
    Ok(samples)
}

/// Starts QEMU paused with a QMP socket at `socket` and resumes it; returns the time from
/// spawn to `cont` answered, and the QEMU, still running (`kill_on_drop`).
async fn start_raw_qemu(qemu: &str, socket: &Path) -> Result<(Duration, tokio::process::Child)> {
    let _ = std::fs::remove_file(socket);
    let start = Instant::now();
    let child = tokio::process::Command::new(qemu)
        .args([
            "-S",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-machine",
            "q35,accel=tcg",
            "-m",
            "64",
        ])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {qemu}"))?;
    let stream = loop {
        match tokio::net::UnixStream::connect(socket).await {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(e) => bail!("QMP of the floor QEMU: {e}"),
        }
    };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    lines.next_line().await?.context("no QMP greeting")?;
    for command in ["qmp_capabilities", "cont"] {
        write
            .write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())
            .await?;
        loop {
            let line = lines.next_line().await?.context("QMP closed")?;
            if line.contains("\"return\"") {
                break;
            }
        }
    }
    Ok((start.elapsed(), child))
}

/// Runs the three measurements in namespace `ns` (created here, deleted at the end).
///
/// # Errors
/// When a request fails or a VM does not run in time.
pub async fn run(target: Arc<Target>, ns: &str, options: &Options) -> Result<Results> {
    let result = measure(target.clone(), ns, options).await;
    if result.is_err() {
        // Leave no guests behind on failure either: their launchers outlive the server.
        if let Ok(mut conn) = Conn::connect(&target).await {
            let _ = conn
                .send(Method::DELETE, &format!("/api/v1/namespaces/{ns}"), None)
                .await;
        }
        let _ = wait_no_launchers(&options.data_dir, RUN_TIMEOUT * 2).await;
    }
    result
}

async fn measure(target: Arc<Target>, ns: &str, options: &Options) -> Result<Results> {
    let mut conn = Conn::connect(&target).await?;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    conn.expect_ok(
        Method::POST,
        "/api/v1/namespaces",
        Some(namespace.to_string().into_bytes()),
    )
    .await?;
    let running = Arc::new(Running::default());
    let watcher = tokio::spawn(watch_running(
        target.clone(),
        ns.to_string(),
        running.clone(),
    ));
    // The watch is registered once a first object's event arrives: a warm-up VM, which also
    // pulls the image into the node's cache, so single runs measure the cached path.
    conn.expect_ok(
        Method::POST,
        &vms_path(ns),
        Some(vm("warmup", options.image.as_deref(), "100m")),
    )
    .await?;
    running.wait("warmup", RUN_TIMEOUT * 2).await?;
    conn.expect_ok(Method::DELETE, &format!("{}/warmup", vms_path(ns)), None)
        .await?;
    wait_no_launchers(&options.data_dir, RUN_TIMEOUT).await?;
    if let Some(image) = &options.burst_image {
        // The burst, too, measures the cached path.
        let warmup = vm("warmup-burst", Some(image), "10m");
        conn.expect_ok(Method::POST, &vms_path(ns), Some(warmup))
            .await?;
        running.wait("warmup-burst", RUN_TIMEOUT * 2).await?;
        let path = format!("{}/warmup-burst", vms_path(ns));
        conn.expect_ok(Method::DELETE, &path, None).await?;
        wait_no_launchers(&options.data_dir, RUN_TIMEOUT).await?;
    }

    let mut single = Samples::with_capacity(options.runs);
    let mut floor = Samples::with_capacity(options.runs);
    for i in 0..options.runs {
        let name = format!("single-{i}");
        eprintln!("  single {}/{}", i + 1, options.runs);
        let start = Instant::now();
        conn.expect_ok(
            Method::POST,
            &vms_path(ns),
            Some(vm(&name, options.image.as_deref(), "100m")),
        )
        .await?;
        let at = running.wait(&name, RUN_TIMEOUT).await?;
        single.push(at.saturating_duration_since(start));
        conn.expect_ok(Method::DELETE, &format!("{}/{name}", vms_path(ns)), None)
            .await?;
        wait_no_launchers(&options.data_dir, RUN_TIMEOUT).await?;
        floor.push(qemu_floor(&options.qemu, &options.data_dir).await?);
    }

    eprintln!("  raw QEMU: {} at {}/s", options.burst, options.rate);
    let floor_burst = qemu_burst_floor(
        &options.qemu,
        &options.data_dir,
        options.burst,
        options.rate,
    )
    .await?;
    eprintln!("  burst of {} VMs at {}/s", options.burst, options.rate);
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let mut starts = Vec::with_capacity(options.burst);
    let mut ticker = tokio::time::interval(interval);
    let cpu_before = options.server_pid.and_then(cpu_ms);
    for i in 0..options.burst {
        ticker.tick().await;
        let name = format!("burst-{i}");
        let start = Instant::now();
        let body = vm(&name, options.burst_image.as_deref(), "10m");
        conn.expect_ok(Method::POST, &vms_path(ns), Some(body))
            .await?;
        starts.push((name, start));
    }
    let mut burst = Samples::with_capacity(options.burst);
    for (name, start) in &starts {
        let at = running.wait(name, RUN_TIMEOUT).await?;
        burst.push(at.saturating_duration_since(*start));
    }
    let burst_server_cpu_ms = match (cpu_before, options.server_pid.and_then(cpu_ms)) {
        (Some(before), Some(after)) => Some((after - before) as f64 / options.burst.max(1) as f64),
        _ => None,
    };
    // Let every launcher settle (no more start-up allocations) before reading memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let launcher_rss_kib: Vec<u64> = launchers(&options.data_dir)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let dir = options.data_dir.display().to_string();
    let qemu_rss_kib: Vec<u64> = rss_of(&["qemu-system", &dir])
        .into_iter()
        .map(|(_, r)| r)
        .collect();

    eprintln!("  cleaning up");
    conn.expect_ok(Method::DELETE, &format!("/api/v1/namespaces/{ns}"), None)
        .await?;
    wait_no_launchers(&options.data_dir, RUN_TIMEOUT * 2).await?;
    watcher.abort();
    Ok(Results {
        single,
        floor,
        burst,
        floor_burst,
        burst_count: options.burst,
        rate: options.rate,
        launcher_rss_kib,
        qemu_rss_kib,
        burst_server_cpu_ms,
    })
}

/// User plus system CPU time of process `pid` so far, in ms (`/proc/PID/stat` counts in
/// USER_HZ ticks, 100 per second on Linux).
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: &[u64], f: impl Fn(&[u64]) -> u64) -> String {
    if kib.is_empty() {
        return "-".into();
    }
    format!("{:.1}", f(kib) as f64 / 1024.0)
}

/// The results as Markdown rows (see BENCHMARKS.md).
pub fn markdown(r: &Results) -> String {
    let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len().max(1) as u64;
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    format!(
        "| measurement | p50 | p95 | max | target |\n| --- | ---: | ---: | ---: | ---: |\n\
         | create → VMI Running, one VM on an idle node ({n} runs, ms) | {s50} | {s95} | {smax} | p50 < 200 |\n\
         | floor: raw QEMU spawn → QMP `cont` answered, same run (ms) | {f50} | {f95} | {fmax} | |\n\
         | create → VMI Running, {b} VMs created at {rate}/s (ms) | {b50} | {b95} | {bmax} | p95 < 1000 |\n\
         | floor: {b} raw QEMUs started at {rate}/s, spawn → `cont` answered, same run (ms) | {g50} | {g95} | {gmax} | |\n\
         \nControl-plane CPU per VM during the burst (server process: API server, controllers, node agent): {cpu} ms\n\
         \n| memory per running VM | mean | max | target |\n| --- | ---: | ---: | ---: |\n\
         | launcher RSS, {ln} launchers (MiB) | {lm} | {lx} | < 10 |\n\
         | QEMU RSS, for scale (MiB) | {qm} | {qx} | |\n",
        n = r.single.len(),
        s50 = ms(r.single.percentile(50.0)),
        s95 = ms(r.single.percentile(95.0)),
        smax = ms(r.single.percentile(100.0)),
        f50 = ms(r.floor.percentile(50.0)),
        f95 = ms(r.floor.percentile(95.0)),
        fmax = ms(r.floor.percentile(100.0)),
        b = r.burst_count,
        rate = r.rate,
        b50 = ms(r.burst.percentile(50.0)),
        b95 = ms(r.burst.percentile(95.0)),
        bmax = ms(r.burst.percentile(100.0)),
        g50 = ms(r.floor_burst.percentile(50.0)),
        g95 = ms(r.floor_burst.percentile(95.0)),
        gmax = ms(r.floor_burst.percentile(100.0)),
        ln = r.launcher_rss_kib.len(),
        lm = mib(&r.launcher_rss_kib, mean),
        lx = mib(&r.launcher_rss_kib, max),
        qm = mib(&r.qemu_rss_kib, mean),
        qx = mib(&r.qemu_rss_kib, max),
        cpu = r
            .burst_server_cpu_ms
            .map_or_else(|| "-".to_string(), |c| format!("{c:.0}")),
    )
}

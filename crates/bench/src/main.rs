//! `oxivirt-bench`: measures an oxivirt API server through HTTPS the way clients use it and
//! prints a Markdown table (see BENCHMARKS.md for how results are recorded).

mod client;
mod kubeconfig;
mod launch;
mod reference;
mod report;
mod scenarios;
mod stats;
mod vms;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{ArgAction, Parser};

use crate::kubeconfig::Target;
use crate::scenarios::Bench;

/// Measure durable creates, gets, lists and watch delivery of an oxivirt API server.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Admin kubeconfig of a running server.
    #[arg(long, required_unless_present = "start", conflicts_with = "start")]
    kubeconfig: Option<PathBuf>,
    /// Start this `oxivirt` binary on a fresh data directory and measure it.
    #[arg(long, value_name = "BIN")]
    start: Option<PathBuf>,
    /// Data directory for `--start` (default: a new temporary directory); also where the
    /// disk reference is measured.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Objects created by the single client.
    #[arg(long, default_value_t = 2000)]
    serial: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Objects created by the concurrent clients together; also the size of the listed
    /// namespace.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Single-object GETs.
    #[arg(long, default_value_t = 2000)]
    gets: usize,
    /// Objects created while a watch is open.
    #[arg(long, default_value_t = 1000)]
    watch_events: usize,
    /// Also measure raw fdatasync and SQLite commit rates on the data disk.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    reference: bool,
    /// Leave the benchmark's namespaces on the server instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Measure the VM runtime instead (needs `--start`: launchers are found through the
    /// data directory): create → Running, the raw QEMU floor, a burst, launcher memory.
    #[arg(long, requires = "start")]
    vms: bool,
    /// Single-VM runs for `--vms`.
    #[arg(long, default_value_t = 20)]
    vm_runs: usize,
    /// VMs in the `--vms` burst.
    #[arg(long, default_value_t = 50)]
    vm_burst: usize,
    /// Creations per second in the `--vms` burst.
    #[arg(long, default_value_t = 10.0)]
    vm_rate: f64,
    /// containerDisk image for the single-VM runs (default: a diskless guest).
    #[arg(long)]
    vm_image: Option<String>,
    /// containerDisk image for the burst: a guest that halts at once, as issue 4 asks, built
    /// by `scripts/bench/halt-containerdisk.sh` (default: a diskless guest, whose firmware
    /// keeps retrying to boot).
    #[arg(long)]
    vm_burst_image: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oxivirt-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("oxivirt-bench-")
        .tempdir()?;
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("data"));
    let launched = match &cli.start {
        Some(bin) => Some(launch::Launched::start(bin, &data_dir).await?),
        None => None,
    };
    let kubeconfig = match (&launched, &cli.kubeconfig) {
        (Some(server), _) => server.kubeconfig.clone(),
        (None, Some(path)) => path.clone(),
        (None, None) => unreachable!("clap requires --kubeconfig or --start"),
    };
    let target = Target::from_kubeconfig(&kubeconfig)?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if cli.vms {
        let options = vms::Options {
            runs: cli.vm_runs,
            burst: cli.vm_burst,
            rate: cli.vm_rate,
            image: cli.vm_image.clone(),
            burst_image: cli.vm_burst_image.clone(),
            data_dir: data_dir.clone(),
            qemu: "qemu-system-x86_64".into(),
            server_pid: launched.as_ref().and_then(launch::Launched::pid),
        };
        eprintln!(
            "VM runtime: {} single runs, burst of {}",
            options.runs, options.burst
        );
        let results = vms::run(
            std::sync::Arc::new(target),
            &format!("bench-vms-{run_id}"),
            &options,
        )
        .await?;
        println!("{}", vms::markdown(&results));
        return Ok(());
    }
    let mut bench = Bench::new(target, run_id.to_string());

    eprintln!("serial creates: {}", cli.serial);
    let (serial, serial_ns, names) = bench.serial_creates(cli.serial).await?;
    eprintln!(
        "concurrent creates: {} by {} clients",
        cli.objects, cli.clients
    );
    let (concurrent, concurrent_ns) = bench.concurrent_creates(cli.clients, cli.objects).await?;
    eprintln!("gets: {}", cli.gets);
    let gets = bench.gets(&serial_ns, &names, cli.gets).await?;
    eprintln!("lists of {} objects", cli.objects);
    let list = bench.list(&concurrent_ns, 500).await?;
    eprintln!("watch: {} events", cli.watch_events);
    let watch = bench.watch(cli.watch_events).await?;
    let reference = if cli.reference {
        eprintln!("disk reference");
        let dir = if data_dir.exists() {
            data_dir.clone()
        } else {
            temp.path().to_path_buf()
        };
        let fsync = reference::fsync_rate(&dir, 500).context("fsync reference")?;
        let sqlite = reference::sqlite_commit_rate(&dir, 500).context("SQLite reference")?;
        Some((fsync, sqlite))
    } else {
        None
    };
    if !cli.keep && launched.is_none() {
        bench.cleanup().await;
    }
    let results = report::Results {
        serial,
        concurrent,
        clients: cli.clients,
        gets,
        list,
        watch,
        reference,
    };
    println!("{}", report::markdown(&results));
    Ok(())
}

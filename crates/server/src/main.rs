//! `oxivirt`: the single binary. `oxivirt server` runs the API server with its embedded
//! store; further roles (agent, launcher, importer) join as subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use oxivirt_apiserver::ServerConfig;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "oxivirt",
    version,
    about = "OpenShift Virtualization, rebuilt in Rust"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Verbosity: 0 = info, 1-3 = debug, 4+ = trace (as `-v N` in Kubernetes components).
    #[arg(short = 'v', long = "v", default_value_t = 0, global = true)]
    verbosity: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server, controllers and the local node on this machine.
    /// Run one virtual machine (spawned by the node agent; not for direct use).
    Launcher {
        /// The Pod's run directory holding `launch.json`.
        #[arg(long)]
        run_dir: PathBuf,
    },
    Server {
        /// Where the store, certificates and admin.kubeconfig live.
        #[arg(long, env = "OXIVIRT_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to serve HTTPS on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: String,
    },
}

fn init_logging(format: LogFormat, verbosity: u8) {
    let level = match verbosity {
        0 => "info",
        1..=3 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("OXIVIRT_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,oxivirt={level},oxivirt_apiserver={level},oxivirt_store={level},oxivirt_controllers={level}"
        ))
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Launcher { run_dir } => oxivirt_launcher::run(&run_dir).await,
        Command::Server { data_dir, listen } => {
            let server = oxivirt_apiserver::start(ServerConfig { data_dir, listen }).await?;
            let kubeconfig = kube::config::Kubeconfig::read_from(&server.components_kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?;
            tokio::spawn(oxivirt_controllers::run(kube::Client::try_from(config)?));
            let signal = shutdown_signal().await?;
            tracing::info!(signal, addr = %server.addr, "shutting down");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbosity);
    // One launcher runs per VM: a single-threaded runtime keeps its footprint small.
    let mut builder = match cli.command {
        Command::Launcher { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

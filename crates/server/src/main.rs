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
    /// Join another host to a cluster as a node: register it and run the VMs bound to it.
    Agent {
        /// URL of the API server, e.g. https://10.0.0.1:6443.
        #[arg(long, required_unless_present = "kubeconfig")]
        server: Option<String>,
        /// Bearer token to authenticate with (oxivirt's components token).
        #[arg(long, env = "OXIVIRT_TOKEN", required_unless_present = "kubeconfig")]
        token: Option<String>,
        /// PEM file of the cluster CA (`<server data-dir>/pki/ca.crt`).
        #[arg(long, required_unless_present = "kubeconfig")]
        certificate_authority: Option<PathBuf>,
        /// A kubeconfig to use instead of --server/--token/--certificate-authority.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Name of this node (defaults to the host name).
        #[arg(long)]
        node_name: Option<String>,
        /// Where run directories, the image cache and node state live.
        #[arg(long, env = "OXIVIRT_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Import one disk image into one volume (a CDI worker Pod, run by the node; reads
    /// upstream's IMPORTER_* environment; not for direct use).
    Importer,
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
            "warn,oxivirt={level},oxivirt_apiserver={level},oxivirt_store={level},oxivirt_controllers={level},oxivirt_storage={level},oxivirt_importer={level}"
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

async fn config_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?)
}

fn agent_config(server: &str, token: &str, ca: &std::path::Path) -> anyhow::Result<kube::Config> {
    let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("reading {}: {e}", ca.display()))?;
    let ders: Vec<Vec<u8>> = pem_to_der(&pem);
    let mut config = kube::Config::new(server.parse()?);
    config.root_cert = Some(ders);
    config.auth_info.token = Some(token.to_string().into());
    Ok(config)
}

/// The DER certificates inside a PEM file.
fn pem_to_der(pem: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current = String::new();
    let mut inside = false;
    for line in text.lines() {
        match line.trim() {
            "-----BEGIN CERTIFICATE-----" => {
                inside = true;
                current.clear();
            }
            "-----END CERTIFICATE-----" => {
                inside = false;
                if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&current) {
                    out.push(der);
                }
            }
            l if inside => current.push_str(l),
            _ => {}
        }
    }
    out
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Launcher { run_dir } => oxivirt_launcher::run(&run_dir).await,
        Command::Importer => anyhow::bail!("the importer runs from main"),
        Command::Agent {
            server,
            token,
            certificate_authority,
            kubeconfig,
            node_name,
            data_dir,
        } => {
            let config = match kubeconfig {
                Some(path) => config_from_kubeconfig(&path).await?,
                None => {
                    let (Some(server), Some(token), Some(ca)) =
                        (server, token, certificate_authority)
                    else {
                        anyhow::bail!("--server, --token and --certificate-authority are required without --kubeconfig");
                    };
                    agent_config(&server, &token, &ca)?
                }
            };
            let mut agent =
                oxivirt_node_agent::AgentConfig::new(node_name.unwrap_or_else(host_name), data_dir);
            agent.cluster_ca = config.root_cert.clone().unwrap_or_default();
            let client = kube::Client::try_from(config)?;
            spawn_storage_node(client.clone(), &agent.node_name, &agent.data_dir)?;
            oxivirt_node_agent::run(client, agent).await
        }
        Command::Server { data_dir, listen } => {
            let server = oxivirt_apiserver::start(ServerConfig {
                data_dir: data_dir.clone(),
                listen,
            })
            .await?;
            let config = config_from_kubeconfig(&server.components_kubeconfig).await?;
            let mut agent = oxivirt_node_agent::AgentConfig::new(host_name(), data_dir);
            agent.cluster_ca = config.root_cert.clone().unwrap_or_default();
            // The controllers and the local agent share the server's process: they call its
            // router directly (other nodes' agents come over HTTPS).
            let service = tower::ServiceBuilder::new()
                .map_request(|r: http::Request<kube::client::Body>| r.map(axum::body::Body::new))
                .service(server.components_service());
            let client = kube::Client::new(service, "default");
            tokio::spawn(oxivirt_controllers::run(client.clone()));
            match oxivirt_network::NetworkConfig::from_env() {
                Ok(network) => {
                    tokio::spawn(oxivirt_network::services::controller::run(
                        client.clone(),
                        network,
                    ));
                    match oxivirt_network::macpool::MacRange::from_env() {
                        Ok(range) => drop(tokio::spawn(oxivirt_network::macpool::run(
                            client.clone(),
                            range,
                        ))),
                        Err(e) => tracing::error!(error = %e, "no MAC pool"),
                    }
                }
                Err(e) => tracing::error!(error = %e, "no Service controller"),
            }
            tokio::spawn(oxivirt_storage::run(client.clone()));
            spawn_storage_node(client.clone(), &agent.node_name, &agent.data_dir)?;
            // The local node: `oxivirt server` is also this machine's node agent (as k3s).
            tokio::spawn(async move {
                if let Err(e) = oxivirt_node_agent::run(client, agent).await {
                    tracing::error!(error = format!("{e:#}"), "the local node agent stopped");
                }
            });
            let signal = shutdown_signal().await?;
            tracing::info!(signal, addr = %server.addr, "shutting down");
            Ok(())
        }
    }
}

/// The node half of storage (volume directories, CDI worker Pods) for `node_name`.
fn spawn_storage_node(
    client: kube::Client,
    node_name: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let config = oxivirt_storage::NodeConfig {
        node_name: node_name.to_string(),
        data_dir: data_dir.to_path_buf(),
        worker_program: std::env::current_exe()?,
    };
    tokio::spawn(async move {
        if let Err(e) = oxivirt_storage::node::run(client, config).await {
            tracing::error!(error = format!("{e:#}"), "the node's storage stopped");
        }
    });
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbosity);
    // One launcher runs per VM: a single-threaded runtime keeps its footprint small.
    let mut builder = match cli.command {
        Command::Launcher { .. } | Command::Importer => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if let Command::Importer = cli.command {
        return runtime.block_on(oxivirt_importer::main());
    }
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

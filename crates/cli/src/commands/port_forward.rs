//! `virtctl port-forward TYPE/NAME[.NAMESPACE] [PROTOCOL/]LOCAL[:REMOTE]…`: local TCP and UDP
//! ports (or, with `--stdio`, this process's stdin and stdout) forwarded to ports of a VM's
//! guest through the `portforward/{port}/{protocol}` websocket (UDP: see [`udp`]). `--stdio=true` is what the
//! manual's `~/.ssh/config` ProxyCommand and `virtctl ssh|scp` use.

use std::io::Write;

use tokio::net::{TcpListener, TcpStream};

mod udp;

use super::stream::{self, Kind};
use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// `virtctl port-forward` as parsed.
#[derive(Debug, Clone, clap::Args)]
pub struct PortForwardArgs {
    /// The target: `vm/NAME[.NAMESPACE]` or `vmi/NAME[.NAMESPACE]` (`vmi` when no type is
    /// given; `TYPE/NAME/NAMESPACE` is also accepted).
    #[arg(value_name = "TYPE/NAME[.NAMESPACE]")]
    pub target: String,
    /// Ports to forward: `[PROTOCOL/]LOCAL[:REMOTE]` (the remote port defaults to the local
    /// one; with --stdio a single REMOTE port).
    #[arg(value_name = "PORT", required = true)]
    pub ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// Forward a single port over stdin and stdout instead of listening (`--stdio=true`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub stdio: bool,
}

/// What a target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
    /// Given in the target (`.NAMESPACE`); else the session's namespace applies.
    pub namespace: Option<String>,
}

impl Target {
    /// `TYPE/NAME[.NAMESPACE]`, `TYPE/NAME/NAMESPACE` or `NAME[.NAMESPACE]` (type `vmi`).
    ///
    /// # Errors
    /// An unknown type or an empty name, in upstream's words.
    pub fn parse(text: &str) -> Result<Target> {
        let (kind, rest) = match text.split_once('/') {
            Some((kind, rest)) => (parse_kind(kind)?, rest),
            None => (Kind::Vmi, text),
        };
        let (name, namespace) = match rest.split_once('/') {
            Some((name, ns)) => (name, Some(ns)),
            None => match rest.split_once('.') {
                Some((name, ns)) => (name, Some(ns)),
                None => (rest, None),
            },
        };
        if name.is_empty() || namespace.is_some_and(str::is_empty) {
            return Err(Error::Invalid(format!(
                "expected TYPE/NAME[.NAMESPACE], got {text:?}"
            )));
        }
        Ok(Target {
            kind,
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
        })
    }

    /// `vm/NAME.NAMESPACE`, the form the ProxyCommand is given.
    pub fn display(&self, namespace: &str) -> String {
        let kind = match self.kind {
            Kind::Vm => "vm",
            Kind::Vmi => "vmi",
        };
        format!("{kind}/{}.{namespace}", self.name)
    }
}

fn parse_kind(kind: &str) -> Result<Kind> {
    match kind {
        "vm" | "vms" | "virtualmachine" | "virtualmachines" => Ok(Kind::Vm),
        "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => Ok(Kind::Vmi),
        other => Err(Error::Invalid(format!(
            "unsupported resource type '{other}'"
        ))),
    }
}

/// One `[PROTOCOL/]LOCAL[:REMOTE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub local: u16,
    pub remote: u16,
    /// `udp/…`; TCP otherwise.
    pub udp: bool,
}

impl PortSpec {
    /// # Errors
    /// A port that is not a number in 1–65535 (0 allowed locally: any free port), or a
    /// protocol other than `tcp` and `udp`.
    pub fn parse(text: &str) -> Result<PortSpec> {
        let (protocol, ports) = match text.split_once('/') {
            Some((p, rest)) => (p, rest),
            None => ("tcp", text),
        };
        let udp = match protocol {
            "tcp" => false,
            "udp" => true,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown protocol {other:?} in {text:?}"
                )))
            }
        };
        let number = |s: &str, zero_ok: bool| -> Result<u16> {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p != 0 || zero_ok)
                .ok_or_else(|| Error::Invalid(format!("invalid port {s:?} in {text:?}")))
        };
        let (local, remote) = match ports.split_once(':') {
            Some((l, r)) => (number(l, true)?, number(r, false)?),
            None => {
                let p = number(ports, false)?;
                (p, p)
            }
        };
        Ok(PortSpec { local, remote, udp })
    }
}

/// The validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct PortForwardRequest {
    pub target: Target,
    pub ports: Vec<PortSpec>,
    pub address: String,
    pub stdio: bool,
    pub connection: ConnectionOptions,
}

impl PortForwardRequest {
    /// # Errors
    /// Bad target or ports; `--stdio` with more than one port.
    pub fn from_args(args: PortForwardArgs, connection: ConnectionOptions) -> Result<Self> {
        let target = Target::parse(&args.target)?;
        let ports = args
            .ports
            .iter()
            .map(|p| PortSpec::parse(p))
            .collect::<Result<Vec<_>>>()?;
        if args.stdio && ports.len() != 1 {
            return Err(Error::Invalid(
                "--stdio forwards exactly one port".to_owned(),
            ));
        }
        if args.stdio && ports[0].udp {
            return Err(Error::Invalid(
                "--stdio forwards a TCP port (a byte stream); UDP needs a local port".to_owned(),
            ));
        }
        Ok(PortForwardRequest {
            target,
            ports,
            address: args.address,
            stdio: args.stdio,
            connection,
        })
    }
}

/// Opens the stream to `port` of the target.
async fn open(
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    port: u16,
) -> Result<stream::Stream> {
    open_protocol(client, target, namespace, port, "tcp").await
}

/// Opens the stream to `port`/`protocol` of the target.
async fn open_protocol(
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    port: u16,
    protocol: &str,
) -> Result<stream::Stream> {
    let path = stream::path(
        target.kind,
        namespace,
        &target.name,
        &format!("portforward/{port}/{protocol}"),
    );
    Ok(stream::open(client, &path).await?)
}

/// Runs the forwarding until interrupted (or, with `--stdio`, until the stream ends).
///
/// # Errors
/// Connection failures, refusals by the server (VM not running, forbidden), local sockets.
pub fn run(request: &PortForwardRequest, err: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let namespace = request
            .target
            .namespace
            .clone()
            .unwrap_or(session.namespace.clone());
        if request.stdio {
            let port = request.ports[0].remote;
            let ws = open(&session.client, &request.target, &namespace, port).await?;
            stream::pump(ws, tokio::io::stdin(), tokio::io::stdout())
                .await
                .map_err(|source| Error::Local {
                    action: "cannot relay stdin and stdout".into(),
                    source,
                })?;
            return Ok(());
        }
        for spec in &request.ports {
            if spec.udp {
                let socket = tokio::net::UdpSocket::bind((request.address.as_str(), spec.local))
                    .await
                    .map_err(|source| Error::Local {
                        action: format!("cannot listen on {}:{}/udp", request.address, spec.local),
                        source,
                    })?;
                let local = socket.local_addr().map_err(|source| Error::Local {
                    action: "cannot read the listening address".into(),
                    source,
                })?;
                writeln!(err, "Forwarding from {local}/udp -> {}", spec.remote)
                    .map_err(Error::Output)?;
                tokio::spawn(udp::serve(
                    socket,
                    session.client.clone(),
                    request.target.clone(),
                    namespace.clone(),
                    spec.remote,
                ));
                continue;
            }
            let listener = TcpListener::bind((request.address.as_str(), spec.local))
                .await
                .map_err(|source| Error::Local {
                    action: format!("cannot listen on {}:{}", request.address, spec.local),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| Error::Local {
                action: "cannot read the listening address".into(),
                source,
            })?;
            writeln!(err, "Forwarding from {local} -> {}", spec.remote).map_err(Error::Output)?;
            tokio::spawn(accept_loop(
                listener,
                session.client.clone(),
                request.target.clone(),
                namespace.clone(),
                spec.remote,
            ));
        }
        tokio::signal::ctrl_c()
            .await
            .map_err(|source| Error::Local {
                action: "cannot wait for Ctrl+C".into(),
                source,
            })
    })
}

async fn accept_loop(
    listener: TcpListener,
    client: kube::Client,
    target: Target,
    namespace: String,
    port: u16,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a local connection failed");
                continue;
            }
        };
        let (client, target, namespace) = (client.clone(), target.clone(), namespace.clone());
        tokio::spawn(async move {
            if let Err(e) = forward(socket, &client, &target, &namespace, port).await {
                eprintln!(
                    "error forwarding {peer} to port {port}: {}",
                    crate::error::chain(&e)
                );
            }
        });
    }
}

async fn forward(
    socket: TcpStream,
    client: &kube::Client,
    target: &Target,
    namespace: &str,
    port: u16,
) -> Result<()> {
    let _ = socket.set_nodelay(true);
    let ws = open(client, target, namespace, port).await?;
    let (read, write) = socket.into_split();
    stream::pump(ws, read, write)
        .await
        .map(|_| ())
        .map_err(|source| Error::Local {
            action: "cannot relay a forwarded connection".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_upstreams_forms() {
        let t = Target::parse("vm/web.team").expect("parses");
        assert_eq!(
            (t.kind, t.name.as_str(), t.namespace.as_deref()),
            (Kind::Vm, "web", Some("team"))
        );
        let t = Target::parse("vmi/web/team").expect("parses");
        assert_eq!((t.kind, t.namespace.as_deref()), (Kind::Vmi, Some("team")));
        let t = Target::parse("web").expect("parses");
        assert_eq!((t.kind, t.namespace.as_deref()), (Kind::Vmi, None));
        assert_eq!(t.display("default"), "vmi/web.default");
        let err = Target::parse("pod/web").expect_err("not a VM");
        assert_eq!(err.to_string(), "unsupported resource type 'pod'");
        assert!(Target::parse("vm/").is_err());
    }

    #[test]
    fn ports_are_local_colon_remote_with_an_optional_protocol() {
        assert_eq!(
            PortSpec::parse("22").expect("ok"),
            PortSpec {
                local: 22,
                remote: 22,
                udp: false
            }
        );
        assert_eq!(
            PortSpec::parse("tcp/2222:22").expect("ok"),
            PortSpec {
                local: 2222,
                remote: 22,
                udp: false
            }
        );
        assert_eq!(
            PortSpec::parse("0:80").expect("ok"),
            PortSpec {
                local: 0,
                remote: 80,
                udp: false
            }
        );
        assert!(PortSpec::parse("x").is_err());
        assert!(PortSpec::parse("80:0").is_err());
        assert_eq!(
            PortSpec::parse("udp/5353").expect("ok"),
            PortSpec {
                local: 5353,
                remote: 5353,
                udp: true
            }
        );
        assert!(PortSpec::parse("sctp/53").is_err());
    }
}

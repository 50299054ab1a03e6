//! `virtctl vnc NAME [--proxy-only] [--port N] [--address A] [--preserve-session]`: a local
//! RFB endpoint relayed to the VMI's VNC server over the `vnc` websocket, and (unless
//! `--proxy-only`) a viewer started against it. As upstream: the stream is opened first (so
//! a missing or stopped VMI fails before anything listens), one viewer connection is served,
//! and `--proxy-only` prints `{"port":N}` for the caller's own client.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;

use super::stream::{self, Kind};
use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// Viewers tried in order when `--vnc-path` is not given.
const VIEWERS: &[&str] = &["remote-viewer", "vncviewer"];

/// `virtctl vnc` as parsed.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct VncArgs {
    /// `virtctl vnc screenshot NAME`.
    #[command(subcommand)]
    pub action: Option<VncAction>,
    /// Name of the VirtualMachineInstance.
    pub name: Option<String>,
    /// Only start the local proxy and print its port as JSON; start no viewer.
    #[arg(long)]
    pub proxy_only: bool,
    /// The local port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// Keep an existing VNC session instead of replacing it.
    #[arg(long)]
    pub preserve_session: bool,
    /// The viewer to start (remote-viewer or vncviewer by default).
    #[arg(long, value_name = "PATH")]
    pub vnc_path: Option<PathBuf>,
}

/// Subcommands of `virtctl vnc`.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum VncAction {
    /// Create a VNC screenshot of a virtual machine instance.
    Screenshot(ScreenshotArgs),
}

/// `virtctl vnc screenshot NAME --file F [--move-cursor]` as parsed (upstream's flags).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ScreenshotArgs {
    /// Name of the VirtualMachineInstance.
    pub name: String,
    /// Where to store the VNC screenshot in PNG format. Use '-' for stdout.
    #[arg(short = 'f', long = "file", required = true)]
    pub file: String,
    /// Move the cursor to wake up the screen in case of screensavers.
    #[arg(short = 'm', long)]
    pub move_cursor: bool,
}

/// The validated command.
#[derive(Debug, Clone, PartialEq)]
pub struct VncRequest {
    pub args: VncArgs,
    pub connection: ConnectionOptions,
}

/// Serves one VNC connection.
///
/// # Errors
/// The server's message (not found, not running, forbidden); local socket failures; no
/// viewer installed when one is needed.
pub fn run(request: &VncRequest, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let args = &request.args;
    if let Some(VncAction::Screenshot(shot)) = &args.action {
        return screenshot(shot, &request.connection, out);
    }
    let Some(name) = args.name.as_deref() else {
        return Err(Error::Invalid("accepts 1 arg(s), received 0".into()));
    };
    let viewer = if args.proxy_only {
        None
    } else {
        Some(find_viewer(args.vnc_path.as_deref())?)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let mut sub = String::from("vnc");
        if args.preserve_session {
            sub.push_str("?preserveSession=true");
        }
        let path = stream::path(Kind::Vmi, &session.namespace, name, &sub);
        let ws = stream::open(&session.client, &path).await?;
        let listener = TcpListener::bind((args.address.as_str(), args.port))
            .await
            .map_err(|source| Error::Local {
                action: format!("cannot listen on {}:{}", args.address, args.port),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| Error::Local {
                action: "cannot read the listening address".into(),
                source,
            })?
            .port();
        let mut child = match &viewer {
            None => {
                writeln!(out, "{}", serde_json::json!({ "port": port })).map_err(Error::Output)?;
                out.flush().map_err(Error::Output)?;
                None
            }
            Some(program) => Some(start_viewer(program, &args.address, port, err)?),
        };
        let (socket, _) = listener.accept().await.map_err(|source| Error::Local {
            action: format!("cannot accept the viewer's connection on port {port}"),
            source,
        })?;
        // One viewer per proxy, as upstream: nobody else may attach to this session.
        drop(listener);
        let _ = socket.set_nodelay(true);
        let (read, write) = socket.into_split();
        stream::pump(ws, read, write)
            .await
            .map_err(|source| Error::Local {
                action: "cannot relay the VNC connection".into(),
                source,
            })?;
        if let Some(child) = child.as_mut() {
            let _ = child.wait().await;
        }
        Ok(())
    })
}

/// `virtctl vnc screenshot`: the PNG of `GET …/vnc/screenshot`, to a file or stdout.
fn screenshot(
    args: &ScreenshotArgs,
    connection: &ConnectionOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let png = runtime.block_on(async {
        let session = client::connect(connection).await.map_err(Error::Config)?;
        let mut sub = String::from("vnc/screenshot");
        if args.move_cursor {
            sub.push_str("?moveCursor=true");
        }
        let path = stream::path(Kind::Vmi, &session.namespace, &args.name, &sub);
        stream::get_bytes(&session.client, &path)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Refused(message) => {
                    Error::Refused(format!("Can't access VMI {}: {message}", args.name))
                }
                other => other,
            })
    })?;
    if args.file == "-" {
        out.write_all(&png).map_err(Error::Output)?;
        return out.flush().map_err(Error::Output);
    }
    std::fs::write(&args.file, &png).map_err(|source| Error::Local {
        action: format!("Can't write image to a file {}", args.file),
        source,
    })
}

fn find_viewer(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    for name in VIEWERS {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Invalid(
        "could not find a VNC viewer (remote-viewer or vncviewer) in $PATH; install virt-viewer, \
         pass --vnc-path, or use --proxy-only and connect your own client"
            .into(),
    ))
}

fn start_viewer(
    program: &Path,
    address: &str,
    port: u16,
    err: &mut dyn Write,
) -> Result<tokio::process::Child> {
    let is_remote_viewer = program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("remote-viewer"));
    // remote-viewer takes a URI; TigerVNC-style viewers take HOST::PORT.
    let target = if is_remote_viewer {
        format!("vnc://{address}:{port}")
    } else {
        format!("{address}::{port}")
    };
    writeln!(err, "Starting {} {target}", program.display()).map_err(Error::Output)?;
    tokio::process::Command::new(program)
        .arg(&target)
        .spawn()
        .map_err(|source| Error::Local {
            action: format!("cannot start the viewer {}", program.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<VncArgs, clap::Error> {
        use clap::Parser;
        let mut all = vec!["virtctl", "vnc"];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(all)?.command {
            Some(crate::cli::Command::Vnc(args)) => Ok(args),
            other => panic!("not vnc: {other:?}"),
        }
    }

    #[test]
    fn vnc_takes_a_name_or_the_screenshot_subcommand_with_upstreams_flags() {
        let plain = parse(&["guest", "--proxy-only"]).expect("parses");
        assert_eq!(plain.name.as_deref(), Some("guest"));
        assert!(plain.action.is_none() && plain.proxy_only);
        let shot = parse(&["screenshot", "guest", "-f", "-", "-m"]).expect("parses");
        assert_eq!(
            shot.action,
            Some(VncAction::Screenshot(ScreenshotArgs {
                name: "guest".into(),
                file: "-".into(),
                move_cursor: true
            }))
        );
        // --file is required, as upstream.
        assert!(parse(&["screenshot", "guest"]).is_err());
    }

    #[test]
    fn an_explicit_viewer_path_is_used_as_given() {
        let path = find_viewer(Some(Path::new("/opt/viewer"))).expect("explicit path");
        assert_eq!(path, PathBuf::from("/opt/viewer"));
    }
}

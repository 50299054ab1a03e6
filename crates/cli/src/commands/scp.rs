//! `virtctl scp [flags] SOURCE DESTINATION`: the system `scp` with the same ProxyCommand as
//! `virtctl ssh`. Exactly one side is remote, written `[USER@]TYPE/NAME[.NAMESPACE]:PATH`
//! (or `USER@NAME:PATH`); copies go both ways, `-r` copies directories.

use std::path::Path;

use super::port_forward::Target;
use super::ssh::{self, LocalSshArgs};
use crate::client::ConnectionOptions;
use crate::error::{Error, Result};

/// `virtctl scp` as parsed.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ScpArgs {
    /// What to copy: a local path or `[USER@]TYPE/NAME[.NAMESPACE]:PATH`.
    pub source: String,
    /// Where to copy it: a local path or `[USER@]TYPE/NAME[.NAMESPACE]:PATH`.
    pub destination: String,
    #[command(flatten)]
    pub common: LocalSshArgs,
    /// Copy directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Preserve modification times, access times and modes.
    #[arg(long)]
    pub preserve: bool,
}

/// One side of the copy.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Local(String),
    Remote {
        user: Option<String>,
        target: Target,
        path: String,
    },
}

impl Location {
    /// `[USER@]TARGET:PATH` is remote when TARGET parses; anything else (including
    /// `./a:b` and absolute paths) is local.
    pub fn parse(text: &str) -> Location {
        if text.starts_with('/') || text.starts_with('.') {
            return Location::Local(text.to_owned());
        }
        let Some((host, path)) = text.split_once(':') else {
            return Location::Local(text.to_owned());
        };
        match ssh::parse_user_target(host) {
            Ok((user, target)) => Location::Remote {
                user,
                target,
                path: path.to_owned(),
            },
            Err(_) => Location::Local(text.to_owned()),
        }
    }
}

/// The validated command: one remote side, one local side.
#[derive(Debug, Clone, PartialEq)]
pub struct ScpRequest {
    pub user: Option<String>,
    pub target: Target,
    pub remote_path: String,
    pub local_path: String,
    /// Copy from the guest to here (else from here to the guest).
    pub download: bool,
    pub args: ScpArgs,
    pub connection: ConnectionOptions,
}

impl ScpRequest {
    /// # Errors
    /// Both or neither side remote (upstream's messages); `--local-ssh=false`.
    pub fn from_args(args: ScpArgs, connection: ConnectionOptions) -> Result<Self> {
        ssh::require_local(&args.common, "scp")?;
        let (remote, local, download) =
            match (
                Location::parse(&args.source),
                Location::parse(&args.destination),
            ) {
                (Location::Remote { .. }, Location::Remote { .. }) => return Err(Error::Invalid(
                    "copying from a remote location to another remote location is not supported"
                        .into(),
                )),
                (Location::Local(_), Location::Local(_)) => {
                    return Err(Error::Invalid(
                        "none of the two provided locations seems to be a remote location".into(),
                    ))
                }
                (remote @ Location::Remote { .. }, Location::Local(local)) => (remote, local, true),
                (Location::Local(local), remote) => (remote, local, false),
            };
        let Location::Remote { user, target, path } = remote else {
            return Err(Error::Invalid("no remote location".into()));
        };
        Ok(ScpRequest {
            user: args.common.username.clone().or(user),
            target,
            remote_path: path,
            local_path: local,
            download,
            args,
            connection,
        })
    }
}

/// Runs the system `scp`.
///
/// # Errors
/// An unusable kubeconfig; scp missing or exiting non-zero.
pub fn run(request: &ScpRequest) -> Result<()> {
    let namespace = ssh::namespace_of(&request.target, &request.connection)?;
    let mut args = ssh::common_options(
        &request.args.common,
        &request.target,
        &namespace,
        &request.connection,
    )?;
    if request.args.recursive {
        args.push("-r".into());
    }
    if request.args.preserve {
        args.push("-p".into());
    }
    let remote = format!(
        "{}:{}",
        scp_host(request.user.as_deref(), &request.target, &namespace),
        request.remote_path
    );
    let local = local_arg(&request.local_path);
    if request.download {
        args.extend([remote, local]);
    } else {
        args.extend([local, remote]);
    }
    ssh::run_local("scp", &args)
}

/// `[USER@]TYPE.NAME.NAMESPACE`, as upstream writes it: scp reads a `/` before the colon
/// as a local path, and the ProxyCommand names the target anyway.
fn scp_host(user: Option<&str>, target: &Target, namespace: &str) -> String {
    let host = target.display(namespace).replacen('/', ".", 1);
    match user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    }
}

/// scp itself reads `x:y` as remote; a local path with a colon is made explicit.
fn local_arg(path: &str) -> String {
    if path.contains(':') && !Path::new(path).is_absolute() && !path.starts_with('.') {
        format!("./{path}")
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::stream::Kind;

    #[test]
    fn remote_locations_name_a_target_before_the_colon() {
        let Location::Remote { user, target, path } =
            Location::parse("fedora@vm/web.team:/etc/hosts")
        else {
            panic!("remote expected");
        };
        assert_eq!(user.as_deref(), Some("fedora"));
        assert_eq!((target.kind, path.as_str()), (Kind::Vm, "/etc/hosts"));
        assert!(matches!(
            Location::parse("cirros@web:file"),
            Location::Remote { .. }
        ));
        assert_eq!(Location::parse("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(
            Location::parse("notes.txt"),
            Location::Local("notes.txt".into())
        );
        assert_eq!(local_arg("a:b"), "./a:b");
        let target = Target::parse("vm/web").expect("parses");
        assert_eq!(scp_host(Some("u"), &target, "team"), "u@vm.web.team");
    }
}

//! `virtctl ssh [USER@]TYPE/NAME[.NAMESPACE]`: the system `ssh` (upstream's `--local-ssh`,
//! the default) run with a ProxyCommand of `virtctl port-forward --stdio=true`, so the SSH
//! connection is tunnelled through the API server to the guest's port. The flags common
//! to `ssh` and `scp` and the ProxyCommand builder live here; `scp` reuses them.

use std::path::PathBuf;
use std::process::Command;

use super::port_forward::Target;
use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// Flags `virtctl ssh` and `virtctl scp` share (upstream's names and short forms).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct LocalSshArgs {
    /// The private key to authenticate with (ssh's -i).
    #[arg(short = 'i', long = "identity-file", value_name = "PATH")]
    pub identity_file: Option<PathBuf>,
    /// The user to log in as in the guest.
    #[arg(short = 'l', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// The guest port the SSH server listens on.
    #[arg(short = 'p', long, default_value_t = 22)]
    pub port: u16,
    /// Options passed to the local ssh/scp as they are; can be repeated
    /// (`-t -oStrictHostKeyChecking=no`).
    #[arg(
        short = 't',
        long = "local-ssh-opts",
        value_name = "OPTION",
        allow_hyphen_values = true
    )]
    pub local_ssh_opts: Vec<String>,
    /// The known_hosts file to use (passed to ssh/scp as `UserKnownHostsFile`).
    #[arg(long = "known-hosts", value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// Use the local ssh/scp binaries (`--local-ssh=false`, the built-in client, is not
    /// available in this build).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    pub local_ssh: bool,
}

/// `virtctl ssh` as parsed.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SshArgs {
    /// The target: `[USER@]TYPE/NAME[.NAMESPACE]` (`vm/…` or `vmi/…`) or `USER@NAME`.
    #[arg(value_name = "[USER@]TYPE/NAME[.NAMESPACE]")]
    pub target: String,
    #[command(flatten)]
    pub common: LocalSshArgs,
    /// A command to run in the guest instead of a login shell.
    #[arg(short = 'c', long)]
    pub command: Option<String>,
}

/// `USER@TARGET` split into its user (if any) and target.
///
/// # Errors
/// A target that does not parse (see [`Target::parse`]).
pub fn parse_user_target(text: &str) -> Result<(Option<String>, Target)> {
    match text.split_once('@') {
        Some((user, rest)) if !user.is_empty() => Ok((Some(user.to_owned()), Target::parse(rest)?)),
        Some(_) => Err(Error::Invalid(format!("empty user name in {text:?}"))),
        None => Ok((None, Target::parse(text)?)),
    }
}

/// The validated `ssh` command.
#[derive(Debug, Clone, PartialEq)]
pub struct SshRequest {
    pub user: Option<String>,
    pub target: Target,
    pub common: LocalSshArgs,
    pub command: Option<String>,
    pub connection: ConnectionOptions,
}

impl SshRequest {
    /// # Errors
    /// A bad target; `--local-ssh=false`.
    pub fn from_args(args: SshArgs, connection: ConnectionOptions) -> Result<Self> {
        require_local(&args.common, "ssh")?;
        let (user, target) = parse_user_target(&args.target)?;
        Ok(SshRequest {
            user: args.common.username.clone().or(user),
            target,
            common: args.common,
            command: args.command,
            connection,
        })
    }
}

/// The built-in SSH client is not part of this build.
pub fn require_local(common: &LocalSshArgs, command: &str) -> Result<()> {
    if common.local_ssh {
        Ok(())
    } else {
        Err(Error::Unsupported {
            command: format!("{command} --local-ssh=false"),
        })
    }
}

/// The namespace a target without `.NAMESPACE` lives in: `-n`, else the kubeconfig's.
///
/// # Errors
/// An unusable kubeconfig.
pub fn namespace_of(target: &Target, connection: &ConnectionOptions) -> Result<String> {
    if let Some(ns) = &target.namespace {
        return Ok(ns.clone());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let config = runtime
        .block_on(client::load_config(connection))
        .map_err(Error::Config)?;
    Ok(config.default_namespace)
}

/// Quotes `s` for the POSIX shell ssh runs the ProxyCommand with; `%` is doubled because
/// ssh expands `%` sequences in it first.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''").replace('%', "%%"))
}

/// The connection flags given to this virtctl, repeated for the ProxyCommand's virtctl
/// so that it talks to the same cluster as the same user.
fn connection_flags(c: &ConnectionOptions) -> Vec<String> {
    let mut flags = Vec::new();
    let mut put = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            flags.push(format!("--{flag}={v}"));
        }
    };
    put(
        "kubeconfig",
        c.kubeconfig.as_ref().map(|p| p.display().to_string()),
    );
    put("context", c.context.clone());
    put("cluster", c.cluster.clone());
    put("user", c.user.clone());
    put("server", c.server.clone());
    put("token", c.token.clone());
    put(
        "certificate-authority",
        c.certificate_authority
            .as_ref()
            .map(|p| p.display().to_string()),
    );
    put(
        "client-certificate",
        c.client_certificate
            .as_ref()
            .map(|p| p.display().to_string()),
    );
    put(
        "client-key",
        c.client_key.as_ref().map(|p| p.display().to_string()),
    );
    put("tls-server-name", c.tls_server_name.clone());
    put("as", c.impersonate.clone());
    put("request-timeout", c.request_timeout.clone());
    for g in &c.impersonate_groups {
        flags.push(format!("--as-group={g}"));
    }
    if c.insecure_skip_tls_verify {
        flags.push("--insecure-skip-tls-verify".into());
    }
    flags
}

/// `ProxyCommand=<this virtctl> port-forward --stdio=true [flags] TYPE/NAME.NAMESPACE PORT`.
///
/// # Errors
/// When the path of this executable cannot be found.
pub fn proxy_command(
    target: &Target,
    namespace: &str,
    port: u16,
    connection: &ConnectionOptions,
) -> Result<String> {
    let exe = std::env::current_exe().map_err(|source| Error::Local {
        action: "cannot find the virtctl executable for the ProxyCommand".into(),
        source,
    })?;
    let mut words = vec![
        shell_quote(&exe.display().to_string()),
        "port-forward".to_owned(),
        "--stdio=true".to_owned(),
    ];
    words.extend(connection_flags(connection).iter().map(|f| shell_quote(f)));
    words.push(shell_quote(&target.display(namespace)));
    words.push(port.to_string());
    Ok(format!("ProxyCommand={}", words.join(" ")))
}

/// `[USER@]TYPE/NAME.NAMESPACE`, the host name ssh sees (the ProxyCommand ignores it).
pub fn ssh_host(user: Option<&str>, target: &Target, namespace: &str) -> String {
    match user {
        Some(u) => format!("{u}@{}", target.display(namespace)),
        None => target.display(namespace),
    }
}

/// The options every local ssh/scp run gets: ProxyCommand, pass-through options, key.
pub fn common_options(
    common: &LocalSshArgs,
    target: &Target,
    namespace: &str,
    connection: &ConnectionOptions,
) -> Result<Vec<String>> {
    let mut args = vec![
        "-o".to_owned(),
        proxy_command(target, namespace, common.port, connection)?,
    ];
    if let Some(file) = &common.known_hosts {
        args.push("-o".into());
        args.push(format!("UserKnownHostsFile={}", file.display()));
    }
    args.extend(common.local_ssh_opts.iter().cloned());
    if let Some(key) = &common.identity_file {
        args.push("-i".into());
        args.push(key.display().to_string());
    }
    Ok(args)
}

/// Runs `program` with `args`, stdio inherited; its exit status becomes virtctl's.
pub fn run_local(program: &str, args: &[String]) -> Result<()> {
    tracing::debug!(program, ?args, "running the local client");
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|source| Error::Local {
            action: format!("cannot run the local {program} (is it installed?)"),
            source,
        })?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Error::Exited {
            program: program.to_owned(),
            code: code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        }),
    }
}

/// Runs the system `ssh`.
///
/// # Errors
/// An unusable kubeconfig; ssh missing or exiting non-zero.
pub fn run(request: &SshRequest) -> Result<()> {
    let namespace = namespace_of(&request.target, &request.connection)?;
    let mut args = common_options(
        &request.common,
        &request.target,
        &namespace,
        &request.connection,
    )?;
    args.push(ssh_host(
        request.user.as_deref(),
        &request.target,
        &namespace,
    ));
    if let Some(command) = &request.command {
        args.push(command.clone());
    }
    run_local("ssh", &args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::stream::Kind;

    #[test]
    fn user_and_target_forms() {
        let (user, t) = parse_user_target("fedora@vm/web.team").expect("parses");
        assert_eq!(user.as_deref(), Some("fedora"));
        assert_eq!((t.kind, t.namespace.as_deref()), (Kind::Vm, Some("team")));
        let (user, t) = parse_user_target("cirros@web").expect("parses");
        assert_eq!(
            (user.as_deref(), t.kind, t.name.as_str()),
            (Some("cirros"), Kind::Vmi, "web")
        );
        assert!(parse_user_target("@web").is_err());
    }

    #[test]
    fn the_proxy_command_repeats_the_connection_flags_quoted() {
        let target = Target::parse("vm/web").expect("parses");
        let connection = ConnectionOptions {
            kubeconfig: Some("/tmp/my config%1".into()),
            ..Default::default()
        };
        let cmd = proxy_command(&target, "team", 2222, &connection).expect("builds");
        assert!(cmd.starts_with("ProxyCommand='"), "{cmd}");
        assert!(
            cmd.ends_with(
                " port-forward --stdio=true '--kubeconfig=/tmp/my config%%1' 'vm/web.team' 2222"
            ),
            "{cmd}"
        );
    }

    #[test]
    fn the_built_in_client_is_refused_as_unsupported() {
        let mut common = LocalSshArgs {
            identity_file: None,
            username: None,
            port: 22,
            local_ssh_opts: vec![],
            known_hosts: None,
            local_ssh: false,
        };
        assert!(matches!(
            require_local(&common, "ssh"),
            Err(Error::Unsupported { .. })
        ));
        common.local_ssh = true;
        assert!(require_local(&common, "ssh").is_ok());
    }
}

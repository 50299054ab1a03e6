//! Typed guest-agent commands and replies (names as in `qemu-ga-ref(7)`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::GuestAgent;
use crate::codec::base64;
use crate::error::{Error, Result};

/// Reply of `guest-info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's version.
    pub version: String,
    /// Every command the agent knows, enabled or not.
    #[serde(default)]
    pub supported_commands: Vec<AgentCommandInfo>,
}

impl AgentInfo {
    /// True if `command` exists and the guest admin has not disabled it.
    pub fn supports(&self, command: &str) -> bool {
        self.supported_commands
            .iter()
            .any(|info| info.name == command && info.enabled)
    }
}

/// One command in [`AgentInfo::supported_commands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentCommandInfo {
    /// Command name.
    pub name: String,
    /// False if disabled in the guest (`--block-rpcs` or not `--allow-rpcs`).
    pub enabled: bool,
    /// False for commands that never answer on success (`guest-shutdown`).
    #[serde(default = "yes")]
    pub success_response: bool,
}

fn yes() -> bool {
    true
}

/// Reply of `guest-get-osinfo`; on Linux the fields come from `uname` and `os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OsInfo {
    /// `uname -r` (Windows: build number).
    pub kernel_release: Option<String>,
    /// `uname -v`.
    pub kernel_version: Option<String>,
    /// `uname -m`.
    pub machine: Option<String>,
    /// os-release `ID` (Windows: `mswindows`).
    pub id: Option<String>,
    /// os-release `NAME`.
    pub name: Option<String>,
    /// os-release `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// os-release `VERSION`.
    pub version: Option<String>,
    /// os-release `VERSION_ID`.
    pub version_id: Option<String>,
    /// os-release `VARIANT`.
    pub variant: Option<String>,
    /// os-release `VARIANT_ID`.
    pub variant_id: Option<String>,
}

/// One entry of `guest-get-users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestUser {
    /// User name.
    pub user: String,
    /// Logon domain (Windows only).
    #[serde(default)]
    pub domain: Option<String>,
    /// Earliest login, fractional seconds since the Unix epoch.
    pub login_time: f64,
}

/// One entry of `guest-get-fsinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FilesystemInfo {
    /// Device name, e.g. `vda1`.
    pub name: String,
    /// Mount point.
    pub mountpoint: String,
    /// Filesystem type, e.g. `ext4`.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Bytes used.
    #[serde(default)]
    pub used_bytes: Option<u64>,
    /// Bytes in total (non-root view).
    #[serde(default)]
    pub total_bytes: Option<u64>,
    /// Disks the filesystem lies on (`GuestDiskAddress`, kept raw).
    #[serde(default)]
    pub disk: Vec<Value>,
}

/// One entry of `guest-network-get-interfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NetworkInterface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub hardware_address: Option<String>,
    /// Assigned addresses.
    #[serde(default)]
    pub ip_addresses: Vec<IpAddress>,
    /// Traffic counters (`GuestNetworkInterfaceStat`, kept raw).
    #[serde(default)]
    pub statistics: Option<Value>,
}

/// An address in [`NetworkInterface::ip_addresses`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpAddress {
    /// The address.
    pub ip_address: String,
    /// Its family.
    pub ip_address_type: IpAddressType,
    /// Prefix length.
    pub prefix: u8,
}

/// `ipv4` or `ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpAddressType {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Reply of `guest-fsfreeze-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsfreezeStatus {
    /// Filesystems are writable.
    Thawed,
    /// Filesystems are frozen.
    Frozen,
    /// A state this crate does not know yet.
    #[serde(other)]
    Unknown,
}

/// A program to run in the guest with `guest-exec`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecCommand {
    /// Program path or name (looked up in the agent's `PATH`).
    pub path: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment, as `NAME=value`.
    pub env: Vec<String>,
    /// Bytes fed to stdin.
    pub input: Option<Vec<u8>>,
    /// Whether to capture stdout and stderr (returned by `guest-exec-status`).
    pub capture_output: bool,
}

impl ExecCommand {
    /// Runs `path` with no arguments, capturing output.
    pub fn new(path: impl Into<String>) -> Self {
        ExecCommand {
            path: path.into(),
            capture_output: true,
            ..ExecCommand::default()
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets stdin.
    pub fn input(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.input = Some(input.into());
        self
    }

    fn to_arguments(&self) -> Value {
        let mut arguments = json!({ "path": self.path, "capture-output": self.capture_output });
        if !self.args.is_empty() {
            arguments["arg"] = json!(self.args);
        }
        if !self.env.is_empty() {
            arguments["env"] = json!(self.env);
        }
        if let Some(input) = &self.input {
            arguments["input-data"] = Value::from(base64::encode(input));
        }
        arguments
    }
}

/// Reply of `guest-exec-status`, with output already base64-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecStatus {
    /// True once the process ended (it is then reaped: ask only once).
    pub exited: bool,
    /// Exit code, if it exited normally.
    pub exit_code: Option<i64>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i64>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// True if stdout was cut at the agent's capture limit.
    pub stdout_truncated: bool,
    /// True if stderr was cut at the agent's capture limit.
    pub stderr_truncated: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawExecStatus {
    exited: bool,
    #[serde(default)]
    exitcode: Option<i64>,
    #[serde(default)]
    signal: Option<i64>,
    #[serde(default)]
    out_data: Option<String>,
    #[serde(default)]
    err_data: Option<String>,
    #[serde(default)]
    out_truncated: bool,
    #[serde(default)]
    err_truncated: bool,
}

#[derive(Deserialize)]
struct Pid {
    pid: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct HostName {
    host_name: String,
}

fn decode_output(command: &str, data: Option<String>) -> Result<Vec<u8>> {
    data.map_or(Ok(Vec::new()), |text| {
        base64::decode(&text).map_err(|detail| Error::Protocol {
            detail: format!("{command} returned bad base64: {detail}"),
        })
    })
}

impl GuestAgent {
    /// `guest-ping`: succeeds if the agent answers.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`]; [`Error::Timeout`] when no agent runs.
    pub async fn ping(&self) -> Result<()> {
        self.execute("guest-ping", None).await.map(drop)
    }

    /// `guest-info`: agent version and its command list.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn info(&self) -> Result<AgentInfo> {
        self.execute_as("guest-info", None, self.options.command_timeout)
            .await
    }

    /// `guest-get-osinfo`.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn get_osinfo(&self) -> Result<OsInfo> {
        self.execute_as("guest-get-osinfo", None, self.options.command_timeout)
            .await
    }

    /// `guest-get-users`: users logged in.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn get_users(&self) -> Result<Vec<GuestUser>> {
        self.execute_as("guest-get-users", None, self.options.command_timeout)
            .await
    }

    /// `guest-get-fsinfo`: mounted filesystems.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn get_fsinfo(&self) -> Result<Vec<FilesystemInfo>> {
        self.execute_as("guest-get-fsinfo", None, self.options.command_timeout)
            .await
    }

    /// `guest-network-get-interfaces`.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn network_get_interfaces(&self) -> Result<Vec<NetworkInterface>> {
        self.execute_as(
            "guest-network-get-interfaces",
            None,
            self.options.command_timeout,
        )
        .await
    }

    /// `guest-get-host-name`.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn get_host_name(&self) -> Result<String> {
        let name: HostName = self
            .execute_as("guest-get-host-name", None, self.options.command_timeout)
            .await?;
        Ok(name.host_name)
    }

    /// `guest-set-user-password`. `password` is plain text unless `crypted`, in which
    /// case it is a `crypt(3)` hash; it is base64-encoded on the wire as the protocol asks.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`].
    pub async fn set_user_password(
        &self,
        username: &str,
        password: &str,
        crypted: bool,
    ) -> Result<()> {
        let arguments = json!({
            "username": username,
            "password": base64::encode(password.as_bytes()),
            "crypted": crypted,
        });
        self.execute("guest-set-user-password", arguments)
            .await
            .map(drop)
    }

    /// `guest-exec`: starts a program and returns its guest pid.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn exec(&self, command: &ExecCommand) -> Result<i64> {
        let pid: Pid = self
            .execute_as(
                "guest-exec",
                command.to_arguments(),
                self.options.command_timeout,
            )
            .await?;
        Ok(pid.pid)
    }

    /// `guest-exec-status` of `pid`.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], [`Error::Decode`], or [`Error::Protocol`]
    /// for undecodable output.
    pub async fn exec_status(&self, pid: i64) -> Result<ExecStatus> {
        const COMMAND: &str = "guest-exec-status";
        let raw: RawExecStatus = self
            .execute_as(COMMAND, json!({ "pid": pid }), self.options.command_timeout)
            .await?;
        Ok(ExecStatus {
            exited: raw.exited,
            exit_code: raw.exitcode,
            signal: raw.signal,
            stdout: decode_output(COMMAND, raw.out_data)?,
            stderr: decode_output(COMMAND, raw.err_data)?,
            stdout_truncated: raw.out_truncated,
            stderr_truncated: raw.err_truncated,
        })
    }

    /// Runs a program to completion: `guest-exec`, then polls `guest-exec-status` until
    /// it exits or `timeout` passes (the process is left running then).
    ///
    /// # Errors
    /// Any error of [`GuestAgent::exec_status`], or [`Error::Timeout`] naming `guest-exec`.
    pub async fn run(&self, command: &ExecCommand, timeout: Duration) -> Result<ExecStatus> {
        let deadline = Instant::now() + timeout;
        let pid = self.exec(command).await?;
        let mut pause = Duration::from_millis(5);
        loop {
            let status = self.exec_status(pid).await?;
            if status.exited {
                return Ok(status);
            }
            if Instant::now() + pause > deadline {
                return Err(Error::timeout("guest-exec", timeout));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// `guest-fsfreeze-freeze`: freezes guest filesystems; returns how many.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`] (with [`AgentOptions::freeze_timeout`](super::AgentOptions)).
    pub async fn fsfreeze_freeze(&self) -> Result<u64> {
        self.execute_as("guest-fsfreeze-freeze", None, self.options.freeze_timeout)
            .await
    }

    /// `guest-fsfreeze-thaw`: thaws them; returns how many.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`] (with the freeze timeout).
    pub async fn fsfreeze_thaw(&self) -> Result<u64> {
        self.execute_as("guest-fsfreeze-thaw", None, self.options.freeze_timeout)
            .await
    }

    /// `guest-fsfreeze-status`.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`], or [`Error::Decode`].
    pub async fn fsfreeze_status(&self) -> Result<FsfreezeStatus> {
        self.execute_as("guest-fsfreeze-status", None, self.options.command_timeout)
            .await
    }

    /// `guest-ssh-add-authorized-keys` for `username`; `reset` replaces the file's keys.
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`].
    pub async fn ssh_add_authorized_keys(
        &self,
        username: &str,
        keys: &[String],
        reset: bool,
    ) -> Result<()> {
        let arguments = json!({ "username": username, "keys": keys, "reset": reset });
        self.execute("guest-ssh-add-authorized-keys", arguments)
            .await
            .map(drop)
    }

    /// `guest-ssh-remove-authorized-keys` for `username` (absent keys are not an error).
    ///
    /// # Errors
    /// Any error of [`GuestAgent::execute`].
    pub async fn ssh_remove_authorized_keys(&self, username: &str, keys: &[String]) -> Result<()> {
        let arguments = json!({ "username": username, "keys": keys });
        self.execute("guest-ssh-remove-authorized-keys", arguments)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_arguments_leave_out_empty_lists_and_encode_input() {
        let command = ExecCommand::new("/bin/cat").input(b"hi".to_vec());
        assert_eq!(
            command.to_arguments(),
            json!({"path": "/bin/cat", "capture-output": true, "input-data": "aGk="})
        );
        let with_args = ExecCommand::new("echo").arg("a").arg("b");
        assert_eq!(with_args.to_arguments()["arg"], json!(["a", "b"]));
    }

    #[test]
    fn agent_info_reports_disabled_commands_as_unsupported() {
        let info: AgentInfo =
            serde_json::from_value(json!({"version": "7.2.22", "supported_commands": [
            {"name": "guest-ping", "enabled": true, "success-response": true},
            {"name": "guest-fsfreeze-freeze", "enabled": false, "success-response": true}]}))
            .expect("decodes");
        assert!(info.supports("guest-ping"));
        assert!(!info.supports("guest-fsfreeze-freeze"));
        assert!(!info.supports("guest-nope"));
    }

    #[test]
    fn network_interfaces_from_qemu_ga_decode() {
        let interfaces: Vec<NetworkInterface> = serde_json::from_value(json!([{"name": "lo",
            "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}],
            "statistics": {"tx-packets": 1}, "hardware-address": "00:00:00:00:00:00"}]))
        .expect("decodes");
        assert_eq!(
            interfaces[0].ip_addresses[0].ip_address_type,
            IpAddressType::Ipv4
        );
    }
}

//! `virtctl pause|unpause vm|vmi NAME`, `soft-reboot NAME`, `reset NAME`,
//! `guestosinfo NAME`, `userlist NAME` and `fslist NAME`: the VMI subresources the node
//! agent carries out (a VM's VMI has the
//! VM's name, so `vm` and `vmi` address the same object, as upstream).

use std::io::Write;

use serde_json::json;

use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// Which VMI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmiOp {
    Pause,
    Unpause,
    SoftReboot,
    Reset,
    GuestOsInfo,
    UserList,
    FsList,
}

impl VmiOp {
    fn subresource(self) -> &'static str {
        match self {
            VmiOp::Pause => "pause",
            VmiOp::Unpause => "unpause",
            VmiOp::SoftReboot => "softreboot",
            VmiOp::Reset => "reset",
            VmiOp::GuestOsInfo => "guestosinfo",
            VmiOp::UserList => "userlist",
            VmiOp::FsList => "filesystemlist",
        }
    }

    /// Whether this reads guest data (a GET printing JSON) rather than acting on the VM.
    fn is_query(self) -> bool {
        matches!(self, VmiOp::GuestOsInfo | VmiOp::UserList | VmiOp::FsList)
    }

    /// Upstream's command word in `VMI x was scheduled to <word>`.
    fn command(self) -> &'static str {
        match self {
            VmiOp::Pause => "pause",
            VmiOp::Unpause => "unpause",
            VmiOp::SoftReboot => "soft-reboot",
            VmiOp::Reset => "reset",
            VmiOp::GuestOsInfo => "guestosinfo",
            VmiOp::UserList => "userlist",
            VmiOp::FsList => "fslist",
        }
    }

    /// Upstream's error prefix, e.g. `Error pausing VirtualMachineInstance x`.
    fn failure(self, name: &str) -> String {
        let gerund = match self {
            VmiOp::Pause => "pausing",
            VmiOp::Unpause => "unpausing",
            VmiOp::SoftReboot => "soft rebooting",
            VmiOp::Reset => "resetting",
            VmiOp::GuestOsInfo => "getting guestosinfo of",
            VmiOp::UserList => "listing users of",
            VmiOp::FsList => "listing filesystems of",
        };
        format!("Error {gerund} VirtualMachineInstance {name}")
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct VmiOpRequest {
    pub op: VmiOp,
    pub name: String,
    pub connection: ConnectionOptions,
    pub dry_run: bool,
}

impl VmiOpRequest {
    /// `pause`/`unpause` take `vm|vmi NAME`; the others only `NAME`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a kind other than vm/vmi or a missing name.
    pub fn from_args(
        op: VmiOp,
        args: &[String],
        connection: ConnectionOptions,
        dry_run: bool,
    ) -> Result<Self> {
        let name = match (op, args) {
            (VmiOp::Pause | VmiOp::Unpause, [kind, name])
                if matches!(
                    kind.as_str(),
                    "vm" | "vmi" | "virtualmachine" | "virtualmachineinstance"
                ) =>
            {
                name.clone()
            }
            (VmiOp::Pause | VmiOp::Unpause, _) => {
                return Err(Error::Invalid(format!(
                    "usage: virtctl {} vm|vmi NAME",
                    op.command()
                )))
            }
            (_, [name]) => name.clone(),
            _ => {
                return Err(Error::Invalid(format!(
                    "usage: virtctl {} NAME",
                    op.command()
                )))
            }
        };
        Ok(VmiOpRequest {
            op,
            name,
            connection,
            dry_run,
        })
    }
}

/// Sends the request; prints `VMI NAME was scheduled to COMMAND`, or the guest OS info,
/// user list or filesystem list as indented JSON.
///
/// # Errors
/// [`Error::Config`] without a usable kubeconfig, [`Error::Refused`] with the server's words.
pub fn run(request: &VmiOpRequest, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let path = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{}/virtualmachineinstances/{}/{}",
            session.namespace,
            request.name,
            request.op.subresource()
        );
        let failure = request.op.failure(&request.name);
        let http_request = if request.op.is_query() {
            http::Request::get(&path).body(Vec::new())
        } else {
            let body = if request.dry_run {
                json!({"dryRun": ["All"]})
            } else {
                json!({})
            };
            http::Request::put(&path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string().into_bytes())
        }
        .map_err(|e| Error::Refused(format!("{failure}: {e}")))?;
        let text =
            session
                .client
                .request_text(http_request)
                .await
                .map_err(|source| match source {
                    kube::Error::Api(status) => {
                        Error::Refused(format!("{failure}: {}", status.message))
                    }
                    other => Error::Refused(format!("{failure}: {other}")),
                })?;
        if request.op.is_query() {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Refused(format!("{failure}: the server answered {e}")))?;
            let pretty =
                serde_json::to_string_pretty(&value).map_err(|e| Error::Serialize(Box::new(e)))?;
            return writeln!(out, "{pretty}").map_err(Error::Output);
        }
        let dry = if request.dry_run {
            " (server dry run)"
        } else {
            ""
        };
        writeln!(
            out,
            "VMI {} was scheduled to {}{dry}",
            request.name,
            request.op.command()
        )
        .map_err(Error::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pause_needs_a_kind_and_soft_reboot_only_a_name() {
        let c = ConnectionOptions::default();
        assert!(
            VmiOpRequest::from_args(VmiOp::Pause, &args(&["vm", "a"]), c.clone(), false).is_ok()
        );
        assert!(VmiOpRequest::from_args(VmiOp::Pause, &args(&["a"]), c.clone(), false).is_err());
        assert!(
            VmiOpRequest::from_args(VmiOp::Unpause, &args(&["pod", "a"]), c.clone(), false)
                .is_err()
        );
        let r = VmiOpRequest::from_args(VmiOp::SoftReboot, &args(&["a"]), c, false).expect("valid");
        assert_eq!(r.name, "a");
        assert_eq!(
            r.op.failure("a"),
            "Error soft rebooting VirtualMachineInstance a"
        );
        let r = VmiOpRequest::from_args(
            VmiOp::FsList,
            &args(&["a"]),
            ConnectionOptions::default(),
            false,
        )
        .expect("valid");
        assert_eq!(r.op.subresource(), "filesystemlist");
        assert!(r.op.is_query() && !VmiOp::Reset.is_query());
    }
}

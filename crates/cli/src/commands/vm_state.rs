//! `virtctl start|stop|restart NAME`: the VM subresources of `subresources.kubevirt.io`.
//! The server decides through the run strategy (see the API server's `vm_actions`); this
//! command only sends the request and reports upstream's one-line outcome.

use std::io::Write;

use serde_json::{json, Value};

use crate::client::{self, ClientError, ConnectionOptions};
use crate::error::{Error, Result};

/// Which VM subresource to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmVerb {
    Start,
    Stop,
    Restart,
}

impl VmVerb {
    fn path(self) -> &'static str {
        match self {
            VmVerb::Start => "start",
            VmVerb::Stop => "stop",
            VmVerb::Restart => "restart",
        }
    }

    fn gerund(self) -> &'static str {
        match self {
            VmVerb::Start => "starting",
            VmVerb::Stop => "stopping",
            VmVerb::Restart => "restarting",
        }
    }
}

/// A validated start/stop/restart request.
#[derive(Debug, Clone, PartialEq)]
pub struct VmStateRequest {
    pub verb: VmVerb,
    pub name: String,
    pub connection: ConnectionOptions,
    pub paused: bool,
    pub grace_period: Option<i64>,
    pub dry_run: bool,
}

impl VmStateRequest {
    /// Checks upstream's flag rules: `--force` only with `--grace-period 0`, and the other way round.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the rule that was broken.
    pub fn validate(self, force: bool) -> Result<Self> {
        match (force, self.grace_period) {
            (true, Some(0)) | (false, None) => Ok(self),
            (true, _) => Err(Error::Invalid("--force requires --grace-period 0".into())),
            (false, Some(_)) => Err(Error::Invalid(
                "Can not set gracePeriod without --force=true".into(),
            )),
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({});
        if self.paused {
            body["paused"] = json!(true);
        }
        if let Some(grace) = self.grace_period {
            let key = if self.verb == VmVerb::Restart {
                "gracePeriodSeconds"
            } else {
                "gracePeriod"
            };
            body[key] = json!(grace);
        }
        if self.dry_run {
            body["dryRun"] = json!(["All"]);
        }
        body
    }
}

/// Sends the request and prints `VM NAME was scheduled to VERB`.
///
/// # Errors
/// [`Error::Config`] without a usable kubeconfig, [`Error::Api`] when the server refuses
/// (its message, e.g. `VM is not running`, is shown).
pub fn run(request: &VmStateRequest, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let path = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{}/virtualmachines/{}/{}",
            session.namespace,
            request.name,
            request.verb.path()
        );
        let body =
            serde_json::to_vec(&request.body()).map_err(|e| Error::Serialize(Box::new(e)))?;
        let http_request = http::Request::put(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| Error::Api {
                action: format!(
                    "Error {} VirtualMachine {}",
                    request.verb.gerund(),
                    request.name
                ),
                source: ClientError::Request {
                    path: path.clone(),
                    source: kube::Error::HttpError(e),
                },
            })?;
        let action = format!(
            "Error {} VirtualMachine {}",
            request.verb.gerund(),
            request.name
        );
        session
            .client
            .request_text(http_request)
            .await
            .map_err(|source| match source {
                // The server's own words, as upstream prints them.
                kube::Error::Api(status) => Error::Refused(format!("{action}: {}", status.message)),
                source => Error::Api {
                    action,
                    source: ClientError::Request {
                        path: path.clone(),
                        source,
                    },
                },
            })?;
        let dry = if request.dry_run {
            " (server dry run)"
        } else {
            ""
        };
        writeln!(
            out,
            "VM {} was scheduled to {}{dry}",
            request.name,
            request.verb.path()
        )
        .map_err(Error::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verb: VmVerb, grace: Option<i64>) -> VmStateRequest {
        VmStateRequest {
            verb,
            name: "vm".into(),
            connection: ConnectionOptions::default(),
            paused: false,
            grace_period: grace,
            dry_run: false,
        }
    }

    #[test]
    fn force_and_grace_period_zero_go_together() {
        assert!(request(VmVerb::Stop, Some(0)).validate(true).is_ok());
        assert!(request(VmVerb::Stop, None).validate(false).is_ok());
        assert!(request(VmVerb::Stop, Some(5)).validate(true).is_err());
        assert!(request(VmVerb::Stop, Some(0)).validate(false).is_err());
    }

    #[test]
    fn restart_sends_grace_period_seconds_and_stop_grace_period() {
        assert_eq!(
            request(VmVerb::Restart, Some(0)).body(),
            json!({"gracePeriodSeconds": 0})
        );
        assert_eq!(
            request(VmVerb::Stop, Some(0)).body(),
            json!({"gracePeriod": 0})
        );
    }
}

//! `virtctl addvolume NAME --volume-name=DV|PVC [--persist] [--serial=…] [--cache=…]
//! [--disk-type=disk|lun]` and `virtctl removevolume NAME --volume-name=… [--persist]`
//! (manual 7.15.1.2): the `addvolume`/`removevolume` subresources. Without `--persist` the
//! request goes to the VMI (the disk is gone after a VM restart); with it, to the VM, whose
//! spec then keeps the disk.

use std::io::Write;

use serde_json::{json, Value};

use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// `virtctl addvolume VM --volume-name=…`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddVolumeArgs {
    /// Name of the VirtualMachine or VirtualMachineInstance.
    pub name: String,
    /// Name of the DataVolume or PVC to hot-plug.
    #[arg(long = "volume-name", required = true)]
    pub volume_name: String,
    /// Add the disk to the VM spec too, so it stays after a restart (VMs only).
    #[arg(long)]
    pub persist: bool,
    /// The serial the guest sees; default the volume name.
    #[arg(long)]
    pub serial: Option<String>,
    /// The disk cache mode: none, writethrough or writeback.
    #[arg(long)]
    pub cache: Option<String>,
    /// disk or lun.
    #[arg(long = "disk-type", default_value = "disk")]
    pub disk_type: String,
    /// Ask the server to validate the request without acting on it.
    #[arg(long)]
    pub dry_run: bool,
}

/// `virtctl removevolume VM --volume-name=…`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoveVolumeArgs {
    /// Name of the VirtualMachine or VirtualMachineInstance.
    pub name: String,
    /// Name of the volume to unplug.
    #[arg(long = "volume-name", required = true)]
    pub volume_name: String,
    /// Remove the disk from the VM spec too (VMs only).
    #[arg(long)]
    pub persist: bool,
    /// Ask the server to validate the request without acting on it.
    #[arg(long)]
    pub dry_run: bool,
}

/// A validated add or remove request.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRequest {
    /// `Some` for addvolume: (serial, cache, disk type).
    pub add: Option<(String, Option<String>, String)>,
    pub name: String,
    pub volume: String,
    pub persist: bool,
    pub dry_run: bool,
    pub connection: ConnectionOptions,
}

impl VolumeRequest {
    /// # Errors
    /// [`Error::Flag`] for a cache mode or disk type upstream does not know.
    pub fn add(args: AddVolumeArgs, connection: ConnectionOptions) -> Result<Self> {
        if let Some(cache) = &args.cache {
            if !matches!(cache.as_str(), "none" | "writethrough" | "writeback") {
                return Err(Error::Flag {
                    flag: "cache",
                    reason: format!(
                        "unknown cache mode {cache:?} (none, writethrough or writeback)"
                    ),
                });
            }
        }
        if !matches!(args.disk_type.as_str(), "disk" | "lun") {
            return Err(Error::Flag {
                flag: "disk-type",
                reason: format!(
                    "Invalid disk type '{}'. Only LUN and Disk are supported.",
                    args.disk_type
                ),
            });
        }
        let serial = args.serial.unwrap_or_else(|| args.volume_name.clone());
        Ok(VolumeRequest {
            add: Some((serial, args.cache, args.disk_type)),
            name: args.name,
            volume: args.volume_name,
            persist: args.persist,
            dry_run: args.dry_run,
            connection,
        })
    }

    pub fn remove(args: RemoveVolumeArgs, connection: ConnectionOptions) -> Self {
        VolumeRequest {
            add: None,
            name: args.name,
            volume: args.volume_name,
            persist: args.persist,
            dry_run: args.dry_run,
            connection,
        }
    }

    /// The `AddVolumeOptions` / `RemoveVolumeOptions` body for a volume `source`.
    fn body(&self, source: Option<Value>) -> Value {
        let mut body = json!({"name": self.volume});
        if let (Some((serial, cache, disk_type)), Some(source)) = (&self.add, source) {
            let mut disk = json!({"name": self.volume, "serial": serial});
            disk[disk_type.as_str()] = json!({"bus": "scsi"});
            if let Some(cache) = cache {
                disk["cache"] = json!(cache);
            }
            body["disk"] = disk;
            body["volumeSource"] = source;
        }
        if self.dry_run {
            body["dryRun"] = json!(["All"]);
        }
        body
    }
}

/// The hot-plug source for `volume`: its DataVolume if there is one, else its claim
/// (as upstream's virtctl decides).
async fn source(client: &kube::Client, namespace: &str, volume: &str) -> Result<Value> {
    let dv = format!("/apis/cdi.kubevirt.io/v1beta1/namespaces/{namespace}/datavolumes/{volume}");
    if client::get_json(client, &dv).await.is_ok() {
        return Ok(json!({"dataVolume": {"name": volume, "hotpluggable": true}}));
    }
    let pvc = format!("/api/v1/namespaces/{namespace}/persistentvolumeclaims/{volume}");
    if client::get_json(client, &pvc).await.is_ok() {
        return Ok(json!({"persistentVolumeClaim": {"claimName": volume, "hotpluggable": true}}));
    }
    Err(Error::Refused(format!(
        "error adding volume, Volume {volume} is not a DataVolume or PersistentVolumeClaim"
    )))
}

/// Sends the request and prints upstream's one-line outcome.
///
/// # Errors
/// [`Error::Config`] without a usable kubeconfig, [`Error::Refused`] with the server's words.
pub fn run(request: &VolumeRequest, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let ns = &session.namespace;
        let (verb, failure) = match request.add {
            Some(_) => ("addvolume", "error adding volume"),
            None => ("removevolume", "error removing volume"),
        };
        let source = match request.add {
            Some(_) => Some(source(&session.client, ns, &request.volume).await?),
            None => None,
        };
        let kind = if request.persist {
            "virtualmachines"
        } else {
            "virtualmachineinstances"
        };
        let path = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/{kind}/{}/{verb}",
            request.name
        );
        let http_request = http::Request::put(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(request.body(source).to_string().into_bytes())
            .map_err(|e| Error::Refused(format!("{failure}, {e}")))?;
        session
            .client
            .request_text(http_request)
            .await
            .map_err(|source| match source {
                kube::Error::Api(status) => {
                    Error::Refused(format!("{failure}, {}", status.message))
                }
                other => Error::Refused(format!("{failure}, {other}")),
            })?;
        let what = if request.add.is_some() {
            "add"
        } else {
            "remove"
        };
        writeln!(
            out,
            "Successfully submitted {what} volume request to VM {} for volume {}",
            request.name, request.volume
        )
        .map_err(Error::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(args: &[&str]) -> Result<VolumeRequest> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: AddVolumeArgs,
        }
        let mut argv = vec!["addvolume"];
        argv.extend_from_slice(args);
        let parsed = Wrap::try_parse_from(argv).expect("parses");
        VolumeRequest::add(parsed.args, ConnectionOptions::default())
    }

    #[test]
    fn the_serial_defaults_to_the_volume_name_and_the_disk_is_scsi() {
        let request = add(&["vm", "--volume-name=data"]).expect("valid");
        let source = json!({"dataVolume": {"name": "data", "hotpluggable": true}});
        let body = request.body(Some(source.clone()));
        assert_eq!(body["disk"]["serial"], "data");
        assert_eq!(body["disk"]["disk"]["bus"], "scsi");
        assert_eq!(body["volumeSource"], source);
        assert!(body.get("dryRun").is_none());
        let lun = add(&[
            "vm",
            "--volume-name=d",
            "--disk-type=lun",
            "--serial=S1",
            "--dry-run",
        ])
        .expect("valid");
        let body = lun.body(Some(source));
        assert_eq!(body["disk"]["lun"]["bus"], "scsi");
        assert_eq!(body["disk"]["serial"], "S1");
        assert_eq!(body["dryRun"], json!(["All"]));
    }

    #[test]
    fn unknown_cache_modes_and_disk_types_are_refused() {
        assert!(add(&["vm", "--volume-name=d", "--cache=unsafe"]).is_err());
        assert!(add(&["vm", "--volume-name=d", "--disk-type=cdrom"]).is_err());
    }
}

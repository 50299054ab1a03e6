//! `virtctl memory-dump get VM --claim-name=PVC [--create-claim] [--storage-class=…]
//! [--access-mode=…]` and `virtctl memory-dump remove VM`: the VM subresources
//! `memorydump` and `removememorydump`. The dump's progress is the VM's
//! `status.memoryDumpRequest`.

use std::io::Write;

use serde_json::{json, Value};

use crate::client::{self, ConnectionOptions};
use crate::error::{Error, Result};

/// Upstream's room for the dump's headers on top of the guest memory (as the API checks).
const OVERHEAD_MIB: u64 = 100;

/// `virtctl memory-dump get|remove VM`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct MemoryDumpArgs {
    /// `get` or `remove`.
    #[arg(value_parser = ["get", "remove", "download"])]
    pub action: String,
    /// Name of the VirtualMachine.
    pub name: String,
    /// The PVC to dump the memory into.
    #[arg(long = "claim-name")]
    pub claim_name: Option<String>,
    /// Create the PVC, sized for the guest's memory.
    #[arg(long = "create-claim")]
    pub create_claim: bool,
    /// The StorageClass of a created PVC.
    #[arg(long = "storage-class")]
    pub storage_class: Option<String>,
    /// The access mode of a created PVC.
    #[arg(long = "access-mode")]
    pub access_mode: Option<String>,
    /// Download the dump to this file once it completes.
    #[arg(long)]
    pub output: Option<String>,
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryDumpRequest {
    pub args: MemoryDumpArgs,
    pub connection: ConnectionOptions,
}

impl MemoryDumpRequest {
    /// # Errors
    /// [`Error::Invalid`] with upstream's rules: `--create-claim` needs `--claim-name`;
    /// `download` and `--output` need a VirtualMachineExport, which this build lacks.
    pub fn from_args(args: MemoryDumpArgs, connection: ConnectionOptions) -> Result<Self> {
        if args.action == "download" || args.output.is_some() {
            return Err(Error::Unsupported {
                command: "memory-dump download (--output)".into(),
            });
        }
        if args.action == "get" && args.claim_name.is_none() && args.create_claim {
            return Err(Error::Invalid(
                "missing claim name: --create-claim requires --claim-name".into(),
            ));
        }
        if args.action == "remove" && (args.create_claim || args.claim_name.is_some()) {
            return Err(Error::Invalid(
                "memory-dump remove takes no claim flags".into(),
            ));
        }
        Ok(MemoryDumpRequest { args, connection })
    }
}

/// Mebibytes in a memory quantity (`128Mi`, `1Gi`, `536870912`).
fn mebibytes(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    Some(match suffix {
        "" => number >> 20,
        "Ki" => number >> 10,
        "Mi" => number,
        "Gi" => number << 10,
        "M" => number * 1_000_000 >> 20,
        "G" => number * 1_000_000_000 >> 20,
        _ => return None,
    })
}

/// The claim for a VM whose template asks for `memory`.
fn claim(name: &str, memory_mib: u64, class: Option<&str>, mode: Option<&str>) -> Value {
    let mut pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name,
            // Bound at once: no Pod consumes a dump claim, so WaitForFirstConsumer never would.
            "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}},
        "spec": {"accessModes": [mode.unwrap_or("ReadWriteOnce")], "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": format!("{}Mi", memory_mib + OVERHEAD_MIB)}}},
    });
    if let Some(class) = class {
        pvc["spec"]["storageClassName"] = json!(class);
    }
    pvc
}

async fn put(client: &kube::Client, path: &str, body: &Value, failure: &str) -> Result<()> {
    let request = http::Request::put(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| Error::Refused(format!("{failure}: {e}")))?;
    client
        .request_text(request)
        .await
        .map(drop)
        .map_err(|source| match source {
            kube::Error::Api(status) => Error::Refused(format!("{failure}: {}", status.message)),
            other => Error::Refused(format!("{failure}: {other}")),
        })
}

/// Sends the request and prints upstream's one-line outcome.
///
/// # Errors
/// [`Error::Config`] without a usable kubeconfig, [`Error::Refused`] with the server's words.
pub fn run(request: &MemoryDumpRequest, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(&request.connection)
            .await
            .map_err(Error::Config)?;
        let (ns, args) = (&session.namespace, &request.args);
        let base = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{}",
            args.name
        );
        if args.action == "remove" {
            put(
                &session.client,
                &format!("{base}/removememorydump"),
                &json!({}),
                "error removing memory dump association",
            )
            .await?;
            return writeln!(
                out,
                "Successfully submitted remove memory dump association of VM {}",
                args.name
            )
            .map_err(Error::Output);
        }
        let vm_path = format!(
            "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines/{}",
            args.name
        );
        let vm = client::get_json(&session.client, &vm_path)
            .await
            .map_err(|e| Error::Refused(format!("error getting VM {}: {e}", args.name)))?;
        let claim_name = match &args.claim_name {
            Some(c) => c.clone(),
            None => vm["status"]["memoryDumpRequest"]["claimName"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::Invalid("missing claim name: give --claim-name".into()))?,
        };
        if args.create_claim {
            let domain = &vm["spec"]["template"]["spec"]["domain"];
            let memory = domain["memory"]["guest"]
                .as_str()
                .or_else(|| domain["resources"]["requests"]["memory"].as_str())
                .and_then(mebibytes)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "cannot size the claim: VM {} names no memory",
                        args.name
                    ))
                })?;
            let pvc = claim(
                &claim_name,
                memory,
                args.storage_class.as_deref(),
                args.access_mode.as_deref(),
            );
            let request =
                http::Request::post(format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(pvc.to_string().into_bytes())
                    .map_err(|e| Error::Refused(format!("error creating pvc {claim_name}: {e}")))?;
            session
                .client
                .request_text(request)
                .await
                .map_err(|e| Error::Refused(format!("error creating pvc {claim_name}: {e}")))?;
            writeln!(out, "PVC {ns}/{claim_name} created").map_err(Error::Output)?;
            // The dump needs the claim bound; the hostpath provisioner binds in moments.
            let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim_name}");
            for _ in 0..300 {
                let pvc = client::get_json(&session.client, &path).await.ok();
                if pvc.is_some_and(|p| p["status"]["phase"] == "Bound") {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        put(
            &session.client,
            &format!("{base}/memorydump"),
            &json!({"claimName": claim_name}),
            "error dumping vm memory",
        )
        .await?;
        writeln!(
            out,
            "Successfully submitted memory dump request of VM {}",
            args.name
        )
        .map_err(Error::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_claim_holds_the_memory_and_the_overhead() {
        assert_eq!(mebibytes("128Mi"), Some(128));
        assert_eq!(mebibytes("1Gi"), Some(1024));
        let pvc = claim("dump", 128, Some("local"), None);
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "228Mi");
        assert_eq!(pvc["spec"]["storageClassName"], "local");
        assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteOnce");
    }
}

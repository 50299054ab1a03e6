//! The API side of realising a launcher Pod: its VMI, pull secrets, insecure registries,
//! containerDisk pulls into `launch.json` disks, the finalizer, and VMI status writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::events::{About, Events};
use crate::registry::{
    self, credentials_from_docker_config, ImageCache, ImageReference, PullPolicy, PullRequest,
};
use crate::rundir::DiskSpec;
use crate::status::{self, Observed, VmiFacts};
use crate::well_known as wk;
use crate::AccelDecision;

/// Why a Pod could not be realised.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Pod has no `kubevirt.io/domain` annotation.
    #[error("launcher Pod {namespace}/{pod} names no VirtualMachineInstance (annotation kubevirt.io/domain)")]
    NoDomain { namespace: String, pod: String },
    /// The VMI the Pod runs does not exist.
    #[error("VirtualMachineInstance {namespace}/{name} does not exist")]
    VmiNotFound { namespace: String, name: String },
    /// An API call failed.
    #[error("{action} failed")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A containerDisk could not be pulled.
    #[error("cannot pull containerDisk {image} for volume {volume}")]
    Pull {
        volume: String,
        image: String,
        #[source]
        source: registry::Error,
    },
}

fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api { action, source }
}

/// The VMIs of `namespace`, as dynamic objects (the agent reads and patches their JSON).
pub(crate) fn vmi_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// The VMI a launcher Pod runs, as JSON.
///
/// # Errors
/// [`Error::NoDomain`], [`Error::VmiNotFound`], [`Error::Api`].
pub(crate) async fn fetch_vmi(client: &kube::Client, pod: &Pod) -> Result<Value, Error> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod
        .annotations()
        .get(wk::DOMAIN_ANNOTATION)
        .cloned()
        .ok_or_else(|| Error::NoDomain {
            namespace: namespace.clone(),
            pod: pod.name_any(),
        })?;
    let vmi = vmi_api(client, &namespace)
        .get_opt(&name)
        .await
        .map_err(api_err(format!(
            "reading VirtualMachineInstance {namespace}/{name}"
        )))?
        .ok_or_else(|| Error::VmiNotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    serde_json::to_value(vmi).map_err(|e| Error::Api {
        action: format!("decoding VirtualMachineInstance {namespace}/{name}"),
        source: kube::Error::SerdeError(e),
    })
}

/// The `launch.json` disk key of a `kernelBoot.container` image's unpacked root (the
/// launcher's `KERNEL_BOOT_DISK`; volume names are DNS labels, so it cannot collide).
const KERNEL_BOOT_DISK: &str = "kernelBoot";

/// Pulls every containerDisk volume of `vmi`, and the kernel and initrd of a
/// `kernelBoot.container`, and returns the `launch.json` disks.
///
/// # Errors
/// [`Error::Pull`] for the first image that fails.
pub(crate) async fn pull_container_disks(
    client: &kube::Client,
    events: &Events,
    images: &ImageCache,
    pod: &Pod,
    vmi: &Value,
) -> Result<BTreeMap<String, DiskSpec>, Error> {
    let mut disks = BTreeMap::new();
    let volumes = vmi["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut insecure: Option<Vec<String>> = None;
    for volume in &volumes {
        let Some(cd) = volume.get("containerDisk") else {
            continue;
        };
        let name = volume["name"].as_str().unwrap_or_default().to_string();
        let image = cd["image"].as_str().unwrap_or_default().to_string();
        if insecure.is_none() {
            insecure = Some(insecure_registries(client).await);
        }
        let request = PullRequest {
            policy: PullPolicy::from_spec(cd["imagePullPolicy"].as_str(), &image),
            credentials: credentials(client, pod, cd["imagePullSecret"].as_str(), &image).await,
            insecure_registries: insecure.clone().unwrap_or_default(),
            image: image.clone(),
        };
        events
            .publish(
                pod,
                About::Pod,
                false,
                "Pulling",
                format!("Pulling image \"{image}\""),
            )
            .await;
        let pulled = images.pull(&request).await.map_err(|source| Error::Pull {
            volume: name.clone(),
            image: image.clone(),
            source,
        })?;
        tracing::info!(%image, digest = %pulled.digest, cached = pulled.cached, "containerDisk ready");
        let note = if pulled.cached {
            format!(
                "Container image \"{image}\" already present on machine ({})",
                pulled.digest
            )
        } else {
            format!("Successfully pulled image \"{image}\" ({})", pulled.digest)
        };
        events.publish(pod, About::Pod, false, "Pulled", note).await;
        disks.insert(
            name,
            DiskSpec {
                path: pulled.path,
                format: pulled.format.as_str().into(),
                readonly: false,
                ephemeral: true,
            },
        );
    }
    if let Some(kb) = vmi.pointer("/spec/domain/firmware/kernelBoot/container") {
        let image = kb["image"].as_str().unwrap_or_default().to_string();
        let paths: Vec<String> = ["kernelPath", "initrdPath"]
            .iter()
            .filter_map(|k| kb[*k].as_str().map(str::to_string))
            .collect();
        let request = PullRequest {
            policy: PullPolicy::from_spec(kb["imagePullPolicy"].as_str(), &image),
            credentials: credentials(client, pod, kb["imagePullSecret"].as_str(), &image).await,
            insecure_registries: match insecure {
                Some(list) => list,
                None => insecure_registries(client).await,
            },
            image: image.clone(),
        };
        events
            .publish(
                pod,
                About::Pod,
                false,
                "Pulling",
                format!("Pulling image \"{image}\""),
            )
            .await;
        let pulled = images
            .pull_files(&request, &paths)
            .await
            .map_err(|source| Error::Pull {
                volume: KERNEL_BOOT_DISK.into(),
                image: image.clone(),
                source,
            })?;
        let note = format!(
            "Unpacked {paths:?} of image \"{image}\" ({})",
            pulled.digest
        );
        events.publish(pod, About::Pod, false, "Pulled", note).await;
        disks.insert(
            KERNEL_BOOT_DISK.into(),
            DiskSpec {
                path: pulled.root,
                format: "raw".into(),
                readonly: true,
                ephemeral: false,
            },
        );
    }
    Ok(disks)
}

/// HyperConverged `spec.storageImport.insecureRegistries` (empty when unreadable).
async fn insecure_registries(client: &kube::Client) -> Vec<String> {
    let gvk = GroupVersionKind::gvk("hco.kubevirt.io", "v1beta1", "HyperConverged");
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        oxivirt_api::content::OPENSHIFT_CNV_NAMESPACE,
        &ApiResource::from_gvk(&gvk),
    );
    let Ok(Some(hco)) = api.get_opt(oxivirt_api::content::HYPERCONVERGED_NAME).await else {
        return Vec::new();
    };
    hco.data["spec"]["storageImport"]["insecureRegistries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Credentials for `image` from the VMI volume's `imagePullSecret`, then the Pod's
/// `imagePullSecrets`, read as dockerconfigjson.
async fn credentials(
    client: &kube::Client,
    pod: &Pod,
    volume_secret: Option<&str>,
    image: &str,
) -> Option<registry::Credentials> {
    let registry = ImageReference::parse(image).ok()?.registry;
    let secrets: Api<Secret> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let pod_secrets = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name);
    for name in volume_secret
        .map(str::to_string)
        .into_iter()
        .chain(pod_secrets)
    {
        let Ok(Some(secret)) = secrets.get_opt(&name).await else {
            tracing::warn!(secret = %name, "pull secret not found");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let document = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"));
        if let Some(found) = document.and_then(|d| credentials_from_docker_config(&d.0, &registry))
        {
            return Some(found);
        }
    }
    None
}

/// Adds or removes the launcher finalizer (optimistically, on the Pod's resourceVersion).
///
/// # Errors
/// [`Error::Api`] when the patch is refused (including conflicts: retry later).
pub(crate) async fn set_finalizer(
    client: &kube::Client,
    pod: &Pod,
    present: bool,
) -> Result<(), Error> {
    let mut finalizers = pod.finalizers().to_vec();
    let has = finalizers.iter().any(|f| f == wk::LAUNCHER_FINALIZER);
    if has == present {
        return Ok(());
    }
    if present {
        finalizers.push(wk::LAUNCHER_FINALIZER.into());
    } else {
        finalizers.retain(|f| f != wk::LAUNCHER_FINALIZER);
    }
    // Guarded by the finalizers themselves, not the resourceVersion: the controllers and the
    // scheduler write the Pod at the same moment, and a conflict on their unrelated changes
    // would only delay the launcher by a retry.
    let current = pod.finalizers();
    let ops = if current.is_empty() {
        json!([{"op": "add", "path": "/metadata/finalizers", "value": finalizers}])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
        ])
    };
    let name = pod.name_any();
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}",
        pod.namespace().unwrap_or_default()
    );
    let request = http::Request::patch(&path)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(ops.to_string().into_bytes())
        .map_err(|e| Error::Api {
            action: format!("building the finalizer patch of Pod {name}"),
            source: kube::Error::HttpError(e),
        })?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(()),
        Err(e) => Err(api_err(format!(
            "updating finalizers of Pod {}",
            pod.name_any()
        ))(e)),
    }
}

/// Writes the Pod's status.
///
/// # Errors
/// [`Error::Api`] when refused.
pub(crate) async fn write_pod_status(
    client: &kube::Client,
    pod: &Pod,
    status: &Value,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map_err(api_err(format!("writing status of Pod {}", pod.name_any())))?;
    Ok(())
}

/// Applies `observed` to the Pod's VMI (if it is still the VMI the Pod was made for) and
/// writes it back when something changed. VMIs have no status subresource upstream, so the
/// whole object is replaced on its resourceVersion.
///
/// # Errors
/// [`Error::Api`] when reading or writing fails (409 included: the caller retries).
pub(crate) async fn write_vmi_status(
    client: &kube::Client,
    pod: &Pod,
    observed: &Observed,
    accel: &AccelDecision,
    node_name: &str,
    interfaces: impl FnOnce(&Value) -> Option<Value>,
) -> Result<(), Error> {
    let Some(name) = pod.annotations().get(wk::DOMAIN_ANNOTATION) else {
        return Ok(());
    };
    let namespace = pod.namespace().unwrap_or_default();
    let api = vmi_api(client, &namespace);
    let Some(vmi) = api.get_opt(name).await.map_err(api_err(format!(
        "reading VirtualMachineInstance {namespace}/{name}"
    )))?
    else {
        return Ok(());
    };
    if let Some(created_by) = pod.labels().get("kubevirt.io/created-by") {
        if vmi.metadata.uid.as_deref() != Some(created_by.as_str()) {
            return Ok(()); // a newer VMI of the same name: not ours to report on
        }
    }
    let launcher_image = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == wk::COMPUTE_CONTAINER)
        })
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let mut value = serde_json::to_value(&vmi).map_err(|e| Error::Api {
        action: "encoding VirtualMachineInstance".into(),
        source: kube::Error::SerdeError(e),
    })?;
    let before = value["status"].clone();
    let now = status::now();
    let facts = VmiFacts {
        node_name,
        accel,
        launcher_image: &launcher_image,
        now: &now,
    };
    status::apply_vmi_status(&mut value, observed, &facts);
    // In the same write: one write less per VM start, and a client that sees `Running`
    // sees the addresses with it.
    if let Some(interfaces) = interfaces(&value["status"]["interfaces"]) {
        value["status"]["interfaces"] = interfaces;
    }
    if value["status"] == before {
        return Ok(());
    }
    let updated: DynamicObject = serde_json::from_value(value).map_err(|e| Error::Api {
        action: "decoding VirtualMachineInstance".into(),
        source: kube::Error::SerdeError(e),
    })?;
    api.replace(name, &PostParams::default(), &updated)
        .await
        .map_err(api_err(format!(
            "writing status of VirtualMachineInstance {namespace}/{name}"
        )))?;
    Ok(())
}

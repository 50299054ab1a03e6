//! What exists on first start (system namespaces, the KubeVirt CRDs) and the periodic
//! store compaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use oxivirt_store::ListOptions;
use serde_json::{json, Value};

use crate::context::{RequestCtx, UserInfo};
use crate::crd;
use crate::error::ApiError;
use crate::service::{Api, Subresource};

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
/// Namespaces Kubernetes refuses to delete.
pub const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// How long watch history is kept before compaction: the window a client may resume in.
const HISTORY_WINDOW: Duration = Duration::from_secs(300);
const COMPACTION_TICK: Duration = Duration::from_secs(30);

fn ctx() -> RequestCtx {
    let mut ctx = RequestCtx::new(UserInfo::system("bootstrap"));
    ctx.field_manager = "oxivirt-bootstrap".into();
    ctx
}

/// Serves the stored CRDs and creates what a fresh cluster has.
pub async fn run(api: &Api) -> Result<()> {
    let crd_info = api
        .registry
        .by_group_resource("apiextensions.k8s.io", "customresourcedefinitions")
        .ok_or_else(|| {
            anyhow::anyhow!("the CustomResourceDefinition resource is not registered")
        })?;
    let stored = api
        .store
        .list(&crd_info.key_prefix(None), ListOptions::default())
        .await?;
    for kv in &stored.items {
        let obj: Value = serde_json::from_slice(&kv.value)?;
        crd::serve(api, &obj);
    }
    let ns_info = api
        .registry
        .by_group_resource("", "namespaces")
        .ok_or_else(|| anyhow::anyhow!("the Namespace resource is not registered"))?;
    let mut namespaces: Vec<&str> = SYSTEM_NAMESPACES.to_vec();
    namespaces.extend(oxivirt_api::content::well_known_namespaces());
    for ns in namespaces {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        create_if_missing(api, &ns_info, obj).await?;
    }
    install_crds(api, &crd_info).await?;
    let shipped = [
        (
            "instancetype.kubevirt.io",
            "virtualmachineclusterinstancetypes",
            oxivirt_api::content::common_cluster_instancetypes(),
        ),
        (
            "instancetype.kubevirt.io",
            "virtualmachineclusterpreferences",
            oxivirt_api::content::common_cluster_preferences(),
        ),
        (
            "hco.kubevirt.io",
            "hyperconvergeds",
            vec![oxivirt_api::content::default_hyperconverged()],
        ),
    ];
    for (group, plural, objects) in shipped {
        let info = api
            .registry
            .by_group_resource(group, plural)
            .ok_or_else(|| anyhow::anyhow!("{plural}.{group} is not served"))?;
        for obj in objects {
            create_if_missing(api, &info, obj).await?;
        }
    }
    crate::rbac::defaults::ship(api).await?;
    Ok(())
}

/// Creates `obj` unless an object of that name exists (a user's changes are kept).
async fn create_if_missing(
    api: &Api,
    info: &crate::registry::ResourceInfo,
    obj: Value,
) -> Result<()> {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if api
        .get(info, &ns, &name, &info.storage_version)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let version = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit('/').next())
        .unwrap_or(&info.storage_version)
        .to_string();
    match api.create(info, &ns, obj, &ctx(), &version).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "creating {} {ns}/{name}: {e}",
            info.group_resource()
        )),
    }
}

/// Installs oxivirt's CRDs, bringing existing ones up to this binary's definitions.
async fn install_crds(api: &Api, crd_info: &crate::registry::ResourceInfo) -> Result<()> {
    for definition in oxivirt_api::custom_resource_definitions() {
        let name = definition["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match api
            .create(crd_info, "", definition.clone(), &ctx(), "v1")
            .await
        {
            Ok(_) => {}
            Err(ApiError::AlreadyExists { .. }) => {
                // Keep the installed definition current with this binary's schema.
                api.write_loop(
                    crd_info,
                    "",
                    &name,
                    &ctx(),
                    "v1",
                    false,
                    |old| {
                        let mut new = old.clone();
                        new["spec"] = definition["spec"].clone();
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove("resourceVersion");
                        }
                        Ok(new)
                    },
                    Subresource::Main,
                )
                .await
                .map_err(|e| anyhow::anyhow!("updating CRD {name}: {e}"))?;
            }
            Err(e) => return Err(anyhow::anyhow!("creating CRD {name}: {e}")),
        }
    }
    Ok(())
}

/// Compacts history older than the window, as kube-apiserver asks etcd to.
pub async fn compaction(api: Arc<Api>) {
    let mut marks: VecDeque<(tokio::time::Instant, i64)> = VecDeque::new();
    loop {
        tokio::time::sleep(COMPACTION_TICK).await;
        let now = tokio::time::Instant::now();
        match api.store.current_revision().await {
            Ok(rev) => marks.push_back((now, rev)),
            Err(e) => tracing::warn!(error = %e, "reading the store revision for compaction"),
        }
        let mut target = None;
        while marks
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= HISTORY_WINDOW)
        {
            target = marks.pop_front().map(|(_, rev)| rev);
        }
        if let Some(rev) = target {
            if let Err(e) = api.store.compact(rev).await {
                tracing::warn!(error = %e, revision = rev, "store compaction failed");
            }
        }
    }
}

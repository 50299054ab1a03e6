//! Installs the default ClusterRoles and ClusterRoleBindings (`oxivirt_api::content`) on
//! every start, reconciled the way kube-apiserver reconciles its bootstrap policy: missing
//! objects are created, and objects still annotated `rbac.authorization.kubernetes.io/
//! autoupdate: "true"` get back any rule or subject this binary ships that they lack (an
//! administrator's additions are kept; setting the annotation to "false" opts out).
//! Aggregated roles are then filled at once, so they are complete before the first request.

use anyhow::{Context, Result};
use serde_json::Value;

use super::aggregation;
use super::authorizer::load;
use crate::context::{RequestCtx, UserInfo};
use crate::error::ApiError;
use crate::registry::ResourceInfo;
use crate::service::{Api, Subresource};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn ctx() -> RequestCtx {
    let mut ctx = RequestCtx::new(UserInfo::system("bootstrap"));
    ctx.field_manager = "oxivirt-bootstrap".into();
    ctx
}

/// Creates or reconciles the shipped RBAC objects, then aggregates.
///
/// # Errors
/// A store or admission failure, naming the object.
pub async fn ship(api: &Api) -> Result<()> {
    let shipped = [
        (
            "clusterroles",
            oxivirt_api::content::cluster_roles(),
            "rules",
        ),
        (
            "clusterrolebindings",
            oxivirt_api::content::cluster_role_bindings(),
            "subjects",
        ),
    ];
    for (plural, objects, list_field) in shipped {
        let info = api
            .registry
            .by_group_resource("rbac.authorization.k8s.io", plural)
            .with_context(|| format!("{plural} are not served"))?;
        // Concurrently: the store commits concurrent writes in one batch (one fsync), which
        // keeps this off the start-up time.
        futures::future::try_join_all(
            objects
                .into_iter()
                .map(|obj| reconcile(api, &info, obj, list_field)),
        )
        .await
        .with_context(|| format!("installing the default {plural}"))?;
    }
    let (policy, _) = load(api).await?;
    aggregation::write(api, aggregation::pending(&policy)).await?;
    Ok(())
}

async fn reconcile(api: &Api, info: &ResourceInfo, obj: Value, list_field: &str) -> Result<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    match api.create(info, "", obj.clone(), &ctx(), "v1").await {
        Ok(_) => return Ok(()),
        Err(ApiError::AlreadyExists { .. }) => {}
        Err(e) => anyhow::bail!("creating {name}: {e}"),
    }
    let wanted: Vec<Value> = obj[list_field].as_array().cloned().unwrap_or_default();
    let current = api.get(info, "", &name, "v1").await?;
    let opted_in = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("true");
    // Aggregated roles get their rules from the aggregation, not from here.
    let aggregated = list_field == "rules" && current.get("aggregationRule").is_some();
    let have = current[list_field].as_array().cloned().unwrap_or_default();
    if !opted_in || aggregated || wanted.iter().all(|w| have.contains(w)) {
        return Ok(());
    }
    let result = api
        .write_loop(
            info,
            "",
            &name,
            &ctx(),
            "v1",
            false,
            |old| {
                let mut new = old.clone();
                let mut items = old[list_field].as_array().cloned().unwrap_or_default();
                for item in &wanted {
                    if !items.contains(item) {
                        items.push(item.clone());
                    }
                }
                new[list_field] = Value::Array(items);
                Ok(new)
            },
            Subresource::Main,
        )
        .await;
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => anyhow::bail!("reconciling {name}: {e}"),
    }
}

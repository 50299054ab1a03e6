//! Runs upstream's admission webhook rules (`oxivirt-webhooks`) in-process, with read
//! access to the store, and renders their denials as upstream's webhooks do.

use oxivirt_webhooks::{Cluster, Operation, Request};
use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects;
use crate::registry::ResourceInfo;
use crate::service::Api;

/// The store seen through the webhooks' read-only interface.
struct StoreCluster<'a> {
    api: &'a Api,
}

#[async_trait::async_trait]
impl Cluster for StoreCluster<'_> {
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let info = self.api.registry.by_group_resource(group, resource)?;
        self.api
            .get(&info, namespace, name, &info.storage_version)
            .await
            .ok()
    }

    async fn any(&self, group: &str, resource: &str) -> bool {
        let Some(info) = self.api.registry.by_group_resource(group, resource) else {
            return false;
        };
        self.api
            .store
            .count(&info.key_prefix(None))
            .await
            .is_ok_and(|n| n > 0)
    }

    async fn list(&self, group: &str, resource: &str) -> Vec<Value> {
        let Some(info) = self.api.registry.by_group_resource(group, resource) else {
            return Vec::new();
        };
        let Ok(listed) = self
            .api
            .store
            .list(&info.key_prefix(None), Default::default())
            .await
        else {
            return Vec::new();
        };
        listed
            .items
            .iter()
            .filter_map(|kv| self.api.decode(&info, kv, &info.storage_version).ok())
            .collect()
    }
}

pub async fn run(
    api: &Api,
    info: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    ctx: &RequestCtx,
) -> ApiResult<()> {
    let operation = if old.is_some() {
        Operation::Update
    } else {
        Operation::Create
    };
    let namespace = objects::namespace(obj).to_string();
    let request = Request {
        group: &info.group,
        kind: &info.kind,
        operation,
        namespace: &namespace,
        old,
        user: &ctx.user.name,
    };
    let outcome = oxivirt_webhooks::admit(&request, obj, &StoreCluster { api }).await;
    for warning in outcome.warnings {
        ctx.warn(warning);
    }
    if outcome.causes.is_empty() {
        return Ok(());
    }
    let name = objects::name(obj).to_string();
    let causes: Vec<Cause> = outcome
        .causes
        .iter()
        .map(|c| Cause {
            reason: c.reason.clone(),
            message: c.message.clone(),
            field: c.field.clone(),
        })
        .collect();
    match oxivirt_webhooks::denial(&info.group, &info.kind, operation, &outcome.causes) {
        Some(denial) if denial.code == 403 => Err(ApiError::Forbidden(denial.message)),
        Some(denial) => Err(ApiError::Invalid {
            message: denial.message,
            group: info.group.clone(),
            kind: info.kind.clone(),
            name,
            causes,
        }),
        None => Err(ApiError::invalid(&info.group, &info.kind, &name, causes)),
    }
}

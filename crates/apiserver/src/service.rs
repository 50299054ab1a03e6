//! The object service: Kubernetes storage semantics (metadata, optimistic concurrency,
//! generation, status subresource, finalizers, dry-run) on top of the store. HTTP
//! handlers and in-process controllers both go through it.

use std::sync::Arc;

use oxivirt_store::{KeyValue, Store};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::admission;
use crate::context::RequestCtx;
use crate::error::{ApiError, ApiResult};
use crate::managed;
use crate::objects::{self, meta_mut};
use crate::registry::{Registry, ResourceInfo};

/// How many times a write without a caller-supplied resourceVersion is retried on conflict.
const WRITE_RETRIES: usize = 16;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    /// A Pod's `binding`: the mutation sets `spec.nodeName` and a status condition, and
    /// both are kept.
    Binding,
}

/// The shared state every request and controller works with.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    /// Woken after deletions so the garbage collector and namespace controller react at once.
    pub deletions: Notify,
    /// Signs and verifies ServiceAccount tokens.
    pub tokens: crate::tokens::TokenSigner,
    /// The OpenAPI v3 documents, built once per set of served resources.
    pub(crate) openapi_v3: crate::openapi::V3Cache,
    event_lease: tokio::sync::Mutex<Option<(oxivirt_store::LeaseId, std::time::Instant)>>,
    /// The relay to node agents (consoles, logs, VM commands); unset in in-memory test APIs.
    pub node_relay: std::sync::OnceLock<crate::node_relay::NodeRelay>,
    /// Recent records decoded for watchers (see `decoded`).
    pub(crate) decoded: crate::decoded::DecodedCache,
}

/// The result of a delete: the object as it was (or now is, while finalizers run).
pub struct DeleteOutcome {
    pub object: Value,
    pub deleted_now: bool,
}

/// `DeleteOptions` from the body or query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `dryRun: ["All"]` in the DeleteOptions body.
    pub dry_run: bool,
}

impl Api {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Registry,
        tokens: crate::tokens::TokenSigner,
    ) -> Self {
        Api {
            store,
            registry,
            deletions: Notify::new(),
            tokens,
            openapi_v3: Default::default(),
            event_lease: tokio::sync::Mutex::new(None),
            node_relay: std::sync::OnceLock::new(),
            decoded: Default::default(),
        }
    }

    /// A store lease expiring about one event TTL from now, shared by Events created
    /// within the same minute (as kube-apiserver reuses etcd leases).
    async fn event_lease(&self) -> ApiResult<oxivirt_store::LeaseId> {
        let mut cached = self.event_lease.lock().await;
        let now = std::time::Instant::now();
        if let Some((id, granted)) = *cached {
            if now.duration_since(granted) < std::time::Duration::from_secs(60) {
                return Ok(id);
            }
        }
        let id = self.store.grant_lease(crate::events::EVENT_TTL).await?;
        *cached = Some((id, now));
        Ok(id)
    }

    /// Turns a stored record into the object a client sees, in the requested version.
    pub fn decode(&self, info: &ResourceInfo, kv: &KeyValue, version: &str) -> ApiResult<Value> {
        let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key))
        })?;
        if let Some(alias) = &info.storage_alias {
            obj = (alias.from_storage)(obj);
        }
        obj["apiVersion"] = json!(info.api_version(version));
        obj["kind"] = json!(info.kind);
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        Ok(obj)
    }

    fn encode(info: &ResourceInfo, obj: &Value) -> ApiResult<Vec<u8>> {
        let mut copy = obj.clone();
        copy["apiVersion"] = json!(info.storage_api_version());
        if let Some(alias) = &info.storage_alias {
            copy = (alias.to_storage)(copy);
        }
        meta_mut(&mut copy).remove("resourceVersion");
        serde_json::to_vec(&copy).map_err(ApiError::internal)
    }

    fn ns_arg<'a>(info: &ResourceInfo, ns: &'a str) -> Option<&'a str> {
        if info.namespaced {
            Some(ns)
        } else {
            None
        }
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        version: &str,
    ) -> ApiResult<Value> {
        let key = info.key(Self::ns_arg(info, ns), name);
        match self.store.get(&key).await? {
            Some(kv) => self.decode(info, &kv, version),
            None => Err(ApiError::not_found(&info.group, &info.plural, name)),
        }
    }

    async fn get_kv(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> ApiResult<(KeyValue, Value)> {
        let key = info.key(Self::ns_arg(info, ns), name);
        match self.store.get(&key).await? {
            Some(kv) => {
                let obj = self.decode(info, &kv, &info.storage_version)?;
                Ok((kv, obj))
            }
            None => Err(ApiError::not_found(&info.group, &info.plural, name)),
        }
    }

    /// Checks that a namespace exists and accepts new content.
    async fn check_namespace(&self, ns: &str) -> ApiResult<()> {
        let Some(kv) = self
            .store
            .get(&format!("/registry/core/namespaces/{ns}"))
            .await?
        else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        let obj: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        if objects::is_deleting(&obj) {
            return Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        ctx: &RequestCtx,
        version: &str,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        if info.namespaced {
            let body_ns = objects::namespace(&obj);
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            meta_mut(&mut obj).insert("namespace".into(), json!(ns));
            self.check_namespace(ns).await?;
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        if objects::name(&obj).is_empty() {
            let prefix = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    vec![crate::error::Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
            meta_mut(&mut obj).insert("name".into(), json!(objects::generate_name(&prefix)));
        }
        obj["apiVersion"] = json!(info.api_version(version));
        obj["kind"] = json!(info.kind);
        {
            let meta = meta_mut(&mut obj);
            meta.remove("resourceVersion");
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(objects::now_rfc3339()));
            if info.tracks_generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        if info.has_status && !ctx.user.is_component() {
            if let Some(map) = obj.as_object_mut() {
                map.remove("status");
            }
        }
        admission::admit(self, info, &mut obj, None, ctx).await?;
        managed::record_update(info, None, &mut obj, ctx);
        let name = objects::name(&obj).to_string();
        if ctx.dry_run {
            return Ok(obj);
        }
        let key = info.key(Self::ns_arg(info, ns), &name);
        let bytes = Self::encode(info, &obj)?;
        let lease = if info.kind == "Event" {
            Some(self.event_lease().await?)
        } else {
            None
        };
        match self.store.create(&key, bytes, lease).await {
            Ok(kv) => {
                let created = self.decode(info, &kv, version)?;
                admission::after_write(self, info, &created).await;
                Ok(created)
            }
            Err(oxivirt_store::Error::AlreadyExists { .. }) => {
                Err(ApiError::already_exists(&info.group, &info.plural, &name))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per part of a REST update request"
    )]
    /// Replaces an object (PUT). Without a resourceVersion in the body the write is
    /// unconditional and retried on contention; with one, a mismatch is a 409.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        ctx: &RequestCtx,
        sub: Subresource,
        version: &str,
    ) -> ApiResult<Value> {
        if !body.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        let body_name = objects::name(&body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let wanted_rv = objects::resource_version(&body).map(str::to_string);
        self.write_loop(
            info,
            ns,
            name,
            ctx,
            version,
            wanted_rv.is_some(),
            |old| {
                if let Some(rv) = &wanted_rv {
                    if objects::resource_version(old) != Some(rv.as_str()) {
                        return Err(ApiError::modified(&info.group, &info.plural, name));
                    }
                }
                Ok(body.clone())
            },
            sub,
        )
        .await
    }

    /// Applies `mutate` to the current object and writes the result with compare-and-swap,
    /// retrying on contention unless `strict_rv` (the caller named a resourceVersion).
    #[allow(clippy::too_many_arguments)]
    pub async fn write_loop(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        ctx: &RequestCtx,
        version: &str,
        strict_rv: bool,
        mut mutate: impl FnMut(&Value) -> ApiResult<Value>,
        sub: Subresource,
    ) -> ApiResult<Value> {
        for _ in 0..WRITE_RETRIES {
            let (kv, old) = self.get_kv(info, ns, name).await?;
            let mut new = mutate(&old)?;
            if !new.is_object() {
                return Err(ApiError::BadRequest(
                    "the result must be a JSON object".into(),
                ));
            }
            let new_rv = objects::resource_version(&new).map(str::to_string);
            if let Some(rv) = new_rv {
                if Some(rv.as_str()) != objects::resource_version(&old) {
                    return Err(ApiError::modified(&info.group, &info.plural, name));
                }
            }
            self.merge_for_write(info, &old, &mut new, sub)?;
            admission::admit(self, info, &mut new, Some(&old), ctx).await?;
            bump_generation(info, &old, &mut new);
            managed::record_update(info, Some(&old), &mut new, ctx);
            match self
                .commit(info, ns, name, &kv, &old, new, ctx, version)
                .await
            {
                Err(ApiError::Conflict { .. }) if !strict_rv => continue,
                other => return other,
            }
        }
        Err(ApiError::Timeout(format!(
            "too many concurrent writes to {} \"{name}\"; try again",
            info.group_resource()
        )))
    }

    /// Keeps what a write may not change and splits spec from status.
    fn merge_for_write(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: &mut Value,
        sub: Subresource,
    ) -> ApiResult<()> {
        match sub {
            Subresource::Status => {
                let status = new.get("status").cloned();
                *new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            Subresource::Binding => {}
            Subresource::Main => {
                if info.has_status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        let old_meta = objects::meta(old).cloned().unwrap_or_default();
        let new_finalizers = objects::finalizers(new);
        let old_finalizers = objects::finalizers(old);
        let meta = meta_mut(new);
        for key in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(key) {
                Some(v) => meta.insert(key.into(), v.clone()),
                None => meta.remove(key),
            };
        }
        if objects::is_deleting(old) && new_finalizers.iter().any(|f| !old_finalizers.contains(f)) {
            return Err(ApiError::Forbidden(format!(
                "{} \"{}\" is being deleted: no new finalizers can be added",
                info.group_resource(),
                objects::name(old)
            )));
        }
        Ok(())
    }

    /// Writes `new` over `old` with compare-and-swap; deletes when the last finalizer is gone.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        kv: &KeyValue,
        old: &Value,
        new: Value,
        ctx: &RequestCtx,
        version: &str,
    ) -> ApiResult<Value> {
        let key = info.key(Self::ns_arg(info, ns), name);
        let finished = objects::is_deleting(&new) && pending_finalizers(info, &new).is_empty();
        if ctx.dry_run {
            return Ok(new);
        }
        if finished {
            return match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(_) => {
                    self.deletions.notify_waiters();
                    admission::after_delete(self, info, &new).await;
                    Ok(new)
                }
                Err(oxivirt_store::Error::Conflict { .. }) => {
                    Err(ApiError::modified(&info.group, &info.plural, name))
                }
                Err(oxivirt_store::Error::NotFound { .. }) => {
                    Err(ApiError::not_found(&info.group, &info.plural, name))
                }
                Err(e) => Err(e.into()),
            };
        }
        if unchanged(old, &new) {
            return self.decode(info, kv, version);
        }
        let bytes = Self::encode(info, &new)?;
        match self.store.update(&key, bytes, kv.mod_revision).await {
            Ok(kv) => {
                let stored = self.decode(info, &kv, version)?;
                admission::after_write(self, info, &stored).await;
                if objects::is_deleting(&stored) {
                    self.deletions.notify_waiters();
                }
                Ok(stored)
            }
            Err(oxivirt_store::Error::Conflict { .. }) => {
                Err(ApiError::modified(&info.group, &info.plural, name))
            }
            Err(oxivirt_store::Error::NotFound { .. }) => {
                Err(ApiError::not_found(&info.group, &info.plural, name))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        ctx: &RequestCtx,
        version: &str,
    ) -> ApiResult<DeleteOutcome> {
        if info.group.is_empty()
            && info.kind == "Namespace"
            && crate::bootstrap::UNDELETABLE_NAMESPACES.contains(&name)
        {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        for _ in 0..WRITE_RETRIES {
            let (kv, old) = self.get_kv(info, ns, name).await?;
            if let Some(uid) = &opts.precondition_uid {
                if objects::uid(&old) != uid {
                    return Err(ApiError::conflict(
                        &info.group,
                        &info.plural,
                        name,
                        &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        objects::uid(&old)
                    ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if objects::resource_version(&old) != Some(rv.as_str()) {
                    return Err(ApiError::conflict(&info.group, &info.plural, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        objects::resource_version(&old).unwrap_or("")
                    )));
                }
            }
            let mut new = old.clone();
            let mut finalizers = objects::finalizers(&new);
            match opts.propagation.as_deref() {
                Some("Orphan") => push_unique(&mut finalizers, crate::gc::FINALIZER_ORPHAN),
                Some("Foreground") => push_unique(&mut finalizers, crate::gc::FINALIZER_FOREGROUND),
                Some("Background") | None => {}
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "propagationPolicy must be one of Orphan, Foreground, Background; got {other:?}"
                    )))
                }
            }
            objects::set_finalizers(&mut new, &finalizers);
            admission::before_delete(info, &mut new);
            let pending = pending_finalizers(info, &new);
            if ctx.dry_run {
                return Ok(DeleteOutcome {
                    object: old,
                    deleted_now: pending.is_empty(),
                });
            }
            let key = info.key(Self::ns_arg(info, ns), name);
            if pending.is_empty() {
                match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(_) => {
                        self.deletions.notify_waiters();
                        admission::after_delete(self, info, &old).await;
                        let object = self.decode(info, &kv, version)?;
                        return Ok(DeleteOutcome {
                            object,
                            deleted_now: true,
                        });
                    }
                    Err(oxivirt_store::Error::Conflict { .. }) => continue,
                    Err(oxivirt_store::Error::NotFound { .. }) => {
                        return Err(ApiError::not_found(&info.group, &info.plural, name))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !objects::is_deleting(&new) {
                let meta = meta_mut(&mut new);
                meta.insert("deletionTimestamp".into(), json!(objects::now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if unchanged(&old, &new) {
                return Ok(DeleteOutcome {
                    object: old,
                    deleted_now: false,
                });
            }
            let bytes = Self::encode(info, &new)?;
            match self.store.update(&key, bytes, kv.mod_revision).await {
                Ok(kv) => {
                    self.deletions.notify_waiters();
                    let object = self.decode(info, &kv, version)?;
                    return Ok(DeleteOutcome {
                        object,
                        deleted_now: false,
                    });
                }
                Err(oxivirt_store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Timeout(format!(
            "too many concurrent writes to {} \"{name}\"",
            info.group_resource()
        )))
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_string());
    }
}

/// Finalizers still holding an object; Namespaces also wait for `spec.finalizers`.
pub fn pending_finalizers(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let mut list = objects::finalizers(obj);
    if info.group.is_empty() && info.kind == "Namespace" {
        if let Some(spec) = obj.pointer("/spec/finalizers").and_then(Value::as_array) {
            list.extend(spec.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    list
}

/// Equal apart from resourceVersion and managedFields timestamps: such a write is a no-op.
fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut c = v.clone();
        if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        c
    };
    strip(old) == strip(new)
}

/// `generation` counts changes to everything but metadata (and status, when it has its own endpoint).
fn bump_generation(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if !info.tracks_generation {
        return;
    }
    let old_gen = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let changed =
        objects::spec_part(old, info.has_status) != objects::spec_part(new, info.has_status);
    let gen = if changed { old_gen + 1 } else { old_gen };
    meta_mut(new).insert("generation".into(), json!(gen));
}

//! Writes through the API, with errors that name the object.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::Value;

use crate::kinds::Kind;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {object}")]
pub struct Error {
    action: &'static str,
    kind: &'static str,
    object: String,
    #[source]
    source: kube::Error,
}

impl Error {
    /// The HTTP status code of an API refusal.
    pub fn code(&self) -> Option<u16> {
        match &self.source {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn api(client: &kube::Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client.clone(), namespace, &kind.resource())
    } else {
        Api::all_with(client.clone(), &kind.resource())
    }
}

fn object_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

fn wrap(
    action: &'static str,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let object = object_name(namespace, name);
    move |source| Error {
        action,
        kind: kind.kind,
        object,
        source,
    }
}

fn decode(obj: &Value) -> Result<DynamicObject, kube::Error> {
    serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)
}

/// Creates `obj`; `Ok(false)` when it already exists.
pub async fn create(client: &kube::Client, kind: Kind, obj: &Value) -> Result<bool> {
    let (ns, name) = (crate::kinds::namespace(obj), crate::kinds::name(obj));
    let dynamic = decode(obj).map_err(wrap("encoding", kind, ns, name))?;
    match api(client, kind, ns)
        .create(&PostParams::default(), &dynamic)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(wrap("creating", kind, ns, name)(e)),
    }
}

/// JSON merge patch of the main resource.
pub async fn merge(
    client: &kube::Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<()> {
    api(client, kind, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(wrap("patching", kind, namespace, name))
}

/// JSON merge patch of the status subresource.
pub async fn merge_status(
    client: &kube::Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<()> {
    api(client, kind, namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(wrap("writing the status of", kind, namespace, name))
}

/// Replaces the whole object (on its resourceVersion: a stale copy gets a 409).
pub async fn replace(client: &kube::Client, kind: Kind, obj: &Value) -> Result<()> {
    let (ns, name) = (crate::kinds::namespace(obj), crate::kinds::name(obj));
    let dynamic = decode(obj).map_err(wrap("encoding", kind, ns, name))?;
    api(client, kind, ns)
        .replace(name, &PostParams::default(), &dynamic)
        .await
        .map(|_| ())
        .map_err(wrap("replacing", kind, ns, name))
}

/// Deletes an object; a missing one is fine.
pub async fn delete(client: &kube::Client, kind: Kind, namespace: &str, name: &str) -> Result<()> {
    match api(client, kind, namespace)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(wrap("deleting", kind, namespace, name)(e)),
    }
}

/// Reads one object from the API (not a cache); `None` when missing.
pub async fn get(
    client: &kube::Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>> {
    let found = api(client, kind, namespace)
        .get_opt(name)
        .await
        .map_err(wrap("reading", kind, namespace, name))?;
    Ok(found.and_then(|o| serde_json::to_value(o).ok()))
}

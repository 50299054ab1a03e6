//! Watch: a chunked stream of `{"type": ..., "object": ...}` lines, with initial events,
//! bookmarks, selector transitions and 410 Expired for compacted history.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use oxivirt_store::{ListOptions, WatchEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::list::Filter;
use crate::decoded::Decoded;
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::service::Api;
use crate::table::{self, IncludeObject};

const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Emitter {
    info: Arc<ResourceInfo>,
    as_table: Option<IncludeObject>,
    sent_columns: bool,
}

impl Emitter {
    fn line(&mut self, kind: &str, obj: Value) -> Bytes {
        let object = match self.as_table {
            Some(include) if kind != "BOOKMARK" && kind != "ERROR" => {
                let columns = if self.info.columns.is_empty() {
                    table::default_columns()
                } else {
                    self.info.columns.clone()
                };
                let t = table::build(&columns, &[obj], include, json!({}), !self.sent_columns);
                self.sent_columns = true;
                t
            }
            _ => obj,
        };
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    /// [`Emitter::line`] for an object shared with other watchers: unless this watch wants
    /// tables, its serialised form is reused as it is.
    fn shared_line(&mut self, kind: &str, decoded: &Decoded) -> Bytes {
        if self.as_table.is_some() {
            return self.line(kind, decoded.object.clone());
        }
        let mut bytes = Vec::with_capacity(decoded.json.len() + kind.len() + 24);
        bytes.extend_from_slice(b"{\"type\":\"");
        bytes.extend_from_slice(kind.as_bytes());
        bytes.extend_from_slice(b"\",\"object\":");
        bytes.extend_from_slice(&decoded.json);
        bytes.extend_from_slice(b"}\n");
        Bytes::from(bytes)
    }
}

/// A watch event's object: shared with the other watchers, or this watch's own.
enum EventObject {
    Shared(Arc<Decoded>),
    Own(Value),
}

fn bookmark(info: &ResourceInfo, version: &str, rev: i64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(version), "metadata": meta})
}

/// Starts a watch and returns the streaming response.
pub async fn watch(
    api: Arc<Api>,
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    query: HashMap<String, String>,
    as_table: Option<IncludeObject>,
    version: String,
) -> ApiResult<Response> {
    let mut filter = Filter::from_query(&info, &query)?;
    if let Some(name) = &name {
        filter.fields =
            crate::selectors::FieldSelector::parse(&format!("metadata.name={name}"), &[])?;
    }
    let prefix = info.key_prefix(namespace.as_deref());
    let bookmarks = super::request::flag(&query, "allowWatchBookmarks");
    let send_initial = super::request::flag(&query, "sendInitialEvents");
    let rv = query.get("resourceVersion").cloned().unwrap_or_default();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut emitter = Emitter {
        info: info.clone(),
        as_table,
        sent_columns: false,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);

    let mut initial = Vec::new();
    let start = if send_initial || rv.is_empty() || rv == "0" {
        let listed = api.store.list(&prefix, ListOptions::default()).await?;
        for kv in &listed.items {
            let obj = api.decode(&info, kv, &version)?;
            if filter.matches(&obj) {
                initial.push(emitter.line("ADDED", obj));
            }
        }
        if send_initial && bookmarks {
            initial
                .push(emitter.line("BOOKMARK", bookmark(&info, &version, listed.revision, true)));
        }
        listed.revision
    } else {
        rv.parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("resourceVersion: Invalid value: {rv:?}")))?
    };
    let stream = match api.store.watch(&prefix, start).await {
        Ok(s) => Some(s),
        Err(oxivirt_store::Error::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            ))
            .to_status();
            initial.push(emitter.line("ERROR", status));
            None
        }
        Err(oxivirt_store::Error::FutureRevision { .. }) => api
            .store
            .watch(&prefix, api.store.current_revision().await?)
            .await
            .ok(),
        Err(e) => return Err(e.into()),
    };

    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(mut stream) = stream else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        let mut last_rev = start;
        loop {
            tokio::select! {
                event = stream.next() => {
                    let line = match event {
                        None => return,
                        Some(Err(oxivirt_store::Error::Compacted { requested, compacted })) => {
                            let status = ApiError::Expired(format!("too old resource version: {requested} ({compacted})")).to_status();
                            let _ = tx.send(Ok(emitter.line("ERROR", status))).await;
                            return;
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Ok(emitter.line("ERROR", ApiError::from(e).to_status()))).await;
                            return;
                        }
                        Some(Ok(event)) => {
                            last_rev = event.revision();
                            translate(&api, &info, &version, &filter, event).map(|(kind, obj)| match obj {
                                EventObject::Shared(decoded) => emitter.shared_line(kind, &decoded),
                                EventObject::Own(obj) => emitter.line(kind, obj),
                            })
                        }
                    };
                    if let Some(line) = line {
                        if tx.send(Ok(line)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = ticker.tick(), if bookmarks => {
                    let line = emitter.line("BOOKMARK", bookmark(&info, &version, last_rev, false));
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = &mut deadline => return,
            }
        }
    });

    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .map_err(ApiError::internal)
}

/// Maps a store event to a watch event, applying the selector transitions Kubernetes
/// uses: an object leaving the selection is DELETED, entering it is ADDED.
fn translate(
    api: &Api,
    info: &ResourceInfo,
    version: &str,
    filter: &Filter,
    event: WatchEvent,
) -> Option<(&'static str, EventObject)> {
    match event {
        WatchEvent::Put { kv, prev } => {
            let new = api.decode_shared(info, &kv, version).ok()?;
            let now = filter.matches(&new.object);
            // Without selectors the previous object only tells ADDED from MODIFIED: its
            // existence is enough, and decoding it for every watcher doubled their cost.
            let before = if filter.is_everything() {
                prev.map(|_| true)
            } else {
                prev.and_then(|p| api.decode(info, &p, version).ok())
                    .map(|old| filter.matches(&old))
            };
            let kind = match (before, now) {
                (None, true) | (Some(false), true) => "ADDED",
                (Some(true), true) => "MODIFIED",
                (Some(true), false) => "DELETED",
                _ => return None,
            };
            Some((kind, EventObject::Shared(new)))
        }
        WatchEvent::Delete { prev, revision } => {
            let mut old = api.decode(info, &prev, version).ok()?;
            if !filter.matches(&old) {
                return None;
            }
            old["metadata"]["resourceVersion"] = json!(revision.to_string());
            Some(("DELETED", EventObject::Own(old)))
        }
    }
}

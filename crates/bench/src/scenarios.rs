//! The measurements: creates (serial and concurrent), gets, lists and watch delivery.
//!
//! Every scenario works in its own namespace named after the run, so runs against a shared
//! server do not collide, and every client keeps one keep-alive connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::{mpsc, Barrier};

use crate::client::Conn;
use crate::kubeconfig::Target;
use crate::stats::Samples;

/// How long to wait for the last watch event once every create was acknowledged.
const WATCH_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates done within a measured interval.
#[derive(Debug)]
pub struct Throughput {
    /// Objects created.
    pub count: usize,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Per-request latency.
    pub latency: Samples,
}

/// Listing a namespace full of objects.
#[derive(Debug)]
pub struct ListResult {
    /// Objects in the list.
    pub objects: usize,
    /// Size of the one-shot list response.
    pub bytes: usize,
    /// Median time of three one-shot lists, to the last body byte.
    pub full: Duration,
    /// Time to read the same objects in pages of [`ListResult::page_size`].
    pub paged: Duration,
    /// `limit` used for the paged list.
    pub page_size: usize,
}

/// Watch delivery: from a create to the event's arrival at a watcher.
#[derive(Debug)]
pub struct WatchResult {
    /// From the create's response to the event; an event that beat the response counts as
    /// zero.
    pub latency: Samples,
    /// From sending the create request to the event (includes the create itself).
    pub from_request: Samples,
    /// How many events arrived before the create's response did.
    pub before_response: usize,
}

/// A benchmark run against one server.
pub struct Bench {
    target: Arc<Target>,
    run_id: String,
    namespaces: Vec<String>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    #[serde(default)]
    metadata: EventMeta,
}

#[derive(Deserialize, Default)]
struct EventMeta {
    #[serde(default)]
    name: String,
}

fn configmap(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"oxivirt-bench"}}}},"data":{{"key":"value of {name}"}}}}"#
    )
    .into_bytes()
}

fn configmaps_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps")
}

/// Creates `names` one after the other on `conn`, recording each latency.
async fn create_all(
    conn: &mut Conn,
    namespace: &str,
    names: impl Iterator<Item = String>,
) -> Result<Samples> {
    let path = configmaps_path(namespace);
    let mut latency = Samples::default();
    for name in names {
        let start = Instant::now();
        conn.expect_ok(Method::POST, &path, Some(configmap(&name)))
            .await?;
        latency.push(start.elapsed());
    }
    Ok(latency)
}

impl Bench {
    /// A run against `target`; `run_id` makes its namespace names unique.
    pub fn new(target: Target, run_id: String) -> Self {
        Self {
            target: Arc::new(target),
            run_id,
            namespaces: Vec::new(),
        }
    }

    async fn namespace(&mut self, purpose: &str) -> Result<String> {
        let name = format!("bench-{}-{purpose}", self.run_id);
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
        Conn::connect(&self.target)
            .await?
            .expect_ok(Method::POST, "/api/v1/namespaces", Some(body.into_bytes()))
            .await
            .with_context(|| format!("cannot create namespace {name}"))?;
        self.namespaces.push(name.clone());
        Ok(name)
    }

    /// `count` creates from one client over one connection; returns the namespace and names.
    ///
    /// # Errors
    /// When a request fails.
    pub async fn serial_creates(
        &mut self,
        count: usize,
    ) -> Result<(Throughput, String, Vec<String>)> {
        let namespace = self.namespace("serial").await?;
        let mut conn = Conn::connect(&self.target).await?;
        let names: Vec<String> = (0..count).map(|i| format!("serial-{i:06}")).collect();
        let start = Instant::now();
        let latency = create_all(&mut conn, &namespace, names.iter().cloned()).await?;
        let elapsed = start.elapsed();
        Ok((
            Throughput {
                count,
                elapsed,
                latency,
            },
            namespace,
            names,
        ))
    }

    /// `total` creates spread over `clients` clients, each with its own connection; returns
    /// the namespace holding the objects.
    ///
    /// # Errors
    /// When a request fails.
    pub async fn concurrent_creates(
        &mut self,
        clients: usize,
        total: usize,
    ) -> Result<(Throughput, String)> {
        let namespace = self.namespace("concurrent").await?;
        let clients = clients.max(1);
        let barrier = Arc::new(Barrier::new(clients + 1));
        let mut tasks = Vec::new();
        for client in 0..clients {
            let share = total / clients + usize::from(client < total % clients);
            let target = self.target.clone();
            let barrier = barrier.clone();
            let namespace = namespace.clone();
            tasks.push(tokio::spawn(async move {
                let conn = Conn::connect(&target).await;
                barrier.wait().await;
                let names = (0..share).map(|i| format!("c{client:02}-{i:06}"));
                create_all(&mut conn?, &namespace, names).await
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        let mut latency = Samples::with_capacity(total);
        for task in tasks {
            latency.extend(task.await.context("client task panicked")??);
        }
        let elapsed = start.elapsed();
        Ok((
            Throughput {
                count: latency.len(),
                elapsed,
                latency,
            },
            namespace,
        ))
    }

    /// `count` GETs of pseudo-randomly chosen existing objects, serially on one connection.
    ///
    /// # Errors
    /// When a request fails.
    pub async fn gets(&self, namespace: &str, names: &[String], count: usize) -> Result<Samples> {
        if names.is_empty() {
            bail!("no objects to get");
        }
        let mut conn = Conn::connect(&self.target).await?;
        let mut latency = Samples::with_capacity(count);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..count {
            // xorshift: reproducible spread without a random-number dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let name = &names[(seed % names.len() as u64) as usize];
            let path = format!("{}/{name}", configmaps_path(namespace));
            let start = Instant::now();
            conn.expect_ok(Method::GET, &path, None).await?;
            latency.push(start.elapsed());
        }
        Ok(latency)
    }

    /// Lists `namespace` whole (three times, median) and in pages of `page_size`.
    ///
    /// # Errors
    /// When a request fails or the list is not JSON.
    pub async fn list(&self, namespace: &str, page_size: usize) -> Result<ListResult> {
        let mut conn = Conn::connect(&self.target).await?;
        let path = configmaps_path(namespace);
        let mut times = Vec::new();
        let mut body = bytes::Bytes::new();
        for _ in 0..3 {
            let start = Instant::now();
            body = conn.expect_ok(Method::GET, &path, None).await?;
            times.push(start.elapsed());
        }
        times.sort();
        let list: serde_json::Value = serde_json::from_slice(&body).context("list is not JSON")?;
        let objects = list["items"].as_array().map_or(0, Vec::len);

        let start = Instant::now();
        let mut paged_objects = 0;
        let mut token = String::new();
        loop {
            let page_path = format!("{path}?limit={page_size}&continue={token}");
            let page = conn.expect_ok(Method::GET, &page_path, None).await?;
            let page: serde_json::Value =
                serde_json::from_slice(&page).context("page is not JSON")?;
            paged_objects += page["items"].as_array().map_or(0, Vec::len);
            match page["metadata"]["continue"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_owned(),
                _ => break,
            }
        }
        let paged = start.elapsed();
        if paged_objects != objects {
            bail!("paged list returned {paged_objects} objects, one-shot list {objects}");
        }
        Ok(ListResult {
            objects,
            bytes: body.len(),
            full: times[1],
            paged,
            page_size,
        })
    }

    /// Opens a watch, then creates `count` objects serially and times each event's arrival
    /// against its create's response.
    ///
    /// # Errors
    /// When a request fails, the watch breaks, or events are missing.
    pub async fn watch(&mut self, count: usize) -> Result<WatchResult> {
        let namespace = self.namespace("watch").await?;
        let mut watch_conn = Conn::connect(&self.target).await?;
        let response = watch_conn
            .start(
                Method::GET,
                &format!("{}?watch=true", configmaps_path(&namespace)),
                None,
            )
            .await?;
        if !response.status().is_success() {
            bail!("watch answered {}", response.status());
        }
        let (events, mut arrivals) = mpsc::unbounded_channel::<(String, Instant)>();
        let reader = tokio::spawn(async move {
            let mut body = response.into_body();
            let mut buffer = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.context("watch stream broke")?.into_data() else {
                    continue;
                };
                let now = Instant::now();
                buffer.extend_from_slice(&data);
                // Events are concatenated JSON documents (newline-separated by convention).
                let mut stream =
                    serde_json::Deserializer::from_slice(&buffer).into_iter::<WatchEvent>();
                let mut consumed = 0;
                loop {
                    match stream.next() {
                        Some(Ok(event)) => {
                            consumed = stream.byte_offset();
                            if event.kind == "ADDED" {
                                let _ = events.send((event.object.metadata.name, now));
                            }
                        }
                        Some(Err(e)) if e.is_eof() => break,
                        Some(Err(e)) => {
                            return Err(anyhow::Error::new(e).context("bad watch event"))
                        }
                        None => break,
                    }
                }
                buffer.drain(..consumed);
            }
            anyhow::Ok(())
        });

        let mut conn = Conn::connect(&self.target).await?;
        // Warm-up: the first event proves the watch is registered before measuring.
        create_all(&mut conn, &namespace, std::iter::once("warmup".to_owned())).await?;
        let first = tokio::time::timeout(WATCH_DRAIN_TIMEOUT, arrivals.recv()).await;
        if !matches!(first, Ok(Some((ref name, _))) if name == "warmup") {
            bail!("the watch did not deliver the warm-up event");
        }

        let path = configmaps_path(&namespace);
        let mut acknowledged = HashMap::with_capacity(count);
        for i in 0..count {
            let name = format!("watched-{i:06}");
            let sent = Instant::now();
            conn.expect_ok(Method::POST, &path, Some(configmap(&name)))
                .await?;
            acknowledged.insert(name, (sent, Instant::now()));
        }
        let mut latency = Samples::with_capacity(count);
        let mut from_request = Samples::with_capacity(count);
        let mut before_response = 0;
        let deadline = Instant::now() + WATCH_DRAIN_TIMEOUT;
        while latency.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, arrivals.recv()).await {
                Ok(Some((name, arrived))) => {
                    if let Some((sent, acked)) = acknowledged.get(&name) {
                        if arrived < *acked {
                            before_response += 1;
                        }
                        latency.push(arrived.saturating_duration_since(*acked));
                        from_request.push(arrived.saturating_duration_since(*sent));
                    }
                }
                _ => bail!("only {} of {count} watch events arrived", latency.len()),
            }
        }
        reader.abort();
        Ok(WatchResult {
            latency,
            from_request,
            before_response,
        })
    }

    /// Deletes the run's namespaces (the server removes their content in the background).
    pub async fn cleanup(&self) {
        let Ok(mut conn) = Conn::connect(&self.target).await else {
            return;
        };
        for namespace in &self.namespaces {
            let _ = conn
                .send(
                    Method::DELETE,
                    &format!("/api/v1/namespaces/{namespace}"),
                    None,
                )
                .await;
        }
    }
}

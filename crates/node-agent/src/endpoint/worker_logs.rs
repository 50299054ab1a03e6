//! Logs of CDI worker Pods (`kubectl logs importer-<dv>`, `cdi-upload-<dv>`,
//! `cdi-clone-<dv>`): the node's storage runs them as `oxivirt importer` processes writing
//! `<data dir>/storage/workers/<pod uid>/importer.log`; the log lives as long as the Pod.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::logs::LogOptions;

/// Label value of the Pods the node's storage realises.
const CDI_APP: &str = "containerized-data-importer";
/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Why a worker log cannot be served: (HTTP status, message).
pub(crate) type Refusal = (u16, String);

/// The log file of CDI worker Pod `ns/pod`'s `container`; `Ok(None)` when the Pod is no CDI
/// worker (the caller answers for other Pods).
///
/// # Errors
/// 404 for a missing Pod, 400 for a container the Pod does not have.
pub(crate) async fn file_of(
    client: &kube::Client,
    data_dir: &std::path::Path,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Option<PathBuf>, Refusal> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), ns);
    let found = pods
        .get_opt(pod)
        .await
        .map_err(|e| (503, format!("reading pod {ns}/{pod}: {e}")))?
        .ok_or_else(|| (404, format!("pod {ns}/{pod} does not run on this node")))?;
    let is_worker = found
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .is_some_and(|app| app == CDI_APP);
    if !is_worker {
        return Ok(None);
    }
    let has_container = found
        .spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == container));
    if !has_container {
        return Err((
            400,
            format!("container {container} is not valid for pod {pod}"),
        ));
    }
    let uid = found.metadata.uid.unwrap_or_default();
    if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err((400, format!("pod {ns}/{pod} has no usable uid")));
    }
    Ok(Some(
        data_dir
            .join("storage/workers")
            .join(uid)
            .join("importer.log"),
    ))
}

/// Where reading starts so that at most `lines` whole lines are returned.
fn tail_start(contents: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return contents.len();
    }
    let body = contents.strip_suffix(b"\n").unwrap_or(contents);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines - 1)
        .map_or(0, |(i, _)| i + 1)
}

/// The log as chunks. With `follow` it goes on until the worker has ended (its
/// `termination-log` exists, or its directory is gone) and everything was sent.
///
/// # Errors
/// The I/O error of reading the log.
pub(crate) async fn stream(
    path: PathBuf,
    options: LogOptions,
) -> std::io::Result<impl futures::Stream<Item = std::io::Result<Bytes>> + Send> {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => Some(f),
        // Not started yet: an empty log, as for a container still being created.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let (Some(f), Some(lines)) = (file.as_mut(), options.tail_lines) {
        let mut contents = Vec::new();
        f.read_to_end(&mut contents).await?;
        let start = tail_start(&contents, lines) as u64;
        f.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let state = (file, path, options, 0u64, false);
    Ok(futures::stream::unfold(
        state,
        |(mut file, path, options, mut sent, done)| async move {
            if done {
                return None;
            }
            let mut buffer = vec![0u8; 64 << 10];
            loop {
                if options.limit_bytes.is_some_and(|limit| sent >= limit) {
                    return None;
                }
                if let Some(f) = file.as_mut() {
                    match f.read(&mut buffer).await {
                        Ok(0) => {}
                        Ok(n) => {
                            let room = options
                                .limit_bytes
                                .map_or(n, |l| n.min(usize::try_from(l - sent).unwrap_or(n)));
                            sent += room as u64;
                            let chunk = Bytes::copy_from_slice(&buffer[..room]);
                            return Some((Ok(chunk), (file, path, options, sent, false)));
                        }
                        Err(e) => return Some((Err(e), (file, path, options, sent, true))),
                    }
                }
                let dir = path.parent().map(PathBuf::from).unwrap_or_default();
                let ended = dir.join("termination-log").exists() || !dir.exists();
                if !options.follow || (ended && file.is_some()) || !dir.exists() {
                    return None;
                }
                if file.is_none() {
                    file = tokio::fs::File::open(&path).await.ok();
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_keeps_whole_last_lines() {
        let log = b"a\nb\nc\n";
        assert_eq!(&log[tail_start(log, 2)..], b"b\nc\n");
        assert_eq!(&log[tail_start(log, 9)..], log);
        assert_eq!(&log[tail_start(log, 0)..], b"");
    }
}

//! Container logs of a launcher Pod (`kubectl logs POD -c compute|guest-console-log`): the
//! launcher's own log is `compute.log`, the guest's serial output is `console.log`.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::rundir::RunDir;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The file behind `container`, or `None` for a container the Pod does not have.
pub(crate) fn file_of(dir: &RunDir, container: &str) -> Option<PathBuf> {
    match container {
        "compute" => Some(dir.file("compute.log")),
        "guest-console-log" => Some(dir.file("console.log")),
        _ => None,
    }
}

/// What `kubectl logs` asked for.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogOptions {
    pub(crate) follow: bool,
    pub(crate) tail_lines: Option<usize>,
    pub(crate) limit_bytes: Option<u64>,
}

impl LogOptions {
    pub(crate) fn from_query(query: Option<&str>) -> Self {
        let mut options = LogOptions::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "follow" => options.follow = value == "true" || value == "1",
                "tailLines" => options.tail_lines = value.parse().ok(),
                "limitBytes" => options.limit_bytes = value.parse().ok(),
                _ => {}
            }
        }
        options
    }
}

/// Where to start reading so that at most `lines` whole lines are returned.
fn tail_offset(contents: &[u8], lines: usize) -> usize {
    let body = contents.strip_suffix(b"\n").unwrap_or(contents);
    if lines == 0 {
        return contents.len();
    }
    let mut seen = 0;
    for (i, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return i + 1;
            }
        }
    }
    0
}

struct Follow {
    file: tokio::fs::File,
    offset: u64,
    sent: u64,
    options: LogOptions,
    dir: RunDir,
    done: bool,
}

/// The log as a stream of chunks; with `follow` it goes on until the launcher has finished
/// and everything it wrote was sent.
///
/// # Errors
/// The I/O error of opening the file.
pub(crate) async fn stream(
    dir: RunDir,
    path: PathBuf,
    options: LogOptions,
) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send> {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // A Pod whose launcher has not written yet has an empty log, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .await?
        }
        Err(e) => return Err(e),
    };
    let mut offset = 0;
    if let Some(lines) = options.tail_lines {
        let mut contents = Vec::new();
        file.read_to_end(&mut contents).await?;
        offset = tail_offset(&contents, lines) as u64;
    }
    file.seek(SeekFrom::Start(offset)).await?;
    let state = Follow {
        file,
        offset,
        sent: 0,
        options,
        dir,
        done: false,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            if let Some(limit) = s.options.limit_bytes {
                if s.sent >= limit {
                    return None;
                }
            }
            let read = match s.file.read(&mut buffer).await {
                Ok(n) => n,
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            };
            if read > 0 {
                let mut chunk = &buffer[..read];
                if let Some(limit) = s.options.limit_bytes {
                    let room = usize::try_from(limit - s.sent).unwrap_or(usize::MAX);
                    chunk = &chunk[..chunk.len().min(room)];
                }
                s.offset += read as u64;
                s.sent += chunk.len() as u64;
                return Some((Ok(Bytes::copy_from_slice(chunk)), s));
            }
            if !s.options.follow {
                return None;
            }
            let finished = s.dir.read_status().is_some_and(|st| st.phase.is_final());
            // The console log is cut to its tail in place when it grows past its bound:
            // start again from the new beginning rather than waiting past the end.
            let len = s.file.metadata().await.map(|m| m.len()).unwrap_or(s.offset);
            if len < s.offset {
                s.offset = 0;
                if let Err(e) = s.file.seek(SeekFrom::Start(0)).await {
                    s.done = true;
                    return Some((Err(e), s));
                }
                continue;
            }
            if finished && len == s.offset {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_whole_lines() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(&log[tail_offset(log, 2)..], b"two\nthree\n");
        assert_eq!(&log[tail_offset(log, 5)..], log);
        assert_eq!(&log[tail_offset(log, 0)..], b"");
        let unterminated = b"one\ntwo";
        assert_eq!(&unterminated[tail_offset(unterminated, 1)..], b"two");
    }

    #[test]
    fn query_is_read_as_kubectl_sends_it() {
        let o = LogOptions::from_query(Some(
            "container=compute&follow=true&tailLines=10&limitBytes=5",
        ));
        assert!(o.follow);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.limit_bytes, Some(5));
    }
}

//! Streams source bytes into a local file: sniffs the format, decompresses gz/xz/zst through
//! the system's `gzip`/`xz`/`zstd` (streaming, multi-threaded where they can), skips
//! all-zero blocks so raw images stay sparse, and stops at a byte limit so a compression
//! bomb or an oversized raw image fails cleanly instead of filling the disk.

use std::path::Path;
use std::process::Stdio;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::format::{detect, Detected, SNIFF};
use crate::progress::Progress;
use crate::Error;

/// Bytes written per `write` call and the zero-detection granule.
const CHUNK: usize = 4 << 20;
const BLOCK: usize = 64 << 10;

/// A stream of byte chunks.
pub enum Input {
    Http(hyper::body::Incoming),
    Reader(Box<dyn AsyncRead + Unpin + Send>),
}

impl Input {
    async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        match self {
            Input::Http(body) => loop {
                match body.frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => {
                        return Err(Error::Transfer(format!("reading the HTTP body: {e}")))
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
            Input::Reader(reader) => {
                let mut buf = BytesMut::with_capacity(CHUNK);
                let n = reader.read_buf(&mut buf).await.map_err(|e| {
                    Error::Transfer(format!("reading the decompressed stream: {e}"))
                })?;
                Ok((n > 0).then(|| buf.freeze()))
            }
        }
    }
}

/// Reads until `head` holds [`SNIFF`] bytes or the stream ends.
async fn sniff(input: &mut Input, head: &mut Vec<u8>) -> Result<(), Error> {
    while head.len() < SNIFF {
        match input.next().await? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(())
}

/// What [`transfer`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The format of the (decompressed) data.
    pub format: Detected,
    /// Bytes of data (the file's length).
    pub bytes: u64,
}

/// Writes `input` into `dest`, decompressing one level of gz/xz/zst. `total` (the source's
/// length, if known) drives `progress`; more than `limit(format)` bytes of (decompressed)
/// data of that format is an error.
///
/// # Errors
/// [`Error::Transfer`] for I/O failures, a failed decompressor or a stream past `limit`.
pub async fn transfer(
    mut input: Input,
    total: Option<u64>,
    progress: &Progress,
    dest: &Path,
    limit: impl Fn(Detected) -> u64,
) -> Result<Written, Error> {
    let mut head = Vec::with_capacity(SNIFF * 2);
    sniff(&mut input, &mut head).await?;
    let outer = detect(&head);
    let Some((program, args)) = outer.decompressor() else {
        let bytes = write_sparse(
            Bytes::from(head),
            input,
            total,
            progress,
            dest,
            limit(outer),
        )
        .await?;
        return Ok(Written {
            format: outer,
            bytes,
        });
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Transfer(format!("starting {program} to decompress the image: {e}")))?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Transfer(format!("{program} has no pipes")));
    };
    let feeder_progress = progress.clone();
    let feeder = async move {
        let mut fed = head.len() as u64;
        stdin.write_all(&head).await?;
        while let Some(chunk) = input.next().await.map_err(std::io::Error::other)? {
            fed += chunk.len() as u64;
            feeder_progress.bytes(fed, total);
            stdin.write_all(&chunk).await?;
        }
        stdin.shutdown().await
    };
    let consumer = async {
        let mut inner = Input::Reader(Box::new(stdout));
        let mut inner_head = Vec::with_capacity(SNIFF * 2);
        sniff(&mut inner, &mut inner_head).await?;
        let format = detect(&inner_head);
        if format.decompressor().is_some() {
            return Err(Error::Transfer(
                "nested compression is not supported".into(),
            ));
        }
        // Progress follows the compressed bytes the feeder reads; the writer reports none.
        let bytes = write_sparse(
            Bytes::from(inner_head),
            inner,
            None,
            &Progress::disabled(),
            dest,
            limit(format),
        )
        .await?;
        Ok(Written { format, bytes })
    };
    let (fed, written) = tokio::join!(feeder, consumer);
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    let status = child
        .wait()
        .await
        .map_err(|e| Error::Transfer(format!("waiting for {program}: {e}")))?;
    if !status.success() {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        return Err(Error::Transfer(format!(
            "{program} failed ({status}): {}",
            text.trim()
        )));
    }
    fed.map_err(|e| Error::Transfer(format!("feeding {program}: {e}")))?;
    Ok(written)
}

/// Writes `head` then the rest of `input` to `dest`, seeking over all-zero blocks.
async fn write_sparse(
    head: Bytes,
    mut input: Input,
    total: Option<u64>,
    progress: &Progress,
    dest: &Path,
    limit: u64,
) -> Result<u64, Error> {
    let io = |what: &str| {
        let what = format!("{what} {}", dest.display());
        move |e: std::io::Error| Error::Transfer(format!("{what}: {e}"))
    };
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(io("creating"))?;
    let mut pending = BytesMut::with_capacity(CHUNK * 2);
    pending.extend_from_slice(&head);
    let mut offset: u64 = 0;
    let mut done = false;
    while !done {
        while pending.len() < CHUNK {
            match input.next().await? {
                Some(chunk) => pending.extend_from_slice(&chunk),
                None => {
                    done = true;
                    break;
                }
            }
        }
        let take = if done {
            pending.len()
        } else {
            pending.len() / BLOCK * BLOCK
        };
        let chunk = pending.split_to(take);
        if offset + chunk.len() as u64 > limit {
            return Err(Error::TooLarge { limit });
        }
        // One write per run of data blocks and one seek per run of zero blocks: every
        // write is a trip to the blocking pool, so runs, not blocks, set the cost.
        let mut start = 0;
        while start < chunk.len() {
            let zero = is_zero(&chunk[start..(start + BLOCK).min(chunk.len())]);
            let mut end = start;
            while end < chunk.len() && is_zero(&chunk[end..(end + BLOCK).min(chunk.len())]) == zero
            {
                end = (end + BLOCK).min(chunk.len());
            }
            if zero {
                file.seek(std::io::SeekFrom::Current((end - start) as i64))
                    .await
                    .map_err(io("seeking in"))?;
            } else {
                file.write_all(&chunk[start..end])
                    .await
                    .map_err(io("writing"))?;
            }
            start = end;
        }
        offset += chunk.len() as u64;
        progress.bytes(offset, total);
    }
    file.set_len(offset).await.map_err(io("sizing"))?;
    // No fsync: scratch data need not survive a crash (the import restarts), and the image
    // that is kept is synced before it is reported complete.
    file.flush().await.map_err(io("flushing"))?;
    Ok(offset)
}

/// Whether a block is all zero bytes (data blocks usually fail on the first byte).
fn is_zero(block: &[u8]) -> bool {
    block.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reader(bytes: Vec<u8>) -> Input {
        Input::Reader(Box::new(std::io::Cursor::new(bytes)))
    }

    fn gzip(data: &[u8]) -> Option<Vec<u8>> {
        let mut child = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().ok()?;
        writer.join().ok()?.ok()?;
        Some(out.stdout)
    }

    #[tokio::test]
    async fn raw_data_is_written_sparse_and_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut data = vec![0u8; 8 << 20];
        data[5 << 20] = 1;
        let written = transfer(
            reader(data.clone()),
            None,
            &Progress::disabled(),
            &dest,
            |_| u64::MAX,
        )
        .await
        .unwrap();
        assert_eq!(written.format, Detected::Raw);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        use std::os::unix::fs::MetadataExt;
        assert!(
            std::fs::metadata(&dest).unwrap().blocks() * 512 <= 1 << 20,
            "zero runs are holes"
        );
    }

    #[tokio::test]
    async fn gzip_is_decompressed_and_a_bomb_stops_at_the_limit() {
        let Some(small) = gzip(b"QFI\xfb rest of a fake qcow2") else {
            eprintln!("skipped: gzip is not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let written = transfer(reader(small), None, &Progress::disabled(), &dest, |_| {
            1 << 20
        })
        .await
        .unwrap();
        assert_eq!(written.format, Detected::Qcow2);
        let bomb = gzip(&vec![0u8; 64 << 20]).unwrap();
        let err = transfer(reader(bomb), None, &Progress::disabled(), &dest, |_| {
            4 << 20
        })
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { limit } if limit == 4 << 20),
            "{err}"
        );
    }
}

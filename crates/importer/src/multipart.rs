//! The `file` field of a `multipart/form-data` body (the upload-form paths browsers use),
//! streamed: the part's bytes pass through as they arrive, never buffered whole.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Headers of one part may not exceed this (a body that never ends its headers is refused).
const MAX_PART_HEADERS: usize = 16 << 10;
/// Bytes buffered between the parser and the import.
const PIPE: usize = 1 << 20;

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// A reader of the `file` field's content in `body` (multipart with `boundary`).
pub fn file_field<R: AsyncRead + Unpin + Send + 'static>(
    boundary: String,
    body: R,
) -> DuplexStream {
    let (reader, writer) = tokio::io::duplex(PIPE);
    tokio::spawn(async move {
        if let Err(message) = pump(boundary, body, writer).await {
            tracing::warn!(%message, "the multipart upload is malformed");
        }
    });
    reader
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Copies the `file` part's content to `out`. On a malformed body `out` is dropped early, so
/// the import sees a short (and then refused) stream rather than a wrong one.
async fn pump<R: AsyncRead + Unpin>(
    boundary: String,
    mut body: R,
    mut out: DuplexStream,
) -> Result<(), String> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let mut buf: Vec<u8> = Vec::new();
    let mut at_part = false;
    let mut in_file = false;
    let mut ended = false;
    loop {
        if !ended {
            let mut chunk = vec![0u8; 256 << 10];
            match body.read(&mut chunk).await {
                Ok(0) => ended = true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the body: {e}")),
            }
        }
        loop {
            if in_file {
                if let Some(end) = find(&buf, delimiter.as_bytes()) {
                    out.write_all(&buf[..end])
                        .await
                        .map_err(|e| format!("passing the file on: {e}"))?;
                    return out
                        .shutdown()
                        .await
                        .map_err(|e| format!("ending the file: {e}"));
                }
                // Keep what could be the start of the delimiter.
                let keep = delimiter.len().saturating_sub(1).min(buf.len());
                let send = buf.len() - keep;
                if send > 0 {
                    out.write_all(&buf[..send])
                        .await
                        .map_err(|e| format!("passing the file on: {e}"))?;
                    buf.drain(..send);
                }
                break;
            }
            if !at_part {
                let Some(start) = find(&buf, opening.as_bytes()) else {
                    break;
                };
                buf.drain(..start + opening.len());
                at_part = true;
                continue;
            }
            // After a boundary: "--" ends the body, else CRLF and the part's headers.
            if buf.len() >= 2 && &buf[..2] == b"--" {
                return Err("the form has no field named file".into());
            }
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                if buf.len() > MAX_PART_HEADERS {
                    return Err("a part's headers are too long".into());
                }
                break;
            };
            let headers = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            at_part = false;
            if headers.contains("name=\"file\"") {
                in_file = true;
            }
            // Another field's content is skipped: the search for the next boundary does it.
        }
        if ended {
            return Err(if in_file {
                "the body ended inside the file field".into()
            } else {
                "the form has no field named file".into()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----x1").as_deref(),
            Some("----x1")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"q\"").as_deref(),
            Some("q")
        );
        assert_eq!(boundary("application/octet-stream"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }
}

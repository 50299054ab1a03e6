//! `GET …/vnc/screenshot[?moveCursor=true]`: a PNG of the guest's screen (upstream:
//! virt-handler asks libvirt for a screendump).
//!
//! The picture is read over QEMU's own VNC socket as an ordinary RFB client that asks to
//! share the display, so a user's VNC session stays connected and the launcher's QMP
//! connection (which QEMU serves one client at a time) is not needed. Pixels come back in
//! a format we choose (32-bit true colour, raw encoding) and are written as an 8-bit RGB
//! PNG, compressed with `flate2`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the whole exchange may take: a full frame of a large display is a few MiB.
const DEADLINE: Duration = Duration::from_secs(30);
/// Larger displays than this are not something QEMU offers; a bigger claim is corrupt.
const MAX_SIDE: u16 = 8192;

/// A captured screen: `width × height` pixels of RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub width: u16,
    pub height: u16,
    pub rgb: Vec<u8>,
}

/// Captures the screen behind the VNC socket `socket`; `move_cursor` first nudges the
/// pointer, which wakes a guest screensaver.
///
/// # Errors
/// A message naming what failed (connecting, the RFB handshake, the frame).
pub(crate) async fn capture(socket: &Path, move_cursor: bool) -> Result<Frame, String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("cannot connect to the VNC display: {e}"))?;
    tokio::time::timeout(DEADLINE, read_frame(stream, move_cursor))
        .await
        .map_err(|_| format!("the VNC display sent no full frame within {DEADLINE:?}"))?
}

async fn read_frame<S>(mut s: S, move_cursor: bool) -> Result<Frame, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |what: &'static str| move |e: std::io::Error| format!("VNC {what}: {e}");
    let mut version = [0u8; 12];
    s.read_exact(&mut version)
        .await
        .map_err(io("protocol version"))?;
    if !version.starts_with(b"RFB 003.") {
        return Err(format!(
            "the VNC display does not speak RFB 3.x: {:?}",
            String::from_utf8_lossy(&version)
        ));
    }
    s.write_all(b"RFB 003.008\n")
        .await
        .map_err(io("protocol version"))?;
    // Security: QEMU's display for a VM offers "None" (1); anything else we cannot answer.
    let count = s.read_u8().await.map_err(io("security types"))?;
    if count == 0 {
        let len = s.read_u32().await.map_err(io("security failure"))?;
        let mut reason = vec![0u8; len.min(4096) as usize];
        s.read_exact(&mut reason)
            .await
            .map_err(io("security failure"))?;
        return Err(format!(
            "the VNC display refused the connection: {}",
            String::from_utf8_lossy(&reason)
        ));
    }
    let mut types = vec![0u8; usize::from(count)];
    s.read_exact(&mut types)
        .await
        .map_err(io("security types"))?;
    if !types.contains(&1) {
        return Err(format!(
            "the VNC display requires authentication (security types {types:?})"
        ));
    }
    s.write_u8(1).await.map_err(io("security type"))?;
    if s.read_u32().await.map_err(io("security result"))? != 0 {
        return Err("the VNC display refused the connection".into());
    }
    // ClientInit: shared, so that a user's session is not disconnected.
    s.write_u8(1).await.map_err(io("client init"))?;
    let width = s.read_u16().await.map_err(io("server init"))?;
    let height = s.read_u16().await.map_err(io("server init"))?;
    let mut rest = [0u8; 16];
    s.read_exact(&mut rest).await.map_err(io("server init"))?;
    let name_len = s.read_u32().await.map_err(io("server init"))?;
    let mut name = vec![0u8; name_len.min(1 << 16) as usize];
    s.read_exact(&mut name).await.map_err(io("server init"))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("the VNC display claims a {width}x{height} screen"));
    }
    let mut requests = Vec::with_capacity(64);
    // SetPixelFormat: 32 bpp, depth 24, little endian, true colour, 8 bits each at 16/8/0.
    requests.extend_from_slice(&[
        0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
    ]);
    // SetEncodings: raw only.
    requests.extend_from_slice(&[2, 0, 0, 1, 0, 0, 0, 0]);
    if move_cursor {
        // PointerEvent: to the middle and back to the corner, no buttons.
        for (x, y) in [(width / 2, height / 2), (0, 0)] {
            requests.extend_from_slice(&[5, 0]);
            requests.extend_from_slice(&x.to_be_bytes());
            requests.extend_from_slice(&y.to_be_bytes());
        }
    }
    // FramebufferUpdateRequest, not incremental: the whole screen.
    requests.extend_from_slice(&[3, 0, 0, 0, 0, 0]);
    requests.extend_from_slice(&width.to_be_bytes());
    requests.extend_from_slice(&height.to_be_bytes());
    s.write_all(&requests).await.map_err(io("requests"))?;

    let (w, h) = (usize::from(width), usize::from(height));
    let mut rgb = vec![0u8; w * h * 3];
    let mut covered = 0usize;
    while covered < w * h {
        match s.read_u8().await.map_err(io("server message"))? {
            0 => {
                let _padding = s.read_u8().await.map_err(io("update"))?;
                let rects = s.read_u16().await.map_err(io("update"))?;
                for _ in 0..rects {
                    let x = usize::from(s.read_u16().await.map_err(io("rectangle"))?);
                    let y = usize::from(s.read_u16().await.map_err(io("rectangle"))?);
                    let rw = usize::from(s.read_u16().await.map_err(io("rectangle"))?);
                    let rh = usize::from(s.read_u16().await.map_err(io("rectangle"))?);
                    let encoding = s.read_i32().await.map_err(io("rectangle"))?;
                    if encoding != 0 || x + rw > w || y + rh > h {
                        return Err(format!(
                            "the VNC display sent a rectangle we cannot place \
                             ({rw}x{rh}+{x}+{y}, encoding {encoding})"
                        ));
                    }
                    let mut row = vec![0u8; rw * 4];
                    for line in y..y + rh {
                        s.read_exact(&mut row).await.map_err(io("pixels"))?;
                        let start = (line * w + x) * 3;
                        for (pixel, out) in row
                            .chunks_exact(4)
                            .zip(rgb[start..start + rw * 3].chunks_exact_mut(3))
                        {
                            // Little-endian 0x00RRGGBB: bytes B, G, R, 0.
                            out.copy_from_slice(&[pixel[2], pixel[1], pixel[0]]);
                        }
                    }
                    covered += rw * rh;
                }
            }
            // SetColourMapEntries (never sent in true colour, but skipped correctly).
            1 => {
                let mut head = [0u8; 5];
                s.read_exact(&mut head).await.map_err(io("colour map"))?;
                let entries = usize::from(u16::from_be_bytes([head[3], head[4]]));
                let mut skip = vec![0u8; entries * 6];
                s.read_exact(&mut skip).await.map_err(io("colour map"))?;
            }
            2 => {} // Bell.
            3 => {
                let mut head = [0u8; 3];
                s.read_exact(&mut head).await.map_err(io("cut text"))?;
                let len = s.read_u32().await.map_err(io("cut text"))?;
                let mut skip = vec![0u8; len.min(1 << 20) as usize];
                s.read_exact(&mut skip).await.map_err(io("cut text"))?;
            }
            other => return Err(format!("the VNC display sent unknown message type {other}")),
        }
    }
    Ok(Frame { width, height, rgb })
}

/// `frame` as a PNG file (8-bit RGB, no interlace, every row unfiltered).
pub(crate) fn png(frame: &Frame) -> Vec<u8> {
    let row = usize::from(frame.width) * 3;
    let mut raw = Vec::with_capacity((row + 1) * usize::from(frame.height));
    for line in frame.rgb.chunks_exact(row.max(1)) {
        raw.push(0);
        raw.extend_from_slice(line);
    }
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let idat = zlib
        .write_all(&raw)
        .and_then(|()| zlib.finish())
        .unwrap_or_default();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&u32::from(frame.width).to_be_bytes());
    ihdr.extend_from_slice(&u32::from(frame.height).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake RFB server: what QEMU sends for a 4x2 display, the frame in two rectangles.
    async fn serve(mut server: tokio::io::DuplexStream) -> Vec<u8> {
        server.write_all(b"RFB 003.008\n").await.unwrap();
        let mut version = [0u8; 12];
        server.read_exact(&mut version).await.unwrap();
        server.write_all(&[1, 1]).await.unwrap();
        assert_eq!(server.read_u8().await.unwrap(), 1);
        server.write_u32(0).await.unwrap();
        assert_eq!(server.read_u8().await.unwrap(), 1, "shared");
        server.write_all(&[0, 4, 0, 2]).await.unwrap();
        server.write_all(&[0u8; 16]).await.unwrap();
        server
            .write_all(&[0, 0, 0, 3, b'v', b'm', b'1'])
            .await
            .unwrap();
        let mut requests = [0u8; 20 + 8 + 10];
        server.read_exact(&mut requests).await.unwrap();
        server.write_all(&[2]).await.unwrap(); // a bell first
        server.write_all(&[0, 0, 0, 2]).await.unwrap();
        for (y, colour) in [(0u16, [0x30, 0x20, 0x10, 0]), (1, [0xff, 0, 0, 0])] {
            server.write_all(&[0, 0]).await.unwrap();
            server.write_all(&y.to_be_bytes()).await.unwrap();
            server.write_all(&[0, 4, 0, 1, 0, 0, 0, 0]).await.unwrap();
            for _ in 0..4 {
                server.write_all(&colour).await.unwrap();
            }
        }
        requests.to_vec()
    }

    #[tokio::test]
    async fn a_frame_is_read_over_rfb_in_true_colour() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve(server));
        let frame = read_frame(client, false).await.unwrap();
        let requests = served.await.unwrap();
        assert_eq!((frame.width, frame.height), (4, 2));
        assert_eq!(&frame.rgb[..3], &[0x10, 0x20, 0x30]);
        assert_eq!(&frame.rgb[12..15], &[0, 0, 0xff]);
        assert_eq!(requests[0], 0, "SetPixelFormat first");
        assert_eq!(&requests[28..], &[3, 0, 0, 0, 0, 0, 0, 4, 0, 2]);
    }

    #[test]
    fn png_has_the_signature_size_and_valid_chunks() {
        let frame = Frame {
            width: 3,
            height: 2,
            rgb: (0..18).collect(),
        };
        let png = png(&frame);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 2);
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        // The image data inflates back to filter byte + row, twice.
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        let mut inflate = flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]);
        std::io::Read::read_to_end(&mut inflate, &mut raw).unwrap();
        assert_eq!(raw.len(), 2 * (1 + 9));
        assert_eq!(&raw[10..13], &[0, 9, 10]);
    }
}

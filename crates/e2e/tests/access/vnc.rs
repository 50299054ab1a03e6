//! `virtctl vnc --proxy-only` read by a real VNC client library (issue 7 items 2, 8).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use oxivirt_e2e::virtctl_bin;

use crate::common::{run_with_timeout, shared_guest, GUEST};

/// The guest has one VNC session at a time (a new one displaces the old, as upstream), so
/// the tests of this module take turns.
static ONE_SESSION: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_SESSION
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The Python used for `vncdotool`: `$OXIVIRT_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("OXIVIRT_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn vnc_proxy_only_prints_its_port_and_serves_the_guests_framebuffer_to_a_vnc_client() {
    let check = Command::new(python())
        .args(["-c", "import vncdotool, PIL"])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "this test reads the framebuffer with vncdotool: pip install vncdotool ({check:?})"
    );
    let _turn = take_turn();
    let server = shared_guest();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut proxy = Command::new(virtctl_bin())
        .args(["vnc", GUEST, "--proxy-only", "--port", &port.to_string()])
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start virtctl vnc");
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("virtctl vnc prints its port");
    // Upstream prints Go's compact JSON.
    assert_eq!(line.trim(), format!("{{\"port\":{port}}}"));
    let shot = server.scratch().join("vnc.png");
    // Connect, read the whole framebuffer, and count its colours: a blank or missing
    // screen has one, the guest's boot text on the VGA console has at least two.
    let script = format!(
        "from vncdotool import api\n\
         from PIL import Image\n\
         c = api.connect('127.0.0.1::{port}', timeout=60)\n\
         c.captureScreen({shot:?})\n\
         c.disconnect()\n\
         api.shutdown()\n\
         im = Image.open({shot:?}).convert('RGB')\n\
         print(im.size[0], im.size[1], len(im.getcolors(1 << 24)))\n",
        shot = shot.display().to_string()
    );
    let mut python = Command::new(python());
    python.args(["-c", &script]);
    let out = run_with_timeout(python, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vncdotool failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let numbers: Vec<u32> = stdout
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers.len() == 3 && numbers[0] >= 640 && numbers[1] >= 400,
        "{stdout}"
    );
    assert!(numbers[2] >= 2, "the framebuffer is blank: {stdout}");
    // One viewer per proxy, as upstream: the proxy ends with the viewer's connection.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proxy.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "virtctl vnc did not end after the viewer left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Without `--proxy-only`, virtctl starts the viewer itself: here a stand-in viewer script
/// (`--vnc-path`) that is a real VNC client, capturing the screen to a file.
#[test]
fn vnc_starts_the_viewer_it_is_given_against_its_proxy() {
    let check = Command::new(python())
        .args(["-c", "import vncdotool"])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "this test runs vncdotool as the viewer: pip install vncdotool ({check:?})"
    );
    let _turn = take_turn();
    let server = shared_guest();
    let shot = server.scratch().join("viewer.png");
    // TigerVNC-style viewers are called with HOST::PORT, which vncdotool takes as it is.
    let viewer = server.write_file(
        "viewer.sh",
        &format!(
            "#!/bin/sh\nexec {python} -c \"from vncdotool import api; c = api.connect('$1', timeout=60); c.captureScreen('{shot}'); c.disconnect(); api.shutdown()\"\n",
            python = python(),
            shot = shot.display()
        ),
    );
    let mut chmod = Command::new("chmod");
    chmod.arg("+x").arg(&viewer);
    assert!(chmod.status().expect("chmod").success());
    let mut vnc = Command::new(virtctl_bin());
    vnc.args(["vnc", GUEST, "--vnc-path"])
        .arg(&viewer)
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(Stdio::null());
    let out = run_with_timeout(vnc, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "virtctl vnc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("the viewer captured the screen");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "{} bytes",
        png.len()
    );
}

/// The display size a VNC client is told in RFB's ServerInit, read through
/// `virtctl vnc --proxy-only`.
fn vnc_resolution(kubeconfig: &std::path::Path) -> (u32, u32) {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut proxy = Command::new(virtctl_bin())
        .args(["vnc", GUEST, "--proxy-only", "--port", &port.to_string()])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start virtctl vnc");
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("virtctl vnc prints its port");
    let mut rfb = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    rfb.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut buf = [0u8; 12];
    rfb.read_exact(&mut buf).expect("RFB greeting");
    rfb.write_all(b"RFB 003.008\n").expect("version");
    let mut count = [0u8; 1];
    rfb.read_exact(&mut count).expect("security types");
    let mut types = vec![0u8; usize::from(count[0])];
    rfb.read_exact(&mut types).expect("security types");
    assert!(types.contains(&1), "{types:?}");
    rfb.write_all(&[1]).expect("security None");
    let mut result = [0u8; 4];
    rfb.read_exact(&mut result).expect("security result");
    rfb.write_all(&[1]).expect("ClientInit shared");
    let mut size = [0u8; 4];
    rfb.read_exact(&mut size).expect("ServerInit");
    drop(rfb);
    let _ = proxy.kill();
    let _ = proxy.wait();
    (
        u32::from(u16::from_be_bytes([size[0], size[1]])),
        u32::from(u16::from_be_bytes([size[2], size[3]])),
    )
}

/// Width and height from a PNG's IHDR.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR");
    let at = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (at(16), at(20))
}

#[test]
fn vnc_screenshot_writes_a_png_of_the_guests_screen_at_its_resolution() {
    let _turn = take_turn();
    let server = shared_guest();
    let file = server.scratch().join("screenshot.png");
    let file_arg = file.display().to_string();
    let mut shot = Command::new(virtctl_bin());
    shot.args(["vnc", "screenshot", GUEST, "--file", &file_arg])
        .env("KUBECONFIG", server.kubeconfig());
    let out = run_with_timeout(shot, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "virtctl vnc screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&file).expect("the screenshot file");
    let size = png_size(&png);
    assert_eq!(
        size,
        vnc_resolution(&server.kubeconfig()),
        "PNG size vs the VNC display"
    );
    // A real decoder reads it, and the guest's boot text makes more than one colour.
    let check = Command::new(python()).args(["-c", "import PIL"]).output();
    if check.as_ref().is_ok_and(|o| o.status.success()) {
        let script = format!(
            "from PIL import Image\nim = Image.open({file_arg:?})\nim.load()\n\
             print(im.size[0], im.size[1], len(im.convert('RGB').getcolors(1 << 24)))\n"
        );
        let mut decode = Command::new(python());
        decode.args(["-c", &script]);
        let out = run_with_timeout(decode, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "PIL cannot read the PNG: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let numbers: Vec<u32> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(numbers[..2], [size.0, size.1], "{text}");
        assert!(numbers[2] >= 2, "the screenshot is blank: {text}");
    }
    // `-f -` writes the PNG to stdout; `--move-cursor` is accepted.
    let mut stdout = Command::new(virtctl_bin());
    stdout
        .args(["vnc", "screenshot", GUEST, "-f", "-", "--move-cursor"])
        .env("KUBECONFIG", server.kubeconfig());
    let out = run_with_timeout(stdout, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(png_size(&out.stdout), size);
    // A missing VMI: upstream's wording around the server's NotFound.
    let mut missing = Command::new(virtctl_bin());
    missing
        .args(["vnc", "screenshot", "no-such-vm", "-f", &file_arg])
        .env("KUBECONFIG", server.kubeconfig());
    let out = run_with_timeout(missing, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("Can't access VMI no-such-vm")
            && stderr.contains("not found"),
        "{stderr}"
    );
}

//! A fake `oxivirt launcher`: this test binary re-run with a filter selecting the ignored
//! test below. It follows the contract of design 0004: reads `launch.json`, writes
//! `status.json` (Running, then Succeeded on shutdown), answers `control.sock`, exits on
//! `shutdown`/`kill`, and appends a line to `starts` each time it starts.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The launcher command for `AgentConfig::launcher_command` (the agent appends
/// `--run-dir DIR`, which libtest takes as further, non-matching filters).
pub fn command() -> Vec<OsString> {
    let exe = std::env::current_exe().expect("the test binary has a path");
    vec![
        exe.into(),
        "--exact".into(),
        "--ignored".into(),
        "--nocapture".into(),
        "--test-threads".into(),
        "1".into(),
        "--".into(),
        "fake_launcher::fake_launcher".into(),
    ]
}

#[test]
#[ignore = "entry point of the fake launcher process the agent tests spawn; not a test"]
fn fake_launcher() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .windows(2)
        .find(|w| w[0] == "--run-dir")
        .map(|w| PathBuf::from(&w[1]))
        .expect("run with --run-dir DIR");
    serve(&dir);
}

fn write_status(dir: &Path, phase: &str, accel: &Value) {
    let now = chrono::Utc::now().to_rfc3339();
    let status = json!({"phase": phase, "launcherPid": std::process::id(), "qemuPid": null,
        "startedAt": now, "accel": accel, "guestOsInfo": {"id": "fake-guest"}, "updatedAt": now});
    let tmp = dir.join(".status.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&status).unwrap()).unwrap();
    std::fs::rename(tmp, dir.join("status.json")).unwrap();
}

fn serve(dir: &Path) -> ! {
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("launch.json")).unwrap()).unwrap();
    let accel = spec["accel"].clone();
    let mut starts = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("starts"))
        .unwrap();
    writeln!(starts, "{}", std::process::id()).unwrap();
    // Bound relative to the run directory (the agent starts launchers there): the absolute
    // path can be longer than a Unix socket address allows.
    std::env::set_current_dir(dir).unwrap();
    let _ = std::fs::remove_file("control.sock");
    let listener = UnixListener::bind("control.sock").unwrap();
    write_status(dir, "Running", &accel);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let request: Value = serde_json::from_str(&line).unwrap_or_default();
        let reply = |v: Value| {
            let _ = writeln!(&stream, "{v}");
        };
        match request["command"].as_str() {
            Some("shutdown") => {
                write_status(dir, "Succeeded", &accel);
                reply(json!({"ok": true}));
                std::process::exit(0);
            }
            Some("kill") => {
                reply(json!({"ok": true}));
                std::process::exit(1);
            }
            Some("pause") => {
                write_status(dir, "Paused", &accel);
                reply(json!({"ok": true}));
            }
            Some("unpause") => {
                write_status(dir, "Running", &accel);
                reply(json!({"ok": true}));
            }
            Some("status") => reply(json!({"ok": true})),
            other => reply(json!({"ok": false, "error": format!("unknown command {other:?}")})),
        }
    }
    std::process::exit(2)
}

//! Benchmarks of issue 7 item 9, run by hand (`--ignored --nocapture bench::`): console
//! keystroke round trip through `virtctl console` (API server, node agent, launcher) vs the
//! launcher's own console socket, and port-forward TCP throughput vs a direct connection to
//! the guest's Pod address, both measured in the same run against the same guest.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oxivirt_e2e::{virtctl_bin, wait_until};

use crate::common::{
    shared_guest, ssh_key, ssh_options, virtctl, vm, wait_banner, wait_vmi_running, BOOT, GUEST,
    GUEST_USER,
};
use crate::pty::Terminal;

const KEYSTROKES: usize = 200;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{name}: n={} p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
        samples.len(),
        samples[samples.len() - 1]
    );
    (p50, p99)
}

/// The run directory of the running VMI `name` under the server's data directory.
fn run_dir(data: &std::path::Path, name: &str) -> PathBuf {
    std::fs::read_dir(data.join("pods"))
        .expect("pods directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|dir| {
            let launch = std::fs::read(dir.join("launch.json")).unwrap_or_default();
            let status = std::fs::read_to_string(dir.join("status.json")).unwrap_or_default();
            serde_json::from_slice::<serde_json::Value>(&launch)
                .is_ok_and(|l| l["vmi"]["metadata"]["name"] == name)
                && status.contains("\"Running\"")
        })
        .expect("the guest's run directory")
}

/// Keys typed per line before the line is cleared (Ctrl+U, not timed): short lines keep
/// the shell's line editor from redrawing at the terminal's edge.
const PER_LINE: usize = 25;

/// Round trips of one typed `x` to its echo on the terminal.
fn pty_round_trips(t: &mut Terminal) -> Vec<f64> {
    let mut samples = Vec::with_capacity(KEYSTROKES);
    for i in 0..KEYSTROKES {
        if i % PER_LINE == 0 {
            t.send(b"\x15");
            std::thread::sleep(Duration::from_millis(200));
        }
        let from = t.screen().len();
        let start = Instant::now();
        t.send(b"x");
        while !t.screen().get(from..).is_some_and(|s| s.contains('x')) {
            assert!(start.elapsed() < Duration::from_secs(10), "no echo");
            std::thread::sleep(Duration::from_micros(20));
        }
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.send(b"\x15");
    samples
}

/// The same over the launcher's console socket.
fn socket_round_trips(socket: &mut UnixStream) -> Vec<f64> {
    let mut samples = Vec::with_capacity(KEYSTROKES);
    let mut buf = [0u8; 256];
    for i in 0..KEYSTROKES {
        if i % PER_LINE == 0 {
            socket.write_all(b"\x15").expect("type");
            std::thread::sleep(Duration::from_millis(200));
            // Whatever the line editor printed for it is not an echo to time.
            socket.set_nonblocking(true).expect("nonblocking");
            while socket.read(&mut buf).is_ok_and(|n| n > 0) {}
            socket.set_nonblocking(false).expect("blocking");
        }
        let start = Instant::now();
        socket.write_all(b"x").expect("type");
        let mut seen = Vec::new();
        while !seen.contains(&b'x') {
            let n = socket.read(&mut buf).expect("echo");
            assert!(n > 0, "the console socket closed");
            seen.extend_from_slice(&buf[..n]);
        }
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    socket.write_all(b"\x15").expect("type");
    samples
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_console_round_trip_and_port_forward_throughput() {
    let server = shared_guest();
    let kubeconfig = server.kubeconfig();

    // Console: log in as root once; the shell echoes each key.
    let mut t = Terminal::spawn(
        &virtctl_bin(),
        &["console", GUEST],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let at = t.expect("Successfully connected", 0, BOOT);
    t.send(b"\r");
    let at = t.expect("login: ", at, BOOT);
    t.send(b"root\r");
    t.expect("# ", at, BOOT);
    std::thread::sleep(Duration::from_millis(500));
    let relay = pty_round_trips(&mut t);
    t.send(&[0x1d]);
    t.wait(Duration::from_secs(30));
    let dir = run_dir(&server.data_dir(), GUEST);
    let mut socket = UnixStream::connect(dir.join("console.sock")).expect("console.sock");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let direct = socket_round_trips(&mut socket);
    socket.write_all(b"exit\r").expect("logout");
    drop(socket);
    let (r50, r99) = summary(
        "console keystroke echo via virtctl console (API server, agent, launcher)",
        relay,
    );
    let (d50, d99) = summary(
        "console keystroke echo via the launcher's console.sock",
        direct,
    );
    println!(
        "console added by the relay: p50 {:.3} ms, p99 {:.3} ms (target p99 <= 2 ms)",
        r50 - d50,
        r99 - d99
    );

    // Port-forward: busybox httpd in a pod-network guest serves 16 MiB.
    let k = server.kubectl();
    let public = std::fs::read_to_string(ssh_key().with_extension("pub")).expect("public key");
    let user_data = format!(
        "#cloud-config\nusers:\n  - name: {GUEST_USER}\n    ssh_authorized_keys:\n      - {}\n",
        public.trim()
    );
    let mut manifest: serde_json::Value =
        serde_json::from_str(&vm("bench-pf", Some(&user_data), true)).expect("vm");
    manifest["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] =
        "256Mi".into();
    k.apply(&manifest.to_string());
    wait_vmi_running(&k, "bench-pf");
    wait_banner(&k, "bench-pf");
    let options = ssh_options();
    let target = format!("{GUEST_USER}@vm/bench-pf");
    let serve = "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/blob bs=1M count=16 2>/dev/null && (setsid httpd -p 8080 -h /tmp/www </dev/null >/dev/null 2>&1 &) && echo serving";
    let mut args: Vec<&str> = vec!["ssh"];
    args.extend(options.iter().map(String::as_str));
    args.extend([target.as_str(), "-c", serve]);
    wait_until("httpd in the guest", BOOT, || {
        virtctl(&kubeconfig, &args)
            .stdout
            .contains("serving")
            .then_some(())
    });
    let pod_ip = k.jsonpath(
        &["pods", "-l", "vm.kubevirt.io/name=bench-pf"],
        "{.items[0].status.podIP}",
    );
    let mut forward = Command::new(virtctl_bin())
        .args(["port-forward", "vm/bench-pf", "0:8080"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virtctl port-forward");
    let mut line = String::new();
    std::io::BufReader::new(forward.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("port line");
    let local = line.split_whitespace().nth(2).expect("address").to_string();
    let fetch = |url: &str| -> f64 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{time_total}",
                url,
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = text.split_whitespace();
        let size: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
        let secs: f64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::MAX);
        assert_eq!(
            size,
            16.0 * 1024.0 * 1024.0,
            "{url}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        size / secs / 1e6
    };
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        direct.push(fetch(&format!("http://{}:8080/blob", pod_ip.trim())));
        via.push(fetch(&format!("http://{local}/blob")));
    }
    let _ = forward.kill();
    let _ = forward.wait();
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!("port-forward TCP, 16 MiB HTTP GET, MB/s per round: via virtctl port-forward {via:.2?}, direct to the Pod IP {direct:.2?}");
    println!(
        "port-forward / direct (best of 3): {:.2} / {:.2} MB/s = {:.2} (target >= 0.8)",
        best(&via),
        best(&direct),
        best(&via) / best(&direct)
    );
    k.ok(&["delete", "vm", "bench-pf", "--wait=false"]);
}

//! Network benchmarks (issue 6 item 11), run by hand and recorded in BENCHMARKS.md:
//! `cargo test -p oxivirt-e2e --test network --release -- --ignored --nocapture bench::`.
//! Guest-to-guest TCP throughput and ping latency over the pod network (masquerade at both
//! ends) and over a plain Linux-bridge NAD (no NAT), same two VMs, same run, against the
//! baseline the issue names: two QEMUs the test starts itself, outside oxivirt, with the same
//! QEMU binary, machine, CPU model, memory, seccomp sandbox, NIC model and CPU cgroup weights
//! (`cgroup_twin`), on taps of a fresh host bridge; and
//! the time from `virtctl expose` to the first HTTP answer through the new ClusterIP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use oxivirt_e2e::{virtctl_bin, wait_until};
use serde_json::json;

use crate::cgroup_twin::CgroupTwin;
use crate::support::{self, NetServer};

fn ssh(ip: &str, command: &str) -> String {
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-i")
        .arg(support::ssh_key_path())
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .expect("cannot run ssh");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// MB/s of `megabytes` sent from the guest at `from` to `to_ip` with busybox nc; the
/// receiver (`server`) counts what arrived, so a cut-short transfer fails the run.
fn throughput(from: &str, server: &str, to_ip: &str, megabytes: u32) -> f64 {
    // busybox nc quits when its stdin ends: the receiver's stdin is a long sleep, and the
    // whole pipeline runs detached so ssh returns at once.
    ssh(
        server,
        "rm -f /tmp/rx; (sleep 600 | nc -l -p 5001 | wc -c > /tmp/rx) >/dev/null 2>&1 &",
    );
    std::thread::sleep(Duration::from_millis(500));
    // busybox date has no %N: /proc/uptime gives centiseconds, enough for seconds-long runs.
    let out = ssh(
        from,
        &format!(
            "read s _ < /proc/uptime; dd if=/dev/zero bs=65536 count={} 2>/dev/null | nc {to_ip} 5001; read e _ < /proc/uptime; echo t=$s,$e",
            megabytes * 16
        ),
    );
    let expected = (u64::from(megabytes) << 20).to_string();
    let received = wait_until("the receiver's byte count", Duration::from_secs(60), || {
        let n = ssh(server, "cat /tmp/rx 2>/dev/null");
        n.lines()
            .any(|l| !l.trim().is_empty() && l.chars().all(|c| c.is_ascii_digit()))
            .then_some(n)
    });
    assert!(
        received.lines().any(|l| l.trim() == expected),
        "the receiver did not get {expected} bytes: {received}\nsender: {out}"
    );
    let (start, end): (f64, f64) = out
        .lines()
        .find_map(|l| l.strip_prefix("t="))
        .and_then(|t| {
            let (s, e) = t.trim().split_once(',')?;
            Some((s.parse().ok()?, e.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("no timing in {out}"));
    f64::from(megabytes) / (end - start).max(0.01)
}

/// Average ping RTT in ms.
fn latency(from: &str, to_ip: &str) -> f64 {
    let out = ssh(from, &format!("ping -c 20 -i 0.2 -q {to_ip}"));
    out.lines()
        .find_map(|l| l.split_once("min/avg/max = "))
        .and_then(|(_, v)| v.split('/').nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in {out}"))
}

#[test]
#[ignore = "benchmark: run by hand, numbers go to BENCHMARKS.md"]
fn bench_guest_to_guest_pod_network_versus_a_plain_bridge() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    let bridge = format!("oxtb{:05x}", std::process::id() & 0xfffff);
    let _cleanup = DeleteLink(bridge.clone());
    let config =
        json!({"cniVersion": "0.3.1", "name": "plain", "type": "bridge", "bridge": bridge});
    k.create(
        &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": "plain"}, "spec": {"config": config.to_string()}})
        .to_string(),
    );
    for (name, ip) in [("perf-a", "192.168.90.1"), ("perf-b", "192.168.90.2")] {
        let mut vm = support::vm(name, json!({"app": name}), &[], json!({}));
        let spec = &mut vm["spec"]["template"]["spec"];
        spec["domain"]["devices"]["interfaces"] =
            json!([{"name": "default", "masquerade": {}}, {"name": "plain", "bridge": {}}]);
        spec["networks"] = json!([{"name": "default", "pod": {}}, {"name": "plain", "multus": {"networkName": "plain"}}]);
        spec["volumes"][1]["cloudInitNoCloud"]["networkData"] = json!(format!(
            "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n  eth1:\n    addresses: [{ip}/24]\n"
        ));
        k.create(&vm.to_string());
    }
    let a_pod = support::wait_guest_ready(&k, "perf-a");
    let b_pod = support::wait_guest_ready(&k, "perf-b");
    let ip = |pod: &str| k.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let (a, b) = (ip(&a_pod), ip(&b_pod));
    // The baseline copies the QEMU the launcher runs (binary, machine, CPU, memory, SMP).
    let shape = QemuShape::of_vm("default_perf-a");
    eprintln!("baseline QEMU: {shape:?}");
    let plain = PlainPair::start(&shape);
    // Where the receiver's frames leave the host for its guest: packets and bytes there tell
    // how large the frames QEMU hands the guest are (offloads kept or segmented on the way).
    let b_uid = k.ok(&["get", "pod", &b_pod, "-o", "jsonpath={.metadata.uid}"]);
    let b_netns = server
        .node_ids()
        .first()
        .map(|id| format!("oxi-{id}-{b_uid}"))
        .unwrap_or_default();
    let receiver_taps = [
        (Some(b_netns.clone()), "tap0".to_string()),
        (Some(b_netns), "tap1".to_string()),
        (None, plain.taps[1].clone()),
    ];
    let paths = [
        (
            "pod network (masquerade both ends)",
            a.as_str(),
            b.as_str(),
            b.as_str(),
        ),
        (
            "Linux-bridge NAD (no NAT)",
            a.as_str(),
            b.as_str(),
            "192.168.90.2",
        ),
        (
            "plain host bridge, QEMUs outside oxivirt (baseline)",
            PlainPair::ADDRESSES[0],
            PlainPair::ADDRESSES[1],
            PlainPair::ADDRESSES[1],
        ),
    ];
    // Rounds go through the three paths in turn, so a burst of load from whatever else the
    // machine runs lands on every path alike rather than on one path's block of runs.
    // More rounds narrow the medians (`OXIVIRT_BENCH_ROUNDS`, default 5).
    let rounds: usize = std::env::var("OXIVIRT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(5);
    let mut mbps = vec![Vec::new(); paths.len()];
    let mut rtts = vec![Vec::new(); paths.len()];
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for round in 0..rounds {
        for (i, (label, from, server, target)) in paths.iter().enumerate() {
            let (netns, tap) = &receiver_taps[i];
            let before = tap_tx(netns.as_deref(), tap);
            let rate = throughput(from, server, target, 16);
            let after = tap_tx(netns.as_deref(), tap);
            let frames = match (before, after) {
                (Some((b0, p0)), Some((b1, p1))) if p1 > p0 => {
                    format!(
                        "{} frames of {} B on average",
                        p1 - p0,
                        (b1 - b0) / (p1 - p0)
                    )
                }
                _ => "no tap counters".to_string(),
            };
            let rtt = latency(from, target);
            eprintln!(
                "round {round}, {label}: {rate:.2} MB/s ({frames} to the receiver), ping avg {rtt:.3} ms"
            );
            mbps[i].push(rate);
            rtts[i].push(rtt);
        }
    }
    drop(plain);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "| path | TCP MB/s median (best) of {rounds}, 16 MB each | ping avg ms, median of {rounds} |"
    );
    for (i, (label, ..)) in paths.iter().enumerate() {
        eprintln!(
            "| {label} | {:.1} ({:.1}) | {:.3} |",
            median(&mbps[i]),
            best(&mbps[i]),
            median(&rtts[i])
        );
    }
    let (pod, nad, plain) = (median(&mbps[0]), median(&mbps[1]), median(&mbps[2]));
    eprintln!(
        "throughput ratio (medians) pod network / plain bridge: {:.2}; NAD / plain bridge: {:.2}; pod network / NAD: {:.2}",
        pod / plain,
        nad / plain,
        pod / nad
    );
    eprintln!(
        "throughput ratio (best runs) pod network / plain bridge: {:.2}; NAD / plain bridge: {:.2}",
        best(&mbps[0]) / best(&mbps[2]),
        best(&mbps[1]) / best(&mbps[2])
    );
    // Latency as a ratio the same way round (higher is better): baseline RTT / path RTT.
    let (pod_rtt, nad_rtt, plain_rtt) = (median(&rtts[0]), median(&rtts[1]), median(&rtts[2]));
    eprintln!(
        "latency ratio (plain bridge RTT / path RTT, medians) pod network: {:.2}; NAD: {:.2}",
        plain_rtt / pod_rtt,
        plain_rtt / nad_rtt
    );
    eprintln!(
        "load average before: {}; after: {}",
        load_before.trim(),
        load.trim()
    );
}

/// Transmitted (bytes, packets) of link `dev` (in network namespace `netns`).
fn tap_tx(netns: Option<&str>, dev: &str) -> Option<(u64, u64)> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    let out = cmd.args(["-s", "-j", "link", "show", dev]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let tx = &v[0]["stats64"]["tx"];
    Some((tx["bytes"].as_u64()?, tx["packets"].as_u64()?))
}

/// What the baseline QEMUs copy from a VM's QEMU: the binary and the options that decide
/// how fast a TCG guest runs.
#[derive(Debug)]
struct QemuShape {
    program: String,
    /// `-machine`, `-cpu`, `-smp`, `-m` and `-sandbox` with their values, as the launcher
    /// gave them.
    options: Vec<(String, String)>,
    /// The VM's QEMU, whose CPU cgroup chain the baseline copies.
    pid: u32,
}

impl QemuShape {
    /// The shape of the QEMU started with `-name guest=<guest>,…` (namespace_name).
    fn of_vm(guest: &str) -> QemuShape {
        let needle = format!("guest={guest},");
        for entry in std::fs::read_dir("/proc")
            .expect("cannot list /proc")
            .flatten()
        {
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let named = argv
                .windows(2)
                .any(|w| w[0] == "-name" && w[1].starts_with(&needle));
            if !named || !argv[0].contains("qemu-system") {
                continue;
            }
            let options = argv
                .windows(2)
                .filter(|w| {
                    matches!(
                        w[0].as_str(),
                        "-machine" | "-cpu" | "-smp" | "-m" | "-sandbox"
                    )
                })
                .map(|w| (w[0].clone(), w[1].clone()))
                .collect();
            return QemuShape {
                program: argv[0].clone(),
                options,
                pid: entry.file_name().to_string_lossy().parse().unwrap_or(0),
            };
        }
        panic!("no QEMU with -name {needle}… is running");
    }
}

/// Two test guests under QEMUs this test starts itself, each on a tap of one fresh host
/// bridge, no NAT and nothing of oxivirt in the path: the baseline. Taps, bridge and
/// processes go when it drops, passed or not.
struct PlainPair {
    bridge: String,
    taps: Vec<String>,
    qemus: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
    /// Dropped after the QEMUs are killed (fields drop after `Drop::drop`).
    _cgroups: Option<CgroupTwin>,
}

impl PlainPair {
    /// The guests' addresses; the host side of the bridge is `.254` of the same /24.
    const ADDRESSES: [&'static str; 2] = ["192.168.91.1", "192.168.91.2"];

    fn start(shape: &QemuShape) -> PlainPair {
        let tag = format!("{:05x}", std::process::id() & 0xfffff);
        let mut pair = PlainPair {
            bridge: format!("oxpb{tag}"),
            taps: Vec::new(),
            qemus: Vec::new(),
            _dir: tempfile::Builder::new()
                .prefix("oxivirt-bench-plain-")
                .tempdir()
                .expect("temporary directory"),
            _cgroups: None,
        };
        // Same CPU weights as the VMs' QEMUs, or the comparison measures the scheduler.
        let mut cgroups = CgroupTwin::of_process(shape.pid, &tag)
            .unwrap_or_else(|e| panic!("cannot copy the VM's CPU cgroups for the baseline: {e}"));
        let dir = pair._dir.path().to_path_buf();
        let br = pair.bridge.clone();
        host(&["ip", "link", "add", &br, "type", "bridge"]);
        host(&["ip", "addr", "add", "192.168.91.254/24", "dev", &br]);
        host(&["ip", "link", "set", &br, "up"]);
        let guest = support::guest_dir();
        for (i, address) in Self::ADDRESSES.iter().enumerate() {
            let tap = format!("oxpt{tag}{i}");
            // With `vnet_hdr`, as the node agent makes the VMs' taps (offloads to the guest).
            host(&[
                "ip", "tuntap", "add", "dev", &tap, "mode", "tap", "vnet_hdr",
            ]);
            pair.taps.push(tap.clone());
            host(&["ip", "link", "set", &tap, "master", &br, "up"]);
            let name = format!("plain-{i}");
            let overlay = dir.join(format!("{name}.qcow2"));
            let backing = guest.join("disk.qcow2");
            host(&[
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                &backing.to_string_lossy(),
                &overlay.to_string_lossy(),
            ]);
            let files = [
                (
                    "user-data",
                    format!(
                        "#cloud-config\nssh_authorized_keys:\n  - {}\n",
                        support::ssh_public_key()
                    ),
                ),
                (
                    "meta-data",
                    format!("instance-id: {name}\nlocal-hostname: {name}\n"),
                ),
                (
                    "network-config",
                    format!("version: 2\nethernets:\n  eth0:\n    addresses: [{address}/24]\n"),
                ),
            ];
            for (file, text) in &files {
                std::fs::write(dir.join(format!("{name}-{file}")), text).expect("seed file");
            }
            let seed = dir.join(format!("{name}-seed.iso"));
            let path = |file: &str| dir.join(format!("{name}-{file}")).display().to_string();
            host(&[
                "bash",
                &guest.join("make-seed.sh").to_string_lossy(),
                "-o",
                &seed.to_string_lossy(),
                "-u",
                &path("user-data"),
                "-m",
                &path("meta-data"),
                "-n",
                &path("network-config"),
            ]);
            let console = dir.join(format!("{name}.console"));
            // vhost-net when the host has it, as the launcher does for virtio NICs.
            let vhost = if std::path::Path::new("/dev/vhost-net").exists() {
                ",vhost=on"
            } else {
                ""
            };
            let mut qemu = Command::new(&shape.program);
            qemu.args([
                "-name",
                &name,
                "-nodefaults",
                "-no-user-config",
                "-nographic",
            ]);
            for (option, value) in &shape.options {
                qemu.args([option, value]);
            }
            qemu.args([
                "-drive",
                &format!("file={},if=none,id=root,format=qcow2", overlay.display()),
                "-device",
                "virtio-blk-pci,drive=root,bootindex=1",
                "-drive",
                &format!(
                    "file={},if=none,id=seed,format=raw,readonly=on",
                    seed.display()
                ),
                "-device",
                "virtio-blk-pci,drive=seed",
                "-netdev",
                &format!("tap,id=net0,ifname={tap},script=no,downscript=no{vhost}"),
                "-device",
                &format!("virtio-net-pci,netdev=net0,mac=02:9b:00:00:00:0{i}"),
                "-serial",
                &format!("file:{}", console.display()),
            ]);
            qemu.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).expect("log"));
            let child = qemu.spawn().expect("cannot start the baseline QEMU");
            let pid = child.id();
            pair.qemus.push(child);
            cgroups
                .adopt(&name, pid)
                .unwrap_or_else(|e| panic!("baseline QEMU {name}: {e}"));
        }
        pair._cgroups = Some(cgroups);
        for i in 0..Self::ADDRESSES.len() {
            let console = dir.join(format!("plain-{i}.console"));
            wait_until(
                &format!("baseline guest plain-{i} to be ready"),
                support::BOOT_TIMEOUT,
                || {
                    let log = std::fs::read_to_string(&console).unwrap_or_default();
                    if let Some(Ok(Some(status))) = pair.qemus.get_mut(i).map(|q| q.try_wait()) {
                        let err = std::fs::read_to_string(dir.join(format!("plain-{i}.stderr")))
                            .unwrap_or_default();
                        panic!("baseline QEMU plain-{i} exited ({status}): {err}");
                    }
                    log.contains("OXIVIRT-TEST-GUEST READY").then_some(())
                },
            );
        }
        pair
    }
}

impl Drop for PlainPair {
    fn drop(&mut self) {
        for qemu in &mut self.qemus {
            let _ = qemu.kill();
            let _ = qemu.wait();
        }
        for tap in &self.taps {
            let _ = Command::new("ip").args(["link", "del", tap]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Runs a host command for the baseline's set-up; a failure ends the benchmark naming it.
fn host(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes a host link when the benchmark ends, passed or not.
struct DeleteLink(String);

impl Drop for DeleteLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn answers(addr: SocketAddr, expect: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains(expect)
}

#[test]
#[ignore = "benchmark: run by hand, numbers go to BENCHMARKS.md"]
fn bench_time_from_virtctl_expose_to_a_reachable_service() {
    crate::skip_unless_possible!();
    let server = NetServer::start();
    let k = server.kubectl();
    k.create(&support::vm("svc-time", json!({"app": "svc-time"}), &[80], json!({})).to_string());
    let pod = support::wait_guest_ready(&k, "svc-time");
    let pod_ip = k.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    wait_until("the guest", Duration::from_secs(30), || {
        support::curl(&format!("http://{pod_ip}/"))
    });
    let mut samples = Vec::new();
    for n in 0..10u32 {
        // A ClusterIP chosen up front, so the clock needs no API read.
        let cluster_ip = format!("10.100.{}.{}", std::process::id() % 200, 10 + n);
        let addr: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
        let name = format!("svc-{n}");
        let started = Instant::now();
        let mut virtctl = Command::new(virtctl_bin())
            .arg("--kubeconfig")
            .arg(server.server.kubeconfig())
            .args([
                "expose",
                "vm",
                "svc-time",
                "--name",
                &name,
                "--port",
                "80",
                "--cluster-ip",
                &cluster_ip,
            ])
            .spawn()
            .expect("virtctl");
        let mut exited = None;
        while !answers(addr, "svc-time:80") {
            if exited.is_none() {
                if let Ok(Some(_)) = virtctl.try_wait() {
                    exited = Some(started.elapsed());
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Service {name} never answered"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let reachable = started.elapsed();
        let _ = virtctl.wait();
        let cli = exited.unwrap_or(reachable);
        eprintln!("{name}: virtctl exited after {cli:?}, reachable after {reachable:?}");
        samples.push((reachable, reachable.saturating_sub(cli)));
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    eprintln!(
        "expose → reachable: median {:?} (of which after virtctl returned: {:?}), max {:?}",
        median.0,
        median.1,
        samples.last().map(|s| s.0).unwrap_or_default()
    );
}

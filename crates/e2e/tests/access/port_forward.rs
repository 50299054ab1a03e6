//! `virtctl port-forward` listening locally (issue 7 item 3).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use oxivirt_e2e::virtctl_bin;

use crate::common::{shared_guest, GUEST};

#[test]
fn port_forward_serves_every_local_connection_from_the_guests_port() {
    let server = shared_guest();
    let mut forward = Command::new(virtctl_bin())
        .args(["port-forward", &format!("vm/{GUEST}"), "0:22"])
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start virtctl port-forward");
    let mut line = String::new();
    BufReader::new(forward.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("virtctl port-forward says where it listens");
    // "Forwarding from 127.0.0.1:PORT -> 22"
    let address = line
        .trim()
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.strip_suffix(" -> 22"))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(&address).expect("connect to the forwarded port");
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut banner = [0u8; 16];
        socket
            .read_exact(&mut banner)
            .expect("the guest's SSH banner");
        assert_eq!(&banner, b"SSH-2.0-dropbear");
    }
    let _ = forward.kill();
    let _ = forward.wait();
}

/// A UDP echo server for the guest (the test guest has no UDP tool): static, so it runs on
/// the guest's busybox userland.
const UDP_ECHO_C: &str = r#"
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
    static char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
    }
}
"#;

#[test]
fn udp_port_forward_carries_each_datagram_to_the_guest_and_back() {
    use crate::common::{
        ssh_key, ssh_options, virtctl, vm, wait_banner, wait_vmi_running, BOOT, GUEST_USER,
    };

    let server = shared_guest();
    let k = server.kubectl();
    let source = server.write_file("udp-echo.c", UDP_ECHO_C);
    let binary = server.scratch().join("udp-echo");
    let cc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("this test builds a static UDP echo server: apt-get install gcc libc6-dev");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    // A VM on the pod network (port-forward reaches the guest through the Pod's address).
    let public = std::fs::read_to_string(ssh_key().with_extension("pub")).expect("public key");
    let user_data = format!(
        "#cloud-config\nusers:\n  - name: {GUEST_USER}\n    ssh_authorized_keys:\n      - {}\n",
        public.trim()
    );
    k.apply(&vm("udp", Some(&user_data), true));
    wait_vmi_running(&k, "udp");
    wait_banner(&k, "udp");
    let options = ssh_options();
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .map(|s| s.to_string())
            .chain(options.iter().cloned())
            .chain(tail.iter().map(|s| s.to_string()))
            .collect()
    };
    let kc = server.kubeconfig();
    let target = format!("{GUEST_USER}@vm/udp");
    let remote = format!("{target}:/tmp/udp-echo");
    let local = binary.display().to_string();
    oxivirt_e2e::wait_until("scp of the UDP echo server into the guest", BOOT, || {
        let args = with(&["scp"], &[&local, &remote]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        virtctl(&kc, &args).status.success().then_some(())
    });
    let start = "chmod +x /tmp/udp-echo && (setsid /tmp/udp-echo 5353 </dev/null >/dev/null 2>&1 &) && echo started";
    let args = with(&["ssh"], &[&target, "-c", start]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(virtctl(&kc, &args).ok().trim(), "started");

    // The manual's form: local port 0 (any), protocol first.
    let mut forward = Command::new(virtctl_bin())
        .args(["port-forward", "vm/udp", "udp/0:5353"])
        .env("KUBECONFIG", &kc)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("virtctl port-forward");
    let mut line = String::new();
    std::io::BufReader::new(forward.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("virtctl says where it listens");
    // "Forwarding from 127.0.0.1:PORT/udp -> 5353"
    let port: u16 = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.strip_suffix("/udp"))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // UDP may lose the first datagrams while the stream opens: ask until one comes back.
    let mut buffer = [0u8; 2048];
    let echoed = (0..24).find_map(|i| {
        socket.send(format!("hello-{i}").as_bytes()).ok()?;
        let n = socket.recv(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    });
    assert!(
        echoed.as_deref().is_some_and(|e| e.starts_with("hello-")),
        "no datagram came back: {echoed:?}"
    );
    // Datagrams keep their boundaries: two sent back to back come back as two.
    // Late echoes of the retries are drained first.
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while socket.recv(&mut buffer).is_ok() {}
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let big = vec![b'x'; 1400];
    socket.send(b"first").expect("send");
    socket.send(&big).expect("send");
    let n = socket.recv(&mut buffer).expect("first echo");
    assert_eq!(&buffer[..n], b"first");
    let n = socket.recv(&mut buffer).expect("second echo");
    assert_eq!(&buffer[..n], &big[..]);
    let _ = forward.kill();
    let _ = forward.wait();
    k.ok(&["delete", "vm", "udp", "--wait=false"]);
}

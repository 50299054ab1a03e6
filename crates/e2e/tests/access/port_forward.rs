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

//! `virtctl console` driven on a pseudo-terminal against the test guest (issue 7 items 1, 8).

use std::time::Duration;

use oxivirt_e2e::{virtctl_bin, Server};

use crate::common::{shared_guest, virtctl, GUEST};
use crate::pty::Terminal;

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn a_root_login_through_virtctl_console_runs_a_command_a_second_session_takes_over_and_ctrl_bracket_ends_it(
) {
    let server = shared_guest();
    let kubeconfig = server.kubeconfig();
    let mut t = Terminal::spawn(
        &virtctl_bin(),
        &["console", GUEST],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let at = t.expect(
        &format!("Successfully connected to {GUEST} console. The escape sequence is ^]"),
        0,
        WAIT,
    );
    // The login prompt is printed once at boot: ask for a fresh one.
    t.send(b"\r");
    let at = t.expect("oxivirt-test-guest login: ", at, WAIT);
    t.send(b"root\r");
    let at = t.expect("BusyBox", at, WAIT);
    t.send(b"echo console-$((6*7)) $(cat /proc/sys/kernel/hostname)\r");
    // The typed line echoes as written; only the shell's output has the product.
    t.expect(&format!("console-42 {GUEST}"), at, WAIT);
    t.send(b"exit\r");

    // One console per VM, as upstream: a second session takes over and the first is told.
    let mut second = Terminal::spawn(
        &virtctl_bin(),
        &["console", GUEST],
        &[("KUBECONFIG", &kubeconfig)],
    );
    second.expect("Successfully connected", 0, WAIT);
    t.expect("You were disconnected from the console.", at, WAIT);
    t.expect(
        "another user connected to the console of the target vm",
        at,
        WAIT,
    );
    let status = t.wait(Duration::from_secs(30));
    assert!(
        !status.success(),
        "a displaced console exits with a failure"
    );
    // The terminal was given back as it was found (raw mode undone).
    let modes = t.termios().local_modes;
    assert!(
        modes.contains(rustix::termios::LocalModes::ECHO),
        "echo is still off: {modes:?}"
    );

    // The new session works, and Ctrl+] ends it cleanly.
    second.send(b"\r");
    second.expect("oxivirt-test-guest login: ", 0, WAIT);
    second.send(&[0x1d]);
    let status = second.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "virtctl console exited with {status}:\n{}",
        second.screen()
    );
}

#[test]
fn a_console_to_a_missing_or_stopped_vmi_says_so() {
    let server = Server::start();
    let err = virtctl(&server.kubeconfig(), &["console", "nope", "--timeout", "0"]).fails();
    assert!(err.contains("\"nope\" not found"), "{err}");
    let halted = r#"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "off"},
      "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}"#;
    server
        .kubectl()
        .run_stdin(&["create", "-f", "-"], halted)
        .ok();
    let err = virtctl(&server.kubeconfig(), &["console", "off", "--timeout", "0"]).fails();
    assert!(err.contains("\"off\" not found"), "{err}");
}

//! `virtctl ssh`, `virtctl scp` and the manual's `~/.ssh/config` ProxyCommand, with the
//! system OpenSSH client against the test guest's dropbear (issue 7 items 3, 4, 8).

use std::process::Command;
use std::time::Duration;

use oxivirt_e2e::virtctl_bin;

use crate::common::{
    run_with_timeout, shared_guest, ssh_key, ssh_options, virtctl, GUEST, GUEST_USER,
};

fn args<'a>(head: &[&'a str], options: &'a [String], tail: &[&'a str]) -> Vec<&'a str> {
    let mut all = head.to_vec();
    all.extend(options.iter().map(String::as_str));
    all.extend_from_slice(tail);
    all
}

#[test]
fn virtctl_ssh_with_a_key_runs_a_command_in_the_guest_in_every_target_form() {
    let server = shared_guest();
    let options = ssh_options();
    let target = format!("{GUEST_USER}@vm/{GUEST}");
    let out = virtctl(
        &server.kubeconfig(),
        &args(
            &["ssh"],
            &options,
            &[&target, "-c", "echo ssh-$((6*7)) $(id -un) $(hostname)"],
        ),
    )
    .ok();
    assert_eq!(out.trim(), format!("ssh-42 {GUEST_USER} {GUEST}"));
    // USER@NAME (a VMI of that name), namespace from -n; -l instead of USER@.
    let short = format!("{GUEST_USER}@{GUEST}");
    let out = virtctl(
        &server.kubeconfig(),
        &args(
            &["-n", "default", "ssh"],
            &options,
            &[&short, "-c", "id -un"],
        ),
    )
    .ok();
    assert_eq!(out.trim(), GUEST_USER);
    let full = format!("vmi/{GUEST}.default");
    let out = virtctl(
        &server.kubeconfig(),
        &args(
            &["ssh", "-l", GUEST_USER],
            &options,
            &[&full, "-c", "id -un"],
        ),
    )
    .ok();
    assert_eq!(out.trim(), GUEST_USER);
    // --known-hosts names the file ssh records the guest's host key in.
    let known = server.scratch().join("kubevirt_known_hosts");
    let known_arg = known.display().to_string();
    let key = ssh_key().display().to_string();
    virtctl(
        &server.kubeconfig(),
        &[
            "ssh",
            "-i",
            &key,
            "--known-hosts",
            &known_arg,
            "-t",
            "-oStrictHostKeyChecking=accept-new",
            "-t",
            "-oLogLevel=ERROR",
            &target,
            "-c",
            "true",
        ],
    )
    .ok();
    // Debian hashes known host names: ask ssh-keygen to find the entry.
    let found = Command::new("ssh-keygen")
        .args(["-F", &format!("vm/{GUEST}.default"), "-f", &known_arg])
        .output()
        .expect("ssh-keygen -F");
    assert!(
        found.status.success(),
        "no host key recorded in {known_arg}"
    );
    // The remote command's exit status is virtctl's.
    let run = virtctl(
        &server.kubeconfig(),
        &args(&["ssh"], &options, &[&target, "-c", "exit 7"]),
    );
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
}

#[test]
fn the_manuals_ssh_config_proxy_command_logs_in_with_the_system_ssh() {
    let server = shared_guest();
    let virtctl_dir = virtctl_bin()
        .parent()
        .expect("virtctl has a directory")
        .to_path_buf();
    // Exactly the manual's two lines (§7.4.3), virtctl found through PATH.
    let config = server.write_file(
        "ssh_config",
        "Host vm/*\n  ProxyCommand virtctl port-forward --stdio=true %h %p\n",
    );
    let path = format!(
        "{}:{}",
        virtctl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ssh = Command::new("ssh");
    ssh.arg("-F")
        .arg(&config)
        .arg("-i")
        .arg(ssh_key())
        .args([
            "-oStrictHostKeyChecking=no",
            "-oUserKnownHostsFile=/dev/null",
            "-oLogLevel=ERROR",
            "-oBatchMode=yes",
        ])
        .arg(format!("{GUEST_USER}@vm/{GUEST}.default"))
        .arg("echo proxied-$((6*7))")
        .env("PATH", path)
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(std::process::Stdio::null());
    let out = run_with_timeout(ssh, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "proxied-42");
}

#[test]
fn virtctl_scp_copies_files_both_ways_and_directories_recursively_with_matching_checksums() {
    let server = shared_guest();
    let options = ssh_options();
    let dir = server.scratch().join("scp");
    std::fs::create_dir_all(dir.join("tree/sub")).expect("mkdir");
    // 200 KiB that differ from run to run: a stale copy cannot pass.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let payload: Vec<u8> = (0..200 * 1024u32)
        .map(|i| ((i as u128 * 2654435761 + seed) >> 7) as u8)
        .collect();
    std::fs::write(dir.join("up.bin"), &payload).expect("write");
    std::fs::write(dir.join("tree/a.txt"), "alpha\n").expect("write");
    std::fs::write(dir.join("tree/sub/b.txt"), "beta\n").expect("write");
    let up = dir.join("up.bin").display().to_string();
    let down = dir.join("down.bin").display().to_string();
    let remote = format!("{GUEST_USER}@vm/{GUEST}:/tmp/up.bin");
    let kc = server.kubeconfig();
    virtctl(&kc, &args(&["scp"], &options, &[&up, &remote])).ok();
    // The guest sees the same bytes (its own sha256sum), and they come back unchanged.
    let target = format!("{GUEST_USER}@vm/{GUEST}");
    let sum = virtctl(
        &kc,
        &args(
            &["ssh"],
            &options,
            &[&target, "-c", "sha256sum /tmp/up.bin"],
        ),
    )
    .ok();
    let local_sum = Command::new("sha256sum")
        .arg(&up)
        .output()
        .expect("sha256sum");
    let local_sum = String::from_utf8_lossy(&local_sum.stdout);
    assert_eq!(
        sum.split_whitespace().next(),
        local_sum.split_whitespace().next(),
        "{sum} vs {local_sum}"
    );
    virtctl(&kc, &args(&["scp"], &options, &[&remote, &down])).ok();
    assert!(
        std::fs::read(&down).expect("downloaded") == payload,
        "the copy differs"
    );

    let tree = dir.join("tree").display().to_string();
    let remote_dir = format!("{GUEST_USER}@vm/{GUEST}.default:/tmp/");
    virtctl(&kc, &args(&["scp", "-r"], &options, &[&tree, &remote_dir])).ok();
    let back = dir.join("back").display().to_string();
    let from = format!("vm/{GUEST}:/tmp/tree");
    virtctl(
        &kc,
        &args(&["scp", "-r", "-l", GUEST_USER], &options, &[&from, &back]),
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("back/a.txt")).expect("a"),
        "alpha\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("back/sub/b.txt")).expect("b"),
        "beta\n"
    );
}

#[test]
fn port_forward_to_a_missing_vm_fails_with_the_servers_message() {
    let server = shared_guest();
    let err = virtctl(
        &server.kubeconfig(),
        &["port-forward", "--stdio=true", "vm/nope.default", "22"],
    )
    .fails();
    assert!(err.contains("\"nope\" not found"), "{err}");
    let err = virtctl(&server.kubeconfig(), &["scp", "a", "b"]).fails();
    assert!(
        err.contains("none of the two provided locations seems to be a remote location"),
        "{err}"
    );
}

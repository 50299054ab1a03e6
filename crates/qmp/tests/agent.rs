//! The guest-agent client against the fake agent, and against the real `qemu-ga` (run on
//! the host over a Unix socket, with state-changing commands blocked) when installed.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxivirt_qmp::agent::{AgentOptions, ExecCommand, FsfreezeStatus, GuestAgent, IpAddressType};
use oxivirt_qmp::fake::{FakeExecResult, FakeGuestAgent, FakeReply};
use oxivirt_qmp::Error;
use serde_json::json;

use crate::support::{find_program, Sandbox};

fn quick() -> AgentOptions {
    AgentOptions {
        sync_timeout: Duration::from_millis(200),
        command_timeout: Duration::from_secs(2),
        ..AgentOptions::default()
    }
}

async fn started() -> (Sandbox, FakeGuestAgent, GuestAgent) {
    let sandbox = Sandbox::new();
    let fake = FakeGuestAgent::start(sandbox.path("qga.sock"))
        .await
        .expect("fake agent");
    let agent = GuestAgent::new(fake.path(), quick());
    (sandbox, fake, agent)
}

#[tokio::test]
async fn first_command_is_preceded_by_a_delimited_sync_and_later_ones_are_not() {
    let (_sandbox, fake, agent) = started().await;
    agent.ping().await.expect("ping");
    agent.ping().await.expect("ping");
    assert_eq!(
        fake.command_names(),
        vec!["guest-sync-delimited", "guest-ping", "guest-ping"]
    );
    let sync = &fake.commands()[0];
    assert!(sync.arguments["id"]
        .as_u64()
        .is_some_and(|id| id <= i64::MAX as u64));
}

#[tokio::test]
async fn absent_agent_times_out_at_the_sync_and_works_once_it_runs() {
    let (_sandbox, fake, agent) = started().await;
    fake.set_responding(false);
    let started = Instant::now();
    let error = agent.ping().await.expect_err("nobody answers");
    assert!(
        matches!(&error, Error::Timeout { command, .. } if command == "guest-ping"),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the sync timeout"
    );
    fake.set_responding(true);
    agent.ping().await.expect("agent came up");
    assert_eq!(
        fake.command_names().last().map(String::as_str),
        Some("guest-ping")
    );
}

#[tokio::test]
async fn late_reply_after_a_timeout_is_never_taken_for_a_later_answer() {
    let (_sandbox, fake, agent) = started().await;
    fake.script_once(
        "guest-get-host-name",
        FakeReply::ok(json!({"host-name": "stale"})).after(Duration::from_millis(150)),
    );
    let error = agent
        .execute_with_timeout("guest-get-host-name", None, Duration::from_millis(50))
        .await
        .expect_err("too slow");
    assert!(error.is_timeout());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        agent.get_host_name().await.expect("host name"),
        "fake-guest"
    );
    let syncs = fake
        .command_names()
        .iter()
        .filter(|n| *n == "guest-sync-delimited")
        .count();
    assert_eq!(syncs, 2, "the timeout forced a resync");
}

#[tokio::test]
async fn stale_partial_data_is_flushed_by_the_sentinel_on_resync() {
    let sandbox = Sandbox::new();
    let fake = FakeGuestAgent::start(sandbox.path("qga.sock"))
        .await
        .expect("fake agent");
    let agent = GuestAgent::new(
        fake.path(),
        AgentOptions {
            sync_every_command: true,
            ..quick()
        },
    );
    agent.ping().await.expect("ping");
    fake.inject_raw(b"{\"return\": {\"half of an old rep");
    fake.inject_raw(b"ly\"}}\n{\"return\": 12345}\n");
    assert_eq!(
        agent.fsfreeze_status().await.expect("status"),
        FsfreezeStatus::Thawed
    );
}

#[tokio::test]
async fn cancelled_command_forces_a_resync_before_the_next_one() {
    let (_sandbox, fake, agent) = started().await;
    agent.ping().await.expect("ping");
    fake.script_once(
        "guest-get-osinfo",
        FakeReply::ok(json!({})).after(Duration::from_millis(100)),
    );
    let cancelled = tokio::time::timeout(Duration::from_millis(20), agent.get_osinfo()).await;
    assert!(cancelled.is_err());
    let os = agent.get_osinfo().await.expect("osinfo");
    assert_eq!(os.id.as_deref(), Some("debian"));
    let syncs = fake
        .command_names()
        .iter()
        .filter(|n| *n == "guest-sync-delimited")
        .count();
    assert_eq!(syncs, 2);
}

#[tokio::test]
async fn exec_runs_a_program_and_returns_its_decoded_output() {
    let (_sandbox, fake, agent) = started().await;
    let status = agent
        .run(
            &ExecCommand::new("/bin/echo").arg("hello").arg("world"),
            Duration::from_secs(2),
        )
        .await
        .expect("run");
    assert!(status.exited);
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(status.stdout, b"hello world\n");
    fake.set_exec_result(FakeExecResult {
        exit_code: 3,
        stdout: Vec::new(),
        stderr: b"\xffbad".to_vec(),
    });
    let pid = agent
        .exec(&ExecCommand::new("false").input(b"in".to_vec()))
        .await
        .expect("exec");
    let failed = agent.exec_status(pid).await.expect("status");
    assert_eq!(
        (failed.exit_code, failed.stderr.as_slice()),
        (Some(3), &b"\xffbad"[..])
    );
    let sent = fake
        .commands()
        .into_iter()
        .rfind(|c| c.name == "guest-exec")
        .expect("exec sent");
    assert_eq!(sent.arguments["input-data"], "aW4=");
}

#[tokio::test]
async fn fsfreeze_freezes_and_thaws() {
    let (_sandbox, fake, agent) = started().await;
    assert_eq!(
        agent.fsfreeze_status().await.expect("status"),
        FsfreezeStatus::Thawed
    );
    assert_eq!(agent.fsfreeze_freeze().await.expect("freeze"), 1);
    assert!(fake.is_frozen());
    assert_eq!(
        agent.fsfreeze_status().await.expect("status"),
        FsfreezeStatus::Frozen
    );
    assert_eq!(agent.fsfreeze_thaw().await.expect("thaw"), 1);
    assert_eq!(
        agent.fsfreeze_status().await.expect("status"),
        FsfreezeStatus::Thawed
    );
}

#[tokio::test]
async fn password_is_sent_base64_encoded_and_keys_are_added_and_removed() {
    let (_sandbox, fake, agent) = started().await;
    agent
        .set_user_password("root", "s3cret", false)
        .await
        .expect("password");
    assert_eq!(fake.password("root"), Some(("s3cret".to_owned(), false)));
    let sent = fake
        .wait_for_command("guest-set-user-password", Duration::from_secs(1))
        .await
        .expect("sent");
    assert_eq!(sent.arguments["password"], "czNjcmV0");
    let keys = vec![
        "ssh-ed25519 AAAA one".to_owned(),
        "ssh-ed25519 BBBB two".to_owned(),
    ];
    agent
        .ssh_add_authorized_keys("fedora", &keys, false)
        .await
        .expect("add");
    agent
        .ssh_remove_authorized_keys("fedora", &keys[..1])
        .await
        .expect("remove");
    assert_eq!(fake.authorized_keys("fedora"), vec!["ssh-ed25519 BBBB two"]);
}

#[tokio::test]
async fn guest_information_queries_decode() {
    let (_sandbox, fake, agent) = started().await;
    fake.set_users(json!([{"user": "alice", "login-time": 1700000000.5}]));
    fake.set_host_name("vm-1");
    let info = agent.info().await.expect("info");
    assert!(info.supports("guest-exec") && !info.supports("guest-file-open"));
    assert_eq!(agent.get_host_name().await.expect("host"), "vm-1");
    assert_eq!(agent.get_users().await.expect("users")[0].user, "alice");
    assert_eq!(agent.get_fsinfo().await.expect("fsinfo")[0].fs_type, "ext4");
    let interfaces = agent.network_get_interfaces().await.expect("interfaces");
    assert_eq!(
        interfaces[0].ip_addresses[0].ip_address_type,
        IpAddressType::Ipv4
    );
}

#[tokio::test]
async fn refused_command_reports_the_agent_error_class() {
    let (_sandbox, fake, agent) = started().await;
    let error = agent
        .execute("guest-file-open", json!({"path": "/etc/passwd"}))
        .await
        .expect_err("unknown");
    assert!(error.is_command_not_found(), "{error:?}");
    fake.script_once("guest-ping", FakeReply::error("GenericError", "frozen"));
    assert_eq!(
        agent.ping().await.expect_err("refused").class(),
        Some("GenericError")
    );
    agent
        .ping()
        .await
        .expect("a refusal does not desynchronise the channel");
}

#[tokio::test]
async fn closed_socket_is_reported_and_the_next_call_reconnects() {
    let (_sandbox, fake, agent) = started().await;
    agent.ping().await.expect("ping");
    fake.disconnect_all();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let error = agent.ping().await.expect_err("socket closed");
    assert!(error.is_closed(), "{error:?}");
    agent.ping().await.expect("reconnected");
}

#[tokio::test]
async fn concurrent_callers_are_served_one_at_a_time() {
    let (_sandbox, fake, agent) = started().await;
    let agent = Arc::new(agent);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.get_host_name().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("host name"), "fake-guest");
    }
    assert_eq!(
        fake.command_names()
            .iter()
            .filter(|n| *n == "guest-get-host-name")
            .count(),
        8
    );
}

#[tokio::test]
async fn missing_agent_socket_is_a_connect_error() {
    let sandbox = Sandbox::new();
    let agent = GuestAgent::new(
        sandbox.path("none.sock"),
        AgentOptions {
            connect_timeout: Duration::ZERO,
            ..quick()
        },
    );
    assert!(matches!(
        agent.ping().await.expect_err("no socket"),
        Error::Connect { .. }
    ));
}

/// Commands that would change the host if the real agent ran them here.
const BLOCKED: &str = "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,\
guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-fstrim,guest-set-vcpus,\
guest-set-memory-blocks,guest-set-user-password,guest-file-open,guest-file-write,guest-ssh-add-authorized-keys,\
guest-ssh-remove-authorized-keys,guest-network-get-interfaces,guest-get-fsinfo,guest-get-disks";

#[tokio::test]
async fn real_qemu_ga_answers_sync_ping_info_osinfo_and_exec() {
    let Some(qemu_ga) = find_program(
        "qemu-ga",
        "real_qemu_ga_answers_sync_ping_info_osinfo_and_exec",
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    let socket = sandbox.path("qga.sock");
    let mut child = tokio::process::Command::new(qemu_ga)
        .arg("-m")
        .arg("unix-listen")
        .arg("-p")
        .arg(&socket)
        .arg("-f")
        .arg(sandbox.path("qga.pid"))
        .arg("-t")
        .arg(sandbox.dir())
        .arg("-b")
        .arg(BLOCKED)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn qemu-ga");
    let agent = GuestAgent::new(
        &socket,
        AgentOptions {
            connect_timeout: Duration::from_secs(5),
            ..AgentOptions::default()
        },
    );
    agent.ping().await.expect("ping the real agent");
    let info = agent.info().await.expect("info");
    assert!(info.supports("guest-ping"));
    assert!(
        !info.supports("guest-fsfreeze-freeze"),
        "blocked commands are reported disabled"
    );
    let os = agent.get_osinfo().await.expect("osinfo");
    assert!(os.kernel_release.is_some());
    assert!(!agent.get_host_name().await.expect("host name").is_empty());
    let echoed = agent
        .run(
            &ExecCommand::new("/bin/echo").arg("hi"),
            Duration::from_secs(5),
        )
        .await
        .expect("exec");
    assert_eq!(
        (echoed.exit_code, echoed.stdout.as_slice()),
        (Some(0), &b"hi\n"[..])
    );
    assert_eq!(
        agent.fsfreeze_status().await.expect("status"),
        FsfreezeStatus::Thawed
    );
    let refused = agent.fsfreeze_freeze().await.expect_err("blocked");
    assert!(refused.is_command_not_found());
    agent.sync().await.expect("explicit resync");
    agent.ping().await.expect("ping after resync");
    eprintln!("real qemu-ga {} passed", info.version);
    child.kill().await.expect("stop qemu-ga");
}

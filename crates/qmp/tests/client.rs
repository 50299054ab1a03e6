//! The QMP client against the fake QMP server.

use std::time::Duration;

use oxivirt_qmp::fake::{FakeQmpOptions, FakeQmpServer, FakeReply, PowerdownBehavior};
use oxivirt_qmp::{
    ActionPolicy, CloseReason, Error, EventKind, PanicAction, QmpClient, QmpOptions, RebootAction,
    RunState, ShutdownCause,
};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::support::Sandbox;

const WAIT: Duration = Duration::from_secs(5);

async fn started() -> (Sandbox, FakeQmpServer, QmpClient) {
    let sandbox = Sandbox::new();
    let fake = FakeQmpServer::start(sandbox.path("qmp.sock"))
        .await
        .expect("fake starts");
    let client = QmpClient::connect(fake.path())
        .await
        .expect("client connects");
    (sandbox, fake, client)
}

#[tokio::test]
async fn connect_reads_the_greeting_and_negotiates_capabilities_first() {
    let (_sandbox, fake, client) = started().await;
    assert_eq!(client.greeting().version.qemu.major, 7);
    assert_eq!(client.greeting().capabilities, vec!["oob".to_owned()]);
    let timings = client.timings();
    assert!(timings.connected <= timings.greeting && timings.greeting <= timings.negotiated);
    assert_eq!(fake.command_names(), vec!["qmp_capabilities"]);
}

#[tokio::test]
async fn cont_and_stop_change_the_run_state_and_emit_resume_and_stop() {
    let (_sandbox, fake, client) = started().await;
    let mut events = client.events();
    assert_eq!(
        client.query_status().await.expect("status").status,
        RunState::Prelaunch
    );
    client.cont().await.expect("cont");
    let status = client.query_status().await.expect("status");
    assert!(status.running && status.status.is_running());
    client.stop().await.expect("stop");
    assert_eq!(
        client.query_status().await.expect("status").status,
        RunState::Paused
    );
    assert_eq!(fake.run_state(), RunState::Paused);
    assert_eq!(
        events.next().await.expect("event").kind(),
        EventKind::Resume
    );
    assert_eq!(events.next().await.expect("event").kind(), EventKind::Stop);
}

#[tokio::test]
async fn concurrent_commands_each_get_their_own_reply_even_out_of_order() {
    let (_sandbox, fake, client) = started().await;
    fake.script_once(
        "query-version",
        FakeReply::ok(json!({"qemu": {"major": 9, "minor": 1, "micro": 0}, "package": ""}))
            .after(Duration::from_millis(150)),
    );
    let slow = client.query_version();
    let fast = async {
        let status = client.query_status().await;
        (status, std::time::Instant::now())
    };
    let (version, (status, fast_done)) = tokio::join!(slow, fast);
    let slow_done = std::time::Instant::now();
    assert_eq!(version.expect("version").qemu.major, 9);
    assert_eq!(status.expect("status").status, RunState::Prelaunch);
    assert!(
        fast_done < slow_done,
        "the fast reply was not held up by the slow one"
    );
    let ids: Vec<Value> = fake.commands().into_iter().filter_map(|c| c.id).collect();
    assert_eq!(ids.len(), 3, "every request carries an id: {ids:?}");
}

#[tokio::test]
async fn error_reply_names_the_command_and_keeps_the_qmp_class() {
    let (_sandbox, _fake, client) = started().await;
    let error = client.device_del("nope").await.expect_err("unknown device");
    assert_eq!(error.class(), Some("DeviceNotFound"));
    assert!(matches!(&error, Error::Command { command, .. } if command == "device_del"));
    assert_eq!(
        error.to_string(),
        "device_del failed: DeviceNotFound: Device 'nope' not found"
    );
    let missing = client
        .execute("no-such-command", None)
        .await
        .expect_err("unknown command");
    assert!(missing.is_command_not_found());
}

#[tokio::test]
async fn unanswered_command_times_out_and_the_connection_stays_usable() {
    let (_sandbox, fake, client) = started().await;
    fake.script_once("query-block", FakeReply::NoReply);
    let error = client
        .execute_with_timeout("query-block", None, Duration::from_millis(50))
        .await
        .expect_err("no reply");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.to_string(), "query-block got no reply within 50ms");
    assert!(client.query_block().await.expect("query-block").is_empty());
}

#[tokio::test]
async fn cancelled_command_does_not_disturb_later_ones() {
    let (_sandbox, fake, client) = started().await;
    fake.script_once(
        "query-status",
        FakeReply::ok(json!({"status": "running", "running": true}))
            .after(Duration::from_millis(100)),
    );
    let cancelled = tokio::time::timeout(Duration::from_millis(10), client.query_status()).await;
    assert!(cancelled.is_err());
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The late reply arrived for nobody and was dropped; the next reply is the right one.
    assert_eq!(
        client.query_status().await.expect("status").status,
        RunState::Prelaunch
    );
}

#[tokio::test]
async fn powerdown_of_a_running_guest_emits_powerdown_then_shutdown_and_closes_cleanly() {
    let (_sandbox, fake, client) = started().await;
    client.cont().await.expect("cont");
    let mut events = client.events();
    client.system_powerdown().await.expect("powerdown");
    assert_eq!(
        events.next().await.expect("event").kind(),
        EventKind::Powerdown
    );
    let shutdown = events.next().await.expect("event");
    assert!(
        matches!(shutdown.kind(), EventKind::Shutdown(info) if info.guest && info.reason == ShutdownCause::GuestShutdown)
    );
    assert_eq!(
        events.next().await,
        None,
        "the stream ends with the connection"
    );
    let closed = client.closed().await;
    assert!(!closed.is_crash());
    assert_eq!(closed.reason, CloseReason::Eof);
    assert!(closed.saw_event("POWERDOWN"));
    assert!(fake.wait_exited(WAIT).await);
    assert!(client.query_status().await.expect_err("closed").is_closed());
}

#[tokio::test]
async fn guest_that_ignores_acpi_only_sees_powerdown() {
    let sandbox = Sandbox::new();
    let options = FakeQmpOptions {
        powerdown: PowerdownBehavior::Ignore,
        ..FakeQmpOptions::default()
    };
    let fake = FakeQmpServer::start_with(sandbox.path("qmp.sock"), options)
        .await
        .expect("fake");
    let client = QmpClient::connect(fake.path()).await.expect("connect");
    client.cont().await.expect("cont");
    let mut events = client.events();
    client.system_powerdown().await.expect("powerdown");
    events
        .wait_for("POWERDOWN", WAIT)
        .await
        .expect("powerdown event");
    let shutdown = events
        .wait_for("SHUTDOWN", Duration::from_millis(100))
        .await;
    assert!(shutdown.expect_err("no shutdown").is_timeout());
    assert!(!client.is_closed());
}

#[tokio::test]
async fn quit_returns_once_qemu_is_gone_and_reports_a_host_shutdown() {
    let (_sandbox, fake, client) = started().await;
    client.quit().await.expect("quit");
    assert!(client.is_closed());
    let closed = client.closed().await;
    assert_eq!(
        closed.last_shutdown.expect("shutdown seen").reason,
        ShutdownCause::HostQmpQuit
    );
    assert!(fake.has_exited());
    assert!(
        !fake.path().exists(),
        "the socket is removed like a real exit"
    );
}

#[tokio::test]
async fn killed_qemu_is_a_crash_and_fails_commands_in_flight() {
    let (_sandbox, fake, client) = started().await;
    client.cont().await.expect("cont");
    fake.script_once("query-status", FakeReply::NoReply);
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.query_status().await }
    });
    fake.wait_for_command("query-status", WAIT)
        .await
        .expect("sent");
    fake.crash();
    let error = in_flight
        .await
        .expect("task")
        .expect_err("connection dropped");
    assert!(error.is_closed(), "{error:?}");
    let closed = client.closed().await;
    assert!(closed.is_crash());
    assert!(closed.saw_event("RESUME"));
    assert!(client.cont().await.expect_err("closed").is_closed());
    assert_eq!(client.events().next().await, None);
}

#[tokio::test]
async fn injected_events_reach_every_subscriber_and_the_history() {
    let (_sandbox, fake, client) = started().await;
    let mut first = client.events();
    let mut second = client.events();
    fake.emit("GUEST_PANICKED", json!({"action": "pause"}));
    for events in [&mut first, &mut second] {
        let event = events.next().await.expect("event");
        assert!(
            matches!(event.kind(), EventKind::GuestPanicked { action, .. } if action == "pause")
        );
        assert!(event.timestamp.to_system_time().is_some());
    }
    assert_eq!(
        client.recent_events().last().map(|e| e.name.as_str()),
        Some("GUEST_PANICKED")
    );
}

#[tokio::test]
async fn device_add_then_delete_waits_for_device_deleted() {
    let (_sandbox, fake, client) = started().await;
    let mut properties = Map::new();
    properties.insert("drive".into(), json!("disk0"));
    client
        .blockdev_add(json!({"driver": "null-co", "node-name": "disk0"}))
        .await
        .expect("blockdev-add");
    client
        .device_add("virtio-blk-pci", "vd0", properties.clone())
        .await
        .expect("device_add");
    assert_eq!(fake.devices(), vec!["vd0"]);
    let duplicate = client.device_add("virtio-blk-pci", "vd0", properties).await;
    assert_eq!(
        duplicate.expect_err("duplicate").class(),
        Some("GenericError")
    );
    let sent = fake
        .wait_for_command("device_add", WAIT)
        .await
        .expect("recorded");
    assert_eq!(
        sent.arguments,
        json!({"drive": "disk0", "driver": "virtio-blk-pci", "id": "vd0"})
    );
    client
        .device_del_and_wait("vd0", WAIT)
        .await
        .expect("deleted");
    client.blockdev_del("disk0").await.expect("blockdev-del");
    assert!(fake.devices().is_empty() && fake.block_nodes().is_empty());
}

#[tokio::test]
async fn ringbuf_read_returns_console_bytes_exactly_even_when_not_utf8() {
    let (_sandbox, fake, client) = started().await;
    let console = b"boot\xff\xfe ok\n\0end".to_vec();
    fake.push_ringbuf("console", &console);
    assert_eq!(
        client.ringbuf_read("console", 5).await.expect("read"),
        b"boot\xff"
    );
    assert_eq!(
        client.ringbuf_read("console", 1 << 20).await.expect("read"),
        &console[5..]
    );
    assert!(client
        .ringbuf_read("console", 100)
        .await
        .expect("read")
        .is_empty());
    assert!(client.ringbuf_read("serial9", 100).await.is_err());
}

#[tokio::test]
async fn typed_wrappers_send_qemu_arguments_and_decode_replies() {
    let (sandbox, fake, client) = started().await;
    let policy = ActionPolicy {
        reboot: Some(RebootAction::Shutdown),
        panic: Some(PanicAction::Pause),
        ..Default::default()
    };
    client.set_action(policy).await.expect("set-action");
    let png = sandbox.path("screen.png");
    client.screendump(&png).await.expect("screendump");
    assert_eq!(&std::fs::read(&png).expect("png written")[..4], b"\x89PNG");
    assert_eq!(
        client.query_cpus_fast().await.expect("cpus")[0].cpu_index,
        0
    );
    assert_eq!(
        client
            .human_monitor_command("info status")
            .await
            .expect("hmp"),
        ""
    );
    assert_eq!(
        client.query_migrate().await.expect("migrate info").status,
        None
    );
    client.migrate("unix:/nowhere").await.expect("migrate");
    assert!(client
        .query_migrate()
        .await
        .expect("migrate info")
        .status
        .is_some());
    client.system_reset().await.expect("reset");
    let by_name = |name: &str| {
        fake.commands()
            .into_iter()
            .find(|c| c.name == name)
            .expect("recorded")
            .arguments
    };
    assert_eq!(
        by_name("set-action"),
        json!({"reboot": "shutdown", "panic": "pause"})
    );
    assert_eq!(by_name("screendump")["format"], "png");
    assert_eq!(
        by_name("human-monitor-command"),
        json!({"command-line": "info status"})
    );
    fake.script("query-block", FakeReply::ok(json!([{"device": "", "qdev": "vd0", "locked": false, "removable": false, "type": "unknown"}])));
    assert_eq!(
        client.query_block().await.expect("blocks")[0]
            .qdev
            .as_deref(),
        Some("vd0")
    );
}

#[tokio::test]
async fn reply_of_the_wrong_shape_is_a_decode_error_naming_the_command() {
    let (_sandbox, fake, client) = started().await;
    fake.script("query-status", FakeReply::ok(json!("running")));
    let error = client.query_status().await.expect_err("wrong shape");
    assert!(
        matches!(&error, Error::Decode { command, .. } if command == "query-status"),
        "{error:?}"
    );
}

#[tokio::test]
async fn commands_before_negotiation_are_refused_as_qemu_does() {
    let sandbox = Sandbox::new();
    let fake = FakeQmpServer::start(sandbox.path("qmp.sock"))
        .await
        .expect("fake");
    let stream = UnixStream::connect(fake.path()).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    assert!(lines
        .next_line()
        .await
        .expect("read")
        .expect("greeting")
        .contains("\"QMP\""));
    write
        .write_all(b"{\"execute\": \"query-status\", \"id\": 1}\n")
        .await
        .expect("write");
    let reply = lines.next_line().await.expect("read").expect("reply");
    assert!(
        reply.contains("CommandNotFound") && reply.contains("qmp_capabilities"),
        "{reply}"
    );
}

#[tokio::test]
async fn connect_waits_for_a_socket_that_appears_later() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("late.sock");
    let server = tokio::spawn({
        let path = path.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            FakeQmpServer::start(path).await.expect("fake")
        }
    });
    let client = QmpClient::connect_with(
        &path,
        QmpOptions {
            connect_timeout: WAIT,
            ..QmpOptions::default()
        },
    )
    .await;
    let _fake = server.await.expect("server task");
    assert!(client.is_ok(), "{client:?}");
}

#[tokio::test]
async fn connect_to_a_missing_socket_fails_with_the_path() {
    let sandbox = Sandbox::new();
    let options = QmpOptions {
        connect_timeout: Duration::from_millis(30),
        ..QmpOptions::default()
    };
    let error = QmpClient::connect_with(sandbox.path("absent.sock"), options)
        .await
        .expect_err("no socket");
    assert!(matches!(error, Error::Connect { .. }));
    assert!(error.to_string().contains("absent.sock"));
}

#[tokio::test]
async fn silent_server_times_out_waiting_for_the_greeting() {
    let sandbox = Sandbox::new();
    let listener = UnixListener::bind(sandbox.path("mute.sock")).expect("bind");
    let options = QmpOptions {
        greeting_timeout: Duration::from_millis(50),
        ..QmpOptions::default()
    };
    let (client, _accepted) = tokio::join!(
        QmpClient::connect_with(sandbox.path("mute.sock"), options),
        listener.accept()
    );
    let error = client.expect_err("no greeting");
    assert!(
        matches!(&error, Error::Timeout { command, .. } if command == "greeting"),
        "{error:?}"
    );
}

#[tokio::test]
async fn non_qmp_peer_is_a_protocol_error() {
    let sandbox = Sandbox::new();
    let listener = UnixListener::bind(sandbox.path("http.sock")).expect("bind");
    let serve = async {
        let (mut stream, _) = listener.accept().await.expect("accept");
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\n")
            .await
            .expect("write");
        stream
    };
    let (client, _stream) = tokio::join!(QmpClient::connect(sandbox.path("http.sock")), serve);
    assert!(matches!(
        client.expect_err("not qmp"),
        Error::Protocol { .. }
    ));
}

#[tokio::test]
async fn garbage_lines_between_replies_are_skipped() {
    let sandbox = Sandbox::new();
    let listener = UnixListener::bind(sandbox.path("noisy.sock")).expect("bind");
    let serve = async {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 8, \"minor\": 0, \"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}\r\n").await.expect("greet");
        while let Ok(Some(line)) = lines.next_line().await {
            let request: Value = serde_json::from_str(&line).expect("json request");
            let reply =
                json!({"return": {"status": "running", "running": true}, "id": request["id"]});
            write
                .write_all(b"\r\nnot json at all\r\n{\"unexpected\": true}\r\n")
                .await
                .expect("noise");
            write
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .expect("reply");
        }
    };
    let client = async {
        let client = QmpClient::connect(sandbox.path("noisy.sock"))
            .await
            .expect("connect");
        client.query_status().await.expect("status")
    };
    let status = tokio::select! {
        status = client => status,
        _ = serve => panic!("server ended first"),
    };
    assert_eq!(status.status, RunState::Running);
}

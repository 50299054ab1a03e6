//! The guest agent's subresources against the test guest's real qemu-guest-agent (issue 7
//! item 6): `virtctl userlist` / `fslist` show what the guest reports, and `freeze` /
//! `unfreeze` (API only, as upstream) round-trip, including the automatic thaw.

use std::time::Duration;

use oxivirt_e2e::{virtctl_bin, wait_until, Kubectl};
use serde_json::Value;

use crate::common::{get, virtctl, vm, wait_banner, wait_vmi_running, BOOT};

#[path = "../access/pty.rs"]
#[allow(
    dead_code,
    reason = "shared with the access tests, which use all of it"
)]
mod pty;

const WAIT: Duration = Duration::from_secs(90);

fn subresource(name: &str, verb: &str) -> String {
    format!("/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/{name}/{verb}")
}

/// `PUT` of a VMI subresource with `body`, through kubectl (there is no virtctl command
/// for freeze/unfreeze upstream either).
fn put(k: &Kubectl, name: &str, verb: &str, body: &str) -> oxivirt_e2e::Run {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), body).expect("write the body");
    let path = file.path().display().to_string();
    k.run(&["replace", "--raw", &subresource(name, verb), "-f", &path])
}

fn json_of(run: oxivirt_e2e::Run) -> Value {
    let out = run.ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn userlist_and_fslist_show_the_guest_and_freeze_unfreeze_round_trip() {
    let server = oxivirt_e2e::Server::start();
    let k = server.kubectl();
    k.create(&vm("agent", "Always", None));
    wait_vmi_running(&k, "agent");
    wait_banner(&k, "agent");
    wait_until("the VMI's AgentConnected condition", BOOT, || {
        let vmi = get(&k, "vmi", "agent")?;
        let conditions = vmi["status"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .any(|c| c["type"] == "AgentConnected" && c["status"] == "True")
            .then_some(())
    });

    // Filesystems: the test guest mounts its ext4 `oxidata` partition on /data.
    let filesystems = json_of(virtctl(&server, &["fslist", "agent"]));
    let data = filesystems["items"]
        .as_array()
        .and_then(|items| items.iter().find(|f| f["mountPoint"] == "/data"))
        .unwrap_or_else(|| panic!("no /data in {filesystems}"))
        .clone();
    assert_eq!(data["fileSystemType"], "ext4", "{data}");
    assert!(
        data["totalBytes"].as_u64().unwrap_or(0) > 10 << 20,
        "{data}"
    );
    assert!(
        data["diskName"]
            .as_str()
            .is_some_and(|d| d.starts_with("vd")),
        "{data}"
    );

    // Users: nobody yet; then root logs in on the serial console and is listed.
    let users = json_of(virtctl(&server, &["userlist", "agent"]));
    assert!(users["items"].is_array(), "{users}");
    let kubeconfig = server.kubeconfig();
    let mut console = pty::Terminal::spawn(
        &virtctl_bin(),
        &["console", "agent"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let at = console.expect("Successfully connected to agent console", 0, WAIT);
    console.send(b"\r");
    let at = console.expect("oxivirt-test-guest login: ", at, WAIT);
    console.send(b"root\r");
    console.expect("BusyBox", at, WAIT);
    let users = wait_until("root in the user list", WAIT, || {
        let run = virtctl(&server, &["userlist", "agent"]);
        run.stdout
            .contains("\"userName\": \"root\"")
            .then_some(run.stdout)
    });
    assert!(users.contains("\"loginTime\""), "{users}");

    // Freeze: a frozen agent refuses everything but thaw, so fslist fails until unfreeze.
    put(&k, "agent", "freeze", r#"{"unfreezeTimeout":"5m"}"#).ok();
    let frozen = virtctl(&server, &["fslist", "agent"]).fails();
    assert!(frozen.contains("frozen"), "{frozen}");
    put(&k, "agent", "unfreeze", "{}").ok();
    json_of(virtctl(&server, &["fslist", "agent"]));

    // Without an unfreeze, the launcher thaws by itself once unfreezeTimeout passes.
    put(&k, "agent", "freeze", r#"{"unfreezeTimeout":"3s"}"#).ok();
    virtctl(&server, &["fslist", "agent"]).fails();
    wait_until("the automatic thaw", WAIT, || {
        virtctl(&server, &["fslist", "agent"])
            .status
            .success()
            .then_some(())
    });

    // Upstream's refusals of a freeze without a timeout.
    let missing = put(&k, "agent", "freeze", "{}").fails();
    assert!(
        missing.contains("Unfreeze timeout must be specified"),
        "{missing}"
    );
}

#[test]
fn a_vmi_that_is_not_running_has_no_user_list() {
    let server = oxivirt_e2e::Server::start();
    let k = server.kubectl();
    k.create(&vm("halted", "Halted", None));
    let absent = virtctl(&server, &["userlist", "halted"]).fails();
    assert!(absent.contains("not found"), "{absent}");
}

/// Reuses the access tests' SSH key, VM manifest with a pod network and bounded runs.
#[path = "../access/common.rs"]
#[allow(
    dead_code,
    reason = "shared with the access tests, which use all of it"
)]
mod access;

/// `ssh root@vm/NAME.default` through the manual's ProxyCommand with `key`; the command's
/// output when the login worked.
fn ssh_root(server: &oxivirt_e2e::Server, name: &str, key: &std::path::Path) -> Option<String> {
    let virtctl_dir = virtctl_bin()
        .parent()
        .expect("virtctl has a directory")
        .to_path_buf();
    let config = server.write_file(
        "ssh_config",
        "Host vm/*\n  ProxyCommand virtctl port-forward --stdio=true %h %p\n",
    );
    let path = format!(
        "{}:{}",
        virtctl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-F")
        .arg(&config)
        .arg("-i")
        .arg(key)
        .args([
            "-oStrictHostKeyChecking=no",
            "-oUserKnownHostsFile=/dev/null",
            "-oLogLevel=ERROR",
            "-oBatchMode=yes",
        ])
        .arg(format!("root@vm/{name}.default"))
        .arg("echo agent-keys-$((6*7))")
        .env("PATH", path)
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(std::process::Stdio::null());
    let out = access::run_with_timeout(ssh, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && stdout == "agent-keys-42").then_some(stdout)
}

/// A Secret `name` whose data holds `files` (key name, path of the file), applied.
fn apply_secret(k: &Kubectl, name: &str, files: &[(&str, &std::path::Path)]) {
    let mut args = vec![
        "create".to_string(),
        "secret".into(),
        "generic".into(),
        name.into(),
    ];
    for (key, path) in files {
        args.push(format!("--from-file={key}={}", path.display()));
    }
    args.extend(["--dry-run=client".into(), "-o".into(), "json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest = k.ok(&args);
    k.apply(&manifest);
}

fn synchronized(k: &Kubectl, name: &str) -> Option<Value> {
    let vmi = get(k, "vmi", name)?;
    vmi["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "AccessCredentialsSynchronized")
        .cloned()
}

#[test]
fn a_key_added_to_the_secret_lets_ssh_in_through_the_guest_agent_and_a_removed_key_stops_working() {
    let server = oxivirt_e2e::Server::start();
    let k = server.kubectl();
    let wanted = access::ssh_key();
    let wanted_public = wanted.with_extension("pub");
    // Another key, so the Secret is never empty and the guest has something else to keep.
    let other = server.scratch().join("other_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "other", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(made.success(), "ssh-keygen failed");
    let other_public = other.with_extension("pub");
    apply_secret(&k, "creds-keys", &[("other", &other_public)]);
    let password = server.write_file("root-password", "oxivirt-e2e-pass");
    apply_secret(&k, "creds-passwords", &[("root", &password)]);

    let mut manifest: Value =
        serde_json::from_str(&access::vm("creds", None, true)).expect("manifest");
    manifest["spec"]["template"]["spec"]["accessCredentials"] = serde_json::json!([
        {"sshPublicKey": {"source": {"secret": {"secretName": "creds-keys"}},
            "propagationMethod": {"qemuGuestAgent": {"users": ["root"]}}}},
        {"userPassword": {"source": {"secret": {"secretName": "creds-passwords"}},
            "propagationMethod": {"qemuGuestAgent": {}}}},
    ]);
    k.create(&manifest.to_string());
    wait_vmi_running(&k, "creds");
    wait_banner(&k, "creds");
    let condition = wait_until("AccessCredentialsSynchronized", BOOT, || {
        synchronized(&k, "creds").filter(|c| c["status"] == "True")
    });
    assert_eq!(
        condition["reason"], "AccessCredentialsSyncSuccess",
        "{condition}"
    );
    assert!(
        ssh_root(&server, "creds", wanted).is_none(),
        "root let in a key it was never given"
    );

    // The key is added to the Secret: the running guest takes it within a minute.
    apply_secret(
        &k,
        "creds-keys",
        &[("other", &other_public), ("wanted", &wanted_public)],
    );
    wait_until("ssh with the added key", Duration::from_secs(90), || {
        ssh_root(&server, "creds", wanted)
    });

    // And taken out again: the login stops working; the other key stays.
    apply_secret(&k, "creds-keys", &[("other", &other_public)]);
    wait_until(
        "ssh with the removed key to fail",
        Duration::from_secs(90),
        || ssh_root(&server, "creds", wanted).is_none().then_some(()),
    );
    assert!(
        ssh_root(&server, "creds", &other).is_some(),
        "the key still in the Secret stopped working"
    );
}

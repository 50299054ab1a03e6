//! `accessCredentials[].sshPublicKey` with `propagationMethod.noCloud` / `configDrive`
//! (manual §7.4.2.2.3, issue 7 item 5): the Secret's keys reach the guest at first boot
//! through the data source's metadata, and the user data stays the user's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oxivirt_e2e::{wait_until, Kubectl};
use serde_json::{json, Value};

use crate::common::{shared_guest, ssh_key, virtctl, vm, wait_banner, wait_vmi_running, BOOT};

/// A second key pair, for the Secret (the shared guest's key is in user data).
fn secret_key(dir: &Path) -> PathBuf {
    let key = dir.join("id_secret");
    let status = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "from-the-secret",
            "-f",
        ])
        .arg(&key)
        .status()
        .expect("cannot run ssh-keygen");
    assert!(status.success());
    key
}

/// `virtctl ssh USER@vm/NAME -i KEY -c COMMAND`: its output when the login worked.
fn ssh(kubeconfig: &Path, user: &str, name: &str, key: &Path, command: &str) -> Option<String> {
    let key = key.display().to_string();
    let target = format!("{user}@vm/{name}");
    let run = virtctl(
        kubeconfig,
        &[
            "ssh",
            "-i",
            &key,
            "-t",
            "-oStrictHostKeyChecking=no",
            "-t",
            "-oUserKnownHostsFile=/dev/null",
            "-t",
            "-oLogLevel=ERROR",
            "-t",
            "-oBatchMode=yes",
            &target,
            "-c",
            command,
        ],
    );
    run.status.success().then_some(run.stdout)
}

/// The VM manifest with its cloud-init volume as `source` (`cloudInitNoCloud` or
/// `cloudInitConfigDrive`) and the Secret's keys propagated by `method`.
fn manifest(name: &str, user_data: &str, source: &str, method: &str) -> String {
    let mut vm: Value = serde_json::from_str(&vm(name, Some(user_data), false)).expect("vm");
    let spec = &mut vm["spec"]["template"]["spec"];
    let volume = &mut spec["volumes"][1];
    let data = volume["cloudInitNoCloud"].take();
    *volume = json!({"name": "cloudinit", source: data});
    spec["accessCredentials"] = json!([{
        "sshPublicKey": {
            "source": {"secret": {"secretName": "authorized-keys"}},
            "propagationMethod": {method: {}},
        }
    }]);
    vm.to_string()
}

fn create_secret(k: &Kubectl, public: &str) {
    // The manual's Secret: data.key is the public key, base64.
    let manifest = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "authorized-keys"},
        "stringData": {"key": format!("# a comment line\n{public}\n")},
    });
    k.apply(&manifest.to_string());
}

#[test]
fn keys_from_a_secret_reach_the_guest_at_first_boot_through_nocloud_and_configdrive() {
    let server = shared_guest();
    let k = server.kubectl();
    let dir = server.scratch().join("first-boot-keys");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let key = secret_key(&dir);
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let public = public.trim();
    create_secret(&k, public);
    let user_key = std::fs::read_to_string(ssh_key().with_extension("pub")).expect("key");

    // ConfigDrive: the Secret's key lets the default user in; the user data still ran.
    let config_drive_data = "#cloud-config\nwrite_files:\n  - path: /etc/user-data-mark\n    \
                             permissions: '0644'\n    content: user-data-kept\n";
    k.apply(&manifest(
        "keys-cd",
        config_drive_data,
        "cloudInitConfigDrive",
        "configDrive",
    ));
    // NoCloud: the manual's example user data, plus a user for the check below.
    let no_cloud_data = format!(
        "#cloud-config\nuser: cloud-user\nusers:\n  - default\n  - name: tester\n    \
         ssh_authorized_keys:\n      - {}\n",
        user_key.trim()
    );
    // The user data comes from a Secret (`userDataSecretRef`, key `userdata`), resolved by
    // the node agent like the keys.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nc-userdata"},
        "stringData": {"userdata": no_cloud_data},
    });
    k.apply(&secret.to_string());
    let mut nc: Value = serde_json::from_str(&manifest(
        "keys-nc",
        &no_cloud_data,
        "cloudInitNoCloud",
        "noCloud",
    ))
    .expect("vm");
    nc["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"] =
        json!({"secretRef": {"name": "nc-userdata"}});
    k.apply(&nc.to_string());

    wait_vmi_running(&k, "keys-cd");
    wait_banner(&k, "keys-cd");
    let kubeconfig = server.kubeconfig();
    let out = wait_until("ssh with the Secret's key (configDrive)", BOOT, || {
        ssh(
            &kubeconfig,
            "oxivirt",
            "keys-cd",
            &key,
            "cat /etc/user-data-mark; echo; id -un",
        )
    });
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["user-data-kept", "oxivirt"]
    );

    // NoCloud: the key is in the seed's meta-data as `public-keys` (what cloud-init reads),
    // not in the user data, which is exactly what the user wrote.
    wait_vmi_running(&k, "keys-nc");
    wait_banner(&k, "keys-nc");
    let meta = wait_until("ssh with the user data's key (noCloud)", BOOT, || {
        ssh(
            &kubeconfig,
            "tester",
            "keys-nc",
            ssh_key(),
            "cat /run/oxivirt/meta-data.flat",
        )
    });
    let key_body = public.split_whitespace().nth(1).expect("key body");
    assert!(
        meta.lines()
            .any(|l| l.starts_with("public-keys") && l.contains(key_body)),
        "meta-data has no public-keys entry with the Secret's key:\n{meta}"
    );
    assert!(!meta.contains("a comment line"), "{meta}");
    let user_data = ssh(
        &kubeconfig,
        "tester",
        "keys-nc",
        ssh_key(),
        "cat /run/oxivirt/user-data",
    )
    .expect("ssh as tester");
    assert_eq!(user_data, no_cloud_data);

    // A VM whose Secret does not exist does not start: the Pod fails with FailedMount.
    let mut missing: Value = serde_json::from_str(&manifest(
        "keys-missing",
        "#cloud-config\n",
        "cloudInitNoCloud",
        "noCloud",
    ))
    .expect("vm");
    missing["spec"]["template"]["spec"]["accessCredentials"][0]["sshPublicKey"]["source"]
        ["secret"]["secretName"] = json!("no-such-secret");
    k.apply(&missing.to_string());
    let reason = wait_until(
        "the VMI to fail for the missing Secret",
        Duration::from_secs(120),
        || {
            let events = k.ok(&[
                "get",
                "events",
                "--field-selector",
                "reason=FailedMount",
                "-o",
                "json",
            ]);
            events.contains("no-such-secret").then_some(events)
        },
    );
    assert!(
        reason.contains("secret \\\"no-such-secret\\\" not found"),
        "{reason}"
    );
    for name in ["keys-cd", "keys-nc", "keys-missing"] {
        k.ok(&["delete", "vm", name, "--wait=false"]);
    }
}

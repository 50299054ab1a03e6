//! Temporary VNC tokens (manual §7.3.1.3): the `token.kubevirt.io` API behind the
//! `deployVmConsoleProxy` feature gate, used as the manual uses it (curl, then `virtctl vnc`
//! with the token), and revoked by deleting the ServiceAccount.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use oxivirt_e2e::virtctl_bin;
use serde_json::Value;

use crate::common::{
    kubeconfig_with_token, kubectl_as, service_account_with_role, shared_guest, GUEST,
};

const TOKEN_PATH: &str =
    "/apis/token.kubevirt.io/v1alpha1/namespaces/default/virtualmachines/guest/vnc";

/// Starts `virtctl vnc --proxy-only` with `kubeconfig` and reads the RFB greeting through
/// it; the error is virtctl's own message.
fn vnc_greeting(kubeconfig: &std::path::Path) -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut proxy = Command::new(virtctl_bin())
        .args(["vnc", GUEST, "--proxy-only", "--port", &port.to_string()])
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start virtctl vnc");
    let mut line = String::new();
    let _ = BufReader::new(proxy.stdout.take().expect("stdout")).read_line(&mut line);
    if line.trim().is_empty() {
        let mut stderr = String::new();
        let _ = proxy
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr);
        let _ = proxy.wait();
        return Err(stderr);
    }
    let mut viewer =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    viewer
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut greeting = [0u8; 12];
    let read = viewer.read_exact(&mut greeting);
    drop(viewer);
    let _ = proxy.kill();
    let _ = proxy.wait();
    read.map_err(|e| format!("no RFB greeting: {e}"))?;
    Ok(String::from_utf8_lossy(&greeting).into_owned())
}

/// `exp - iat` of a JWT, in seconds.
fn lifetime(token: &str) -> i64 {
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url claims");
    let claims: Value = serde_json::from_slice(&claims).expect("JSON claims");
    claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat")
}

#[test]
fn a_vnc_token_opens_only_that_vms_vnc_until_its_service_account_is_deleted() {
    let _turn = crate::vnc::take_turn();
    let server = shared_guest();
    let k = server.kubectl();

    // Without the feature gate the API is not there, and the error says how to turn it on.
    let off = k.fails(&["get", "--raw", TOKEN_PATH]);
    assert!(
        off.contains("NotFound") && off.contains("deployVmConsoleProxy"),
        "{off}"
    );
    // The manual's command, verbatim but for oc.
    k.ok(&[
        "patch",
        "hyperconverged",
        "kubevirt-hyperconverged",
        "-n",
        "openshift-cnv",
        "--type",
        "json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/featureGates/deployVmConsoleProxy", "value": true}]"#,
    ]);

    // A user who may generate tokens but not open the VNC gets none (the proxy's own check);
    // one who may not generate tokens is refused by RBAC.
    let generate_only = service_account_with_role(
        &server,
        "default",
        "token-only",
        "token.kubevirt.io:generate",
    );
    let refused = kubectl_as(&server, &generate_only).fails(&["get", "--raw", TOKEN_PATH]);
    assert!(refused.contains("virtualmachineinstances/vnc"), "{refused}");
    let viewer = service_account_with_role(&server, "default", "vnc-viewer", "kubevirt.io:edit");
    let refused = kubectl_as(&server, &viewer).fails(&["get", "--raw", TOKEN_PATH]);
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
    k.ok(&[
        "create",
        "rolebinding",
        "vnc-viewer-tokens",
        "-n",
        "default",
        "--clusterrole=token.kubevirt.io:generate",
        "--serviceaccount=default:vnc-viewer",
    ]);
    let user = kubectl_as(&server, &viewer);

    // Bad durations are refused with the reason; the default and an explicit one are honoured.
    let short = user.fails(&["get", "--raw", &format!("{TOKEN_PATH}?duration=5m")]);
    assert!(short.contains("10 minutes"), "{short}");
    let bad = user.fails(&["get", "--raw", &format!("{TOKEN_PATH}?duration=soon")]);
    assert!(bad.contains("failed to parse duration"), "{bad}");
    let answer: Value =
        serde_json::from_str(&user.ok(&["get", "--raw", TOKEN_PATH])).expect("JSON");
    assert_eq!(
        lifetime(answer["token"].as_str().expect("token")),
        600,
        "{answer}"
    );

    // The manual's curl, with the user's bearer token.
    let server_url = k.ok(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let user_token = std::fs::read_to_string(&viewer).expect("kubeconfig");
    let user_token: serde_yaml::Value = serde_yaml::from_str(&user_token).expect("YAML");
    let user_token = user_token["users"][0]["user"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let curl = Command::new("curl")
        .args([
            "-sSk",
            "--header",
            &format!("Authorization: Bearer {user_token}"),
        ])
        .arg(format!("{server_url}{TOKEN_PATH}?duration=5h30m"))
        .output()
        .expect("cannot run curl (apt-get install curl)");
    let answer: Value = serde_json::from_slice(&curl.stdout).unwrap_or_else(|e| {
        panic!(
            "curl: {e}: {}{}",
            String::from_utf8_lossy(&curl.stdout),
            String::from_utf8_lossy(&curl.stderr)
        )
    });
    let vnc_token = answer["token"].as_str().expect("a token").to_string();
    assert_eq!(lifetime(&vnc_token), 5 * 3600 + 30 * 60);

    // What the proxy made: ServiceAccount, Role and RoleBinding <vm>-vnc-access, owned by the VM.
    let role = k.json(&[
        "get",
        "role",
        "guest-vnc-access",
        "-n",
        "default",
        "-o",
        "json",
    ]);
    assert_eq!(
        role["rules"][0]["resources"][0], "virtualmachineinstances/vnc",
        "{role}"
    );
    assert_eq!(role["rules"][0]["resourceNames"][0], GUEST, "{role}");
    assert_eq!(
        role["metadata"]["ownerReferences"][0]["kind"], "VirtualMachine",
        "{role}"
    );
    k.ok(&[
        "get",
        "serviceaccount,rolebinding",
        "guest-vnc-access",
        "-n",
        "default",
    ]);

    // The token opens the VNC, and nothing else.
    let with_token = kubeconfig_with_token(&server, "vnc-token.kubeconfig", &vnc_token, "default");
    let greeting = vnc_greeting(&with_token).expect("the VNC token opens the VNC");
    assert!(greeting.starts_with("RFB 003."), "{greeting:?}");
    let denied = kubectl_as(&server, &with_token).fails(&["get", "vmi", GUEST]);
    assert!(denied.contains("Forbidden"), "{denied}");

    // Revocation: deleting the ServiceAccount (the manual's command) ends every such token.
    k.ok(&[
        "delete",
        "serviceaccount",
        "--namespace",
        "default",
        "guest-vnc-access",
    ]);
    let revoked = vnc_greeting(&with_token).expect_err("a revoked token still opened the VNC");
    assert!(revoked.contains("Unauthorized"), "{revoked}");

    // A new request makes a new account, and a token that works again.
    let answer: Value =
        serde_json::from_str(&user.ok(&["get", "--raw", TOKEN_PATH])).expect("JSON");
    let fresh = kubeconfig_with_token(
        &server,
        "vnc-token2.kubeconfig",
        answer["token"].as_str().expect("token"),
        "default",
    );
    assert!(vnc_greeting(&fresh).is_ok_and(|g| g.starts_with("RFB")));

    k.ok(&[
        "patch",
        "hyperconverged",
        "kubevirt-hyperconverged",
        "-n",
        "openshift-cnv",
        "--type",
        "json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/featureGates/deployVmConsoleProxy", "value": false}]"#,
    ]);
}

//! PXE on a secondary network: a NIC with `bootOrder` boots from the network first; a real
//! `dnsmasq` on the Linux bridge answers its DHCP and serves the boot file over TFTP.

use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::support::{self, NetServer};

/// The test's bridge (with an address for dnsmasq) and dnsmasq, removed at the end.
struct PxeNetwork {
    bridge: String,
    dnsmasq: Option<Child>,
    dir: tempfile::TempDir,
}

impl Drop for PxeNetwork {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

fn run(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{args:?} failed");
}

#[test]
fn a_nic_with_boot_order_pxe_boots_from_dnsmasq_on_a_bridge_network() {
    crate::skip_unless_possible!();
    if Command::new("sh")
        .args(["-c", "command -v dnsmasq"])
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: dnsmasq is not installed (apt-get install dnsmasq-base)");
        return;
    }
    let mut net = PxeNetwork {
        bridge: format!("oxtp{:05x}", std::process::id() & 0xfffff),
        dnsmasq: None,
        dir: tempfile::tempdir().unwrap(),
    };
    run(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
    run(&["ip", "addr", "add", "192.168.88.1/24", "dev", &net.bridge]);
    run(&["ip", "link", "set", &net.bridge, "up"]);
    let tftp = net.dir.path().join("tftp");
    std::fs::create_dir_all(&tftp).unwrap();
    std::fs::write(tftp.join("oxivirt.pxe"), b"#!ipxe\necho oxivirt pxe\n").unwrap();
    let log = net.dir.path().join("dnsmasq.log");
    net.dnsmasq = Some(
        Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--bind-interfaces",
                "--log-dhcp",
            ])
            .arg(format!("--interface={}", net.bridge))
            .arg("--dhcp-range=192.168.88.50,192.168.88.60,255.255.255.0,1h")
            .arg("--enable-tftp")
            .arg(format!("--tftp-root={}", tftp.display()))
            .arg("--dhcp-boot=oxivirt.pxe")
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                net.dir.path().join("leases").display()
            ))
            .arg(format!(
                "--pid-file={}",
                net.dir.path().join("pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start dnsmasq"),
    );

    let server = NetServer::start();
    let k = server.kubectl();
    let config =
        json!({"cniVersion": "0.3.1", "name": "pxe", "type": "bridge", "bridge": net.bridge});
    k.create(
        &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": "pxe"}, "spec": {"config": config.to_string()}})
        .to_string(),
    );
    let mut vm = support::vm("netboot", json!({"app": "netboot"}), &[], json!({}));
    let spec = &mut vm["spec"]["template"]["spec"];
    spec["domain"]["devices"]["interfaces"] = json!([
        {"name": "default", "masquerade": {}},
        {"name": "pxe", "bridge": {}, "bootOrder": 1, "macAddress": "02:00:00:00:88:01"}]);
    spec["domain"]["devices"]["disks"][0]["bootOrder"] = json!(2);
    spec["networks"] =
        json!([{"name": "default", "pod": {}}, {"name": "pxe", "multus": {"networkName": "pxe"}}]);
    k.create(&vm.to_string());

    let deadline = std::time::Instant::now() + support::BOOT_TIMEOUT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("02:00:00:00:88:01")
            && text.contains("PXEClient")
            && text.contains("sent ")
            && text.contains("oxivirt.pxe")
        {
            break text;
        }
        if std::time::Instant::now() > deadline {
            let pods = k.run(&["get", "pods", "-o", "wide"]).stdout;
            let logs = |container: &str| {
                k.run(&[
                    "logs",
                    "-l",
                    "vm.kubevirt.io/name=netboot",
                    "--tail=-1",
                    "-c",
                    container,
                ])
                .stdout
            };
            panic!(
                "no PXE DHCP+TFTP at dnsmasq within {:?}\ndnsmasq log:\n{text}\npods:\n{pods}\ncompute:\n{}\nconsole:\n{}",
                support::BOOT_TIMEOUT,
                logs("compute"),
                logs("guest-console-log")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        text.contains("DHCPACK"),
        "no lease was acknowledged:\n{text}"
    );
}

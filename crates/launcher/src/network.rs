//! NICs: the `network` plan of `launch.json` (written by the node agent, which has already
//! plumbed the taps inside this Pod's network namespace) as QEMU netdevs and devices, and
//! the DHCP server each pod-network NIC's guest asks for its address. No plan: no NICs
//! (the node has no pod network), so the VM runs as before.

use oxivirt_network::{InterfacePlan, PodNetworkPlan};

use crate::args::{Builder, Props};
use crate::error::{Error, Result};
use crate::spec::{LaunchSpec, RunPaths};

/// Adds `-netdev tap` and the NIC device for every planned interface.
///
/// # Errors
/// [`Error::Config`] for a model QEMU cannot express here.
pub(crate) fn add(spec: &LaunchSpec, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    if let Some(nic) = spec.network.as_ref().and_then(|p| p.user_mode.as_ref()) {
        crate::user_net::add(nic, paths, out)?;
    }
    let Some(plan) = &spec.network else {
        let devices = &spec.vmi.spec.domain.devices;
        if !devices.interfaces.is_empty() || !spec.vmi.spec.networks.is_empty() {
            out.note(format!(
                "{} interface(s) and {} network(s) ignored: this node has no pod network",
                devices.interfaces.len(),
                spec.vmi.spec.networks.len()
            ));
        }
        return Ok(());
    };
    for nic in &plan.interfaces {
        add_nic(nic, out)?;
    }
    crate::nic_hotplug::add_spare_ports(spec, plan.interfaces.len(), out);
    Ok(())
}

fn add_nic(nic: &InterfacePlan, out: &mut Builder) -> Result<()> {
    let field = format!("spec.domain.devices.interfaces[{}]", nic.name);
    let netdev = format!("hostua-{}", nic.name);
    let mut tap = Props::new("tap")
        .set("id", netdev.clone())
        .set("ifname", nic.tap.clone())
        .set("script", "no")
        .set("downscript", "no");
    if nic.model == "virtio" && nic.vhost {
        // vhost-net moves the data path into the kernel: the pod network's throughput.
        tap = tap.set("vhost", "on");
    }
    if nic.queues > 1 {
        tap = tap.set("queues", nic.queues.to_string());
    }
    out.arg("-netdev", tap.to_string());
    let driver = nic_driver(&nic.model).ok_or_else(|| {
        Error::config(
            format!("{field}.model"),
            format!("unsupported NIC model {:?}", nic.model),
        )
    })?;
    let mut device = Props::new(driver)
        .set("netdev", netdev)
        .set("id", format!("ua-{}", nic.name))
        .set("mac", nic.mac.clone());
    if nic.queues > 1 {
        device = device
            .set("mq", "on")
            .set("vectors", (2 * nic.queues + 2).to_string());
    }
    if let Some(order) = nic.boot_order {
        device = device.set("bootindex", order.to_string());
        match &nic.rom {
            // QEMU's own ROM for the model: left to QEMU, which finds it (its search path
            // includes ipxe-qemu's directory) and patches the ROM's PCI ids to the device's.
            // Named in `romfile=`, the same file is loaded unpatched, and SeaBIOS skips a
            // virtio-net ROM whose ids do not match the device: no PXE at all.
            Some(rom) if is_qemu_default_rom(&nic.model, rom) => {}
            Some(rom) => device = device.set("romfile", rom.clone()),
            None => {
                device = device.set("romfile", "");
                out.note(format!(
                    "{field}.bootOrder: this node has no iPXE ROM for model {} (Debian: ipxe-qemu), so the NIC cannot boot from the network",
                    nic.model
                ));
            }
        }
    } else {
        // No PXE attempt unless asked: the guest boots from its disks at once.
        device = device.set("romfile", "");
    }
    if let Some(addr) = nic.pci_address.as_deref().and_then(root_bus_slot) {
        device = device.set("bus", "pcie.0").set("addr", addr);
    } else if let Some(address) = &nic.pci_address {
        out.note(format!(
            "{field}.pciAddress {address}: only bus 0 is honoured; placed automatically"
        ));
    }
    if nic.model == "virtio" && nic.mtu != 1500 {
        device = device.set("host_mtu", nic.mtu.to_string());
    }
    out.device(device);
    Ok(())
}

/// The QEMU device of NIC `model`.
pub(crate) fn nic_driver(model: &str) -> Option<&'static str> {
    Some(match model {
        "virtio" => "virtio-net-pci",
        "e1000e" => "e1000e",
        "e1000" => "e1000",
        "rtl8139" => "rtl8139",
        "pcnet" => "pcnet",
        "ne2k_pci" => "ne2k_pci",
        _ => return None,
    })
}

/// Whether `rom` is the file QEMU loads by default for a NIC of `model` (`efi-<model>.rom`).
fn is_qemu_default_rom(model: &str, rom: &str) -> bool {
    std::path::Path::new(rom)
        .file_name()
        .is_some_and(|name| name.to_string_lossy() == format!("efi-{model}.rom"))
}

/// `0000:00:SS.F` → `SS.F` (QEMU's `addr`), for addresses on the root bus only.
fn root_bus_slot(address: &str) -> Option<String> {
    let parts: Vec<&str> = address.split(':').collect();
    match parts.as_slice() {
        [_domain, "00", slot_fn] => Some(format!("0x{slot_fn}")),
        _ => None,
    }
}

/// Starts the DHCP server of every planned NIC that has one, detached: they live as long
/// as the launcher (the Pod's namespace goes with it). A server that cannot bind is logged,
/// not fatal: the guest may still be configured statically (cloud-init networkData).
pub(crate) fn serve_dhcp(plan: Option<&PodNetworkPlan>) {
    let Some(plan) = plan else { return };
    for nic in &plan.interfaces {
        let Some(lease) = nic.dhcp.clone() else {
            continue;
        };
        let (mac, name) = (nic.mac.clone(), nic.name.clone());
        tokio::spawn(async move {
            if let Err(e) = oxivirt_network::dhcp::serve(lease, mac).await {
                tracing::error!(interface = %name, error = %e, "the DHCP server stopped");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(network: serde_json::Value) -> Vec<String> {
        let spec: LaunchSpec = serde_json::from_value(serde_json::json!({
            "vmi": {"metadata": {"name": "vm1", "namespace": "ns"},
                    "spec": {"domain": {"resources": {"requests": {"memory": "128Mi"}},
                                        "devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
                             "networks": [{"name": "default", "pod": {}}]}},
            "network": network,
        }))
        .unwrap();
        let paths = crate::spec::RunPaths::new(std::path::Path::new("/run/x"));
        crate::args::qemu_config(&spec, &paths).unwrap().args
    }

    #[test]
    fn a_planned_nic_becomes_a_tap_netdev_and_a_device_with_its_mac() {
        let args = argv(serde_json::json!({"interfaces": [{
            "name": "default", "binding": "masquerade", "tap": "tap0", "mac": "02:00:00:00:00:01",
            "model": "virtio", "queues": 2, "mtu": 1500, "vhost": true}]}));
        let joined = args.join(" ");
        assert!(
            joined.contains("-netdev tap,id=hostua-default,ifname=tap0,script=no,downscript=no,vhost=on,queues=2"),
            "{joined}"
        );
        assert!(
            joined.contains("-device virtio-net-pci,netdev=hostua-default,id=ua-default,mac=02:00:00:00:00:01,mq=on,vectors=6,romfile="),
            "{joined}"
        );
        let e1000e = argv(serde_json::json!({"interfaces": [{
            "name": "default", "binding": "bridge", "tap": "tap0", "mac": "02:00:00:00:00:02",
            "model": "e1000e", "queues": 1, "mtu": 1500, "bootOrder": 1, "rom": "/r/pxe-e1000e.rom"}]}));
        assert!(e1000e.join(" ").contains("-device e1000e,netdev=hostua-default,id=ua-default,mac=02:00:00:00:00:02,bootindex=1,romfile=/r/pxe-e1000e.rom"));
    }

    #[test]
    fn a_boot_nic_keeps_qemus_own_rom_and_without_one_cannot_pxe() {
        let nic = |rom: serde_json::Value| {
            argv(serde_json::json!({"interfaces": [{
                "name": "default", "binding": "bridge", "tap": "tap0", "mac": "02:00:00:00:00:03",
                "model": "virtio", "queues": 1, "mtu": 1500, "bootOrder": 1, "rom": rom}]}))
            .join(" ")
        };
        let own = nic(serde_json::json!("/usr/lib/ipxe/qemu/efi-virtio.rom"));
        assert!(
            own.contains("mac=02:00:00:00:00:03,bootindex=1 ") || own.ends_with("bootindex=1"),
            "QEMU's default ROM must not be named (it is then loaded with the wrong PCI ids): {own}"
        );
        assert!(!own.contains("romfile"), "{own}");
        let none = nic(serde_json::Value::Null);
        assert!(none.contains("bootindex=1,romfile="), "{none}");
    }

    #[test]
    fn without_a_plan_there_is_no_nic() {
        let args = argv(serde_json::Value::Null);
        assert!(!args.iter().any(|a| a == "-netdev"), "{args:?}");
    }

    #[test]
    fn only_root_bus_addresses_are_placed() {
        assert_eq!(root_bus_slot("0000:00:07.0").as_deref(), Some("0x07.0"));
        assert_eq!(root_bus_slot("0000:07:00.0"), None);
    }
}

//! Devices other than disks: the serial console, the guest-agent channel, VNC with a VGA
//! adapter and a tablet, input devices, virtio-rng, the i6300esb watchdog, the memory
//! balloon, the pvpanic device and the TPM. Network interfaces wait for the network issue.

use super::{Builder, Props};
use crate::error::{Error, Result};
use crate::spec::RunPaths;
use crate::vmi::VirtualMachineInstance;

/// The guest agent's well-known virtio-serial port name.
pub(crate) const GUEST_AGENT_PORT: &str = "org.qemu.guest_agent.0";

/// QEMU's `-action` value: reboots reset, shutdowns end QEMU, a panic shuts down (after
/// `GUEST_PANICKED`, which the supervisor reports as a failure), and the watchdog does what
/// the VMI says.
pub(super) fn actions(vmi: &VirtualMachineInstance) -> String {
    let mut value = "reboot=reset,shutdown=poweroff,panic=shutdown".to_owned();
    if let Some(action) = watchdog_action(vmi) {
        value.push_str(&format!(",watchdog={action}"));
    }
    value
}

fn watchdog_action(vmi: &VirtualMachineInstance) -> Option<&str> {
    let watchdog = vmi.spec.domain.devices.watchdog.as_ref()?;
    let esb = watchdog.i6300esb.as_ref()?;
    Some(esb.action.as_deref().unwrap_or("reset"))
}

pub(super) fn add(vmi: &VirtualMachineInstance, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    let devices = &vmi.spec.domain.devices;
    if devices.autoattach_serial_console != Some(false) {
        socket_chardev(out, "charserial0", &paths.serial_sock())?;
        out.device(
            Props::new("isa-serial")
                .set("chardev", "charserial0")
                .set("id", "serial0"),
        );
    }

    out.device(Props::new("virtio-serial-pci").set("id", "virtio-serial0"));
    socket_chardev(out, "charqga0", &paths.qga_sock())?;
    out.device(
        Props::new("virtserialport")
            .set("bus", "virtio-serial0.0")
            .set("nr", 1)
            .set("chardev", "charqga0")
            .set("id", "channel0")
            .set("name", GUEST_AGENT_PORT),
    );

    let graphics = devices.autoattach_graphics_device != Some(false);
    if graphics {
        let vnc_sock = paths.vnc_sock();
        let vnc = super::path_str("vnc", &vnc_sock)?;
        out.arg("-vnc", format!("unix:{}", vnc.replace(',', ",,")));
        out.device(Props::new("VGA").set("id", "video0"));
    }
    inputs(vmi, out)?;

    if devices.rng.is_some() {
        out.arg("-object", "rng-random,id=objrng0,filename=/dev/urandom");
        out.device(
            Props::new("virtio-rng-pci")
                .set("rng", "objrng0")
                .set("id", "rng0"),
        );
    }
    if let Some(watchdog) = &devices.watchdog {
        let field = "spec.domain.devices.watchdog";
        if watchdog.i6300esb.is_none() {
            return Err(Error::config(
                field,
                "only the i6300esb watchdog is supported",
            ));
        }
        match watchdog_action(vmi) {
            Some("poweroff" | "reset" | "shutdown") => {}
            other => return Err(Error::config(field, format!("unknown action {other:?}"))),
        }
        out.device(Props::new("i6300esb").set("id", "watchdog0"));
    }
    if devices.autoattach_mem_balloon != Some(false) {
        out.device(Props::new("virtio-balloon-pci").set("id", "balloon0"));
    }
    // Lets the guest report a kernel panic (GUEST_PANICKED) instead of hanging silently.
    out.device(Props::new("pvpanic-pci").set("id", "panic0"));

    tpm(vmi, paths, out)?;
    if vmi.spec.domain.clock.is_some() {
        out.note("domain.clock ignored: the guest clock is UTC");
    }
    Ok(())
}

/// The TPM: QEMU's `emulator` backend on swtpm's control socket (started by the
/// launcher, see [`crate::tpm`]) and upstream's `tpm-tis` device model.
fn tpm(vmi: &VirtualMachineInstance, paths: &RunPaths, out: &mut Builder) -> Result<()> {
    if crate::tpm::wanted(vmi).is_none() {
        return Ok(());
    }
    let chardev = Props::new("socket")
        .set("id", "chrtpm")
        .path("path", &crate::tpm::socket(paths))?;
    out.arg("-chardev", chardev.to_string());
    let backend = Props::new("emulator")
        .set("id", "tpm-tpm0")
        .set("chardev", "chrtpm");
    out.arg("-tpmdev", backend.to_string());
    out.device(
        Props::new("tpm-tis")
            .set("tpmdev", "tpm-tpm0")
            .set("id", "tpm0"),
    );
    // Where the state lives (and whether `persistent` is honoured) depends on the node
    // agent's state claim: `qemu_config` notes it from `crate::tpm::state_note`.
    Ok(())
}

fn socket_chardev(out: &mut Builder, id: &str, path: &std::path::Path) -> Result<()> {
    let props = Props::new("socket")
        .set("id", id)
        .path("path", path)?
        .set("server", "on")
        .set("wait", "off");
    out.arg("-chardev", props.to_string());
    Ok(())
}

/// Input devices: only the `inputs` the VMI asks for, as upstream (which gives libvirt a USB
/// controller of model `none` unless a USB device needs one). VNC works with the PS/2
/// mouse and keyboard every q35 machine has; a default USB tablet would also cost each
/// guest's firmware a USB enumeration (under TCG, doubling SeaBIOS' start-up work).
fn inputs(vmi: &VirtualMachineInstance, out: &mut Builder) -> Result<()> {
    let inputs = &vmi.spec.domain.devices.inputs;
    let mut usb_controller = false;
    let mut usb = |out: &mut Builder| {
        if !usb_controller {
            out.device(Props::new("qemu-xhci").set("id", "usb"));
            usb_controller = true;
        }
    };
    for (index, input) in inputs.iter().enumerate() {
        let field = format!("spec.domain.devices.inputs[{}]", input.name);
        let kind = input.input_type.as_deref().unwrap_or("tablet");
        if kind != "tablet" {
            return Err(Error::config(
                field,
                format!("input type {kind:?} is not supported"),
            ));
        }
        let id = format!("input{index}");
        match input.bus.as_deref().unwrap_or("usb") {
            "usb" => {
                usb(out);
                out.device(Props::new("usb-tablet").set("id", id).set("bus", "usb.0"));
            }
            "virtio" => out.device(Props::new("virtio-tablet-pci").set("id", id)),
            other => {
                return Err(Error::config(
                    field,
                    format!("input bus {other:?} is not supported"),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tpm_args(device: serde_json::Value) -> Builder {
        let vmi: VirtualMachineInstance = serde_json::from_value(json!({
            "metadata": {"name": "t"},
            "spec": {"domain": {"devices": {"tpm": device}}}
        }))
        .expect("vmi");
        let mut out = Builder::default();
        tpm(&vmi, &RunPaths::new("/run/x"), &mut out).expect("adds");
        out
    }

    #[test]
    fn a_tpm_is_an_emulator_backend_on_the_swtpm_socket_with_a_tis_device() {
        let out = tpm_args(json!({}));
        assert_eq!(
            out.args,
            [
                "-chardev",
                "socket,id=chrtpm,path=/run/x/swtpm.sock",
                "-tpmdev",
                "emulator,id=tpm-tpm0,chardev=chrtpm",
                "-device",
                "tpm-tis,tpmdev=tpm-tpm0,id=tpm0",
            ]
        );
        assert!(out.notes.is_empty());
    }

    #[test]
    fn a_disabled_tpm_adds_nothing_and_a_persistent_one_the_same_devices() {
        assert!(tpm_args(json!({"enabled": false})).args.is_empty());
        let out = tpm_args(json!({"persistent": true}));
        assert_eq!(out.args.len(), 6);
    }
}

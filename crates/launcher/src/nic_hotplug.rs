//! Room for NIC hot-plug (manual §8.9.1): QEMU cannot add a PCIe root port to a running
//! q35 machine, and a device on the root bus itself cannot be hot-plugged, so free root
//! ports must exist from boot. As KubeVirt 1.2 (PCI topology "v1"), a VM with NICs gets
//! `max(0, 4 - NICs)` empty `pcie-root-port`s — four hot-pluggable interfaces including
//! the ones it has — and a VM without NICs none.
//!
//! The ports come after every other device, so adding them moves no existing device's PCI
//! address.

use crate::args::{Builder, Props};
use crate::spec::LaunchSpec;

/// Interfaces a VM may have with room to hot-plug (manual §8.9.1).
pub const HOTPLUG_INTERFACE_SLOTS: usize = 4;

/// The QEMU id of spare root port `index` (what a live attach names as `bus`).
pub fn port_id(index: usize) -> String {
    format!("hotplug-nic-port{index}")
}

/// Chassis numbers of the spare ports start here, clear of any other root port's.
const FIRST_CHASSIS: usize = 200;

/// How many empty root ports a VM with `nics` interfaces gets.
pub fn spare_ports(nics: usize) -> usize {
    if nics == 0 {
        0
    } else {
        HOTPLUG_INTERFACE_SLOTS.saturating_sub(nics)
    }
}

/// Whether the machine type has a PCIe root complex to hang root ports on.
fn is_pcie_machine(spec: &LaunchSpec) -> bool {
    let machine = spec
        .vmi
        .spec
        .domain
        .machine
        .as_ref()
        .and_then(|m| m.machine_type.as_deref())
        .filter(|m| !m.is_empty())
        .unwrap_or("q35");
    machine.starts_with("q35") || machine.starts_with("pc-q35")
}

/// Adds the spare root ports for a VM with `nics` interfaces.
pub(crate) fn add_spare_ports(spec: &LaunchSpec, nics: usize, out: &mut Builder) {
    let count = spare_ports(nics);
    if count == 0 {
        return;
    }
    if !is_pcie_machine(spec) {
        out.note(
            "no PCIe root ports on this machine type: interfaces can only be added at restart",
        );
        return;
    }
    for index in 0..count {
        out.device(
            Props::new("pcie-root-port")
                .set("id", port_id(index))
                .set("chassis", (FIRST_CHASSIS + index).to_string())
                .set("bus", "pcie.0"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_interfaces_in_all_can_be_hot_plugged() {
        assert_eq!(spare_ports(0), 0, "a VM without NICs gets no ports");
        assert_eq!(spare_ports(1), 3);
        assert_eq!(spare_ports(2), 2);
        assert_eq!(spare_ports(4), 0);
        assert_eq!(spare_ports(6), 0);
    }
}

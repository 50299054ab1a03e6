//! Upstream's common cluster preferences, composed from the same building blocks upstream's
//! kustomize components use (virtio devices, secure boot, TPM, Hyper-V, …).

use serde_json::{json, Map, Value};

use super::{common_labels, merge, INSTANCETYPE_API_VERSION};

/// One building block of a preference (upstream's `preferences/components/*`, plus the
/// `linux` and `windows` bases).
#[derive(Clone, Copy)]
enum Part {
    /// virtio disks and NICs, an RNG device, `vm.kubevirt.io/os: linux`.
    Linux,
    /// Hyper-V enlightenments and timers, socket topology, SATA disks, e1000e NICs, an input
    /// device, a one-hour termination grace period, `vm.kubevirt.io/os: windows`.
    Windows,
    /// virtio disks and NICs (the `.virtio` Windows variants).
    Virtio,
    /// A virtio tablet (desktop variants).
    TabletVirtio,
    /// A dedicated IO thread for virtio disks.
    DedicatedIoThread,
    /// An RNG device.
    Rng,
    /// UEFI without secure boot.
    Efi,
    /// UEFI with persisted variables.
    EfiPersisted,
    /// UEFI secure boot with SMM.
    SecureBoot,
    /// A persistent vTPM.
    Tpm,
    /// vCPUs as sockets.
    Sockets,
    /// vCPUs spread across sockets, cores and threads.
    Spread,
    /// Multi-queue virtio NICs.
    Multiqueue,
}

impl Part {
    fn spec(self) -> Value {
        match self {
            Part::Linux => json!({
                "annotations": { "vm.kubevirt.io/os": "linux" },
                "devices": {
                    "preferredDiskBus": "virtio",
                    "preferredInterfaceModel": "virtio",
                    "preferredRng": {},
                },
            }),
            Part::Windows => windows_base(),
            Part::Virtio => json!({
                "devices": { "preferredDiskBus": "virtio", "preferredInterfaceModel": "virtio" },
            }),
            Part::TabletVirtio => json!({
                "devices": {
                    "preferredAutoattachInputDevice": true,
                    "preferredInputBus": "virtio",
                    "preferredInputType": "tablet",
                },
            }),
            Part::DedicatedIoThread => {
                json!({ "devices": { "preferredDiskDedicatedIoThread": true } })
            }
            Part::Rng => json!({ "devices": { "preferredRng": {} } }),
            Part::Efi => json!({ "firmware": { "preferredEfi": { "secureBoot": false } } }),
            Part::EfiPersisted => json!({
                "firmware": { "preferredEfi": { "persistent": true, "secureBoot": false } },
            }),
            Part::SecureBoot => json!({
                "features": { "preferredSmm": {} },
                "firmware": { "preferredEfi": { "secureBoot": true } },
            }),
            Part::Tpm => json!({ "devices": { "preferredTPM": { "persistent": true } } }),
            Part::Sockets => json!({ "cpu": { "preferredCPUTopology": "sockets" } }),
            Part::Spread => json!({
                "cpu": {
                    "preferredCPUTopology": "spread",
                    "spreadOptions": { "across": "SocketsCoresThreads" },
                },
            }),
            Part::Multiqueue => {
                json!({ "devices": { "preferredNetworkInterfaceMultiQueue": true } })
            }
        }
    }
}

fn windows_base() -> Value {
    json!({
        "annotations": { "vm.kubevirt.io/os": "windows" },
        "clock": {
            "preferredClockOffset": { "utc": {} },
            "preferredTimer": {
                "hpet": { "present": false },
                "hyperv": {},
                "pit": { "tickPolicy": "delay" },
                "rtc": { "tickPolicy": "catchup" },
            },
        },
        "cpu": { "preferredCPUTopology": "sockets" },
        "devices": {
            "preferredAutoattachInputDevice": true,
            "preferredDiskBus": "sata",
            "preferredInterfaceModel": "e1000e",
        },
        "features": {
            "preferredAcpi": {},
            "preferredApic": {},
            "preferredHyperv": {
                "frequencies": {},
                "ipi": {},
                "reenlightenment": {},
                "relaxed": {},
                "reset": {},
                "runtime": {},
                "spinlocks": { "spinlocks": 8191 },
                "synic": {},
                "synictimer": { "direct": {} },
                "tlbflush": {},
                "vapic": {},
                "vpindex": {},
            },
        },
        "preferredTerminationGracePeriodSeconds": 3600,
    })
}

/// One shipped preference.
struct Os {
    name: &'static str,
    display_name: &'static str,
    icon: &'static str,
    tags: &'static str,
    /// `instancetype.kubevirt.io/arch`, on the architecture-specific preferences.
    arch: Option<&'static str>,
    /// `spec.requirements.cpu.guest`.
    cpu: u32,
    /// `spec.requirements.memory.guest`.
    memory: &'static str,
    parts: &'static [Part],
}

use Part::*;

const CENTOS: &str = "hidden,kubevirt,linux,centos-stream";
const CENTOS_DPDK: &str = "hidden,kubevirt,linux,centos-stream,dpdk";
const RHEL: &str = "hidden,kubevirt,linux,rhel";
const RHEL_DPDK: &str = "hidden,kubevirt,linux,rhel,dpdk";
const WINDOWS: &str = "hidden,kubevirt,windows";

const fn linux(
    name: &'static str,
    display_name: &'static str,
    icon: &'static str,
    tags: &'static str,
    (cpu, memory): (u32, &'static str),
    parts: &'static [Part],
) -> Os {
    Os {
        name,
        display_name,
        icon,
        tags,
        arch: None,
        cpu,
        memory,
        parts,
    }
}

const fn amd64(os: Os) -> Os {
    Os {
        arch: Some("amd64"),
        ..os
    }
}

const fn windows(
    name: &'static str,
    display_name: &'static str,
    (cpu, memory): (u32, &'static str),
    parts: &'static [Part],
) -> Os {
    Os {
        name,
        display_name,
        icon: "icon-windows",
        tags: WINDOWS,
        arch: None,
        cpu,
        memory,
        parts,
    }
}

// One row per preference reads as a table; rustfmt would spread each over eight lines.
#[rustfmt::skip]
const PREFERENCES: &[Os] = &[
    linux("alpine", "Alpine", "icon-alpine", "hidden,kubevirt,alpine", (1, "512Mi"), &[Linux]),
    linux("centos.stream10", "CentOS Stream 10", "icon-centos", CENTOS, (1, "1.5Gi"),
        &[Linux, Rng, DedicatedIoThread]),
    linux("centos.stream10.desktop", "CentOS Stream 10", "icon-centos", CENTOS, (1, "1.5Gi"),
        &[Linux, Rng, DedicatedIoThread, TabletVirtio]),
    linux("centos.stream9", "CentOS Stream 9", "icon-centos", CENTOS, (1, "1.5Gi"),
        &[Linux, DedicatedIoThread]),
    linux("centos.stream9.desktop", "CentOS Stream 9", "icon-centos", CENTOS, (1, "1.5Gi"),
        &[Linux, DedicatedIoThread, TabletVirtio]),
    linux("centos.stream9.dpdk", "CentOS Stream 9", "icon-centos", CENTOS_DPDK, (8, "1.5Gi"),
        &[Linux, DedicatedIoThread, Sockets, Multiqueue]),
    linux("cirros", "Cirros", "icon-cirros", "hidden,kubevirt,cirros", (1, "256Mi"), &[Linux]),
    linux("debian", "Debian", "icon-debian", "hidden,kubevirt,debian", (1, "512Mi"), &[Linux]),
    amd64(linux("fedora", "Fedora (amd64)", "icon-fedora", "hidden,kubevirt,fedora", (1, "2Gi"),
        &[Linux, SecureBoot])),
    linux("opensuse.leap", "OpenSUSE Leap", "icon-opensuse-leap", "hidden,kubevirt,opensuse.leap",
        (1, "2Gi"), &[Linux]),
    linux("opensuse.tumbleweed", "OpenSUSE Tumbleweed", "icon-opensuse-tumbleweed",
        "hidden,kubevirt,opensuse.tumbleweed", (1, "2Gi"), &[Linux]),
    amd64(linux("rhel.10", "Red Hat Enterprise Linux 10 (amd64)", "icon-rhel", RHEL, (1, "1.5Gi"),
        &[Linux, DedicatedIoThread, Efi, SecureBoot])),
    linux("rhel.7", "Red Hat Enterprise Linux 7", "icon-rhel", RHEL, (1, "1Gi"), &[Linux]),
    linux("rhel.7.desktop", "Red Hat Enterprise Linux 7", "icon-rhel", RHEL, (1, "1Gi"),
        &[Linux, TabletVirtio]),
    linux("rhel.8", "Red Hat Enterprise Linux 8", "icon-rhel", RHEL, (1, "1.5Gi"), &[Linux]),
    linux("rhel.8.desktop", "Red Hat Enterprise Linux 8", "icon-rhel", RHEL, (1, "1.5Gi"),
        &[Linux, TabletVirtio]),
    linux("rhel.8.dpdk", "Red Hat Enterprise Linux 8", "icon-rhel", RHEL_DPDK, (4, "1.5Gi"),
        &[Linux, Spread, Multiqueue]),
    amd64(linux("rhel.9", "Red Hat Enterprise Linux 9 (amd64)", "icon-rhel", RHEL, (1, "1.5Gi"),
        &[Linux, DedicatedIoThread, SecureBoot])),
    amd64(linux("rhel.9.desktop", "Red Hat Enterprise Linux 9 Desktop (amd64)", "icon-rhel", RHEL,
        (1, "1.5Gi"), &[Linux, DedicatedIoThread, SecureBoot, TabletVirtio])),
    amd64(linux("rhel.9.dpdk", "Red Hat Enterprise Linux 9 DPDK (amd64)", "icon-rhel", RHEL_DPDK,
        (8, "1.5Gi"), &[Linux, DedicatedIoThread, SecureBoot, Sockets, Multiqueue])),
    linux("sles", "SUSE Linux Enterprise Server", "icon-sles", "hidden,kubevirt,sles", (1, "2Gi"),
        &[Linux]),
    linux("ubuntu", "Ubuntu", "icon-ubuntu", "hidden,kubevirt,ubuntu", (1, "2Gi"), &[Linux]),
    windows("windows.10", "Microsoft Windows 10", (1, "2Gi"), &[Windows, Tpm, SecureBoot]),
    windows("windows.10.virtio", "Microsoft Windows 10 (virtio)", (1, "2Gi"),
        &[Windows, Tpm, SecureBoot, Virtio, TabletVirtio]),
    windows("windows.11", "Microsoft Windows 11", (2, "4Gi"), &[Windows, Tpm, SecureBoot]),
    windows("windows.11.virtio", "Microsoft Windows 11 (virtio)", (2, "4Gi"),
        &[Windows, Tpm, SecureBoot, Virtio, TabletVirtio]),
    windows("windows.2k16", "Microsoft Windows Server 2016", (1, "2Gi"), &[Windows]),
    windows("windows.2k16.virtio", "Microsoft Windows Server 2016 (virtio)", (1, "2Gi"),
        &[Windows, Virtio, TabletVirtio]),
    windows("windows.2k19", "Microsoft Windows Server 2019", (1, "2Gi"), &[Windows, SecureBoot]),
    windows("windows.2k19.virtio", "Microsoft Windows Server 2019 (virtio)", (1, "2Gi"),
        &[Windows, SecureBoot, Virtio, TabletVirtio]),
    windows("windows.2k22", "Microsoft Windows Server 2022", (1, "2Gi"),
        &[Windows, EfiPersisted, Tpm, SecureBoot]),
    windows("windows.2k22.virtio", "Microsoft Windows Server 2022 (virtio)", (1, "2Gi"),
        &[Windows, EfiPersisted, Tpm, SecureBoot, Virtio, TabletVirtio]),
    windows("windows.2k25", "Microsoft Windows Server 2025", (1, "2Gi"),
        &[Windows, EfiPersisted, Tpm, SecureBoot]),
    windows("windows.2k25.virtio", "Microsoft Windows Server 2025 (virtio)", (1, "2Gi"),
        &[Windows, EfiPersisted, Tpm, SecureBoot, Virtio, TabletVirtio]),
];

/// Upstream's common cluster preferences as `VirtualMachineClusterPreference` objects,
/// sorted by name (Linux distributions, then Windows).
///
/// # Guarantees
/// Deterministic. Every object has `spec.requirements.cpu.guest` and `memory.guest`, the
/// `openshift.io/display-name`, `openshift.io/provider-display-name`, `iconClass` and
/// `tags` annotations, and labels `instancetype.kubevirt.io/os-type`, `…/vendor`,
/// `…/required-cpu` and `…/required-memory`.
///
/// # Caveats
/// amd64 only: upstream's `*.arm64` and `*.s390x` variants, the legacy Windows (XP, 7,
/// 2003–2012) and `rhel.9.realtime` (which needs the unshipped `rt1` series) are left out.
pub fn common_cluster_preferences() -> Vec<Value> {
    PREFERENCES.iter().map(build).collect()
}

fn build(os: &Os) -> Value {
    let windows = os.parts.iter().any(|p| matches!(p, Windows));
    let mut labels = common_labels();
    let os_type = if windows { "windows" } else { "linux" };
    labels.insert("instancetype.kubevirt.io/os-type".into(), os_type.into());
    if let Some(arch) = os.arch {
        labels.insert("instancetype.kubevirt.io/arch".into(), arch.into());
    }
    labels.insert(
        "instancetype.kubevirt.io/required-cpu".into(),
        os.cpu.to_string().into(),
    );
    labels.insert(
        "instancetype.kubevirt.io/required-memory".into(),
        os.memory.into(),
    );

    let mut annotations = Map::new();
    let mut annotate = |key: &str, value: &str| {
        annotations.insert(key.into(), value.into());
    };
    annotate("iconClass", os.icon);
    annotate("openshift.io/display-name", os.display_name);
    annotate(
        "openshift.io/documentation-url",
        "https://github.com/kubevirt/common-instancetypes",
    );
    annotate("openshift.io/provider-display-name", "KubeVirt");
    annotate(
        "openshift.io/support-url",
        "https://github.com/kubevirt/common-instancetypes/issues",
    );
    annotate("tags", os.tags);

    let mut spec = json!({});
    for part in os.parts {
        merge(&mut spec, &part.spec());
    }
    merge(
        &mut spec,
        &json!({
            "requirements": {
                "cpu": { "guest": os.cpu },
                "memory": { "guest": os.memory },
            },
        }),
    );
    json!({
        "apiVersion": INSTANCETYPE_API_VERSION,
        "kind": "VirtualMachineClusterPreference",
        "metadata": { "name": os.name, "labels": labels, "annotations": annotations },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> Value {
        common_cluster_preferences()
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is shipped"))
    }

    #[test]
    fn the_manuals_preferences_are_all_shipped() {
        let names: Vec<String> = common_cluster_preferences()
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
            .collect();
        for name in [
            "rhel.7",
            "rhel.8",
            "rhel.9",
            "rhel.10",
            "centos.stream9",
            "centos.stream10",
            "fedora",
            "ubuntu",
            "debian",
            "opensuse.leap",
            "alpine",
            "cirros",
            "windows.10",
            "windows.11",
            "windows.2k16",
            "windows.2k19",
            "windows.2k22",
            "windows.2k25",
            "windows.11.virtio",
            "rhel.9.dpdk",
            "rhel.9.desktop",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
        assert_eq!(names.len(), 34);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn rhel_9_prefers_virtio_secure_boot_and_needs_one_cpu_and_1_5gi() {
        let spec = &find("rhel.9")["spec"];
        assert_eq!(spec["devices"]["preferredDiskBus"], "virtio");
        assert_eq!(spec["devices"]["preferredInterfaceModel"], "virtio");
        assert_eq!(spec["devices"]["preferredDiskDedicatedIoThread"], true);
        assert_eq!(spec["devices"]["preferredRng"], json!({}));
        assert_eq!(
            spec["firmware"]["preferredEfi"],
            json!({ "secureBoot": true })
        );
        assert_eq!(spec["features"]["preferredSmm"], json!({}));
        assert_eq!(spec["requirements"]["cpu"]["guest"], 1);
        assert_eq!(spec["requirements"]["memory"]["guest"], "1.5Gi");
        assert_eq!(spec["annotations"]["vm.kubevirt.io/os"], "linux");
    }

    #[test]
    fn windows_11_needs_tpm_secure_boot_two_cpus_and_4gi() {
        let pref = find("windows.11");
        let spec = &pref["spec"];
        assert_eq!(spec["devices"]["preferredDiskBus"], "sata");
        assert_eq!(spec["devices"]["preferredInterfaceModel"], "e1000e");
        assert_eq!(
            spec["devices"]["preferredTPM"],
            json!({ "persistent": true })
        );
        assert_eq!(spec["firmware"]["preferredEfi"]["secureBoot"], true);
        assert_eq!(spec["features"]["preferredSmm"], json!({}));
        assert_eq!(
            spec["features"]["preferredHyperv"]["spinlocks"]["spinlocks"],
            8191
        );
        assert_eq!(spec["preferredTerminationGracePeriodSeconds"], 3600);
        assert_eq!(spec["requirements"]["cpu"]["guest"], 2);
        assert_eq!(spec["requirements"]["memory"]["guest"], "4Gi");
        assert_eq!(
            pref["metadata"]["labels"]["instancetype.kubevirt.io/os-type"],
            "windows"
        );
        assert_eq!(pref["metadata"]["annotations"]["iconClass"], "icon-windows");
    }

    #[test]
    fn virtio_windows_variants_swap_sata_and_e1000e_for_virtio() {
        let spec = &find("windows.2k22.virtio")["spec"];
        assert_eq!(spec["devices"]["preferredDiskBus"], "virtio");
        assert_eq!(spec["devices"]["preferredInterfaceModel"], "virtio");
        assert_eq!(spec["devices"]["preferredInputBus"], "virtio");
        assert_eq!(
            spec["firmware"]["preferredEfi"],
            json!({ "persistent": true, "secureBoot": true })
        );
    }

    #[test]
    fn dpdk_variants_enable_multiqueue_nics() {
        for name in ["rhel.8.dpdk", "rhel.9.dpdk", "centos.stream9.dpdk"] {
            let pref = find(name);
            assert_eq!(
                pref["spec"]["devices"]["preferredNetworkInterfaceMultiQueue"], true,
                "{name}"
            );
            let tags = pref["metadata"]["annotations"]["tags"]
                .as_str()
                .unwrap_or_default();
            assert!(tags.ends_with(",dpdk"), "{name}");
        }
    }

    #[test]
    fn annotations_name_the_os_and_the_provider() {
        let pref = find("centos.stream9");
        let annotations = &pref["metadata"]["annotations"];
        assert_eq!(annotations["openshift.io/display-name"], "CentOS Stream 9");
        assert_eq!(
            annotations["openshift.io/provider-display-name"],
            "KubeVirt"
        );
        assert_eq!(annotations["iconClass"], "icon-centos");
        assert_eq!(annotations["tags"], "hidden,kubevirt,linux,centos-stream");
        let labels = &pref["metadata"]["labels"];
        assert_eq!(labels["instancetype.kubevirt.io/required-memory"], "1.5Gi");
        assert_eq!(labels["instancetype.kubevirt.io/os-type"], "linux");
    }
}

//! The parts of a VirtualMachineInstance the launcher reads, as small serde structs.
//!
//! Unknown fields are ignored on purpose: the VMI in `launch.json` is the full object the
//! API stores, and the launcher only needs the domain, the volumes and a few names. Defaults
//! that upstream's mutating webhook applies (a disk for every volume, the `sata` bus, cdrom
//! read-only) are applied again by [`VirtualMachineInstance::with_defaults`], so a VMI that
//! skipped the webhook still gets upstream's meaning.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A VirtualMachineInstance, reduced to what the QEMU configuration needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualMachineInstance {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: VmiSpec,
}

/// `metadata` fields used for naming.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ObjectMeta {
    /// The VMI name.
    pub name: String,
    /// The namespace; empty means `default`.
    pub namespace: Option<String>,
    /// The object's UID (cloud-init instance ids).
    pub uid: Option<String>,
}

/// Reads `null` as the type's default, as the API server treats an explicit null.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VmiSpec {
    /// `spec.domain`.
    pub domain: DomainSpec,
    /// `spec.volumes` (`null` reads as none: a JSON edit of an absent list leaves one).
    #[serde(deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// `spec.networks` (ignored until the network issue).
    #[serde(deserialize_with = "null_as_default")]
    pub networks: Vec<serde_json::Value>,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.terminationGracePeriodSeconds`.
    pub termination_grace_period_seconds: Option<i64>,
}

/// `spec.domain`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DomainSpec {
    /// `cpu`.
    pub cpu: Option<Cpu>,
    /// `memory`.
    pub memory: Option<Memory>,
    /// `resources`.
    pub resources: Resources,
    /// `machine`.
    pub machine: Option<Machine>,
    /// `firmware`.
    pub firmware: Option<Firmware>,
    /// `features`.
    pub features: Option<Features>,
    /// `devices`.
    pub devices: Devices,
    /// `clock` (only its presence is noted).
    pub clock: Option<serde_json::Value>,
}

/// `domain.cpu`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cpu {
    /// Sockets (0 = unset).
    pub sockets: u32,
    /// Cores per socket (0 = unset).
    pub cores: u32,
    /// Threads per core (0 = unset).
    pub threads: u32,
    /// `host-model`, `host-passthrough` or a named QEMU model.
    pub model: Option<String>,
    /// CPU features with a policy.
    pub features: Vec<CpuFeature>,
}

/// One entry of `cpu.features`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CpuFeature {
    /// The feature name in QEMU/libvirt spelling (`vmx`, `pcid`, ...).
    pub name: String,
    /// `force`, `require`, `optional`, `disable` or `forbid`; default `require`.
    pub policy: Option<String>,
}

/// `domain.memory`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// The guest's memory as a Kubernetes quantity.
    pub guest: Option<String>,
}

/// `domain.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Requests (quantities as strings or numbers).
    pub requests: BTreeMap<String, serde_json::Value>,
    /// Limits.
    pub limits: BTreeMap<String, serde_json::Value>,
}

/// `domain.machine`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Machine {
    /// `q35`, `pc-q35-7.2`, ...
    #[serde(rename = "type")]
    pub machine_type: Option<String>,
}

/// `domain.firmware`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Firmware {
    /// SMBIOS system UUID, also QEMU's `-uuid`.
    pub uuid: Option<String>,
    /// SMBIOS system serial number.
    pub serial: Option<String>,
    /// `bios` or `efi`.
    pub bootloader: Option<Bootloader>,
    /// Direct kernel boot.
    pub kernel_boot: Option<KernelBoot>,
}

/// `firmware.bootloader`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Bootloader {
    /// SeaBIOS (the default when neither is given).
    pub bios: Option<serde_json::Value>,
    /// OVMF.
    pub efi: Option<Efi>,
}

/// `bootloader.efi`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Efi {
    /// Secure Boot; upstream's default is `true` when `efi` is present.
    pub secure_boot: Option<bool>,
    /// Keep NVRAM across restarts (needs backend storage; noted, not done).
    pub persistent: Option<bool>,
}

/// `firmware.kernelBoot`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelBoot {
    /// The kernel command line.
    pub kernel_args: Option<String>,
    /// Where kernel and initrd come from.
    pub container: Option<KernelBootContainer>,
}

/// `kernelBoot.container`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelBootContainer {
    /// The image (pulled by the node agent).
    pub image: String,
    /// The kernel's path inside the image.
    pub kernel_path: Option<String>,
    /// The initrd's path inside the image.
    pub initrd_path: Option<String>,
}

/// `domain.features` (the ones that change the QEMU configuration).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Features {
    /// `smm: {enabled}`.
    pub smm: Option<FeatureState>,
    /// `acpi: {enabled}`.
    pub acpi: Option<FeatureState>,
}

/// A feature switch; `enabled` defaults to true when the struct is present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FeatureState {
    /// Whether the feature is on.
    pub enabled: Option<bool>,
}

impl FeatureState {
    /// Upstream's rule: a present feature without `enabled` is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// `domain.devices`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Devices {
    /// Disks, CD-ROMs and LUNs.
    pub disks: Vec<Disk>,
    /// Network interfaces (ignored until the network issue).
    pub interfaces: Vec<serde_json::Value>,
    /// Input devices.
    pub inputs: Vec<Input>,
    /// The watchdog.
    pub watchdog: Option<Watchdog>,
    /// A virtio RNG when present.
    pub rng: Option<serde_json::Value>,
    /// A TPM 2.0 emulated by swtpm when present (and not `enabled: false`).
    pub tpm: Option<Tpm>,
    /// VGA + VNC; default true.
    pub autoattach_graphics_device: Option<bool>,
    /// Serial console; default true.
    pub autoattach_serial_console: Option<bool>,
    /// virtio-balloon; default true.
    pub autoattach_mem_balloon: Option<bool>,
}

/// `devices.tpm`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Tpm {
    /// `false` removes the TPM (upstream: present and unset means on).
    pub enabled: Option<bool>,
    /// Keep the TPM state when the VM stops, on the VM's persistent-state claim (as upstream).
    pub persistent: Option<bool>,
}

impl Tpm {
    /// Upstream's rule: a present `tpm` without `enabled: false` is a TPM.
    pub fn is_enabled(&self) -> bool {
        self.enabled != Some(false)
    }
}

/// One entry of `devices.disks`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Disk {
    /// Matches a volume name.
    pub name: String,
    /// A hard disk.
    pub disk: Option<DiskTarget>,
    /// A CD-ROM.
    pub cdrom: Option<DiskTarget>,
    /// A SCSI LUN (served as a plain SCSI disk; no passthrough).
    pub lun: Option<DiskTarget>,
    /// Boot priority (1 is first).
    pub boot_order: Option<u32>,
    /// The serial number the guest sees.
    pub serial: Option<String>,
    /// `none`, `writethrough` or `writeback`.
    pub cache: Option<String>,
    /// `native`, `threads` or `default`.
    pub io: Option<String>,
    /// Other VMs may write the same image.
    pub shareable: Option<bool>,
    /// `stop`, `ignore`, `report` or `enospace`.
    pub error_policy: Option<String>,
    /// A dedicated iothread (virtio only).
    #[serde(rename = "dedicatedIOThread")]
    pub dedicated_io_thread: Option<bool>,
    /// Logical/physical block sizes.
    pub block_size: Option<BlockSize>,
}

/// `disk`, `cdrom` or `lun` of a disk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DiskTarget {
    /// `virtio`, `sata`, `scsi` (`usb` is not supported).
    pub bus: Option<String>,
    /// Read-only (cdrom: default true).
    pub readonly: Option<bool>,
}

/// `disk.blockSize`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BlockSize {
    /// Explicit sizes.
    pub custom: Option<CustomBlockSize>,
}

/// `blockSize.custom`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CustomBlockSize {
    /// Logical block size in bytes.
    pub logical: u32,
    /// Physical block size in bytes.
    pub physical: u32,
}

/// One entry of `devices.inputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Input {
    /// The device name.
    pub name: String,
    /// `usb` (default) or `virtio`.
    pub bus: Option<String>,
    /// `tablet` (the only type upstream accepts).
    #[serde(rename = "type")]
    pub input_type: Option<String>,
}

/// `devices.watchdog`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Watchdog {
    /// The device name.
    pub name: String,
    /// The Intel 6300ESB model.
    pub i6300esb: Option<I6300esb>,
}

/// `watchdog.i6300esb`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct I6300esb {
    /// `poweroff`, `reset` (default) or `shutdown`.
    pub action: Option<String>,
}

/// One entry of `spec.volumes`; exactly one source is expected to be set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Volume {
    /// The volume name (a disk refers to it).
    pub name: String,
    /// A disk image from an OCI image, pulled by the node agent.
    pub container_disk: Option<serde_json::Value>,
    /// A blank disk of `capacity`, discarded on stop.
    pub empty_disk: Option<EmptyDisk>,
    /// A PVC used through a throwaway overlay.
    pub ephemeral: Option<serde_json::Value>,
    /// A file on the host.
    pub host_disk: Option<HostDisk>,
    /// A NoCloud seed.
    pub cloud_init_no_cloud: Option<CloudInit>,
    /// A ConfigDrive seed.
    pub cloud_init_config_drive: Option<CloudInit>,
    /// Persistent storage (served from the path in `launch.json`).
    pub persistent_volume_claim: Option<serde_json::Value>,
    /// A DataVolume (served from the path in `launch.json`).
    pub data_volume: Option<serde_json::Value>,
    /// A ConfigMap's keys as files on an ISO image (contents from the node agent).
    pub config_map: Option<ConfigMapSource>,
    /// A Secret's keys as files on an ISO image (contents from the node agent).
    pub secret: Option<SecretSource>,
    /// A ServiceAccount token (`token`, `ca.crt`, `namespace`) on an ISO image.
    pub service_account: Option<ServiceAccountSource>,
    /// Pod metadata fields as files on an ISO image.
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiSource>,
    /// Windows answer files (`autounattend.xml`/`unattend.xml`) on an ISO image.
    pub sysprep: Option<SysprepSource>,
}

/// `volume.configMap`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// The ConfigMap, in the VMI's namespace.
    pub name: String,
    /// A missing ConfigMap gives an empty volume instead of a failure.
    pub optional: Option<bool>,
    /// The ISO volume label (upstream's default `cfgdata`).
    pub volume_label: Option<String>,
}

/// `volume.secret`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretSource {
    /// The Secret, in the VMI's namespace.
    pub secret_name: String,
    /// A missing Secret gives an empty volume instead of a failure.
    pub optional: Option<bool>,
    /// The ISO volume label (upstream's default `cfgdata`).
    pub volume_label: Option<String>,
}

/// `volume.serviceAccount`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceAccountSource {
    /// The ServiceAccount, in the VMI's namespace.
    pub service_account_name: String,
}

/// `volume.downwardAPI` (the fields themselves are resolved by the node agent).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DownwardApiSource {
    /// `fields[]` as given (path plus fieldRef or resourceFieldRef).
    pub fields: Vec<serde_json::Value>,
    /// The ISO volume label (upstream's default `cfgdata`).
    pub volume_label: Option<String>,
}

/// `volume.sysprep`: exactly one of the two.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SysprepSource {
    /// A ConfigMap holding the answer files.
    pub config_map: Option<NamedRef>,
    /// A Secret holding the answer files.
    pub secret: Option<NamedRef>,
}

/// `{name: ...}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NamedRef {
    /// The object's name.
    pub name: String,
}

/// `volume.emptyDisk`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EmptyDisk {
    /// The size as a quantity.
    pub capacity: Option<serde_json::Value>,
}

/// `volume.hostDisk`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HostDisk {
    /// The file's path on the host.
    pub path: String,
    /// `Disk` (must exist) or `DiskOrCreate`.
    #[serde(rename = "type")]
    pub disk_type: Option<String>,
    /// The size to create with `DiskOrCreate`.
    pub capacity: Option<serde_json::Value>,
}

/// `cloudInitNoCloud` / `cloudInitConfigDrive`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CloudInit {
    /// user-data as text.
    pub user_data: Option<String>,
    /// user-data base64-encoded.
    pub user_data_base64: Option<String>,
    /// network-config as text.
    pub network_data: Option<String>,
    /// network-config base64-encoded.
    pub network_data_base64: Option<String>,
    /// A Secret holding user-data (resolved by the node agent, not here).
    pub secret_ref: Option<serde_json::Value>,
    /// A Secret holding network-config (resolved by the node agent, not here).
    pub network_data_secret_ref: Option<serde_json::Value>,
    /// SSH public keys of `accessCredentials` propagated through this data source
    /// (`noCloud` / `configDrive`). Not an API field: the node agent reads the Secrets and
    /// fills it in its copy of the VMI in `launch.json`.
    pub public_ssh_keys: Vec<String>,
}

impl VirtualMachineInstance {
    /// `<namespace>/<name>` with `default` for an empty namespace.
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
    }

    /// Applies upstream's webhook defaults that change the QEMU configuration: every volume
    /// without a disk gets one, a disk without a device kind is a `disk`, and cdroms are
    /// read-only. The bus default (`sata`) is applied where buses are chosen.
    pub fn with_defaults(mut self) -> Self {
        let devices = &mut self.spec.domain.devices;
        for volume in &self.spec.volumes {
            if !devices.disks.iter().any(|disk| disk.name == volume.name) {
                devices.disks.push(Disk {
                    name: volume.name.clone(),
                    ..Disk::default()
                });
            }
        }
        for disk in &mut devices.disks {
            if disk.disk.is_none() && disk.cdrom.is_none() && disk.lun.is_none() {
                disk.disk = Some(DiskTarget::default());
            }
            if let Some(cdrom) = &mut disk.cdrom {
                cdrom.readonly.get_or_insert(true);
            }
        }
        self
    }

    /// The volume called `name`.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.spec.volumes.iter().find(|volume| volume.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_volumes_and_networks_read_as_none() {
        let vmi: VirtualMachineInstance = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "novol"},
            "spec": {"domain": {"devices": {}}, "volumes": null, "networks": null},
        }))
        .unwrap();
        assert!(vmi.spec.volumes.is_empty());
        assert!(vmi.spec.networks.is_empty());
    }
}

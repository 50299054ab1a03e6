//! The VirtualMachine being assembled by `create vm`, and its rendering to a manifest.
//!
//! Flag handlers (`volume.rs`, `cloudinit.rs`) add volumes, disks and data volume templates
//! here; [`VmBuilder::into_manifest`] lays them out exactly as upstream's manifest does,
//! including the empty `devices: {}`, `resources: {}` and `status: {}` that Go's
//! marshaller emits for struct-typed fields.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Upstream's message when inference is asked of a volume that cannot carry the labels.
pub(crate) const INVALID_INFERENCE_VOLUME: &str = "inference of instancetype or preference works only with DataSources, DataVolumes or PersistentVolumeClaims";
/// Upstream's message when a data volume template's source cannot carry the labels.
pub(crate) const DV_INVALID_INFERENCE_VOLUME: &str = "this DataVolume is not valid to infer an instancetype or preference from (source needs to be PVC, Registry or Snapshot, sourceRef needs to be DataSource)";

/// What backs a volume; decides whether an instancetype or preference can be inferred from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VolumeKind {
    /// `containerDisk`.
    ContainerDisk,
    /// `persistentVolumeClaim`.
    Pvc,
    /// `dataVolume`, backed by one of the VM's data volume templates.
    DataVolume,
    /// `cloudInitNoCloud` or `cloudInitConfigDrive`.
    CloudInit,
    /// `sysprep`.
    Sysprep,
}

/// One entry of `spec.template.spec.volumes`.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub(crate) name: String,
    /// The volume source key (`containerDisk`, `dataVolume`, ...).
    pub(crate) source_key: &'static str,
    /// The volume source body.
    pub(crate) source: Value,
    pub(crate) kind: VolumeKind,
}

/// One entry of `spec.dataVolumeTemplates`.
#[derive(Debug, Clone)]
pub(crate) struct DataVolumeTemplate {
    pub(crate) name: String,
    pub(crate) spec: Value,
}

impl DataVolumeTemplate {
    /// True when upstream accepts this template as an inference source: a PVC, registry or
    /// snapshot source, or a DataSource reference.
    fn inferable(&self) -> bool {
        let source = &self.spec["source"];
        ["pvc", "registry", "snapshot"]
            .iter()
            .any(|key| source.get(key).is_some())
            || self.spec["sourceRef"]["kind"] == "DataSource"
    }
}

/// A VirtualMachine under construction.
#[derive(Debug)]
pub(crate) struct VmBuilder {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) run_strategy: String,
    pub(crate) termination_grace_period: i64,
    /// `domain.memory.guest`; cleared when an instancetype provides memory.
    pub(crate) memory: Option<String>,
    pub(crate) instancetype: Option<Value>,
    pub(crate) preference: Option<Value>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) disks: Vec<Value>,
    pub(crate) data_volume_templates: Vec<DataVolumeTemplate>,
    pub(crate) access_credentials: Vec<Value>,
    /// Boot order → disk name, for the disks given an explicit boot order.
    boot_orders: BTreeMap<u32, String>,
}

impl VmBuilder {
    pub(crate) fn new(name: String, namespace: Option<String>) -> Self {
        VmBuilder {
            name,
            namespace,
            run_strategy: "Always".to_owned(),
            termination_grace_period: 180,
            memory: None,
            instancetype: None,
            preference: None,
            volumes: Vec::new(),
            disks: Vec::new(),
            data_volume_templates: Vec::new(),
            access_credentials: Vec::new(),
            boot_orders: BTreeMap::new(),
        }
    }

    pub(crate) fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|volume| volume.name == name)
    }

    /// Fails with upstream's message if a volume called `name` exists already.
    pub(crate) fn ensure_volume_free(&self, flag: &'static str, name: &str) -> Result<()> {
        match self.volume(name) {
            Some(_) => Err(Error::flag(
                flag,
                format!("there is already a volume with name '{name}'"),
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn push_volume(
        &mut self,
        name: &str,
        source_key: &'static str,
        source: Value,
        kind: VolumeKind,
    ) {
        self.volumes.push(Volume {
            name: name.to_owned(),
            source_key,
            source,
            kind,
        });
    }

    /// Adds a disk with an explicit boot order; without one, no disk is added (the server
    /// defaults a disk for every volume).
    pub(crate) fn add_boot_order(
        &mut self,
        flag: &'static str,
        name: &str,
        boot_order: Option<u32>,
    ) -> Result<()> {
        let Some(order) = boot_order else {
            return Ok(());
        };
        if order == 0 {
            return Err(Error::flag(flag, "bootorder must be greater than 0"));
        }
        if self.boot_orders.contains_key(&order) {
            return Err(Error::flag(
                flag,
                format!("bootorder {order} was specified multiple times"),
            ));
        }
        self.disks.push(json!({ "name": name, "bootOrder": order }));
        self.boot_orders.insert(order, name.to_owned());
        Ok(())
    }

    /// The volume inference defaults to: the disk with the lowest boot order, else the first
    /// volume.
    pub(crate) fn default_inference_volume(&self) -> Result<String> {
        if let Some(name) = self.boot_orders.values().next() {
            return Ok(name.clone());
        }
        self.volumes
            .first()
            .map(|volume| volume.name.clone())
            .ok_or_else(|| {
                Error::Invalid(
                    "at least one volume is needed to infer an instance type or preference"
                        .to_owned(),
                )
            })
    }

    /// Checks that `name` exists and can carry instancetype/preference labels.
    pub(crate) fn check_inference_volume(&self, name: &str) -> Result<()> {
        let volume = self
            .volume(name)
            .ok_or_else(|| Error::Invalid(format!("there is no volume with name '{name}'")))?;
        match volume.kind {
            VolumeKind::Pvc => Ok(()),
            VolumeKind::DataVolume => {
                match self.data_volume_templates.iter().find(|t| t.name == name) {
                    Some(template) if !template.inferable() => {
                        Err(Error::Invalid(DV_INVALID_INFERENCE_VOLUME.to_owned()))
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(Error::Invalid(INVALID_INFERENCE_VOLUME.to_owned())),
        }
    }

    /// Lays the VM out as upstream's manifest.
    pub(crate) fn into_manifest(self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), self.name.into());
        if let Some(namespace) = self.namespace {
            metadata.insert("namespace".into(), namespace.into());
        }

        let mut devices = Map::new();
        if !self.disks.is_empty() {
            devices.insert("disks".into(), Value::Array(self.disks));
        }
        let mut domain = json!({ "devices": devices, "resources": {} });
        if let Some(memory) = self.memory {
            domain["memory"] = json!({ "guest": memory });
        }

        let mut template_spec = json!({
            "domain": domain,
            "terminationGracePeriodSeconds": self.termination_grace_period,
        });
        if !self.volumes.is_empty() {
            let volumes: Vec<Value> = self
                .volumes
                .into_iter()
                .map(|volume| json!({ "name": volume.name, volume.source_key: volume.source }))
                .collect();
            template_spec["volumes"] = Value::Array(volumes);
        }
        if !self.access_credentials.is_empty() {
            template_spec["accessCredentials"] = Value::Array(self.access_credentials);
        }

        let mut spec = json!({
            "runStrategy": self.run_strategy,
            "template": { "metadata": {}, "spec": template_spec },
        });
        if !self.data_volume_templates.is_empty() {
            let templates: Vec<Value> = self
                .data_volume_templates
                .into_iter()
                .map(|t| json!({ "metadata": { "name": t.name }, "spec": t.spec }))
                .collect();
            spec["dataVolumeTemplates"] = Value::Array(templates);
        }
        if let Some(instancetype) = self.instancetype {
            spec["instancetype"] = instancetype;
        }
        if let Some(preference) = self.preference {
            spec["preference"] = preference;
        }

        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": metadata,
            "spec": spec,
            "status": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_vm_has_upstreams_empty_structs() {
        let mut vm = VmBuilder::new("vm-a".into(), None);
        vm.memory = Some("512Mi".into());
        let manifest = vm.into_manifest();
        assert_eq!(
            manifest["spec"]["template"]["spec"]["domain"]["devices"],
            json!({})
        );
        assert_eq!(
            manifest["spec"]["template"]["spec"]["domain"]["resources"],
            json!({})
        );
        assert_eq!(manifest["spec"]["template"]["metadata"], json!({}));
        assert_eq!(manifest["status"], json!({}));
        assert!(manifest["metadata"].get("namespace").is_none());
    }

    #[test]
    fn boot_orders_must_be_positive_and_unique() {
        let mut vm = VmBuilder::new("vm-a".into(), None);
        let err = vm
            .add_boot_order("volume-pvc", "a", Some(0))
            .expect_err("zero");
        assert!(err
            .to_string()
            .ends_with("bootorder must be greater than 0"));
        vm.add_boot_order("volume-pvc", "a", Some(2))
            .expect("first");
        let err = vm
            .add_boot_order("volume-pvc", "b", Some(2))
            .expect_err("dup");
        assert!(err
            .to_string()
            .ends_with("bootorder 2 was specified multiple times"));
    }

    #[test]
    fn inference_volume_defaults_to_lowest_boot_order() {
        let mut vm = VmBuilder::new("vm-a".into(), None);
        vm.push_volume("a", "persistentVolumeClaim", json!({}), VolumeKind::Pvc);
        vm.push_volume("b", "persistentVolumeClaim", json!({}), VolumeKind::Pvc);
        assert_eq!(vm.default_inference_volume().ok().as_deref(), Some("a"));
        vm.add_boot_order("volume-pvc", "b", Some(1))
            .expect("order");
        assert_eq!(vm.default_inference_volume().ok().as_deref(), Some("b"));
    }
}

//! The HyperConverged Cluster Operator's `HyperConverged` (`hco.kubevirt.io/v1beta1`).
//!
//! HCO's API is not in the swagger documents we have, so the schema is written here from
//! HCO's v1beta1 types, reusing KubeVirt and CDI definitions where HCO embeds them (node
//! placement, log verbosity, KSM, DataImportCron specs, TLS profiles, ...). Defaults are the
//! ones HCO's CRD declares, because HCO applies them through its schema, not a webhook.
//! `featureGates` also keeps gates it does not know: their set changes with every release.
//! `v1` (newer HCO releases, and some of the manual's examples) is served with the same
//! schema; `v1beta1` stays the storage version as upstream.

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::printer;
use crate::schema::{
    array, boolean, cdi, doc, integer, kubevirt, label_selector, map_of, object, one_of,
    open_object, required, spec_status, string, string_map, strings,
};

const HCO: &str = "hco.kubevirt.io";

fn with_default(mut schema: Value, default: Value) -> Value {
    schema["default"] = default;
    schema
}

fn node_placement_config() -> Value {
    object(json!({
        "nodePlacement": doc(kubevirt("v1.NodePlacement"), "NodePlacement describes node scheduling configuration."),
    }))
}

fn feature_gates() -> Value {
    let gates = [
        ("withHostPassthroughCPU", false),
        ("enableCommonBootImageImport", true),
        ("deployTektonTaskResources", false),
        ("deployVmConsoleProxy", false),
        ("deployKubeSecondaryDNS", false),
        ("deployKubevirtIpamController", false),
        ("nonRoot", true),
        ("disableMDevConfiguration", false),
        ("persistentReservation", false),
        ("enableManagedTenantQuota", false),
        ("autoResourceLimits", false),
        ("alignCPUs", false),
        ("enableApplicationAwareQuota", false),
        ("primaryUserDefinedNetworkBinding", false),
        ("downwardMetrics", false),
    ];
    let mut properties = serde_json::Map::new();
    for (gate, default) in gates {
        properties.insert(gate.into(), with_default(boolean(), json!(default)));
    }
    with_default(
        doc(
            open_object(Value::Object(properties)),
            "featureGates is a map of feature gate flags. Setting a flag to `true` will enable the feature. Setting `false` or removing the feature gate, disables the feature.",
        ),
        json!({}),
    )
}

fn live_migration_config() -> Value {
    let config = object(json!({
        "parallelMigrationsPerCluster": doc(integer(), "Number of migrations running in parallel in the cluster."),
        "parallelOutboundMigrationsPerNode": doc(integer(), "Maximum number of outbound migrations per node."),
        "bandwidthPerMigration": doc(json!({"type": "string", "pattern": "^([0-9]+)(([KMGTPE]i)|[KMGTPE])?$"}), "Bandwidth limit of each migration, the value is quantity of bytes per second (e.g. 2048Mi = 2048MiB/sec)"),
        "completionTimeoutPerGiB": doc(integer(), "If a migrating VM is big and busy, while the connection to the destination node is slow, migration may never converge. The completion timeout is calculated based on completionTimeoutPerGiB times the size of the guest (both RAM and migrated disks, if any)."),
        "progressTimeout": doc(integer(), "The migration will be canceled if memory copy fails to make progress in this time, in seconds."),
        "network": doc(string(), "The migrations will be performed over a dedicated multus network to minimize disruption to tenant workloads due to network saturation when VM live migrations are triggered."),
        "allowAutoConverge": doc(boolean(), "AllowAutoConverge allows the platform to compromise performance/availability of VMIs to guarantee successful VMI live migrations. Defaults to false"),
        "allowPostCopy": doc(boolean(), "AllowPostCopy enables post-copy live migrations. Such migrations allow even the busiest VMIs to successfully live-migrate. Defaults to false"),
    }));
    with_default(
        doc(config, "Live migration limits and timeouts are applied so that migration processes do not overwhelm the cluster."),
        json!({
            "allowAutoConverge": false,
            "allowPostCopy": false,
            "completionTimeoutPerGiB": 800,
            "parallelMigrationsPerCluster": 5,
            "parallelOutboundMigrationsPerNode": 2,
            "progressTimeout": 150,
        }),
    )
}

fn permitted_host_devices() -> Value {
    let common = |selector: &str, selector_doc: &str| {
        required(
            object(json!({
                selector: doc(string(), selector_doc),
                "resourceName": doc(string(), "name by which a device is advertised and being requested"),
                "externalResourceProvider": doc(boolean(), "indicates that this resource is being provided by an external device plugin"),
                "disabled": doc(boolean(), "HCO enforces the existence of several PciHostDevice objects. Set disabled field to true instead of remove these objects."),
            })),
            &[selector, "resourceName"],
        )
    };
    let usb = required(
        object(json!({
            "resourceName": doc(string(), "Identifies the list of USB host devices."),
            "selectors": array(required(object(json!({"vendor": string(), "product": string()})), &["vendor", "product"])),
            "externalResourceProvider": boolean(),
            "disabled": boolean(),
        })),
        &["resourceName"],
    );
    doc(
        object(json!({
            "pciHostDevices": array(common("pciDeviceSelector", "a combination of a vendor_id:product_id required to identify a PCI device on a host.")),
            "mediatedDevices": array(common("mdevNameSelector", "name of a mediated device type required to identify a mediated device on a host")),
            "usbHostDevices": array(usb),
        })),
        "PermittedHostDevices holds information about devices allowed for passthrough",
    )
}

fn mediated_devices_configuration() -> Value {
    let per_node = required(
        object(json!({
            "nodeSelector": string_map(),
            "mediatedDeviceTypes": strings(),
            "mediatedDevicesTypes": doc(strings(), "Deprecated: please use mediatedDeviceTypes instead."),
        })),
        &["nodeSelector"],
    );
    doc(
        object(json!({
            "mediatedDeviceTypes": strings(),
            "mediatedDevicesTypes": doc(strings(), "Deprecated: please use mediatedDeviceTypes instead."),
            "nodeMediatedDeviceTypes": array(per_node),
        })),
        "MediatedDevicesConfiguration holds information about MDEV types to be defined, if available",
    )
}

fn cert_config() -> Value {
    let rotation = || {
        object(json!({
            "duration": doc(string(), "The requested 'duration' (i.e. lifetime) of the Certificate. This should comply with golang's ParseDuration format (https://golang.org/pkg/time/#ParseDuration)"),
            "renewBefore": doc(string(), "The amount of time before the currently issued certificate's `notAfter` time that we will begin to attempt to renew the certificate. This should comply with golang's ParseDuration format (https://golang.org/pkg/time/#ParseDuration)"),
        }))
    };
    with_default(
        doc(
            object(json!({"ca": rotation(), "server": rotation()})),
            "certConfig holds the rotation policy for internal, self-signed certificates",
        ),
        json!({
            "ca": {"duration": "48h0m0s", "renewBefore": "24h0m0s"},
            "server": {"duration": "24h0m0s", "renewBefore": "12h0m0s"},
        }),
    )
}

fn data_import_cron_template() -> Value {
    object(json!({
        "metadata": {"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true},
        "spec": cdi("v1beta1.DataImportCronSpec"),
        "status": open_object(json!({})),
    }))
}

fn spec() -> Value {
    object(json!({
        "localStorageClassName": doc(string(), "Deprecated: LocalStorageClassName the name of the local storage class."),
        "tuningPolicy": doc(one_of(&["annotation", "highBurst"]), "TuningPolicy allows to configure the mode in which the RateLimits of kubevirt are set."),
        "infra": doc(node_placement_config(), "infra HyperConvergedConfig influences the pod configuration (currently only placement) for all the infra components needed on the virtualization enabled cluster but not necessarily directly on each node running VMs/VMIs."),
        "workloads": doc(node_placement_config(), "workloads HyperConvergedConfig influences the pod configuration (currently only placement) of components which need to be running on a node where virtualization workloads should be able to run."),
        "featureGates": feature_gates(),
        "liveMigrationConfig": live_migration_config(),
        "permittedHostDevices": permitted_host_devices(),
        "mediatedDevicesConfiguration": mediated_devices_configuration(),
        "certConfig": cert_config(),
        "resourceRequirements": doc(object(json!({
            "storageWorkloads": cdi("v1.ResourceRequirements"),
            "vmiCPUAllocationRatio": doc(with_default(json!({"type": "integer", "minimum": 1}), json!(10)), "VmiCPUAllocationRatio defines, for each requested virtual CPU, how much physical CPU to request per VMI from the hosting node."),
            "autoCPULimitNamespaceLabelSelector": label_selector(),
        })), "ResourceRequirements describes the resource requirements for the operand workloads."),
        "scratchSpaceStorageClass": doc(string(), "Override the storage class used for scratch space during transfer operations."),
        "vddkInitImage": doc(string(), "VDDK Init Image eventually used to import VMs from external providers. Deprecated."),
        "defaultCPUModel": doc(string(), "DefaultCPUModel defines a cluster default for CPU model: default CPU model is set when VMI doesn't have any CPU model."),
        "defaultRuntimeClass": doc(string(), "DefaultRuntimeClass defines a cluster default for the RuntimeClass to be used for VMIs pods if not set there."),
        "obsoleteCPUs": doc(object(json!({"cpuModels": strings(), "minCPUModel": string()})), "ObsoleteCPUs allows avoiding scheduling of VMs for obsolete CPU models"),
        "commonTemplatesNamespace": doc(string(), "CommonTemplatesNamespace defines namespace in which common templates will be deployed."),
        "storageImport": doc(object(json!({"insecureRegistries": strings()})), "StorageImport contains configuration for importing containerized data"),
        "workloadUpdateStrategy": with_default(kubevirt("v1.KubeVirtWorkloadUpdateStrategy"), json!({
            "batchEvictionInterval": "1m0s",
            "batchEvictionSize": 10,
            "workloadUpdateMethods": ["LiveMigrate"],
        })),
        "dataImportCronTemplates": doc(array(data_import_cron_template()), "DataImportCronTemplates holds list of data import cron templates (golden images)"),
        "filesystemOverhead": cdi("v1beta1.FilesystemOverhead"),
        "uninstallStrategy": with_default(one_of(&["RemoveWorkloads", "BlockUninstallIfWorkloadsExist"]), json!("BlockUninstallIfWorkloadsExist")),
        "logVerbosityConfig": doc(object(json!({
            "kubevirt": kubevirt("v1.LogVerbosity"),
            "cdi": doc(integer(), "CDI indicates the log verbosity level that controls the amount of information logged for CDI components."),
        })), "LogVerbosityConfig configures the verbosity level of Kubevirt's different components."),
        "tlsSecurityProfile": cdi("v1beta1.TLSSecurityProfile"),
        "tektonPipelinesNamespace": string(),
        "tektonTasksNamespace": string(),
        "kubeSecondaryDNSNameServerIP": doc(string(), "KubeSecondaryDNSNameServerIP defines name server IP used by KubeSecondaryDNS"),
        "kubeMacPoolConfiguration": object(json!({"rangeStart": string(), "rangeEnd": string()})),
        "evictionStrategy": doc(one_of(&["None", "LiveMigrate", "LiveMigrateIfPossible", "External"]), "EvictionStrategy defines at the cluster level if the VirtualMachineInstance should be migrated instead of shut-off in case of a node drain."),
        "vmStateStorageClass": doc(string(), "VMStateStorageClass is the name of the storage class to use for the PVCs created to preserve VM state, like TPM."),
        // HCO's options are booleans (KubeVirt's are marker objects).
        "virtualMachineOptions": with_default(doc(object(json!({
            "disableFreePageReporting": doc(boolean(), "DisableFreePageReporting disable the free page reporting of memory balloon device https://libvirt.org/formatdomain.html#memory-balloon-device."),
            "disableSerialConsoleLog": doc(boolean(), "DisableSerialConsoleLog disables logging the auto-attached default serial console."),
        })), "VirtualMachineOptions holds the cluster level information regarding the virtual machine."),
        json!({"disableFreePageReporting": false, "disableSerialConsoleLog": true})),
        "commonBootImageNamespace": doc(string(), "CommonBootImageNamespace override the default namespace of the common boot images."),
        "ksmConfiguration": kubevirt("v1.KSMConfiguration"),
        "networkBinding": doc(map_of(kubevirt("v1.InterfaceBindingPlugin")), "NetworkBinding defines the network binding plugins. Those bindings can be used when defining virtual machine interfaces."),
        "applicationAwareConfig": object(json!({
            "vmiCalcConfigName": one_of(&["VmiPodUsage", "VirtualResources", "DedicatedVirtualResources", "IgnoreVmiCalculator", "GuestEffectiveResources"]),
            "namespaceSelector": label_selector(),
            "allowApplicationAwareClusterResourceQuota": boolean(),
        })),
        "higherWorkloadDensity": with_default(object(json!({
            "memoryOvercommitPercentage": json!({"type": "integer", "minimum": 10}),
        })), json!({"memoryOvercommitPercentage": 100})),
        "liveUpdateConfiguration": kubevirt("v1.LiveUpdateConfiguration"),
        "commonInstancetypesDeployment": kubevirt("v1.CommonInstancetypesDeployment"),
        "instancetypeConfig": kubevirt("v1.InstancetypeConfiguration"),
        "enableCommonBootImageImport": boolean(),
        "deployVmConsoleProxy": boolean(),
        "enableApplicationAwareQuota": boolean(),
    }))
}

fn status() -> Value {
    open_object(json!({
        "conditions": array(required(object(json!({
            "type": string(),
            "status": string(),
            "reason": string(),
            "message": string(),
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": integer(),
        })), &["type", "status"])),
        "relatedObjects": array(open_object(json!({}))),
        "versions": array(object(json!({"name": string(), "version": string()}))),
        "observedGeneration": integer(),
        "dataImportSchedule": string(),
        "systemHealthStatus": string(),
        "infrastructureHighlyAvailable": boolean(),
    }))
}

/// The HyperConverged CRD.
pub(crate) fn crds() -> Vec<Crd> {
    let schema = spec_status(
        "HyperConverged is the Schema for the hyperconvergeds API",
        doc(
            spec(),
            "HyperConvergedSpec defines the desired state of HyperConverged",
        ),
        status(),
    );
    vec![Crd::new(HCO, "HyperConverged", "hyperconvergeds")
        .short_names(&["hco", "hcos"])
        .in_all()
        .versions(vec![Version::storage("v1beta1"), Version::served("v1")])
        .schema(schema)
        .columns(printer::age_only())
        .status_subresource()]
}

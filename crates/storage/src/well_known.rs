//! Names this crate shares with Kubernetes, CDI and the hostpath provisioner (upstream's
//! strings: users and tools match on them).

/// Our provisioner, as the hostpath provisioner's StorageClasses name it.
pub const PROVISIONER: &str = "kubevirt.io/hostpath-provisioner";
/// The legacy spelling some manuals print (`kubevirt.io.hostpath-provisioner`), treated alike.
pub const PROVISIONER_CSI: &str = "kubevirt.io.hostpath-provisioner";
/// The StorageClass created on first start.
pub const DEFAULT_CLASS: &str = "hostpath-csi-basic";
/// The storage pool used when a class names none (`<data-dir>/storage/<pool>`).
pub const DEFAULT_POOL: &str = "local";
/// StorageClass parameter naming a HostPathProvisioner pool.
pub const STORAGE_POOL_PARAMETER: &str = "storagePool";
/// oxivirt's class parameter: an absolute directory mounted at the same path on every node
/// (NFS, say); its volumes have no node affinity and offer ReadWriteMany.
pub const SHARED_PATH_PARAMETER: &str = "sharedPath";

/// Marks the cluster's default StorageClass (Kubernetes).
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// Marks the default StorageClass for VM disks; wins over [`ANN_DEFAULT_CLASS`] for CDI.
pub const ANN_DEFAULT_VIRT_CLASS: &str = "storageclass.kubevirt.io/is-default-virt-class";

/// PVC: the node a WaitForFirstConsumer claim is to be provisioned on.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// PVC: the provisioner expected to provision it.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// PVC: the beta spelling kube-controller-manager still writes.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// PVC: binding finished.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// PVC/PV: the binder (not the user) made the binding.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// PV: the provisioner that created it.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Node label matched by a provisioned PV's node affinity.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// CDI's API group.
pub const CDI_GROUP: &str = "cdi.kubevirt.io";
/// The CDIConfig singleton.
pub const CDI_CONFIG_NAME: &str = "config";
/// Default filesystem overhead (manual §9.4: 5.5%).
pub const DEFAULT_FS_OVERHEAD: &str = "0.055";

/// `app` label of every CDI worker Pod and of the PVCs CDI creates.
pub const APP_LABEL: &str = "app";
/// Value of [`APP_LABEL`] on CDI's objects.
pub const CDI_APP: &str = "containerized-data-importer";
/// Label naming a worker Pod's role (`importer`, `cdi-upload-server`, `cloner`).
pub const CDI_COMPONENT_LABEL: &str = "cdi.kubevirt.io";
/// Container name of the importer Pod.
pub const IMPORTER_CONTAINER: &str = "importer";
/// Image of the importer Pod's container (informational: the node agent runs `oxivirt importer`).
pub const IMPORTER_IMAGE: &str = "oxivirt/cdi-importer";
/// Name of the volume holding the target PVC in a worker Pod (upstream's).
pub const DATA_VOLUME_NAME: &str = "cdi-data-vol";

/// PVC annotations CDI's controllers use to talk to their worker Pods.
pub mod ann {
    pub const ENDPOINT: &str = "cdi.kubevirt.io/storage.import.endpoint";
    pub const SOURCE: &str = "cdi.kubevirt.io/storage.import.source";
    pub const SECRET: &str = "cdi.kubevirt.io/storage.import.secretName";
    pub const CERT_CONFIG_MAP: &str = "cdi.kubevirt.io/storage.import.certConfigMap";
    pub const EXTRA_HEADERS: &str = "cdi.kubevirt.io/storage.import.extraHeaders";
    pub const CONTENT_TYPE: &str = "cdi.kubevirt.io/storage.contentType";
    pub const IMPORT_POD: &str = "cdi.kubevirt.io/storage.import.importPodName";
    pub const POD_PHASE: &str = "cdi.kubevirt.io/storage.pod.phase";
    pub const POD_READY: &str = "cdi.kubevirt.io/storage.pod.ready";
    pub const POD_RESTARTS: &str = "cdi.kubevirt.io/storage.pod.restarts";
    pub const RUNNING: &str = "cdi.kubevirt.io/storage.condition.running";
    pub const RUNNING_REASON: &str = "cdi.kubevirt.io/storage.condition.running.reason";
    pub const RUNNING_MESSAGE: &str = "cdi.kubevirt.io/storage.condition.running.message";
    pub const PROGRESS: &str = "cdi.kubevirt.io/storage.populator.progress";
    pub const PREALLOCATION_REQUESTED: &str = "cdi.kubevirt.io/storage.preallocation.requested";
    pub const BIND_IMMEDIATE: &str = "cdi.kubevirt.io/storage.bind.immediate.requested";
    pub const POPULATED_FOR: &str = "cdi.kubevirt.io/storage.populatedFor";
    pub const REQUESTED_SIZE: &str = "cdi.kubevirt.io/storage.requested.size";
    /// A claim to be filled by an upload (value empty; virtctl and upload DataVolumes set it).
    pub const UPLOAD_TARGET: &str = "cdi.kubevirt.io/storage.upload.target";
    pub const IMPORT_FATAL: &str = "cdi.kubevirt.io/storage.import.fatalError";
}

/// Values of [`ann::SOURCE`].
pub mod source {
    pub const HTTP: &str = "http";
    pub const REGISTRY: &str = "registry";
    pub const NONE: &str = "none";
    /// oxivirt's: the worker is an upload server (upstream runs a separate image).
    pub const UPLOAD: &str = "upload";
}

/// The `cdi.kubevirt.io` label of an upload worker Pod (upstream's).
pub const UPLOAD_COMPONENT: &str = "cdi-upload-server";
/// The socket an upload worker serves in its status directory (the node agent relays to it).
pub const UPLOAD_SOCKET: &str = "upload.sock";

/// Environment of the importer process (upstream's variable names).
pub mod env {
    pub const SOURCE: &str = "IMPORTER_SOURCE";
    pub const ENDPOINT: &str = "IMPORTER_ENDPOINT";
    pub const CONTENT_TYPE: &str = "IMPORTER_CONTENTTYPE";
    pub const IMAGE_SIZE: &str = "IMPORTER_IMAGE_SIZE";
    pub const ACCESS_KEY_ID: &str = "IMPORTER_ACCESS_KEY_ID";
    pub const SECRET_KEY: &str = "IMPORTER_SECRET_KEY";
    pub const CERT_DIR: &str = "IMPORTER_CERT_DIR";
    pub const EXTRA_HEADERS: &str = "IMPORTER_EXTRA_HEADER";
    pub const FS_OVERHEAD: &str = "FILESYSTEM_OVERHEAD";
    pub const PREALLOCATION: &str = "PREALLOCATION";
    pub const OWNER_UID: &str = "OWNER_UID";
    pub const INSECURE_TLS: &str = "INSECURE_TLS";
    /// oxivirt's: where the target volume is (upstream mounts it at `/data`).
    pub const DATA_DIR: &str = "OXIVIRT_IMPORTER_DATA";
    /// oxivirt's: where the progress and termination files go.
    pub const STATUS_DIR: &str = "OXIVIRT_IMPORTER_STATUS_DIR";
    /// oxivirt's: the volume mode of the target (`Filesystem` or `Block`).
    pub const VOLUME_MODE: &str = "OXIVIRT_IMPORTER_VOLUME_MODE";
}

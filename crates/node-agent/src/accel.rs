//! Deciding between KVM and TCG by running a tiny guest, and caching the answer.
//!
//! `/dev/kvm` opening is not proof that KVM works: on nested hosts it may open and even run
//! real-mode code, then hang as soon as the guest enters protected mode (which is where Linux
//! guests stop on our machines, right after "Probing EDD"). So the probe boots a 64 KiB
//! firmware blob that walks real mode → protected mode → long mode with paging, writing one
//! byte to the serial port at each step (`R`, `P`, `L`), and KVM is chosen only if `L` arrives
//! within [`PROBE_TIMEOUT`]. The decision is cached per host boot in
//! `<data-dir>/node/accel.json`; `OXIVIRT_ACCEL=kvm|tcg` overrides it (tests, operators).
//! Per VM, [`for_launch`] turns KVM into TCG when the cluster configuration says
//! `useEmulation` (KubeVirt CR, or the HyperConverged's KubeVirt patch annotation).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::AgentConfig;

/// How long the probe guest may take to reach long mode (TCG does it in ~50 ms).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The hypervisor acceleration a node offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulation.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The acceleration decision with its reason, as cached in `accel.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccelDecision {
    /// What the node offers.
    pub accel: Accel,
    /// CamelCase reason: `KVMWorks`, `KVMUnavailable`, `KVMProbeFailed` or `Forced`.
    pub reason: String,
    /// A sentence for people (also the VMI `SoftwareEmulation` condition's message).
    pub message: String,
    /// The host boot the probe ran in (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: String,
    /// The QEMU binary that was probed.
    #[serde(default)]
    pub qemu: String,
}

/// Why no decision could be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `OXIVIRT_ACCEL` holds something other than `kvm` or `tcg`.
    #[error("OXIVIRT_ACCEL={value:?} is neither \"kvm\" nor \"tcg\"")]
    BadOverride { value: String },
    /// The cache file or its directory could not be written.
    #[error("cannot write the acceleration cache {}", path.display())]
    WriteCache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Returns the node's acceleration: the override, else the cached decision of this host boot,
/// else a fresh probe (then cached).
///
/// # Errors
/// [`Error::BadOverride`] for a bad `OXIVIRT_ACCEL`; [`Error::WriteCache`] when the cache
/// cannot be written.
pub(crate) async fn decide(config: &AgentConfig) -> Result<AccelDecision, Error> {
    if let Ok(value) = std::env::var("OXIVIRT_ACCEL") {
        let accel = match value.as_str() {
            "kvm" => Accel::Kvm,
            "tcg" => Accel::Tcg,
            _ => return Err(Error::BadOverride { value }),
        };
        return Ok(AccelDecision {
            accel,
            reason: "Forced".into(),
            message: format!("acceleration forced to {accel} by OXIVIRT_ACCEL"),
            boot_id: boot_id(),
            qemu: config.qemu.clone(),
        });
    }
    let dir = config.data_dir.join("node");
    let path = dir.join("accel.json");
    let boot = boot_id();
    if let Some(cached) = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<AccelDecision>(&bytes).ok())
    {
        if cached.boot_id == boot && cached.qemu == config.qemu {
            return Ok(cached);
        }
    }
    let write_err = |source| Error::WriteCache {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(write_err)?;
    let mut decision = probe(&config.qemu, &dir).await;
    decision.boot_id = boot;
    let tmp = dir.join("accel.json.tmp");
    let bytes = serde_json::to_vec_pretty(&decision).map_err(|e| write_err(e.into()))?;
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(decision)
}

/// The reason of a TCG decision forced by the cluster configuration on a KVM node.
pub(crate) const USE_EMULATION: &str = "UseEmulation";
/// The message that goes with [`USE_EMULATION`] on a VMI.
pub(crate) const USE_EMULATION_MESSAGE: &str = "developerConfiguration.useEmulation is true in \
    the cluster configuration: the VM runs under TCG software emulation although KVM works";

/// HCO's annotation carrying a JSON patch for the KubeVirt CR it manages: HyperConverged has
/// no `useEmulation` field, so upstream's documented way to set it is a patch there.
const HCO_KUBEVIRT_PATCH: &str = "kubevirt.kubevirt.io/jsonpatch";

/// The acceleration for a VM about to start: the node's decision, except that
/// `spec.configuration.developerConfiguration.useEmulation: true` (in a KubeVirt CR, or in
/// the HyperConverged's KubeVirt patch annotation) forces TCG where KVM works. Read at every
/// start, as upstream's virt-handler reads its live cluster configuration; on a TCG node
/// nothing is read.
pub(crate) async fn for_launch(client: &kube::Client, node: &AccelDecision) -> AccelDecision {
    if node.accel == Accel::Tcg {
        return node.clone();
    }
    match use_emulation_source(client).await {
        Some(source) => AccelDecision {
            accel: Accel::Tcg,
            reason: USE_EMULATION.into(),
            message: format!(
                "{source} sets developerConfiguration.useEmulation: true; using TCG software \
                 emulation although KVM works"
            ),
            ..node.clone()
        },
        None => node.clone(),
    }
}

/// Which object turns `useEmulation` on, if any. Unreadable objects count as unset: the
/// node's own decision stands.
async fn use_emulation_source(client: &kube::Client) -> Option<String> {
    use kube::api::{Api, DynamicObject, ListParams};
    use kube::core::{ApiResource, GroupVersionKind};
    let kubevirt = ApiResource::from_gvk(&GroupVersionKind::gvk("kubevirt.io", "v1", "KubeVirt"));
    let crs: Api<DynamicObject> = Api::all_with(client.clone(), &kubevirt);
    let listed = crs.list(&ListParams::default()).await.map(|l| l.items);
    for cr in listed.unwrap_or_default() {
        let spec = cr.data.get("spec").cloned().unwrap_or_default();
        if use_emulation(&spec) {
            let namespace = cr.metadata.namespace.unwrap_or_default();
            let name = cr.metadata.name.unwrap_or_default();
            return Some(format!("KubeVirt {namespace}/{name}"));
        }
    }
    let hco = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "hco.kubevirt.io",
        "v1beta1",
        "HyperConverged",
    ));
    let namespace = oxivirt_api::content::OPENSHIFT_CNV_NAMESPACE;
    let hcos: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &hco);
    let name = oxivirt_api::content::HYPERCONVERGED_NAME;
    let found = hcos.get_opt(name).await.ok().flatten()?;
    let patch = found
        .metadata
        .annotations
        .as_ref()?
        .get(HCO_KUBEVIRT_PATCH)?;
    patched_use_emulation(patch)
        .then(|| format!("HyperConverged {namespace}/{name} (annotation {HCO_KUBEVIRT_PATCH})"))
}

/// `spec.configuration.developerConfiguration.useEmulation` of a KubeVirt CR's `spec`.
fn use_emulation(spec: &serde_json::Value) -> bool {
    spec.pointer("/configuration/developerConfiguration/useEmulation")
        == Some(&serde_json::Value::Bool(true))
}

/// Whether HCO's KubeVirt patch, applied to the KubeVirt CR HCO would generate (which always
/// has a `developerConfiguration`), turns `useEmulation` on. A patch that does not apply
/// counts as unset, as HCO then ignores it.
fn patched_use_emulation(patch: &str) -> bool {
    let Ok(patch) = serde_json::from_str::<serde_json::Value>(patch) else {
        return false;
    };
    let base = serde_json::json!({"spec": {"configuration": {"developerConfiguration": {}}}});
    oxivirt_patch::json_patch(&base, &patch).is_ok_and(|cr| use_emulation(&cr["spec"]))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Probes KVM: `/dev/kvm` must open read-write and the probe guest must reach long mode.
pub(crate) async fn probe(qemu: &str, work_dir: &Path) -> AccelDecision {
    let tcg = |reason: &str, message: String| AccelDecision {
        accel: Accel::Tcg,
        reason: reason.into(),
        message,
        boot_id: String::new(),
        qemu: qemu.into(),
    };
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(
            "KVMUnavailable",
            format!("/dev/kvm cannot be opened ({e}); using TCG software emulation"),
        );
    }
    let blob = work_dir.join("accel-probe.bin");
    if let Err(e) = std::fs::write(&blob, probe_blob()) {
        return tcg(
            "KVMProbeFailed",
            format!("cannot write the probe firmware {}: {e}", blob.display()),
        );
    }
    let outcome = run_probe_guest(qemu, Accel::Kvm, &blob, PROBE_TIMEOUT).await;
    let _ = std::fs::remove_file(&blob);
    match outcome {
        Ok(stages) if stages.contains('L') => AccelDecision {
            accel: Accel::Kvm,
            reason: "KVMWorks".into(),
            message: "a probe guest reached 64-bit mode under KVM".into(),
            boot_id: String::new(),
            qemu: qemu.into(),
        },
        Ok(stages) => tcg(
            "KVMProbeFailed",
            format!(
                "/dev/kvm opens, but a probe guest under KVM {} within {} s (nested or broken KVM); \
                 using TCG software emulation",
                describe_stages(&stages),
                PROBE_TIMEOUT.as_secs()
            ),
        ),
        Err(e) => tcg(
            "KVMProbeFailed",
            format!("cannot run the KVM probe with {qemu}: {e}; using TCG software emulation"),
        ),
    }
}

fn describe_stages(stages: &str) -> &'static str {
    if stages.contains('P') {
        "stopped after protected mode, before long mode"
    } else if stages.contains('R') {
        "stopped after real mode, before protected mode"
    } else {
        "printed nothing"
    }
}

/// Boots the probe firmware under `accel` and returns the stage bytes it printed (`R`, `P`,
/// `L`) before it reached long mode or `timeout` passed.
pub(crate) async fn run_probe_guest(
    qemu: &str,
    accel: Accel,
    bios: &Path,
    timeout: Duration,
) -> io::Result<String> {
    let mut command = tokio::process::Command::new(qemu);
    command
        .arg("-machine")
        .arg(format!("q35,accel={accel}"))
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-m", "16", "-no-reboot", "-bios"])
        .arg(bios)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // A probe stuck in a broken KVM must not outlive the agent if the agent itself is
    // killed mid-probe (kill_on_drop only covers an orderly drop): the kernel kills it.
    #[allow(
        unsafe_code,
        reason = "pre_exec is the only way to set PR_SET_PDEATHSIG"
    )]
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(io::Error::from)
        });
    }
    let mut child = command.spawn()?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("qemu stdout was not captured"))?;
    let mut seen = String::new();
    let read = async {
        let mut buf = [0u8; 64];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend(buf[..n].iter().map(|&b| char::from(b)));
                    if seen.contains('L') {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    let _ = child.kill().await;
    Ok(seen)
}

/// The probe firmware: 64 KiB mapped below 4 GiB and at 0xF0000, entered at 0xFFFF0.
///
/// Assembled from (GNU as, linked at 0xF0000):
/// ```text
/// 0x000  gdt: null; code32 0x00CF9A000000FFFF; data32 0x00CF92000000FFFF; code64 0x00AF9A000000FFFF
/// 0x020  gdtr: .word 0x1f; .long 0xF0000
/// 0x100  .code16: cli; out 'R' to 0x3f8; lgdtl %cs:0x20; cr0.PE=1; ljmpl $0x08,$start32
///        .code32: ds=es=ss=0x10; out 'P'; zero 0x1000..0x4000; PML4[0]=0x2003; PDPT[0]=0x3003;
///        PD[0]=0x83 (2 MiB identity); cr4.PAE; cr3=0x1000; EFER.LME; cr0.PG; ljmp $0x18,$start64
///        .code64: out 'L'; 1: hlt; jmp 1b
/// 0xFFF0 ljmp $0xF000,$0x100 (reset vector); the rest is hlt (0xF4)
/// ```
pub(crate) fn probe_blob() -> Vec<u8> {
    const GDT: [u8; 0x28] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf,
        0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a,
        0xaf, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00,
    ];
    const CODE: [u8; 0x98] = [
        0xfa, 0xba, 0xf8, 0x03, 0xb0, 0x52, 0xee, 0x2e, 0x66, 0x0f, 0x01, 0x16, 0x20, 0x00, 0x0f,
        0x20, 0xc0, 0x66, 0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x20, 0x01, 0x0f, 0x00,
        0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x66, 0xba, 0xf8,
        0x03, 0xb0, 0x50, 0xee, 0xbf, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0, 0xb9, 0x00, 0x0c, 0x00,
        0x00, 0xf3, 0xab, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, 0xc7, 0x05,
        0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83,
        0x00, 0x00, 0x00, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x10,
        0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01,
        0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0,
        0xea, 0x8e, 0x01, 0x0f, 0x00, 0x18, 0x00, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x4c, 0xee, 0xf4,
        0xeb, 0xfd,
    ];
    const RESET: [u8; 5] = [0xea, 0x00, 0x01, 0x00, 0xf0];
    let mut blob = vec![0xf4u8; 0x10000];
    blob[..GDT.len()].copy_from_slice(&GDT);
    blob[0x100..0x100 + CODE.len()].copy_from_slice(&CODE);
    blob[0xfff0..0xfff0 + RESET.len()].copy_from_slice(&RESET);
    blob
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_blob_is_64_kib_with_the_reset_vector_jumping_to_the_code() {
        let blob = probe_blob();
        assert_eq!(blob.len(), 65536);
        assert_eq!(&blob[0xfff0..0xfff5], &[0xea, 0x00, 0x01, 0x00, 0xf0]);
        assert_eq!(blob[0x100], 0xfa, "cli at 0xF0100");
    }

    #[tokio::test]
    async fn probe_guest_reaches_long_mode_under_tcg() {
        if std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: qemu-system-x86_64 is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bios = dir.path().join("probe.bin");
        std::fs::write(&bios, probe_blob()).unwrap();
        let stages = run_probe_guest(
            "qemu-system-x86_64",
            Accel::Tcg,
            &bios,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(stages, "RPL");
    }

    /// One test for everything that reads `OXIVIRT_ACCEL`, so no other test sees it set.
    #[tokio::test]
    async fn override_wins_a_bad_override_is_an_error_and_the_cache_of_this_boot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig::new("n", dir.path());
        std::env::set_var("OXIVIRT_ACCEL", "kvm");
        let forced = decide(&config).await;
        std::env::set_var("OXIVIRT_ACCEL", "hvf");
        let bad = decide(&config).await;
        std::env::remove_var("OXIVIRT_ACCEL");
        let forced = forced.unwrap();
        assert_eq!(
            (forced.accel, forced.reason.as_str()),
            (Accel::Kvm, "Forced")
        );
        assert!(matches!(bad, Err(Error::BadOverride { .. })));
        assert!(
            !dir.path().join("node/accel.json").exists(),
            "overrides are not cached"
        );

        let cached = AccelDecision {
            accel: Accel::Kvm,
            reason: "KVMWorks".into(),
            message: "cached".into(),
            boot_id: boot_id(),
            qemu: config.qemu.clone(),
        };
        std::fs::create_dir_all(dir.path().join("node")).unwrap();
        std::fs::write(
            dir.path().join("node/accel.json"),
            serde_json::to_vec(&cached).unwrap(),
        )
        .unwrap();
        assert_eq!(
            decide(&config).await.unwrap(),
            cached,
            "no probe within the same boot"
        );
    }

    #[test]
    fn use_emulation_is_read_from_the_kubevirt_cr_and_from_hcos_patch_annotation() {
        let spec = serde_json::json!({"configuration": {"developerConfiguration": {"useEmulation": true}}});
        assert!(use_emulation(&spec));
        assert!(!use_emulation(&serde_json::json!({"configuration": {}})));
        let whole = r#"[{"op": "add", "path": "/spec/configuration/developerConfiguration",
            "value": {"useEmulation": true}}]"#;
        let field = r#"[{"op": "add",
            "path": "/spec/configuration/developerConfiguration/useEmulation", "value": true}]"#;
        assert!(patched_use_emulation(whole) && patched_use_emulation(field));
        let other = r#"[{"op": "add",
            "path": "/spec/configuration/developerConfiguration/featureGates", "value": ["Sidecar"]}]"#;
        assert!(!patched_use_emulation(other));
        assert!(!patched_use_emulation("not json"));
        assert!(!patched_use_emulation(
            r#"[{"op": "remove", "path": "/nope"}]"#
        ));
    }

    #[test]
    fn stages_are_described_by_the_last_mode_reached() {
        assert!(describe_stages("R").contains("before protected mode"));
        assert!(describe_stages("RP").contains("before long mode"));
        assert_eq!(describe_stages(""), "printed nothing");
    }
}

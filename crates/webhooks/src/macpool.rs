//! KubeMacPool's VirtualMachine webhook (`mutatevirtualmachines.kubemacpool.io`, manual
//! §8.1.5 and §8.14): on create and update every template interface without a `macAddress`
//! gets a free MAC of the pool range, so the VM keeps it across restarts; an interface whose
//! own `macAddress` another VirtualMachine already holds is rejected. Namespaces labelled
//! `mutatevirtualmachines.kubemacpool.io=ignore` opt out; VMIs are never touched (standalone
//! VMIs are not KubeMacPool's, and a VM's VMI inherits the template's MACs).
//!
//! The pool is the set of MACs in the templates of all VirtualMachines, read at admission:
//! the webhook keeps no state. A free MAC is searched from an offset derived from the VM's
//! namespace and name, so two VMs admitted at the same moment (each seeing the pool before the
//! other's write) start far apart in the range instead of taking the same first free MAC; the
//! network crate's pool controller reports any collision that still slips through.

use serde_json::{json, Value};

use crate::json::{array, child, index, nonempty, object_at, str_at};
use crate::review::{Cause, Operation, Outcome, Request};
use crate::Cluster;

/// The opt-out label (and value `ignore`) of a namespace.
pub const OPT_OUT_LABEL: &str = "mutatevirtualmachines.kubemacpool.io";
/// The upstream webhook's registered name, which rejections carry.
pub const WEBHOOK: &str = "mutatevirtualmachines.kubemacpool.io";
/// How kubemacpool's rejections of a VM begin; [`crate::denial`] recognises its causes by it.
pub(crate) const REJECTION_PREFIX: &str = "Failed to create virtual machine allocation error: ";
/// The most candidates one admission looks at before calling the range full.
const MAX_PROBES: u64 = 1 << 20;

/// A MAC range, inclusive, as 48-bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacRange {
    /// First MAC.
    pub start: u64,
    /// Last MAC.
    pub end: u64,
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case) into a number.
pub fn parse_mac(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    parts.iter().try_fold(0u64, |acc, p| {
        (p.len() == 2).then_some(())?;
        Some(acc << 8 | u64::from(u8::from_str_radix(p, 16).ok()?))
    })
}

/// Formats a number as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: u64) -> String {
    (0..6)
        .rev()
        .map(|i| format!("{:02x}", (mac >> (i * 8)) & 0xff))
        .collect::<Vec<_>>()
        .join(":")
}

impl MacRange {
    /// KubeMacPool's default range in OpenShift Virtualization.
    pub fn default_range() -> Self {
        MacRange {
            start: 0x02_00_00_00_00_00,
            end: 0x02_ff_ff_ff_ff_ff,
        }
    }

    /// Parses `START-END` (two MACs, START not after END).
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split_once('-')
            .and_then(|(a, b)| Some((parse_mac(a.trim())?, parse_mac(b.trim())?)))
            .filter(|(a, b)| a <= b)
            .map(|(start, end)| MacRange { start, end })
            .ok_or_else(|| format!("OXIVIRT_MAC_RANGE={text:?} is not START-END (two MACs)"))
    }

    /// `OXIVIRT_MAC_RANGE=START-END`, else the default.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("OXIVIRT_MAC_RANGE") {
            Err(_) => Ok(Self::default_range()),
            Ok(text) => Self::parse(&text),
        }
    }

    fn size(self) -> u64 {
        self.end - self.start + 1
    }
}

/// Who holds a MAC: `namespace/name` of the VM and the interface.
struct Holder {
    vm: String,
    interface: String,
}

const INTERFACES: [&str; 6] = [
    "spec",
    "template",
    "spec",
    "domain",
    "devices",
    "interfaces",
];
const FIELD: &str = "spec.template.spec.domain.devices.interfaces";

fn key_of(vm: &Value) -> String {
    format!(
        "{}/{}",
        str_at(vm, &["metadata", "namespace"]).unwrap_or_default(),
        str_at(vm, &["metadata", "name"]).unwrap_or_default()
    )
}

/// Assigns pool MACs to `obj`'s interfaces that have none and rejects MACs other VMs hold.
pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    let Ok(range) = MacRange::from_env() else {
        return; // the server refuses to start with a bad range; nothing to allocate from
    };
    admit_in(req, obj, cluster, range, out).await;
}

async fn admit_in(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    range: MacRange,
    out: &mut Outcome,
) {
    let interfaces = array(obj, &INTERFACES).to_vec();
    let old_macs: Vec<Option<u64>> = match (req.operation, req.old) {
        (Operation::Update, Some(old)) => array(old, &INTERFACES)
            .iter()
            .map(|i| nonempty(i, &["macAddress"]).and_then(parse_mac))
            .collect(),
        _ => Vec::new(),
    };
    let missing = interfaces
        .iter()
        .any(|i| nonempty(i, &["macAddress"]).is_none());
    // Only MACs that are new to this VM are checked: a VM that already holds a MAC keeps it.
    let requested: Vec<(usize, u64)> = interfaces
        .iter()
        .enumerate()
        .filter_map(|(n, i)| Some((n, nonempty(i, &["macAddress"]).and_then(parse_mac)?)))
        .filter(|(_, mac)| !old_macs.contains(&Some(*mac)))
        .collect();
    if (!missing && requested.is_empty()) || opted_out(req.namespace, cluster).await {
        return;
    }
    let own = key_of(obj);
    let mut held: std::collections::HashMap<u64, Holder> = std::collections::HashMap::new();
    for vm in cluster.list("kubevirt.io", "virtualmachines").await {
        let vm_key = key_of(&vm);
        if vm_key == own {
            continue;
        }
        for iface in array(&vm, &INTERFACES) {
            if let Some(mac) = nonempty(iface, &["macAddress"]).and_then(parse_mac) {
                let interface = str_at(iface, &["name"]).unwrap_or_default().to_string();
                held.entry(mac).or_insert(Holder {
                    vm: vm_key.clone(),
                    interface,
                });
            }
        }
    }
    for (n, mac) in &requested {
        if let Some(holder) = held.get(mac) {
            let name = str_at(&interfaces[*n], &["name"]).unwrap_or_default();
            out.causes.push(Cause::duplicate(
                child(&index(FIELD, *n), "macAddress"),
                format!(
                    "{REJECTION_PREFIX}failed to allocate requested mac address {} for interface {name}: \
                     it is already in use by interface {} of VirtualMachine {}",
                    format_mac(*mac),
                    holder.interface,
                    holder.vm
                ),
            ));
        }
    }
    if !out.causes.is_empty() || !missing {
        return;
    }
    let mut used: std::collections::HashSet<u64> = held.keys().copied().collect();
    used.extend(
        interfaces
            .iter()
            .filter_map(|i| nonempty(i, &["macAddress"]).and_then(parse_mac)),
    );
    let mut next = range.start + fnv1a(own.as_bytes()) % range.size();
    let mut assigned = interfaces.clone();
    for iface in &mut assigned {
        if nonempty(iface, &["macAddress"]).is_some() {
            continue;
        }
        let Some(mac) = first_free(range, next, |m| used.contains(&m)) else {
            out.causes.push(Cause::invalid(
                FIELD,
                format!(
                    "{REJECTION_PREFIX}Failed to allocate mac to the vm object: the range {}-{} is full",
                    format_mac(range.start),
                    format_mac(range.end)
                ),
            ));
            return;
        };
        used.insert(mac);
        next = if mac == range.end {
            range.start
        } else {
            mac + 1
        };
        iface["macAddress"] = json!(format_mac(mac));
    }
    if let Some(devices) = object_at(obj, &INTERFACES[..5]) {
        devices.insert("interfaces".into(), Value::Array(assigned));
    }
}

/// The first MAC from `from` on (wrapping in `range`) that `taken` says is free.
fn first_free(range: MacRange, from: u64, taken: impl Fn(u64) -> bool) -> Option<u64> {
    (0..range.size().min(MAX_PROBES))
        .map(|step| range.start + (from - range.start + step) % range.size())
        .find(|mac| !taken(*mac))
}

async fn opted_out(namespace: &str, cluster: &dyn Cluster) -> bool {
    cluster
        .get("", "namespaces", "", namespace)
        .await
        .and_then(|ns| str_at(&ns, &["metadata", "labels", OPT_OUT_LABEL]).map(str::to_string))
        .as_deref()
        == Some("ignore")
}

/// FNV-1a, 64 bits: a stable spread of VM names over the range.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeCluster};

    fn vm(ns: &str, name: &str, ifaces: Value) -> Value {
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
               "metadata": {"namespace": ns, "name": name},
               "spec": {"template": {"spec": {"domain": {"devices": {"interfaces": ifaces}}}}}})
    }

    fn request<'a>(ns: &'a str, old: Option<&'a Value>) -> Request<'a> {
        Request {
            group: "kubevirt.io",
            kind: "VirtualMachine",
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            namespace: ns,
            old,
            user: "admin",
        }
    }

    fn macs(v: &Value) -> Vec<String> {
        array(v, &INTERFACES)
            .iter()
            .map(|i| str_at(i, &["macAddress"]).unwrap_or_default().to_string())
            .collect()
    }

    const SMALL: MacRange = MacRange {
        start: 0x02_00_00_00_00_00,
        end: 0x02_00_00_00_00_03,
    };

    #[test]
    fn ranges_and_macs_parse_and_print() {
        assert_eq!(parse_mac("02:00:00:00:00:2A"), Some(0x02_00_00_00_00_2a));
        assert_eq!(format_mac(0x02_00_00_00_00_2a), "02:00:00:00:00:2a");
        assert_eq!(parse_mac("02:00:00"), None);
        assert_eq!(
            MacRange::parse("02:00:00:00:00:00 - 02:00:00:00:00:03"),
            Ok(SMALL)
        );
        assert!(MacRange::parse("02:00:00:00:00:03-02:00:00:00:00:00").is_err());
    }

    #[test]
    fn interfaces_without_a_mac_get_free_distinct_ones_and_set_ones_stay() {
        let held = vm(
            "ns",
            "a",
            json!([{"name": "n", "macAddress": "02:00:00:00:00:01"}]),
        );
        let cluster =
            FakeCluster::default().with("kubevirt.io", "virtualmachines", "ns", "a", held);
        let mut obj = vm(
            "ns",
            "b",
            json!([{"name": "x"}, {"name": "y", "macAddress": "02:00:00:00:00:02"}, {"name": "z"}]),
        );
        let mut out = Outcome::default();
        block_on(admit_in(
            &request("ns", None),
            &mut obj,
            &cluster,
            SMALL,
            &mut out,
        ));
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        let got = macs(&obj);
        assert_eq!(got[1], "02:00:00:00:00:02");
        let mut all = got.clone();
        all.push("02:00:00:00:00:01".into());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4, "{got:?} reuses a held MAC");
    }

    #[test]
    fn a_mac_another_vm_holds_is_rejected_naming_the_holder() {
        let held = vm(
            "ns",
            "a",
            json!([{"name": "n", "macAddress": "02:00:00:00:00:01"}]),
        );
        let cluster =
            FakeCluster::default().with("kubevirt.io", "virtualmachines", "ns", "a", held);
        let mut obj = vm(
            "other",
            "b",
            json!([{"name": "x", "macAddress": "02:00:00:00:00:01"}]),
        );
        let mut out = Outcome::default();
        block_on(admit_in(
            &request("other", None),
            &mut obj,
            &cluster,
            SMALL,
            &mut out,
        ));
        assert_eq!(out.causes.len(), 1);
        let cause = &out.causes[0];
        assert_eq!(
            cause.field,
            "spec.template.spec.domain.devices.interfaces[0].macAddress"
        );
        assert!(
            cause.message.contains("VirtualMachine ns/a"),
            "{}",
            cause.message
        );
        let denial = crate::denial(
            "kubevirt.io",
            "VirtualMachine",
            Operation::Create,
            &out.causes,
        )
        .expect("a denial");
        assert_eq!(denial.webhook, WEBHOOK);
    }

    #[test]
    fn an_update_keeps_the_vms_own_mac_and_a_full_range_is_said() {
        let a = vm(
            "ns",
            "a",
            json!([{"name": "n", "macAddress": "02:00:00:00:00:00"}]),
        );
        let cluster = FakeCluster::default()
            .with("kubevirt.io", "virtualmachines", "ns", "a", a.clone())
            .with(
                "kubevirt.io",
                "virtualmachines",
                "ns",
                "b",
                vm(
                    "ns",
                    "b",
                    json!([{"name": "n", "macAddress": "02:00:00:00:00:00"}]),
                ),
            );
        // A collision from before (the store holds both) does not block updates of either.
        let mut obj = a.clone();
        let mut out = Outcome::default();
        block_on(admit_in(
            &request("ns", Some(&a)),
            &mut obj,
            &cluster,
            SMALL,
            &mut out,
        ));
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        let tiny = MacRange {
            start: 0x02_00_00_00_00_00,
            end: 0x02_00_00_00_00_00,
        };
        let mut obj = vm("ns", "c", json!([{"name": "n"}]));
        block_on(admit_in(
            &request("ns", None),
            &mut obj,
            &cluster,
            tiny,
            &mut out,
        ));
        assert!(
            out.causes[0].message.contains("is full"),
            "{:?}",
            out.causes
        );
    }

    #[test]
    fn opted_out_namespaces_are_left_alone() {
        let cluster = FakeCluster::default().with(
            "",
            "namespaces",
            "",
            "quiet",
            json!({"metadata": {"name": "quiet", "labels": {OPT_OUT_LABEL: "ignore"}}}),
        );
        let mut obj = vm("quiet", "a", json!([{"name": "n"}]));
        let mut out = Outcome::default();
        block_on(admit_in(
            &request("quiet", None),
            &mut obj,
            &cluster,
            SMALL,
            &mut out,
        ));
        assert_eq!(macs(&obj), [""]);
    }
}

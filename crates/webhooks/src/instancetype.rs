//! Instance types: their own validation, finding the one a VM refers to, and the VM template
//! fields that conflict with it.
//!
//! Upstream: `pkg/instancetype/apply/{cpu,memory}.go` decide what conflicts (message "VM
//! field(s) %s conflicts with selected instance type", one cause per field); the VM admitter
//! rejects a reference it cannot resolve ("Failure to find instancetype: ..."). The manual (7.1.2)
//! requires `cpu` and `memory` on every instance type and rejects VMs that override them.

use serde_json::Value;

use crate::json::{at, bool_at, child, has, int_at, nonempty, str_at};
use crate::quantity::from_json;
use crate::review::{Cause, Outcome};
use crate::Cluster;

const GROUP: &str = "instancetype.kubevirt.io";

/// Validates a VirtualMachineInstancetype or VirtualMachineClusterInstancetype.
pub(crate) fn admit(obj: &Value, out: &mut Outcome) {
    match int_at(obj, &["spec", "cpu", "guest"]) {
        None => out
            .causes
            .push(Cause::required("spec.cpu.guest", "Required value")),
        Some(n) if n < 1 => out.causes.push(Cause::invalid(
            "spec.cpu.guest",
            format!(
                "Invalid value: {n}: spec.cpu.guest in body should be greater than or equal to 1"
            ),
        )),
        Some(_) => {}
    }
    match at(obj, &["spec", "memory", "guest"]).and_then(from_json) {
        None => out
            .causes
            .push(Cause::required("spec.memory.guest", "Required value")),
        Some(Err(e)) => {
            let text = at(obj, &["spec", "memory", "guest"])
                .map(Value::to_string)
                .unwrap_or_default();
            out.causes.push(Cause::invalid(
                "spec.memory.guest",
                format!("Invalid value: {text}: {e}"),
            ));
        }
        Some(Ok(q)) if q.is_zero() || q.is_negative() => out.causes.push(Cause::invalid(
            "spec.memory.guest",
            format!(
                "Invalid value: {q:?}: must be greater than zero",
                q = q.as_str()
            ),
        )),
        Some(Ok(_)) => {}
    }
}

/// Which of a VM's matchers is being resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Matcher {
    /// `spec.instancetype`.
    Instancetype,
    /// `spec.preference`.
    Preference,
}

impl Matcher {
    fn field(self) -> &'static str {
        match self {
            Matcher::Instancetype => "instancetype",
            Matcher::Preference => "preference",
        }
    }
    /// The kind a matcher without `kind` refers to (upstream VM mutator default).
    pub(crate) fn default_kind(self) -> &'static str {
        match self {
            Matcher::Instancetype => "VirtualMachineClusterInstancetype",
            Matcher::Preference => "VirtualMachineClusterPreference",
        }
    }
    /// (plural resource, namespaced) for a matcher kind, case-insensitively as upstream.
    fn resource(self, kind: &str) -> Option<(&'static str, bool)> {
        match (self, kind.to_ascii_lowercase().as_str()) {
            (Matcher::Instancetype, "virtualmachineinstancetype") => {
                Some(("virtualmachineinstancetypes", true))
            }
            (Matcher::Instancetype, "virtualmachineclusterinstancetype" | "") => {
                Some(("virtualmachineclusterinstancetypes", false))
            }
            (Matcher::Preference, "virtualmachinepreference") => {
                Some(("virtualmachinepreferences", true))
            }
            (Matcher::Preference, "virtualmachineclusterpreference" | "") => {
                Some(("virtualmachineclusterpreferences", false))
            }
            _ => None,
        }
    }
}

/// The `spec` of the instance type or preference a VM refers to. `Ok(None)` when the VM has no
/// such matcher (or asks for inference from a volume, which is resolved when the VM starts).
///
/// # Errors
/// A `FieldValueNotFound` cause when the reference cannot be resolved.
pub(crate) async fn find_spec(
    vm: &Value,
    namespace: &str,
    matcher: Matcher,
    cluster: &dyn Cluster,
) -> Result<Option<Value>, Cause> {
    let m = matcher.field();
    let Some(name) = nonempty(vm, &["spec", m, "name"]) else {
        return Ok(None);
    };
    let label = match matcher {
        Matcher::Instancetype => "instancetype",
        Matcher::Preference => "preference",
    };
    let fail =
        |msg: String| Cause::not_found(child("spec", m), format!("Failure to find {label}: {msg}"));
    // A captured revision wins: the VM keeps what it was created with even if the object changes.
    let status_key = format!("{m}Ref");
    let revision = nonempty(vm, &["spec", m, "revisionName"]).or_else(|| {
        nonempty(
            vm,
            &[
                "status",
                status_key.as_str(),
                "controllerRevisionRef",
                "name",
            ],
        )
    });
    if let Some(rev) = revision {
        if let Some(cr) = cluster
            .get("apps", "controllerrevisions", namespace, rev)
            .await
        {
            if let Some(spec) = cr.pointer("/data/spec") {
                return Ok(Some(spec.clone()));
            }
        }
    }
    let kind = str_at(vm, &["spec", m, "kind"]).unwrap_or("");
    let (resource, namespaced) = matcher
        .resource(kind)
        .ok_or_else(|| fail(format!("got unexpected kind in {label} matcher: {kind}")))?;
    let ns = if namespaced { namespace } else { "" };
    match cluster.get(GROUP, resource, ns, name).await {
        Some(obj) => Ok(Some(obj.get("spec").cloned().unwrap_or(Value::Null))),
        None => Err(fail(format!("{resource}.{GROUP} {name:?} not found"))),
    }
}

/// The template fields (relative to the template spec) that conflict with `itype`, in upstream's
/// order: every CPU conflict, then the first memory conflict.
pub(crate) fn conflicts(itype: &Value, spec: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    let both = |vm: &[&str], it: &[&str]| has(spec, vm) && has(itype, it);
    for (present, path) in [
        (
            has(spec, &["domain", "resources", "requests", "cpu"]),
            "domain.resources.requests.cpu",
        ),
        (
            has(spec, &["domain", "resources", "limits", "cpu"]),
            "domain.resources.limits.cpu",
        ),
        (
            int_at(spec, &["domain", "cpu", "sockets"]).unwrap_or(0) != 0,
            "domain.cpu.sockets",
        ),
        (
            int_at(spec, &["domain", "cpu", "cores"]).unwrap_or(0) != 0,
            "domain.cpu.cores",
        ),
        (
            int_at(spec, &["domain", "cpu", "threads"]).unwrap_or(0) != 0,
            "domain.cpu.threads",
        ),
        (
            nonempty(spec, &["domain", "cpu", "model"]).is_some() && has(itype, &["cpu", "model"]),
            "domain.cpu.model",
        ),
        (
            bool_at(spec, &["domain", "cpu", "dedicatedCpuPlacement"]) == Some(true)
                && has(itype, &["cpu", "dedicatedCPUPlacement"]),
            "domain.cpu.dedicatedCpuPlacement",
        ),
        (
            bool_at(spec, &["domain", "cpu", "isolateEmulatorThread"]) == Some(true)
                && has(itype, &["cpu", "isolateEmulatorThread"]),
            "domain.cpu.isolateEmulatorThread",
        ),
        (
            both(&["domain", "cpu", "numa"], &["cpu", "numa"]),
            "domain.cpu.numa",
        ),
        (
            both(&["domain", "cpu", "realtime"], &["cpu", "realtime"]),
            "domain.cpu.realtime",
        ),
    ] {
        if present {
            out.push(path);
        }
    }
    let memory = [
        (
            has(spec, &["domain", "memory", "guest"]),
            "domain.memory.guest",
        ),
        (
            both(&["domain", "memory", "hugepages"], &["memory", "hugepages"]),
            "domain.memory.hugepages",
        ),
        (
            both(&["domain", "memory", "maxGuest"], &["memory", "maxGuest"]),
            "domain.memory.maxGuest",
        ),
        (
            has(spec, &["domain", "resources", "requests", "memory"]),
            "domain.resources.requests.memory",
        ),
        (
            has(spec, &["domain", "resources", "limits", "memory"]),
            "domain.resources.limits.memory",
        ),
    ];
    out.extend(
        memory
            .into_iter()
            .find(|(present, _)| *present)
            .map(|(_, path)| path),
    );
    out
}

/// The upstream cause for one conflicting field at `template_path` + `field`.
pub(crate) fn conflict_cause(template_path: &str, field: &str) -> Cause {
    let path = child(template_path, field);
    Cause::invalid(
        &path,
        format!("VM field(s) {path} conflicts with selected instance type"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, messages, run, FakeCluster};
    use serde_json::json;

    #[test]
    fn instancetype_requires_cpu_and_memory_guest() {
        let mut obj = json!({"metadata": {"name": "csmall"}, "spec": {"cpu": {"guest": 1}}});
        let out = run(
            &FakeCluster::default(),
            GROUP,
            "VirtualMachineInstancetype",
            None,
            "u",
            &mut obj,
        );
        assert_eq!(
            out.causes,
            vec![Cause::required("spec.memory.guest", "Required value")]
        );
        let mut obj = json!({"metadata": {"name": "c"}, "spec": {"memory": {"guest": "1Gi"}}});
        let out = run(
            &FakeCluster::default(),
            GROUP,
            "VirtualMachineClusterInstancetype",
            None,
            "u",
            &mut obj,
        );
        assert_eq!(
            out.causes,
            vec![Cause::required("spec.cpu.guest", "Required value")]
        );
        let mut obj = json!({"metadata": {"name": "c"}, "spec": {"cpu": {"guest": 2}, "memory": {"guest": "256Mi"}}});
        assert!(run(
            &FakeCluster::default(),
            GROUP,
            "VirtualMachineInstancetype",
            None,
            "u",
            &mut obj
        )
        .allowed());
    }

    #[test]
    fn instancetype_memory_must_be_a_positive_quantity() {
        let mut obj = json!({"spec": {"cpu": {"guest": 0}, "memory": {"guest": "0"}}});
        let out = run(
            &FakeCluster::default(),
            GROUP,
            "VirtualMachineInstancetype",
            None,
            "u",
            &mut obj,
        );
        assert_eq!(out.causes.len(), 2);
        assert_eq!(
            messages(&out)[1],
            "Invalid value: \"0\": must be greater than zero"
        );
    }

    #[test]
    fn conflicts_follow_upstream_field_rules() {
        let itype = json!({"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}});
        let spec = json!({"domain": {"cpu": {"sockets": 1, "model": "host-passthrough"},
                                     "memory": {"guest": "1Gi"}, "resources": {"requests": {"memory": "1Gi"}}}});
        // The model only conflicts when the instance type sets one; memory reports its first conflict.
        assert_eq!(
            conflicts(&itype, &spec),
            vec!["domain.cpu.sockets", "domain.memory.guest"]
        );
        assert!(conflicts(&itype, &json!({"domain": {"devices": {}}})).is_empty());
    }

    #[test]
    fn missing_instancetype_is_reported_like_upstream() {
        let vm = json!({"spec": {"instancetype": {"name": "u1.medium", "kind": "VirtualMachineClusterInstancetype"}}});
        let err = block_on(find_spec(
            &vm,
            "ns",
            Matcher::Instancetype,
            &FakeCluster::default(),
        ))
        .expect_err("missing");
        assert_eq!(
            err.message,
            "Failure to find instancetype: virtualmachineclusterinstancetypes.instancetype.kubevirt.io \"u1.medium\" not found"
        );
        assert_eq!(err.reason, "FieldValueNotFound");
        let cluster = FakeCluster::default().with(
            GROUP,
            "virtualmachineinstancetypes",
            "ns",
            "c",
            json!({"spec": {"cpu": {"guest": 4}}}),
        );
        let vm =
            json!({"spec": {"instancetype": {"name": "c", "kind": "virtualmachineinstancetype"}}});
        let spec = block_on(find_spec(&vm, "ns", Matcher::Instancetype, &cluster)).expect("found");
        assert_eq!(spec, Some(json!({"cpu": {"guest": 4}})));
    }

    #[test]
    fn captured_revision_is_used_before_the_live_object() {
        let cluster = FakeCluster::default().with(
            "apps",
            "controllerrevisions",
            "ns",
            "vm-rev",
            json!({"data": {"spec": {"cpu": {"guest": 8}}}}),
        );
        let vm = json!({"spec": {"instancetype": {"name": "gone"}},
                        "status": {"instancetypeRef": {"controllerRevisionRef": {"name": "vm-rev"}}}});
        let spec = block_on(find_spec(&vm, "ns", Matcher::Instancetype, &cluster)).expect("found");
        assert_eq!(spec, Some(json!({"cpu": {"guest": 8}})));
    }
}

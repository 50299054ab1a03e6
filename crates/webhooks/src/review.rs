//! The admission request and its outcome, and how upstream's webhooks word a denial.

/// Usernames starting with this are oxivirt's own components; upstream exempts its service
/// accounts from the same rules (VMI spec immutability, status reverts).
pub const SYSTEM_USER_PREFIX: &str = "system:oxivirt:";

/// The write being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A replacement of an existing object (`Request::old` holds the stored one).
    Update,
}

/// One admission request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Kind, e.g. `VirtualMachineInstance`.
    pub kind: &'a str,
    /// Create or update.
    pub operation: Operation,
    /// Namespace of the object ("" for cluster-scoped kinds).
    pub namespace: &'a str,
    /// The stored object, on update.
    pub old: Option<&'a serde_json::Value>,
    /// The authenticated user name.
    pub user: &'a str,
}

impl Request<'_> {
    /// Whether the request comes from one of oxivirt's own components.
    pub fn is_system(&self) -> bool {
        self.user.starts_with(SYSTEM_USER_PREFIX)
    }
}

/// One reason for a rejection, as in a Kubernetes `Status`'s `details.causes[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// JSON path from the object root, e.g. `spec.domain.devices.disks[1].name`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden` or `FieldValueNotFound`.
    pub reason: String,
    /// Human text, upstream's wording where upstream has one.
    pub message: String,
}

impl Cause {
    fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            field: field.into(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueInvalid", field, message)
    }
    /// A `FieldValueRequired` cause.
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, message)
    }
    /// A `FieldValueNotSupported` cause.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueNotSupported", field, message)
    }
    /// A `FieldValueDuplicate` cause.
    pub fn duplicate(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueDuplicate", field, message)
    }
    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueForbidden", field, message)
    }
    /// A `FieldValueNotFound` cause.
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueNotFound", field, message)
    }
}

/// What admission decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rejection reasons; empty means admitted.
    pub causes: Vec<Cause>,
    /// `Warning` headers to return even when admitted.
    pub warnings: Vec<String>,
}

impl Outcome {
    /// Whether the object was admitted.
    pub fn allowed(&self) -> bool {
        self.causes.is_empty()
    }
}

/// How the upstream webhook that owns a kind words a rejection, as kube-apiserver relays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The webhook's registered name, e.g. `virtualmachine-validator.kubevirt.io`.
    pub webhook: &'static str,
    /// HTTP status code of the rejection (422 for `Invalid`, 403 for `Forbidden`).
    pub code: u16,
    /// The `Status.reason` (`Invalid` or `Forbidden`).
    pub reason: &'static str,
    /// The full `Status.message`: `admission webhook "<name>" denied the request: ...`.
    pub message: String,
}

/// Renders `causes` as the upstream webhook owning `group`/`kind` would, or `None` for kinds whose
/// rules are Kubernetes built-in validation (the API server then renders an ordinary `Invalid`
/// status: `<Kind> "<name>" is invalid: <field>: <message>`).
pub fn denial(group: &str, kind: &str, operation: Operation, causes: &[Cause]) -> Option<Denial> {
    if causes.is_empty() {
        return None;
    }
    let from_pool = causes
        .iter()
        .all(|c| c.message.starts_with(crate::macpool::REJECTION_PREFIX));
    let (webhook, code, reason) = match (group, kind, operation) {
        ("kubevirt.io", "VirtualMachine", _) if from_pool => {
            (crate::macpool::WEBHOOK, 422, "Invalid")
        }
        ("kubevirt.io", "VirtualMachineInstance", Operation::Create) => (
            "virtualmachineinstances-create-validator.kubevirt.io",
            422,
            "Invalid",
        ),
        ("kubevirt.io", "VirtualMachineInstance", Operation::Update) => (
            "virtualmachineinstances-update-validator.kubevirt.io",
            422,
            "Invalid",
        ),
        ("kubevirt.io", "VirtualMachine", _) => {
            ("virtualmachine-validator.kubevirt.io", 422, "Invalid")
        }
        ("kubevirt.io", "VirtualMachineInstanceReplicaSet", _) => (
            "virtualmachinereplicaset-validator.kubevirt.io",
            422,
            "Invalid",
        ),
        ("pool.kubevirt.io", "VirtualMachinePool", _) => {
            ("virtualmachinepool-validator.kubevirt.io", 422, "Invalid")
        }
        ("instancetype.kubevirt.io", "VirtualMachineInstancetype", _) => (
            "virtualmachineinstancetype-validator.instancetype.kubevirt.io",
            422,
            "Invalid",
        ),
        ("instancetype.kubevirt.io", "VirtualMachineClusterInstancetype", _) => (
            "virtualmachineclusterinstancetype-validator.instancetype.kubevirt.io",
            422,
            "Invalid",
        ),
        ("cdi.kubevirt.io", "DataVolume", _) => {
            ("datavolume-validate.cdi.kubevirt.io", 422, "Invalid")
        }
        ("hco.kubevirt.io", "HyperConverged", _) => ("validate-hco.kubevirt.io", 403, "Forbidden"),
        ("sriovnetwork.openshift.io", "SriovNetworkNodePolicy" | "SriovNetwork", _) => (
            "operator-webhook.sriovnetwork.openshift.io",
            403,
            "Forbidden",
        ),
        _ => return None,
    };
    let text = match group {
        // CDI prefixes every cause message with a space (hence two spaces after the colon).
        "cdi.kubevirt.io" => causes
            .iter()
            .map(|c| format!(" {}", c.message))
            .collect::<String>(),
        // HCO and the SR-IOV operator stop at their first error.
        "hco.kubevirt.io" | "sriovnetwork.openshift.io" => causes[0].message.clone(),
        _ => causes
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    Some(Denial {
        webhook,
        code,
        reason,
        message: format!("admission webhook \"{webhook}\" denied the request: {text}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hco_denial_reads_as_the_manual_quotes_it() {
        let causes = [Cause::invalid(
            "spec.certConfig",
            "spec.certConfig: ca.duration is smaller than server.duration",
        )];
        let d = denial(
            "hco.kubevirt.io",
            "HyperConverged",
            Operation::Update,
            &causes,
        )
        .expect("denial");
        assert_eq!(
            d.message,
            "admission webhook \"validate-hco.kubevirt.io\" denied the request: spec.certConfig: \
             ca.duration is smaller than server.duration"
        );
        assert_eq!(d.code, 403);
    }

    #[test]
    fn kubevirt_denial_joins_messages_with_commas() {
        let causes = [Cause::invalid("a", "first"), Cause::invalid("b", "second")];
        let d =
            denial("kubevirt.io", "VirtualMachine", Operation::Create, &causes).expect("denial");
        assert!(d.message.ends_with("denied the request: first, second"));
        assert_eq!((d.code, d.reason), (422, "Invalid"));
    }

    #[test]
    fn cdi_denial_prefixes_each_message_with_a_space() {
        let causes = [Cause::invalid(
            "spec.source",
            "Multiple Data volume sources",
        )];
        let d =
            denial("cdi.kubevirt.io", "DataVolume", Operation::Create, &causes).expect("denial");
        assert!(d
            .message
            .ends_with("denied the request:  Multiple Data volume sources"));
    }

    #[test]
    fn built_in_kinds_have_no_webhook_denial() {
        let causes = [Cause::forbidden(
            "parameters",
            "Forbidden: updates to parameters are forbidden.",
        )];
        assert!(denial("storage.k8s.io", "StorageClass", Operation::Update, &causes).is_none());
    }
}

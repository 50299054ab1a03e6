//! Kubernetes name formats (RFC 1123 labels and subdomains), with Kubernetes' own messages.

/// Kubernetes' message for a malformed RFC 1123 subdomain.
pub(crate) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// Kubernetes' message for a malformed RFC 1123 label.
pub(crate) const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Kubernetes' `IsDNS1123Label`: the list of problems, empty when valid.
pub(crate) fn label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) {
        errs.push(LABEL_MSG.to_string());
    }
    errs
}

/// Kubernetes' `IsDNS1123Subdomain`: the list of problems, empty when valid.
pub(crate) fn subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_label_chars) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Kubernetes' field-error rendering of an invalid value: `Invalid value: "x": problem`.
pub(crate) fn invalid_value(value: &str, problem: &str) -> String {
    format!("Invalid value: {value:?}: {problem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_allow_dots_and_253_characters() {
        assert!(subdomain_errors("my-disk.1").is_empty());
        assert!(subdomain_errors(&"a".repeat(63)).is_empty());
        assert_eq!(
            subdomain_errors(&format!("{}.b", "a".repeat(252))),
            vec!["must be no more than 253 characters"]
        );
        assert_eq!(subdomain_errors("Bad_Name"), vec![SUBDOMAIN_MSG]);
        assert_eq!(subdomain_errors("-a"), vec![SUBDOMAIN_MSG]);
        assert_eq!(subdomain_errors(""), vec![SUBDOMAIN_MSG]);
    }

    #[test]
    fn labels_reject_dots() {
        assert!(label_errors("default").is_empty());
        assert_eq!(label_errors("a.b"), vec![LABEL_MSG]);
        assert_eq!(label_errors(&"a".repeat(64)).len(), 1);
    }
}

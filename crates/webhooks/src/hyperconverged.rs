//! HyperConverged (`hco.kubevirt.io`) admission: the singleton's name and namespace, certificate
//! rotation settings, and workload node placement while VMs exist.
//!
//! Upstream: HCO's `validate-hco.kubevirt.io` webhook (`pkg/webhooks/validator`), which stops at
//! the first error and answers 403. Manual: 4.x install (name `kubevirt-hyperconverged`, namespace
//! `openshift-cnv`), 5.2.3 ("to configure node placement for workloads, no virtual machines may
//! exist"), 7.14.4 (certConfig: all values ≥ 10m, three ordering rules, exact message
//! `spec.certConfig: ca.duration is smaller than server.duration`, deleted values revert to the
//! defaults 48h/24h for the CA and 24h/12h for the server).

use serde_json::Value;

use crate::json::{at, default_str, object_at, str_at};
use crate::review::{Cause, Operation, Outcome, Request};
use crate::Cluster;

/// The only namespace a HyperConverged may live in.
pub(crate) const HCO_NAMESPACE: &str = "openshift-cnv";
/// The only name a HyperConverged may have.
pub(crate) const HCO_NAME: &str = "kubevirt-hyperconverged";

const MINUTE: i128 = 60_000_000_000;
/// (path, default) of every certConfig value, in the order upstream checks them.
const CERT_VALUES: [(&str, &str, &str); 4] = [
    ("ca", "duration", "48h0m0s"),
    ("ca", "renewBefore", "24h0m0s"),
    ("server", "duration", "24h0m0s"),
    ("server", "renewBefore", "12h0m0s"),
];

/// Why a Go duration string could not be read (Go's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// Not `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with known units.
    #[error("time: invalid duration {0:?}")]
    InvalidDuration(String),
}

/// Parses a Go `time.ParseDuration` string (`48h0m0s`, `1.5h`, `300ms`) into nanoseconds.
///
/// # Errors
/// [`Error::InvalidDuration`] for anything Go would refuse.
pub(crate) fn parse_duration(text: &str) -> Result<i128, Error> {
    let bad = || Error::InvalidDuration(text.to_string());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    // Durations here are hours at most: f64 holds them exactly, and the bound keeps the cast lossless.
    let nanos = if total.is_finite() && total < 9.2e18 {
        total.round() as i128
    } else {
        return Err(bad());
    };
    Ok(if negative { -nanos } else { nanos })
}

pub(crate) async fn admit(
    req: &Request<'_>,
    obj: &mut Value,
    cluster: &dyn Cluster,
    out: &mut Outcome,
) {
    default_cert_config(obj);
    if let Some(cause) = validate_cert_config(obj) {
        out.causes.push(cause);
    }
    if req.operation == Operation::Create {
        if req.namespace != HCO_NAMESPACE {
            out.causes.push(Cause::forbidden(
                "metadata.namespace",
                format!("invalid namespace for v1beta1.HyperConverged - please use the {HCO_NAMESPACE} namespace"),
            ));
        }
        if str_at(obj, &["metadata", "name"]) != Some(HCO_NAME) {
            out.causes.push(Cause::forbidden(
                "metadata.name",
                format!(
                    "invalid name for v1beta1.HyperConverged - it is a singleton named {HCO_NAME}"
                ),
            ));
        }
    }
    if let (Operation::Update, Some(old)) = (req.operation, req.old) {
        let placement = |v: &Value| at(v, &["spec", "workloads"]).cloned();
        if placement(obj) != placement(old)
            && (cluster.any("kubevirt.io", "virtualmachines").await
                || cluster.any("kubevirt.io", "virtualmachineinstances").await)
        {
            out.causes.push(Cause::forbidden(
                "spec.workloads.nodePlacement",
                "can't update placement of workload pods while there are running vms",
            ));
        }
    }
}

/// Deleted certConfig values revert to their defaults (the CRD's defaults, manual 7.14.4.2).
fn default_cert_config(obj: &mut Value) {
    for (owner, key, default) in CERT_VALUES {
        if let Some(section) = object_at(obj, &["spec", "certConfig", owner]) {
            default_str(section, key, default);
        }
    }
}

/// The first certConfig problem, in upstream's order and words.
fn validate_cert_config(obj: &Value) -> Option<Cause> {
    let mut values = [0i128; 4];
    for (slot, (owner, key, default)) in values.iter_mut().zip(CERT_VALUES) {
        let path = format!("spec.certConfig.{owner}.{key}");
        let text = str_at(obj, &["spec", "certConfig", owner, key]).unwrap_or(default);
        *slot = match parse_duration(text) {
            Ok(v) => v,
            Err(e) => return Some(Cause::invalid(&path, format!("{path}: {e}"))),
        };
        if *slot < 10 * MINUTE {
            return Some(Cause::invalid(&path, format!("{path}: value is too small")));
        }
    }
    let [ca_duration, ca_renew, server_duration, server_renew] = values;
    let (field, message) = if ca_duration < ca_renew {
        (
            "spec.certConfig.ca",
            "spec.certConfig.ca: duration is smaller than renewBefore",
        )
    } else if server_duration < server_renew {
        (
            "spec.certConfig.server",
            "spec.certConfig.server: duration is smaller than renewBefore",
        )
    } else if ca_duration < server_duration {
        (
            "spec.certConfig",
            "spec.certConfig: ca.duration is smaller than server.duration",
        )
    } else {
        return None;
    };
    Some(Cause::invalid(field, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::denial;
    use crate::testing::{messages, run, FakeCluster};
    use serde_json::json;

    fn hco(cert_config: Value) -> Value {
        json!({
            "apiVersion": "hco.kubevirt.io/v1beta1",
            "kind": "HyperConverged",
            "metadata": {"name": HCO_NAME, "namespace": HCO_NAMESPACE},
            "spec": {"certConfig": cert_config},
        })
    }

    fn admit_hco(obj: &mut Value, old: Option<&Value>, cluster: &FakeCluster) -> Outcome {
        run(
            cluster,
            "hco.kubevirt.io",
            "HyperConverged",
            old,
            "admin",
            obj,
        )
    }

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        assert_eq!(parse_duration("48h0m0s"), Ok(48 * 60 * MINUTE));
        assert_eq!(parse_duration("1.5h"), Ok(90 * MINUTE));
        assert_eq!(parse_duration("2h45m"), Ok(165 * MINUTE));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "10", "1d", "h", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Error::InvalidDuration("1d".into()).to_string(),
            "time: invalid duration \"1d\""
        );
    }

    #[test]
    fn empty_spec_gets_the_default_cert_config() {
        let mut obj =
            json!({"metadata": {"name": HCO_NAME, "namespace": HCO_NAMESPACE}, "spec": {}});
        assert!(admit_hco(&mut obj, None, &FakeCluster::default()).allowed());
        assert_eq!(
            obj["spec"]["certConfig"],
            json!({"ca": {"duration": "48h0m0s", "renewBefore": "24h0m0s"},
                   "server": {"duration": "24h0m0s", "renewBefore": "12h0m0s"}})
        );
    }

    #[test]
    fn removing_server_duration_conflicts_with_a_short_ca_exactly_as_the_manual_shows() {
        let old = hco(
            json!({"ca": {"duration": "4h0m0s", "renewBefore": "1h0m0s"},
                             "server": {"duration": "4h0m0s", "renewBefore": "4h0m0s"}}),
        );
        let mut new = hco(
            json!({"ca": {"duration": "4h0m0s", "renewBefore": "1h0m0s"},
                                 "server": {"renewBefore": "4h0m0s"}}),
        );
        let out = admit_hco(&mut new, Some(&old), &FakeCluster::default());
        assert_eq!(
            out.causes,
            vec![Cause::invalid(
                "spec.certConfig",
                "spec.certConfig: ca.duration is smaller than server.duration"
            )]
        );
        let d = denial(
            "hco.kubevirt.io",
            "HyperConverged",
            Operation::Update,
            &out.causes,
        )
        .expect("denial");
        assert_eq!(
            d.message,
            "admission webhook \"validate-hco.kubevirt.io\" denied the request: spec.certConfig: \
             ca.duration is smaller than server.duration"
        );
    }

    #[test]
    fn cert_values_under_ten_minutes_and_renewals_past_duration_are_rejected() {
        let mut obj = hco(json!({"ca": {"duration": "5m"}}));
        assert_eq!(
            messages(&admit_hco(&mut obj, None, &FakeCluster::default())),
            vec!["spec.certConfig.ca.duration: value is too small"]
        );
        let mut obj = hco(json!({"server": {"duration": "1h", "renewBefore": "2h"}}));
        assert_eq!(
            messages(&admit_hco(&mut obj, None, &FakeCluster::default())),
            vec!["spec.certConfig.server: duration is smaller than renewBefore"]
        );
        let mut obj = hco(json!({"ca": {"duration": "1h", "renewBefore": "2h"}}));
        assert_eq!(
            messages(&admit_hco(&mut obj, None, &FakeCluster::default())),
            vec!["spec.certConfig.ca: duration is smaller than renewBefore"]
        );
        let mut obj = hco(json!({"ca": {"duration": "two days"}}));
        assert_eq!(
            messages(&admit_hco(&mut obj, None, &FakeCluster::default())),
            vec!["spec.certConfig.ca.duration: time: invalid duration \"two days\""]
        );
    }

    #[test]
    fn hyperconverged_is_a_singleton_in_openshift_cnv() {
        let mut obj = hco(json!({}));
        obj["metadata"]["namespace"] = json!("default");
        obj["metadata"]["name"] = json!("hco");
        let out = run(
            &FakeCluster::default(),
            "hco.kubevirt.io",
            "HyperConverged",
            None,
            "admin",
            &mut obj,
        );
        assert_eq!(
            messages(&out),
            vec![
                "invalid namespace for v1beta1.HyperConverged - please use the openshift-cnv namespace",
                "invalid name for v1beta1.HyperConverged - it is a singleton named kubevirt-hyperconverged",
            ]
        );
    }

    #[test]
    fn workload_placement_is_frozen_while_vms_exist() {
        let old = hco(json!({}));
        let mut new = old.clone();
        new["spec"]["workloads"] =
            json!({"nodePlacement": {"nodeSelector": {"example.io/example-workloads-key": "v"}}});
        let vms = FakeCluster::default().with(
            "kubevirt.io",
            "virtualmachines",
            "default",
            "vm1",
            json!({}),
        );
        let out = admit_hco(&mut new.clone(), Some(&old), &vms);
        assert_eq!(
            messages(&out),
            vec!["can't update placement of workload pods while there are running vms"]
        );
        assert!(admit_hco(&mut new, Some(&old), &FakeCluster::default()).allowed());
        let mut infra = old.clone();
        infra["spec"]["infra"] = json!({"nodePlacement": {"nodeSelector": {"a": "b"}}});
        assert!(
            admit_hco(&mut infra, Some(&old), &vms).allowed(),
            "infra placement may change"
        );
    }
}

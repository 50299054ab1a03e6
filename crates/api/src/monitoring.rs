//! prometheus-operator kinds (`monitoring.coreos.com/v1`): `ServiceMonitor` and
//! `PrometheusRule`. Written by hand: the fields the manual uses are typed, the rest of
//! each endpoint, rule group and rule is kept as given (prometheus-operator's schema is large
//! and moves with every release).

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::schema::{
    array, boolean, doc, int_or_string, integer, label_selector, object, open, open_object,
    required, root, string, string_map, strings,
};

const MONITORING: &str = "monitoring.coreos.com";

fn service_monitor() -> Value {
    let endpoint = open_object(json!({
        "port": doc(string(), "Name of the Service port which this endpoint refers to."),
        "targetPort": doc(int_or_string(), "Name or number of the target port of the Pod object behind the Service."),
        "path": doc(string(), "HTTP path from which to scrape for metrics."),
        "scheme": doc(string(), "HTTP scheme to use for scraping."),
        "interval": doc(string(), "Interval at which Prometheus scrapes the metrics from the target."),
        "scrapeTimeout": doc(string(), "Timeout after which Prometheus considers the scrape to be failed."),
        "honorLabels": boolean(),
        "honorTimestamps": boolean(),
        "bearerTokenFile": string(),
        "bearerTokenSecret": open(),
        "tlsConfig": open(),
        "params": {"type": "object", "additionalProperties": strings()},
        "relabelings": array(open()),
        "metricRelabelings": array(open()),
    }));
    let spec = required(
        open_object(json!({
            "endpoints": doc(array(endpoint), "List of endpoints part of this ServiceMonitor."),
            "selector": doc(label_selector(), "Label selector to select the Kubernetes Endpoints objects to scrape metrics from."),
            "namespaceSelector": doc(object(json!({"any": boolean(), "matchNames": strings()})), "namespaceSelector defines in which namespace(s) Prometheus should discover the services."),
            "jobLabel": string(),
            "targetLabels": strings(),
            "podTargetLabels": strings(),
            "sampleLimit": integer(),
        })),
        &["selector"],
    );
    required(
        root(
            "The `ServiceMonitor` custom resource definition (CRD) defines how `Prometheus` and `PrometheusAgent` can scrape metrics from a group of services.",
            json!({"spec": spec}),
        ),
        &["spec"],
    )
}

fn prometheus_rule() -> Value {
    let rule = required(
        open_object(json!({
            "record": string(),
            "alert": string(),
            "expr": doc(int_or_string(), "PromQL expression to evaluate."),
            "for": string(),
            "keep_firing_for": string(),
            "labels": string_map(),
            "annotations": string_map(),
        })),
        &["expr"],
    );
    let group = required(
        open_object(json!({
            "name": string(),
            "interval": string(),
            "rules": array(rule),
        })),
        &["name"],
    );
    required(
        root(
            "The `PrometheusRule` custom resource definition (CRD) defines alerting and recording rules to be evaluated by `Prometheus` or `ThanosRuler` objects.",
            json!({"spec": object(json!({"groups": doc(array(group), "Content of Prometheus rule file")}))}),
        ),
        &["spec"],
    )
}

/// The ServiceMonitor and PrometheusRule CRDs.
pub(crate) fn crds() -> Vec<Crd> {
    vec![
        Crd::new(MONITORING, "ServiceMonitor", "servicemonitors")
            .short_names(&["smon"])
            .category("prometheus-operator")
            .versions(vec![Version::storage("v1")])
            .schema(service_monitor()),
        Crd::new(MONITORING, "PrometheusRule", "prometheusrules")
            .short_names(&["promrule"])
            .category("prometheus-operator")
            .versions(vec![Version::storage("v1")])
            .schema(prometheus_rule()),
    ]
}

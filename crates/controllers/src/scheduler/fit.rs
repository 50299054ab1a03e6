//! Where a Pod goes: kube-scheduler's default filters (NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodeResourcesFit, InterPodAffinity) in its order, then a score
//! (preferred node affinity, PreferNoSchedule taints, least allocated resources, preferred
//! pod affinity), and kube-scheduler's message when nothing fits. Pure.

use std::collections::{BTreeMap, HashMap};

use oxivirt_webhooks::Quantity;
use serde_json::{json, Value};

use super::selectors::{
    describe_taint, label_selector_matches, node_label, node_matches_pod, node_term_matches,
    tolerated,
};
use crate::object::{has_condition, phase, str_at};

/// Where the Pod goes, or kube-scheduler's explanation why nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Bind to this node.
    Node(String),
    /// No node fits: `0/N nodes are available: …`.
    Unschedulable(String),
}

/// Resource amounts: `cpu` in millicores, everything else in whole units.
type Resources = BTreeMap<String, i128>;

/// kube-scheduler's default `pods` capacity when a node does not say.
const DEFAULT_MAX_PODS: i128 = 110;
/// Score weights of the default profile (NodeAffinity 2, TaintToleration 3,
/// NodeResourcesFit 1, InterPodAffinity 2).
const WEIGHTS: [i128; 4] = [2, 3, 1, 2];

fn amount(name: &str, v: &Value) -> Option<i128> {
    let q = match v {
        Value::String(s) => Quantity::parse(s).ok()?,
        Value::Number(n) => Quantity::parse(&n.to_string()).ok()?,
        _ => return None,
    };
    Some(if name == "cpu" {
        q.milli_value()
    } else {
        q.value()
    })
}

fn resources_of(map: &Value) -> Resources {
    map.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), amount(k, v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's requests; a resource with only a limit requests its limit.
fn container_requests(container: &Value) -> Resources {
    let mut requests = resources_of(&container["resources"]["requests"]);
    for (k, v) in resources_of(&container["resources"]["limits"]) {
        requests.entry(k).or_insert(v);
    }
    requests
}

/// What a Pod asks of a node: its containers' sum or the largest init container, plus
/// `spec.overhead`.
pub(crate) fn pod_requests(pod: &Value) -> Resources {
    let list = |key: &str| pod["spec"][key].as_array().cloned().unwrap_or_default();
    let mut total = Resources::new();
    for c in list("containers") {
        for (k, v) in container_requests(&c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in list("initContainers") {
        for (k, v) in container_requests(&c) {
            let slot = total.entry(k).or_default();
            *slot = (*slot).max(v);
        }
    }
    for (k, v) in resources_of(&pod["spec"]["overhead"]) {
        *total.entry(k).or_default() += v;
    }
    total
}

fn allocatable(node: &Value) -> Resources {
    let status = &node["status"];
    let mut out = resources_of(&status["allocatable"]);
    if out.is_empty() {
        out = resources_of(&status["capacity"]);
    }
    out
}

fn is_terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn tolerations(pod: &Value) -> Vec<Value> {
    pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The node's taints, plus the ones Kubernetes' node lifecycle controller would add for
/// a node that is not Ready or is cordoned.
fn taints(node: &Value) -> Vec<Value> {
    let mut out = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !has_condition(node, "Ready", "True", None) {
        out.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
    }
    out
}

struct Cluster<'a> {
    nodes: HashMap<&'a str, &'a Value>,
    /// Pods bound to a node and not finished.
    bound: Vec<&'a Value>,
    /// The `nodeSelectorTerms` of every bound PersistentVolume the Pod uses: a node must
    /// match one term of each (kube-scheduler's VolumeBinding filter).
    volume_terms: &'a [Value],
}

impl Cluster<'_> {
    fn node_of(&self, pod: &Value) -> Option<&Value> {
        str_at(pod, "/spec/nodeName").and_then(|n| self.nodes.get(n).copied())
    }

    /// Whether `other` runs in the same topology domain (`key`) as `node`.
    fn same_domain(&self, node: &Value, other: &Value, key: &str) -> bool {
        let Some(value) = node_label(node, key) else {
            return false;
        };
        self.node_of(other)
            .is_some_and(|n| node_label(n, key) == Some(value))
    }

    fn on_node<'b>(&'b self, node: &'b Value) -> impl Iterator<Item = &'b Value> + 'b {
        let name = str_at(node, "/metadata/name");
        self.bound
            .iter()
            .copied()
            .filter(move |p| str_at(p, "/spec/nodeName") == name)
    }
}

/// Whether a pod (anti-)affinity term of a Pod in `owner_ns` selects `candidate`.
fn term_selects(term: &Value, owner_ns: &str, candidate: &Value) -> bool {
    let ns = str_at(candidate, "/metadata/namespace").unwrap_or("");
    let listed: Vec<&str> = term["namespaces"]
        .as_array()
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ns_ok = if !listed.is_empty() {
        listed.contains(&ns)
    } else if term["namespaceSelector"]
        .as_object()
        .is_some_and(|s| s.is_empty())
    {
        true
    } else {
        ns == owner_ns
    };
    ns_ok && label_selector_matches(&term["labelSelector"], candidate)
}

fn terms<'a>(pod: &'a Value, kind: &str, when: &str) -> &'a [Value] {
    pod["spec"]["affinity"][kind][when]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";

/// The reasons `node` cannot take `pod` (empty when it can), from the first failing filter.
fn filter(pod: &Value, node: &Value, cluster: &Cluster<'_>) -> Vec<String> {
    let tolerations = tolerations(pod);
    let cordon = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
    if node["spec"]["unschedulable"] == true && !tolerated(&tolerations, &cordon) {
        return vec!["node(s) were unschedulable".into()];
    }
    let untolerated = taints(node).into_iter().find(|t| {
        matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
            && !tolerated(&tolerations, t)
    });
    if let Some(taint) = untolerated {
        return vec![format!(
            "node(s) had untolerated taint {}",
            describe_taint(&taint)
        )];
    }
    if !node_matches_pod(pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let volume_conflict = cluster.volume_terms.iter().any(|terms| {
        !terms
            .as_array()
            .is_some_and(|t| t.iter().any(|term| node_term_matches(term, node)))
    });
    if volume_conflict {
        return vec!["node(s) had volume node affinity conflict".into()];
    }
    let insufficient = insufficient_resources(pod, node, cluster);
    if !insufficient.is_empty() {
        return insufficient;
    }
    inter_pod_affinity(pod, node, cluster).into_iter().collect()
}

fn insufficient_resources(pod: &Value, node: &Value, cluster: &Cluster<'_>) -> Vec<String> {
    let free = allocatable(node);
    let mut used = Resources::new();
    let mut count = 0;
    for p in cluster.on_node(node) {
        count += 1;
        for (k, v) in pod_requests(p) {
            *used.entry(k).or_default() += v;
        }
    }
    let mut reasons = Vec::new();
    if count + 1 > free.get("pods").copied().unwrap_or(DEFAULT_MAX_PODS) {
        reasons.push("Too many pods".to_string());
    }
    for (name, wanted) in pod_requests(pod).into_iter().filter(|(_, v)| *v > 0) {
        let have = free.get(&name).copied().unwrap_or(0) - used.get(&name).copied().unwrap_or(0);
        if wanted > have {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

fn inter_pod_affinity(pod: &Value, node: &Value, cluster: &Cluster<'_>) -> Option<String> {
    let ns = str_at(pod, "/metadata/namespace").unwrap_or("");
    for term in terms(pod, "podAffinity", REQUIRED) {
        let key = term["topologyKey"].as_str().unwrap_or("");
        let here = cluster
            .bound
            .iter()
            .any(|p| term_selects(term, ns, p) && cluster.same_domain(node, p, key));
        // The first Pod of a group that selects itself may go anywhere with the label.
        let first = !cluster.bound.iter().any(|p| term_selects(term, ns, p))
            && term_selects(term, ns, pod)
            && node_label(node, key).is_some();
        if !here && !first {
            return Some("node(s) didn't match pod affinity rules".into());
        }
    }
    for term in terms(pod, "podAntiAffinity", REQUIRED) {
        let key = term["topologyKey"].as_str().unwrap_or("");
        if cluster
            .bound
            .iter()
            .any(|p| term_selects(term, ns, p) && cluster.same_domain(node, p, key))
        {
            return Some("node(s) didn't match pod anti-affinity rules".into());
        }
    }
    let existing_refuse = cluster.bound.iter().any(|p| {
        let p_ns = str_at(p, "/metadata/namespace").unwrap_or("");
        terms(p, "podAntiAffinity", REQUIRED).iter().any(|t| {
            let key = t["topologyKey"].as_str().unwrap_or("");
            term_selects(t, p_ns, pod) && cluster.same_domain(node, p, key)
        })
    });
    existing_refuse.then(|| "node(s) didn't satisfy existing pods anti-affinity rules".into())
}

/// The four raw scores of a feasible node, before normalisation.
fn raw_scores(pod: &Value, node: &Value, cluster: &Cluster<'_>) -> [i128; 4] {
    let weight = |t: &Value| i128::from(t["weight"].as_i64().unwrap_or(0));
    let affinity: i128 = terms(pod, "nodeAffinity", PREFERRED)
        .iter()
        .filter(|t| node_term_matches(&t["preference"], node))
        .map(weight)
        .sum();
    let tolerations = tolerations(pod);
    let intolerable = taints(node)
        .iter()
        .filter(|t| t["effect"] == "PreferNoSchedule" && !tolerated(&tolerations, t))
        .count();
    let free = allocatable(node);
    let mut used = pod_requests(pod);
    for p in cluster.on_node(node) {
        for (k, v) in pod_requests(p) {
            *used.entry(k).or_default() += v;
        }
    }
    let least_allocated = ["cpu", "memory"]
        .iter()
        .map(|r| {
            let cap = free.get(*r).copied().unwrap_or(0);
            if cap <= 0 {
                0
            } else {
                ((cap - used.get(*r).copied().unwrap_or(0)).max(0) * 100) / cap
            }
        })
        .sum::<i128>()
        / 2;
    let ns = str_at(pod, "/metadata/namespace").unwrap_or("");
    let mut pod_affinity = 0;
    for (kind, sign) in [("podAffinity", 1), ("podAntiAffinity", -1)] {
        for t in terms(pod, kind, PREFERRED) {
            let term = &t["podAffinityTerm"];
            let key = term["topologyKey"].as_str().unwrap_or("");
            let hits = cluster
                .bound
                .iter()
                .filter(|p| term_selects(term, ns, p) && cluster.same_domain(node, p, key))
                .count();
            pod_affinity += sign * weight(t) * i128::try_from(hits).unwrap_or(0);
        }
    }
    [
        affinity,
        -i128::try_from(intolerable).unwrap_or(0),
        least_allocated,
        pod_affinity,
    ]
}

/// Picks a node for `pod` among `nodes`, counting the requests of `bound` Pods (those
/// with `spec.nodeName` set) against the nodes they run on.
#[cfg(test)]
pub(crate) fn place(pod: &Value, nodes: &[Value], bound: &[Value]) -> Placement {
    place_with_volumes(pod, nodes, bound, &[])
}

/// [`place`] for a Pod whose bound PersistentVolumes restrict it to the nodes their
/// `volume_terms` (one `nodeSelectorTerms` list per volume) select.
pub(crate) fn place_with_volumes(
    pod: &Value,
    nodes: &[Value],
    bound: &[Value],
    volume_terms: &[Value],
) -> Placement {
    let cluster = Cluster {
        nodes: nodes
            .iter()
            .filter_map(|n| Some((str_at(n, "/metadata/name")?, n)))
            .collect(),
        bound: bound.iter().filter(|p| !is_terminal(p)).collect(),
        volume_terms,
    };
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for node in nodes {
        let why = filter(pod, node, &cluster);
        if why.is_empty() {
            feasible.push((node, raw_scores(pod, node, &cluster)));
        }
        for reason in why {
            *reasons.entry(reason).or_default() += 1;
        }
    }
    if feasible.is_empty() {
        return Placement::Unschedulable(message(nodes.len(), &reasons));
    }
    // Normalise each score to 0..=100 across the feasible nodes, then weigh them.
    let mut totals = vec![0i128; feasible.len()];
    for (i, weight) in WEIGHTS.iter().enumerate() {
        let min = feasible.iter().map(|(_, s)| s[i]).min().unwrap_or(0);
        let max = feasible.iter().map(|(_, s)| s[i]).max().unwrap_or(0);
        for (total, (_, s)) in totals.iter_mut().zip(&feasible) {
            let normal = if max == min {
                100
            } else {
                (s[i] - min) * 100 / (max - min)
            };
            *total += weight * normal;
        }
    }
    let best = feasible
        .iter()
        .zip(&totals)
        .max_by(|((a, _), ta), ((b, _), tb)| {
            ta.cmp(tb)
                .then_with(|| str_at(b, "/metadata/name").cmp(&str_at(a, "/metadata/name")))
        })
        .and_then(|((n, _), _)| str_at(n, "/metadata/name"))
        .unwrap_or_default();
    Placement::Node(best.to_string())
}

/// kube-scheduler's `FitError` message: `0/3 nodes are available: 1 Insufficient memory,
/// 2 node(s) were unschedulable.` (reasons sorted as text).
fn message(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;

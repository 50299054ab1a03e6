//! `events.k8s.io/v1` Events share storage with core `v1` Events, as in Kubernetes: they
//! are stored in the core form and converted field by field on the way in and out.
//! Every Event is stored with a one-hour lease, so the store expires it.

use serde_json::{Map, Value};

/// (core field, events.k8s.io field) pairs that map one to one.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// How long an Event lives, as kube-apiserver's default `--event-ttl`.
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn rename(obj: Value, from_core: bool) -> Value {
    let Value::Object(map) = obj else { return obj };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = RENAMES.iter().find_map(|(core, new)| {
            if from_core && key == *core {
                Some(*new)
            } else if !from_core && key == *new {
                Some(*core)
            } else {
                None
            }
        });
        out.insert(renamed.map(str::to_string).unwrap_or(key), value);
    }
    Value::Object(out)
}

/// events.k8s.io/v1 → stored core form.
pub fn to_core(obj: Value) -> Value {
    let mut core = rename(obj, false);
    core["apiVersion"] = Value::String("v1".into());
    core
}

/// Stored core form → events.k8s.io/v1.
pub fn from_core(obj: Value) -> Value {
    let mut new = rename(obj, true);
    new["apiVersion"] = Value::String("events.k8s.io/v1".into());
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversion_round_trips_between_the_two_event_apis() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hello", "count": 2,
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"});
        let new = from_core(core.clone());
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["note"], "hello");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(new["reportingController"], "kubelet");
        assert_eq!(to_core(new), core);
    }
}

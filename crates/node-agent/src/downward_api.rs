//! Downward API volume files, as a kubelet writes them for upstream's virt-launcher Pod:
//! `fieldRef` (`metadata.name|namespace|uid|labels|annotations`, `metadata.labels['k']`,
//! `metadata.annotations['k']`) and `resourceFieldRef` (`requests|limits` of `cpu`, `memory`,
//! `ephemeral-storage`, with a `divisor`; an unset limit is the node's allocatable). The
//! values come from the launcher Pod, whose labels carry the VMI's, as upstream's do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde_json::Value;

/// The container a `resourceFieldRef` means when it names none.
const COMPUTE: &str = "compute";

/// Whether any field needs the node's allocatable resources (a limit the Pod may not set).
pub(crate) fn needs_allocatable(source: &Value) -> bool {
    fields(source).any(|f| {
        f.pointer("/resourceFieldRef/resource")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("limits."))
    })
}

fn fields(source: &Value) -> impl Iterator<Item = &Value> {
    source["fields"].as_array().into_iter().flatten()
}

/// The files of `source.fields`, by path.
///
/// # Errors
/// A sentence naming the field that cannot be filled (an unsupported path or resource, a
/// bad quantity).
pub(crate) fn files(
    source: &Value,
    pod: &Pod,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    for field in fields(source) {
        let path = field["path"].as_str().unwrap_or_default();
        let value = if let Some(field_path) =
            field.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
        {
            field_value(pod, field_path).ok_or_else(|| {
                format!("downwardAPI path {path:?}: unsupported fieldPath {field_path:?}")
            })?
        } else if let Some(reference) = field.get("resourceFieldRef") {
            resource_value(pod, reference, allocatable)
                .map_err(|why| format!("downwardAPI path {path:?}: {why}"))?
        } else {
            return Err(format!(
                "downwardAPI path {path:?}: needs a fieldRef or a resourceFieldRef"
            ));
        };
        files.insert(path.to_string(), value.into_bytes());
    }
    Ok(files)
}

/// A `resourceFieldRef`'s value: the container's request or limit (an unset limit is the
/// node's allocatable, an unset request 0) divided by `divisor` and rounded up, in
/// millicores for CPU as the kubelet computes it.
fn resource_value(
    pod: &Pod,
    reference: &Value,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, String> {
    let resource = reference["resource"].as_str().unwrap_or_default();
    let (kind, name) = resource
        .split_once('.')
        .filter(|(kind, name)| {
            matches!(*kind, "requests" | "limits")
                && matches!(*name, "cpu" | "memory" | "ephemeral-storage")
        })
        .ok_or_else(|| format!("unsupported resource {resource:?}"))?;
    let container_name = reference["containerName"]
        .as_str()
        .filter(|c| !c.is_empty())
        .unwrap_or(COMPUTE);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container_name))
        .ok_or_else(|| format!("the Pod has no container {container_name:?}"))?;
    let resources = container.resources.clone().unwrap_or_default();
    let set = if kind == "limits" {
        resources.limits
    } else {
        resources.requests
    };
    let value = set
        .as_ref()
        .and_then(|m| m.get(name))
        .or_else(|| (kind == "limits").then(|| allocatable.get(name)).flatten())
        .map_or(Ok(0), |q| nanos(&q.0))?;
    let divisor = match &reference["divisor"] {
        Value::Null => 1_000_000_000,
        Value::String(text) => nanos(text)?,
        Value::Number(n) => nanos(&n.to_string())?,
        other => return Err(format!("divisor {other} is not a quantity")),
    };
    // The kubelet compares CPU in millicores and everything else in whole units.
    let unit: i128 = if name == "cpu" {
        1_000_000
    } else {
        1_000_000_000
    };
    let (value, divisor) = (ceil_div(value, unit), ceil_div(divisor, unit));
    if divisor <= 0 {
        return Err("divisor must be positive".into());
    }
    Ok(ceil_div(value, divisor).to_string())
}

fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1).div_euclid(b)
}

/// A Kubernetes quantity in billionths of its unit (`500m` → 500_000_000).
fn nanos(text: &str) -> Result<i128, String> {
    let bad = || format!("{text:?} is not a quantity");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 9 {
        return Err(bad());
    }
    let digits = |s: &str| -> Result<i128, String> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<i128>().map_err(|_| bad())
        }
    };
    let scale = 10i128.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
    let mantissa = digits(whole)? * scale + digits(fraction)?;
    // (multiplier, divisor) of the suffix relative to nano-units.
    let (mul, div): (i128, i128) = match suffix {
        "n" => (1, 1),
        "u" => (1_000, 1),
        "m" => (1_000_000, 1),
        "" => (1_000_000_000, 1),
        "k" => (1_000_000_000_000, 1),
        "M" => (10i128.pow(15), 1),
        "G" => (10i128.pow(18), 1),
        "T" => (10i128.pow(21), 1),
        "P" => (10i128.pow(24), 1),
        "E" => (10i128.pow(27), 1),
        "Ki" => (1_000_000_000 << 10, 1),
        "Mi" => (1_000_000_000 << 20, 1),
        "Gi" => (1_000_000_000 << 30, 1),
        "Ti" => (1_000_000_000 << 40, 1),
        "Pi" => (1_000_000_000 << 50, 1),
        "Ei" => (1_000_000_000 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let power: u32 = exp[1..].parse().map_err(|_| bad())?;
            (10i128.checked_pow(power + 9).ok_or_else(bad)?, 1)
        }
        _ => return Err(bad()),
    };
    mantissa
        .checked_mul(mul)
        .map(|v| ceil_div(v, div * scale))
        .ok_or_else(bad)
}

/// A fieldRef's value as a kubelet writes it into a downward API volume.
fn field_value(pod: &Pod, field_path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str| {
        field_path
            .strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_string)
    };
    match field_path {
        "metadata.name" => return Some(pod.name_any()),
        "metadata.namespace" => return Some(pod.namespace().unwrap_or_default()),
        "metadata.uid" => return Some(pod.uid().unwrap_or_default()),
        "metadata.labels" => return Some(format_map(meta.labels.as_ref())),
        "metadata.annotations" => return Some(format_map(meta.annotations.as_ref())),
        _ => {}
    }
    if let Some(key) = keyed("metadata.labels['") {
        return Some(meta.labels.as_ref()?.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return Some(
            meta.annotations
                .as_ref()?
                .get(&key)
                .cloned()
                .unwrap_or_default(),
        );
    }
    None
}

/// `key="value"` lines sorted by key, values quoted as Go's `%q` does, no final newline:
/// the kubelet's format for labels and annotations.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "virt-launcher-a-x1y2z", "namespace": "ns", "uid": "u-1",
                "labels": {"kubevirt.io": "virt-launcher", "app": "a b"},
                "annotations": {"note": "say \"hi\"\n"}}
        }))
        .unwrap()
    }

    #[test]
    fn downward_api_fields_are_formatted_as_the_kubelet_does() {
        let source = json!({"fields": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
            {"path": "none", "fieldRef": {"fieldPath": "metadata.labels['nope']"}},
        ]});
        let files = files(&source, &pod(), &BTreeMap::new()).unwrap();
        let text = |k: &str| String::from_utf8(files[k].clone()).unwrap();
        assert_eq!(text("labels"), "app=\"a b\"\nkubevirt.io=\"virt-launcher\"");
        assert_eq!(text("annotations"), "note=\"say \\\"hi\\\"\\n\"");
        assert_eq!(text("meta/name"), "virt-launcher-a-x1y2z");
        assert_eq!(text("app"), "a b");
        assert_eq!(text("none"), "");
    }

    fn launcher_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "compute", "resources": {
                    "requests": {"cpu": "1500m", "memory": "1Gi"},
                    "limits": {"memory": "2Gi"}}},
                {"name": "guest-console-log"}]}
        }))
        .unwrap()
    }

    #[test]
    fn resource_fields_are_divided_and_rounded_up_as_the_kubelet_does() {
        let allocatable = BTreeMap::from([("cpu".to_string(), Quantity("4".into()))]);
        let source = json!({"fields": [
            {"path": "cpu", "resourceFieldRef": {"resource": "requests.cpu"}},
            {"path": "cpu-m", "resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            {"path": "mem-mi", "resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}},
            {"path": "limit-mem", "resourceFieldRef": {"resource": "limits.memory"}},
            {"path": "limit-cpu", "resourceFieldRef": {"resource": "limits.cpu"}},
        ]});
        assert!(needs_allocatable(&source));
        let files = files(&source, &launcher_pod(), &allocatable).unwrap();
        let text = |k: &str| String::from_utf8(files[k].clone()).unwrap();
        assert_eq!(text("cpu"), "2", "1.5 CPUs round up");
        assert_eq!(text("cpu-m"), "1500");
        assert_eq!(text("mem-mi"), "1024");
        assert_eq!(text("limit-mem"), (2u64 << 30).to_string());
        assert_eq!(
            text("limit-cpu"),
            "4",
            "an unset limit is the node's allocatable"
        );
    }

    #[test]
    fn quantities_parse_in_every_suffix() {
        assert_eq!(nanos("500m"), Ok(500_000_000));
        assert_eq!(nanos("1.5"), Ok(1_500_000_000));
        assert_eq!(nanos("2Ki"), Ok(2048 * 1_000_000_000));
        assert_eq!(nanos("1e3"), Ok(1000 * 1_000_000_000));
        assert_eq!(nanos("3k"), Ok(3000 * 1_000_000_000));
        assert!(nanos("x").is_err() && nanos("1Q").is_err() && nanos("").is_err());
    }

    #[test]
    fn unsupported_fields_are_refused_by_path() {
        let pod = launcher_pod();
        let none = BTreeMap::new();
        let env_only =
            json!({"fields": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]});
        let error = files(&env_only, &pod, &none).unwrap_err();
        assert!(
            error.contains("\"ip\"") && error.contains("status.podIP"),
            "{error}"
        );
        let gpu = json!({"fields": [{"path": "g", "resourceFieldRef": {"resource": "limits.nvidia.com/gpu"}}]});
        assert!(files(&gpu, &pod, &none)
            .unwrap_err()
            .contains("unsupported resource"));
        let other = json!({"fields": [{"path": "x", "resourceFieldRef":
            {"resource": "requests.cpu", "containerName": "sidecar"}}]});
        assert!(files(&other, &pod, &none).unwrap_err().contains("sidecar"));
    }
}

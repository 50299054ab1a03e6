//! Server-side `Table` output (`kubectl get` columns) and the age format kubectl shows.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::jsonpath;

/// How a column's cell is computed from an object.
#[derive(Debug, Clone)]
pub enum CellSource {
    /// `metadata.name`.
    Name,
    /// Time since `metadata.creationTimestamp`, as kubectl shows it.
    Age,
    /// A JSONPath (CRD `additionalPrinterColumns`); `date` columns render as ages.
    JsonPath(String),
    /// A built-in kind's printer.
    Func(fn(&Value) -> Value),
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: String,
    pub priority: i64,
    pub source: CellSource,
}

impl Column {
    pub fn new(name: &str, kind: &'static str, priority: i64, source: CellSource) -> Self {
        Column {
            name: name.into(),
            kind,
            format: "",
            description: String::new(),
            priority,
            source,
        }
    }

    pub fn name() -> Self {
        let mut c = Column::new("Name", "string", 0, CellSource::Name);
        c.format = "name";
        c.description = "Name must be unique within a namespace.".into();
        c
    }

    pub fn age() -> Self {
        let mut c = Column::new("Age", "date", 0, CellSource::Age);
        c.description = "CreationTimestamp is a timestamp representing the server time when this object was created.".into();
        c
    }

    pub fn func(name: &str, priority: i64, f: fn(&Value) -> Value) -> Self {
        Column::new(name, "string", priority, CellSource::Func(f))
    }

    fn cell(&self, obj: &Value, now: DateTime<Utc>) -> Value {
        match &self.source {
            CellSource::Name => obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null),
            CellSource::Age => age_cell(obj.pointer("/metadata/creationTimestamp"), now),
            CellSource::JsonPath(path) => {
                let v = jsonpath::eval_cell(obj, path);
                if self.kind == "date" {
                    age_cell(Some(&v), now)
                } else {
                    v
                }
            }
            CellSource::Func(f) => f(obj),
        }
    }
}

/// The columns a resource without explicit printers gets.
pub fn default_columns() -> Vec<Column> {
    vec![Column::name(), Column::age()]
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Builds a `meta.k8s.io/v1` Table from objects.
pub fn build(
    columns: &[Column],
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
    with_definitions: bool,
) -> Value {
    let now = Utc::now();
    let definitions: Vec<Value> = if with_definitions {
        columns
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.kind, "format": c.format,
                       "description": c.description, "priority": c.priority})
            })
            .collect()
    } else {
        vec![]
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = columns.iter().map(|c| c.cell(obj, now)).collect();
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => {
                    row.insert("object".into(), obj.clone());
                }
                IncludeObject::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                        }),
                    );
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn age_cell(timestamp: Option<&Value>, now: DateTime<Utc>) -> Value {
    let Some(ts) = timestamp.and_then(Value::as_str) else {
        return json!("<unknown>");
    };
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(human_duration(
            now.signed_duration_since(t.with_timezone(&Utc))
        )),
        Err(_) => json!("<unknown>"),
    }
}

/// kubectl's short human form of a duration (`45s`, `3m20s`, `5h`, `2d3h`).
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (minutes, hours, days) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        format!("{}y{}d", days / 365, days % 365)
    } else {
        format!("{}y", days / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(human_duration(TimeDelta::seconds(200)), "3m20s");
        assert_eq!(human_duration(TimeDelta::minutes(30)), "30m");
        assert_eq!(human_duration(TimeDelta::minutes(5 * 60 + 7)), "5h7m");
        assert_eq!(human_duration(TimeDelta::hours(51)), "2d3h");
    }
}

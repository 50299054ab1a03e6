//! Output formats for manifests and objects.
//!
//! Upstream virtctl marshals objects to JSON and then to YAML, which sorts every mapping's
//! keys alphabetically. [`render`] does the same so that our manifests read exactly like
//! upstream's, whatever order the builders inserted fields in.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How an object is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// YAML, as upstream prints manifests (the default).
    #[default]
    Yaml,
    /// Indented JSON.
    Json,
}

/// Renders `value` in `format`, keys sorted at every level, ending with a newline.
///
/// # Errors
/// [`Error::Serialize`] if the serialiser fails, which plain JSON values do not cause.
pub fn render(value: &Value, format: OutputFormat) -> Result<String> {
    let sorted = sort_keys(value);
    match format {
        OutputFormat::Yaml => {
            serde_yaml::to_string(&sorted).map_err(|err| Error::Serialize(Box::new(err)))
        }
        OutputFormat::Json => serde_json::to_string_pretty(&sorted)
            .map(|mut text| {
                text.push('\n');
                text
            })
            .map_err(|err| Error::Serialize(Box::new(err))),
    }
}

/// Returns a copy of `value` whose objects have their keys in alphabetical order.
pub fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::with_capacity(map.len());
            for key in keys {
                sorted.insert(key.clone(), sort_keys(&map[key.as_str()]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_output_sorts_keys_and_keeps_empty_maps_inline() {
        let value = json!({"spec": {"b": 1, "a": {}}, "kind": "X", "apiVersion": "v1"});
        let text = render(&value, OutputFormat::Yaml).expect("renders");
        assert_eq!(text, "apiVersion: v1\nkind: X\nspec:\n  a: {}\n  b: 1\n");
    }

    #[test]
    fn yaml_sequences_are_not_indented_like_upstream() {
        let value = json!({"items": [{"name": "a"}]});
        let text = render(&value, OutputFormat::Yaml).expect("renders");
        assert_eq!(text, "items:\n- name: a\n");
    }

    #[test]
    fn json_output_is_pretty_and_sorted() {
        let value = json!({"b": 1, "a": 2});
        let text = render(&value, OutputFormat::Json).expect("renders");
        assert_eq!(text, "{\n  \"a\": 2,\n  \"b\": 1\n}\n");
    }
}

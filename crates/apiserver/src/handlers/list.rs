//! List: selectors, `limit`/`continue` pagination and reads at a resourceVersion.

use std::collections::HashMap;

use base64::Engine;
use oxivirt_store::ListOptions;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::service::Api;

/// Selectors a list or watch filters with.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_query(info: &ResourceInfo, query: &HashMap<String, String>) -> ApiResult<Self> {
        Ok(Filter {
            labels: LabelSelector::parse(
                query.get("labelSelector").map(String::as_str).unwrap_or(""),
            )?,
            fields: FieldSelector::parse(
                query.get("fieldSelector").map(String::as_str).unwrap_or(""),
                &info.field_selectors,
            )?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// True when it selects every object.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
}

fn encode_continue(rev: i64, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::BadRequest("continue key is not valid: the continue token is malformed".into())
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_i64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// Reads one page of a list as Kubernetes defines the resourceVersion parameters.
pub async fn list(
    api: &Api,
    info: &ResourceInfo,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    version: &str,
) -> ApiResult<ListPage> {
    let filter = Filter::from_query(info, query)?;
    let prefix = info.key_prefix(namespace);
    let limit: usize = match query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("limit: invalid value {l:?}")))?,
        None => 0,
    };
    let mut revision: Option<i64> = None;
    let mut start_after: Option<String> = None;
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let (rev, start) = decode_continue(token)?;
        revision = Some(rev);
        start_after = Some(format!("{prefix}{start}"));
    } else if let Some(rv) = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        let rv: i64 = rv
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("resourceVersion: Invalid value: {rv:?}")))?;
        if query.get("resourceVersionMatch").map(String::as_str) == Some("Exact") {
            revision = Some(rv);
        }
    }
    let mut items = Vec::new();
    let mut read_at = revision;
    let mut last_key: Option<String> = None;
    let mut more;
    loop {
        let want = if limit == 0 {
            None
        } else {
            Some((limit - items.len()).max(1))
        };
        let page = api
            .store
            .list(&prefix, ListOptions { revision: read_at, start_after: start_after.clone(), limit: want })
            .await
            .map_err(|e| match e {
                oxivirt_store::Error::Compacted { .. } if query.contains_key("continue") => ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                ),
                oxivirt_store::Error::FutureRevision { requested, .. } => {
                    ApiError::Timeout(format!("Too large resource version: {requested}"))
                }
                other => other.into(),
            })?;
        read_at = Some(page.revision);
        for kv in &page.items {
            last_key = Some(kv.key.clone());
            let obj = api.decode(info, kv, version)?;
            if filter.matches(&obj) {
                items.push(obj);
            }
        }
        more = page.more;
        if !page.more || (limit > 0 && items.len() >= limit) {
            break;
        }
        start_after = last_key.clone();
    }
    let revision = read_at.unwrap_or(0);
    let continue_token = match (more, &last_key) {
        (true, Some(key)) => Some(encode_continue(
            revision,
            key.strip_prefix(&prefix).unwrap_or(key),
        )),
        _ => None,
    };
    Ok(ListPage {
        items,
        revision,
        continue_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/cm-7");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/cm-7".to_string())
        );
        assert!(decode_continue("not-a-token!").is_err());
    }
}

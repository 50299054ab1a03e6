//! Stored records decoded once for every watcher that receives them.
//!
//! A write reaches each watch of its resource at almost the same moment: the controllers,
//! the scheduler, the node agent, the network and storage loops and any `kubectl get -w`.
//! Each used to parse the stored JSON, convert it to the version it asked for and serialise
//! it again; with half a dozen watchers per Pod or VMI that was about an eighth of the
//! server's CPU while it started many VMs. The recent records are kept here, decoded and serialised, and
//! shared.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oxivirt_store::KeyValue;
use serde_json::Value;

use crate::error::ApiResult;
use crate::registry::ResourceInfo;
use crate::service::Api;

/// How many decoded records are kept: enough for every watcher to find an event that
/// all of them receive within a burst of writes.
const CAPACITY: usize = 1024;

/// One record as clients of one API version see it.
#[derive(Debug)]
pub struct Decoded {
    pub object: Value,
    /// `object` serialised.
    pub json: Bytes,
}

/// Which record, at which revision, for which API version.
type CacheKey = (String, i64, String);

/// The most recently decoded records, oldest evicted first.
#[derive(Default)]
pub struct DecodedCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<CacheKey, Arc<Decoded>>,
    order: VecDeque<CacheKey>,
}

impl DecodedCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<Decoded>> {
        self.inner.lock().ok()?.by_key.get(key).cloned()
    }

    fn insert(&self, key: CacheKey, decoded: Arc<Decoded>) {
        let Ok(mut entries) = self.inner.lock() else {
            return;
        };
        if entries.by_key.insert(key.clone(), decoded).is_none() {
            entries.order.push_back(key);
        }
        while entries.order.len() > CAPACITY {
            if let Some(oldest) = entries.order.pop_front() {
                entries.by_key.remove(&oldest);
            }
        }
    }
}

impl Api {
    /// [`Api::decode`], shared: a record at a revision never changes, so whoever decoded it
    /// first for `version` did it for every other reader.
    pub fn decode_shared(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        version: &str,
    ) -> ApiResult<Arc<Decoded>> {
        let key = (kv.key.clone(), kv.mod_revision, version.to_string());
        if let Some(found) = self.decoded.get(&key) {
            return Ok(found);
        }
        let object = self.decode(info, kv, version)?;
        let json = serde_json::to_vec(&object).map_err(crate::error::ApiError::internal)?;
        let json = Bytes::from(json);
        let decoded = Arc::new(Decoded { object, json });
        self.decoded.insert(key, decoded.clone());
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> (CacheKey, Arc<Decoded>) {
        let key = ("/registry/pods/default/a".to_string(), n, "v1".to_string());
        let decoded = Arc::new(Decoded {
            object: serde_json::json!({"n": n}),
            json: Bytes::from(format!("{{\"n\":{n}}}")),
        });
        (key, decoded)
    }

    #[test]
    fn keeps_the_most_recent_records_only() {
        let cache = DecodedCache::default();
        for n in 0..(CAPACITY as i64 + 10) {
            let (key, decoded) = entry(n);
            cache.insert(key, decoded);
        }
        assert!(cache.get(&entry(9).0).is_none(), "oldest evicted");
        let newest = cache.get(&entry(CAPACITY as i64 + 9).0).unwrap();
        assert_eq!(newest.object["n"], CAPACITY as i64 + 9);
        let entries = cache.inner.lock().unwrap();
        assert_eq!(entries.order.len(), CAPACITY);
        assert_eq!(entries.by_key.len(), CAPACITY);
    }
}

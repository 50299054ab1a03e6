//! What every reconciler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::events::Recorder;

/// The component name the VM and VMI controllers record Events as (upstream's).
const COMPONENT: &str = "virtualmachine-controller";

/// Shared, cheap to clone: the API client and the Event recorder.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    recorder: Recorder,
    /// VM uid → (name, spec) of its newest start revision. ControllerRevisions never
    /// change and only the VM controller writes start revisions, so the one it recorded or
    /// last read stays true until it records the next: `RestartRequired` is computed on
    /// every pass without listing them each time.
    start_revisions: Mutex<HashMap<String, (String, Value)>>,
}

impl Context {
    pub fn new(client: kube::Client) -> Self {
        let recorder = Recorder::new(client.clone(), COMPONENT);
        Context {
            inner: Arc::new(Inner {
                client,
                recorder,
                start_revisions: Mutex::default(),
            }),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// Records Events as `virtualmachine-controller`.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// The remembered start revision of the VM with `uid`: `(name, spec)`.
    pub(crate) fn start_revision(&self, uid: &str) -> Option<(String, Value)> {
        let memo = self.inner.start_revisions.lock().ok()?;
        memo.get(uid).cloned()
    }

    /// Remembers the newest start revision of the VM with `uid` (`None`: forget it).
    pub(crate) fn remember_start_revision(&self, uid: &str, revision: Option<(String, Value)>) {
        if let Ok(mut memo) = self.inner.start_revisions.lock() {
            match revision {
                Some(revision) => memo.insert(uid.to_string(), revision),
                None => memo.remove(uid),
            };
        }
    }
}

//! What every reconciler shares.

use std::sync::Arc;

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
}

impl Context {
    pub fn new(client: kube::Client) -> Self {
        let recorder = Recorder::new(client.clone(), COMPONENT);
        Context {
            inner: Arc::new(Inner { client, recorder }),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// Records Events as `virtualmachine-controller`.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }
}

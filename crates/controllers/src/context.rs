//! What every reconciler shares.

use std::sync::Arc;

/// Shared, cheap to clone: the API client.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
}

impl Context {
    pub fn new(client: kube::Client) -> Self {
        Context {
            inner: Arc::new(Inner { client }),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }
}

//! One server shared by the tests of a module, for tests that only need namespaces of their own.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::server::Server;

/// A lazily started [`Server`] that the tests of one module share while any of them runs.
///
/// Declare one per module (`static SERVER: SharedServer = SharedServer::new();`) and call
/// [`get`](Self::get) in each test. The server lives as long as some test holds it: libtest
/// runs a module's tests one after another (names are sorted), so the tests of a module
/// overlap and reuse one process, which is stopped (and its directory removed) when the last
/// holder drops it, never leaked past the test binary.
///
/// # Caveats
/// Tests sharing a server must not depend on cluster-scoped state another test changes; give
/// each test its own namespace and its own names for cluster-scoped objects.
#[derive(Debug)]
pub struct SharedServer {
    slot: Mutex<Weak<Server>>,
}

impl SharedServer {
    /// An empty slot; the server starts on the first [`get`](Self::get).
    pub const fn new() -> Self {
        Self {
            slot: Mutex::new(Weak::new()),
        }
    }

    /// The running shared server, started now if no test holds it.
    ///
    /// # Panics
    /// When the server does not become ready (see [`Server::start`]).
    pub fn get(&self) -> Arc<Server> {
        // A test that panicked while holding the lock leaves nothing half-done in the slot.
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(Server::start());
        *slot = Arc::downgrade(&server);
        server
    }
}

impl Default for SharedServer {
    fn default() -> Self {
        Self::new()
    }
}

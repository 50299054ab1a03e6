//! oxivirt-controllers: the virt-controller role.
//!
//! Owns: reconcilers that act on the API through the kube-rs client (one module per
//! concern), each idempotent and level-triggered, restartable at any `.await`.
//! Must not: talk to QEMU or touch a node's resources (that is the node agent's job).

mod context;
mod error;
mod instancetype;

use std::time::Duration;

pub use context::Context;
pub use error::{Error, Result};

/// Runs every controller until the process ends, restarting one that stops.
pub async fn run(client: kube::Client) {
    let ctx = Context::new(client);
    loop {
        instancetype::run(ctx.clone()).await;
        tracing::warn!("instancetype controller stopped; restarting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

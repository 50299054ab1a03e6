//! oxivirt-controllers: the virt-controller role.
//!
//! Owns: reconcilers that act on the API through the kube-rs client (one module per
//! concern), each idempotent and level-triggered, restartable at any `.await`: instance
//! type capture, the VirtualMachine and VirtualMachineInstance controllers, and the
//! scheduler that binds launcher Pods to Nodes (contract: `docs/design/0004`).
//! Must not: talk to QEMU or touch a node's resources (that is the node agent's job).

mod cache;
mod context;
mod error;
mod events;
mod instancetype;
mod object;
mod scheduler;
mod vm;
mod vmi;
mod well_known;

use std::future::Future;
use std::time::Duration;

pub use context::Context;
pub use error::{Error, Result};

/// Runs every controller until the process ends, restarting one that stops.
pub async fn run(client: kube::Client) {
    let ctx = Context::new(client);
    tokio::join!(
        supervise("instancetype", ctx.clone(), instancetype::run),
        supervise("virtualmachine", ctx.clone(), vm::run),
        supervise("virtualmachineinstance", ctx.clone(), vmi::run),
        supervise("scheduler", ctx, scheduler::run),
    );
}

async fn supervise<F, Fut>(name: &'static str, ctx: Context, controller: F)
where
    F: Fn(Context) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        controller(ctx.clone()).await;
        tracing::warn!(controller = name, "controller stopped; restarting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

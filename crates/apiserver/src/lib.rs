//! The oxivirt API server: Kubernetes REST semantics over the object store.
//!
//! Owns: routing by group/version/resource, discovery, OpenAPI, list/watch, patch
//! types, admission (defaulting, pruning, validation through the schema crate),
//! authentication, the error→`Status` mapping, garbage collection and namespace
//! lifecycle. Must not: hold VM reconcile logic or talk to QEMU.

mod admission;
mod auth;
mod authz;
mod bootstrap;
mod builtin;
mod context;
mod cpu_time;
mod crd;
mod decoded;
mod discovery;
mod error;
mod events;
mod gc;
mod handlers;
mod hotplug;
mod jsonpath;
mod kubeconfig;
mod managed;
mod memory_dump;
mod node_relay;
mod objects;
mod openapi;
mod pki;
mod printers;
mod rbac;
mod registry;
mod routes;
mod schemas;
mod selectors;
mod server;
mod service;
mod subresources;
mod table;
mod tokens;
mod unsupported;
mod vm_actions;
mod vmi_relay;
mod vnc_token;
mod webhook;

pub use context::{RequestCtx, UserInfo};
pub use error::{ApiError, ApiResult};
pub use registry::{Registry, ResourceInfo};
pub use server::{in_memory_api, start, ComponentsService, RunningServer, ServerConfig};
pub use service::{Api, DeleteOptions, Subresource};

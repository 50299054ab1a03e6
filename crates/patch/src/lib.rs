//! Patch formats and field ownership for oxivirt's Kubernetes-compatible API server.
//!
//! This crate is pure data transformation over [`serde_json::Value`]: no I/O, no async, and no
//! knowledge of storage or HTTP. The API server calls it to turn a request body into the next
//! version of an object:
//!
//! - [`json_patch`] applies RFC 6902 JSON Patch (`application/json-patch+json`).
//! - [`merge_patch`] applies RFC 7386 JSON Merge Patch (`application/merge-patch+json`).
//! - [`strategic_merge_patch`] applies Kubernetes strategic merge patch
//!   (`application/strategic-merge-patch+json`), the format kubectl sends for built-in kinds.
//! - [`apply`] implements server-side apply (`application/apply-patch+yaml`, already parsed to
//!   JSON) with conflict detection against `metadata.managedFields`.
//! - [`record_update`] and [`record_status_update`] keep `metadata.managedFields` current for
//!   ordinary create, update and patch requests.
//!
//! How lists merge is described by a [`PatchMeta`]; [`CoreKindsMeta`] carries the Kubernetes
//! `patchStrategy`/`patchMergeKey` table for the core kinds, and any closure
//! `Fn(&[&str]) -> Option<ListStrategy>` is a [`PatchMeta`] too.
//!
//! # Assumptions
//!
//! Objects are JSON objects shaped like Kubernetes resources (`metadata` at the root). Schema
//! knowledge is limited to list strategies: maps are always merged field by field (there is no
//! notion of atomic maps or structs), and associative lists have a single key field.

mod apply;
mod core_meta;
mod diff;
mod error;
mod fields;
mod json_patch;
mod managed;
mod merge;
mod meta;
mod strategic;

pub use apply::{apply, ApplyError, ApplyOptions, Conflict};
pub use core_meta::CoreKindsMeta;
pub use error::{Error, Result};
pub use json_patch::json_patch;
pub use managed::{record_status_update, record_update, Operation};
pub use merge::merge_patch;
pub use meta::{AtomicLists, ListStrategy, PatchMeta};
pub use strategic::strategic_merge_patch;

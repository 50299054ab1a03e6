//! End-to-end suite: every test starts its own `oxivirt server` (free port, temporary data
//! directory) and drives it with the stock `kubectl` or kube-rs, so tests are parallel-safe.
//!
//! The server binary is found by `oxivirt_e2e::oxivirt_bin` (build it first, see
//! `docs/testing.md`). Modules follow the kubectl verbs they exercise.

mod apply;
mod bench;
mod binding;
mod content;
mod crd;
mod defaults;
mod delete;
mod discovery;
mod errors;
mod examples;
mod get;
mod kinds;
mod kube_client;
mod manual;
mod namespace;
mod patch;
mod persistence;
mod security;
mod update;
mod validation;
mod virtctl_create;
mod wait;
mod watch;

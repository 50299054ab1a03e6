//! The node agent against the real in-process API server (HTTPS, kube-rs client), with a
//! fake launcher that follows design 0004's contract, and containerDisk pulls from a real
//! `docker-registry`.

mod fake_launcher;
mod harness;
mod node;
mod pods;
mod registry;

//! Integration tests of oxivirt-api: one binary, one module per concern.

mod common;
mod crds;
mod examples;
mod manual;
mod names;
mod swagger_coverage;
mod upstream_schemas;

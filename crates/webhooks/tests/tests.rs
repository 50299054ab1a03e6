//! Integration tests: upstream's example manifests through `admit`.

mod examples;

//! oxivirt-schema: API schemas, structural schema processing and OpenAPI documents.
//!
//! # Owns
//! - The schemas of what we serve: KubeVirt's CRD `openAPIV3Schema`s (embedded from
//!   `crds/`, see [`kubevirt_schema`]) and core Kubernetes kinds generated from k8s-openapi's
//!   schemars impls ([`core_schemas`]).
//! - Structural schema processing with Kubernetes CRD semantics ([`process`]): pruning of
//!   unknown fields, defaulting, and validation producing Kubernetes-style field errors.
//! - Building the OpenAPI documents kubectl reads: the v3 index, per group/version v3
//!   documents and the v2 document ([`openapi_v3_index`], [`openapi_v3_group_version`],
//!   [`openapi_v2`]).
//!
//! # Must not
//! Do I/O (the only files it reads are embedded with `include_str!`), know HTTP (the
//! apiserver serves these documents and maps [`FieldError`]s to `Status` causes), or know
//! any kind's semantics beyond what its schema says.
//!
//! # Typical use
//! ```
//! use oxivirt_schema::{kubevirt_schema, process, Definitions, ProcessOptions};
//! let schema = kubevirt_schema("VirtualMachine").expect("embedded");
//! let mut vm = serde_json::json!({
//!     "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
//!     "metadata": {"name": "vm1"}, "spec": {"running": false, "foo": 1, "template": {}}
//! });
//! let outcome = process(&schema, &Definitions::new(), &mut vm, ProcessOptions::all());
//! assert_eq!(outcome.unknown_fields, vec![".spec.foo".to_string()]);
//! assert!(vm["spec"].get("foo").is_none());
//! ```

mod checks;
mod core;
mod definitions;
mod error;
mod kubevirt;
mod metadata;
mod openapi_v2;
mod openapi_v3;
mod operations;
mod patch_meta;
mod resource_doc;
mod structural;
mod view;

pub use crate::core::{core_schemas, CoreKind, CoreSchemas, META_GROUP};
pub use definitions::{
    ref_name, referenced_names, rewrite_refs, Definitions, V2_REF_PREFIX, V3_REF_PREFIX,
};
pub use error::{Error, FieldError, FieldErrorKind, Outcome, Result};
pub use kubevirt::{
    kubevirt_crd, kubevirt_resource_docs, kubevirt_schema, kubevirt_schema_ref, KubevirtCrd,
    KUBEVIRT_CRDS,
};
pub use metadata::OBJECT_META_FIELDS;
pub use openapi_v2::openapi_v2;
pub use openapi_v3::{content_hash, openapi_v3_group_version, openapi_v3_index};
pub use resource_doc::{
    crd_schema_name, ResourceDoc, ALL_VERBS, DELETE_OPTIONS, LIST_META, OBJECT_META, PATCH, STATUS,
};
pub use structural::{process, ProcessOptions};

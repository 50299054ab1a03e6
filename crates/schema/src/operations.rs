//! REST paths and operations of a resource, shared by the v2 and v3 document builders.
//!
//! kubectl decides that the server supports server-side field validation by finding, for the
//! kind, a PATCH operation (tagged with `x-kubernetes-group-version-kind`) that lists a
//! `fieldValidation` query parameter inline. Every PATCH, POST and PUT here does.

use serde_json::{json, Map, Value};

use crate::resource_doc::{ResourceDoc, DELETE_OPTIONS, PATCH, STATUS};

/// Which OpenAPI dialect to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Swagger 2.0 (`/openapi/v2`).
    V2,
    /// OpenAPI 3.0 (`/openapi/v3/...`).
    V3,
}

impl Flavor {
    pub(crate) fn schema_ref(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Flavor::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }
}

/// A non-body parameter: name, location, JSON type, description.
type Param = (&'static str, &'static str, &'static str, &'static str);

const PRETTY: Param = (
    "pretty",
    "query",
    "string",
    "If 'true', the output is pretty printed.",
);
const DRY_RUN: Param = (
    "dryRun",
    "query",
    "string",
    "When present, modifications are checked but not persisted. The only valid value is All.",
);
const FIELD_MANAGER: Param = (
    "fieldManager",
    "query",
    "string",
    "Name of the actor making these changes, recorded in managedFields.",
);
const FIELD_VALIDATION: Param = (
    "fieldValidation",
    "query",
    "string",
    "How to treat unknown or duplicate fields in the request body: Ignore (drop them \
     silently), Warn (drop them and return a Warning header per field; the default) or \
     Strict (reject the request with BadRequest).",
);
const FORCE: Param = (
    "force",
    "query",
    "boolean",
    "Force an apply request, taking over fields owned by other managers. Only for apply patches.",
);
const LIST_PARAMS: [Param; 10] = [
    (
        "allowWatchBookmarks",
        "query",
        "boolean",
        "Ask for BOOKMARK watch events.",
    ),
    (
        "continue",
        "query",
        "string",
        "Continue token from a previous limited list.",
    ),
    (
        "fieldSelector",
        "query",
        "string",
        "Restrict the results by their fields.",
    ),
    (
        "labelSelector",
        "query",
        "string",
        "Restrict the results by their labels.",
    ),
    (
        "limit",
        "query",
        "integer",
        "Maximum number of results to return.",
    ),
    (
        "resourceVersion",
        "query",
        "string",
        "Resource version the list or watch starts from.",
    ),
    (
        "resourceVersionMatch",
        "query",
        "string",
        "How resourceVersion applies to the list.",
    ),
    (
        "sendInitialEvents",
        "query",
        "boolean",
        "Send synthetic ADDED events before watching.",
    ),
    (
        "timeoutSeconds",
        "query",
        "integer",
        "Time limit for the list or watch call.",
    ),
    (
        "watch",
        "query",
        "boolean",
        "Watch for changes instead of listing.",
    ),
];
const DELETE_PARAMS: [Param; 4] = [
    (
        "gracePeriodSeconds",
        "query",
        "integer",
        "Seconds before the object is deleted.",
    ),
    (
        "orphanDependents",
        "query",
        "boolean",
        "Deprecated: use propagationPolicy.",
    ),
    (
        "propagationPolicy",
        "query",
        "string",
        "Orphan, Background or Foreground.",
    ),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "query",
        "boolean",
        "Delete corrupt objects.",
    ),
];
const NAME: Param = ("name", "path", "string", "name of the object");
const NAMESPACE: Param = ("namespace", "path", "string", "object name and auth scope");

const PATCH_TYPES_CUSTOM: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];
const PATCH_TYPES_CORE: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fn parameter(flavor: Flavor, (name, location, ty, description): Param) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description});
    let typed = json!({"type": ty, "uniqueItems": true});
    match flavor {
        Flavor::V2 => extend(&mut p, typed),
        Flavor::V3 => {
            p["schema"] = typed;
        }
    }
    if location == "path" {
        p["required"] = Value::Bool(true);
    }
    p
}

fn extend(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}

/// One operation to emit.
struct Op<'a> {
    doc: &'a ResourceDoc,
    flavor: Flavor,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Param>,
    body: Option<(String, Vec<&'static str>, bool)>,
    response: String,
    created: bool,
}

impl Op<'_> {
    fn build(self) -> Value {
        let flavor = self.flavor;
        let mut op = json!({
            "tags": [tag(self.doc)],
            "description": self.description,
            "operationId": self.id,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.doc.gvk(),
        });
        let mut params: Vec<Value> = self
            .params
            .into_iter()
            .map(|p| parameter(flavor, p))
            .collect();
        let ok = |status: &str| match flavor {
            Flavor::V2 => {
                json!({"description": status, "schema": flavor.schema_ref(&self.response)})
            }
            Flavor::V3 => {
                let schema = flavor.schema_ref(&self.response);
                json!({"description": status, "content": {
                    "application/json": {"schema": schema.clone()},
                    "application/yaml": {"schema": schema},
                }})
            }
        };
        let mut responses = Map::new();
        responses.insert("200".into(), ok("OK"));
        if self.created {
            responses.insert("201".into(), ok("Created"));
            responses.insert("202".into(), ok("Accepted"));
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        op["responses"] = Value::Object(responses);
        if let Some((schema, content_types, required)) = self.body {
            match flavor {
                Flavor::V2 => {
                    op["consumes"] = json!(content_types);
                    params.insert(
                        0,
                        json!({"name": "body", "in": "body", "required": required,
                               "schema": flavor.schema_ref(&schema)}),
                    );
                }
                Flavor::V3 => {
                    let content: Map<String, Value> = content_types
                        .iter()
                        .map(|ct| {
                            (
                                ct.to_string(),
                                json!({"schema": flavor.schema_ref(&schema)}),
                            )
                        })
                        .collect();
                    op["requestBody"] = json!({"content": content, "required": required});
                }
            }
        }
        if flavor == Flavor::V2 {
            op["produces"] = json!(["application/json", "application/yaml"]);
            op["schemes"] = json!(["https"]);
        }
        op["parameters"] = Value::Array(params);
        op
    }
}

/// The `tags` entry and operation-id infix: `coreV1`, `kubevirtIoV1`, `rbacAuthorizationV1`.
fn tag(doc: &ResourceDoc) -> String {
    let mut id = group_version_id(doc);
    if let Some(first) = id.get(..1) {
        id = format!("{}{}", first.to_lowercase(), &id[1..]);
    }
    id
}

fn group_version_id(doc: &ResourceDoc) -> String {
    let group = if doc.group.is_empty() {
        "core"
    } else {
        doc.group.strip_suffix(".k8s.io").unwrap_or(&doc.group)
    };
    let mut out = String::new();
    for word in group.split(['.', '-']).chain([doc.version.as_str()]) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// All paths of one resource: `(path, path item)` pairs.
pub(crate) fn resource_paths(doc: &ResourceDoc, flavor: Flavor) -> Vec<(String, Value)> {
    let base = format!("/{}", doc.group_version_path());
    let scoped = if doc.namespaced {
        format!("{base}/namespaces/{{namespace}}")
    } else {
        base.clone()
    };
    let collection = format!("{scoped}/{}", doc.plural);
    let item = format!("{collection}/{{name}}");
    let gv = group_version_id(doc);
    let ns = if doc.namespaced { "Namespaced" } else { "" };
    let kind = &doc.kind;
    let write_params = vec![PRETTY, DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
    let mut patch_params = write_params.clone();
    patch_params.push(FORCE);
    // Built-in kinds (k8s.io schemas) accept strategic merge patches; custom resources do not.
    let patch_types: Vec<&'static str> = if doc.schema_name.starts_with("io.k8s.") {
        PATCH_TYPES_CORE.to_vec()
    } else {
        PATCH_TYPES_CUSTOM.to_vec()
    };
    let mut list_params = vec![PRETTY];
    list_params.extend(LIST_PARAMS);
    let mut delete_params = vec![PRETTY, DRY_RUN];
    delete_params.extend(DELETE_PARAMS);
    let op = |action, id: String, description: String, params: Vec<Param>| Op {
        doc,
        flavor,
        action,
        id,
        description,
        params,
        body: None,
        response: doc.schema_name.clone(),
        created: false,
    };
    let whole = Some((doc.schema_name.clone(), vec!["*/*"], true));
    let patch_body = Some((PATCH.to_string(), patch_types, true));

    let collection_params: Vec<Param> = doc.namespaced.then_some(NAMESPACE).into_iter().collect();
    let mut item_params = vec![NAME];
    item_params.extend(collection_params.iter().copied());
    let mut out = Vec::new();
    let mut coll = Map::new();
    if doc.supports("list") {
        let mut o = op(
            "list",
            format!("list{gv}{ns}{kind}"),
            format!("list or watch objects of kind {kind}"),
            list_params.clone(),
        );
        o.response = doc.list_schema_name();
        coll.insert("get".into(), o.build());
    }
    if doc.supports("create") {
        let mut o = op(
            "post",
            format!("create{gv}{ns}{kind}"),
            format!("create a {kind}"),
            write_params.clone(),
        );
        o.body = whole.clone();
        o.created = true;
        coll.insert("post".into(), o.build());
    }
    if doc.supports("deletecollection") {
        let mut params = delete_params.clone();
        params.extend(LIST_PARAMS);
        let mut o = op(
            "deletecollection",
            format!("delete{gv}Collection{ns}{kind}"),
            format!("delete collection of {kind}"),
            params,
        );
        o.body = Some((DELETE_OPTIONS.to_string(), vec!["*/*"], false));
        o.response = STATUS.to_string();
        coll.insert("delete".into(), o.build());
    }
    push_path(&mut out, collection, coll, &collection_params, flavor);

    let mut one = Map::new();
    let mut status = Map::new();
    if doc.supports("get") {
        one.insert(
            "get".into(),
            op(
                "get",
                format!("read{gv}{ns}{kind}"),
                format!("read the specified {kind}"),
                vec![PRETTY],
            )
            .build(),
        );
        if doc.has_status {
            status.insert(
                "get".into(),
                op(
                    "get",
                    format!("read{gv}{ns}{kind}Status"),
                    format!("read status of the specified {kind}"),
                    vec![PRETTY],
                )
                .build(),
            );
        }
    }
    if doc.supports("update") {
        let mut o = op(
            "put",
            format!("replace{gv}{ns}{kind}"),
            format!("replace the specified {kind}"),
            write_params.clone(),
        );
        o.body = whole.clone();
        o.created = true;
        one.insert("put".into(), o.build());
        if doc.has_status {
            let mut o = op(
                "put",
                format!("replace{gv}{ns}{kind}Status"),
                format!("replace status of the specified {kind}"),
                write_params.clone(),
            );
            o.body = whole.clone();
            o.created = true;
            status.insert("put".into(), o.build());
        }
    }
    if doc.supports("patch") {
        let mut o = op(
            "patch",
            format!("patch{gv}{ns}{kind}"),
            format!("partially update the specified {kind}"),
            patch_params.clone(),
        );
        o.body = patch_body.clone();
        o.created = true;
        one.insert("patch".into(), o.build());
        if doc.has_status {
            let mut o = op(
                "patch",
                format!("patch{gv}{ns}{kind}Status"),
                format!("partially update status of the specified {kind}"),
                patch_params.clone(),
            );
            o.body = patch_body.clone();
            o.created = true;
            status.insert("patch".into(), o.build());
        }
    }
    if doc.supports("delete") {
        let mut o = op(
            "delete",
            format!("delete{gv}{ns}{kind}"),
            format!("delete a {kind}"),
            delete_params.clone(),
        );
        o.body = Some((DELETE_OPTIONS.to_string(), vec!["*/*"], false));
        o.created = true;
        one.insert("delete".into(), o.build());
    }
    push_path(
        &mut out,
        format!("{item}/status"),
        status,
        &item_params,
        flavor,
    );
    push_path(&mut out, item, one, &item_params, flavor);

    if doc.namespaced && doc.supports("list") {
        let mut all = Map::new();
        let mut o = op(
            "list",
            format!("list{gv}{kind}ForAllNamespaces"),
            format!("list or watch objects of kind {kind}"),
            list_params,
        );
        o.response = doc.list_schema_name();
        all.insert("get".into(), o.build());
        push_path(&mut out, format!("{base}/{}", doc.plural), all, &[], flavor);
    }
    out
}

fn push_path(
    out: &mut Vec<(String, Value)>,
    path: String,
    operations: Map<String, Value>,
    params: &[Param],
    flavor: Flavor,
) {
    if operations.is_empty() {
        return;
    }
    let mut item = Value::Object(operations);
    if !params.is_empty() {
        let params: Vec<Value> = params.iter().map(|p| parameter(flavor, *p)).collect();
        item["parameters"] = Value::Array(params);
    }
    out.push((path, item));
}

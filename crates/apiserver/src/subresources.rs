//! KubeVirt's `subresources.kubevirt.io/v1` API (upstream's virt-api): version and the
//! VM/VMI subresources that later issues fill in.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::context::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::service::Api;
use crate::vm_actions::VmAction;

/// The KubeVirt release whose API oxivirt serves (OpenShift Virtualization 4.16).
pub const KUBEVIRT_VERSION: &str = "v1.2.2";

fn version() -> Value {
    json!({
        "gitVersion": format!("{KUBEVIRT_VERSION}+oxivirt-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn not_found(path: &str) -> Response {
    ApiError::NotFound {
        message: format!("the server could not find the requested resource ({path})"),
        group: "subresources.kubevirt.io".into(),
        kind: String::new(),
        name: String::new(),
    }
    .into_response()
}

fn respond(result: ApiResult<Value>) -> Response {
    match result {
        Ok(vm) => json_response(StatusCode::OK, &vm, vec![]),
        Err(e) => e.into_response(),
    }
}

fn check_namespace(vm: &Value, ns: &str) -> ApiResult<()> {
    let vm_ns = vm
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !vm_ns.is_empty() && vm_ns != ns {
        return Err(ApiError::BadRequest(format!(
            "VM namespace must be empty or {ns}"
        )));
    }
    Ok(())
}

/// Fetches what `spec.instancetype` / `spec.preference` of a VM name: a captured
/// ControllerRevision when `revisionName` is set, else the (cluster) object itself.
async fn referenced(
    api: &Api,
    ns: &str,
    vm: &Value,
    field: &str,
    namespaced_kind: &str,
) -> ApiResult<Option<Value>> {
    let Some(reference) = vm
        .pointer(&format!("/spec/{field}"))
        .filter(|r| r.is_object())
    else {
        return Ok(None);
    };
    // A captured revision wins: the VM keeps what it was created with (status.<field>Ref
    // written by the instancetype controller, or the older spec.<field>.revisionName).
    let status_revision = vm
        .pointer(&format!("/status/{field}Ref/controllerRevisionRef/name"))
        .and_then(Value::as_str);
    if let Some(revision) = reference["revisionName"]
        .as_str()
        .or(status_revision)
        .filter(|r| !r.is_empty())
    {
        let info = api
            .registry
            .by_group_resource("apps", "controllerrevisions")
            .ok_or_else(|| ApiError::internal("controllerrevisions are not served"))?;
        let cr = api.get(&info, ns, revision, "v1").await?;
        return Ok(cr
            .get("data")
            .map(|d| d.get("object").cloned().unwrap_or_else(|| d.clone())));
    }
    let name = reference["name"].as_str().unwrap_or("");
    let kind = reference["kind"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    let (plural, scope_ns) = if kind == namespaced_kind.to_ascii_lowercase() {
        (format!("{}s", namespaced_kind.to_ascii_lowercase()), ns)
    } else {
        (
            format!(
                "{}s",
                namespaced_kind
                    .to_ascii_lowercase()
                    .replace("virtualmachine", "virtualmachinecluster")
            ),
            "",
        )
    };
    let info = api
        .registry
        .by_group_resource("instancetype.kubevirt.io", &plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    api.get(&info, scope_ns, name, &info.storage_version)
        .await
        .map(Some)
}

/// The VM with its instance type and preference applied (`expand-spec`).
async fn expand(api: &Api, ns: &str, vm: &Value) -> ApiResult<Value> {
    let instancetype =
        referenced(api, ns, vm, "instancetype", "VirtualMachineInstancetype").await?;
    let preference = referenced(api, ns, vm, "preference", "VirtualMachinePreference").await?;
    oxivirt_api::content::expand_spec(vm, instancetype.as_ref(), preference.as_ref())
        .map_err(|e| ApiError::BadRequest(format!("cannot expand instancetype to VM: {e}")))
}

/// The stream a websocket path names: `console` and `vnc` on VMIs, `portforward/{port}` and
/// `portforward/{port}/{protocol}` on VMIs and VMs (a VM's stream is its VMI's: same name).
fn stream_of(kind: &str, rest: &[&str]) -> Option<crate::vmi_relay::Stream> {
    use crate::vmi_relay::Stream;
    match (kind, rest) {
        ("virtualmachineinstances", ["console"]) => Some(Stream::Console),
        ("virtualmachineinstances", ["vnc"]) => Some(Stream::Vnc),
        (_, ["portforward", port]) => Some(Stream::PortForward {
            port: port.parse().ok()?,
            protocol: "tcp".into(),
        }),
        (_, ["portforward", port, protocol @ ("tcp" | "udp")]) => Some(Stream::PortForward {
            port: port.parse().ok()?,
            protocol: (*protocol).into(),
        }),
        _ => None,
    }
}

pub async fn handle(api: Arc<Api>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').skip(2).collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["v1"] | ["v1alpha3"]) => json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": format!("subresources.kubevirt.io/{}", segments[0]),
                "resources": [],
            }),
            vec![],
        ),
        (&Method::GET, [_, "version"]) => json_response(StatusCode::OK, &version(), vec![]),
        (
            &Method::PUT,
            [_, "namespaces", ns, "virtualmachines", name, verb @ ("start" | "stop" | "restart")],
        ) => {
            let action = match *verb {
                "start" => VmAction::Start,
                "stop" => VmAction::Stop,
                _ => VmAction::Restart,
            };
            let (ns, name) = (ns.to_string(), name.to_string());
            let user = req.extensions().get::<UserInfo>().cloned();
            let Some(user) = user else {
                return ApiError::Unauthorized.into_response();
            };
            let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return ApiError::BadRequest(format!(
                            "the {verb} options are not valid JSON: {e}"
                        ))
                        .into_response()
                    }
                }
            };
            let grace = options
                .get("gracePeriod")
                .or_else(|| options.get("gracePeriodSeconds"))
                .and_then(Value::as_i64);
            let dry_run = options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
            match crate::vm_actions::perform(&api, &user, &ns, &name, action, grace, dry_run).await
            {
                Ok(()) => (StatusCode::ACCEPTED, "").into_response(),
                Err(e) => e.into_response(),
            }
        }
        (
            &Method::PUT,
            [_, "namespaces", ns, kind @ ("virtualmachines" | "virtualmachineinstances"), name, verb @ ("addvolume" | "removevolume")],
        ) => {
            let (ns, name, verb) = (ns.to_string(), name.to_string(), *verb);
            let target = if *kind == "virtualmachines" {
                crate::hotplug::Target::VirtualMachine
            } else {
                crate::hotplug::Target::VirtualMachineInstance
            };
            let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
                return ApiError::Unauthorized.into_response();
            };
            let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
                Ok(body) => body,
                Err(e) => {
                    return ApiError::BadRequest(format!("reading the request body: {e}"))
                        .into_response()
                }
            };
            let result = if verb == "addvolume" {
                match crate::hotplug::parse_add(&body) {
                    Ok(request) => {
                        crate::hotplug::add(&api, &user, &ns, &name, target, &request).await
                    }
                    Err(e) => Err(e),
                }
            } else {
                match crate::hotplug::parse_remove(&body) {
                    Ok((volume, dry_run)) => {
                        crate::hotplug::remove(&api, &user, &ns, &name, target, &volume, dry_run)
                            .await
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(()) => (StatusCode::ACCEPTED, "").into_response(),
                Err(e) => e.into_response(),
            }
        }
        (
            &Method::PUT,
            [_, "namespaces", ns, "virtualmachines", name, verb @ ("memorydump" | "removememorydump")],
        ) => {
            let (ns, name, verb) = (ns.to_string(), name.to_string(), *verb);
            let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
                return ApiError::Unauthorized.into_response();
            };
            let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
                Ok(body) => body,
                Err(e) => {
                    return ApiError::BadRequest(format!("reading the request body: {e}"))
                        .into_response()
                }
            };
            let result = if verb == "memorydump" {
                crate::memory_dump::dump(&api, &user, &ns, &name, &body).await
            } else {
                crate::memory_dump::remove(&api, &user, &ns, &name).await
            };
            match result {
                Ok(()) => (StatusCode::ACCEPTED, "").into_response(),
                Err(e) => e.into_response(),
            }
        }
        (
            &Method::PUT,
            [_, "namespaces", ns, "virtualmachineinstances", name, verb @ ("pause" | "unpause" | "softreboot" | "reset")],
        ) => {
            let Some(command) = crate::vmi_relay::Command::parse(verb) else {
                return not_found(&path);
            };
            let (ns, name) = (ns.to_string(), name.to_string());
            let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let dry_run = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|o| o.get("dryRun").and_then(Value::as_array).cloned())
                .is_some_and(|d| d.iter().any(|v| v == "All"));
            match crate::vmi_relay::command(&api, &ns, &name, command, dry_run).await {
                Ok(()) => (StatusCode::OK, "").into_response(),
                Err(e) => e.into_response(),
            }
        }
        (
            &Method::GET,
            [_, "namespaces", ns, "virtualmachineinstances", name, which @ ("userlist" | "filesystemlist")],
        ) => crate::vmi_relay::guest_list(&api, ns, name, which)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        (
            &Method::PUT,
            [_, "namespaces", ns, "virtualmachineinstances", name, verb @ ("freeze" | "unfreeze")],
        ) => {
            let (ns, name, freeze) = (ns.to_string(), name.to_string(), *verb == "freeze");
            let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let unfreeze_after = if freeze {
                match crate::vmi_relay::unfreeze_timeout(&body) {
                    Ok(after) => Some(after),
                    Err(e) => return e.into_response(),
                }
            } else {
                None
            };
            match crate::vmi_relay::freeze(&api, &ns, &name, unfreeze_after).await {
                Ok(()) => (StatusCode::OK, "").into_response(),
                Err(e) => e.into_response(),
            }
        }
        (
            &Method::GET,
            [_, "namespaces", ns, "virtualmachineinstances", name, "vnc", "screenshot"],
        ) => {
            let move_cursor = req.uri().query().is_some_and(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .any(|(k, v)| k == "moveCursor" && v == "true")
            });
            crate::vmi_relay::screenshot(&api, ns, name, move_cursor)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        (&Method::GET, [_, "namespaces", ns, "virtualmachineinstances", name, "guestosinfo"]) => {
            crate::vmi_relay::guest_os_info(&api, ns, name)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        (
            &Method::GET,
            [_, "namespaces", ns, kind @ ("virtualmachineinstances" | "virtualmachines"), name, rest @ ..],
        ) if stream_of(kind, rest).is_some() => {
            let Some(stream) = stream_of(kind, rest) else {
                return not_found(&path);
            };
            let (ns, name) = (ns.to_string(), name.to_string());
            crate::vmi_relay::open(api.clone(), req, &ns, &name, stream)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        (&Method::GET, [_, "namespaces", ns, "virtualmachines", name, "expand-spec"]) => {
            let vm = match api
                .registry
                .by_group_resource("kubevirt.io", "virtualmachines")
            {
                Some(info) => api.get(&info, ns, name, "v1").await,
                None => Err(ApiError::not_found("kubevirt.io", "virtualmachines", name)),
            };
            respond(match vm {
                Ok(vm) => expand(&api, ns, &vm).await,
                Err(e) => Err(e),
            })
        }
        (&Method::PUT, [_, "namespaces", ns, "expand-vm-spec"]) => {
            let ns = ns.to_string();
            let body =
                match axum::body::to_bytes(req.into_body(), crate::handlers::request::MAX_BODY)
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        return ApiError::BadRequest(format!("reading the request body: {e}"))
                            .into_response()
                    }
                };
            let vm = crate::handlers::request::decode_body(&body, "application/yaml");
            respond(match vm {
                Ok(vm) => check_namespace(&vm, &ns).and(expand(&api, &ns, &vm).await),
                Err(e) => Err(e),
            })
        }
        (&Method::GET, [_, "healthz"]) => json_response(
            StatusCode::OK,
            &json!({"apiserver": "ok", "restful": "ok"}),
            vec![],
        ),
        _ => not_found(&path),
    }
}

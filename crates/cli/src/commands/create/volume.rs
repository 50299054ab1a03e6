//! Volume flags of `create vm`: `--volume-containerdisk`, `--volume-pvc`, `--volume-import`
//! (and its deprecated aliases `--volume-datasource`, `--volume-clone-pvc`, `--volume-blank`)
//! and `--volume-sysprep`.

use serde_json::{json, Map, Value};

use super::builder::{DataVolumeTemplate, VmBuilder, VolumeKind};
use super::params::{random_suffix, split_prefixed_name, Params};
use crate::error::{Error, Result};

const CONTAINERDISK: &str = "volume-containerdisk";
const PVC: &str = "volume-pvc";
pub(crate) const IMPORT: &str = "volume-import";
const SYSPREP: &str = "volume-sysprep";

/// `--volume-containerdisk src:IMAGE[,name:NAME][,bootorder:N]`, repeatable.
pub(crate) fn add_containerdisks(vm: &mut VmBuilder, values: &[String]) -> Result<()> {
    for (index, value) in values.iter().enumerate() {
        let mut params = Params::parse(CONTAINERDISK, value)?;
        let name = params.take_nonempty("name");
        let source = params.take_nonempty("src");
        let boot_order = params.take_uint("bootorder")?;
        params.finish()?;
        let source = source.ok_or_else(|| Error::flag(CONTAINERDISK, "src must be specified"))?;
        let name = name.unwrap_or_else(|| format!("{}-containerdisk-{index}", vm.name));
        vm.ensure_volume_free(CONTAINERDISK, &name)?;
        vm.push_volume(
            &name,
            "containerDisk",
            json!({ "image": source }),
            VolumeKind::ContainerDisk,
        );
        vm.add_boot_order(CONTAINERDISK, &name, boot_order)?;
    }
    Ok(())
}

/// `--volume-pvc src:CLAIM[,name:NAME][,bootorder:N]`, repeatable; the claim must be in the
/// VM's namespace.
pub(crate) fn add_pvcs(vm: &mut VmBuilder, values: &[String]) -> Result<()> {
    for value in values {
        let mut params = Params::parse(PVC, value)?;
        let name = params.take_nonempty("name");
        let source = params.take_nonempty("src");
        let boot_order = params.take_uint("bootorder")?;
        params.finish()?;
        let source = source.ok_or_else(|| Error::flag(PVC, "src must be specified"))?;
        let (namespace, claim) = split_prefixed_name(&source)
            .map_err(|e| Error::flag(PVC, format!("src invalid: {e}")))?;
        if namespace.is_some() {
            return Err(Error::flag(
                PVC,
                format!("not allowed to specify namespace of pvc '{claim}'"),
            ));
        }
        let name = name.unwrap_or_else(|| claim.to_owned());
        vm.ensure_volume_free(PVC, &name)?;
        vm.push_volume(
            &name,
            "persistentVolumeClaim",
            json!({ "claimName": claim }),
            VolumeKind::Pvc,
        );
        vm.add_boot_order(PVC, &name, boot_order)?;
    }
    Ok(())
}

/// `--volume-sysprep src:NAME[,type:configMap|secret]`.
pub(crate) fn add_sysprep(vm: &mut VmBuilder, value: &str) -> Result<()> {
    let mut params = Params::parse(SYSPREP, value)?;
    let source = params.take_nonempty("src");
    let kind = params.take_nonempty("type");
    params.finish()?;
    let source = source.ok_or_else(|| Error::flag(SYSPREP, "src must be specified"))?;
    let (namespace, name) = split_prefixed_name(&source)
        .map_err(|e| Error::flag(SYSPREP, format!("src invalid: {e}")))?;
    if namespace.is_some() {
        return Err(Error::flag(
            SYSPREP,
            format!("not allowed to specify namespace of ConfigMap or Secret '{name}'"),
        ));
    }
    let kind = kind.unwrap_or_else(|| "configMap".to_owned());
    if kind != "configMap" && kind != "secret" {
        return Err(Error::flag(
            SYSPREP,
            format!("invalid source type \"{kind}\", supported values are: configMap, secret"),
        ));
    }
    vm.ensure_volume_free(SYSPREP, "sysprepdisk")?;
    vm.push_volume(
        "sysprepdisk",
        "sysprep",
        json!({ kind: { "name": name } }),
        VolumeKind::Sysprep,
    );
    Ok(())
}

/// `--volume-import type:TYPE,...`, repeatable: one data volume template plus a `dataVolume`
/// volume per value. Size is required except for the clone types (`pvc`, `snapshot`, `ds`).
pub(crate) fn add_imports(
    vm: &mut VmBuilder,
    values: &[String],
    rng: &mut dyn rand::RngCore,
) -> Result<()> {
    for value in values {
        let mut params = Params::parse(IMPORT, value)?;
        let kind = params
            .take("type")
            .ok_or_else(|| Error::flag(IMPORT, "type must be specified"))?;
        let name = params.take_nonempty("name");
        let size = params.take_quantity("size")?;
        let boot_order = params.take_uint("bootorder")?;
        let source = import_source(&kind, &mut params)?;
        params.finish()?;
        let size_optional = matches!(kind.as_str(), "pvc" | "snapshot" | "ds");
        if size.is_none() && !size_optional {
            return Err(Error::flag(IMPORT, "size must be specified"));
        }
        let name = name.unwrap_or_else(|| format!("imported-volume-{}", random_suffix(rng)));
        vm.ensure_volume_free(IMPORT, &name)?;
        let mut spec = source;
        spec["storage"] = match size {
            Some(size) => json!({ "resources": { "requests": { "storage": size } } }),
            None => json!({ "resources": {} }),
        };
        vm.data_volume_templates.push(DataVolumeTemplate {
            name: name.clone(),
            spec,
        });
        vm.push_volume(
            &name,
            "dataVolume",
            json!({ "name": name }),
            VolumeKind::DataVolume,
        );
        vm.add_boot_order(IMPORT, &name, boot_order)?;
    }
    Ok(())
}

/// Builds the data volume spec (without `storage`) for one import type, taking its params.
fn import_source(kind: &str, params: &mut Params) -> Result<Value> {
    let flag = params.flag();
    let source = match kind {
        "blank" => json!({ "blank": {} }),
        "gcs" => {
            let mut gcs = url_source(params, "URL is required with GCS volume source")?;
            insert_opt(&mut gcs, "secretRef", params.take_nonempty("secretref"));
            json!({ "gcs": gcs })
        }
        "http" => {
            let mut http = url_source(params, "URL is required with http volume source")?;
            insert_opt(&mut http, "secretRef", params.take_nonempty("secretref"));
            insert_opt(
                &mut http,
                "certConfigMap",
                params.take_nonempty("certconfigmap"),
            );
            if let Some(headers) = params.take_list("extraheaders") {
                http.insert("extraHeaders".into(), headers.into());
            }
            if let Some(headers) = params.take_list("secretextraheaders") {
                http.insert("secretExtraHeaders".into(), headers.into());
            }
            json!({ "http": http })
        }
        "imageio" => {
            let url = params.take_nonempty("url");
            let disk = params.take_nonempty("diskid");
            let (Some(url), Some(disk)) = (url, disk) else {
                return Err(Error::flag(
                    flag,
                    "URL and diskid are both required with imageIO volume source",
                ));
            };
            let mut imageio = Map::new();
            imageio.insert("url".into(), url.into());
            imageio.insert("diskId".into(), disk.into());
            insert_opt(&mut imageio, "secretRef", params.take_nonempty("secretref"));
            insert_opt(
                &mut imageio,
                "certConfigMap",
                params.take_nonempty("certconfigmap"),
            );
            json!({ "imageio": imageio })
        }
        "pvc" | "snapshot" => {
            let (namespace, name) = namespaced_source(params)?;
            let namespace = namespace.ok_or_else(|| {
                Error::flag(
                    flag,
                    format!("namespace of {kind} '{name}' must be specified"),
                )
            })?;
            json!({ kind: { "name": name, "namespace": namespace } })
        }
        "registry" => return registry_source(params),
        "s3" => {
            let mut s3 = url_source(params, "URL is required with S3 volume source")?;
            insert_opt(&mut s3, "secretRef", params.take_nonempty("secretref"));
            insert_opt(
                &mut s3,
                "certConfigMap",
                params.take_nonempty("certconfigmap"),
            );
            json!({ "s3": s3 })
        }
        "vddk" => return vddk_source(params),
        "ds" => {
            let (namespace, name) = namespaced_source(params)?;
            let mut source_ref = json!({ "kind": "DataSource", "name": name });
            if let Some(namespace) = namespace {
                source_ref["namespace"] = namespace.into();
            }
            return Ok(json!({ "sourceRef": source_ref }));
        }
        other => {
            return Err(Error::flag(
                flag,
                format!("unknown source type used - {other}"),
            ))
        }
    };
    Ok(json!({ "source": source }))
}

fn registry_source(params: &mut Params) -> Result<Value> {
    let flag = params.flag();
    let url = params.take_nonempty("url");
    let image_stream = params.take_nonempty("imagestream");
    let pull_method = params.take_nonempty("pullmethod");
    if let Some(method) = &pull_method {
        if method != "pod" && method != "node" {
            return Err(Error::flag(flag, "pullmethod must be set to pod or node"));
        }
    }
    if url.is_some() == image_stream.is_some() {
        return Err(Error::flag(
            flag,
            "exactly one of url or imagestream must be defined",
        ));
    }
    let mut registry = Map::new();
    insert_opt(&mut registry, "url", url);
    insert_opt(&mut registry, "imageStream", image_stream);
    insert_opt(&mut registry, "pullMethod", pull_method);
    insert_opt(
        &mut registry,
        "secretRef",
        params.take_nonempty("secretref"),
    );
    insert_opt(
        &mut registry,
        "certConfigMap",
        params.take_nonempty("certconfigmap"),
    );
    Ok(json!({ "source": { "registry": registry } }))
}

fn vddk_source(params: &mut Params) -> Result<Value> {
    let flag = params.flag();
    let mut vddk = Map::new();
    for (param, field, label) in [
        ("url", "url", "URL"),
        ("uuid", "uuid", "UUID"),
        ("thumbprint", "thumbprint", "ThumbPrint"),
        ("secretref", "secretRef", "SecretRef"),
        ("backingfile", "backingFile", "BackingFile"),
    ] {
        let value = params.take_nonempty(param).ok_or_else(|| {
            Error::flag(flag, format!("{label} is required with VDDK volume source"))
        })?;
        vddk.insert(field.into(), value.into());
    }
    insert_opt(
        &mut vddk,
        "initImageURL",
        params.take_nonempty("initimageurl"),
    );
    Ok(json!({ "source": { "vddk": vddk } }))
}

/// Takes a required `url` param into a new source map.
fn url_source(params: &mut Params, missing: &str) -> Result<Map<String, Value>> {
    let url = params
        .take_nonempty("url")
        .ok_or_else(|| Error::flag(params.flag(), missing))?;
    let mut source = Map::new();
    source.insert("url".into(), url.into());
    Ok(source)
}

/// Takes a required `src` param of the form `[namespace/]name`.
fn namespaced_source(params: &mut Params) -> Result<(Option<String>, String)> {
    let flag = params.flag();
    let source = params
        .take_nonempty("src")
        .ok_or_else(|| Error::flag(flag, "src must be specified"))?;
    let (namespace, name) =
        split_prefixed_name(&source).map_err(|e| Error::flag(flag, format!("src invalid: {e}")))?;
    Ok((namespace.map(str::to_owned), name.to_owned()))
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        map.insert(key.into(), value.into());
    }
}

/// Rewrites the deprecated volume flags as `--volume-import` values (`type:ds`, `type:pvc`,
/// `type:blank` plus the same params), placed before the explicit imports so the documented
/// boot order (DataSource > Clone PVC > Blank > imported volumes) holds.
///
/// Returns the combined import list and one deprecation warning per deprecated flag used.
pub(crate) fn alias_deprecated(
    datasource: &[String],
    clone_pvc: &[String],
    blank: &[String],
    imports: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let mut combined = Vec::new();
    let mut warnings = Vec::new();
    for (flag, kind, values) in [
        ("volume-datasource", "ds", datasource),
        ("volume-clone-pvc", "pvc", clone_pvc),
        ("volume-blank", "blank", blank),
    ] {
        if values.is_empty() {
            continue;
        }
        warnings.push(format!(
            "Flag --{flag} has been deprecated, use flag --{IMPORT} instead"
        ));
        for value in values {
            if value.is_empty() {
                return Err(Error::flag(IMPORT, "params may not be empty"));
            }
            combined.push(format!("type:{kind},{value}"));
        }
    }
    combined.extend(imports.iter().cloned());
    Ok((combined, warnings))
}

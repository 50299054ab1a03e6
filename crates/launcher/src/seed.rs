//! cloud-init seeds: the files of a NoCloud (`cidata`) or ConfigDrive (`config-2`) volume,
//! built from the VMI as data. [`crate::iso9660`] turns them into an image.

use base64::Engine;
use serde_json::json;

use crate::error::{Error, Result};
use crate::vmi::{CloudInit, VirtualMachineInstance};

/// A seed volume: its filesystem label and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedImage {
    /// The volume label cloud-init looks for.
    pub label: String,
    /// The files, with `/`-separated relative paths.
    pub files: Vec<SeedFile>,
}

/// One file of a [`SeedImage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    /// Relative path, e.g. `openstack/latest/user_data`.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

impl SeedFile {
    fn new(path: &str, data: impl Into<Vec<u8>>) -> Self {
        SeedFile {
            path: path.to_owned(),
            data: data.into(),
        }
    }
}

/// The NoCloud seed: `meta-data` (instance id `<name>.<namespace>`, hostname), `user-data`
/// and, when given, `network-config`.
///
/// # Errors
/// [`Error::Config`] for bad base64, or a Secret reference the node agent did not resolve.
pub fn no_cloud(
    vmi: &VirtualMachineInstance,
    field: &str,
    source: &CloudInit,
) -> Result<SeedImage> {
    let field = format!("{field}.cloudInitNoCloud");
    let mut meta = format!(
        "instance-id: {}.{}\nlocal-hostname: {}\n",
        vmi.metadata.name,
        vmi.namespace(),
        hostname(vmi)
    );
    // Access-credential keys go to the metadata, as upstream, so user data stays the
    // user's: cloud-init gives `public-keys` to the default user. JSON strings are valid
    // YAML double-quoted scalars, so any key text is safe.
    if !source.public_ssh_keys.is_empty() {
        meta.push_str("public-keys:\n");
        for (index, key) in source.public_ssh_keys.iter().enumerate() {
            meta.push_str(&format!("  \"{index}\": {}\n", json!(key)));
        }
    }
    let mut files = vec![SeedFile::new("meta-data", meta)];
    files.push(SeedFile::new(
        "user-data",
        user_data(&field, source)?.unwrap_or_default(),
    ));
    if let Some(network) = network_data(&field, source)? {
        files.push(SeedFile::new("network-config", network));
    }
    Ok(SeedImage {
        label: "cidata".to_owned(),
        files,
    })
}

/// The ConfigDrive seed: `openstack/latest/meta_data.json` (uuid, hostname, name),
/// `user_data` and `network_data.json` when given.
///
/// # Errors
/// As for [`no_cloud`].
pub fn config_drive(
    vmi: &VirtualMachineInstance,
    field: &str,
    source: &CloudInit,
) -> Result<SeedImage> {
    let field = format!("{field}.cloudInitConfigDrive");
    let uuid = vmi
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}.{}", vmi.metadata.name, vmi.namespace()));
    let mut meta = json!({
        "uuid": uuid,
        "hostname": hostname(vmi),
        "name": vmi.metadata.name,
    });
    // OpenStack's metadata names access-credential keys `public_keys`, by index.
    if !source.public_ssh_keys.is_empty() {
        let keys: serde_json::Map<String, serde_json::Value> = source
            .public_ssh_keys
            .iter()
            .enumerate()
            .map(|(index, key)| (index.to_string(), json!(key)))
            .collect();
        meta["public_keys"] = serde_json::Value::Object(keys);
    }
    let dir = "openstack/latest";
    let mut files = vec![SeedFile::new(
        &format!("{dir}/meta_data.json"),
        meta.to_string(),
    )];
    if let Some(user) = user_data(&field, source)? {
        files.push(SeedFile::new(&format!("{dir}/user_data"), user));
    }
    if let Some(network) = network_data(&field, source)? {
        files.push(SeedFile::new(&format!("{dir}/network_data.json"), network));
    }
    Ok(SeedImage {
        label: "config-2".to_owned(),
        files,
    })
}

fn hostname(vmi: &VirtualMachineInstance) -> &str {
    vmi.spec
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(&vmi.metadata.name)
}

fn user_data(field: &str, source: &CloudInit) -> Result<Option<Vec<u8>>> {
    let text = decode(
        &format!("{field}.userData"),
        source.user_data.as_deref(),
        source.user_data_base64.as_deref(),
    )?;
    if text.is_none() && source.secret_ref.is_some() {
        return Err(Error::config(
            format!("{field}.secretRef"),
            "the node agent must resolve the Secret into userData",
        ));
    }
    Ok(text)
}

fn network_data(field: &str, source: &CloudInit) -> Result<Option<Vec<u8>>> {
    let text = decode(
        &format!("{field}.networkData"),
        source.network_data.as_deref(),
        source.network_data_base64.as_deref(),
    )?;
    if text.is_none() && source.network_data_secret_ref.is_some() {
        return Err(Error::config(
            format!("{field}.networkDataSecretRef"),
            "the node agent must resolve the Secret into networkData",
        ));
    }
    Ok(text)
}

fn decode(field: &str, plain: Option<&str>, base64: Option<&str>) -> Result<Option<Vec<u8>>> {
    if let Some(text) = plain {
        return Ok(Some(text.as_bytes().to_vec()));
    }
    let Some(encoded) = base64 else {
        return Ok(None);
    };
    let compact: String = encoded.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map(Some)
        .map_err(|error| Error::config(format!("{field}Base64"), format!("bad base64: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmi() -> VirtualMachineInstance {
        serde_json::from_value(json!({
            "metadata": {"name": "vm1", "namespace": "ns", "uid": "u-1"},
            "spec": {"hostname": "box"}
        }))
        .expect("vmi")
    }

    #[test]
    fn no_cloud_seed_has_metadata_userdata_and_network_config() {
        let source = CloudInit {
            user_data_base64: Some("I2Nsb3VkLWNvbmZpZwo=".to_owned()),
            network_data: Some("version: 2\n".to_owned()),
            ..CloudInit::default()
        };
        let seed = no_cloud(&vmi(), "spec.volumes[ci]", &source).expect("seed");
        assert_eq!(seed.label, "cidata");
        let names: Vec<&str> = seed.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["meta-data", "user-data", "network-config"]);
        assert_eq!(
            seed.files[0].data,
            b"instance-id: vm1.ns\nlocal-hostname: box\n"
        );
        assert_eq!(seed.files[1].data, b"#cloud-config\n");
    }

    #[test]
    fn config_drive_seed_uses_openstack_layout() {
        let source = CloudInit {
            user_data: Some("#!/bin/sh\n".to_owned()),
            ..CloudInit::default()
        };
        let seed = config_drive(&vmi(), "spec.volumes[ci]", &source).expect("seed");
        assert_eq!(seed.label, "config-2");
        assert_eq!(seed.files[0].path, "openstack/latest/meta_data.json");
        let meta: serde_json::Value = serde_json::from_slice(&seed.files[0].data).expect("json");
        assert_eq!(meta["uuid"], "u-1");
        assert_eq!(meta["hostname"], "box");
        assert_eq!(seed.files[1].path, "openstack/latest/user_data");
    }

    #[test]
    fn access_credential_keys_go_to_the_metadata_and_leave_user_data_alone() {
        let source = CloudInit {
            user_data: Some("#cloud-config\nuser: cloud-user\n".to_owned()),
            public_ssh_keys: vec!["ssh-ed25519 AAAA a@b".into(), "ssh-rsa BBBB # x: y".into()],
            ..CloudInit::default()
        };
        let seed = no_cloud(&vmi(), "v", &source).expect("seed");
        assert_eq!(
            String::from_utf8_lossy(&seed.files[0].data),
            "instance-id: vm1.ns\nlocal-hostname: box\npublic-keys:\n  \"0\": \"ssh-ed25519 AAAA a@b\"\n  \"1\": \"ssh-rsa BBBB # x: y\"\n"
        );
        assert_eq!(seed.files[1].data, b"#cloud-config\nuser: cloud-user\n");
        let seed = config_drive(&vmi(), "v", &source).expect("seed");
        let meta: serde_json::Value = serde_json::from_slice(&seed.files[0].data).expect("json");
        assert_eq!(
            meta["public_keys"],
            json!({"0": "ssh-ed25519 AAAA a@b", "1": "ssh-rsa BBBB # x: y"})
        );
        assert_eq!(seed.files[1].data, b"#cloud-config\nuser: cloud-user\n");
    }

    #[test]
    fn unresolved_secret_and_bad_base64_are_errors() {
        let secret = CloudInit {
            secret_ref: Some(json!({"name": "s"})),
            ..CloudInit::default()
        };
        let error = no_cloud(&vmi(), "v", &secret).expect_err("secret");
        assert!(error.to_string().contains("secretRef"));
        let bad = CloudInit {
            user_data_base64: Some("!!!".to_owned()),
            ..CloudInit::default()
        };
        assert!(no_cloud(&vmi(), "v", &bad).is_err());
    }
}

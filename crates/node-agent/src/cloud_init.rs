//! What a cloud-init data source needs from Secrets, resolved into the node agent's copy of
//! the VMI before it goes to the launcher (upstream: virt-launcher reads the Secrets that
//! virt-controller mounted into its Pod):
//!
//! - `cloudInitNoCloud` / `cloudInitConfigDrive` `secretRef` → `userData` (Secret key
//!   `userdata` or `userData`), `networkDataSecretRef` → `networkData` (`networkdata` or
//!   `networkData`);
//! - `accessCredentials[].sshPublicKey` with `propagationMethod.noCloud` / `configDrive`:
//!   every key of the Secret goes to the matching data source's `publicSshKeys` (a field
//!   of `launch.json` only), which the launcher writes into the seed's metadata. User data
//!   is left as the user wrote it. This is first-boot propagation: the seed is built once
//!   per VMI, so a later change of the Secret reaches the guest on the next VMI, as
//!   upstream.
//!
//! Objects are read from the VMI's namespace only. A missing Secret is waited for briefly
//! (a VM and its Secret applied together arrive in either order), then fails the Pod.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::config_volumes::Error;

/// How long a missing Secret is waited for before the Pod fails.
const MISSING_WAIT: Duration = Duration::from_secs(10);
const MISSING_POLL: Duration = Duration::from_millis(500);

const SOURCES: [(&str, &str); 2] = [
    ("cloudInitNoCloud", "noCloud"),
    ("cloudInitConfigDrive", "configDrive"),
];

/// Resolves the Secrets the cloud-init volumes of `vmi` use, in place.
///
/// # Errors
/// [`Error::Missing`] for a Secret that does not appear, [`Error::Invalid`] for one without
/// the data the reference needs (both permanent), [`Error::Api`] for a failed read.
pub(crate) async fn resolve(client: &kube::Client, vmi: &mut Value) -> Result<(), Error> {
    let namespace = vmi["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &namespace);
    let keys = propagated_keys(&secrets, &vmi["spec"]["accessCredentials"]).await?;
    // Not `vmi["spec"]["volumes"]`: indexing a missing key would add `"volumes": null`.
    let Some(volumes) = vmi
        .pointer_mut("/spec/volumes")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for volume in volumes {
        let name = volume["name"].as_str().unwrap_or_default().to_string();
        for (field, method) in SOURCES {
            let Some(source) = volume.get_mut(field).filter(|s| s.is_object()) else {
                continue;
            };
            let refs = [
                ("secretRef", "userData", ["userdata", "userData"]),
                (
                    "networkDataSecretRef",
                    "networkData",
                    ["networkdata", "networkData"],
                ),
            ];
            for (reference, target, data_keys) in refs {
                let Some(secret) = source[reference]["name"].as_str().map(str::to_string) else {
                    continue;
                };
                let data = read(&secrets, &name, &secret).await?;
                let value =
                    data_keys
                        .iter()
                        .find_map(|k| data.get(*k))
                        .ok_or_else(|| Error::Invalid {
                            volume: name.clone(),
                            reason: format!(
                                "Secret \"{secret}\" has no {} key for {field}.{reference}",
                                data_keys.join(" or ")
                            ),
                        })?;
                source[target] = Value::String(value.clone());
                if let Some(map) = source.as_object_mut() {
                    map.remove(reference);
                    map.remove(&format!("{target}Base64"));
                }
            }
            if let Some(keys) = keys.get(method).filter(|k| !k.is_empty()) {
                source["publicSshKeys"] = keys.iter().cloned().map(Value::String).collect();
            }
        }
    }
    Ok(())
}

/// The keys of `accessCredentials` for each first-boot propagation method (`noCloud`,
/// `configDrive`), in the order the credentials and their Secrets' keys list them.
async fn propagated_keys(
    secrets: &kube::Api<Secret>,
    credentials: &Value,
) -> Result<BTreeMap<&'static str, Vec<String>>, Error> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (index, credential) in credentials.as_array().into_iter().flatten().enumerate() {
        let ssh = &credential["sshPublicKey"];
        for (_, method) in SOURCES {
            if !ssh["propagationMethod"][method].is_object() {
                continue;
            }
            let secret = ssh["source"]["secret"]["secretName"]
                .as_str()
                .unwrap_or_default();
            let volume = format!("accessCredentials[{index}]");
            let data = read(secrets, &volume, secret).await?;
            let keys = out.entry(method).or_default();
            for key in data.values().flat_map(|v| keys_of(v)) {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(out)
}

/// Public keys in a Secret value: one per line, blank lines and `#` comments skipped.
fn keys_of(value: &str) -> Vec<String> {
    value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The data of Secret `name` as text, waiting up to [`MISSING_WAIT`] for it to appear.
async fn read(
    secrets: &kube::Api<Secret>,
    volume: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let deadline = tokio::time::Instant::now() + MISSING_WAIT;
    loop {
        match secrets.get_opt(name).await {
            Ok(Some(secret)) => {
                let mut out: BTreeMap<String, String> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                out.extend(secret.string_data.unwrap_or_default());
                return Ok(out);
            }
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(MISSING_POLL).await;
            }
            Ok(None) => {
                return Err(Error::Missing {
                    volume: volume.to_string(),
                    kind: "secret",
                    name: name.to_string(),
                })
            }
            Err(source) => {
                return Err(Error::Api {
                    volume: volume.to_string(),
                    action: format!("reading Secret {name}"),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_give_one_key_per_line() {
        assert_eq!(
            keys_of("ssh-ed25519 AAAA a\n\n# old\n  ssh-rsa BBBB b  \n"),
            ["ssh-ed25519 AAAA a", "ssh-rsa BBBB b"]
        );
    }
}

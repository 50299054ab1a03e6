//! Guest access flags of `create vm`: the generated cloud-init data (`--user`,
//! `--password-file`, `--ssh-key`, `--ga-manage-ssh`, `--cloud-init`,
//! `--cloud-init-user-data`, `--cloud-init-network-data`) and `--access-cred`.

use std::path::PathBuf;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::builder::{VmBuilder, VolumeKind};
use super::params::{split_prefixed_name, Params};
use crate::error::{Error, Result};

const ACCESS_CRED: &str = "access-cred";
const CLOUD_INIT: &str = "cloud-init";
const PASSWORD_FILE: &str = "password-file";
const CLOUD_INIT_DISK: &str = "cloudinitdisk";
const CONFIG_HEADER: &str = "#cloud-config";
const NO_CLOUD: &str = "nocloud";
const CONFIG_DRIVE: &str = "configdrive";
const USER_NOT_ALLOWED: &str =
    "user cannot be specified with selected access credential type and method";

/// The cloud-init related flags. A field is `Some` (or non-empty) exactly when the flag was
/// given, or when `--access-cred` implied it.
#[derive(Debug, Default, Clone)]
pub(crate) struct CloudInitOptions {
    pub(crate) user: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) ssh_keys: Vec<String>,
    pub(crate) ga_manage_ssh: Option<bool>,
    /// `--cloud-init`: `nocloud` (the default), `configdrive` or `none`.
    pub(crate) data_source: Option<String>,
    pub(crate) user_data_base64: Option<String>,
    pub(crate) network_data_base64: Option<String>,
}

impl CloudInitOptions {
    fn any_given(&self) -> bool {
        self.user.is_some()
            || self.password_file.is_some()
            || !self.ssh_keys.is_empty()
            || self.ga_manage_ssh.is_some()
            || self.data_source.is_some()
            || self.user_data_base64.is_some()
            || self.network_data_base64.is_some()
    }

    /// Options that are pointless when `--cloud-init none` is given.
    fn content_given(&self) -> bool {
        self.password_file.is_some()
            || !self.ssh_keys.is_empty()
            || self.ga_manage_ssh.is_some()
            || self.user_data_base64.is_some()
            || self.network_data_base64.is_some()
    }
}

/// `--access-cred type:ssh|password,src:SECRET[,method:ga|nocloud|configdrive][,user:USER]`,
/// repeatable. May imply `--ga-manage-ssh` or `--cloud-init`, as upstream does.
pub(crate) fn add_access_credentials(
    vm: &mut VmBuilder,
    values: &[String],
    opts: &mut CloudInitOptions,
) -> Result<()> {
    for value in values {
        let mut params = Params::parse(ACCESS_CRED, value)?;
        let kind = params.take("type").unwrap_or_default();
        let source = params.take_nonempty("src");
        let method = params.take("method").unwrap_or_default();
        let user = params.take_nonempty("user");
        params.finish()?;
        let source = source.ok_or_else(|| Error::flag(ACCESS_CRED, "src must be specified"))?;
        let (namespace, secret) = split_prefixed_name(&source)
            .map_err(|e| Error::flag(ACCESS_CRED, format!("src invalid: {e}")))?;
        if namespace.is_some() {
            return Err(Error::flag(
                ACCESS_CRED,
                format!("not allowed to specify namespace of secret \"{secret}\""),
            ));
        }
        let credential = match kind.to_lowercase().as_str() {
            "ssh" | "" => ssh_credential(secret, &method, user, opts)?,
            "password" => password_credential(secret, &method, user)?,
            _ => {
                return Err(Error::flag(
                    ACCESS_CRED,
                    format!("invalid access credential type \"{kind}\", supported values are: ssh, password"),
                ))
            }
        };
        vm.access_credentials.push(credential);
    }
    Ok(())
}

fn ssh_credential(
    secret: &str,
    method: &str,
    user: Option<String>,
    opts: &mut CloudInitOptions,
) -> Result<Value> {
    let propagation = match method.to_lowercase().as_str() {
        "ga" | "" => {
            let Some(user) = user.or_else(|| opts.user.clone()) else {
                return Err(Error::flag(
                    ACCESS_CRED,
                    "user must be specified with access credential ssh method ga (\"--user\" flag or param \"user\")",
                ));
            };
            // The guest agent may only write authorized keys when SELinux allows it.
            opts.ga_manage_ssh.get_or_insert(true);
            json!({ "qemuGuestAgent": { "users": [user] } })
        }
        expected @ (NO_CLOUD | CONFIG_DRIVE) => {
            if user.is_some() {
                return Err(Error::flag(ACCESS_CRED, USER_NOT_ALLOWED));
            }
            let data_source = opts.data_source.get_or_insert_with(|| expected.to_owned());
            if !data_source.eq_ignore_ascii_case(expected) {
                return Err(Error::flag(
                    ACCESS_CRED,
                    format!("method param and value passed to --{CLOUD_INIT} have to match: {expected} vs {data_source}"),
                ));
            }
            let key = if expected == NO_CLOUD { "noCloud" } else { "configDrive" };
            json!({ key: {} })
        }
        _ => {
            return Err(Error::flag(
                ACCESS_CRED,
                format!("invalid access credentials ssh method \"{method}\", supported values are: ga, nocloud, configdrive"),
            ))
        }
    };
    Ok(json!({
        "sshPublicKey": {
            "propagationMethod": propagation,
            "source": { "secret": { "secretName": secret } },
        }
    }))
}

fn password_credential(secret: &str, method: &str, user: Option<String>) -> Result<Value> {
    if !method.is_empty() && !method.eq_ignore_ascii_case("ga") {
        return Err(Error::flag(
            ACCESS_CRED,
            format!(
                "invalid access credentials password method \"{method}\", supported values are: ga"
            ),
        ));
    }
    if user.is_some() {
        return Err(Error::flag(ACCESS_CRED, USER_NOT_ALLOWED));
    }
    Ok(json!({
        "userPassword": {
            "propagationMethod": { "qemuGuestAgent": {} },
            "source": { "secret": { "secretName": secret } },
        }
    }))
}

/// Adds the `cloudinitdisk` volume when any cloud-init flag was given. Warnings for the
/// user (cleartext password, `--cloud-init none` ignoring options) go to `warnings`.
pub(crate) fn add_cloud_init(
    vm: &mut VmBuilder,
    opts: &CloudInitOptions,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if !opts.any_given() {
        return Ok(());
    }
    if opts.password_file.is_some() {
        warnings.push(format!(
            "WARNING: --{PASSWORD_FILE}: The password is stored in cleartext in the VM definition!"
        ));
    }
    if vm.volume(CLOUD_INIT_DISK).is_some() {
        return Err(Error::Invalid(format!(
            "there is already a volume with name '{CLOUD_INIT_DISK}'"
        )));
    }
    let data_source = opts.data_source.as_deref().unwrap_or(NO_CLOUD);
    let key = match data_source.to_lowercase().as_str() {
        NO_CLOUD => "cloudInitNoCloud",
        CONFIG_DRIVE => "cloudInitConfigDrive",
        "none" => {
            if opts.content_given() {
                warnings.push(format!(
                    "WARNING: --{CLOUD_INIT}: was set to none, not creating a data source although other cloud-init options were set"
                ));
            }
            return Ok(());
        }
        _ => {
            return Err(Error::flag(
                CLOUD_INIT,
                format!("invalid cloud-init data source type \"{data_source}\", supported values are: nocloud, configdrive, none"),
            ))
        }
    };
    let mut source = Map::new();
    if let Some(network) = &opts.network_data_base64 {
        source.insert("networkDataBase64".into(), network.clone().into());
    }
    match &opts.user_data_base64 {
        Some(user_data) => {
            source.insert("userDataBase64".into(), user_data.clone().into());
        }
        None => {
            let config = user_data(opts)?;
            // Only the header and nothing else: skip the volume unless it was asked for.
            if config == CONFIG_HEADER
                && opts.network_data_base64.is_none()
                && opts.data_source.is_none()
            {
                return Ok(());
            }
            source.insert("userData".into(), config.into());
        }
    }
    vm.push_volume(
        CLOUD_INIT_DISK,
        key,
        Value::Object(source),
        VolumeKind::CloudInit,
    );
    Ok(())
}

/// The generated `#cloud-config` user data.
fn user_data(opts: &CloudInitOptions) -> Result<String> {
    let mut config = CONFIG_HEADER.to_owned();
    if let Some(user) = &opts.user {
        config.push_str(&format!("\nuser: {user}"));
    }
    if let Some(path) = &opts.password_file {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::flag(
                PASSWORD_FILE,
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        let password = text.trim();
        if !password.is_empty() {
            config.push_str(&format!(
                "\npassword: {password}\nchpasswd: {{ expire: False }}"
            ));
        }
    }
    if !opts.ssh_keys.is_empty() {
        config.push_str("\nssh_authorized_keys:");
        for key in &opts.ssh_keys {
            config.push_str(&format!("\n  - {key}"));
        }
    }
    if opts.ga_manage_ssh == Some(true) {
        config.push_str("\nruncmd:\n  - [ setsebool, -P, 'virt_qemu_ga_manage_ssh', 'on' ]");
    }
    Ok(config)
}

/// Checks that a `--cloud-init-*-data` value is standard base64, as the guest side decodes it.
pub(crate) fn check_base64(flag: &'static str, value: &str) -> Result<()> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map(|_| ())
        .map_err(|err| Error::flag(flag, format!("value is not valid base64: {err}")))
}

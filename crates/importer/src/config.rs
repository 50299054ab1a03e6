//! The importer's configuration, from the environment its worker Pod gives it (upstream's
//! `IMPORTER_*` variables plus oxivirt's paths; see `oxivirt_storage::well_known::env`).

use std::path::PathBuf;

use oxivirt_storage::well_known::env;

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An HTTP(S) URL.
    Http(String),
    /// A `docker://` image reference.
    Registry(String),
    /// No data: a blank disk.
    Blank,
    /// Another volume's directory (host-assisted clone): its `disk.img` in the format its
    /// `.disk-format` records (written by oxivirt's provisioner, so trusted).
    Pvc(PathBuf),
    /// The body of one request to the worker's upload server (CDI's `cdi-uploadserver`).
    Upload,
}

/// Basic-auth credentials (`secretRef` keys `accessKeyId` / `secretKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// One import.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    /// The target volume's directory (Filesystem mode: `disk.img` goes in it).
    pub data_dir: PathBuf,
    /// Where `progress`, `termination-log` and the scratch space go.
    pub status_dir: PathBuf,
    /// The volume's capacity in bytes.
    pub capacity: u64,
    /// Fraction of the capacity kept free for the filesystem (Filesystem volumes).
    pub fs_overhead: f64,
    pub preallocation: bool,
    /// The target is a Block volume: `data_dir` is its device, written in place.
    pub block: bool,
    pub credentials: Option<Credentials>,
    /// Directory of PEM CA certificates to trust (the `certConfigMap`).
    pub cert_dir: Option<PathBuf>,
    /// `Name: value` headers to send.
    pub extra_headers: Vec<String>,
    /// Plain HTTP to the registry.
    pub insecure_tls: bool,
}

/// A configuration the environment cannot express.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required variable is unset.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable holds something unusable.
    #[error("environment variable {name} has an invalid value {value:?}")]
    Invalid { name: &'static str, value: String },
}

impl Config {
    /// Reads the configuration through `get` (the process environment in production).
    ///
    /// # Errors
    /// [`Error`] naming the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(Error::Missing(name))
        };
        let source = match get(env::SOURCE).as_deref().unwrap_or("none") {
            "http" => Source::Http(required(env::ENDPOINT)?),
            "registry" => Source::Registry(required(env::ENDPOINT)?),
            "pvc" => Source::Pvc(PathBuf::from(required(env::ENDPOINT)?)),
            "upload" => Source::Upload,
            "none" | "blank" | "" => Source::Blank,
            other => {
                return Err(Error::Invalid {
                    name: env::SOURCE,
                    value: other.into(),
                })
            }
        };
        let size_text = required(env::IMAGE_SIZE)?;
        let capacity = oxivirt_storage::quantity::parse(&size_text).ok_or(Error::Invalid {
            name: env::IMAGE_SIZE,
            value: size_text.clone(),
        })?;
        let fs_overhead = match get(env::FS_OVERHEAD) {
            None => 0.0,
            Some(text) => {
                oxivirt_storage::classes::parse_overhead(&text).ok_or(Error::Invalid {
                    name: env::FS_OVERHEAD,
                    value: text,
                })?
            }
        };
        let filesystem = get(env::VOLUME_MODE).as_deref() != Some("Block");
        let credentials = match (get(env::ACCESS_KEY_ID), get(env::SECRET_KEY)) {
            (Some(user), Some(password)) if !user.is_empty() => {
                Some(Credentials { user, password })
            }
            _ => None,
        };
        let mut extra_headers = Vec::new();
        for i in 0.. {
            match get(&format!("{}{i}", env::EXTRA_HEADERS)) {
                Some(h) => extra_headers.push(h),
                None => break,
            }
        }
        Ok(Config {
            source,
            data_dir: PathBuf::from(required(env::DATA_DIR)?),
            status_dir: PathBuf::from(required(env::STATUS_DIR)?),
            capacity,
            fs_overhead: if filesystem { fs_overhead } else { 0.0 },
            preallocation: get(env::PREALLOCATION).as_deref() == Some("true"),
            block: !filesystem,
            credentials,
            cert_dir: get(env::CERT_DIR)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            extra_headers,
            insecure_tls: get(env::INSECURE_TLS).as_deref() == Some("true"),
        })
    }

    /// The bytes a disk image may use: the capacity less the filesystem overhead, in whole
    /// MiB (CDI's usable space).
    pub fn usable(&self) -> u64 {
        const MIB: u64 = 1 << 20;
        // Exact for real volume sizes (< 2^53 bytes).
        let usable = (self.capacity as f64 * (1.0 - self.fs_overhead)).floor() as u64;
        usable / MIB * MIB
    }

    /// The target disk image (a Block volume's device itself).
    pub fn disk_image(&self) -> PathBuf {
        if self.block {
            return self.data_dir.clone();
        }
        self.data_dir.join("disk.img")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn an_http_import_reads_upstreams_variables() {
        let config = Config::from_lookup(lookup(&[
            (env::SOURCE, "http"),
            (env::ENDPOINT, "http://h/x.qcow2"),
            (env::IMAGE_SIZE, "1Gi"),
            (env::FS_OVERHEAD, "0.055"),
            (env::DATA_DIR, "/d"),
            (env::STATUS_DIR, "/s"),
            (env::ACCESS_KEY_ID, "u"),
            (env::SECRET_KEY, "p"),
            ("IMPORTER_EXTRA_HEADER0", "X-A: 1"),
        ]))
        .unwrap();
        assert_eq!(config.source, Source::Http("http://h/x.qcow2".into()));
        assert_eq!(config.usable(), 967 << 20);
        assert_eq!(config.credentials.unwrap().user, "u");
        assert_eq!(config.extra_headers, vec!["X-A: 1"]);
    }

    #[test]
    fn missing_and_bad_values_name_the_variable() {
        let e = Config::from_lookup(lookup(&[(env::SOURCE, "http")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable IMPORTER_ENDPOINT is required"
        );
        let e = Config::from_lookup(lookup(&[(env::SOURCE, "ftp")])).unwrap_err();
        assert!(e.to_string().contains("IMPORTER_SOURCE"));
    }
}

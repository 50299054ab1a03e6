//! Image references, pull policies and pull-secret credentials.

use serde_json::Value;

use super::{Error, Result};

/// Kubernetes `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference at the registry on every pull (the cache still saves blobs).
    Always,
    /// Use the cached image for this reference when there is one.
    IfNotPresent,
    /// Never contact a registry.
    Never,
}

impl PullPolicy {
    /// The policy named `value`, else KubeVirt's default: `Always` for `:latest` or no tag,
    /// `IfNotPresent` otherwise.
    pub fn from_spec(value: Option<&str>, image: &str) -> Self {
        match value {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => match ImageReference::parse(image) {
                Ok(r) if r.digest.is_some() => PullPolicy::IfNotPresent,
                Ok(r) if r.tag.as_deref().is_some_and(|t| t != "latest") => {
                    PullPolicy::IfNotPresent
                }
                _ => PullPolicy::Always,
            },
        }
    }
}

/// Registry credentials (from a dockerconfigjson pull secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `host[:port]` as written (Docker Hub is `docker.io`).
    pub registry: String,
    /// Repository path (`library/` added for Docker Hub's single-name images).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// `sha256:<hex>` digest, if any.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `image` (a `docker://` prefix is accepted).
    ///
    /// # Errors
    /// [`Error::InvalidReference`] for an empty repository or a malformed digest.
    pub fn parse(image: &str) -> Result<Self> {
        let invalid = |message: &str| Error::InvalidReference {
            image: image.into(),
            message: message.into(),
        };
        let rest = image.strip_prefix("docker://").unwrap_or(image);
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) if d.starts_with("sha256:") && d.len() == 71 => (r, Some(d.to_string())),
            Some(_) => return Err(invalid("digest must be sha256:<64 hex digits>")),
            None => (rest, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path)
            }
            _ => ("docker.io".to_string(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        if repository.is_empty() || tag.as_deref() == Some("") {
            return Err(invalid("empty repository or tag"));
        }
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest to ask the registry for.
    pub(super) fn reference(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| "latest".into())
    }

    /// The registry host the API is served from.
    pub(super) fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// True for `localhost`, `127.0.0.0/8` and `[::1]` registries.
    pub(super) fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    self.registry.as_str()
                }
            });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Credentials for `registry` from a `.dockerconfigjson` (`{"auths": {...}}`) or legacy
/// `.dockercfg` document; keys may carry a scheme and path (`https://index.docker.io/v1/`).
pub fn credentials_from_docker_config(document: &[u8], registry: &str) -> Option<Credentials> {
    use base64::Engine;
    let value: Value = serde_json::from_slice(document).ok()?;
    let auths = value.get("auths").unwrap_or(&value).as_object()?;
    let wanted = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let (_, entry) = auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or(host);
        host == wanted || (wanted == "index.docker.io" && host == "docker.io")
    })?;
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Some(Credentials {
            username: u.into(),
            password: p.into(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let (u, p) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Credentials {
        username: u.into(),
        password: p.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker_does() {
        let r = ImageReference::parse("quay.io/containerdisks/fedora:41").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("quay.io", "containerdisks/fedora", Some("41"))
        );
        let r = ImageReference::parse("127.0.0.1:5000/oxivirt/test-guest").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", None)
        );
        assert!(r.is_loopback());
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageReference::parse(&format!("docker://localhost:5000/x@{digest}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert!(r.is_loopback());
        assert!(ImageReference::parse("x@sha256:short").is_err());
        assert!(!ImageReference::parse("registry.example:5000/a")
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn default_pull_policy_follows_kubevirt() {
        assert_eq!(
            PullPolicy::from_spec(None, "r.io/a:latest"),
            PullPolicy::Always
        );
        assert_eq!(PullPolicy::from_spec(None, "r.io/a"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_spec(None, "r.io/a:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_spec(Some("Never"), "r.io/a"),
            PullPolicy::Never
        );
    }

    #[test]
    fn docker_config_credentials_match_by_host() {
        let doc = br#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"},
                                 "reg.example:5000": {"username": "a", "password": "b"}}}"#;
        assert_eq!(
            credentials_from_docker_config(doc, "docker.io")
                .unwrap()
                .username,
            "u"
        );
        assert_eq!(
            credentials_from_docker_config(doc, "reg.example:5000")
                .unwrap()
                .password,
            "b"
        );
        assert_eq!(credentials_from_docker_config(doc, "other.example"), None);
    }
}

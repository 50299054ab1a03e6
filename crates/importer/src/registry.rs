//! The registry source: `docker://` images pulled with the node agent's OCI client (digest
//! verified, layers unpacked without leaving their directory, the disk under `/disk`),
//! into the worker's scratch space.

use std::path::PathBuf;

use oxivirt_node_agent::registry::{
    Credentials, ImageCache, ImageReference, PullPolicy, PullRequest,
};

use crate::config::Config;
use crate::Error;

/// Pulls `url` and returns the disk file and its qemu-img format.
///
/// # Errors
/// [`Error::Transfer`] naming the image when the pull fails or the image has no disk.
pub async fn pull(config: &Config, url: &str) -> Result<(PathBuf, String), Error> {
    let image = url.strip_prefix("docker://").unwrap_or(url).to_string();
    let registry = ImageReference::parse(&image)
        .map(|r| r.registry)
        .map_err(|e| Error::Transfer(format!("Failed to read registry image: {e}")))?;
    let cache = ImageCache::new(&config.status_dir.join("registry"));
    let request = PullRequest {
        image: image.clone(),
        policy: PullPolicy::Always,
        credentials: config.credentials.as_ref().map(|c| Credentials {
            username: c.user.clone(),
            password: c.password.clone(),
        }),
        insecure_registries: if config.insecure_tls {
            vec![registry]
        } else {
            Vec::new()
        },
    };
    let pulled = cache.pull(&request).await.map_err(|e| {
        Error::Transfer(format!(
            "Failed to read registry image: {}",
            crate::http::ErrorChain(&e)
        ))
    })?;
    Ok((pulled.path, pulled.format.as_str().to_string()))
}

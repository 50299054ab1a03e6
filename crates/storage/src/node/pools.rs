//! Storage pools: directories holding one sub-directory per volume. The default pool is
//! `<data-dir>/storage/local`; a HostPathProvisioner CR names more (`spec.storagePools[]`),
//! and a StorageClass picks one with `parameters.storagePool`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kinds::HOSTPATH_PROVISIONER;
use crate::well_known as wk;
use crate::world::World;

/// Where this node's pools are.
#[derive(Debug, Clone)]
pub struct Pools {
    root: PathBuf,
}

impl Pools {
    pub fn new(data_dir: &Path) -> Pools {
        Pools {
            root: data_dir.join("storage"),
        }
    }

    /// Creates the default pool's directory.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn prepare_default(&self) -> anyhow::Result<()> {
        let dir = self.default_pool();
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating the storage pool {}: {e}", dir.display()))
    }

    /// The default pool's directory.
    pub fn default_pool(&self) -> PathBuf {
        self.root.join(wk::DEFAULT_POOL)
    }

    /// Where worker Pods keep their status files.
    pub fn workers_dir(&self) -> PathBuf {
        self.root.join("workers")
    }

    /// The directory of pool `name` (the class parameter; `None` = the default pool), or
    /// `None` when no HostPathProvisioner defines it.
    pub fn resolve(&self, world: &World, name: Option<&str>) -> Option<PathBuf> {
        let name = name.filter(|n| !n.is_empty()).unwrap_or(wk::DEFAULT_POOL);
        let defined = world
            .list(HOSTPATH_PROVISIONER)
            .into_iter()
            .find_map(|hpp| {
                hpp["spec"]["storagePools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == name)
                    .and_then(|p| p["path"].as_str().map(PathBuf::from))
            });
        defined.or_else(|| (name == wk::DEFAULT_POOL).then(|| self.default_pool()))
    }

    /// Every pool directory known now (for checking that a path to delete is inside one).
    pub fn all(&self, world: &World) -> Vec<PathBuf> {
        let mut out = vec![self.default_pool()];
        out.extend(
            world
                .list(crate::kinds::STORAGE_CLASS)
                .iter()
                .filter_map(|c| crate::classes::shared_path(c).map(PathBuf::from)),
        );
        for hpp in world.list(HOSTPATH_PROVISIONER) {
            let pools = hpp["spec"]["storagePools"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            out.extend(
                pools
                    .iter()
                    .filter_map(|p: &Value| p["path"].as_str().map(PathBuf::from)),
            );
        }
        out
    }
}

//! Config volumes as disks: `configMap`, `secret`, `serviceAccount`, `downwardAPI` and
//! `sysprep`. The node agent writes each volume's files into a directory (as a kubelet
//! mounts them into upstream's virt-launcher Pod) and names it in `launch.json` `disks`; the
//! launcher turns the directory into an ISO 9660 image ([`crate::iso9660`], the writer the
//! cloud-init seeds use) that the guest finds by the disk's `serial`.
//!
//! Volume labels are upstream's: the volume's `volumeLabel` when given, else `cfgdata`
//! (upstream's ISO default, also what a service account disk gets), and `unattendCD` for
//! sysprep.

use std::path::Path;

use crate::error::{Error, Result};
use crate::seed::{SeedFile, SeedImage};
use crate::vmi::Volume;

/// Upstream's label for config volumes without a `volumeLabel`.
pub const DEFAULT_LABEL: &str = "cfgdata";
/// Upstream's label for sysprep volumes.
pub const SYSPREP_LABEL: &str = "unattendCD";

/// How deep a volume's directory tree may go (downwardAPI paths like `a/b/c`); deeper
/// trees are refused rather than followed.
const MAX_DEPTH: usize = 8;

/// The ISO label of `volume` if it is a config volume, `None` for every other kind.
pub fn label(volume: &Volume) -> Option<&str> {
    let given = if let Some(source) = &volume.config_map {
        source.volume_label.as_deref()
    } else if let Some(source) = &volume.secret {
        source.volume_label.as_deref()
    } else if let Some(source) = &volume.downward_api {
        source.volume_label.as_deref()
    } else if volume.service_account.is_some() {
        None
    } else if volume.sysprep.is_some() {
        return Some(SYSPREP_LABEL);
    } else {
        return None;
    };
    Some(
        given
            .filter(|label| !label.is_empty())
            .unwrap_or(DEFAULT_LABEL),
    )
}

/// Reads the files under `dir` (regular files, recursively; names sorted) into an image
/// description labelled `label`.
///
/// # Errors
/// [`Error::ConfigVolume`] naming the directory or file that cannot be read, or a tree
/// deeper than 8 levels; symbolic links are refused so a volume cannot pull in host files.
pub fn read_tree(label: &str, dir: &Path) -> Result<SeedImage> {
    let mut files = Vec::new();
    walk(dir, "", 0, &mut files)?;
    Ok(SeedImage {
        label: label.to_owned(),
        files,
    })
}

fn walk(dir: &Path, prefix: &str, depth: usize, files: &mut Vec<SeedFile>) -> Result<()> {
    let error = |path: &Path, reason: String| Error::ConfigVolume {
        path: path.to_owned(),
        reason,
    };
    if depth > MAX_DEPTH {
        return Err(error(dir, format!("deeper than {MAX_DEPTH} levels")));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    let mut entries: Vec<_> = entries
        .collect::<std::io::Result<_>>()
        .map_err(|e| error(dir, e.to_string()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| error(&path, "the name is not UTF-8".to_owned()))?;
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(|e| error(&path, e.to_string()))?;
        if kind.is_dir() {
            walk(&path, &relative, depth + 1, files)?;
        } else if kind.is_file() {
            let data = std::fs::read(&path).map_err(|e| error(&path, e.to_string()))?;
            files.push(SeedFile {
                path: relative,
                data,
            });
        } else {
            return Err(error(&path, "not a regular file or directory".to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volume(value: serde_json::Value) -> Volume {
        serde_json::from_value(value).expect("volume")
    }

    #[test]
    fn labels_are_upstreams() {
        let cases = [
            (
                json!({"name": "a", "configMap": {"name": "c"}}),
                Some("cfgdata"),
            ),
            (
                json!({"name": "a", "configMap": {"name": "c", "volumeLabel": "mine"}}),
                Some("mine"),
            ),
            (
                json!({"name": "a", "secret": {"secretName": "s"}}),
                Some("cfgdata"),
            ),
            (
                json!({"name": "a", "secret": {"secretName": "s", "volumeLabel": ""}}),
                Some("cfgdata"),
            ),
            (
                json!({"name": "a", "serviceAccount": {"serviceAccountName": "default"}}),
                Some("cfgdata"),
            ),
            (
                json!({"name": "a", "downwardAPI": {"fields": [], "volumeLabel": "dapi"}}),
                Some("dapi"),
            ),
            (
                json!({"name": "a", "sysprep": {"configMap": {"name": "x"}}}),
                Some("unattendCD"),
            ),
            (json!({"name": "a", "emptyDisk": {"capacity": "1Gi"}}), None),
        ];
        for (value, expected) in cases {
            assert_eq!(label(&volume(value.clone())), expected, "{value}");
        }
    }

    #[test]
    fn a_tree_is_read_sorted_with_nested_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b"), "2").expect("write");
        std::fs::write(dir.path().join("a"), "1").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/c"), "3").expect("write");
        let image = read_tree("cfgdata", dir.path()).expect("reads");
        let names: Vec<&str> = image.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["a", "b", "sub/c"]);
        assert_eq!(image.files[2].data, b"3");
        assert_eq!(image.label, "cfgdata");
    }

    #[test]
    fn links_and_missing_directories_are_refused_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("host")).expect("link");
        let error = read_tree("x", dir.path()).expect_err("link refused");
        assert!(error.to_string().contains("host"), "{error}");
        let missing = read_tree("x", &dir.path().join("nope")).expect_err("missing");
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}

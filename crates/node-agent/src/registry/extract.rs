//! Reading a containerDisk layer (tar, optionally gzip) for its `/disk/` file, and checking
//! the extracted disk with `qemu-img info` before it enters the cache.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use serde_json::Value;

use super::{DiskFormat, Error, Result};

/// Extracts every regular file under `disk/` of the layer `blob` to `dest` (a later one
/// overwrites an earlier one) and returns their names; `.wh.` whiteouts are skipped.
///
/// # Errors
/// [`Error::Io`] for unreadable or truncated archives; [`Error::NotAContainerDisk`] for
/// compressions other than gzip.
pub(super) fn disk_from_layer(blob: &Path, dest: &Path, image: &str) -> Result<Vec<String>> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut archive = open_layer(blob, image)?;
    let mut names = Vec::new();
    for entry in archive.entries().map_err(io_err(blob))? {
        let mut entry = entry.map_err(io_err(blob))?;
        let path = entry.path().map_err(io_err(blob))?.into_owned();
        let path = path.to_string_lossy();
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let Some(file_name) = path.strip_prefix("disk/") else {
            continue;
        };
        if file_name.is_empty() || file_name.contains('/') || file_name.starts_with(".wh.") {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut out = File::create(dest).map_err(io_err(dest))?;
        io::copy(&mut entry, &mut out).map_err(io_err(dest))?;
        out.sync_all().map_err(io_err(dest))?;
        names.push(file_name.to_string());
    }
    Ok(names)
}

/// A layer blob as a tar archive (gzip detected by its magic; zstd refused).
fn open_layer(blob: &Path, image: &str) -> Result<tar::Archive<Box<dyn Read>>> {
    let io_err = |source| Error::Io {
        path: blob.to_path_buf(),
        source,
    };
    let mut file = File::open(blob).map_err(io_err)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    let reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(Error::NotAContainerDisk {
                image: image.into(),
                message: "zstd-compressed layers are not supported".into(),
            })
        }
        _ => Box::new(BufReader::new(file)),
    };
    Ok(tar::Archive::new(reader))
}

/// Image paths (`/boot/vmlinuz`) as relative, `..`-free paths (`boot/vmlinuz`).
///
/// # Errors
/// [`Error::NotAContainerDisk`] for an empty path or one with `.` or `..` components.
pub(super) fn normalize_paths(paths: &[String], image: &str) -> Result<Vec<String>> {
    paths
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
            if parts.is_empty() || parts.iter().any(|c| *c == ".." || *c == ".") {
                return Err(Error::NotAContainerDisk {
                    image: image.into(),
                    message: format!("path {p:?} must be an absolute path without . or .."),
                });
            }
            Ok(parts.join("/"))
        })
        .collect()
}

/// Extracts the regular files `wanted` (normalised paths) of the layer `blob` under `root`
/// and returns those found. A wanted path that is a link or device is refused.
///
/// # Errors
/// [`Error::Io`] for unreadable archives or unwritable files; [`Error::NotAContainerDisk`]
/// for a wanted path that is not a regular file.
pub(super) fn files_from_layer(
    blob: &Path,
    wanted: &[String],
    root: &Path,
    image: &str,
) -> Result<Vec<String>> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut archive = open_layer(blob, image)?;
    let mut found = Vec::new();
    for entry in archive.entries().map_err(io_err(blob))? {
        let mut entry = entry.map_err(io_err(blob))?;
        let path = entry.path().map_err(io_err(blob))?.into_owned();
        let path = path.to_string_lossy();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if !wanted.contains(&path) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(Error::NotAContainerDisk {
                image: image.into(),
                message: format!("/{path} is not a regular file (links are not followed)"),
            });
        }
        let dest = root.join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut out = File::create(&dest).map_err(io_err(&dest))?;
        io::copy(&mut entry, &mut out).map_err(io_err(&dest))?;
        found.push(path);
    }
    Ok(found)
}

/// Runs `qemu-img info --output json` on the extracted disk and returns its format, refusing
/// qcow2 images with a backing file or an external data file and formats other than qcow2
/// and raw.
///
/// # Errors
/// [`Error::QemuImg`] when qemu-img fails; [`Error::HostileImage`] or
/// [`Error::NotAContainerDisk`] for refused disks.
pub(super) async fn check_disk(qemu_img: &str, path: &Path, image: &str) -> Result<DiskFormat> {
    let qemu_err = |message: String| Error::QemuImg {
        path: path.to_path_buf(),
        message,
    };
    let output = tokio::process::Command::new(qemu_img)
        .args(["info", "--output", "json"])
        .arg(path)
        .output()
        .await
        .map_err(|e| qemu_err(format!("cannot run {qemu_img}: {e}")))?;
    if !output.status.success() {
        return Err(qemu_err(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let info: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| qemu_err(format!("output is not JSON: {e}")))?;
    classify(&info, image)
}

/// The decision of [`check_disk`] on `qemu-img info` JSON.
pub(super) fn classify(info: &Value, image: &str) -> Result<DiskFormat> {
    let hostile = |message: String| Error::HostileImage {
        image: image.into(),
        message,
    };
    for key in ["backing-filename", "full-backing-filename"] {
        if let Some(backing) = info[key].as_str() {
            return Err(hostile(format!(
                "its disk has a backing file ({backing:?}), which would make QEMU open a host path"
            )));
        }
    }
    if let Some(data_file) = info
        .pointer("/format-specific/data/data-file")
        .and_then(Value::as_str)
    {
        return Err(hostile(format!(
            "its qcow2 has an external data file ({data_file:?}), which would make QEMU open a host path"
        )));
    }
    match info["format"].as_str() {
        Some("qcow2") => Ok(DiskFormat::Qcow2),
        Some("raw") => Ok(DiskFormat::Raw),
        other => Err(Error::NotAContainerDisk {
            image: image.into(),
            message: format!(
                "its disk is {}, not qcow2 or raw",
                other.unwrap_or("of unknown format")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backing_files_and_data_files_are_hostile_and_other_formats_refused() {
        assert_eq!(
            classify(&json!({"format": "qcow2"}), "i").unwrap(),
            DiskFormat::Qcow2
        );
        assert_eq!(
            classify(&json!({"format": "raw"}), "i").unwrap(),
            DiskFormat::Raw
        );
        let backed = json!({"format": "qcow2", "backing-filename": "/etc/shadow"});
        assert!(matches!(
            classify(&backed, "i"),
            Err(Error::HostileImage { .. })
        ));
        let data = json!({"format": "qcow2", "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}});
        assert!(matches!(
            classify(&data, "i"),
            Err(Error::HostileImage { .. })
        ));
        assert!(matches!(
            classify(&json!({"format": "vmdk"}), "i"),
            Err(Error::NotAContainerDisk { .. })
        ));
    }

    #[test]
    fn kernel_boot_paths_are_normalised_and_dot_dot_refused() {
        let ok = normalize_paths(&["/boot/vmlinuz".into(), "boot//initrd.img".into()], "i");
        assert_eq!(ok.unwrap(), ["boot/vmlinuz", "boot/initrd.img"]);
        assert!(normalize_paths(&["/boot/../etc/shadow".into()], "i").is_err());
        assert!(normalize_paths(&["/".into()], "i").is_err());
    }

    #[test]
    fn only_wanted_regular_files_are_unpacked_and_links_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let mut tar = tar::Builder::new(File::create(&layer).unwrap());
        for (path, data) in [("boot/vmlinuz", &b"kernel"[..]), ("etc/passwd", b"root")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, data).unwrap();
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, "boot/initrd.img", "/etc/shadow")
            .unwrap();
        tar.finish().unwrap();
        let root = tmp.path().join("root");
        let found = files_from_layer(&layer, &["boot/vmlinuz".into()], &root, "i").unwrap();
        assert_eq!(found, ["boot/vmlinuz"]);
        assert_eq!(std::fs::read(root.join("boot/vmlinuz")).unwrap(), b"kernel");
        assert!(!root.join("etc/passwd").exists());
        let wanted = ["boot/initrd.img".to_string()];
        let err = files_from_layer(&layer, &wanted, &root, "i").unwrap_err();
        assert!(matches!(err, Error::NotAContainerDisk { .. }), "{err}");
    }

    #[test]
    fn the_disk_file_is_found_in_a_gzip_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let gz = flate2::write::GzEncoder::new(
            File::create(&layer).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        for (path, data) in [
            ("./disk/disk.qcow2", &b"QFI\xfbdata"[..]),
            ("etc/other", b"x"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o444);
            header.set_cksum();
            tar.append_data(&mut header, path, data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        let dest = tmp.path().join("disk.img");
        assert_eq!(
            disk_from_layer(&layer, &dest, "i").unwrap(),
            vec!["disk.qcow2"]
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"QFI\xfbdata");
    }
}

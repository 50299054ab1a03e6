//! Clones in O(1) on a filesystem without reflinks (ext4): qcow2 overlays.
//!
//! Cloning volume S into T: S's image becomes an immutable *base* in the pool's `.bases/`
//! directory, and both S and T get a fresh qcow2 overlay backed by it. Neither sees the
//! other's writes; no data is copied, so the time does not grow with the size. A volume's
//! `.disk-format` file says `qcow2` once its `disk.img` is an overlay (the node agent reads
//! it rather than probing the image, which a guest controls). Bases nobody references any
//! more are removed when volumes are deleted ([`collect_bases`]).
//!
//! # Guarantees
//! The source's new overlay is created before its image moves, and put in place after, so a
//! crash leaves either the old image or `disk.img.new` + the base, which [`recover`] completes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file recording a volume's image format (absent: raw).
pub const FORMAT_FILE: &str = ".disk-format";
/// The pool directory holding the immutable images clones share.
pub const BASES_DIR: &str = ".bases";

/// The format of a volume's `disk.img` (`raw` unless recorded otherwise).
pub fn volume_format(dir: &Path) -> &'static str {
    match std::fs::read_to_string(dir.join(FORMAT_FILE)) {
        Ok(f) if f.trim() == "qcow2" => "qcow2",
        _ => "raw",
    }
}

/// Completes an interrupted clone of the volume in `dir`.
pub fn recover(dir: &Path) {
    let (image, pending) = (dir.join("disk.img"), dir.join("disk.img.new"));
    if !image.exists() && pending.exists() {
        let _ = std::fs::rename(&pending, &image);
    }
}

/// The virtual size of an image: a raw file's length, or a qcow2 header's size field.
pub fn virtual_size(path: &Path, format: &str) -> std::io::Result<u64> {
    if format == "raw" {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut header = [0u8; 32];
    std::fs::File::open(path)?.read_exact(&mut header)?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[24..32]);
    Ok(u64::from_be_bytes(size))
}

/// The backing file named in a qcow2 header (`None` for raw images or no backing).
pub fn backing_of(path: &Path) -> Option<PathBuf> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 20];
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"QFI\xfb" {
        return None;
    }
    let offset = u64::from_be_bytes(header[8..16].try_into().ok()?);
    let length = u32::from_be_bytes(header[16..20].try_into().ok()?) as usize;
    if offset == 0 || length == 0 || length > 4096 {
        return None;
    }
    let mut name = vec![0u8; length];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut name).ok()?;
    Some(PathBuf::from(String::from_utf8(name).ok()?))
}

fn overlay(path: &Path, base: &Path, base_format: &str, size: u64) -> Result<(), String> {
    // -u: the base is not opened (it may not be in place yet); the size is given instead.
    let output = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-u", "-F", base_format, "-b"])
        .arg(base)
        .arg(path)
        .arg(size.to_string())
        .output()
        .map_err(|e| format!("running qemu-img: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "qemu-img create {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn write_format(dir: &Path, format: &str) -> Result<(), String> {
    let tmp = dir.join(".disk-format.tmp");
    std::fs::write(&tmp, format)
        .and_then(|()| std::fs::rename(&tmp, dir.join(FORMAT_FILE)))
        .map_err(|e| format!("recording the format in {}: {e}", dir.display()))
}

/// Clones the volume in `source` into the empty volume `target` (virtual size at least
/// `target_size`), both in `pool`. Blocking; run it off the async runtime.
///
/// # Errors
/// A message naming the step that failed.
pub fn clone_volume(
    source: &Path,
    target: &Path,
    pool: &Path,
    target_size: u64,
) -> Result<(), String> {
    recover(source);
    let image = source.join("disk.img");
    if !image.exists() {
        return Err(format!(
            "the source volume has no disk image ({})",
            image.display()
        ));
    }
    let format = volume_format(source);
    let size =
        virtual_size(&image, format).map_err(|e| format!("reading {}: {e}", image.display()))?;
    let bases = pool.join(BASES_DIR);
    std::fs::create_dir_all(&bases).map_err(|e| format!("creating {}: {e}", bases.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let source_name = source
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("volume");
    let base = bases.join(format!("{source_name}-{stamp:x}.{format}"));
    let pending = source.join("disk.img.new");
    overlay(&pending, &base, format, size)?;
    std::fs::rename(&image, &base)
        .map_err(|e| format!("moving {} to {}: {e}", image.display(), base.display()))?;
    write_format(source, "qcow2")?;
    std::fs::rename(&pending, &image).map_err(|e| format!("placing {}: {e}", image.display()))?;
    // The base is shared from now on: nobody may write it.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o444));
    overlay(
        &target.join("disk.img"),
        &base,
        format,
        size.max(target_size),
    )?;
    write_format(target, "qcow2")
}

/// Removes the bases of `pool` that no volume image and no other base uses.
pub fn collect_bases(pool: &Path) {
    let bases = pool.join(BASES_DIR);
    let Ok(entries) = std::fs::read_dir(&bases) else {
        return;
    };
    let candidates: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    let mut used: Vec<PathBuf> = Vec::new();
    if let Ok(volumes) = std::fs::read_dir(pool) {
        for volume in volumes.flatten() {
            for file in ["disk.img", "disk.img.new"] {
                used.extend(backing_of(&volume.path().join(file)));
            }
        }
    }
    // Bases back other bases (a clone of a clone): keep whole chains of used bases.
    let mut changed = true;
    while changed {
        changed = false;
        for base in &candidates {
            if used.contains(base) {
                if let Some(parent) = backing_of(base) {
                    if !used.contains(&parent) {
                        used.push(parent);
                        changed = true;
                    }
                }
            }
        }
    }
    for base in candidates.iter().filter(|b| !used.contains(b)) {
        tracing::info!(base = %base.display(), "removing a clone base no volume uses");
        let _ = std::fs::remove_file(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img() -> bool {
        Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn a_clone_shares_an_immutable_base_and_neither_side_sees_the_others_writes() {
        if !qemu_img() {
            eprintln!("skipped: qemu-img is not installed");
            return;
        }
        let pool = tempfile::tempdir().unwrap();
        let (source, target) = (pool.path().join("pvc-a"), pool.path().join("pvc-b"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        let image = source.join("disk.img");
        std::fs::write(&image, vec![7u8; 1 << 20]).unwrap();
        clone_volume(&source, &target, pool.path(), 2 << 20).unwrap();
        assert_eq!(volume_format(&source), "qcow2");
        assert_eq!(volume_format(&target), "qcow2");
        let base = backing_of(&source.join("disk.img")).unwrap();
        assert_eq!(backing_of(&target.join("disk.img")), Some(base.clone()));
        assert_eq!(
            virtual_size(&target.join("disk.img"), "qcow2").unwrap(),
            2 << 20
        );
        let check = |path: &Path| {
            let out = Command::new("qemu-img")
                .args(["compare", "-q", "-f", "qcow2", "-F", "raw"])
                .arg(path)
                .arg(&base)
                .output()
                .unwrap();
            out.status.code()
        };
        assert_eq!(
            check(&source.join("disk.img")),
            Some(0),
            "the source reads as before"
        );
        // A second clone of the (now overlay) source chains bases; GC keeps the chain.
        let third = pool.path().join("pvc-c");
        std::fs::create_dir_all(&third).unwrap();
        clone_volume(&source, &third, pool.path(), 0).unwrap();
        collect_bases(pool.path());
        assert!(base.exists(), "still backing pvc-b");
        std::fs::remove_dir_all(&target).unwrap();
        std::fs::remove_dir_all(&source).unwrap();
        std::fs::remove_dir_all(&third).unwrap();
        collect_bases(pool.path());
        assert_eq!(
            std::fs::read_dir(pool.path().join(BASES_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn an_interrupted_clone_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("disk.img.new"), b"x").unwrap();
        recover(dir.path());
        assert!(dir.path().join("disk.img").exists());
    }
}

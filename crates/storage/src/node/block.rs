//! Block-mode volumes: a sparse `disk.img` of the claim's full size in the volume directory,
//! attached to a loop device (`losetup`); the PersistentVolume's `hostPath` is the device
//! (`type: BlockDevice`), which the node agent hands to QEMU as a `host_device`.
//!
//! Loop devices do not survive a reboot: when the node's storage starts, every Block volume
//! of this node is attached again to the device its PV names ([`ensure_attached`]).

use std::path::{Path, PathBuf};

/// Annotation on a Block PersistentVolume naming its backing file (oxivirt's).
pub const ANN_BACKING_FILE: &str = "storage.oxivirt.io/loop-backing-file";

/// The file a loop device is attached to, from sysfs; `None` when it is detached.
pub fn backing_file(device: &Path) -> Option<PathBuf> {
    let name = device.file_name()?.to_str()?;
    let text = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(text.trim_end()))
}

fn losetup(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new("losetup")
        .args(args)
        .output()
        .map_err(|e| format!("running losetup: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "losetup {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Creates `<dir>/disk.img` of `size` bytes (sparse) and attaches it; returns the device.
///
/// # Errors
/// What failed: the file, or losetup (no free loop device, no permission).
pub fn create(dir: &Path, size: u64) -> Result<PathBuf, String> {
    let image = dir.join("disk.img");
    let file =
        std::fs::File::create(&image).map_err(|e| format!("creating {}: {e}", image.display()))?;
    file.set_len(size)
        .map_err(|e| format!("sizing {}: {e}", image.display()))?;
    let image_text = image.to_string_lossy().into_owned();
    let device = losetup(&["--find", "--show", &image_text])?;
    Ok(PathBuf::from(device))
}

/// Attaches `image` to `device` unless it already is (after a reboot, say).
///
/// # Errors
/// When the device is attached to another file, or losetup fails.
pub fn ensure_attached(device: &Path, image: &Path) -> Result<(), String> {
    match backing_file(device) {
        Some(current) if current == image => Ok(()),
        Some(other) => Err(format!(
            "{} is attached to {}, not to {}",
            device.display(),
            other.display(),
            image.display()
        )),
        None => losetup(&[&device.to_string_lossy(), &image.to_string_lossy()]).map(|_| ()),
    }
}

/// Detaches `device` if it is attached to `image` (never a device serving another file).
///
/// # Errors
/// When losetup fails.
pub fn detach(device: &Path, image: &Path) -> Result<(), String> {
    if backing_file(device).is_some_and(|current| current == image) {
        losetup(&["--detach", &device.to_string_lossy()])?;
        // The node agent gave the device to QEMU's user; the next volume starts from root's.
        std::os::unix::fs::chown(device, Some(0), Some(0))
            .map_err(|e| format!("resetting the owner of {}: {e}", device.display()))?;
    }
    Ok(())
}

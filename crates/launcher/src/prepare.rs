//! Carries out the [`FileToCreate`] list of a [`crate::QemuCommand`]: overlays and empty
//! disks through `qemu-img`, seeds through [`crate::iso9660`], NVRAM copies; and hands the
//! run directory to QEMU's user when QEMU runs unprivileged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::args::FileToCreate;
use crate::config_disks;
use crate::error::{Error, Result};
use crate::iso9660;
use crate::spec::RunPaths;

/// Creates every file in `files`, in order, owned by `owner` when given.
///
/// Overlays and launcher-made disks are recreated: a restarted launcher starts from the
/// base image, as upstream's containerDisk does.
///
/// # Errors
/// [`Error::QemuImg`] or [`Error::WriteFile`] naming the file that could not be made.
pub(crate) async fn create_files(
    paths: &RunPaths,
    files: &[FileToCreate],
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let disks = paths.disks_dir();
    std::fs::create_dir_all(&disks).map_err(|e| Error::write(&disks, e))?;
    let mut owned: Vec<PathBuf> = vec![paths.dir().to_owned(), disks];
    for file in files {
        match file {
            FileToCreate::Overlay {
                path,
                backing,
                backing_format,
            } => {
                remove_stale(path)?;
                // Written natively: a `qemu-img` process here would sit on every VM start.
                let (path, backing) = (path.clone(), backing.clone());
                let format = backing_format.to_string();
                blocking(move || {
                    crate::qcow2::create_overlay(&path, &backing, &format)
                        .map_err(|source| Error::Overlay { path, source })
                })
                .await?;
            }
            FileToCreate::EmptyDisk { path, size } => {
                remove_stale(path)?;
                let mut command = Command::new("qemu-img");
                command
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(path)
                    .arg(size.to_string());
                qemu_img(command, path).await?;
            }
            FileToCreate::RawIfMissing { path, size } => {
                if path.exists() {
                    continue;
                }
                let (path, size) = (path.clone(), *size);
                blocking(move || {
                    let file =
                        std::fs::File::create_new(&path).map_err(|e| Error::write(&path, e))?;
                    file.set_len(size).map_err(|e| Error::write(&path, e))
                })
                .await?;
            }
            FileToCreate::CopyOf { path, source } => {
                let (path, source) = (path.clone(), source.clone());
                blocking(move || writable_copy(&source, &path)).await?;
            }
            FileToCreate::CopyIfMissing { path, source } => {
                let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
                std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
                // QEMU's user must reach the file inside the claim.
                owned.push(dir);
                if path.exists() {
                    // Kept from an earlier run: that is the point of persistence.
                    owned.push(path.clone());
                    continue;
                }
                let (path, source) = (path.clone(), source.clone());
                blocking(move || {
                    // Written aside and renamed: a crash mid-copy must not leave a torn
                    // store that later runs would keep.
                    let partial = path.with_extension("partial");
                    writable_copy(&source, &partial)?;
                    std::fs::rename(&partial, &path).map_err(|e| Error::write(&path, e))
                })
                .await?;
            }
            FileToCreate::Seed { path, image } => {
                let (path, image) = (path.clone(), image.clone());
                blocking(move || {
                    let bytes = iso9660::build(&image)?;
                    std::fs::write(&path, bytes).map_err(|e| Error::write(&path, e))
                })
                .await?;
            }
            FileToCreate::IsoOfDirectory {
                path,
                label,
                source,
            } => {
                let (path, label, source) = (path.clone(), label.clone(), source.clone());
                blocking(move || {
                    let image = config_disks::read_tree(&label, &source)?;
                    let bytes = iso9660::build(&image)?;
                    std::fs::write(&path, bytes).map_err(|e| Error::write(&path, e))
                })
                .await?;
            }
        }
        owned.push(file.path().to_owned());
    }
    if let Some((uid, gid)) = owner {
        for path in owned {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| Error::write(&path, e))?;
        }
    }
    Ok(())
}

/// Copies firmware template `source` to `path`, writable by its owner only (the template
/// is read-only in the package; the copy must be writable).
fn writable_copy(source: &Path, path: &Path) -> Result<()> {
    let template = std::fs::read(source).map_err(|e| Error::Firmware {
        path: source.to_path_buf(),
        source: e,
    })?;
    std::fs::write(path, template).map_err(|e| Error::write(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::write(path, e))
}

fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::write(path, error))
        }
        _ => Ok(()),
    }
}

async fn qemu_img(mut command: Command, path: &Path) -> Result<()> {
    let output = command.output().await.map_err(|e| Error::QemuImg {
        path: path.to_owned(),
        stderr: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::QemuImg {
        path: path.to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

async fn blocking(work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Process {
            what: "run a file preparation task",
            source: std::io::Error::other(e),
        })?
}

/// Removes what the launcher made for this run (overlays, empty disks, seeds): upstream
/// discards a containerDisk's writes on stop. The node agent removes the directory itself.
pub(crate) fn discard(paths: &RunPaths) {
    let disks = paths.disks_dir();
    if let Err(error) = std::fs::remove_dir_all(&disks) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, path = %disks.display(), "cannot remove the run's disks");
        }
    }
}

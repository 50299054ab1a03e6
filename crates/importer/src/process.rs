//! One import as CDI's data processor does it, as explicit phases:
//! `Info → TransferScratch → Validate → Convert → Resize → Complete` (a raw stream skips
//! Validate/Convert: it is already the disk; a blank disk goes straight to `Create`).
//!
//! The target is written as `disk.img.tmp` and renamed to `disk.img` only when complete,
//! so a failed import leaves no half-written disk a VM could boot.

use std::path::{Path, PathBuf};

use crate::config::{Config, Source};
use crate::format::Detected;
use crate::progress::Progress;
use crate::transfer::{transfer, Input};
use crate::{http, qemu, registry, Error};

/// Formats qemu-img may read for us (CDI's `isSupportedFormat`).
const SUPPORTED: [&str; 6] = ["raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx"];

/// Extra room a non-raw image file may take beyond the usable size (format metadata).
fn metadata_allowance(usable: u64) -> u64 {
    (usable / 8).max(64 << 20)
}

/// Phases, for logs and loop detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Info,
    TransferScratch,
    Validate,
    Convert,
    Resize,
    Complete,
}

struct Run<'a> {
    config: &'a Config,
    progress: Progress,
    scratch: PathBuf,
    tmp: PathBuf,
    visited: Vec<Phase>,
}

impl Run<'_> {
    fn enter(&mut self, phase: Phase) -> Result<(), Error> {
        if self.visited.contains(&phase) {
            return Err(Error::Transfer(format!("loop detected on phase {phase:?}")));
        }
        tracing::info!(?phase, "import phase");
        self.visited.push(phase);
        Ok(())
    }
}

/// Bytes arriving on a request of the upload server, and whom to tell once they are all in
/// scratch space (the async upload paths answer then, before validation and conversion).
pub(crate) struct Stream {
    pub(crate) input: Input,
    pub(crate) length: Option<u64>,
    pub(crate) received: Option<tokio::sync::oneshot::Sender<u64>>,
}

/// Runs the import described by `config`.
///
/// # Errors
/// [`Error`] saying which step failed and why; the target is left without `disk.img`.
pub async fn import(config: &Config) -> Result<(), Error> {
    import_from(config, None).await
}

/// Runs the import of an upload: `stream` goes through the same transfer, limits,
/// validation and conversion as an HTTP body.
///
/// # Errors
/// As [`import`].
pub(crate) async fn import_upload(config: &Config, stream: Stream) -> Result<(), Error> {
    import_from(config, Some(stream)).await
}

async fn import_from(config: &Config, stream: Option<Stream>) -> Result<(), Error> {
    let scratch_dir = config.status_dir.join("scratch");
    std::fs::create_dir_all(&scratch_dir)
        .map_err(|e| Error::Transfer(format!("creating {}: {e}", scratch_dir.display())))?;
    let mut run = Run {
        config,
        progress: Progress::to_file(config.status_dir.join("progress")),
        scratch: scratch_dir.join("tmpimage"),
        // A Block volume is written in place: there is no file to rename into place.
        tmp: if config.block {
            config.disk_image()
        } else {
            config.data_dir.join("disk.img.tmp")
        },
        visited: Vec::new(),
    };
    if !config.block {
        let _ = std::fs::remove_file(&run.tmp);
    }
    let result = steps(&mut run, stream).await;
    let _ = std::fs::remove_file(&run.scratch);
    if result.is_err() && !config.block {
        let _ = std::fs::remove_file(&run.tmp);
    }
    result
}

async fn steps(run: &mut Run<'_>, stream: Option<Stream>) -> Result<(), Error> {
    let config = run.config;
    let usable = config.usable();
    run.enter(Phase::Info)?;
    let (file, format) = match &config.source {
        // A new Block volume's device reads as zeroes already (its file is sparse).
        Source::Blank if config.block => return finish(run),
        Source::Blank => {
            qemu::create(&run.tmp, usable, config.preallocation).await?;
            return finish(run);
        }
        Source::Http(url) => {
            let download = http::get(config, url).await?;
            to_scratch(run, Input::Http(download.body), download.length, None).await?
        }
        Source::Upload => {
            let stream = stream.ok_or_else(|| {
                Error::Transfer("an upload worker imports only what a request sends".into())
            })?;
            to_scratch(run, stream.input, stream.length, stream.received).await?
        }
        Source::Registry(url) => {
            run.enter(Phase::TransferScratch)?;
            let pulled = registry::pull(config, url).await?;
            (pulled.0, pulled.1)
        }
        Source::Pvc(dir) => {
            // A volume of our own provisioner: its overlay chain was made by us, so it is
            // converted as it is (the virtual size still has to fit).
            let format = match std::fs::read_to_string(dir.join(".disk-format")) {
                Ok(f) if f.trim() == "qcow2" => "qcow2",
                _ => "raw",
            };
            let image = dir.join("disk.img");
            let info = qemu::info(&image, format).await?;
            if info.virtual_size > usable {
                return Err(Error::Invalid(format!(
                    "target resources requests storage size is smaller than the source ({} > {usable} bytes)",
                    info.virtual_size
                )));
            }
            run.enter(Phase::Convert)?;
            qemu::convert(
                &image,
                format,
                &run.tmp,
                config.preallocation,
                Some(&run.progress),
            )
            .await?;
            return resize_and_finish(run, usable).await;
        }
    };
    if !config.block
        && format == "raw"
        && file == run.scratch
        && std::fs::rename(&file, &run.tmp).is_ok()
    {
        // A raw stream already is the disk (sparse); nothing to validate or convert.
        return resize_and_finish(run, usable).await;
    }
    run.enter(Phase::Validate)?;
    validate(&file, &format, usable, &source_name(&config.source)).await?;
    run.enter(Phase::Convert)?;
    let report = matches!(config.source, Source::Registry(_)).then_some(&run.progress);
    qemu::convert(&file, &format, &run.tmp, config.preallocation, report).await?;
    resize_and_finish(run, usable).await
}

/// Streams `input` into scratch space (decompressing, bounded by what the volume can hold)
/// and names the format found; `received` learns the byte count once all is in.
async fn to_scratch(
    run: &mut Run<'_>,
    input: Input,
    length: Option<u64>,
    received: Option<tokio::sync::oneshot::Sender<u64>>,
) -> Result<(PathBuf, String), Error> {
    let usable = run.config.usable();
    run.enter(Phase::TransferScratch)?;
    let limit = |format: Detected| match format {
        Detected::Raw => usable,
        _ => usable + metadata_allowance(usable),
    };
    let written = transfer(input, length, &run.progress, &run.scratch, limit).await?;
    tracing::info!(bytes = written.bytes, format = ?written.format, "transferred to scratch space");
    if let Some(received) = received {
        let _ = received.send(written.bytes);
    }
    let format = written.format.qemu_format().ok_or_else(|| {
        Error::Invalid(format!(
            "{:?} content is not a disk image (archives need contentType: archive)",
            written.format
        ))
    })?;
    Ok((run.scratch.clone(), format.to_string()))
}

/// Refuses what must never reach qemu-img convert or a VM: unknown formats, backing files,
/// external data files, images larger than the volume, corrupt or truncated metadata.
async fn validate(file: &Path, format: &str, usable: u64, image: &str) -> Result<(), Error> {
    let info = qemu::info(file, format).await?;
    if !SUPPORTED.contains(&info.format.as_str()) {
        return Err(Error::Invalid(format!(
            "Invalid format {} for image {image}",
            info.format
        )));
    }
    if let Some(backing) = info.backing_file {
        return Err(Error::Invalid(format!(
            "Image {image} is invalid because it has backing file {backing}"
        )));
    }
    if let Some(data_file) = info.data_file {
        return Err(Error::Invalid(format!(
            "Image {image} is invalid because it has an external data file {data_file}"
        )));
    }
    if info.virtual_size > usable {
        return Err(Error::Convert(format!(
            "virtual image size {} is larger than the reported available storage {usable}. A larger PVC is required",
            info.virtual_size
        )));
    }
    qemu::check(file, format).await
}

/// How messages name the image: its URL, as upstream's do.
fn source_name(source: &Source) -> String {
    match source {
        Source::Http(url) | Source::Registry(url) => url.clone(),
        Source::Blank => "blank".into(),
        Source::Upload => "upload".into(),
        Source::Pvc(dir) => dir.display().to_string(),
    }
}

async fn resize_and_finish(run: &mut Run<'_>, usable: u64) -> Result<(), Error> {
    run.enter(Phase::Resize)?;
    if run.config.block {
        return finish(run); // a device has the volume's size already
    }
    let size = std::fs::metadata(&run.tmp)
        .map_err(|e| Error::Convert(format!("reading {}: {e}", run.tmp.display())))?
        .len();
    if size < usable {
        qemu::resize(&run.tmp, usable, run.config.preallocation).await?;
    }
    finish(run)
}

fn finish(run: &mut Run<'_>) -> Result<(), Error> {
    run.enter(Phase::Complete)?;
    // Durable before it is reported: the DataVolume says Succeeded once this returns.
    std::fs::File::open(&run.tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::Convert(format!("syncing {}: {e}", run.tmp.display())))?;
    let target = run.config.disk_image();
    if run.config.block {
        run.progress.complete();
        return Ok(());
    }
    std::fs::rename(&run.tmp, &target)
        .map_err(|e| Error::Convert(format!("moving the image to {}: {e}", target.display())))?;
    run.progress.complete();
    Ok(())
}

//! Writing an empty qcow2 (version 3) overlay on a backing image, natively: the containerDisk
//! overlay of every VM start, which otherwise costs a `qemu-img create` process on the path
//! to a running guest. Only this one shape is written; the layout follows QEMU's published
//! qcow2 specification (docs/interop/qcow2.txt) and is checked against the real `qemu-img
//! check` in the tests.
//!
//! Layout with 64 KiB clusters: cluster 0 the header, its extensions and the backing file
//! name; cluster 1 the refcount table; cluster 2 its only refcount block; clusters 3… the L1
//! table (all zero: nothing is allocated, every read goes to the backing file).

use std::io::{Read, Write};
use std::path::Path;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Header extension: the backing file's format name.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// Version 3 header length without optional fields.
const HEADER_LEN: u32 = 104;
/// 16-bit refcounts (`refcount_order` 4), QEMU's default.
const REFCOUNT_ORDER: u32 = 4;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    /// The backing image could not be read.
    #[error("cannot read the backing image {path}")]
    Backing {
        /// The backing image.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backing image is not in the format it was said to be.
    #[error("the backing image {path} is not a {format} image: {why}")]
    BadBacking {
        /// The backing image.
        path: String,
        /// The format it was said to have.
        format: String,
        /// What is wrong.
        why: String,
    },
    /// The backing path is too long for the header cluster (or not UTF-8).
    #[error("the backing file name {0:?} does not fit in the first cluster")]
    NameTooLong(String),
    /// The overlay could not be written.
    #[error("cannot write the overlay {path}")]
    Write {
        /// The overlay.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The virtual size of `backing` in format `format` (`qcow2` or `raw`).
///
/// # Errors
/// [`Qcow2Error::Backing`] when it cannot be read, [`Qcow2Error::BadBacking`] when it is not
/// what `format` says.
pub fn virtual_size(backing: &Path, format: &str) -> Result<u64, Qcow2Error> {
    let name = backing.display().to_string();
    let io = |source| Qcow2Error::Backing {
        path: name.clone(),
        source,
    };
    let bad = |why: &str| Qcow2Error::BadBacking {
        path: name.clone(),
        format: format.into(),
        why: why.into(),
    };
    match format {
        "raw" => Ok(std::fs::metadata(backing).map_err(io)?.len()),
        "qcow2" => {
            let mut header = [0u8; 32];
            std::fs::File::open(backing)
                .and_then(|mut f| f.read_exact(&mut header))
                .map_err(io)?;
            if &header[..4] != MAGIC {
                return Err(bad("no qcow2 magic"));
            }
            Ok(u64::from_be_bytes(
                header[24..32].try_into().map_err(|_| bad("short header"))?,
            ))
        }
        other => Err(bad(&format!("unsupported backing format {other}"))),
    }
}

/// The bytes of an empty overlay of `size` bytes on `backing` (`backing_format`).
///
/// # Errors
/// [`Qcow2Error::NameTooLong`] for a backing path that does not fit the header cluster.
pub fn overlay_bytes(
    size: u64,
    backing: &str,
    backing_format: &str,
) -> Result<Vec<u8>, Qcow2Error> {
    // Each L2 table maps CLUSTER/8 clusters; each L1 entry one L2 table.
    let per_l1 = (CLUSTER / 8) * CLUSTER;
    let l1_entries = size.div_ceil(per_l1).max(1);
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER);
    let total_clusters = 3 + l1_clusters;

    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&3u32.to_be_bytes()); // version
    let backing_offset_at = head.len();
    head.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset, set below
    head.extend_from_slice(
        &u32::try_from(backing.len())
            .map_err(|_| Qcow2Error::NameTooLong(backing.into()))?
            .to_be_bytes(),
    );
    head.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    head.extend_from_slice(&size.to_be_bytes());
    head.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
    head.extend_from_slice(
        &u32::try_from(l1_entries)
            .map_err(|_| Qcow2Error::NameTooLong(backing.into()))?
            .to_be_bytes(),
    );
    head.extend_from_slice(&(3 * CLUSTER).to_be_bytes()); // l1_table_offset
    head.extend_from_slice(&CLUSTER.to_be_bytes()); // refcount_table_offset
    head.extend_from_slice(&1u32.to_be_bytes()); // refcount_table_clusters
    head.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
    head.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
    head.extend_from_slice(&0u64.to_be_bytes()); // incompatible_features
    head.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
    head.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
    head.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    head.extend_from_slice(&HEADER_LEN.to_be_bytes());
    debug_assert_eq!(head.len(), HEADER_LEN as usize);
    // Extension: the backing format, padded to 8 bytes; then the end marker.
    head.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    head.extend_from_slice(&(backing_format.len() as u32).to_be_bytes());
    head.extend_from_slice(backing_format.as_bytes());
    head.resize(head.len().next_multiple_of(8), 0);
    head.extend_from_slice(&[0u8; 8]);
    let backing_offset = head.len() as u64;
    head.extend_from_slice(backing.as_bytes());
    if head.len() as u64 > CLUSTER {
        return Err(Qcow2Error::NameTooLong(backing.into()));
    }
    head[backing_offset_at..backing_offset_at + 8].copy_from_slice(&backing_offset.to_be_bytes());

    let mut image = vec![0u8; usize::try_from(total_clusters * CLUSTER).unwrap_or(usize::MAX)];
    image[..head.len()].copy_from_slice(&head);
    // Refcount table: one entry, the refcount block in cluster 2.
    let table = CLUSTER as usize;
    image[table..table + 8].copy_from_slice(&(2 * CLUSTER).to_be_bytes());
    // Refcount block: every cluster of the file is used once.
    let block = 2 * CLUSTER as usize;
    for cluster in 0..total_clusters as usize {
        image[block + cluster * 2..block + cluster * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    Ok(image)
}

/// Writes an empty overlay at `path` on `backing` (`backing_format`), sized as the backing.
///
/// # Errors
/// [`Qcow2Error`] naming the backing image or the overlay.
pub fn create_overlay(path: &Path, backing: &Path, backing_format: &str) -> Result<(), Qcow2Error> {
    let size = virtual_size(backing, backing_format)?;
    let name = backing
        .to_str()
        .ok_or_else(|| Qcow2Error::NameTooLong(backing.display().to_string()))?;
    let bytes = overlay_bytes(size, name, backing_format)?;
    let write = |source| Qcow2Error::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(write)?;
    file.write_all(&bytes).map_err(write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) -> Option<String> {
        let out = Command::new("qemu-img").args(args).output().ok()?;
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn overlays_pass_qemu_img_check_and_read_through_to_the_backing_image() {
        let dir = tempfile::tempdir().unwrap();
        for (format, size) in [("qcow2", "3G"), ("raw", "1M"), ("qcow2", "1200G")] {
            let base = dir.path().join(format!("base-{size}.{format}"));
            if qemu_img(&["create", "-q", "-f", format, base.to_str().unwrap(), size]).is_none() {
                eprintln!("skipped: qemu-img is not installed");
                return;
            }
            if format == "raw" {
                // Data in the base must show through the overlay.
                let mut f = std::fs::OpenOptions::new().write(true).open(&base).unwrap();
                f.write_all(b"oxivirt-overlay-test").unwrap();
            }
            let overlay = dir.path().join(format!("overlay-{size}.qcow2"));
            create_overlay(&overlay, &base, format).unwrap();
            let path = overlay.to_str().unwrap();
            qemu_img(&["check", path]).unwrap();
            let info: serde_json::Value =
                serde_json::from_str(&qemu_img(&["info", "--output=json", path]).unwrap()).unwrap();
            assert_eq!(info["format"], "qcow2");
            assert_eq!(info["backing-filename"], base.to_str().unwrap());
            assert_eq!(info["backing-filename-format"], format);
            assert_eq!(info["virtual-size"], virtual_size(&base, format).unwrap());
            if format == "raw" {
                let out = dir.path().join("read.raw");
                qemu_img(&["convert", "-O", "raw", path, out.to_str().unwrap()]).unwrap();
                let mut head = [0u8; 20];
                std::fs::File::open(&out)
                    .unwrap()
                    .read_exact(&mut head)
                    .unwrap();
                assert_eq!(&head, b"oxivirt-overlay-test");
            }
            // QEMU can write to it too.
            qemu_img(&["resize", "-q", path, "+1M"]).unwrap();
            qemu_img(&["check", path]).unwrap();
        }
    }

    #[test]
    fn a_backing_that_is_not_qcow2_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.qcow2");
        std::fs::write(&fake, [0u8; 64]).unwrap();
        assert!(matches!(
            virtual_size(&fake, "qcow2"),
            Err(Qcow2Error::BadBacking { .. })
        ));
        assert!(create_overlay(&dir.path().join("o"), &fake, "qcow2").is_err());
    }
}

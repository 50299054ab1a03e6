//! A small ISO 9660 writer with Joliet names, enough for cloud-init seeds: a few small
//! files in a few directories, read-only, one session, no Rock Ridge.
//!
//! Layout: 16 empty sectors, the primary volume descriptor (uppercase 8-bit names, as old
//! readers expect), a Joliet supplementary descriptor (UCS-2 names, case and `-` kept,
//! which Linux, Windows and BSDs prefer when present), the terminator, four path tables,
//! the directories of both trees, then the file data, which both trees share, and 300 KiB
//! of padding.
//! Timestamps are fixed so the same seed gives the same bytes.

use crate::error::{Error, Result};
use crate::seed::SeedImage;

const SECTOR: usize = 2048;
/// Zero sectors appended, as mkisofs does by default: some readers probe past the end of
/// small volumes (busybox's `findfs` gives up on devices under 68 KiB), and some drives
/// read ahead.
const PADDING: u32 = 150;
/// 2000-01-01 00:00:00 UTC, for reproducible images.
const DATE7: [u8; 7] = [100, 1, 1, 0, 0, 0, 0];
const DATE17: &[u8; 17] = b"2000010100000000\0";

struct Dir {
    name: String,
    parent: usize,
    dirs: Vec<usize>,
    files: Vec<usize>,
}

struct FileRef<'a> {
    name: &'a str,
    data: &'a [u8],
}

#[derive(Clone, Copy)]
enum Naming {
    Primary,
    Joliet,
}

/// One name tree (primary or Joliet) laid out on disk.
struct Tree {
    naming: Naming,
    /// Directory indexes in path-table order (breadth first, sorted by identifier).
    order: Vec<usize>,
    /// Extent LBA and byte size of each directory, by directory index.
    extents: Vec<(u32, u32)>,
    path_table: (u32, u32, u32),
}

/// Builds the image for `seed`.
///
/// # Errors
/// [`Error::Config`] for a name too long for Joliet (64 characters) or an empty one.
pub fn build(seed: &SeedImage) -> Result<Vec<u8>> {
    let mut dirs = vec![Dir {
        name: String::new(),
        parent: 0,
        dirs: Vec::new(),
        files: Vec::new(),
    }];
    let mut files = Vec::new();
    for file in &seed.files {
        let mut parts: Vec<&str> = file.path.split('/').collect();
        let leaf = parts.pop().unwrap_or_default();
        let mut at = 0;
        for part in parts.iter().chain([&leaf]) {
            if part.is_empty() || part.encode_utf16().count() > 64 {
                return Err(Error::config(
                    "seed",
                    format!("bad file name {:?}", file.path),
                ));
            }
        }
        for part in parts {
            at = match dirs[at].dirs.iter().find(|&&d| dirs[d].name == part) {
                Some(&existing) => existing,
                None => {
                    dirs.push(Dir {
                        name: part.to_owned(),
                        parent: at,
                        dirs: Vec::new(),
                        files: Vec::new(),
                    });
                    let new = dirs.len() - 1;
                    dirs[at].dirs.push(new);
                    new
                }
            };
        }
        dirs[at].files.push(files.len());
        files.push(FileRef {
            name: leaf,
            data: &file.data,
        });
    }

    let mut trees = [Naming::Primary, Naming::Joliet].map(|naming| Tree {
        naming,
        order: bfs(&dirs, naming),
        extents: vec![(0, 0); dirs.len()],
        path_table: (0, 0, 0),
    });
    let mut lba: u32 = 19;
    for tree in &mut trees {
        let size = path_table(&dirs, tree, false).len();
        let sectors = sectors(size);
        tree.path_table = (lba, lba + sectors, u32::try_from(size).unwrap_or(u32::MAX));
        lba += 2 * sectors;
    }
    for tree in &mut trees {
        for &dir in &tree.order.clone() {
            let size = dir_size(&dirs, &files, dir, tree.naming);
            tree.extents[dir] = (lba, size);
            lba += sectors(size as usize);
        }
    }
    let mut file_lba = Vec::with_capacity(files.len());
    for file in &files {
        file_lba.push(lba);
        lba += sectors(file.data.len());
    }

    lba += PADDING;
    let mut image = vec![0u8; lba as usize * SECTOR];
    for (tree, kind) in trees.iter().zip([1u8, 2]) {
        let sector = 15 + usize::from(kind);
        let descriptor = volume_descriptor(kind, &seed.label, lba, tree);
        image[sector * SECTOR..(sector + 1) * SECTOR].copy_from_slice(&descriptor);
        let (l, m, _) = tree.path_table;
        write_at(&mut image, l, &path_table(&dirs, tree, false));
        write_at(&mut image, m, &path_table(&dirs, tree, true));
        for &dir in &tree.order {
            let extent = dir_extent(&dirs, &files, dir, tree, &file_lba);
            write_at(&mut image, tree.extents[dir].0, &extent);
        }
    }
    image[18 * SECTOR..18 * SECTOR + 7].copy_from_slice(&[255, b'C', b'D', b'0', b'0', b'1', 1]);
    for (file, &at) in files.iter().zip(&file_lba) {
        write_at(&mut image, at, file.data);
    }
    Ok(image)
}

fn sectors(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(SECTOR)).unwrap_or(u32::MAX)
}

fn write_at(image: &mut [u8], lba: u32, bytes: &[u8]) {
    let start = lba as usize * SECTOR;
    image[start..start + bytes.len()].copy_from_slice(bytes);
}

fn identifier(name: &str, naming: Naming, is_dir: bool) -> Vec<u8> {
    match naming {
        Naming::Joliet => name.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Naming::Primary => {
            let mut id: String = name
                .chars()
                .map(|c| match c.to_ascii_uppercase() {
                    c @ ('A'..='Z' | '0'..='9' | '_' | '-' | '.') => c,
                    _ => '_',
                })
                .collect();
            if !is_dir {
                if !id.contains('.') {
                    id.push('.');
                }
                id.push_str(";1");
            }
            id.into_bytes()
        }
    }
}

fn bfs(dirs: &[Dir], naming: Naming) -> Vec<usize> {
    let mut order = vec![0];
    let mut next = 0;
    while next < order.len() {
        let mut children = dirs[order[next]].dirs.clone();
        children.sort_by_key(|&d| identifier(&dirs[d].name, naming, true));
        order.extend(children);
        next += 1;
    }
    order
}

/// The entries of `dir` other than `.` and `..`, sorted: (identifier, is_dir, index).
fn entries(
    dirs: &[Dir],
    files: &[FileRef<'_>],
    dir: usize,
    naming: Naming,
) -> Vec<(Vec<u8>, bool, usize)> {
    let mut entries: Vec<_> = dirs[dir]
        .dirs
        .iter()
        .map(|&d| (identifier(&dirs[d].name, naming, true), true, d))
        .chain(
            dirs[dir]
                .files
                .iter()
                .map(|&f| (identifier(files[f].name, naming, false), false, f)),
        )
        .collect();
    entries.sort();
    entries
}

fn record_len(id_len: usize) -> usize {
    33 + id_len + (1 - id_len % 2)
}

/// Appends a record, moving to the next sector if it would straddle one.
fn place(extent: &mut Vec<u8>, record: &[u8]) {
    if extent.len() % SECTOR + record.len() > SECTOR {
        extent.resize(extent.len().div_ceil(SECTOR) * SECTOR, 0);
    }
    extent.extend_from_slice(record);
}

fn dir_size(dirs: &[Dir], files: &[FileRef<'_>], dir: usize, naming: Naming) -> u32 {
    let mut extent = Vec::new();
    for len in [1, 1]
        .into_iter()
        .chain(entries(dirs, files, dir, naming).iter().map(|e| e.0.len()))
    {
        place(&mut extent, &vec![0; record_len(len)]);
    }
    u32::try_from(extent.len().div_ceil(SECTOR) * SECTOR).unwrap_or(u32::MAX)
}

fn dir_extent(
    dirs: &[Dir],
    files: &[FileRef<'_>],
    dir: usize,
    tree: &Tree,
    file_lba: &[u32],
) -> Vec<u8> {
    let mut extent = Vec::new();
    let (lba, size) = tree.extents[dir];
    let (parent_lba, parent_size) = tree.extents[dirs[dir].parent];
    place(&mut extent, &record(&[0], lba, size, true));
    place(&mut extent, &record(&[1], parent_lba, parent_size, true));
    for (id, is_dir, index) in entries(dirs, files, dir, tree.naming) {
        let (at, len) = if is_dir {
            tree.extents[index]
        } else {
            (
                file_lba[index],
                u32::try_from(files[index].data.len()).unwrap_or(u32::MAX),
            )
        };
        place(&mut extent, &record(&id, at, len, is_dir));
    }
    extent.resize(extent.len().div_ceil(SECTOR) * SECTOR, 0);
    extent
}

fn both32(value: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&value.to_le_bytes());
    out[4..].copy_from_slice(&value.to_be_bytes());
    out
}

fn both16(value: u16) -> [u8; 4] {
    let [lo, hi] = value.to_le_bytes();
    [lo, hi, hi, lo]
}

fn record(id: &[u8], lba: u32, size: u32, is_dir: bool) -> Vec<u8> {
    let len = record_len(id.len());
    let mut out = vec![0u8; len];
    out[0] = u8::try_from(len).unwrap_or(u8::MAX);
    out[2..10].copy_from_slice(&both32(lba));
    out[10..18].copy_from_slice(&both32(size));
    out[18..25].copy_from_slice(&DATE7);
    out[25] = if is_dir { 2 } else { 0 };
    out[28..32].copy_from_slice(&both16(1));
    out[32] = u8::try_from(id.len()).unwrap_or(u8::MAX);
    out[33..33 + id.len()].copy_from_slice(id);
    out
}

fn path_table(dirs: &[Dir], tree: &Tree, big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &dir in &tree.order {
        let id = if dir == 0 {
            vec![0]
        } else {
            identifier(&dirs[dir].name, tree.naming, true)
        };
        let parent = tree
            .order
            .iter()
            .position(|&d| d == dirs[dir].parent)
            .unwrap_or(0)
            + 1;
        let parent = u16::try_from(parent).unwrap_or(u16::MAX);
        let lba = tree.extents[dir].0;
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.push(0);
        out.extend_from_slice(&if big_endian {
            lba.to_be_bytes()
        } else {
            lba.to_le_bytes()
        });
        out.extend_from_slice(&if big_endian {
            parent.to_be_bytes()
        } else {
            parent.to_le_bytes()
        });
        out.extend_from_slice(&id);
        if id.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

fn text_field(out: &mut [u8], text: &str, naming: Naming) {
    match naming {
        Naming::Primary => {
            out.fill(b' ');
            let bytes = text.as_bytes();
            let len = bytes.len().min(out.len());
            out[..len].copy_from_slice(&bytes[..len]);
        }
        Naming::Joliet => {
            for pair in out.chunks_mut(2) {
                pair.copy_from_slice(&[0, b' '][..pair.len()]);
            }
            let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            let len = units.len().min(out.len()) & !1;
            out[..len].copy_from_slice(&units[..len]);
        }
    }
}

fn volume_descriptor(kind: u8, label: &str, total: u32, tree: &Tree) -> Vec<u8> {
    let mut out = vec![0u8; SECTOR];
    out[0] = kind;
    out[1..6].copy_from_slice(b"CD001");
    out[6] = 1;
    text_field(&mut out[8..40], "LINUX", tree.naming);
    text_field(&mut out[40..72], label, tree.naming);
    out[80..88].copy_from_slice(&both32(total));
    if let Naming::Joliet = tree.naming {
        out[88..91].copy_from_slice(b"%/E"); // UCS-2 level 3
    }
    out[120..124].copy_from_slice(&both16(1));
    out[124..128].copy_from_slice(&both16(1));
    out[128..132].copy_from_slice(&both16(2048));
    let (l, m, size) = tree.path_table;
    out[132..140].copy_from_slice(&both32(size));
    out[140..144].copy_from_slice(&l.to_le_bytes());
    out[148..152].copy_from_slice(&m.to_be_bytes());
    let (root_lba, root_size) = tree.extents[0];
    out[156..190].copy_from_slice(&record(&[0], root_lba, root_size, true));
    for range in [
        190..318,
        318..446,
        446..574,
        574..702,
        702..739,
        739..776,
        776..813,
    ] {
        text_field(&mut out[range], "", tree.naming);
    }
    for at in [813, 830, 864] {
        out[at..at + 17].copy_from_slice(DATE17);
    }
    out[847..863].fill(b'0');
    out[881] = 1;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::SeedFile;

    fn seed() -> SeedImage {
        SeedImage {
            label: "config-2".to_owned(),
            files: vec![
                SeedFile {
                    path: "openstack/latest/meta_data.json".to_owned(),
                    data: b"{}".to_vec(),
                },
                SeedFile {
                    path: "openstack/latest/user_data".to_owned(),
                    data: vec![b'x'; 5000],
                },
                SeedFile {
                    path: "README".to_owned(),
                    data: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn image_has_both_descriptors_and_the_label() {
        let image = build(&seed()).expect("builds");
        assert_eq!(image.len() % SECTOR, 0);
        assert_eq!(&image[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&image[16 * SECTOR + 40..16 * SECTOR + 48], b"config-2");
        assert_eq!(image[17 * SECTOR], 2);
        assert_eq!(&image[17 * SECTOR + 88..17 * SECTOR + 91], b"%/E");
        assert_eq!(image[18 * SECTOR], 255);
        let total = u32::from_le_bytes(
            image[16 * SECTOR + 80..16 * SECTOR + 84]
                .try_into()
                .expect("4"),
        );
        assert_eq!(total as usize * SECTOR, image.len());
    }

    #[test]
    fn file_data_is_stored_whole() {
        let image = build(&seed()).expect("builds");
        let needle = vec![b'x'; 5000];
        assert!(image.windows(5000).any(|w| w == needle.as_slice()));
    }

    #[test]
    fn tiny_seeds_are_padded_past_busybox_probe_window() {
        // busybox's volume_id reads 0x11000 bytes at once and ignores shorter devices.
        let tiny = SeedImage {
            label: "cidata".to_owned(),
            files: Vec::new(),
        };
        assert!(build(&tiny).expect("builds").len() > 0x11000);
    }

    #[test]
    fn same_seed_gives_same_bytes() {
        assert_eq!(build(&seed()).expect("a"), build(&seed()).expect("b"));
    }

    #[test]
    fn primary_names_are_uppercase_with_version() {
        assert_eq!(
            identifier("user-data", Naming::Primary, false),
            b"USER-DATA.;1"
        );
        assert_eq!(
            identifier("meta_data.json", Naming::Primary, false),
            b"META_DATA.JSON;1"
        );
        assert_eq!(identifier("openstack", Naming::Primary, true), b"OPENSTACK");
        assert_eq!(identifier("ab", Naming::Joliet, false), [0, b'a', 0, b'b']);
    }
}

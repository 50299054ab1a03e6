//! Image and compression formats by their magic numbers (CDI's table: the first bytes of
//! the stream decide; file names and Content-Type headers are never trusted).

/// What the first bytes of a stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Gzip,
    Xz,
    Zstd,
    Tar,
    Qcow2,
    Vmdk,
    Vdi,
    Vhd,
    Vhdx,
    /// Anything else: a raw image (ISO included).
    Raw,
}

/// How many leading bytes [`detect`] wants (tar's magic sits at offset 257).
pub const SNIFF: usize = 512;

impl Detected {
    /// The `qemu-img -f` name of an image format (`None` for compressions and archives).
    pub fn qemu_format(self) -> Option<&'static str> {
        Some(match self {
            Detected::Qcow2 => "qcow2",
            Detected::Vmdk => "vmdk",
            Detected::Vdi => "vdi",
            Detected::Vhd => "vpc",
            Detected::Vhdx => "vhdx",
            Detected::Raw => "raw",
            Detected::Gzip | Detected::Xz | Detected::Zstd | Detected::Tar => return None,
        })
    }

    /// The program and arguments that decompress this format from stdin to stdout.
    pub fn decompressor(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Detected::Gzip => Some(("gzip", &["-dc"])),
            Detected::Xz => Some(("xz", &["-dc", "-T0"])),
            Detected::Zstd => Some(("zstd", &["-dc", "-q", "--long=31"])),
            _ => None,
        }
    }
}

/// Detects the format of a stream from its first bytes (fewer than [`SNIFF`] is fine).
pub fn detect(head: &[u8]) -> Detected {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &[0x1f, 0x8b]) {
        Detected::Gzip
    } else if at(0, &[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Detected::Xz
    } else if at(0, &[0x28, 0xb5, 0x2f, 0xfd]) {
        Detected::Zstd
    } else if at(0, b"QFI\xfb") {
        Detected::Qcow2
    } else if at(0, b"KDMV") {
        Detected::Vmdk
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        Detected::Vdi
    } else if at(0, b"conectix") {
        Detected::Vhd
    } else if at(0, b"vhdxfile") {
        Detected::Vhdx
    } else if at(0x101, b"ustar") {
        Detected::Tar
    } else {
        Detected::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_pick_the_format() {
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03"), Detected::Qcow2);
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Detected::Gzip);
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]), Detected::Xz);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 1]), Detected::Zstd);
        assert_eq!(detect(b"KDMV...."), Detected::Vmdk);
        assert_eq!(detect(b"conectix"), Detected::Vhd);
        assert_eq!(detect(b"vhdxfile"), Detected::Vhdx);
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(detect(&vdi), Detected::Vdi);
        let mut tar = vec![0u8; 512];
        tar[0x101..0x106].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar), Detected::Tar);
        assert_eq!(detect(b"CD001 raw iso"), Detected::Raw);
        assert_eq!(detect(b""), Detected::Raw);
    }

    #[test]
    fn only_disk_formats_have_qemu_names() {
        assert_eq!(Detected::Vhd.qemu_format(), Some("vpc"));
        assert_eq!(Detected::Gzip.qemu_format(), None);
        assert!(Detected::Xz.decompressor().is_some());
    }
}

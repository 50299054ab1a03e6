#!/usr/bin/env bash
# Build oxivirt's small Linux test guest from Debian packages only.
#
#   scripts/test-guest/build.sh [OUT_DIR]
#
# Outputs (in OUT_DIR): vmlinuz, initrd.img, disk.raw, disk.qcow2, containerdisk/ (OCI image
# layout), push-containerdisk.sh, make-seed.sh, build-info.txt, SHA256SUMS.
# The last line printed on stdout is OUT_DIR (use it as OXIVIRT_TEST_GUEST).
#
# Default OUT_DIR: ${OXIVIRT_CACHE:-$HOME/.cache/oxivirt}/test-guest/<key>, where <key> hashes
# this directory's build inputs (this script, rootfs/, the helper scripts) and the exact Debian
# package versions used. A complete OUT_DIR with the same key is reused as it is.
#
# Environment:
#   OXIVIRT_TEST_GUEST_KERNEL  cloud (default: linux-image-cloud-amd64, fast to boot) or
#                              generic (linux-image-amd64: adds SATA/AHCI, e1000/e1000e,
#                              i6300esb watchdog; ~4 s slower to boot under TCG)
#   OXIVIRT_CACHE              cache root (default $HOME/.cache/oxivirt)
#   OXIVIRT_TEST_GUEST_FORCE=1 rebuild even if the output is complete
#
# Diagnostics go to stderr; stdout carries only the OUT_DIR line.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FORMAT_VERSION=2
FLAVOUR="${OXIVIRT_TEST_GUEST_KERNEL:-cloud}"
CACHE_ROOT="${OXIVIRT_CACHE:-${HOME:-/root}/.cache/oxivirt}/test-guest"

log() { printf 'test-guest: %s\n' "$*" >&2; }
die() { printf 'test-guest: error: %s\n' "$*" >&2; exit 1; }

case "$FLAVOUR" in
  cloud) KERNEL_META=linux-image-cloud-amd64 ;;
  generic) KERNEL_META=linux-image-amd64 ;;
  *) die "OXIVIRT_TEST_GUEST_KERNEL must be cloud or generic, not '$FLAVOUR'" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (needs apt-get to install host tools)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 hosts are supported"

# ---------------------------------------------------------------------------------------------
# apt helpers: install/download, running `apt-get update` only when something is missing.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o APT::Get::Download-Only=false -q)
APT_UPDATED=0
apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  log "apt-get update"
  local i
  for i in 1 2 3 4 5; do
    apt-get "${APT_OPTS[@]}" update >&2 && { APT_UPDATED=1; return 0; }
    sleep $((i * 5))
  done
  die "apt-get update failed"
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_host_pkgs() {
  local p missing=()
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing host tools: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
      "${missing[@]}" >&2; then
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
      "${missing[@]}" >&2
  fi
}

# candidate_versions PKG... -> "pkg=version" lines (empty version if apt has no candidate)
candidate_versions() {
  LC_ALL=C apt-cache policy "$@" 2>/dev/null | awk '
    /^[^ ].*:$/ { p = substr($0, 1, length($0) - 1); next }
    /^  Candidate:/ { v = $2; if (v == "(none)") v = ""; print p "=" v }'
}

# Host tools. grub-pc-bin only brings the BIOS bootloader images; no bootloader is installed on the host.
HOST_PKGS=(cpio gzip binutils dosfstools mtools fdisk e2fsprogs qemu-utils grub-common
  grub-pc-bin perl coreutils xorriso)
ensure_host_pkgs "${HOST_PKGS[@]}"

# ---------------------------------------------------------------------------------------------
# Resolve the guest's Debian packages and their exact versions (they are part of the cache key).
kernel_pkg() {
  LC_ALL=C apt-cache depends "$KERNEL_META" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
KERNEL_PKG="$(kernel_pkg)"
if [ -z "$KERNEL_PKG" ]; then apt_update; KERNEL_PKG="$(kernel_pkg)"; fi
[ -n "$KERNEL_PKG" ] || die "cannot resolve $KERNEL_META to a kernel package"

# Shared-library packages of qemu-guest-agent and dropbear (recursive Depends, libraries only).
lib_pkgs() {
  LC_ALL=C apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends qemu-guest-agent dropbear-bin 2>/dev/null |
    grep -v '^ ' | grep -E '^(lib|zlib1g$)' | grep -v '^lib.*-dev$' | sort -u
}
mapfile -t LIB_PKGS < <(lib_pkgs)
# The UEFI boot chain: Debian's shim (signed by Microsoft's UEFI CA) and GRUB and kernel (signed
# by Debian), so the disk boots under Secure Boot with OVMF's Microsoft keys (OVMF_VARS*.ms.fd).
BOOT_PKGS=(shim-signed grub-efi-amd64-signed)
GUEST_PKGS=("$KERNEL_PKG" busybox-static qemu-guest-agent dropbear-bin openssh-sftp-server
  "${BOOT_PKGS[@]}" "${LIB_PKGS[@]}")

resolve_versions() { mapfile -t PKG_VERSIONS < <(candidate_versions "${GUEST_PKGS[@]}" | sort -u); }
resolve_versions
if [ ${#PKG_VERSIONS[@]} -lt ${#GUEST_PKGS[@]} ] || printf '%s\n' "${PKG_VERSIONS[@]}" | grep -q '=$'; then
  apt_update
  mapfile -t LIB_PKGS < <(lib_pkgs)
  GUEST_PKGS=("$KERNEL_PKG" busybox-static qemu-guest-agent dropbear-bin openssh-sftp-server
    "${BOOT_PKGS[@]}" "${LIB_PKGS[@]}")
  resolve_versions
fi
for pv in "${PKG_VERSIONS[@]}"; do
  [ -n "${pv#*=}" ] || die "no installable version of ${pv%=} in Debian's archive"
done

# ---------------------------------------------------------------------------------------------
# Cache key: build inputs in this directory + package versions + flavour.
key_inputs() {
  echo "format=$FORMAT_VERSION flavour=$FLAVOUR"
  printf '%s\n' "${PKG_VERSIONS[@]}"
  (cd "$SCRIPT_DIR" && find build.sh push-containerdisk.sh make-seed.sh rootfs \
      \( -type f -o -type l \) -print | LC_ALL=C sort | while read -r f; do
      if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(stat -c %a "$f") $(sha256sum <"$f" | cut -c1-64)"; fi
    done)
}
KEY="$(key_inputs | sha256sum | cut -c1-16)"
KEY="${FLAVOUR}-${KEY}"

OUT_DIR="${1:-$CACHE_ROOT/$KEY}"
mkdir -p "$CACHE_ROOT" "$(dirname "$OUT_DIR")"
OUT_DIR="$(cd "$(dirname "$OUT_DIR")" && pwd)/$(basename "$OUT_DIR")"

if [ -e "$OUT_DIR" ] && [ ! -f "$OUT_DIR/.complete" ] && [ -n "$(ls -A "$OUT_DIR" 2>/dev/null)" ]; then
  die "$OUT_DIR exists and is not a test-guest build; refusing to overwrite it"
fi

# One build at a time per cache root (parallel test runs call this concurrently).
exec 9>"$CACHE_ROOT/.lock"
flock 9

if [ "${OXIVIRT_TEST_GUEST_FORCE:-0}" != 1 ] && [ -f "$OUT_DIR/.complete" ] &&
  [ "$(cat "$OUT_DIR/.complete")" = "$KEY" ]; then
  log "up to date: $OUT_DIR (key $KEY)"
  echo "$OUT_DIR"
  exit 0
fi

log "building key $KEY into $OUT_DIR"
START_TS=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/oxivirt-test-guest.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------------------------------------
# Download and extract the guest packages (.debs are cached by file name, which has the version).
DEB_CACHE="$CACHE_ROOT/debs"
mkdir -p "$DEB_CACHE"
chmod 755 "$DEB_CACHE" 2>/dev/null || true
need_download=()
for pv in "${PKG_VERSIONS[@]}"; do
  p="${pv%%=*}" v="${pv#*=}"
  vf="${v//:/%3a}"
  ls "$DEB_CACHE/${p}_${vf}_"*.deb >/dev/null 2>&1 || need_download+=("$p=$v")
done
if [ ${#need_download[@]} -gt 0 ]; then
  log "downloading ${#need_download[@]} packages"
  # apt-get download writes into the current directory; _apt cannot write to root's dirs, so
  # apt falls back to downloading as root (harmless warning, silenced here).
  if ! (cd "$DEB_CACHE" && apt-get "${APT_OPTS[@]}" download "${need_download[@]}" >&2 2> >(grep -v 'unsandboxed' >&2)); then
    apt_update
    (cd "$DEB_CACHE" && apt-get "${APT_OPTS[@]}" download "${need_download[@]}" >&2)
  fi
fi

X="$WORK/x"
mkdir -p "$X"
for pv in "${PKG_VERSIONS[@]}"; do
  p="${pv%%=*}" v="${pv#*=}"
  vf="${v//:/%3a}"
  deb="$(ls "$DEB_CACHE/${p}_${vf}_"*.deb | head -n1)"
  dpkg-deb -x "$deb" "$X"
done

KVER="${KERNEL_PKG#linux-image-}"
[ -f "$X/boot/vmlinuz-$KVER" ] || die "kernel image missing from $KERNEL_PKG"
[ -d "$X/lib/modules/$KVER" ] || die "modules missing from $KERNEL_PKG"

# ---------------------------------------------------------------------------------------------
# The initramfs root.
R="$WORK/rootfs"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib,lib,etc,proc,sys,dev,run,tmp,root,home,mnt,data,var/log,var/lib,media}
chmod 1777 "$R/tmp"
chmod 700 "$R/root"
ln -s ../run "$R/var/run"

# busybox (static) and its applets
install -m 755 "$X/bin/busybox" "$R/bin/busybox"
"$R/bin/busybox" --list-full | while read -r a; do
  [ -e "$R/$a" ] || [ -L "$R/$a" ] || { mkdir -p "$R/$(dirname "$a")"; ln -s /bin/busybox "$R/$a"; }
done
ln -sf bin/busybox "$R/init"

# copy_with_links SRC_ROOT REL_PATH: copy a file into $R keeping the symlink chain
copy_rel() {
  local rel="$1" tgt
  while :; do
    [ -e "$R/$rel" ] || [ -L "$R/$rel" ] && return 0
    mkdir -p "$R/$(dirname "$rel")"
    if [ -L "$X/$rel" ]; then
      tgt="$(readlink "$X/$rel")"
      ln -s "$tgt" "$R/$rel"
      case "$tgt" in /*) rel="${tgt#/}" ;; *) rel="$(dirname "$rel")/$tgt" ;; esac
      rel="$(realpath -m -s --relative-to=/ "/$rel")"
    else
      [ -f "$X/$rel" ] || die "missing $rel in the extracted packages"
      cp -p "$X/$rel" "$R/$rel"
      return 0
    fi
  done
}

LIBDIRS=(lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib usr/lib)
find_lib() {
  local d
  for d in "${LIBDIRS[@]}"; do
    if [ -e "$X/$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  return 1
}
declare -A SEEN_LIB=()
copy_elf() { # copy an ELF binary and, recursively, every library it needs
  local rel="$1" lib lrel
  copy_rel "$rel"
  for lib in $(readelf -d "$X/$rel" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "${SEEN_LIB[$lib]:-}" ] && continue
    SEEN_LIB[$lib]=1
    lrel="$(find_lib "$lib")" || die "$rel needs $lib, which no extracted package provides"
    copy_elf "$lrel"
  done
}
copy_elf usr/sbin/qemu-ga
copy_elf usr/sbin/dropbear
copy_elf usr/bin/dropbearkey
copy_elf usr/bin/dbclient
copy_elf usr/lib/openssh/sftp-server
ln -s openssh/sftp-server "$R/usr/lib/sftp-server"
copy_rel lib64/ld-linux-x86-64.so.2
# glibc's NSS modules are built into libc.so.6 since 2.34; nothing else to copy.

# Kernel modules: the closure of the modules the guest uses, and a load order (deps first).
MODS=(virtio_pci virtio_mmio virtio_blk virtio_net virtio_console virtio_scsi virtio_rng virtio_balloon
  virtio_input scsi_mod sd_mod sr_mod cdrom isofs fat vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8 button
  evdev vsock vmw_vsock_virtio_transport efivarfs
  libata ahci ata_piix e1000 e1000e i6300esb pvpanic_pci)
"$R/bin/busybox" depmod -b "$X" "$KVER"
KM="lib/modules/$KVER"
: >"$WORK/modorder"
declare -A MOD_DONE=()
add_mod() { # add_mod PATH (relative to $KM), deps first
  local m="$1" d
  [ -n "${MOD_DONE[$m]:-}" ] && return 0
  MOD_DONE[$m]=1
  for d in $(awk -F': *' -v m="$m" '$1 == m { print $2 }' "$X/$KM/modules.dep"); do add_mod "$d"; done
  echo "$m" >>"$WORK/modorder"
}
for m in "${MODS[@]}"; do
  # module file names use - or _ interchangeably (virtio-rng.ko, pvpanic-pci.ko)
  path="$(awk -F: -v n="/$m.ko" '{ f = $1; gsub(/-/, "_", f); g = n; gsub(/-/, "_", g) }
    substr(f, length(f) - length(g) + 1) == g { print $1; exit }' "$X/$KM/modules.dep")"
  if [ -z "$path" ]; then
    # built into this kernel, or not available in this flavour
    grep -q "/$m.ko$" "$X/$KM/modules.builtin" 2>/dev/null || log "module $m not in $KERNEL_PKG (skipped)"
    continue
  fi
  add_mod "$path"
done
mkdir -p "$R/$KM"
while read -r m; do
  mkdir -p "$R/$KM/$(dirname "$m")"
  cp "$X/$KM/$m" "$R/$KM/$m"
done <"$WORK/modorder"
cp "$WORK/modorder" "$R/$KM/load-order"
cp "$X/$KM/modules.builtin" "$R/$KM/" 2>/dev/null || true
"$R/bin/busybox" depmod -b "$R" "$KVER"

# The guest's own files (init scripts, NoCloud reader, /etc).
cp -a "$SCRIPT_DIR/rootfs/." "$R/"
chmod 700 "$R/root"
chmod 640 "$R/etc/shadow"

pkgver() { printf '%s\n' "${PKG_VERSIONS[@]}" | awk -F= -v p="$1" '$1 == p { print $2 }'; }
cat >"$R/etc/os-release" <<EOF
PRETTY_NAME="oxivirt test guest ($KVER)"
NAME="oxivirt test guest"
ID=oxivirt-test-guest
ID_LIKE=debian
VERSION_ID="$FORMAT_VERSION"
VERSION="$FORMAT_VERSION ($KEY)"
HOME_URL="https://github.com/oxivirt/oxivirt"
EOF
{
  echo "key=$KEY"
  echo "kernel=$KVER"
  echo "qemu-guest-agent=$(pkgver qemu-guest-agent)"
  echo "dropbear=$(pkgver dropbear-bin)"
  echo "busybox=$(pkgver busybox-static)"
} >"$R/etc/oxivirt-test-guest.info"

mkdir -p "$WORK/out"
# Reproducible outputs: fixed timestamps, ids derived from the key, device-independent cpio.
SDE=946684800   # 2000-01-01 (FAT cannot store 1970)
find "$R" -exec touch -h -d "@$SDE" {} +
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
  gzip -6 -n >"$WORK/out/initrd.img"
cp "$X/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
touch -d "@$SDE" "$WORK/out/vmlinuz" "$WORK/out/initrd.img"
keyuuid() { # keyuuid SALT -> a UUID derived from the key
  printf '%s-%s' "$KEY" "$1" | sha256sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/'
}

# ---------------------------------------------------------------------------------------------
# Bootable disk: GPT, p1 BIOS boot (GRUB i386-pc core.img), p2 ESP (FAT: kernel, initrd,
# shim + signed GRUB as \EFI\BOOT\BOOTX64.EFI + grubx64.efi), p3 ext4 "oxidata" (mounted at /data in the guest).
# Built without loop devices or mounts: sfdisk on the image file, mtools for FAT, mke2fs on a file.
DISK="$WORK/out/disk.raw"
DISK_MB=128
BIOS_START=2048 BIOS_SECTORS=2048              # 1 MiB at 1 MiB
ESP_START=4096 ESP_MB=62                        # 2 MiB .. 64 MiB
DATA_START=$(((2 + ESP_MB) * 2048))
DATA_SECTORS=$(((DISK_MB - 2 - ESP_MB - 1) * 2048))  # leave 1 MiB for the backup GPT
ESP_SERIAL="$(printf '%s' "$KEY" | sha256sum | cut -c1-8 | tr a-f A-F)"
ESP_UUID="${ESP_SERIAL:0:4}-${ESP_SERIAL:4:4}"
CMDLINE="console=tty0 console=ttyS0,115200 quiet oxivirt.boot=disk"

truncate -s "${DISK_MB}M" "$DISK"
sfdisk --quiet --no-reread --no-tell-kernel "$DISK" >/dev/null <<EOF
label: gpt
label-id: $(keyuuid disk)
unit: sectors
start=$BIOS_START, size=$BIOS_SECTORS, type=21686148-6449-6E6F-744E-656564454649, uuid=$(keyuuid p1), name="bios-boot"
start=$ESP_START, size=$((ESP_MB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(keyuuid p2), name="EFI system"
start=$DATA_START, size=$DATA_SECTORS, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(keyuuid p3), name="oxidata"
EOF

cat >"$WORK/grub-bios.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root $ESP_UUID
echo "oxivirt-test-guest: GRUB (BIOS) loading /vmlinuz"
linux /vmlinuz $CMDLINE oxivirt.firmware=bios
initrd /initrd.img
boot
EOF
cat >"$WORK/grub-efi.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ESP_UUID
set gfxpayload=keep
echo "oxivirt-test-guest: GRUB (UEFI) loading /vmlinuz"
linux /vmlinuz $CMDLINE oxivirt.firmware=uefi
initrd /initrd.img
boot
EOF
GRUB_MODS_COMMON="part_gpt part_msdos fat search search_fs_uuid linux echo test"
grub-mkimage -O i386-pc -o "$WORK/core.img" -c "$WORK/grub-bios.cfg" -p /boot/grub \
  biosdisk serial terminal $GRUB_MODS_COMMON
# UEFI: shim as the removable-media loader \EFI\BOOT\BOOTX64.EFI; it verifies and starts
# grubx64.efi from its own directory. Debian's signed GRUB is monolithic (every module built in)
# with the built-in prefix \EFI\debian, so it reads \EFI\debian\grub.cfg (without that
# directory it would first search for /.disk/info and print errors); under Secure Boot it lets
# only a kernel signed by a key shim trusts run (Debian's is). The same chain boots without
# Secure Boot.
SHIM="$X/usr/lib/shim/shimx64.efi.signed"
GRUB_EFI="$X/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
[ -f "$SHIM" ] || die "shimx64.efi.signed missing from shim-signed"
[ -f "$GRUB_EFI" ] || die "grubx64.efi.signed missing from grub-efi-amd64-signed"
CORE_SECTORS=$((($(stat -c %s "$WORK/core.img") + 511) / 512))
[ "$CORE_SECTORS" -le "$BIOS_SECTORS" ] || die "core.img does not fit the BIOS boot partition"

# MBR boot code (first 440 bytes; the protective MBR's partition table stays), then core.img,
# patched as grub-bios-setup would: boot.img's kernel sector (0x5c), boot drive 0xff (0x64),
# the floppy probe NOP'd (0x66), and diskboot's blocklist (last 12 bytes of core.img's 1st sector).
dd if=/usr/lib/grub/i386-pc/boot.img of="$DISK" bs=440 count=1 conv=notrunc status=none
perl -e '
  my ($disk, $lba, $n) = @ARGV;
  open(my $f, "+<:raw", $disk) or die $!;
  seek($f, 0x5c, 0); print $f pack("Q<", $lba);
  seek($f, 0x64, 0); print $f pack("C", 0xff);
  seek($f, 0x66, 0); print $f pack("CC", 0x90, 0x90);
  close($f);' "$DISK" "$BIOS_START" "$CORE_SECTORS"
dd if="$WORK/core.img" of="$DISK" bs=512 seek="$BIOS_START" conv=notrunc status=none
perl -e '
  my ($disk, $lba, $n) = @ARGV;
  open(my $f, "+<:raw", $disk) or die $!;
  seek($f, $lba * 512 + 512 - 12, 0);
  print $f pack("Q<S<S<", $lba + 1, $n - 1, 0x820);
  close($f);' "$DISK" "$BIOS_START" "$CORE_SECTORS"

# ESP
ESP="$WORK/esp.img"
truncate -s "${ESP_MB}M" "$ESP"
mkfs.vfat --invariant -n OXIVIRTBOOT -i "$ESP_SERIAL" "$ESP" >/dev/null
export MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=$SDE
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/EFI/debian ::/boot ::/boot/grub
printf 'oxivirt test guest %s\n' "$KEY" >"$WORK/marker"
cp "$SHIM" "$WORK/BOOTX64.EFI"
cp "$GRUB_EFI" "$WORK/grubx64.efi"
touch -d "@$SDE" "$WORK/BOOTX64.EFI" "$WORK/grubx64.efi" "$WORK/grub-efi.cfg" "$WORK/marker"
mcopy -m -i "$ESP" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -m -i "$ESP" "$WORK/grubx64.efi" ::/EFI/BOOT/grubx64.efi
mcopy -m -i "$ESP" "$WORK/grub-efi.cfg" ::/EFI/debian/grub.cfg
mcopy -m -i "$ESP" "$WORK/out/vmlinuz" ::/vmlinuz
mcopy -m -i "$ESP" "$WORK/out/initrd.img" ::/initrd.img
mcopy -m -i "$ESP" "$WORK/marker" ::/oxivirt-test-guest.txt
dd if="$ESP" of="$DISK" bs=1M seek=2 conv=notrunc,sparse status=none

# data partition (ext4, label oxidata, empty; no -d: mke2fs would copy the files' ctimes)
E2FSPROGS_FAKE_TIME=$SDE mke2fs -q -F -t ext4 -L oxidata -O ^has_journal -U "$(keyuuid p3fs)" \
  -E "hash_seed=$(keyuuid p3hash)" "$WORK/data.img" "$((DATA_SECTORS / 2))k" >&2
dd if="$WORK/data.img" of="$DISK" bs=512 seek="$DATA_START" conv=notrunc,sparse status=none

qemu-img convert -q -f raw -O qcow2 -c "$DISK" "$WORK/out/disk.qcow2"

# ---------------------------------------------------------------------------------------------
# containerDisk: OCI image layout with one layer holding /disk/disk.qcow2 owned by 107:107.
CD="$WORK/out/containerdisk"
mkdir -p "$CD/blobs/sha256" "$WORK/layer/disk"
cp "$WORK/out/disk.qcow2" "$WORK/layer/disk/disk.qcow2"
chmod 555 "$WORK/layer/disk"; chmod 444 "$WORK/layer/disk/disk.qcow2"
tar --sort=name --mtime=@0 --owner=107 --group=107 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$WORK/layer" -cf "$WORK/layer.tar" disk
DIFF_ID="$(sha256sum <"$WORK/layer.tar" | cut -c1-64)"
gzip -n -6 <"$WORK/layer.tar" >"$WORK/layer.tar.gz"
blob() { # blob FILE -> prints "digest size", stores the blob
  local d s
  d="$(sha256sum <"$1" | cut -c1-64)"; s="$(stat -c %s "$1")"
  cp "$1" "$CD/blobs/sha256/$d"
  echo "$d $s"
}
read -r LAYER_D LAYER_S < <(blob "$WORK/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"org.opencontainers.image.title":"oxivirt-test-guest","io.oxivirt.test-guest.key":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/test-guest/build.sh"}]}' \
  "$KEY" "$DIFF_ID" >"$WORK/config.json"
read -r CONFIG_D CONFIG_S < <(blob "$WORK/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}],"annotations":{"org.opencontainers.image.title":"oxivirt-test-guest"}}' \
  "$CONFIG_D" "$CONFIG_S" "$LAYER_D" "$LAYER_S" >"$WORK/manifest.json"
read -r MANIFEST_D MANIFEST_S < <(blob "$WORK/manifest.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}\n' \
  "$MANIFEST_D" "$MANIFEST_S" >"$CD/index.json"
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$CD/oci-layout"

install -m 755 "$SCRIPT_DIR/push-containerdisk.sh" "$WORK/out/push-containerdisk.sh"
install -m 755 "$SCRIPT_DIR/make-seed.sh" "$WORK/out/make-seed.sh"

# ---------------------------------------------------------------------------------------------
{
  echo "key=$KEY"
  echo "flavour=$FLAVOUR"
  echo "kernel=$KVER"
  echo "kernel_cmdline=console=ttyS0 quiet"
  echo "disk_cmdline=$CMDLINE"
  echo "esp_uuid=$ESP_UUID"
  echo "containerdisk_manifest=sha256:$MANIFEST_D"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - START_TS))s"
  echo "packages:"
  printf '  %s\n' "${PKG_VERSIONS[@]}"
  echo "modules:"
  sed 's/^/  /' "$WORK/modorder"
} >"$WORK/out/build-info.txt"
(cd "$WORK/out" && sha256sum vmlinuz initrd.img disk.raw disk.qcow2 >SHA256SUMS)

if [ -e "$OUT_DIR" ]; then
  # only ever replace a previous build (never an unrelated directory someone passed in)
  if [ -f "$OUT_DIR/.complete" ] || [ -z "$(ls -A "$OUT_DIR")" ]; then rm -rf "$OUT_DIR"
  else die "$OUT_DIR exists and is not a test-guest build; refusing to overwrite it"; fi
fi
mv "$WORK/out" "$OUT_DIR" 2>/dev/null || { mkdir -p "$OUT_DIR"; cp -a "$WORK/out/." "$OUT_DIR/"; }
chmod 755 "$OUT_DIR"
echo "$KEY" >"$OUT_DIR/.complete"

# Keep the newest builds of this flavour in the cache (older keys are garbage once inputs changed)
# and drop cached .debs superseded by the versions just used.
if [ "$(dirname "$OUT_DIR")" = "$CACHE_ROOT" ]; then
  KEEP="${OXIVIRT_TEST_GUEST_KEEP:-3}"
  ls -1dt "$CACHE_ROOT/$FLAVOUR"-* 2>/dev/null | while read -r old; do
    [ -f "$old/.complete" ] || continue
    echo "$old"
  done | tail -n +$((KEEP + 1)) | while read -r old; do log "pruning old build $old"; rm -rf "$old"; done
fi
for pv in "${PKG_VERSIONS[@]}"; do
  p="${pv%%=*}" v="${pv#*=}"
  for deb in "$DEB_CACHE/${p}_"*.deb; do
    [ -e "$deb" ] || continue
    case "$deb" in "$DEB_CACHE/${p}_${v//:/%3a}_"*) ;; *) rm -f "$deb" ;; esac
  done
done
log "done in $(($(date +%s) - START_TS))s: $(cd "$OUT_DIR" && du -h --apparent-size vmlinuz initrd.img disk.raw disk.qcow2 | tr '\t\n' '= ')"
echo "$OUT_DIR"

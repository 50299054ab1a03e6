#!/usr/bin/env bash
# A containerDisk whose guest halts at once, for `oxivirt-bench --vms --vm-burst-image`
# (issue 4's burst benchmark: "50 VMs created at 10/s with a guest that halts at once").
#
#   halt-containerdisk.sh OUT_DIR
#
# Writes OUT_DIR/containerdisk/, an OCI image layout with one layer holding /disk/disk.img
# (owned by 107:107 as the manual's containerDisk format asks): a 1 MiB raw disk whose boot
# sector disables interrupts and halts (`cli; hlt; jmp $-1`). After the firmware's POST the
# vCPU sleeps for good, so the guest costs nothing more while the burst goes on (a diskless
# guest instead runs SeaBIOS's boot-retry loop, which under TCG keeps a few ms/s busy).
# Push it with scripts/test-guest/push-containerdisk.sh -d OUT_DIR/containerdisk REF.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
out=$1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd_dir="$out/containerdisk"
rm -rf "$cd_dir"
mkdir -p "$cd_dir/blobs/sha256" "$work/layer/disk"

disk="$work/layer/disk/disk.img"
truncate -s 1M "$disk"
printf '\xfa\xf4\xeb\xfd' | dd of="$disk" conv=notrunc status=none
printf '\x55\xaa' | dd of="$disk" bs=1 seek=510 conv=notrunc status=none
chmod 555 "$work/layer/disk"
chmod 444 "$disk"
tar --sort=name --mtime=@0 --owner=107 --group=107 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$work/layer" -cf "$work/layer.tar" disk
diff_id="$(sha256sum <"$work/layer.tar" | cut -c1-64)"
gzip -n -6 <"$work/layer.tar" >"$work/layer.tar.gz"

blob() { # blob FILE -> prints "digest size", stores the blob
  local d s
  d="$(sha256sum <"$1" | cut -c1-64)"
  s="$(stat -c %s "$1")"
  cp "$1" "$cd_dir/blobs/sha256/$d"
  echo "$d $s"
}
read -r layer_d layer_s < <(blob "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"org.opencontainers.image.title":"oxivirt-halt"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/bench/halt-containerdisk.sh"}]}' \
  "$diff_id" >"$work/config.json"
read -r config_d config_s < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config_d" "$config_s" "$layer_d" "$layer_s" >"$work/manifest.json"
read -r manifest_d manifest_s < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}\n' \
  "$manifest_d" "$manifest_s" >"$cd_dir/index.json"
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$cd_dir/oci-layout"
echo "$cd_dir"

#!/usr/bin/env bash
# Make a cloud-init seed image for the test guest (or any cloud-init guest).
#
#   make-seed.sh [-f nocloud|configdrive] [-t iso|vfat] -o OUT [-u USER_DATA] [-m META_DATA]
#                [-n NETWORK_CONFIG]
#
# nocloud (default): volume label "cidata" with user-data, meta-data (default: an instance-id),
# network-config. configdrive: label "config-2" with openstack/latest/{user_data,meta_data.json,
# network_data.json} (-m/-n are then JSON). -t vfat makes a FAT image instead of ISO 9660.
# Needs xorriso (iso) or dosfstools+mtools (vfat).
set -euo pipefail
format=nocloud type=iso out="" ud="" md="" nc=""
while getopts "f:t:o:u:m:n:h" o; do
  case "$o" in
    f) format=$OPTARG ;; t) type=$OPTARG ;; o) out=$OPTARG ;;
    u) ud=$OPTARG ;; m) md=$OPTARG ;; n) nc=$OPTARG ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { sed -n '2,12p' "$0" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
case "$format" in
  nocloud)
    label=cidata; root=$tmp
    if [ -n "$md" ]; then cp "$md" "$root/meta-data"; else echo "instance-id: iid-$(date +%s%N)" >"$root/meta-data"; fi
    if [ -n "$ud" ]; then cp "$ud" "$root/user-data"; else : >"$root/user-data"; fi
    [ -z "$nc" ] || cp "$nc" "$root/network-config"
    ;;
  configdrive)
    label=config-2; root=$tmp; d=$root/openstack/latest; mkdir -p "$d"
    if [ -n "$md" ]; then cp "$md" "$d/meta_data.json"
    else printf '{"uuid": "iid-%s", "hostname": "oxivirt-test-guest"}\n' "$(date +%s%N)" >"$d/meta_data.json"; fi
    [ -z "$ud" ] || cp "$ud" "$d/user_data"
    [ -z "$nc" ] || cp "$nc" "$d/network_data.json"
    ;;
  *) echo "make-seed.sh: unknown format $format" >&2; exit 2 ;;
esac
rm -f "$out"
case "$type" in
  iso) xorriso -as mkisofs -quiet -o "$out" -V "$label" -J -r "$root" 2>/dev/null ;;
  vfat)
    truncate -s 2M "$out"; mkfs.vfat -n "$(echo "$label" | tr a-z A-Z)" "$out" >/dev/null
    (cd "$root" && find . -mindepth 1 -type d | sed 's#^\./#::/#' | xargs -r env MTOOLS_SKIP_CHECK=1 mmd -i "$out"
     find . -type f | while read -r f; do MTOOLS_SKIP_CHECK=1 mcopy -i "$out" "$f" "::/${f#./}"; done)
    ;;
  *) echo "make-seed.sh: unknown type $type" >&2; exit 2 ;;
esac

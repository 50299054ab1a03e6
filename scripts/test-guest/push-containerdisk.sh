#!/usr/bin/env bash
# Push the test guest's containerDisk (an OCI image layout) to a registry over plain HTTP, with
# curl only (OCI distribution API: HEAD/POST/PUT blobs, PUT manifest).
#
#   push-containerdisk.sh [-d LAYOUT_DIR] [-u USER:PASSWORD] [-s] REGISTRY/REPO:TAG
#
# LAYOUT_DIR defaults to containerdisk/ next to this script. -s uses https instead of http.
# Example: push-containerdisk.sh 127.0.0.1:5000/oxivirt/test-guest:latest
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
layout="$here/containerdisk" auth=() scheme=http
while getopts "d:u:sh" o; do
  case "$o" in
    d) layout=$OPTARG ;; u) auth=(-u "$OPTARG") ;; s) scheme=https ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
ref=$1
registry=${ref%%/*}
rest=${ref#*/}
[ "$registry" != "$ref" ] || { echo "push-containerdisk.sh: REF must be REGISTRY/REPO:TAG" >&2; exit 2; }
case "$rest" in *@*) echo "push-containerdisk.sh: push by tag, not digest" >&2; exit 2 ;; esac
if [[ "${rest##*/}" == *:* ]]; then repo=${rest%:*} tag=${rest##*:}; else repo=$rest tag=latest; fi
base="$scheme://$registry"
[ -f "$layout/index.json" ] || { echo "push-containerdisk.sh: no OCI layout in $layout" >&2; exit 1; }

curl_() { curl -sS --fail-with-body "${auth[@]}" "$@"; }

manifest_digest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$layout/index.json" | head -n1 | cut -d'"' -f4)
manifest="$layout/blobs/sha256/${manifest_digest#sha256:}"
mtype=$(grep -o '"mediaType":"[^"]*"' "$manifest" | head -n1 | cut -d'"' -f4)

push_blob() {
  local digest=$1 file="$layout/blobs/sha256/${1#sha256:}" code loc sep
  code=$(curl -sS "${auth[@]}" -o /dev/null -w '%{http_code}' -I "$base/v2/$repo/blobs/$digest")
  if [ "$code" = 200 ]; then echo "blob $digest: already present" >&2; return 0; fi
  loc=$(curl_ -o /dev/null -D - -X POST "$base/v2/$repo/blobs/uploads/" | tr -d '\r' |
    awk 'tolower($1) == "location:" { print $2 }')
  [ -n "$loc" ] || { echo "push-containerdisk.sh: no upload location from $registry" >&2; exit 1; }
  case "$loc" in /*) loc="$base$loc" ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl_ -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$file" "$loc${sep}digest=$digest"
  echo "blob $digest: pushed ($(stat -c %s "$file") bytes)" >&2
}

for d in $(grep -o '"digest":"sha256:[0-9a-f]*"' "$manifest" | cut -d'"' -f4); do push_blob "$d"; done
curl_ -o /dev/null -X PUT -H "Content-Type: $mtype" --data-binary "@$manifest" "$base/v2/$repo/manifests/$tag"
echo "pushed $ref ($manifest_digest)" >&2
echo "$manifest_digest"

#!/bin/sh
# cross.static_size: the static command, stripped, must stay under the
# edge targets' budget (issue #17: 2 MiB on armhf, arm64 and s390x).
#   sh static_size.sh STRIP OPLOG LIMIT_KIB
set -eu
strip=$1 bin=$2 limit=$3
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$strip" -o "$tmp" "$bin"
kib=$(($(wc -c <"$tmp") / 1024))
echo "static oplog: $kib KiB stripped (budget $limit KiB)"
[ "$kib" -lt "$limit" ] || { echo "over the budget by $((kib - limit + 1)) KiB: README, Edge targets, says where the bytes go" >&2; exit 1; }

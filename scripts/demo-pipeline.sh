#!/usr/bin/env bash
# Runs a file through the real
# pipeline with the `kura` tool. It encodes FILE (default: 16 MiB of random bytes) into a
# shard directory, destroys 2 of the 6 shards of every stripe (deletes one, corrupts one),
# decodes it back and checks that the bytes match.
# Usage: scripts/demo-pipeline.sh [FILE] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
apt_install python3 python3

keep=0; file=""
for a in "$@"; do case "$a" in --keep) keep=1 ;; *) file=$a ;; esac; done
work=$(mktemp -d /tmp/kura-run.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT

log "building kura (release)"
cargo build -q --release -p kura-client --bin kura
kura=target/release/kura

if [ -z "$file" ]; then
  file=$work/random.bin
  head -c $((16 << 20)) /dev/urandom > "$file"
fi
store=$work/store
log "encoding $file ($(stat -c %s "$file") bytes) into $store (k=4, m=2)"
start=$(date +%s.%N)
cap=$("$kura" encode "$file" --store "$store")
end=$(date +%s.%N)
echo "capability: $cap"
awk -v s="$start" -v e="$end" -v b="$(stat -c %s "$file")" 'BEGIN { printf "encoded in %.2f s (%.0f MB/s, including fsync of every shard file)\n", e - s, b / (e - s) / 1e6 }'
echo "stripes: $(ls "$store/headers" | wc -l), shard files: $(find "$store/shards" -type f | wc -l)"

log "destroying 2 shards of every stripe: one deleted, one corrupted"
python3 - "$store" <<'PY'
import os, sys
store = sys.argv[1]
for n, name in enumerate(sorted(os.listdir(os.path.join(store, "headers")))):
    h = open(os.path.join(store, "headers", name), "rb").read()
    addrs = [h[12 + 32 * i: 44 + 32 * i].hex() for i in range((len(h) - 12) // 32)]
    path = lambda a: os.path.join(store, "shards", a[:2], a)
    gone, bad = addrs[n % len(addrs)], addrs[(n + 1) % len(addrs)]
    if os.path.exists(path(gone)): os.remove(path(gone))
    if os.path.exists(path(bad)):
        b = bytearray(open(path(bad), "rb").read()); b[0] ^= 0xFF
        open(path(bad), "wb").write(bytes(b))
PY

out=$work/decoded.bin
log "decoding"
"$kura" decode "$cap" --store "$store" -o "$out" 2> "$work/decode.log" || { cat "$work/decode.log"; exit 1; }
echo "corrupt shards detected and skipped: $(grep -c corrupt "$work/decode.log" || true)"
a=$(sha256sum < "$file" | cut -d' ' -f1); b=$(sha256sum < "$out" | cut -d' ' -f1)
echo "sha256 in:  $a"
echo "sha256 out: $b"
[ "$a" = "$b" ] && log "the file came back byte-exact from 4 of 6 shards per stripe" || { log "MISMATCH"; exit 1; }
[ "$keep" = 1 ] && log "kept $work"
exit 0

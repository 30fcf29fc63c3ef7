#!/usr/bin/env bash
# Kura's main command: a local network of kura-relay processes on 127.0.0.1, each serving
# the web page, its /bootstrap document and /metrics. Ctrl-C stops them all.
# Usage: scripts/run.sh [--relays N] [--dir DIR] [--http-port PORT]
#   N relays (default 3); data under DIR (default ./devnet); HTTP on PORT, PORT+1, ...
#   (default 8080). Relay i listens on TCP/QUIC/WS/WebRTC-direct ports 4100+10*i ...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
apt_install python3 python3

relays=3; dir=devnet; http=8080
while [ $# -gt 0 ]; do
  case "$1" in
    --relays) relays=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --http-port) http=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

log "building kura-relay (release; the first build takes several minutes)"
cargo build -q --release -p kura-relay --bin kura-relay
bin=target/release/kura-relay
mkdir -p "$dir"
pids=()
cleanup() {
  trap - EXIT INT TERM
  log "stopping ${#pids[@]} relays"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit 0
}
trap cleanup EXIT INT TERM

bootstrap=""
for i in $(seq 0 $((relays - 1))); do
  base=$((4100 + 10 * i))
  args=(--data-dir "$dir/relay-$i" --http "127.0.0.1:$((http + i))"
        --listen "/ip4/127.0.0.1/tcp/$base" --listen "/ip4/127.0.0.1/udp/$base/quic-v1"
        --listen "/ip4/127.0.0.1/udp/$((base + 1))/webrtc-direct" --listen "/ip4/127.0.0.1/tcp/$((base + 2))/ws")
  if [ -n "$bootstrap" ]; then args+=(--bootstrap "$bootstrap"); fi
  out="$dir/relay-$i.ready"; rm -f "$out"
  "$bin" "${args[@]}" > "$out" 2> "$dir/relay-$i.log" &
  pids+=($!)
  # The relay prints one JSON line on stdout once it listens everywhere.
  for _ in $(seq 600); do [ -s "$out" ] && break; kill -0 "${pids[-1]}" 2>/dev/null || break; sleep 0.1; done
  [ -s "$out" ] || { log "relay $i did not start:"; tail -n 20 "$dir/relay-$i.log"; exit 1; }
  ready=$(head -n 1 "$out")
  peer=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["peer_id"])' "$ready")
  echo "relay $i: peer $peer, page http://127.0.0.1:$((http + i))/, log $dir/relay-$i.log"
  if [ -z "$bootstrap" ]; then bootstrap="/ip4/127.0.0.1/tcp/$base/p2p/$peer"; fi
done
echo
echo "bootstrap address: $bootstrap"
echo "bootstrap document: http://127.0.0.1:$http/bootstrap"
echo "metrics: http://127.0.0.1:$http/metrics"
echo "Ctrl-C stops the network."
wait

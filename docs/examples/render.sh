#!/usr/bin/env bash
# Re-render the example performances in this folder with the shipped melody model.
# Same patch + seed + events => the same MIDI and WAV, byte for byte, on the same machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
render() {  # name patch seconds seed [events]
  local name=$1 patch=$2 seconds=$3 seed=$4 events=${5:-}
  "${PYTHON:-python3}" -m livegen render "$patch" --seconds "$seconds" --seed "$seed" --no-visuals --out "$out/$name" ${events:+--events "$events"}
  cp "$out/$name/performance.mid" "docs/examples/$name.mid"
  cp "$out/$name/performance.wav" "docs/examples/$name.wav"
}
render improvise          patches/default.toml            20 1
render call-and-response  patches/call-and-response.toml  27 1 docs/examples/call-and-response.events
render duet               docs/examples/duet.toml         20 2
rm -r "$out"

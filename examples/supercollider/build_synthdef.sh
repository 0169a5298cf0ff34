#!/bin/sh
# Regenerates livegen.scsyndef (the compiled SynthDef that livegen sends to scsynth) from
# livegen.scd, with sclang and no display:
#     sh examples/supercollider/build_synthdef.sh
# Needs sclang (Debian/Ubuntu: apt-get install --no-install-recommends supercollider-language).
# sclang is a Qt program: QT_QPA_PLATFORM=offscreen lets it start without an X server, and
# its QtWebEngine refuses to start as root unless its sandbox is switched off.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v sclang >/dev/null 2>&1; then
    echo "build_synthdef.sh: sclang not found (apt-get install --no-install-recommends supercollider-language)" >&2
    exit 1
fi
export QT_QPA_PLATFORM=offscreen
if [ "$(id -u)" = 0 ]; then
    export QTWEBENGINE_DISABLE_SANDBOX=1
fi
# sclang stays up after an error in a script, so it gets two minutes at most.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! timeout 120 sclang "$here/write_synthdef.scd" >"$log" 2>&1; then
    grep -E "ERROR|error|wrote" "$log" >&2 || tail -n 20 "$log" >&2
    echo "build_synthdef.sh: sclang failed (its messages are above)" >&2
    exit 1
fi
grep "^wrote " "$log"

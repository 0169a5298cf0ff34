#!/usr/bin/env bash
# Set up livegen on a Debian/Ubuntu machine: system packages (when we can install them),
# a virtual environment in .venv with the pinned CPU build of torch, and livegen itself.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh test     + what the test suite needs (JACK, Xvfb, ffmpeg, pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

WANT=${1:-run}
PKGS="libportaudio2"
if [ "$WANT" = "test" ]; then
  # the servers and the real peer programs the tests talk to: JACK, X, ffmpeg; liblo's
  # oscsend/oscdump, Pure Data, SuperCollider (scsynth, and sclang to rebuild the example
  # SynthDef), FluidSynth and TiMidity++ with General MIDI sounds
  PKGS="$PKGS jackd2 xvfb ffmpeg liblo-tools puredata-core supercollider-server supercollider-language"
  PKGS="$PKGS fluidsynth timgm6mb-soundfont timidity freepats"
fi
TORCH_SPEC=${LIVEGEN_TORCH:-torch==2.13.0}   # the pinned CPU build; override for CUDA machines

missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "setup: installing system packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: cannot install$missing (not root, no sudo); related features and tests will be skipped" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
python -m pip install -q "$TORCH_SPEC"
if [ "$WANT" = "test" ]; then
  python -m pip install -q -e ".[test]"
else
  python -m pip install -q -e ".[video]"
fi

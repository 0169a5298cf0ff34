#!/usr/bin/env bash
# Set up and play: the live rig when there is a screen or a sound card, else a render.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
. .venv/bin/activate
PATCH=${1:-patches/default.toml}
has_display=""; [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && has_display=1
has_audio=$(python - <<'PY'
try:
    import sounddevice as sd
    print(1 if any(d["max_output_channels"] > 0 for d in sd.query_devices()) else "")
except Exception:
    print("")
PY
)
if [ -n "$has_display" ] || [ -n "$has_audio" ]; then
  flags=()
  [ -z "$has_display" ] && flags+=(--no-window)
  [ -z "$has_audio" ] && flags+=(--no-audio)
  exec livegen play "$PATCH" "${flags[@]}"
else
  echo "play: no display and no audio device here; rendering 30 s to render-out/ instead" >&2
  exec livegen render "$PATCH" --seconds 30 --seed 1 --out render-out
fi

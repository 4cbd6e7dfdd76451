#!/usr/bin/env bash
# Starts the player on the bundled demo content.
# With a desktop (DISPLAY or WAYLAND_DISPLAY set) it opens a window; otherwise it
# runs headless and writes the picture to a PNG file, whose path it prints.
# Usage: scripts/demo.sh [--seconds N]   (stop with Ctrl-C)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
VENV="${PANEL_VENV:-$ROOT/.venv}"
exec "$VENV/bin/panel-player" demo "$@"

#!/usr/bin/env bash
# Runs the whole test suite, then the benchmarks as a quick smoke test.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --tests
VENV="${PANEL_VENV:-$ROOT/.venv}"
cd "$ROOT"
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy GPIOZERO_PIN_FACTORY=mock
"$VENV/bin/python" -m pytest "$@"
if [ $# -eq 0 ]; then
    "$VENV/bin/python" -m bench --smoke
fi

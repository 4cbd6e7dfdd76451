#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules where a wrong line harms the street:
# alert board, playlists, CAP, state store, brightness, schedule, signatures, screen.
# Slow (minutes per module): not part of scripts/test.sh nor of every CI run.
# Usage: scripts/mutation.sh [MODULE...] [--changed REF] [--fail-under PCT] [--report FILE]
# See docs/mutation.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --tests
VENV="${PANEL_VENV:-$ROOT/.venv}"
if ! "$VENV/bin/python" -c "import mutmut" 2>/dev/null; then
    echo "==> installing the mutation extra (mutmut) into $VENV" >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test,mutation]"
fi
cd "$ROOT"
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy GPIOZERO_PIN_FACTORY=mock
exec nice -n 10 "$VENV/bin/python" scripts/mutation.py "$@"

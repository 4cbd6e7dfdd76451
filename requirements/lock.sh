#!/usr/bin/env bash
# Regenerates requirements/panel.txt, console.txt and test.txt from pyproject.toml
# and requirements/build.in with pip-tools, every file of every pinned version
# hashed, from PyPI only (no local pip configuration, index or wheel folder).
#
#   requirements/lock.sh             lock what the ranges in pyproject.toml allow today
#   requirements/lock.sh --upgrade   (or -P NAME) passed on to pip-compile
#
# Run it with the Python the panels run (3.11: Raspberry Pi OS Bookworm); the
# resolution is made for that version. pip-tools is installed in a throw-away
# virtual environment (PIPTOOLS_VENV, default /tmp/panel-player-piptools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${PIPTOOLS_VENV:-/tmp/panel-player-piptools}"
PYTHON="${PANEL_PYTHON:-python3}"
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX
[ -x "$TOOLS/bin/pip-compile" ] || { "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/pip" install -q pip-tools; }
export CUSTOM_COMPILE_COMMAND="requirements/lock.sh"
cd "$ROOT"
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
        --index-url https://pypi.org/simple "$@")
"$TOOLS/bin/pip-compile" "${common[@]}" -o requirements/panel.txt pyproject.toml requirements/build.in
# console.txt: a central server's or laptop's `panelctl console` (docs/console.md).
"$TOOLS/bin/pip-compile" "${common[@]}" --extra console -c requirements/panel.txt \
    -o requirements/console.txt pyproject.toml requirements/build.in
"$TOOLS/bin/pip-compile" "${common[@]}" --extra test --extra console -c requirements/panel.txt \
    -o requirements/test.txt pyproject.toml requirements/build.in

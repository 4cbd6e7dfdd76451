#!/usr/bin/env bash
# Sets up what panel-player needs to run from this checkout: Debian packages
# (only those missing), a virtual environment in .venv, and the package itself.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PANEL_VENV:-$ROOT/.venv}"
WITH_TESTS="${1:-}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
    # apt_install PKG... : installs the Debian packages that are missing.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        say "please install: ${missing[*]} (no apt-get on this machine)"
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

debs=(python3-venv python3-pip fonts-dejavu-core)
if [ "$WITH_TESTS" = "--tests" ]; then
    # mosquitto: the tests talk to a real broker; systemd: systemd-analyze verify on our unit;
    # xfonts-base: real pixel fonts (PCF, fixed sizes) for the text and alert screen tests;
    # tesseract-ocr, tesseract-ocr-fra: OCR reads French slides back from LED-sized frames;
    # xvfb: an X server for the sdl output's tests (what its window shows, read back).
    debs+=(mosquitto mosquitto-clients systemd xfonts-base tesseract-ocr tesseract-ocr-fra xvfb)
fi
if command -v dpkg-query >/dev/null; then
    apt_install "${debs[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.panel-player-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ]; then
    say "installing panel-player and its Python packages into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
    touch "$stamp"
fi

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
    # xvfb: an X server for the sdl output's tests (what its window shows, read back);
    # strace: the player's real system calls checked against the unit's SystemCallFilter;
    # openssh-client: ssh-keygen, the host keys a cloned card gets (first-boot tests);
    # chromium: the web console's end-to-end tests drive it with playwright;
    # postgresql: the console's history tests run a throw-away server of their own
    # (tests/fixtures_postgres.py: /usr/lib/postgresql/*/bin, a temporary folder, a free port);
    # rabbitmq-server: the end-to-end tests also run on RabbitMQ's MQTT plugin (MQTT 3.1.1), one
    # node per test session started by tests/fixtures_rabbit.py (its own folder, node name, ports).
    debs+=(mosquitto mosquitto-clients systemd xfonts-base tesseract-ocr tesseract-ocr-fra xvfb strace
           openssh-client chromium postgresql rabbitmq-server)
fi
if command -v dpkg-query >/dev/null; then
    apt_install "${debs[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in $VENV"
    python3 -m venv "$VENV"
fi
# The locked set (requirements/, every file hashed) then panel-player itself from this
# checkout, editable (a .pth naming the checkout) and without resolving anything: two
# machines bootstrapped a month apart get the same packages. The lock is installed again
# when it, pyproject.toml or setup.py changes.
lock_sum() { cat "$1" "$ROOT/pyproject.toml" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1; }
lock="$ROOT/requirements/panel.txt"
[ "$WITH_TESTS" = "--tests" ] && lock="$ROOT/requirements/test.txt"
stamp="$VENV/.panel-player-installed"
want="$(lock_sum "$lock")"
have="$(cat "$stamp" 2>/dev/null || true)"
# test.txt holds panel.txt's versions and more: a venv made for the tests runs the demo as it is.
[ "$WITH_TESTS" = "--tests" ] || [ "$have" != "$(lock_sum "$ROOT/requirements/test.txt")" ] || want="$have"
if [ "$have" != "$want" ]; then
    say "installing panel-player and its locked Python packages ($(basename "$lock")) into $VENV"
    # PIP_CONFIG_FILE=/dev/null: the hashes are PyPI's; a pip.conf naming another index
    # (piwheels on Raspberry Pi OS) would offer files with other hashes.
    PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --require-hashes -r "$lock"
    # compat: the editable install is a .pth naming the checkout, as it always was here
    # (setuptools warns that this mode is transitional: its notice is shown only on failure).
    log="$(mktemp)"
    if ! PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --no-deps --no-build-isolation --config-settings editable_mode=compat -e "$ROOT" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    echo "$want" >"$stamp"
fi

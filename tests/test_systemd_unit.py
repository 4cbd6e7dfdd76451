"""systemd/panel-player.service: its keys, and systemd-analyze verify on it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "panel-player.service"
EXEC = "/opt/panel-player/venv/bin/panel-player run --config /etc/panel-player/config.yaml"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ``(key, value)`` lists (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), [])
            continue
        assert current is not None and "=" in line, f"stray line: {raw!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


def test_unit_keys() -> None:
    unit = parse_unit(UNIT.read_text())
    s, u = unit["Service"], unit["Unit"]
    assert one(u, "StartLimitIntervalSec") == "0"
    assert one(s, "Type") == "notify" and one(s, "NotifyAccess") == "main"
    assert one(s, "ExecStart") == EXEC
    assert one(s, "WatchdogSec") == "15"
    assert one(s, "Restart") == "always" and float(one(s, "RestartSec")) > 0
    # A config that cannot run exits 2: not restarted every RestartSec; 75 (restart) still is.
    assert one(s, "RestartPreventExitStatus").split() == ["2"]
    assert one(s, "User") == "panel-player"
    assert {"video", "gpio", "spi"} <= set(one(s, "SupplementaryGroups").split())
    assert one(s, "StateDirectory") == "panel-player"
    assert one(s, "ProtectSystem") == "strict"
    assert "/var/lib/panel-player" in one(s, "ReadWritePaths").split()
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert one(s, key) == "yes", key
    # The framebuffer, GPIO and SPI stay reachable.
    assert values(s, "PrivateDevices") in ([], ["no"])
    assert values(s, "ProtectKernelTunables") in ([], ["no"])  # /sys/class/backlight is written
    assert one(s, "DevicePolicy") in ("closed", "auto")
    allowed = {v.split()[0] for v in values(s, "DeviceAllow")}
    assert {"char-fb", "char-gpiochip", "char-spi", "char-drm"} <= allowed
    assert all(v.split()[1] == "rw" for v in values(s, "DeviceAllow"))
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def analyze(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run([exe, "verify", str(path)], capture_output=True, text=True, timeout=60, cwd=path.parent)


def runnable_copy(tmp_path: Path, text: str) -> Path:
    # The real unit names the installed program and the panel-player user, absent
    # on a development machine: verify a copy whose ExecStart exists.
    fake = tmp_path / "bin" / "panel-player"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copy = tmp_path / "panel-player.service"
    copy.write_text(text.replace("/opt/panel-player/venv/bin/panel-player", str(fake)))
    return copy


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    text = UNIT.read_text()
    result = analyze(runnable_copy(tmp_path, text))
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stderr
    # The real file: the only complaint is the program not being installed here.
    real = analyze(UNIT)
    complaints = [line for line in (real.stdout + real.stderr).splitlines() if line.strip()]
    assert all("/opt/panel-player/venv/bin/panel-player" in line for line in complaints), complaints


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a key or a value is reported."""
    broken = runnable_copy(tmp_path, UNIT.read_text().replace("Type=notify", "Type=notifyy")
                           .replace("Restart=always", "Restartt=always"))
    result = analyze(broken)
    output = result.stdout + result.stderr
    assert "notifyy" in output and "Restartt" in output

"""The systemd files we ship: the units' keys, systemd-analyze verify and security on them,
the system calls of a real player against the unit's filter, sysusers.d and tmpfiles.d in a
temporary root, and the first-boot unit's conditions."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
import yaml
from fake_framebuffer import make_fb
from fixtures_broker import Broker

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "panel-player.service"
FIRSTBOOT = SYSTEMD / "panel-player-firstboot.service"
SYSUSERS = SYSTEMD / "panel-player.sysusers"
TMPFILES = SYSTEMD / "panel-player.tmpfiles"
PROGRAM = "/opt/panel-player/current/venv/bin/panel-player"
EXEC = f"{PROGRAM} run --config /etc/panel-player/config.yaml"
MAX_EXPOSURE = 3.0


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


def tool(name: str) -> str:
    """A systemd tool the tests need: missing is a failure (bootstrap.sh --tests installs systemd)."""
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed (Debian: apt-get install systemd)")
    return exe


def test_unit_keys() -> None:
    unit = parse_unit(UNIT.read_text())
    s, u = unit["Service"], unit["Unit"]
    assert one(u, "StartLimitIntervalSec") == "0"
    # Offline first: the panel draws at once, the MQTT link reconnects by itself.
    for key in ("Wants", "After", "Requires", "BindsTo"):
        assert not any("network-online" in v for v in values(u, key)), key
    assert one(s, "Type") == "notify" and one(s, "NotifyAccess") == "main"
    assert one(s, "ExecStart") == EXEC
    assert values(s, "ExecStartPre") == []  # the import is panel-player-firstboot.service's,
    assert "panel-player-firstboot.service" in one(u, "Wants").split()  # pulled in at each start
    assert "panel-player-firstboot.service" in one(u, "After").split()
    assert one(s, "WatchdogSec") == "15"
    assert one(s, "Restart") == "always" and float(one(s, "RestartSec")) > 0
    # A config that cannot run exits 2: not restarted every RestartSec; 75 (restart) still is.
    assert one(s, "RestartPreventExitStatus").split() == ["2"]
    assert one(s, "User") == "panel-player"
    assert {"video", "gpio", "spi", "i2c"} <= set(one(s, "SupplementaryGroups").split())
    assert one(s, "StateDirectory") == "panel-player"
    assert one(s, "ProtectSystem") == "strict"
    assert "/var/lib/panel-player" in one(s, "ReadWritePaths").split()
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectKernelLogs", "RemoveIPC"):
        assert one(s, key) == "yes", key
    assert one(s, "CapabilityBoundingSet") == ""
    assert one(s, "ProtectProc") == "invisible"
    assert one(s, "SystemCallErrorNumber") == "EPERM"
    assert values(s, "SystemCallFilter")[0] == "@system-service"
    # Memory: a Zero 2 W has 512 MB; the player peaks near 114 MB (docs/benchmarks.md).
    high, high_max = (int(one(s, key).rstrip("M")) for key in ("MemoryHigh", "MemoryMax"))
    assert 114 < high < high_max <= 256
    # The framebuffer, GPIO, SPI, I2C and the sysfs backlight stay reachable.
    assert values(s, "PrivateDevices") in ([], ["no"])
    assert values(s, "ProtectKernelTunables") in ([], ["no"])  # /sys/class/backlight is written
    assert values(s, "ProcSubset") in ([], ["all"])  # /proc/meminfo, /proc/cpuinfo are read
    assert values(s, "ProtectClock") in ([], ["no"])  # the read-only adjtimex of clock_synced
    assert one(s, "DevicePolicy") in ("closed", "auto")
    allowed = {v.split()[0] for v in values(s, "DeviceAllow")}
    assert {"char-fb", "char-gpiochip", "char-spi", "char-drm", "char-i2c"} <= allowed
    assert all(v.split()[1] == "rw" for v in values(s, "DeviceAllow"))
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("systemd-analyze"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def runnable_copy(tmp_path: Path, source: Path, text: str | None = None) -> Path:
    # The real unit names the installed program and the panel-player user, absent
    # on a development machine: verify a copy whose ExecStart exists.
    fake = tmp_path / "bin" / "panel-player"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copy = tmp_path / source.name
    copy.write_text((source.read_text() if text is None else text).replace(PROGRAM, str(fake)))
    return copy


@pytest.mark.parametrize("source", [UNIT, FIRSTBOOT], ids=lambda p: p.name)
def test_systemd_analyze_verify_passes(tmp_path: Path, source: Path) -> None:
    result = analyze("verify", str(runnable_copy(tmp_path, source)), cwd=tmp_path)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stderr
    # The real file: the only complaint is the program not being installed here.
    real = analyze("verify", str(source), cwd=source.parent)
    complaints = [line for line in (real.stdout + real.stderr).splitlines() if line.strip()]
    assert all(PROGRAM in line for line in complaints), complaints


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a key or a value is reported."""
    broken = runnable_copy(tmp_path, UNIT, UNIT.read_text().replace("Type=notify", "Type=notifyy")
                           .replace("Restart=always", "Restartt=always"))
    result = analyze("verify", str(broken), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "notifyy" in output and "Restartt" in output


def exposure(path: Path) -> float:
    """``systemd-analyze security --offline=true``'s overall exposure level of a unit file."""
    result = analyze("security", "--offline=true", str(path), cwd=path.parent)
    m = re.search(r"Overall exposure level for " + re.escape(path.name) + r": (\d+(?:\.\d+)?)",
                  result.stdout + result.stderr)
    assert m, f"no exposure level in systemd-analyze's answer: {result.stdout[-500:]}{result.stderr}"
    return float(m.group(1))


def test_security_exposure_of_the_shipped_unit() -> None:
    score = exposure(UNIT)
    assert score <= MAX_EXPOSURE, f"systemd-analyze security rates {UNIT.name} {score} (goal <= {MAX_EXPOSURE})"


def test_security_exposure_sees_a_weaker_unit(tmp_path: Path) -> None:
    """The figure is read right: the unit without its hardening block rates above the goal."""
    text = UNIT.read_text()
    start, end = text.index("# Hardening"), text.index("DevicePolicy=")
    weak = tmp_path / UNIT.name
    weak.write_text(text[:start] + text[end:])
    assert exposure(weak) > MAX_EXPOSURE


# -- the system call filter against a real player ----------------------------------------

@cache
def syscall_groups() -> dict[str, list[str]]:
    """Every ``@group`` of this systemd with its entries (system calls and nested groups)."""
    out = analyze("syscall-filter").stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in out.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw.startswith((" ", "\t")) and line.startswith("@"):
            current = groups.setdefault(line, [])
        elif current is not None:
            current.append(line.split()[0])
    return groups


def expand(name: str) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(entry) for entry in syscall_groups()[name]))


def allowed_syscalls(text: str) -> set[str]:
    """The allow list the unit's SystemCallFilter= lines make, read in order as systemd does."""
    allowed: set[str] = set()
    for value in values(parse_unit(text)["Service"], "SystemCallFilter"):
        deny = value.startswith("~")
        names = set().union(*(expand(v) for v in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def test_the_filter_keeps_the_calls_the_player_needs() -> None:
    allowed = allowed_syscalls(UNIT.read_text())
    # The framebuffer's, gpiochip's, SPI's and I2C's ioctls, the framebuffer's mapping,
    # the clock_synced query (glibc's adjtimex), sockets and threads.
    assert {"ioctl", "mmap", "clock_adjtime", "adjtimex", "socket", "connect", "clone3", "futex"} <= allowed
    assert not {"setuid", "mount", "reboot", "init_module", "clock_settime", "settimeofday", "ptrace",
                "setrlimit"} & allowed


def test_every_system_call_of_a_real_player_is_allowed(tmp_path: Path, broker: Broker) -> None:
    """``panel-player run`` under strace, on a framebuffer, until it is connected and has
    sent heartbeats (clock_synced's adjtimex): each call it made is in the unit's filter."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (Debian: apt-get install strace)")
    device, sysfs = make_fb(tmp_path / "fb", 320, 240, 32)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "panel": {"id": "strace-1", "timezone": "Europe/Paris"},
        "display": {"output": "fbdev", "device": device, "layout": "landscape"},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": "signage"},
        "state_dir": str(tmp_path / "state"),
        "heartbeat": {"interval": 1},
    }))
    trace, log = tmp_path / "calls.trace", tmp_path / "player.log"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock", PANEL_PLAYER_SYSFS_ROOT=str(sysfs))
    with broker.sub("signage/panels/strace-1/heartbeat") as sub, open(log, "wb") as out:
        proc = subprocess.Popen([strace, "-f", "-qq", "-o", str(trace), sys.executable, "-m", "player.cli", "run",
                                 "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parent.parent, env=env)
        try:
            sub.wait_for("signage/panels/strace-1/heartbeat", timeout=60)
            deadline = time.monotonic() + 1.5  # one more heartbeat at least
            while time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            # The player is strace's child: stopped as systemd would, strace then ends with it.
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            for child in children:
                os.kill(int(child), signal.SIGTERM)
            if not children:
                proc.kill()
            code = proc.wait(30)
    assert code == 0, log.read_text()[-2000:]
    made: set[str] = set()
    for line in trace.read_text().splitlines():
        m = re.match(r"\d+\s+([a-z_0-9]+)\(", line)
        if m:
            made.add(m.group(1))
    assert {"ioctl", "mmap", "connect", "clock_adjtime"} <= made, sorted(made)  # the run did its work
    refused = made - allowed_syscalls(UNIT.read_text())
    assert not refused, f"calls of the player the unit's SystemCallFilter= refuses: {sorted(refused)}"


# -- sysusers.d and tmpfiles.d ---------------------------------------------------------------

def minimal_root(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\n")
    return root


def test_sysusers_and_tmpfiles_in_a_temporary_root(tmp_path: Path) -> None:
    root = minimal_root(tmp_path / "root")
    done = subprocess.run([tool("systemd-sysusers"), f"--root={root}", str(SYSUSERS)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    user = users["panel-player"]
    assert int(user[2]) < 1000 and user[5] == "/var/lib/panel-player" and user[6] == "/usr/sbin/nologin"
    assert groups["panel-player"][2] == user[3]  # its own group
    for name in ("video", "gpio", "spi", "i2c"):
        assert "panel-player" in groups[name][3].split(","), name
    assert groups["video"][2] == "44"  # an existing group is joined, not made again

    done = subprocess.run([tool("systemd-tmpfiles"), f"--root={root}", "--create", str(TMPFILES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for rel, mode, uid in (("etc/panel-player", 0o750, "0"), ("var/lib/panel-player", 0o750, user[2])):
        st = (root / rel).stat()
        assert (oct(st.st_mode & 0o7777), str(st.st_uid), str(st.st_gid)) == (oct(mode), uid, user[3]), rel
    # Applied again (every boot): nothing changes, nothing fails.
    again = subprocess.run([tool("systemd-sysusers"), f"--root={root}", str(SYSUSERS)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == "" and "Creating" not in again.stderr


def test_the_unit_names_what_sysusers_and_tmpfiles_make() -> None:
    s = parse_unit(UNIT.read_text())["Service"]
    sysusers = [line.split() for line in SYSUSERS.read_text().splitlines() if line and not line.startswith("#")]
    assert ["u", one(s, "User")] == sysusers[0][:2]
    members = {fields[2] for fields in sysusers if fields[0] == "m" and fields[1] == one(s, "User")}
    assert set(one(s, "SupplementaryGroups").split()) == members
    tmpfiles = [line.split() for line in TMPFILES.read_text().splitlines() if line and not line.startswith("#")]
    assert ["d", one(s, "WorkingDirectory"), one(s, "StateDirectoryMode")] == tmpfiles[1][:3]


# -- the first-boot unit -------------------------------------------------------------------------

def test_firstboot_unit_keys() -> None:
    unit = parse_unit(FIRSTBOOT.read_text())
    s, u = unit["Service"], unit["Unit"]
    assert one(s, "Type") == "oneshot" and one(s, "User") == "root"
    assert "panel-player.service" in one(u, "Before").split()
    assert {"ssh.service", "sshd.service"} <= set(one(u, "Before").split())
    assert one(unit["Install"], "WantedBy") == "multi-user.target"
    starts = values(s, "ExecStart")
    assert starts[0] == f"-{PROGRAM} import-boot-config --config /etc/panel-player/config.yaml"
    assert starts[1] == f"{PROGRAM} board-identity --reboot"
    assert all(c.startswith("|") for c in values(u, "ConditionPathExists"))  # any one of them


@pytest.mark.parametrize(("present", "runs"), [
    ((), True),  # a card never recorded on a board
    (("etc/panel-player/board.json",), False),  # every later boot: skipped, no process started
    (("etc/panel-player/board.json", "boot/firmware/panel-player.yaml"), True),
    (("etc/panel-player/board.json", "boot/panel-player.yaml"), True),  # images before Bookworm
    (("etc/panel-player/board.json", "etc/panel-player/master-image"), True),
    (("etc/panel-player/board.json", "boot/firmware/panel-player.yaml.rejected"), False),
])
def test_firstboot_conditions(tmp_path: Path, present: tuple[str, ...], runs: bool) -> None:
    """The unit's own Condition lines, moved under a temporary root, as systemd evaluates them."""
    for rel in present:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    conditions = [f"ConditionPathExists={v[0]}{'!' if v[1:2] == '!' else ''}{tmp_path}{v.lstrip('|!')}"
                  for v in values(parse_unit(FIRSTBOOT.read_text())["Unit"], "ConditionPathExists")]
    result = analyze("condition", *conditions)
    assert (result.returncode == 0) == runs, result.stdout + result.stderr

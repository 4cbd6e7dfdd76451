"""A test supervisor standing for systemd over a temporary install root.

It reads the shipped unit files (``systemd/panel-player.service``,
``panel-player-update.service``, ``panel-player-update.path``) and runs their
``ExecStart=`` commands with every path of the layout (``/opt/panel-player``,
``/etc/panel-player``, ``/var/lib/panel-player``) moved under the root. The player
is restarted as ``Restart=``/``RestartSec=``/``RestartPreventExitStatus=`` say; the
updater is started whenever one of the path unit's ``PathExists=`` files exists and no
updater runs; the updater's restart of the player (``PANEL_PLAYER_RESTART`` in the
update unit, ``systemctl restart`` in production) is this supervisor's own restart:
``python tests/supervisor.py restart CONTROL_DIR`` asks for it and waits until done.

Example::

    with Supervisor(root, env={"SDL_VIDEODRIVER": "dummy"}) as sup:
        sup.wait(lambda: sup.player_starts >= 1, 10, "the player")
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNITS = Path(__file__).resolve().parents[1] / "systemd"
PREFIXES = ("/opt/panel-player", "/etc/panel-player", "/var/lib/panel-player")


def read_unit(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (every section), values in order, continuation lines joined."""
    keys: dict[str, list[str]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def environment(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values:
        for item in shlex.split(value):
            name, _, val = item.partition("=")
            env[name] = val
    return env


class Supervisor:
    """Runs the player and the updater of ``root`` as the shipped units say."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, log_dir: Path | None = None,
                 units: Path = UNITS, auto_update: bool = True) -> None:
        self.root = root
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("NOTIFY_SOCKET", None)
        self.log_dir = log_dir or root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.control = root / "supervisor"
        self.control.mkdir(parents=True, exist_ok=True)
        self.main = read_unit(units / "panel-player.service")
        self.upd = read_unit(units / "panel-player-update.service")
        self.path = read_unit(units / "panel-player-update.path")
        self.auto_update = auto_update
        self.updater_env: dict[str, str] = {}
        self.player: subprocess.Popen[bytes] | None = None
        self.updater: subprocess.Popen[bytes] | None = None
        self.player_starts = 0
        self.player_exits: list[int] = []
        self.updater_exits: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []

    # -- paths and commands ------------------------------------------------------------
    def map(self, text: str) -> str:
        """A path or command line of the units, moved under the root."""
        for prefix in PREFIXES:
            text = text.replace(prefix, str(self.root) + prefix)
        return text

    def command(self, unit: dict[str, list[str]]) -> list[str]:
        return [self.map(part) for part in shlex.split(unit["ExecStart"][0])]

    def watched(self) -> list[Path]:
        return [Path(self.map(p)) for p in self.path.get("PathExists", [])]

    # -- life cycle ---------------------------------------------------------------------
    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self.start_player()
        for fn in (self._watch_player, self._watch_paths, self._watch_restarts):
            thread = threading.Thread(target=fn, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        with self._lock:
            self._terminate(self.player)
            self.player = None
        if self.updater is not None and self.updater.poll() is None:
            self.updater.kill()
            self.updater.wait()

    def start_player(self) -> None:
        with self._lock:
            env = dict(self.env, **environment(self.main.get("Environment", [])))
            workdir = Path(self.map(self.main.get("WorkingDirectory", ["/"])[0]))
            workdir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / "player.log", "ab")
            log.write(f"--- start {self.player_starts + 1}: {self.command(self.main)}\n".encode())
            log.flush()
            self.player = subprocess.Popen(self.command(self.main), env=env, cwd=workdir, stdout=log,
                                           stderr=subprocess.STDOUT)
            log.close()
            self.player_starts += 1

    def _terminate(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        stop_s = float(self.main.get("TimeoutStopSec", ["15"])[0])
        try:
            proc.wait(stop_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart_player(self) -> None:
        """``systemctl restart``: stop (SIGTERM) and start again."""
        with self._lock:
            old, self.player = self.player, None
            self._terminate(old)
            self.start_player()

    # -- the units' behaviour --------------------------------------------------------------
    def _watch_player(self) -> None:
        """``Restart=always`` with ``RestartSec=``, except the ``RestartPreventExitStatus=`` codes."""
        restart = self.main.get("Restart", ["no"])[0]
        delay = float(self.main.get("RestartSec", ["0.1"])[0])
        prevent = {int(c) for v in self.main.get("RestartPreventExitStatus", []) for c in v.split()}
        while not self._stop.is_set():
            with self._lock:
                proc = self.player
                code = proc.poll() if proc is not None else None
                if proc is not None and code is not None:
                    self.player_exits.append(code)
                    self.player = None
            if proc is not None and code is not None and restart in ("always", "on-failure") and code not in prevent:
                if restart == "always" or code != 0:
                    if self._stop.wait(delay):
                        return
                    with self._lock:
                        if self.player is None:
                            self.start_player()
            time.sleep(0.05)

    def _watch_paths(self) -> None:
        """The path unit: the updater runs while one of the watched files exists."""
        while not self._stop.is_set():
            if self.auto_update and (self.updater is None or self.updater.poll() is not None):
                if self.updater is not None:
                    self.updater_exits.append(self.updater.returncode)
                    self.updater = None
                if any(p.exists() for p in self.watched()):
                    self.updater = self.start_updater()
            time.sleep(0.1)

    def start_updater(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env, **environment(self.upd.get("Environment", [])), **self.updater_env,
                   **(extra_env or {}))
        env["PANEL_PLAYER_RESTART"] = shlex.join([sys.executable, str(Path(__file__).resolve()), "restart",
                                                  str(self.control)])
        log = open(self.log_dir / "updater.log", "ab")
        log.write(f"--- updater {self.command(self.upd)} {extra_env or ''}\n".encode())
        log.flush()
        proc = subprocess.Popen(self.command(self.upd), env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return proc

    def run_updater(self, extra_env: dict[str, str] | None = None, timeout: float = 120) -> int:
        """One updater run, waited for (with ``auto_update`` off)."""
        proc = self.start_updater(extra_env)
        return proc.wait(timeout)

    def _watch_restarts(self) -> None:
        while not self._stop.is_set():
            for req in sorted(self.control.glob("restart-*.req")):
                self.restart_player()
                req.unlink()
            time.sleep(0.05)

    # -- helpers for tests ----------------------------------------------------------------------
    def log_text(self) -> str:
        out = []
        for name in ("player.log", "updater.log"):
            path = self.log_dir / name
            if path.exists():
                out.append(f"--- {name} ---\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """:func:`fixtures_broker.wait_until`, with the units' logs in the failure's message."""
        from fixtures_broker import wait_until

        try:
            return wait_until(condition, timeout, what, step=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_text()}") from None


def request_restart(control: Path, timeout: float = 120) -> int:
    """What the updater runs to restart the player: ask the supervisor, wait until done."""
    req = control / f"restart-{uuid.uuid4().hex}.req"
    req.write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout
    while req.exists():
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "restart":
        sys.exit(request_restart(Path(sys.argv[2])))
    print("usage: supervisor.py restart CONTROL_DIR", file=sys.stderr)
    sys.exit(2)

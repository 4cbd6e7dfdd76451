"""``panel-player update-run``: the privileged updater (root, from the ``good`` version).

Started by ``panel-player-update.path`` whenever ``state_dir/updates/request.json`` or
``trial.json`` exists (so at boot too, after a power cut in the middle of an update).
One run does whatever is left:

1. ``request.json`` (``action: update``, written by the player once it verified the
   bundle): the bundle is verified again (the player is not trusted), extracted, and
   installed as ``<root>/versions/<V>/venv`` (``python -m venv``; ``pip install --no-index
   --find-links <wheels> --require-hashes -r constraints.txt``, then the project wheel
   ``--no-deps``); ``installed.json`` is written last. A failure here changes nothing:
   ``outcome.json`` says ``failed`` and the running player reports ``update.failed``.
2. ``trial.json`` is written (from, to, deadline, request, token), then ``previous`` and
   ``current`` are switched (each symlink atomically), the player is restarted
   (``PANEL_PLAYER_RESTART``, default ``systemctl restart --no-block panel-player.service``).
3. The trial: the new version writes its health record (``health.json``: first frame
   drawn, broker connected, heartbeat published). All three within ``update.health_s``:
   ``good`` -> the new version, versions other than current and previous removed,
   ``outcome.json`` ``applied`` (the new version publishes ``update.applied``).
   Otherwise, or when it keeps crashing: ``current`` (and ``previous``) back, restart,
   ``outcome.json`` ``rolled_back`` with the reason (``crash at start``, ``never drew``,
   ``never connected``, ``never sent a heartbeat``), published by the old version.

``action: rollback`` (the ``rollback`` command) switches ``current`` to ``previous`` and
``previous`` to the version left, ``good`` to the one now current, and restarts.

Every step leaves ``current`` on a complete version (one with ``installed.json``): a power
cut or SIGKILL anywhere leaves a bootable panel, and the next run (the path unit starts it
again while a request or trial file exists) finishes the trial or rolls it back.
``PANEL_PLAYER_UPDATE_KILL_AT=<step>`` (tests only) makes the updater SIGKILL itself at a
named step (:data:`STEPS`).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .store import atomic_write, fsync_dir, make_dirs, unlink_quietly
from .update import (HEALTH, LAST, OUTCOME, REQUEST, TRIAL, VERSION_RE, install_root, linked_version, now_iso,
                     read_json, updates_dir, write_json)

log = logging.getLogger("panel-player.updater")

RESTART_ENV = "PANEL_PLAYER_RESTART"
DEFAULT_RESTART = "systemctl restart --no-block panel-player.service"
KILL_ENV = "PANEL_PLAYER_UPDATE_KILL_AT"
STEPS = ("extracted", "venv", "installed", "trial", "previous", "current", "restarted", "verdict", "good",
         "outcome")
CRASH_STARTS = 3  # starts of the new version, beyond the restarts the updater asked for, that mean a crash loop
MAX_ATTEMPTS = 3  # trials resumed after an interruption before the update is rolled back
POLL_S = 0.2
PIP_TIMEOUT_S = 1800


class UpdateFailed(Exception):
    """The update cannot be installed; nothing was switched."""


def step(name: str) -> None:
    """A named point of the switch; tests make the updater die here (SIGKILL)."""
    assert name in STEPS, name
    log.info("step %s", name)
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def switch(root: Path, name: str, version: str | None) -> None:
    """Point ``root/name`` at ``versions/<version>`` (relative) atomically; None removes it."""
    link = root / name
    if version is None:
        unlink_quietly(link)
    else:
        tmp = root / f".{name}.{os.getpid()}.tmp"
        unlink_quietly(tmp)
        os.symlink(f"versions/{version}", tmp)
        os.replace(tmp, link)
    fsync_dir(root)


class Updater:
    def __init__(self, root: Path, state_dir: Path, health_s: float, keys: dict[str, bytes],
                 restart: list[str]) -> None:
        self.root = root
        self.versions = root / "versions"
        self.dir = updates_dir(state_dir)
        self.health_s = health_s
        self.keys = keys
        self.restart_cmd = restart

    # -- entry ----------------------------------------------------------------------
    def run(self) -> int:
        make_dirs(self.dir)
        with open(self.root / ".update.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one updater at a time
            self.ensure_current()
            trial = read_json(self.dir / TRIAL)
            if trial is not None:
                request = read_json(self.dir / REQUEST)
                if request is not None and request.get("request") == trial.get("request"):
                    unlink_quietly(self.dir / REQUEST)  # taken into the trial before the cut
                return self.resume(trial)
            request = read_json(self.dir / REQUEST)
            if request is None:
                log.info("nothing to do")
                return 0
            if request.get("action") == "rollback":
                return self.manual_rollback(request)
            return self.update(request)

    def ensure_current(self) -> None:
        """``current`` must name a complete version; else (never expected) it goes to ``good``."""
        if linked_version(self.root, "current") is None:
            good = linked_version(self.root, "good")
            if good is not None:
                log.error("current names no complete version: back to good (%s)", good)
                switch(self.root, "current", good)

    def restart(self) -> None:
        log.info("restarting the player: %s", " ".join(self.restart_cmd))
        try:
            done = subprocess.run(self.restart_cmd, timeout=120, check=False)
            if done.returncode:
                log.warning("restart command exited with %d", done.returncode)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("restart command failed: %s", exc)

    def outcome(self, result: str, *, old: str, new: str, report_by: str, reason: str | None,
                request: Any, token: str | None = None) -> None:
        """The verdict for the player to publish; not written again once published (a
        resumed run after the player already reported this trial's outcome)."""
        last = read_json(self.dir / LAST) or {}
        if token is not None and (last.get("outcome") or {}).get("token") == token:
            return
        write_json(self.dir / OUTCOME, {"result": result, "from": old, "to": new, "reason": reason,
                                        "report_by": report_by, "request": request, "at": now_iso(),
                                        "token": token})

    # -- install ----------------------------------------------------------------------
    def update(self, request: dict[str, Any]) -> int:
        current = linked_version(self.root, "current")
        version = str(request.get("version") or "")
        if current is None:
            log.error("no complete current version: refusing to update")
            unlink_quietly(self.dir / REQUEST)
            return 1
        try:
            if version == current:
                raise UpdateFailed(f"version {version} is already running")
            self.install(request)
        except (UpdateFailed, OSError) as exc:  # an OSError too: a request left behind would loop
            log.error("update to %s failed: %s", version, exc)
            self.outcome("failed", old=current, new=version, report_by=current, reason=str(exc),
                         request=request.get("request"))
            unlink_quietly(self.dir / REQUEST)
            return 1
        token = uuid.uuid4().hex
        trial = {"kind": "update", "from": current, "to": version, "request": request.get("request"),
                 "previous_before": linked_version(self.root, "previous"), "token": token,
                 "deadline": time.time() + self.health_s, "deadline_iso": now_iso(time.time() + self.health_s),
                 "attempts": 1, "restarts": 0, "phase": "switching", "started": now_iso()}
        write_json(self.dir / TRIAL, trial)
        unlink_quietly(self.dir / HEALTH)
        step("trial")
        unlink_quietly(self.dir / REQUEST)
        return self.trial(trial)

    def install(self, request: dict[str, Any]) -> None:
        version = str(request.get("version") or "")
        bundle = Path(str(request.get("bundle") or ""))
        if bundle.parent != self.dir / "bundles":
            raise UpdateFailed(f"bundle {bundle} is not in {self.dir / 'bundles'}")
        install_version(self.versions, bundle, self.keys, version)

    # -- the trial ------------------------------------------------------------------------
    def trial(self, trial: dict[str, Any]) -> int:
        """Switch to the new version (again: every step is idempotent), restart, watch."""
        old, new = trial["from"], trial["to"]
        switch(self.root, "previous", old)
        step("previous")
        switch(self.root, "current", new)
        step("current")
        trial["restarts"] = int(trial.get("restarts", 0)) + 1
        write_json(self.dir / TRIAL, trial)
        self.restart()
        step("restarted")
        return self.watch(trial)

    def watch(self, trial: dict[str, Any]) -> int:
        deadline = float(trial["deadline"])
        while True:
            health = read_json(self.dir / HEALTH) or {}
            if health.get("token") != trial["token"] or health.get("version") != trial["to"]:
                health = {}
            if health and all(health.get(k) for k in ("drawn", "connected", "heartbeat")):
                return self.keep(trial)
            crashes = int(health.get("starts", 0)) - int(trial.get("restarts", 1))
            if crashes >= CRASH_STARTS:
                return self.roll_back(trial, f"crash at start: {trial['to']} started {health.get('starts')} "
                                             "times without passing its health check")
            if time.time() >= deadline:
                return self.roll_back(trial, _reason(trial["to"], health, self.health_s))
            time.sleep(POLL_S)

    def keep(self, trial: dict[str, Any]) -> int:
        log.info("version %s passed its health check: kept", trial["to"])
        trial["phase"] = "keeping"
        write_json(self.dir / TRIAL, trial)
        step("verdict")
        switch(self.root, "good", trial["to"])
        step("good")
        self.outcome("applied", old=trial["from"], new=trial["to"], report_by=trial["to"], reason=None,
                     request=trial.get("request"), token=trial.get("token"))
        step("outcome")
        unlink_quietly(self.dir / TRIAL)
        self.clean()
        return 0

    def roll_back(self, trial: dict[str, Any], reason: str) -> int:
        log.warning("rolling back %s -> %s: %s", trial["to"], trial["from"], reason)
        trial["phase"] = "rolling_back"
        trial["reason"] = reason
        write_json(self.dir / TRIAL, trial)
        step("verdict")
        switch(self.root, "current", trial["from"])
        previous = trial.get("previous_before")
        switch(self.root, "previous", previous if previous and (self.versions / previous).is_dir() else None)
        step("good")
        self.outcome("rolled_back", old=trial["to"], new=trial["from"], report_by=trial["from"], reason=reason,
                     request=trial.get("request"), token=trial.get("token"))
        step("outcome")
        self.restart()
        unlink_quietly(self.dir / TRIAL)
        self.clean()
        return 0

    def resume(self, trial: dict[str, Any]) -> int:
        """A run cut short (power cut, SIGKILL): finish what it had decided, else try again."""
        phase = trial.get("phase")
        log.info("resuming the %s of %s -> %s (%s)", trial.get("kind"), trial.get("from"), trial.get("to"), phase)
        if trial.get("kind") == "rollback":
            return self.finish_manual_rollback(trial)
        if phase == "keeping":
            return self.keep(trial)
        if phase == "rolling_back":
            return self.roll_back(trial, str(trial.get("reason") or "interrupted roll-back"))
        if not (self.versions / str(trial.get("to")) / "installed.json").is_file():
            return self.roll_back(trial, f"version {trial.get('to')} is not completely installed")
        trial["attempts"] = int(trial.get("attempts", 1)) + 1
        if trial["attempts"] > MAX_ATTEMPTS:
            return self.roll_back(trial, f"the trial was interrupted {trial['attempts'] - 1} times")
        health = read_json(self.dir / HEALTH) or {}
        if (health.get("token") == trial.get("token")
                and all(health.get(k) for k in ("drawn", "connected", "heartbeat"))):
            return self.keep(trial)
        trial["deadline"] = time.time() + self.health_s  # the restart below starts the check again
        trial["deadline_iso"] = now_iso(trial["deadline"])
        write_json(self.dir / TRIAL, trial)
        return self.trial(trial)

    # -- manual roll-back ---------------------------------------------------------------------
    def manual_rollback(self, request: dict[str, Any]) -> int:
        current = linked_version(self.root, "current")
        previous = linked_version(self.root, "previous")
        if current is None or previous is None:
            log.error("rollback: no previous version")
            if current is not None:
                self.outcome("failed", old=current, new=str(request.get("version") or ""), report_by=current,
                             reason="no previous version is installed", request=request.get("request"))
            unlink_quietly(self.dir / REQUEST)
            return 1
        trial = {"kind": "rollback", "from": current, "to": previous, "request": request.get("request"),
                 "started": now_iso(), "token": uuid.uuid4().hex}
        write_json(self.dir / TRIAL, trial)
        unlink_quietly(self.dir / REQUEST)
        return self.finish_manual_rollback(trial)

    def finish_manual_rollback(self, trial: dict[str, Any]) -> int:
        left, back = trial["from"], trial["to"]
        switch(self.root, "current", back)
        step("current")
        switch(self.root, "previous", left)
        step("previous")
        switch(self.root, "good", back)
        step("good")
        self.outcome("rolled_back", old=left, new=back, report_by=back,
                     reason=f"rollback command {trial.get('request')}", request=trial.get("request"),
                     token=trial.get("token"))
        step("outcome")
        self.restart()
        unlink_quietly(self.dir / TRIAL)
        return 0

    def clean(self) -> None:
        """Remove versions other than current, previous and good (and unfinished ones)."""
        keep = {linked_version(self.root, n) for n in ("current", "previous", "good")}
        for entry in self.versions.iterdir() if self.versions.is_dir() else ():
            if entry.name not in keep:
                log.info("removing %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(self.dir / "bundles", ignore_errors=True)


def install_version(versions: Path, bundle: Path, keys: dict[str, bytes], version: str,
                    by: str = "update") -> None:
    """Install the verified ``bundle`` as ``versions/<version>`` (venv, then ``installed.json``
    written last); nothing is left of a failed install. Raises :class:`UpdateFailed`."""
    from .bundle import BundleError, extract_bundle, verify_bundle

    if not VERSION_RE.fullmatch(version):
        raise UpdateFailed(f"version {version!r} is not a usable folder name")
    target = versions / version
    if (target / "installed.json").is_file():
        log.info("version %s is installed already", version)
        return
    try:
        manifest = verify_bundle(bundle, keys)
    except (BundleError, OSError) as exc:
        raise UpdateFailed(f"bundle refused: {exc}") from None
    if manifest.version != version:
        raise UpdateFailed(f"bundle holds version {manifest.version}, the request says {version}")
    make_dirs(versions)
    shutil.rmtree(target, ignore_errors=True)  # an install cut short: started again
    work = versions / f".{version}.bundle"
    shutil.rmtree(work, ignore_errors=True)
    try:
        try:
            extract_bundle(bundle, manifest, work)
        except (BundleError, OSError) as exc:
            raise UpdateFailed(f"bundle cannot be extracted: {exc}") from None
        step("extracted")
        target.mkdir()
        venv = target / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        step("venv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
               "--disable-pip-version-check", "--no-cache-dir"]
        _run([*pip, "--find-links", str(work / "wheels"), "--require-hashes",
              "-r", str(work / "constraints.txt")], "pip install of the dependencies")
        _run([*pip, "--no-deps", str(work / manifest.wheel)], "pip install of panel-player")
        got = subprocess.run([str(venv / "bin" / "panel-player"), "--version"], capture_output=True,
                             text=True, timeout=120, check=False)
        if got.returncode or got.stdout.split()[-1:] != [version]:
            raise UpdateFailed(f"the installed panel-player --version says {got.stdout.strip()!r} "
                               f"(exit {got.returncode}), not {version}")
        _sync_tree(target)
        atomic_write(target / "installed.json",
                     (f'{{"version": "{version}", "installed": "{now_iso()}", "by": "{by}"}}\n').encode())
        step("installed")
    except BaseException:
        if not (target / "installed.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(cmd: list[str], what: str) -> None:
    # pip reads no config file and no PIP_* variable: only the bundle's wheels are used.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateFailed(f"{what}: {exc}") from None
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UpdateFailed(f"{what} failed (exit {done.returncode}): {' / '.join(tail)}")


def _reason(version: str, health: dict[str, Any], health_s: float) -> str:
    within = f"within {health_s:g} s"
    if not health:
        return f"crash at start: {version} never got as far as its health record {within}"
    if not health.get("drawn"):
        return f"never drew: {version} did not draw its first frame {within}"
    if not health.get("connected"):
        return f"never connected: {version} did not connect to the broker {within}"
    return f"never sent a heartbeat: {version} did not publish a heartbeat {within}"


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder of a new version before it is marked complete."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


# -- command line ---------------------------------------------------------------------------------

def add_update_run_parser(sub: Any) -> None:
    run = sub.add_parser("update-run", help="install a requested update and watch its trial (root; "
                                             "started by panel-player-update.path)")
    run.add_argument("--config", required=True, type=Path, help="the panel's YAML config")
    run.add_argument("--root", type=Path, default=None,
                     help="the install root (default: the one this panel-player runs from)")
    run.add_argument("--restart-command", default=None,
                     help=f"how to restart the player (default: ${RESTART_ENV}, else {DEFAULT_RESTART!r})")
    run.set_defaults(handler=cmd_update_run)


def cmd_update_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .errors import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        log.error("config invalid: %s", "; ".join(exc.errors))
        return 2
    root = args.root or install_root()
    if root is None:
        log.error("not an installed version and no --root given")
        return 2
    restart = shlex.split(args.restart_command or os.environ.get(RESTART_ENV) or DEFAULT_RESTART)
    updater = Updater(Path(root), cfg.state_dir, cfg.update.health_s, dict(cfg.trust.keys), restart)
    return updater.run()

"""The updater's roll-back path, killed (SIGKILL) at each of its steps.

A small install root holds two complete versions, A (current, good) and C, each a venv
folder whose ``panel-player --version`` is a two-line script (real venvs are built in
tests/test_update_e2e.py; here the updater's decisions are under test, and C never proves
its health: no player runs). The real updater runs in a child process with
``update.health_s`` short; killed at each named step, it leaves ``current`` on a complete
version that runs, and the next run finishes the roll-back to A. The verdict itself is
checked against health records written as the new version would write them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from player.update import HEALTH, OUTCOME, REQUEST, TRIAL, linked_version, read_json, write_json
from player.updater import KILL_ENV, STEPS, switch

A, C = "1.0.0", "1.1.0"
ROLL_BACK_STEPS = [s for s in STEPS if s not in ("extracted", "venv", "installed")]


def fake_version(versions: Path, version: str) -> None:
    bindir = versions / version / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "panel-player"
    script.write_text(f"#!/bin/sh\necho panel-player {version}\n")
    script.chmod(0o755)
    (versions / version / "installed.json").write_text(json.dumps({"version": version, "by": "install.sh"}))


def run_updater(root: Path, state: Path, kill: str | None = None) -> int:
    code = ("import sys; from pathlib import Path; from player.updater import Updater; "
            f"sys.exit(Updater(Path({str(root)!r}), Path({str(state)!r}), 0.5, {{}}, ['true']).run())")
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True).returncode


def bootable(root: Path) -> str:
    version = linked_version(root, "current")
    assert version is not None
    out = subprocess.run([str(root / "current" / "venv" / "bin" / "panel-player"), "--version"],
                         capture_output=True, text=True)
    assert out.stdout.split() == ["panel-player", version]
    return version


@pytest.mark.parametrize("step", ROLL_BACK_STEPS)
def test_killed_while_rolling_back(tmp_path: Path, step: str) -> None:
    root, state = tmp_path / "opt", tmp_path / "state"
    for v in (A, C):
        fake_version(root / "versions", v)
    switch(root, "current", A)
    switch(root, "good", A)
    bundles = state / "updates" / "bundles"
    bundles.mkdir(parents=True)
    write_json(state / "updates" / REQUEST, {"action": "update", "request": "req-c", "from": A, "version": C,
                                             "bundle": str(bundles / "c.bundle")})
    assert run_updater(root, state, kill=step) == -9, f"not killed at {step}"
    assert bootable(root) in (A, C)
    assert (state / "updates" / REQUEST).exists() or (state / "updates" / TRIAL).exists()
    assert run_updater(root, state) == 0
    assert bootable(root) == A and linked_version(root, "good") == A
    assert linked_version(root, "previous") is None  # as before the update
    assert not (root / "versions" / C).exists()
    assert not (state / "updates" / TRIAL).exists() and not (state / "updates" / REQUEST).exists()
    outcome = json.loads((state / "updates" / OUTCOME).read_text())
    assert (outcome["result"], outcome["from"], outcome["to"], outcome["report_by"]) == ("rolled_back", C, A, A)
    assert outcome["reason"].startswith("crash at start"), outcome


def start_trial(tmp_path: Path, health_s: float) -> tuple[Path, Path, subprocess.Popen[bytes]]:
    root, state = tmp_path / "opt", tmp_path / "state"
    for v in (A, C):
        fake_version(root / "versions", v)
    switch(root, "current", A)
    switch(root, "good", A)
    (state / "updates" / "bundles").mkdir(parents=True)
    write_json(state / "updates" / REQUEST, {"action": "update", "request": "req-c", "from": A, "version": C,
                                             "bundle": str(state / "updates" / "bundles" / "c.bundle")})
    code = ("import sys; from pathlib import Path; from player.updater import Updater; "
            f"sys.exit(Updater(Path({str(root)!r}), Path({str(state)!r}), {health_s}, {{}}, ['true']).run())")
    proc = subprocess.Popen([sys.executable, "-c", code])
    return root, state, proc


def trial_token(state: Path) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        trial = read_json(state / "updates" / TRIAL)
        if trial and trial.get("restarts"):
            return str(trial["token"])
        time.sleep(0.02)
    raise AssertionError("no trial")


@pytest.mark.parametrize("health, words, early", [
    ({"starts": 4, "drawn": False, "connected": False, "heartbeat": False}, "crash at start", True),
    ({"starts": 1, "drawn": True, "connected": False, "heartbeat": False}, "never connected", False),
    ({"starts": 1, "drawn": True, "connected": True, "heartbeat": False}, "never sent a heartbeat", False),
    ({"starts": 1, "drawn": True, "connected": True, "heartbeat": True}, None, True),
])
def test_verdict_from_the_health_record(tmp_path: Path, health: dict[str, object], words: str | None,
                                        early: bool) -> None:
    """A crash loop (more starts than restarts asked for) is rolled back at once, a
    complete record kept at once; otherwise the reason names the first missing proof."""
    health_s = 30.0 if early else 1.0
    root, state, proc = start_trial(tmp_path, health_s)
    started = time.monotonic()
    write_json(state / "updates" / HEALTH, {**health, "token": trial_token(state), "version": C})
    assert proc.wait(20) == 0
    assert (time.monotonic() - started < 10) if early else True
    outcome = json.loads((state / "updates" / OUTCOME).read_text())
    if words is None:
        assert (outcome["result"], linked_version(root, "current"), linked_version(root, "good")) == ("applied", C, C)
        assert linked_version(root, "previous") == A
    else:
        assert outcome["result"] == "rolled_back" and outcome["reason"].startswith(words), outcome
        assert (linked_version(root, "current"), linked_version(root, "good")) == (A, A)


def test_a_bundle_the_updater_refuses_changes_nothing(tmp_path: Path) -> None:
    """The updater verifies the bundle again (the player is not trusted): a damaged one
    is refused, the request is consumed (no loop of the path unit), A runs on."""
    root, state = tmp_path / "opt", tmp_path / "state"
    fake_version(root / "versions", A)
    switch(root, "current", A)
    switch(root, "good", A)
    bundles = state / "updates" / "bundles"
    bundles.mkdir(parents=True)
    (bundles / "d.bundle").write_bytes(b"not a tar file" * 100)
    write_json(state / "updates" / REQUEST, {"action": "update", "request": "req-d", "from": A, "version": "1.2.0",
                                             "bundle": str(bundles / "d.bundle")})
    assert run_updater(root, state) == 1
    outcome = json.loads((state / "updates" / OUTCOME).read_text())
    assert (outcome["result"], outcome["to"], outcome["report_by"]) == ("failed", "1.2.0", A)
    assert outcome["reason"].startswith("bundle refused"), outcome
    assert not (state / "updates" / REQUEST).exists() and not (root / "versions" / "1.2.0").exists()
    assert bootable(root) == A and linked_version(root, "good") == A

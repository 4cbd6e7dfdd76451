"""The updater's roll-back path, killed (SIGKILL) at each of its steps.

A small install root holds two complete versions, A (current, good) and C, each a venv
folder whose ``panel-player --version`` is a two-line script (real venvs are built in
tests/test_update_e2e.py; here the updater's decisions are under test, and C never proves
its health: no player runs). The real updater runs in a child process with
``update.health_s`` short; killed at each named step, it leaves ``current`` on a complete
version that runs, and the next run finishes the roll-back to A.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from player.update import OUTCOME, REQUEST, TRIAL, linked_version, write_json
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

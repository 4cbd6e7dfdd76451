"""``python -m bench`` has teeth: a goal missed at its own size fails the run and is named;
a goal measured at another size (the smoke sizes) is reported, not judged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import goals  # noqa: E402
from bench.__main__ import verdict  # noqa: E402
from bench.goals import Goal  # noqa: E402


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=90)


def test_a_missed_goal_fails_the_run_and_is_named() -> None:
    # Start-up is measured at its goal's size even in the smoke run, and takes a second:
    # no process starts in a millisecond.
    run = bench("--smoke", "startup", "--goal", "startup=0.001")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "goal missed: startup (worst of 1)" in run.stdout, run.stdout
    assert "MISSED" in run.stdout
    assert "goal values set by --goal: startup=0.001" in run.stdout


def test_a_met_goal_passes_the_run() -> None:
    run = bench("--smoke", "startup", "--goal", "startup=60")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "goal missed" not in run.stdout
    verdict_table = run.stdout.split("== verdict", 1)[1]
    assert "startup" in verdict_table and "met" in verdict_table


def test_each_benchmark_says_first_what_it_drives() -> None:
    run = bench("--smoke", "startup", "--goal", "startup=60")
    first = next(line for line in run.stdout.splitlines() if line.startswith("== "))
    assert first.startswith("== startup drives real `panel-player run` processes"), first


def test_an_unknown_goal_is_refused() -> None:
    run = bench("--smoke", "startup", "--goal", "startups=1")
    assert run.returncode == 2
    assert "expected NAME=VALUE with NAME one of" in run.stderr


def test_help_lists_every_goal_and_benchmark() -> None:
    run = bench("--help")
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    for name in goals.DEFAULTS:
        assert f"{name} (default" in text, name
    assert "% of one core" in text


def _goal(measured: float, measured_at: str, goal_at: str = "1920x1080") -> Goal:
    return Goal("memory", "png", measured, 80.0, "MB", measured_at=measured_at, goal_at=goal_at)


def test_a_goal_measured_at_another_size_is_reported_not_judged(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict([_goal(120.0, "640x360")], [], smoke=True) == 0
    out = capsys.readouterr().out
    assert "not judged (measured at 640x360; goal for 1920x1080)" in out
    assert "goal missed" not in out


def test_a_goal_measured_at_its_size_is_judged(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict([_goal(79.0, "1920x1080"), _goal(81.0, "1920x1080")], [], smoke=False) == 1
    out = capsys.readouterr().out
    assert "goal missed: memory (png): 81.0 MB, goal ≤ 80.0 MB" in out
    assert verdict([_goal(79.0, "1920x1080")], [], smoke=False) == 0


def test_a_failed_benchmark_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict([], ["memory"], smoke=True) == 1
    assert "benchmarks failed: memory" in capsys.readouterr().out


def test_goal_values_can_be_replaced() -> None:
    try:
        goals.set_override("startup", 0.25)
        assert goals.value("startup") == 0.25
        with pytest.raises(KeyError):
            goals.set_override("nonsense", 1.0)
    finally:
        goals.clear_overrides()
    assert goals.value("startup") == goals.DEFAULTS["startup"][0]

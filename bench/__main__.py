"""Run the benchmarks: ``python -m bench`` (full sizes) or ``python -m bench --smoke`` (quick, small sizes).

Each prints what it drives, then its figures next to a reference measured in the same
run, then how its goals fare. At the end a verdict table lists every goal. The exit
status is 1 when a benchmark failed or a goal measured at its own size was missed (the
message names it); goals measured at other sizes (``--smoke``) are reported "not
judged". ``python -m bench NAME …`` runs only the named ones; ``--goal NAME=VALUE``
replaces a goal's value, e.g. ``--goal startup=1.0``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from . import goals
from .goals import Goal

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the report to the figures

FULL = {
    "frame_cost": lambda m: m.run(seconds=30.0, frames=600),
    "idle_cpu": lambda m: m.run(seconds=10.0),
    "startup": lambda m: m.run(repeats=5),
    "memory": lambda m: m.run(count=50, size=(1920, 1080), slide_s=0.3),
    "fanout": lambda m: m.run(counts=[100, 2000], playlists=50),
    "answers": lambda m: m.run(n=4000),
    "alert_latency": lambda m: m.run(count=200),
    "sleep": lambda m: m.run(seconds=10.0, count=50),
    "signatures": lambda m: m.run(n=2000, count=100),
    "image_memory": lambda m: m.run(),
    "stall": lambda m: m.run(),
    "ticker_process": lambda m: m.run(seconds=20.0),
    "console_fleet": lambda m: m.run(panels=2000, seconds=60.0, delay_s=30.0, loads=3),
}
SMOKE = {
    "frame_cost": lambda m: m.run(seconds=5.0, frames=60),
    "idle_cpu": lambda m: m.run(seconds=2.0),
    "startup": lambda m: m.run(repeats=1),
    "memory": lambda m: m.run(count=8, size=(640, 360), slide_s=0.2, rounds=1),
    "fanout": lambda m: m.run(counts=[20, 100], playlists=5, repeats=1),
    "answers": lambda m: m.run(n=200),
    "alert_latency": lambda m: m.run(count=20, brokers=("mosquitto defaults",)),
    "sleep": lambda m: m.run(seconds=2.0, count=5, size=(640, 360)),
    "signatures": lambda m: m.run(n=200, count=5),
    "image_memory": lambda m: m.run(size=(640, 360), picture=(2400, 1500)),
    "stall": lambda m: m.run(size=(640, 360), picture=(2400, 1600), count=2, seconds=4.0, warmup=0.5),
    "ticker_process": lambda m: m.run(seconds=2.0, warmup=3.0),
    "console_fleet": lambda m: m.run(panels=100, seconds=8.0, delay_s=6.0, loads=1, settle_s=1.0),
}


def _goal(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or name not in goals.DEFAULTS:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(goals.DEFAULTS)}, "
                                         f"got {text!r}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from None


def main(argv: list[str] | None = None) -> int:
    goal_help = "; ".join(f"{name} (default {v:g}: {what})" for name, (v, what) in goals.DEFAULTS.items())
    goal_help = goal_help.replace("%", "%%")  # argparse formats help texts with %
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes: checks that every benchmark runs")
    parser.add_argument("--goal", action="append", type=_goal, default=[], metavar="NAME=VALUE",
                        help=f"replace a goal's value (repeatable). Goals: {goal_help}")
    parser.add_argument("names", nargs="*", help=f"a subset of: {', '.join(FULL)}")
    args = parser.parse_args(argv)
    table = SMOKE if args.smoke else FULL
    names = args.names or list(table)
    for name in names:
        if name not in table:
            parser.error(f"unknown benchmark {name!r}")
    goals.clear_overrides()
    for name, value in args.goal:
        goals.set_override(name, value)
    failed: list[str] = []
    collected: list[Goal] = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"\n== {name}: not written yet, skipped")
                continue
            raise
        print(f"\n== {name} drives {getattr(module, 'DRIVES', 'what its docstring says')}")
        sys.stdout.flush()
        start = time.monotonic()
        try:
            result = table[name](module)
        except Exception as exc:  # report every benchmark, then fail
            print(f"\n== {name}: FAILED: {type(exc).__name__}: {exc}")
            failed.append(name)
        else:
            collected += result.get("goals", []) if isinstance(result, dict) else []
        print(f"  ({time.monotonic() - start:.1f} s)")
    return verdict(collected, failed, smoke=args.smoke)


def verdict(collected: list[Goal], failed: list[str], smoke: bool) -> int:
    """Print the verdict table and what failed; the exit status."""
    print("\n== verdict" + (" (smoke sizes: goals set for other sizes are not judged)" if smoke else ""))
    if collected:
        for line in goals.table(collected):
            print(line)
    else:
        print("  no goal measured")
    overridden = sorted({g.name for g in collected if goals.overridden(g.name)})
    if overridden:
        print(f"  (goal values set by --goal: {', '.join(f'{n}={goals.value(n):g}' for n in overridden)})")
    missed = [g for g in collected if g.missed]
    for g in missed:
        print(f"goal missed: {g.name} ({g.what}): {g.figure()}, goal {g.bound()}")
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}")
    sys.stdout.flush()
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the benchmarks: ``python -m bench`` (full sizes) or ``python -m bench --smoke`` (quick, small sizes).

Each prints measured figures next to a reference measured in the same run.
``python -m bench NAME …`` runs only the named ones.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the report to the figures

FULL = {
    "frame_cost": lambda m: m.run(frames=600),
    "idle_cpu": lambda m: m.run(seconds=10.0),
    "startup": lambda m: m.run(repeats=5),
    "memory": lambda m: m.run(count=50, size=(1920, 1080), slide_s=0.3),
    "fanout": lambda m: m.run(counts=[100, 500]),
    "answers": lambda m: m.run(n=4000),
    "alert_latency": lambda m: m.run(count=200),
    "sleep": lambda m: m.run(seconds=10.0, count=50),
    "signatures": lambda m: m.run(n=2000, count=100),
}
SMOKE = {
    "frame_cost": lambda m: m.run(frames=60),
    "idle_cpu": lambda m: m.run(seconds=2.0),
    "startup": lambda m: m.run(repeats=1),
    "memory": lambda m: m.run(count=8, size=(640, 360), slide_s=0.2, rounds=1),
    "fanout": lambda m: m.run(counts=[20]),
    "answers": lambda m: m.run(n=200),
    "alert_latency": lambda m: m.run(count=20),
    "sleep": lambda m: m.run(seconds=2.0, count=5, size=(640, 360)),
    "signatures": lambda m: m.run(n=200, count=5),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes: checks that every benchmark runs")
    parser.add_argument("names", nargs="*", help=f"a subset of: {', '.join(FULL)}")
    args = parser.parse_args(argv)
    table = SMOKE if args.smoke else FULL
    names = args.names or list(table)
    failed = []
    for name in names:
        if name not in table:
            parser.error(f"unknown benchmark {name!r}")
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"\n== {name}: not written yet, skipped")
                continue
            raise
        start = time.monotonic()
        try:
            table[name](module)
        except Exception as exc:  # report every benchmark, then fail
            print(f"\n== {name}: FAILED: {type(exc).__name__}: {exc}")
            failed.append(name)
        print(f"  ({time.monotonic() - start:.1f} s)")
    if failed:
        print(f"\nbenchmarks failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the modules where a wrong line harms the street.

Runs mutmut on one module at a time, each against its own fast unit tests only
(never the e2e tests, which start processes and take minutes), in a throw-away copy
of the working tree, so the checkout itself is never touched: no mutants/ folder,
no setup.cfg.

    python scripts/mutation.py                      # every module below
    python scripts/mutation.py brightness cap       # some of them
    python scripts/mutation.py --changed origin/main  # those whose source or tests changed
    python scripts/mutation.py --fail-under 90      # exit 1 if a module scores lower

Prints, per module, killed/total and the surviving mutants as diffs; --report FILE
also writes that as Markdown. Usually started through scripts/mutation.sh.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module name -> (source file, its fast unit tests)
MODULES: dict[str, tuple[str, list[str]]] = {
    "brightness": ("player/hw/brightness.py", ["tests/test_brightness.py"]),
    "cap": ("player/cap.py", ["tests/test_cap.py"]),
    "alertboard": ("player/alertboard.py", ["tests/test_alertboard.py"]),
    "trust": ("player/trust.py", ["tests/test_trust.py"]),
    "schedule": ("player/schedule.py", ["tests/test_schedule.py"]),
    "screen": ("player/screen.py", ["tests/test_screen.py"]),
    "store": ("player/store.py", ["tests/test_store.py"]),
    "playlists": ("player/playlists.py", ["tests/test_playlists.py"]),
}

# Not copied into the throw-away tree: nothing a unit test reads.
SKIP_COPY = (".ci/", "bench/", "deploy/", "systemd/")

TEST_ENV = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "GPIOZERO_PIN_FACTORY": "mock"}

# mutmut's own statuses that count as killed: the tests noticed the change
KILLED = {"killed", "timeout", "segfault"}


@dataclass
class Result:
    module: str
    seconds: float
    statuses: dict[str, str] = field(default_factory=dict)
    diffs: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def total(self) -> int:
        return len(self.statuses)

    @property
    def killed(self) -> int:
        return sum(1 for s in self.statuses.values() if s in KILLED)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 0.0

    def survivors(self) -> list[str]:
        return [name for name, s in self.statuses.items() if s not in KILLED]


def working_tree_files() -> list[str]:
    """Tracked and new (not ignored) files, as they are on disk now."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()
    return [p for p in out.split("\0") if p]


def copy_tree(dest: Path) -> None:
    for rel in working_tree_files():
        if rel.startswith(SKIP_COPY):
            continue
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def write_config(dest: Path, source: str, tests: list[str]) -> None:
    # mutmut runs the tests inside dest/mutants/: give them what they read besides
    # the code (pytest.ini, layouts/, docs/ for the worked examples, ...)
    also_copy = sorted({rel.split("/")[0] for rel in working_tree_files()
                        if not rel.startswith(("player/", "tests/", *SKIP_COPY)) and (dest / rel).exists()})
    lines = [
        "[mutmut]",
        "source_paths=player",
        f"only_mutate={source}",
        "pytest_add_cli_args_test_selection=" + "\n    ".join(tests),
        "pytest_add_cli_args=\n    -p\n    no:cacheprovider",
        "also_copy=" + "\n    ".join(also_copy),
        # each mutant is re-run only when its code changed: fine for one run, and
        # this folder is thrown away afterwards
    ]
    (dest / "setup.cfg").write_text("\n".join(lines) + "\n")


def test_env() -> dict[str, str]:
    env = {**os.environ, **TEST_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    # the copy is not next to ../shared: point the CAP tests at the real samples
    env.setdefault("PANEL_CAP_SAMPLES", str(ROOT.parent / "shared" / "cap-samples"))
    return env


def mutmut(dest: Path, *args: str, log: Path) -> subprocess.CompletedProcess[str]:
    with log.open("w") as fh:
        return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=dest, env=test_env(),
                              stdout=fh, stderr=subprocess.STDOUT, text=True)


# Run inside the copy after `mutmut run`: every mutant's status, and the diff of
# those that were not killed (one process: `mutmut show` per mutant takes a second each).
COLLECT = """
import json
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files
KILLED = %r
out = {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = "" if status in KILLED else get_diff_for_mutant(name, path=path)
        out[name] = [status, diff]
print(json.dumps(out))
"""


def run_module(name: str, work: Path, jobs: int) -> Result:
    source, tests = MODULES[name]
    dest = work / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    copy_tree(dest)
    write_config(dest, source, tests)
    started = time.monotonic()
    log = work / f"{name}.log"
    run = mutmut(dest, "run", "--max-children", str(jobs), log=log)
    result = Result(name, time.monotonic() - started)
    if run.returncode != 0:
        result.error = f"mutmut run exited {run.returncode}; see {log}"
        return result
    collected = subprocess.run([sys.executable, "-c", COLLECT % (sorted(KILLED),)], cwd=dest,
                               env=test_env(), capture_output=True, text=True)
    if collected.returncode != 0:
        result.error = f"could not read mutmut's results: {collected.stderr.strip()[-500:]}"
        return result
    for mutant, (status, diff) in json.loads(collected.stdout).items():
        result.statuses[mutant] = status
        if diff:
            result.diffs[mutant] = diff
    if not result.statuses:
        result.error = f"no mutants; see {log}"
    elif "not checked" in result.statuses.values():
        result.error = f"some mutants were not checked; see {log}"
    return result


def changed_modules(ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "diff", "--name-only", ref, "--"], cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    changed = set(out)
    return [name for name, (src, tests) in MODULES.items() if changed & {src, *tests}]


def markdown(results: list[Result]) -> str:
    lines = ["| module | killed / total | score | survivors | time |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.module} | {r.killed} / {r.total} | {r.score:.1f} % | {len(r.survivors())} | {r.seconds:.0f} s |"
        )
    for r in results:
        if r.error:
            lines += ["", f"**{r.module}: {r.error}**"]
        if r.survivors():
            lines += ["", f"### {r.module}: surviving mutants", ""]
            for mutant in r.survivors():
                lines += ["```diff", r.diffs.get(mutant, mutant), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"any of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--changed", metavar="REF", help="only the modules whose source or tests differ from REF")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--work", type=Path, help="keep the copies and logs here (default: a temporary folder)")
    parser.add_argument("--report", type=Path, help="also write the results as Markdown here")
    parser.add_argument("--json", type=Path, help="also write the statuses per mutant as JSON here")
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PCT",
                        help="exit 1 if a module kills fewer than PCT %% of its mutants")
    args = parser.parse_args(argv)

    unknown = [n for n in args.modules if n not in MODULES]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    names = list(args.modules) or list(MODULES)
    if args.changed:
        names = [n for n in names if n in changed_modules(args.changed)]
        if not names:
            print(f"no mutation-tested module changed since {args.changed}")
            return 0
    if importlib.util.find_spec("mutmut") is None:
        print("mutmut is not installed: pip install -e '.[test,mutation]'", file=sys.stderr)
        return 2

    work = args.work or Path(tempfile.mkdtemp(prefix="panel-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for name in names:
            print(f"==> {name}: mutating {MODULES[name][0]} against {' '.join(MODULES[name][1])}", flush=True)
            r = run_module(name, work, args.jobs)
            results.append(r)
            print(f"    {r.killed}/{r.total} killed ({r.score:.1f} %), "
                  f"{len(r.survivors())} left, {r.seconds:.0f} s {r.error}", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = markdown(results)
    print()
    print(report)
    if args.report:
        args.report.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(
            {r.module: {m: {"status": s, "diff": r.diffs.get(m, "")} for m, s in r.statuses.items()}
             for r in results}, indent=2, ensure_ascii=False))
    failed = [r.module for r in results if r.error or r.score < args.fail_under]
    if failed:
        print(f"below {args.fail_under:.0f} % or failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

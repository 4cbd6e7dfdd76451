"""The player's code and the benchmarks type-check (mypy, settings in mypy.ini).

Type errors found here have been real bugs before (a payload typed as text that was
bytes, a health figure that could be None); the check keeps them from coming back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_player_and_benchmarks_type_check() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini")],
                            cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr

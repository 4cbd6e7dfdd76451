"""Shared test setup: headless SDL, gpiozero's mock pins, fixtures from tests/fixtures_*.py."""

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = ROOT.parent / "shared"
# The real CAP 1.2 messages of ../shared/cap-samples (or where $PANEL_CAP_SAMPLES says).
CAP_SAMPLES = Path(os.environ.get("PANEL_CAP_SAMPLES", SHARED / "cap-samples"))
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# Fixture modules owned by each part of the suite.
pytest_plugins = ["fixtures_broker", "fixtures_rabbit", "fixtures_player", "fixtures_postgres"]

# In CI (``CI`` set) a skip is a failure: a missing ../shared, a missing tool or a test
# that needs other privileges would otherwise pass unseen. A skip whose reason starts
# with one of these is one CI cannot help (real hardware, or what a broker truly cannot
# do: "broker: RabbitMQ 3.10 cannot …") and stays a skip.
CI_SKIPS_ALLOWED = ("hardware:", "broker:")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(CI_SKIPS_ALLOWED):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI, which must run every test: {reason} "
                       "(scripts/bootstrap.sh --tests installs what the tests need)")

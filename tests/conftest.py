"""Shared test setup: headless SDL, gpiozero's mock pins, fixtures from tests/fixtures_*.py."""

import os
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = ROOT.parent / "shared"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# Fixture modules owned by each part of the suite.
pytest_plugins = ["fixtures_broker", "fixtures_player"]

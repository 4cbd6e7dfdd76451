"""Log lines for journald: priority prefixes and no timestamp when stderr is ``$JOURNAL_STREAM``.

The real test runs ``panel-player run`` with its stderr on a file and
``JOURNAL_STREAM`` naming that file's device and inode, as systemd does with its
journal stream, and reads the lines as journald would (a leading ``<N>`` is the
line's priority, else the unit's default, info): ``journalctl -p err`` would show
exactly the error lines.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from player.hw.journal import JournalFormatter, journal_priority, stderr_formatter, stream_is_journal

ROOT = Path(__file__).resolve().parents[1]
PREFIX = re.compile(r"^<([0-7])>")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def journal_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


def test_the_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    mine, other = tmp_path / "stderr", tmp_path / "other"
    mine.write_text("")
    other.write_text("")
    with open(mine, "w") as stream:
        fd = stream.fileno()
        assert stream_is_journal(fd, {"JOURNAL_STREAM": journal_id(mine)})
        assert not stream_is_journal(fd, {"JOURNAL_STREAM": journal_id(other)})  # inherited by a child, say
        assert not stream_is_journal(fd, {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(fd, {})
        assert isinstance(stderr_formatter(fd, {"JOURNAL_STREAM": journal_id(mine)}), JournalFormatter)
        assert not isinstance(stderr_formatter(fd, {}), JournalFormatter)


def test_every_line_of_a_record_carries_its_priority() -> None:
    assert [journal_priority(v) for v in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO,
                                          logging.DEBUG)] == [2, 3, 4, 6, 7]
    try:
        raise ValueError("bad picture")
    except ValueError:
        record = logging.LogRecord("panel-player", logging.ERROR, __file__, 1, "decode failed: %s", ("x.png",),
                                   sys.exc_info())
    lines = JournalFormatter().format(record).split("\n")
    assert lines[0] == "<3>ERROR panel-player: decode failed: x.png"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)  # the traceback too
    assert not any(TIMESTAMP.search(line) for line in lines)


def run_player(tmp_path: Path, journal: bool) -> list[str]:
    """``panel-player run`` with a backlight that does not exist (an error line), until it logged it."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "panel": {"id": "journal-1", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": [96, 54], "path": str(tmp_path / "frame.png"), "layout": "fullscreen"},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
        "brightness": {"actuator": {"type": "backlight", "path": str(tmp_path / "no-backlight")}},
    }))
    stderr = tmp_path / "stderr.txt"
    stderr.write_text("")
    decoy = tmp_path / "decoy"
    decoy.write_text("")
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock",
               JOURNAL_STREAM=journal_id(stderr if journal else decoy))
    with open(stderr, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "player.cli", "run", "--config", str(config)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while "showing" not in stderr.read_text() or "no-backlight" not in stderr.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    return stderr.read_text().splitlines()


def test_a_real_player_logs_for_journald_when_stderr_is_the_journal(tmp_path: Path) -> None:
    lines = run_player(tmp_path, journal=True)
    assert lines and all(PREFIX.match(line) for line in lines), lines  # every line has its priority
    assert not any(TIMESTAMP.search(line) for line in lines), lines  # journald stamps them
    priority = {line: int(PREFIX.match(line).group(1)) for line in lines}  # type: ignore[union-attr]
    errors = [line for line, p in priority.items() if p <= 3]  # what `journalctl -p err` shows
    assert errors and all("no-backlight" in line and "ERROR" in line for line in errors), errors
    assert all(p == 6 for line, p in priority.items() if " INFO " in line)
    assert any("showing" in line and priority[line] == 6 for line in lines)


def test_elsewhere_the_lines_keep_their_timestamp(tmp_path: Path) -> None:
    """JOURNAL_STREAM inherited, but stderr is another file: today's format."""
    lines = run_player(tmp_path, journal=False)
    assert lines and not any(PREFIX.match(line) for line in lines), lines
    assert any(TIMESTAMP.match(line) and "ERROR" in line and "no-backlight" in line for line in lines), lines

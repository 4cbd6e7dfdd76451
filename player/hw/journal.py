"""Log lines fit for journald when stderr is the journal, plain ones elsewhere.

systemd connects a service's stderr to journald and says so in
``$JOURNAL_STREAM`` (``DEVICE:INODE`` of that stream). When stderr is that
stream, each line starts with the sd-daemon priority prefix (``<3>`` error,
``<4>`` warning, ``<6>`` info, ``<7>`` debug), so that ``journalctl -p err``
finds the errors, and carries no timestamp of its own (journald stamps every
line). Each line of a multi-line record (a traceback) gets the prefix: journald
stores every line as an entry of its own. Elsewhere (a terminal, a file, a
pipe the variable was inherited through) the lines keep their timestamp.

Example::

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(stderr_formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


def journal_priority(levelno: int) -> int:
    """syslog priority of a logging level: 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def stream_is_journal(fd: int = 2, env: Mapping[str, str] | None = None) -> bool:
    """True when ``fd`` is the stream ``$JOURNAL_STREAM`` names (same device and inode)."""
    env = os.environ if env is None else env
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


class JournalFormatter(logging.Formatter):
    """``<priority>`` before every line of a record, no timestamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stderr_formatter(fd: int = 2, env: Mapping[str, str] | None = None) -> logging.Formatter:
    """The formatter for a handler writing to ``fd``: journald's lines or today's plain ones."""
    return JournalFormatter() if stream_is_journal(fd, env) else logging.Formatter(PLAIN_FORMAT)

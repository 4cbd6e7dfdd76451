"""The PNG output: the displayed picture kept in a file, for headless panels and tests.

Contract: the file at ``path`` is replaced atomically within 1 second of any change of
what is shown, and not more often than needed.  Concretely:

* a change is written at once when no write happened in the last ``min_interval``
  seconds (0.5 s by default), otherwise at the end of that window: the main loop wakes
  at :meth:`PngOutput.next_deadline` and calls :meth:`PngOutput.flush`;
* a burst of changes therefore costs at most one write per window, the last picture
  always being written;
* nothing is written while nothing changes (an empty dirty list, or a picture equal to
  the last one written);
* the main loop only copies the frame's bytes (a few ms at 1920x1080); encoding
  (zlib level 1: fast, still a real PNG) and the write happen on a worker thread;
* the write is the SD-card-safe sequence: temporary file in the same folder, fsync,
  ``os.replace``, fsync of the folder.  Readers see the old or the new file, whole.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pygame
from PIL import Image

from player.errors import OutputError
from player.render.outputs.base import Output, Size

log = logging.getLogger(__name__)

COMPRESS_LEVEL = 1  # zlib: ~5x faster than the default 6 for signage pictures


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves the old or new file."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def encode_png(raw: bytes, size: Size, raw_mode: str = "BGRX") -> bytes:
    """PNG bytes of an RGB picture given as ``raw_mode`` pixels (pygame's "BGRA" bytes)."""
    img = Image.frombytes("RGB", size, raw, "raw", raw_mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=COMPRESS_LEVEL)
    return buf.getvalue()


class PngOutput(Output):
    """Keeps ``path`` showing the current picture.  Build it with :func:`open_png`."""

    name = "png"

    def __init__(self, path: Path, size: Size, min_interval: float = 0.5) -> None:
        super().__init__(size)
        if min_interval < 0 or min_interval > 0.9:
            raise ValueError("min_interval must be within [0, 0.9] s to honour the 1 s rule")
        self.path = Path(path)
        self.min_interval = min_interval
        self.writes = 0  # files written (observable in tests and statistics)
        self._frame: pygame.Surface | None = None  # the last frame shown, not yet saved
        self._last_submit = float("-inf")  # monotonic time of the last hand-off
        self._last_written: bytes | None = None
        self._cond = threading.Condition()
        self._job: bytes | None = None  # latest snapshot waiting for the worker
        self._busy = False
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="png-output", daemon=True)
        self._worker.start()
        self.status = f"ok: writing {self.path}"

    # -- main-loop side -----------------------------------------------------------

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        shown_at = self._shown()
        if dirty is not None and len(dirty) == 0:
            return shown_at
        self._frame = frame
        now = time.monotonic()
        if now - self._last_submit >= self.min_interval:
            self._submit(now)
        return shown_at

    def next_deadline(self) -> float | None:
        if self._frame is None:
            return None
        return self._last_submit + self.min_interval

    def flush(self, now: float) -> None:
        """Save the last shown frame if its window has ended.

        Call it between frames: the frame surface must hold a finished picture.
        """
        if self._frame is not None and now - self._last_submit >= self.min_interval:
            self._submit(now)

    def _submit(self, now: float) -> None:
        frame = self._frame
        assert frame is not None
        raw = pygame.image.tobytes(frame, "BGRA")  # a copy; the loop may redraw now
        self._frame = None
        self._last_submit = now
        with self._cond:
            self._job = raw  # an older snapshot still waiting is superseded
            self._cond.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted picture is on disk; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._job is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        """Write the last picture if it is pending, then stop the worker."""
        if self.closed:
            return
        if self._frame is not None and self._worker.is_alive():
            self._submit(time.monotonic())
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout=10)
        super().close()

    # -- worker side ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._job is None:
                    return
                raw, self._job = self._job, None
                self._busy = True
            try:
                self._save(raw)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _save(self, raw: bytes) -> None:
        if raw == self._last_written:
            return
        try:
            write_atomically(self.path, encode_png(raw, self.size))
        except Exception as e:  # the loop must go on; the heartbeat reports it
            self.healthy = False
            self.status = f"error writing {self.path}: {e}"
            log.error("%s", self.status)
            return
        self._last_written = raw
        self.writes += 1
        if not self.healthy:
            self.healthy = True
            self.status = f"ok: writing {self.path}"


def open_png(path: Path | None, size: Size | None, min_interval: float = 0.5) -> PngOutput:
    """A PNG output; ``display.path`` and ``display.size`` are required."""
    if path is None:
        raise OutputError("output png needs display.path (where to write the picture)")
    if size is None:
        raise OutputError("output png needs display.size, e.g. [1920, 1080]")
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"output png: folder {path.parent} does not exist")
    return PngOutput(path, size, min_interval)

"""An output standing in for a display that is not there yet.

Under KMS, ``/dev/fb0`` exists only if a screen was connected at boot; a panel
powered before its screen must not stay dark, nor restart in a loop. The player
runs with this stand-in (alerts and playlists are received and persisted, the
heartbeat says ``waiting for /dev/fb0``) and tries to open the real output again
every few seconds; :attr:`WaitingOutput.ready` holds it once it opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pygame

from player.errors import DisplayUnavailable, OutputError

from .base import Output, Size

log = logging.getLogger(__name__)

RETRY_S = 5.0


class WaitingOutput(Output):
    """Shows nothing; retries ``opener`` every ``retry_s`` seconds from :meth:`flush`."""

    name = "waiting"

    def __init__(self, size: Size, opener: Callable[[], Output], reason: str, retry_s: float = RETRY_S) -> None:
        super().__init__(size)
        self.opener = opener
        self.retry_s = retry_s
        self.healthy = False
        self.status = reason
        self.ready: Output | None = None
        self._next_try = time.monotonic() + retry_s

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        return time.time()

    def next_deadline(self) -> float | None:
        return None if self.ready is not None else self._next_try

    def flush(self, now: float) -> None:
        if self.ready is not None or now < self._next_try:
            return
        self._next_try = now + self.retry_s
        try:
            self.ready = self.opener()
        except DisplayUnavailable as exc:
            self.status = str(exc)
        except OutputError as exc:
            self.status = str(exc)
            log.warning("display still unusable: %s", exc)
        else:
            log.info("display %s is here (%dx%d)", self.ready.name, *self.ready.size)

    def close(self) -> None:
        super().close()

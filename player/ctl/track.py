"""Waiting for the panels' answers (events) to something panelctl published.

:class:`Tracker` subscribes to every panel's events *before* the caller
publishes, then collects one answer per panel until every panel it waits for
has answered or the time-out passes, showing a live progress line on stderr.

``expected`` panels must answer (a named target, or a group member known from
its heartbeat's ``groups`` field); ``possible`` panels may (online panels whose
group membership is unknown): their silence is reported, not counted as a
failure.

Example::

    tracker = Tracker(client, "signage", expected={"p1"}, possible=set(),
                      match=lambda pid, ev: ("applied", "") if ev["type"] == "playlist.applied" else None,
                      success="applied")
    tracker.start()                     # subscribed: publish now
    client.publish(...)
    answers = tracker.wait(timeout=60)  # {"p1": Answer("applied", "")}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .client import CtlClient, Message

Match = Callable[[str, dict[str, Any]], "tuple[str, str] | None"]
PROGRESS_TICK = 0.2  # seconds between refreshes of the progress line while answers come in


@dataclass(frozen=True)
class Answer:
    outcome: str  # the success word, "rejected", or another word the matcher returns
    detail: str
    after_s: float


class Progress:
    """One status line on a terminal (rewritten in place), else a line per change."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = ""
        self._shown = ""

    def update(self, text: str, key: str, final: bool = False) -> None:
        """Show ``text``; without a terminal only when ``key`` (the counts) changed, or as the ``final`` line."""
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        elif key != self._last or (final and text != self._shown):
            self.stream.write(text + "\n")
            self.stream.flush()
            self._shown = text
        self._last = key

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Tracker:
    """Collects one answer per panel from ``P/panels/+/events``.

    The answers are read on the client's network thread as they arrive (see
    :meth:`CtlClient.listen`); the caller's thread only refreshes the progress line
    a few times a second and returns as soon as the last awaited panel answered.
    """

    def __init__(self, client: CtlClient, prefix: str, *, expected: set[str], possible: set[str],
                 match: Match, success: str, progress: Progress | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.expected = set(expected)
        self.possible = set(possible) - self.expected
        self.match = match
        self.success = success
        self.progress = progress or Progress()
        self.answers: dict[str, Answer] = {}  # may be filled before start(); then only under _cond
        self._start = 0.0
        self._cond = threading.Condition()
        self._awaited: set[str] = set()
        self._waiting: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._total = 0

    def start(self) -> None:
        """Subscribe to the events; publish what is to be answered only after this returns."""
        with self._cond:
            self._awaited = self.expected | self.possible
            self._waiting = self.waiting_for()
            self._total = len(self._awaited | set(self.answers))
            self._counts = Counter(a.outcome for a in self.answers.values())
            self._start = time.monotonic()
        self.client.listen(self._take)
        self.client.subscribe([f"{self.prefix}/panels/+/events"])

    def _panel_of(self, topic: str) -> str | None:
        head = f"{self.prefix}/panels/"
        if topic.startswith(head) and topic.endswith("/events"):
            return topic[len(head):-len("/events")] or None
        return None

    def waiting_for(self) -> set[str]:
        return (self.expected | self.possible) - set(self.answers)

    def _take(self, msg: Message) -> bool:
        """One event (network thread): record it when it answers for a panel not heard yet.
        Messages on other topics are left to the client's queue (``False``)."""
        panel = self._panel_of(msg.topic)
        if panel is None:
            return False
        if panel in self.answers:
            return True
        try:
            event = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            return True
        if not isinstance(event, dict):
            return True
        result = self.match(panel, event)
        if result is None:
            return True
        with self._cond:
            if panel in self.answers:
                return True
            self.answers[panel] = Answer(result[0], result[1], max(0.0, msg.received - self._start))
            self._counts[result[0]] += 1
            self._waiting.discard(panel)
            self._total += panel not in self._awaited
            if not self._waiting:
                self._cond.notify_all()
        return True

    def _line(self, deadline: float, waiting: bool) -> tuple[str, str]:
        with self._cond:
            counts, total = Counter(self._counts), self._total
        ok, rejected = counts[self.success], counts["rejected"]
        other = sum(counts.values()) - ok - rejected
        left = max(0.0, deadline - time.monotonic())
        text = f"{ok}/{total} {self.success}, {rejected} rejected"
        if other:
            text += f", {other} other"
        key = text
        if waiting:
            text += f", waiting {left:.0f} s"
        return text, key

    def wait(self, timeout: float) -> dict[str, Answer]:
        """Collect answers until every awaited panel answered or ``timeout`` seconds passed."""
        deadline = self._start + timeout
        try:
            while True:
                with self._cond:
                    waiting = bool(self._waiting)
                now = time.monotonic()
                if not waiting or now >= deadline:
                    break
                self.progress.update(*self._line(deadline, True))
                with self._cond:
                    self._cond.wait_for(lambda: not self._waiting, min(deadline - now, PROGRESS_TICK))
        finally:
            self.client.listen(None)
        self.progress.update(*self._line(deadline, False), final=True)
        self.progress.done()
        with self._cond:
            return dict(self.answers)


def awaited(fleet: dict[str, Any], panels: list[str], groups: list[str],
            everyone: bool = False) -> tuple[set[str], set[str]]:
    """``(expected, possible)`` answerers for messages sent to ``panels``, ``groups`` or everyone.

    ``fleet`` maps panel ids to :class:`~player.ctl.status.PanelState`. Named
    panels are expected. For groups, the panels online now are expected when
    their heartbeat lists their ``groups`` and one of them is targeted, and
    possible when their heartbeat does not say.
    """
    expected = set(panels)
    possible: set[str] = set()
    for pid, state in fleet.items():
        if state.online is not True or pid in expected:
            continue
        if everyone:
            expected.add(pid)
            continue
        if not groups:
            continue
        member_of = (state.heartbeat or {}).get("groups")
        if isinstance(member_of, list):
            if set(groups) & {g for g in member_of if isinstance(g, str)}:
                expected.add(pid)
        else:
            possible.add(pid)
    return expected, possible

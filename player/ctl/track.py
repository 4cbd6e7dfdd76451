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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .client import CtlClient

Match = Callable[[str, dict[str, Any]], "tuple[str, str] | None"]


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

    def update(self, text: str, key: str) -> None:
        """Show ``text``; without a terminal only when ``key`` (the counts) changed."""
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        elif key != self._last:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = key

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Tracker:
    """Collects one answer per panel from ``P/panels/+/events``."""

    def __init__(self, client: CtlClient, prefix: str, *, expected: set[str], possible: set[str],
                 match: Match, success: str, progress: Progress | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.expected = set(expected)
        self.possible = set(possible) - self.expected
        self.match = match
        self.success = success
        self.progress = progress or Progress()
        self.answers: dict[str, Answer] = {}
        self._start = 0.0

    def start(self) -> None:
        """Subscribe to the events; publish what is to be answered only after this returns."""
        self.client.subscribe([f"{self.prefix}/panels/+/events"])
        self._start = time.monotonic()

    def _panel_of(self, topic: str) -> str | None:
        head = f"{self.prefix}/panels/"
        if topic.startswith(head) and topic.endswith("/events"):
            return topic[len(head):-len("/events")] or None
        return None

    def waiting_for(self) -> set[str]:
        return (self.expected | self.possible) - set(self.answers)

    def _line(self, deadline: float, total: int, counts: Counter[str], waiting: bool) -> tuple[str, str]:
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
        # Kept up to date answer by answer: a fleet of hundreds answers within a second.
        awaited = self.expected | self.possible
        waiting = self.waiting_for()
        total = len(awaited | set(self.answers))
        counts = Counter(a.outcome for a in self.answers.values())
        while waiting:
            text, key = self._line(deadline, total, counts, True)
            self.progress.update(text, key)
            now = time.monotonic()
            if now >= deadline:
                break
            # On a terminal, wake each second to refresh the count-down.
            msg = self.client.next_message(min(deadline, now + 1.0) if self.progress.tty else deadline)
            if msg is None:
                continue
            panel = self._panel_of(msg.topic)
            if panel is None or panel in self.answers:
                continue
            try:
                event = json.loads(msg.payload)
            except (ValueError, UnicodeDecodeError):
                continue
            if not isinstance(event, dict):
                continue
            result = self.match(panel, event)
            if result is not None:
                self.answers[panel] = Answer(result[0], result[1], time.monotonic() - self._start)
                counts[result[0]] += 1
                waiting.discard(panel)
                total += panel not in awaited
        text, key = self._line(deadline, total, counts, bool(waiting))
        self.progress.update(text, key)
        self.progress.done()
        return self.answers


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

"""Sleep hours (``display.sleep``) and the screen's state: pure logic, the clock passed in.

A town switches its panels off at night; an alert must still reach the street.
The screen is in one of three states, which the heartbeat's ``screen`` field reports:

* ``on``: outside the sleep hours, the panel shows its playlist (or an alert);
* ``asleep``: inside a sleep window (or after the ``sleep`` command): the picture is
  off, the backlight powered down, nothing is drawn;
* ``woken``: inside a sleep window, but on, because an alert at or above
  ``alerts.wake_level`` is active or a crew sent ``wake``.

Windows are read on the panel's wall clock with the slide schedule's rules
(:mod:`player.schedule`): ``"23:00-06:00"`` crosses midnight and belongs to the day
it starts on; ``24:00`` is accepted as an end; daylight saving time changes are
handled the same way (a window over the repeated autumn hour lasts both passes).

Example::

    windows = parse_sleep_windows(root.child("display").child("sleep"))
    hours = SleepHours(windows, ZoneInfo("Europe/Paris"))
    hours.asleep(datetime.now(timezone.utc))          # True between 23:00 and 06:00
    decide(scheduled=True, alert_wakes=False, woken=False, slept=False)   # "asleep"
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from .content import DAYS, Schedule, parse_days
from .hw.config import parse_window
from .schedule import is_active, next_change
from .validate import Node, describe

SCREEN_STATES = ("on", "asleep", "woken")
WEEK_MIN = 7 * 1440
MAX_WINDOWS = 32


@dataclass(frozen=True)
class SleepWindow:
    """``start_min``..``end_min`` (minutes after midnight, end may be 1440 for 24:00 and
    not after the start when the window crosses midnight) on ``days`` (0 = Monday; None:
    every day)."""

    start_min: int
    end_min: int
    days: frozenset[int] | None = None

    def schedule(self) -> Schedule:
        end = None if self.end_min == 1440 else _clock(self.end_min)
        return Schedule(days=self.days, hours=((_clock(self.start_min), end),))

    def week_spans(self) -> list[tuple[int, int]]:
        """The minutes of the week (Monday 00:00 = 0) it covers, as ``[start, end)`` spans."""
        length = (self.end_min - self.start_min) % 1440 or 1440
        spans: list[tuple[int, int]] = []
        for day in sorted(self.days if self.days is not None else range(7)):
            start = day * 1440 + self.start_min
            end = start + length
            if end <= WEEK_MIN:
                spans.append((start, end))
            else:  # Sunday night into Monday morning
                spans += [(start, WEEK_MIN), (0, end - WEEK_MIN)]
        return spans

    def __str__(self) -> str:
        text = f"{_hhmm(self.start_min)}-{_hhmm(self.end_min)}"
        if self.days is not None:
            text += " " + ",".join(DAYS[d] for d in sorted(self.days))
        return text


def _clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _week_time(minute: int) -> str:
    return f"{DAYS[minute // 1440 % 7]} {_hhmm(minute % 1440)}"


def parse_sleep_windows(node: Node) -> tuple[tuple[SleepWindow, ...], list[str]]:
    """Read ``display.sleep``: the windows, and warnings for ``check``.

    Each item is ``"HH:MM-HH:MM"`` or ``{hours: "HH:MM-HH:MM", days: [mon, …]}``.
    Problems (a bad window, an unknown day, two windows that overlap) go to
    ``node.problems``, each naming its key; a set of windows covering the whole week
    is allowed (the panel then lights only for alerts and ``wake``) with a warning.
    """
    items = node.items("sleep", None, max_items=MAX_WINDOWS)
    if items is None:
        return (), []
    windows: list[tuple[str, SleepWindow]] = []
    for item in items:
        window = _sleep_item(item)
        if window is not None:
            windows.append((item.path, window))
    for i, (path_a, a) in enumerate(windows):
        spans_a = a.week_spans()
        for path_b, b in windows[i + 1:]:
            common = _overlap(spans_a, b.week_spans())
            if common is not None:
                node.problems.add(path_b, f'"{b}" overlaps {path_a} "{a}" from {_week_time(common[0])} '
                                          f"to {_week_time(common[1])}; make the windows meet, not overlap")
    warnings = []
    covered = sum(end - start for _, w in windows for start, end in w.week_spans())
    if windows and covered >= WEEK_MIN and not node.problems:
        warnings.append(f"{node.path}.sleep: the windows cover the whole week: the screen lights "
                        "only for alerts and the wake command")
    return tuple(w for _, w in windows), warnings


def _sleep_item(item: Node) -> SleepWindow | None:
    days: frozenset[int] | None = None
    if isinstance(item.value, dict):
        if not item.is_mapping({"hours", "days"}):
            return None
        text = item.string("hours")
        where = f"{item.path}.hours"
        days = parse_days(item)
    elif isinstance(item.value, str):
        text, where = item.value, item.path
    else:
        item.problems.add(item.path, f'expected "HH:MM-HH:MM" or a mapping with hours and days, '
                                     f"got {describe(item.value)}")
        return None
    if text is None:
        return None
    try:
        window = parse_window(text)
    except ValueError as exc:
        item.problems.add(where, f"{describe(text)}: {exc}")
        return None
    return SleepWindow(window.start_min, window.end_min, days)


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The first common span of two lists of week spans, or None."""
    found = [(max(s0, s1), min(e0, e1)) for s0, e0 in a for s1, e1 in b if max(s0, s1) < min(e0, e1)]
    return min(found) if found else None


class SleepHours:
    """The configured windows on the panel's clock: is it sleep time, and until when."""

    def __init__(self, windows: tuple[SleepWindow, ...], tz: tzinfo) -> None:
        self.windows = windows
        self.tz = tz
        self._schedules = tuple(w.schedule() for w in windows)

    def asleep(self, now: datetime) -> bool:
        """Whether the aware instant ``now`` falls inside a sleep window."""
        return any(is_active(s, now, self.tz) for s in self._schedules)

    def next_change(self, now: datetime, horizon: timedelta = timedelta(days=8)) -> datetime | None:
        """The first instant after ``now`` at which :meth:`asleep` changes (UTC); None when
        it does not within ``horizon`` (no windows, or windows covering the whole week)."""
        if not self._schedules:
            return None
        state = self.asleep(now)
        moment = now
        limit = now + horizon
        while moment < limit:
            changes = [c for c in (next_change(s, moment, self.tz, limit - moment) for s in self._schedules)
                       if c is not None]
            if not changes:
                return None
            moment = min(changes)
            if self.asleep(moment) != state:
                return moment
        return None

    def next_wake(self, now: datetime) -> datetime | None:
        """When the schedule next turns the screen on: the end of the current sleep period,
        or of the next one if the screen is on now; None without windows."""
        change = self.next_change(now)
        if change is None or self.asleep(now):
            return change
        return self.next_change(change)


def decide(*, scheduled: bool, alert_wakes: bool, woken: bool, slept: bool) -> str:
    """The screen state from its causes.

    ``scheduled``: inside a sleep window; ``alert_wakes``: an alert at or above
    ``alerts.wake_level`` is active; ``woken``: a ``wake`` command is in force;
    ``slept``: a ``sleep`` command is in force. An alert always wins; then the
    crew's last command; then the schedule.
    """
    if alert_wakes:
        return "woken" if scheduled or slept else "on"
    if slept:
        return "asleep"
    if scheduled:
        return "woken" if woken else "asleep"
    return "on"

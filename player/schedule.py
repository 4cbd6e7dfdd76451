"""When a slide may play (CONTRACT §4 ``schedule``): pure functions, the clock passed in.

A :class:`~player.content.Schedule` mixes two kinds of limits:

* ``start`` (inclusive) and ``end`` (exclusive) are instants, compared as such
  whatever their offset;
* ``days`` and ``hours`` are read on the panel's **wall clock** (``tz``). A
  window that crosses midnight (``22:00-02:00``) belongs to the day it starts
  on: with ``days=[sat]`` it runs from Saturday 22:00 to Sunday 02:00.

Wall-clock reading decides what happens when daylight saving time changes
(Europe/Paris shown; any zone behaves the same way):

* spring forward (2026-03-29, 02:00 → 03:00): local 02:00-03:00 does not
  exist, so a ``02:00-03:00`` window is empty that day and ``01:30-02:30``
  lasts 30 minutes;
* fall back (2026-10-25, 03:00 → 02:00): local 02:00-03:00 happens twice and
  a window covering it is active during **both** passes (``02:00-03:00`` lasts
  two real hours that day). A reader of the panel sees the same local time on
  the clock zone both times; showing the slide both times is what they expect.

Every datetime this module returns is aware and in UTC: comparing two aware
datetimes that share one ``ZoneInfo`` ignores ``fold``, which is wrong for
instants inside the repeated autumn hour.

Example::

    paris = ZoneInfo("Europe/Paris")
    sched = Schedule(days=frozenset({5, 6}), hours=((time(8), time(12)),))
    is_active(sched, datetime(2026, 12, 5, 9, tzinfo=paris), paris)     # True (a Saturday)
    next_change(sched, datetime(2026, 12, 5, 9, tzinfo=paris), paris)   # 2026-12-05 11:00 UTC
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from .content import Schedule, Slide

UTC = timezone.utc
DEFAULT_HORIZON = timedelta(days=8)
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)


def is_active(schedule: Schedule | None, now: datetime, tz: tzinfo) -> bool:
    """Whether ``schedule`` allows playing at the aware instant ``now``; ``None`` always does."""
    if schedule is None:
        return True
    return _active(schedule, _utc(now), tz)


def next_change(schedule: Schedule | None, now: datetime, tz: tzinfo,
                horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
    """The first instant after ``now`` at which :func:`is_active` changes value, in UTC.

    The answer is exact: ``is_active`` keeps its value on ``[now, result)`` and
    has the other value at ``result``. ``None`` when it does not change within
    ``horizon`` (the caller asks again later).
    """
    if schedule is None:
        return None
    start = _utc(now)
    limit = start + horizon
    state = _active(schedule, start, tz)
    for instant in _candidates(schedule, start, limit, tz):
        if _active(schedule, instant, tz) != state:
            return instant
    return None


class Rotation:
    """Which slide plays: the playlist in order, skipping slides not eligible now.

    Example::

        rotation = Rotation(playlist.slides)
        slide = rotation.next(now, tz)        # at start and at each slide's end
        if slide is None:                     # nothing eligible: idle screen
            retry_at = rotation.next_eligible(now, tz)
    """

    def __init__(self, slides: Sequence[Slide]) -> None:
        self._slides: tuple[Slide, ...] = tuple(slides)
        self._index = -1
        self._current: Slide | None = None

    @property
    def slides(self) -> tuple[Slide, ...]:
        return self._slides

    @property
    def current(self) -> Slide | None:
        """The slide chosen by the last :meth:`next`, ``None`` before it or while idle."""
        return self._current

    def next(self, now: datetime, tz: tzinfo) -> Slide | None:
        """Move to the next eligible slide after the current one (wrapping) and return it.

        The current slide itself comes back only when it is the only eligible one.
        ``None`` when no slide is eligible; the position is kept so the rotation
        resumes where it was.
        """
        index = self._find(now, tz)
        if index is None:
            self._current = None
            return None
        self._index = index
        self._current = self._slides[index]
        return self._current

    def peek(self, now: datetime, tz: tzinfo) -> Slide | None:
        """The slide :meth:`next` would return at ``now``, without moving (to prepare it ahead)."""
        index = self._find(now, tz)
        return None if index is None else self._slides[index]

    def _find(self, now: datetime, tz: tzinfo) -> int | None:
        count = len(self._slides)
        for step in range(1, count + 1):
            index = (self._index + step) % count
            if is_active(self._slides[index].schedule, now, tz):
                return index
        return None

    def next_eligible(self, now: datetime, tz: tzinfo,
                      horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
        """When some slide becomes eligible (UTC): ``now`` if one already is, ``None`` if none
        will within ``horizon``."""
        soonest: datetime | None = None
        for slide in self._slides:
            if is_active(slide.schedule, now, tz):
                return _utc(now)
            change = next_change(slide.schedule, now, tz, horizon)
            if change is not None and (soonest is None or change < soonest):
                soonest = change
        return soonest

    def replace(self, slides: Sequence[Slide]) -> None:
        """Take a new playlist; the next :meth:`next` starts from its first eligible slide."""
        self._slides = tuple(slides)
        self._index = -1
        self._current = None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _active(schedule: Schedule, instant: datetime, tz: tzinfo) -> bool:
    if schedule.start is not None and instant < schedule.start:
        return False
    if schedule.end is not None and instant >= schedule.end:
        return False
    return _wall_allows(schedule, instant.astimezone(tz).replace(tzinfo=None))


def _day_allowed(schedule: Schedule, day: date) -> bool:
    return schedule.days is None or day.weekday() in schedule.days


def _wall_allows(schedule: Schedule, wall: datetime) -> bool:
    day = wall.date()
    if schedule.hours is None:
        return _day_allowed(schedule, day)
    clock = wall.time()
    for begin, end in schedule.hours:
        if end is None or end > begin:
            if begin <= clock and (end is None or clock < end) and _day_allowed(schedule, day):
                return True
        else:
            # Crosses midnight: the evening part belongs to today, the morning
            # part to the window that started yesterday.
            if clock >= begin and _day_allowed(schedule, day):
                return True
            if clock < end and day > date.min and _day_allowed(schedule, day - _DAY):
                return True
    return False


def _candidates(schedule: Schedule, after: datetime, limit: datetime, tz: tzinfo) -> list[datetime]:
    """Every instant in ``(after, limit]`` where ``is_active`` might change, sorted.

    The value depends on the instant only through ``start``/``end`` and the
    local wall time, which changes continuously except at UTC-offset changes.
    So it can change only where the wall clock reaches a boundary (midnight, a
    window edge) or jumps over one: the boundary's instant(s), or the offset
    change itself when the boundary falls in a skipped or repeated hour.
    Extra candidates are harmless; the caller tests each one.
    """
    points: set[datetime] = set()
    for bound in (schedule.start, schedule.end):
        if bound is not None and after < bound <= limit:
            points.add(bound.astimezone(UTC))
    low = after if schedule.start is None else max(after, schedule.start)
    high = limit if schedule.end is None else min(limit, schedule.end)
    if (schedule.days is not None or schedule.hours is not None) and low <= high:
        clocks = {time(0)}
        for begin, end in schedule.hours or ():
            clocks.add(begin)
            if end is not None:
                clocks.add(end)
        day = low.astimezone(tz).date() - _DAY if low.astimezone(tz).date() > date.min else date.min
        last = high.astimezone(tz).date() + _DAY
        while day <= last:
            for clock in clocks:
                for instant in _instants(datetime.combine(day, clock), tz):
                    if after < instant <= limit:
                        points.add(instant)
            if day == date.max:
                break
            day += _DAY
    return sorted(points)


def _instants(wall: datetime, tz: tzinfo) -> Iterator[datetime]:
    """The instants at which the wall clock reaches or jumps over ``wall``."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    yield first
    if first != second:
        # ``wall`` is skipped or repeated: the offset change lies between the two readings.
        yield second
        yield _offset_change(min(first, second), max(first, second), tz)


def _offset_change(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The first instant in ``(low, high]`` with another UTC offset than ``low`` (bisection)."""
    before = low.astimezone(tz).utcoffset()
    lo, hi = 0, (high - low) // _MICROSECOND
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (low + mid * _MICROSECOND).astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return low + hi * _MICROSECOND

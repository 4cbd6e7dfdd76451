"""Schedules (player.schedule): windows, weekdays, hours, time zones, both DST changes, rotation."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.content import Schedule, TextSlide, parse_playlist
from player.schedule import Rotation, is_active, next_change

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")   # 30-minute DST shift
SANTIAGO = ZoneInfo("America/Santiago")       # DST changes at local midnight
US = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


def hours(*windows: str) -> tuple[tuple[time, time | None], ...]:
    out = []
    for window in windows:
        a, b = window.split("-")
        end = None if b == "24:00" else time.fromisoformat(b)
        out.append((time.fromisoformat(a), end))
    return tuple(out)


def changes(schedule: Schedule, start: datetime, stop: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every change instant in (start, stop], following next_change."""
    found = []
    moment = start
    while True:
        nxt = next_change(schedule, moment, tz)
        if nxt is None or nxt > stop:
            return found
        found.append(nxt)
        moment = nxt


def schedule_from_json(data: dict) -> Schedule:
    playlist = parse_playlist(json.dumps({"id": "p", "version": 1, "slides": [
        {"id": "s", "type": "text", "title": "x", "schedule": data}]}))
    assert playlist.slides[0].schedule is not None
    return playlist.slides[0].schedule


# -- is_active ---------------------------------------------------------------

def test_no_schedule_is_always_active_and_never_changes() -> None:
    assert is_active(None, utc(2026, 1, 1), PARIS)
    assert next_change(None, utc(2026, 1, 1), PARIS) is None
    assert is_active(Schedule(), utc(2026, 1, 1), PARIS)
    assert next_change(Schedule(), utc(2026, 1, 1), PARIS) is None


def test_date_window_start_inclusive_end_exclusive_across_offsets() -> None:
    sched = schedule_from_json({"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-25T00:00:00+01:00"})
    # The same instants written with another offset.
    assert not is_active(sched, utc(2026, 11, 30, 23) - US, PARIS)
    assert is_active(sched, utc(2026, 11, 30, 23), PARIS)
    assert is_active(sched, datetime(2026, 12, 24, 17, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York")), PARIS)
    assert not is_active(sched, utc(2026, 12, 24, 23), PARIS)
    assert next_change(sched, utc(2026, 11, 25), PARIS) == utc(2026, 11, 30, 23)
    assert next_change(sched, utc(2026, 12, 20), PARIS) == utc(2026, 12, 24, 23)
    assert next_change(sched, utc(2026, 12, 24, 23), PARIS) is None  # over for good


def test_weekdays_read_on_the_panel_clock() -> None:
    weekend = Schedule(days=frozenset({5, 6}))
    # Friday 23:30 UTC is already Saturday 00:30 in Paris (winter, +01:00).
    assert is_active(weekend, utc(2026, 12, 4, 23, 30), PARIS)
    assert not is_active(weekend, utc(2026, 12, 4, 23, 30), UTC)
    # Sunday 23:30 UTC is Monday in Paris.
    assert not is_active(weekend, utc(2026, 12, 6, 23, 30), PARIS)
    assert is_active(weekend, utc(2026, 12, 6, 22, 59), PARIS)
    assert next_change(weekend, utc(2026, 12, 2), PARIS) == utc(2026, 12, 4, 23)
    assert next_change(weekend, utc(2026, 12, 5, 12), PARIS) == utc(2026, 12, 6, 23)


def test_hour_windows_edges() -> None:
    sched = Schedule(hours=hours("08:00-12:00", "14:00-19:00"))
    assert not is_active(sched, paris(2026, 12, 5, 7, 59, 59, 999999), PARIS)
    assert is_active(sched, paris(2026, 12, 5, 8), PARIS)
    assert is_active(sched, paris(2026, 12, 5, 11, 59, 59, 999999), PARIS)
    assert not is_active(sched, paris(2026, 12, 5, 12), PARIS)
    assert not is_active(sched, paris(2026, 12, 5, 13, 59), PARIS)
    assert is_active(sched, paris(2026, 12, 5, 14), PARIS)
    assert not is_active(sched, paris(2026, 12, 5, 19), PARIS)
    assert changes(sched, paris(2026, 12, 5, 0), paris(2026, 12, 6, 0), PARIS) == [
        paris(2026, 12, 5, h) for h in (8, 12, 14, 19)]


def test_contract_example_schedule() -> None:
    sched = schedule_from_json({"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-25T00:00:00+01:00",
                                "days": ["sat", "sun"], "hours": ["08:00-12:00", "14:00-19:00"]})
    assert is_active(sched, paris(2026, 12, 5, 9), PARIS)          # Saturday morning
    assert not is_active(sched, paris(2026, 12, 4, 9), PARIS)      # Friday
    assert not is_active(sched, paris(2026, 11, 28, 9), PARIS)     # a Saturday before start
    assert not is_active(sched, paris(2026, 12, 26, 9), PARIS)     # a Saturday after end
    # From Monday 1st, the next change is Saturday 5th at 08:00 local.
    assert next_change(sched, paris(2026, 12, 1, 0), PARIS) == paris(2026, 12, 5, 8)


def test_window_until_24_00() -> None:
    sched = schedule_from_json({"hours": ["20:00-24:00"], "days": ["fri"]})
    assert is_active(sched, paris(2026, 12, 4, 23, 59, 59, 999999), PARIS)
    assert not is_active(sched, paris(2026, 12, 5, 0), PARIS)
    assert next_change(sched, paris(2026, 12, 4, 21), PARIS) == paris(2026, 12, 5, 0)
    assert next_change(sched, paris(2026, 12, 5, 0), PARIS) == paris(2026, 12, 11, 20)


def test_window_crossing_midnight_belongs_to_its_start_day() -> None:
    sched = schedule_from_json({"hours": ["22:00-02:00"], "days": ["sat"]})
    assert not is_active(sched, paris(2026, 12, 4, 23), PARIS)     # Friday evening
    assert not is_active(sched, paris(2026, 12, 5, 1), PARIS)      # Saturday 01:00: Friday's window
    assert not is_active(sched, paris(2026, 12, 5, 21, 59), PARIS)
    assert is_active(sched, paris(2026, 12, 5, 22), PARIS)
    assert is_active(sched, paris(2026, 12, 6, 1, 59), PARIS)      # Sunday 01:59: Saturday's window
    assert not is_active(sched, paris(2026, 12, 6, 2), PARIS)
    assert not is_active(sched, paris(2026, 12, 6, 23), PARIS)     # Sunday evening
    assert changes(sched, paris(2026, 12, 1), paris(2026, 12, 8), PARIS) == [
        paris(2026, 12, 5, 22), paris(2026, 12, 6, 2)]


def test_window_whose_end_equals_its_start_lasts_a_day() -> None:
    sched = Schedule(days=frozenset({0}), hours=hours("08:00-08:00"))
    assert not is_active(sched, paris(2026, 12, 7, 7, 59), PARIS)   # Monday before 08:00
    assert is_active(sched, paris(2026, 12, 7, 8), PARIS)
    assert is_active(sched, paris(2026, 12, 8, 7, 59), PARIS)       # Tuesday, still Monday's window
    assert not is_active(sched, paris(2026, 12, 8, 8), PARIS)


def test_panel_timezone_versus_utc() -> None:
    sched = Schedule(hours=hours("08:00-09:00"))
    assert is_active(sched, utc(2026, 1, 15, 7, 30), PARIS)     # 08:30 CET
    assert not is_active(sched, utc(2026, 1, 15, 7, 30), UTC)
    assert is_active(sched, utc(2026, 7, 15, 6, 30), PARIS)     # 08:30 CEST
    assert not is_active(sched, utc(2026, 7, 15, 7, 30), PARIS)
    assert next_change(sched, utc(2026, 7, 15), PARIS) == utc(2026, 7, 15, 6)
    assert next_change(sched, utc(2026, 7, 15), NEW_YORK) == utc(2026, 7, 15, 12)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        is_active(Schedule(hours=hours("08:00-09:00")), datetime(2026, 1, 1), PARIS)


# -- DST in Europe/Paris --------------------------------------------------------
# Spring: 2026-03-29 01:00 UTC, local 02:00 CET becomes 03:00 CEST.
# Autumn: 2026-10-25 01:00 UTC, local 03:00 CEST becomes 02:00 CET.

def test_spring_forward_skipped_hour_is_an_empty_window() -> None:
    sched = Schedule(hours=hours("02:00-03:00"))
    moment = utc(2026, 3, 28, 23)  # Sunday 00:00 local
    while moment < utc(2026, 3, 29, 22):
        assert not is_active(sched, moment, PARIS), moment
        moment += timedelta(minutes=1)
    assert next_change(sched, utc(2026, 3, 28, 23), PARIS) == utc(2026, 3, 30, 0)  # Monday 02:00 CEST
    assert is_active(sched, utc(2026, 3, 28, 1), PARIS)  # the day before, 02:00 CET


def test_spring_forward_windows_overlapping_the_gap() -> None:
    before = Schedule(hours=hours("01:30-02:30"))
    assert changes(before, utc(2026, 3, 28, 23), utc(2026, 3, 29, 12), PARIS) == [
        utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1)]  # 30 minutes, cut by the jump
    after = Schedule(hours=hours("02:30-04:00"))
    assert changes(after, utc(2026, 3, 28, 23), utc(2026, 3, 29, 12), PARIS) == [
        utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]      # opens at the jump, 03:00 CEST
    sunday = Schedule(days=frozenset({6}))             # a 23-hour Sunday
    assert changes(sunday, utc(2026, 3, 27), utc(2026, 3, 31), PARIS) == [
        utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)]


def test_fall_back_repeated_hour_is_active_during_both_passes() -> None:
    sched = Schedule(hours=hours("02:00-03:00"))
    assert is_active(sched, paris(2026, 10, 25, 2, 30, fold=0), PARIS)   # 00:30 UTC
    assert is_active(sched, paris(2026, 10, 25, 2, 30, fold=1), PARIS)   # 01:30 UTC
    # One continuous stretch of two real hours.
    assert changes(sched, utc(2026, 10, 24, 22), utc(2026, 10, 25, 12), PARIS) == [
        utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)]
    half = Schedule(hours=hours("02:30-04:00"))
    assert changes(half, utc(2026, 10, 24, 22), utc(2026, 10, 25, 12), PARIS) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1),     # first pass 02:30-03:00 CEST, then back to 02:00
        utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 3)]     # second pass 02:30 CET until 04:00 CET
    early = Schedule(hours=hours("00:00-02:30"))
    assert changes(early, utc(2026, 10, 24, 21), utc(2026, 10, 25, 12), PARIS) == [
        utc(2026, 10, 24, 22), utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 30)]     # 02:00-02:30 of the second pass too
    sunday = Schedule(days=frozenset({6}))                  # a 25-hour Sunday
    assert changes(sunday, utc(2026, 10, 23), utc(2026, 10, 27), PARIS) == [
        utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)]


# -- next_change exactness ---------------------------------------------------------

SCAN_SCHEDULES = [
    Schedule(hours=hours("02:00-03:00")),
    Schedule(hours=hours("01:30-02:30", "23:00-00:30")),
    Schedule(days=frozenset({5, 6}), hours=hours("22:00-02:30")),
    Schedule(days=frozenset({0, 6})),
    Schedule(days=frozenset({6}), hours=hours("00:00-24:00", "23:30-00:15")),
    Schedule(start=datetime(2026, 3, 29, 2, 10, tzinfo=UTC), end=datetime(2026, 10, 25, 1, 45, tzinfo=UTC),
             hours=hours("00:15-02:15", "02:45-03:00")),
]
SCAN_PERIODS = [(PARIS, utc(2026, 3, 27, 20)), (PARIS, utc(2026, 10, 23, 20)),
                (LORD_HOWE, utc(2026, 4, 2, 20)), (LORD_HOWE, utc(2026, 10, 1, 20)),
                (SANTIAGO, utc(2026, 4, 3, 12)), (SANTIAGO, utc(2026, 9, 4, 12)),
                (NEW_YORK, utc(2026, 3, 6, 12)), (NEW_YORK, utc(2026, 10, 30, 12))]


@pytest.mark.parametrize("tz,begin", SCAN_PERIODS)
@pytest.mark.parametrize("sched", SCAN_SCHEDULES)
def test_next_change_matches_a_minute_by_minute_scan(sched: Schedule, tz: ZoneInfo, begin: datetime) -> None:
    # Every boundary and DST change here falls on a whole minute, so the scan sees them all.
    end = begin + timedelta(days=3)
    expected = []
    moment, state = begin, is_active(sched, begin, tz)
    while moment < end:
        moment += timedelta(minutes=1)
        value = is_active(sched, moment, tz)
        if value != state:
            expected.append(moment)
            state = value
    assert changes(sched, begin, end, tz) == expected


def test_next_change_respects_its_horizon() -> None:
    sched = Schedule(start=utc(2026, 12, 1))
    assert next_change(sched, utc(2026, 11, 1), PARIS) is None
    assert next_change(sched, utc(2026, 11, 1), PARIS, horizon=timedelta(days=31)) == utc(2026, 12, 1)
    assert next_change(sched, utc(2026, 11, 1), PARIS, horizon=timedelta(days=30)) == utc(2026, 12, 1)
    assert next_change(sched, utc(2026, 11, 1), PARIS, horizon=timedelta(days=30) - US) is None
    daily = Schedule(hours=hours("08:00-09:00"))
    assert next_change(daily, paris(2026, 12, 5, 0), PARIS, horizon=timedelta(hours=8)) == paris(2026, 12, 5, 8)
    assert next_change(daily, paris(2026, 12, 5, 0), PARIS, horizon=timedelta(hours=8) - US) is None
    empty = Schedule(days=frozenset({2}), hours=hours("02:00-03:00"), start=utc(2026, 3, 28), end=utc(2026, 3, 30))
    assert next_change(empty, utc(2026, 3, 20), PARIS) is None


def test_next_change_returns_utc() -> None:
    result = next_change(Schedule(hours=hours("08:00-09:00")), paris(2026, 12, 5, 0), PARIS)
    assert result is not None and result.utcoffset() == timedelta(0)


# -- property: is_active is constant up to next_change ----------------------------------

ZONES = [PARIS, NEW_YORK, LORD_HOWE, SANTIAGO, UTC, timezone(timedelta(hours=5, minutes=30))]
ANCHORS = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 3, 8, 7), utc(2026, 11, 1, 6),
           utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30), utc(2026, 4, 5, 3), utc(2026, 9, 6, 4),
           utc(2026, 7, 1), utc(2026, 12, 31, 23)]

edge_times = st.sampled_from([time(0), time(1, 30), time(2), time(2, 30), time(3), time(23, 30)])
clock_times = st.one_of(edge_times, st.times())
window = st.tuples(clock_times, st.one_of(st.none(), clock_times))
instants = st.builds(lambda anchor, delta: anchor + delta, st.sampled_from(ANCHORS),
                     st.timedeltas(min_value=timedelta(days=-4), max_value=timedelta(days=4)))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    start = draw(st.one_of(st.none(), instants))
    end = draw(st.one_of(st.none(), instants))
    if start is not None and end is not None and end <= start:
        start, end = end, start + timedelta(hours=1) if end == start else start
    days = draw(st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1)))
    windows = draw(st.one_of(st.none(), st.lists(window, min_size=1, max_size=4).map(tuple)))
    return Schedule(start=start, end=end, days=days, hours=windows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sched=schedules(), now=instants, tz=st.sampled_from(ZONES),
       view=st.sampled_from(ZONES), fractions=st.lists(st.floats(0, 1), min_size=5, max_size=15))
def test_is_active_is_constant_until_next_change(sched: Schedule, now: datetime, tz: ZoneInfo,
                                                 view: ZoneInfo, fractions: list[float]) -> None:
    shown = now.astimezone(view)  # callers may pass any offset
    # Arithmetic stays in UTC: adding to a ZoneInfo datetime is wall-clock arithmetic
    # and loses the fold inside the repeated autumn hour.
    state = is_active(sched, shown, tz)
    change = next_change(sched, shown, tz)
    stop = change if change is not None else now + timedelta(days=8)
    if change is not None:
        assert change > now
        assert is_active(sched, change, tz) != state
        assert is_active(sched, change - US, tz) == state
    for fraction in fractions:
        point = now + (stop - now) * fraction
        if point < stop:
            assert is_active(sched, point, tz) == state, point


# -- Rotation -------------------------------------------------------------------

def slide(name: str, schedule: Schedule | None = None) -> TextSlide:
    return TextSlide(id=name, title=name, schedule=schedule)


def test_rotation_plays_in_order_and_wraps() -> None:
    rot = Rotation([slide("a"), slide("b"), slide("c")])
    assert rot.current is None
    now = utc(2026, 12, 5, 12)
    assert [rot.next(now, PARIS).id for _ in range(7)] == list("abcabca")  # type: ignore[union-attr]
    assert rot.current is not None and rot.current.id == "a"


def test_rotation_skips_slides_out_of_their_window() -> None:
    morning = Schedule(hours=hours("08:00-12:00"))
    rot = Rotation([slide("a"), slide("matin", morning), slide("c")])
    played = [rot.next(paris(2026, 12, 5, 9), PARIS).id for _ in range(3)]  # type: ignore[union-attr]
    assert played == ["a", "matin", "c"]
    played = [rot.next(paris(2026, 12, 5, 13), PARIS).id for _ in range(3)]  # type: ignore[union-attr]
    assert played == ["a", "c", "a"]


def test_rotation_peek_does_not_move() -> None:
    morning = Schedule(hours=hours("08:00-12:00"))
    rot = Rotation([slide("a"), slide("matin", morning), slide("c")])
    rot.next(paris(2026, 12, 5, 9), PARIS)
    assert rot.peek(paris(2026, 12, 5, 9), PARIS).id == "matin"  # type: ignore[union-attr]
    assert rot.peek(paris(2026, 12, 5, 9), PARIS).id == "matin"  # type: ignore[union-attr]
    assert rot.peek(paris(2026, 12, 5, 13), PARIS).id == "c"  # type: ignore[union-attr]
    assert rot.current is not None and rot.current.id == "a"
    assert rot.next(paris(2026, 12, 5, 9), PARIS).id == "matin"  # type: ignore[union-attr]


def test_rotation_idle_then_resumes() -> None:
    morning = Schedule(hours=hours("08:00-12:00"))
    evening = Schedule(hours=hours("18:00-20:00"))
    rot = Rotation([slide("m", morning), slide("e", evening)])
    assert rot.next(paris(2026, 12, 5, 9), PARIS).id == "m"  # type: ignore[union-attr]
    assert rot.next(paris(2026, 12, 5, 13), PARIS) is None
    assert rot.peek(paris(2026, 12, 5, 13), PARIS) is None
    assert rot.current is None
    assert rot.next_eligible(paris(2026, 12, 5, 13), PARIS) == paris(2026, 12, 5, 18)
    assert rot.next(paris(2026, 12, 5, 18), PARIS).id == "e"  # type: ignore[union-attr]
    assert rot.next(paris(2026, 12, 5, 18, 1), PARIS).id == "e"  # the only one eligible
    assert rot.next_eligible(paris(2026, 12, 5, 19), PARIS) == paris(2026, 12, 5, 19)


def test_rotation_with_nothing_ever_eligible() -> None:
    past = Schedule(end=utc(2026, 1, 1))
    rot = Rotation([slide("old", past)])
    assert rot.next(utc(2026, 6, 1), PARIS) is None
    assert rot.next_eligible(utc(2026, 6, 1), PARIS) is None
    empty = Rotation([])
    assert empty.next(utc(2026, 6, 1), PARIS) is None
    assert empty.next_eligible(utc(2026, 6, 1), PARIS) is None


def test_rotation_replace_restarts_from_the_first_slide() -> None:
    rot = Rotation([slide("a"), slide("b")])
    now = utc(2026, 12, 5, 12)
    rot.next(now, PARIS)
    rot.next(now, PARIS)
    rot.replace([slide("x"), slide("y"), slide("z")])
    assert rot.current is None
    assert [rot.next(now, PARIS).id for _ in range(2)] == ["x", "y"]  # type: ignore[union-attr]
    late = Schedule(start=utc(2026, 12, 6))
    rot.replace([slide("later", late), slide("now")])
    assert rot.next(now, PARIS).id == "now"  # type: ignore[union-attr]


# -- pinned down one by one (each kills a mutant the tests above let live) ----------------------

KOLKATA = timezone(timedelta(hours=5, minutes=30))


def test_rotation_peek_and_next_eligible_read_the_panel_clock_not_the_system_one() -> None:
    # 09:30 in Kolkata is 04:00 UTC: only the panel's zone makes the morning slide eligible.
    morning = Schedule(hours=hours("09:00-10:00"))
    rot = Rotation([slide("m", morning)])
    now = datetime(2026, 12, 5, 9, 30, tzinfo=KOLKATA)
    assert rot.peek(now, KOLKATA) is not None and rot.peek(now, KOLKATA).id == "m"  # type: ignore[union-attr]
    assert rot.next_eligible(now, KOLKATA) == now


def test_next_eligible_takes_the_soonest_and_honours_its_horizon() -> None:
    never = Schedule(end=utc(2026, 1, 1))
    soon = Schedule(start=utc(2026, 12, 7))
    later = Schedule(start=utc(2026, 12, 9))
    now = utc(2026, 12, 5, 12)
    rot = Rotation([slide("later", later), slide("never", never), slide("soon", soon), slide("never2", never)])
    assert rot.next_eligible(now, PARIS) == utc(2026, 12, 7)
    assert rot.next_eligible(now, PARIS, horizon=timedelta(days=1)) is None
    assert rot.next_eligible(now, PARIS, horizon=timedelta(days=3)) == utc(2026, 12, 7)


def test_returned_instants_are_utc_whatever_the_system_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as time_module
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time_module.tzset()
    try:
        sched = Schedule(start=utc(2026, 12, 6, 7), hours=hours("08:00-09:00"))
        result = next_change(sched, paris(2026, 12, 5, 0), PARIS)
        assert result == utc(2026, 12, 6, 7) and result is not None and result.tzinfo is UTC
        result = next_change(Schedule(hours=hours("08:00-09:00")), paris(2026, 12, 5, 0), PARIS)
        assert result == paris(2026, 12, 5, 8) and result is not None and result.tzinfo is UTC
        assert Rotation([slide("s", sched)]).next_eligible(paris(2026, 12, 5, 0), PARIS).tzinfo is UTC  # type: ignore[union-attr]
    finally:
        monkeypatch.undo()
        time_module.tzset()


def test_aware_means_an_offset_and_next_eligible_now_is_utc_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import tzinfo

    class NoOffset(tzinfo):
        def utcoffset(self, dt: datetime | None) -> None:
            return None

    with pytest.raises(ValueError, match=r"^expected an aware datetime, got naive 2026-12-05T09:00:00$"):
        is_active(Schedule(hours=hours("08:00-12:00")), datetime(2026, 12, 5, 9), PARIS)
    with pytest.raises(ValueError, match="^expected an aware datetime"):
        is_active(Schedule(hours=hours("08:00-12:00")), datetime(2026, 12, 5, 9, tzinfo=NoOffset()), PARIS)
    import time as time_module
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time_module.tzset()
    try:
        now = paris(2026, 12, 5, 9)
        result = Rotation([slide("always")]).next_eligible(now, PARIS)
        assert result == now and result is not None and result.tzinfo is UTC
    finally:
        monkeypatch.undo()
        time_module.tzset()

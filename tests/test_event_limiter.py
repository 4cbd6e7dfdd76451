"""The rate limit on refusal and error events (a flood must not crowd out command answers)."""

from player.app import EventLimiter


def test_burst_then_rate_then_one_report_of_what_was_held():
    lim = EventLimiter(rate=10, burst=5)
    t = lim.stamp
    assert [lim.allow(t) for _ in range(8)] == [True] * 5 + [False] * 3
    assert lim.take_held(t) == 0  # no room yet for the report
    assert lim.next_report() is not None and lim.next_report() > t
    t += 0.11  # one token back (and a little: float time)
    assert lim.take_held(t) == 3
    assert lim.next_report() is None
    t += 0.1
    assert lim.allow(t)


def test_nothing_passes_while_a_report_is_owed_so_the_count_stays_whole():
    lim = EventLimiter(rate=1, burst=1)
    t = lim.stamp
    assert lim.allow(t) and not lim.allow(t)
    t += 5  # tokens are back, but the held count comes first
    assert not lim.allow(t)
    assert lim.take_held(t) == 2

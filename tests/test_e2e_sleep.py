"""Sleep hours, wake-ups and the alert brightness floor, end to end.

A real player process on a real broker writes its picture to a PNG with its
brightness applied (software dimming: the png output multiplies the colours as it
copies), so "off" and "lit at 60 %" are read from the pixels a passer-by would see.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fixtures_broker import Broker, wait_until
from fixtures_player import PanelProcess, rgb, text_playlist
from test_e2e_alerts import ALERT_AT, CRITICAL, SIZE, Publisher, for_alert

PLAYLIST_COLOUR = "#12ab34"
PARIS = ZoneInfo("Europe/Paris")  # the fixtures' panel timezone
OFF_WITHIN = 5.0  # seconds: the bound for the picture going off


@pytest.fixture
def pub(broker: Broker) -> Iterator[Publisher]:
    publisher = Publisher(broker)
    yield publisher
    publisher.close()


def window_around_now(minutes: int = 30) -> str:
    """A sleep window on the panel's clock that began a minute ago and lasts ``minutes``."""
    start = datetime.now(PARIS).replace(second=0, microsecond=0) - timedelta(minutes=1)
    end = start + timedelta(minutes=minutes)
    return f"{start:%H:%M}-{end:%H:%M}"


def is_off(p: PanelProcess) -> bool:
    try:
        return p.picture().getextrema() == ((0, 0), (0, 0), (0, 0))
    except OSError:
        return False


def wait_off(p: PanelProcess, timeout: float = OFF_WITHIN) -> None:
    wait_until(lambda: is_off(p), timeout, f"the picture going off\n{p.log_text()[-2000:]}", step=0.05)


def heartbeat(p: PanelProcess, after: int = 0, where: Callable[[dict[str, Any]], bool] | None = None,
              timeout: float = 10.0) -> dict[str, Any]:
    m = p.sub.wait_for(f"{p.topic}/heartbeat", after=after, timeout=timeout,
                       where=lambda m: where is None or where(json.loads(m.payload)))
    return json.loads(m.payload)


def command(p: PanelProcess, pub: Publisher, cmd: str, **fields: Any) -> int:
    mark = p.sub.mark()
    request = f"{cmd}-{uuid.uuid4().hex[:8]}"
    pub.send(f"panels/{p.id}/cmd", {"id": request, "cmd": cmd, **fields}, retain=False)
    p.wait_event("command.done", after=mark, where=lambda e: e.get("request") == request)
    return mark


def lit_at_least(colour: tuple[int, int, int], percent: int) -> Callable[[tuple[int, int, int]], bool]:
    """A pixel showing ``colour`` dimmed to ``percent`` or brighter (one step of rounding)."""
    return lambda seen: all(s >= c * percent / 100 - 1 for s, c in zip(seen, colour)) and max(seen) > 0


def wait_pixel(p: PanelProcess, at: tuple[int, int], ok: Callable[[tuple[int, int, int]], bool],
               timeout: float = 5.0) -> tuple[int, int, int]:
    seen: list[tuple[int, int, int]] = []

    def check() -> bool:
        try:
            seen.append(p.pixel(*at))
        except OSError:
            return False
        return ok(seen[-1])

    wait_until(check, timeout, f"pixel {at} (last {seen[-1:]})\n{p.log_text()[-2000:]}", step=0.05)
    return seen[-1]


def sleeping_panel(make: Callable[..., PanelProcess], **brightness: Any) -> PanelProcess:
    extra: dict[str, Any] = {"display": {"sleep": [window_around_now()]}}
    if brightness:
        extra["brightness"] = brightness
    p = make(size=SIZE, extra=extra)
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, PLAYLIST_COLOUR), retain=True)
    return p


def test_asleep_in_its_window_woken_by_a_critical_alert_and_asleep_again_after_the_cancel(panel, pub):
    p = sleeping_panel(panel)
    wait_off(p)
    assert heartbeat(p, where=lambda hb: hb.get("screen") == "asleep")["screen"] == "asleep"
    asleep = p.wait_event("screen.asleep")
    assert asleep["reason"] == "start"

    mark = p.sub.mark()
    pub.send("all/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE"})
    shown = p.wait_event("alert.displayed", after=mark, where=for_alert("crue-1"))
    woken = p.wait_event("screen.woken", after=mark)
    assert woken["reason"] == "alert" and woken["alert"] == "crue-1"
    assert shown["brightness"] >= 60
    # The frame acknowledged is lit: the critical red at 60 % or more, not black.
    wait_pixel(p, ALERT_AT, lit_at_least(CRITICAL, 60), timeout=2.0)
    hb = heartbeat(p, after=mark, where=lambda hb: hb.get("alerts") == ["crue-1"])
    assert hb["screen"] == "woken" and hb["brightness"] >= 60

    mark = p.sub.mark()
    cancelled_at = time.monotonic()
    pub.send("all/alerts/crue-1", b"")
    wait_off(p)
    assert time.monotonic() - cancelled_at <= OFF_WITHIN
    back = p.wait_event("screen.asleep", after=mark)
    assert back["reason"] == "alert ended"
    assert heartbeat(p, after=mark, where=lambda hb: hb.get("alerts") == [])["screen"] == "asleep"


def test_an_info_alert_does_not_wake_a_sleeping_panel(panel, pub):
    p = sleeping_panel(panel)
    wait_off(p)
    mark = p.sub.mark()
    pub.send("all/alerts/fete", {"level": "info", "title": "Fête de la musique"})
    hb = heartbeat(p, after=mark, where=lambda hb: hb.get("alerts") == ["fete"])
    assert hb["screen"] == "asleep"
    # A command answered after the alert proves the loop handled it; still dark, nothing claimed seen.
    command(p, pub, "screenshot")
    assert is_off(p)
    kinds = {e["type"] for e in p.events(mark)}
    assert "screen.woken" not in kinds and "alert.displayed" not in kinds


def test_a_warning_wakes_it_when_the_wake_level_is_warning_by_default(panel, pub):
    p = sleeping_panel(panel)
    wait_off(p)
    mark = p.sub.mark()
    pub.send("all/alerts/orage", {"level": "warning", "title": "ORAGES"})
    assert p.wait_event("screen.woken", after=mark)["alert"] == "orage"
    assert p.wait_event("alert.displayed", after=mark, where=for_alert("orage"))["brightness"] >= 60


def test_night_cap_zero_and_override_zero_still_show_a_critical_alert_at_the_floor(panel, pub):
    p = panel(size=SIZE, extra={"brightness": {"min": 0, "night": {"hours": "00:00-24:00", "max": 0},
                                               "fallback": {"day": 100, "night": 100}}})
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, PLAYLIST_COLOUR), retain=True)
    p.wait_event("playlist.applied")
    command(p, pub, "brightness", value=0, seconds=600)
    wait_off(p)  # capped to 0 and overridden to 0: black, but not asleep
    assert heartbeat(p, where=lambda hb: hb.get("brightness") == 0)["screen"] == "on"

    mark = p.sub.mark()
    pub.send("all/alerts/crue-2", {"level": "critical", "title": "ALERTE CRUE"})
    shown = p.wait_event("alert.displayed", after=mark, where=for_alert("crue-2"))
    assert shown["brightness"] >= 60
    wait_pixel(p, ALERT_AT, lit_at_least(CRITICAL, 60), timeout=2.0)

    mark = p.sub.mark()
    pub.send("all/alerts/crue-2", b"")
    p.wait_event("alert.ended", after=mark)
    wait_off(p)  # the override (0) is in force again


def test_an_info_alert_on_a_panel_dimmed_to_zero_is_not_reported_displayed_until_it_is_lit(panel, pub):
    p = panel(size=SIZE, extra={"brightness": {"min": 0, "fallback": {"day": 100, "night": 100}}})
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, PLAYLIST_COLOUR), retain=True)
    p.wait_event("playlist.applied")
    command(p, pub, "brightness", value=0)
    wait_off(p)
    mark = p.sub.mark()
    pub.send("all/alerts/marche", {"level": "info", "title": "Marché annulé"})
    heartbeat(p, after=mark, where=lambda hb: hb.get("alerts") == ["marche"])
    command(p, pub, "screenshot")
    assert not [e for e in p.events(mark) if e["type"] == "alert.displayed"]

    mark = p.sub.mark()
    command(p, pub, "brightness", value=80)
    shown = p.wait_event("alert.displayed", after=mark, where=for_alert("marche"))
    assert shown["brightness"] == 80


def test_sleep_and_wake_commands(panel, pub):
    p = panel(size=SIZE)
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, PLAYLIST_COLOUR), retain=True)
    p.wait_event("playlist.applied")
    p.wait_colour(rgb(PLAYLIST_COLOUR))

    mark = command(p, pub, "sleep")
    wait_off(p)
    assert p.wait_event("screen.asleep", after=mark)["reason"] == "sleep command"
    assert heartbeat(p, after=mark, where=lambda hb: hb.get("screen") == "asleep")

    mark = command(p, pub, "wake")
    p.wait_colour(rgb(PLAYLIST_COLOUR))
    on = p.wait_event("screen.on", after=mark)
    assert on["reason"] == "wake command"

    # A sleep of two seconds ends by itself.
    mark = command(p, pub, "sleep", seconds=2)
    wait_off(p)
    p.wait_colour(rgb(PLAYLIST_COLOUR), timeout=6.0)
    assert p.wait_event("screen.on", after=mark)["reason"] == "sleep time over"


def test_wake_command_in_the_sleep_hours_lights_it_for_its_seconds(panel, pub):
    p = sleeping_panel(panel)
    wait_off(p)
    mark = command(p, pub, "wake", seconds=2)
    woken = p.wait_event("screen.woken", after=mark)
    assert woken["reason"] == "wake command"
    p.wait_colour(rgb(PLAYLIST_COLOUR))
    wait_off(p, timeout=6.0)
    assert p.wait_event("screen.asleep", after=mark)["reason"] == "wake time over"


def test_bad_wake_and_sleep_commands_are_refused(panel, pub):
    p = panel(size=SIZE)
    mark = p.sub.mark()
    pub.send(f"panels/{p.id}/cmd", {"id": "w1", "cmd": "wake", "seconds": 0}, retain=False)
    pub.send(f"panels/{p.id}/cmd", {"id": "s1", "cmd": "sleep", "seconds": "soon"}, retain=False)
    failed = p.wait_event("command.failed", after=mark, where=lambda e: e.get("request") == "w1")
    assert "seconds" in failed["reason"]
    failed = p.wait_event("command.failed", after=mark, where=lambda e: e.get("request") == "s1")
    assert "seconds" in failed["reason"]

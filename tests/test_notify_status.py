"""systemd's ``STATUS=`` from a real player: what is on screen and the MQTT link, sent when it changes.

The test plays systemd (a real ``NOTIFY_SOCKET`` datagram socket, see
test_e2e_watchdog.FakeSystemd) for a real ``panel-player run`` on a real broker,
then changes what the panel shows and its link: a playlist, an alert, the broker
stopped and started again, the alert cancelled, a sleep command.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures_broker import Broker
from fixtures_player import PanelProcess, text_playlist
from test_e2e_watchdog import FakeSystemd, start_under_systemd


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    s = FakeSystemd(tmp_path)
    yield s
    s.close()


def statuses(notify: FakeSystemd, after: int = 0) -> list[str]:
    return [line[len("STATUS="):] for d in notify.since(after) for line in d.lines if line.startswith("STATUS=")]


def wait_status(notify: FakeSystemd, pattern: str, after: int = 0, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for text in statuses(notify, after):
            if re.fullmatch(pattern, text):
                return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no STATUS={pattern} within {timeout} s; got {statuses(notify, after)}")
        time.sleep(0.02)


def test_status_follows_the_screen_and_the_link(broker: Broker, panel: Callable[..., PanelProcess],
                                                fake_systemd: FakeSystemd) -> None:
    notify = fake_systemd
    p = panel(start=False, extra={"panel": {"timezone": "Europe/Paris"}})
    start_under_systemd(p, notify)
    notify.wait_for("READY=1", timeout=20)
    # The bundled demo, then the link: the first line after READY=1 says both.
    wait_status(notify, r"playing demo-mairie v\d+ \(bundled\) \(slide [\w-]+\); MQTT connected")

    mark = notify.mark()
    p.publish(f"panels/{p.id}/playlist", text_playlist("hiver-2026", 3, title="Marché"), retain=True)
    wait_status(notify, r"playing hiver-2026 v3 \(slide s1\); MQTT connected", after=mark)

    mark = notify.mark()
    p.publish(f"panels/{p.id}/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE"}, retain=True)
    wait_status(notify, r"ALERT crue-1 \(critical\) on screen; MQTT connected", after=mark)

    # Not per frame: a still alert screen for a second sends nothing more.
    time.sleep(0.3)
    mark = notify.mark()
    time.sleep(1.0)
    assert statuses(notify, mark) == []

    broker.stop()
    lost = wait_status(notify, r"ALERT crue-1 \(critical\) on screen; MQTT reconnecting since \d\d:\d\d "
                               r"\(lost 1 time\)", after=mark)
    mark = notify.mark()
    broker.start()
    wait_status(notify, r"ALERT crue-1 \(critical\) on screen; MQTT connected", after=mark, timeout=30)

    mark = notify.mark()
    p.publish(f"panels/{p.id}/alerts/crue-1", b"", retain=True)  # cancelled
    wait_status(notify, r"playing hiver-2026 v3 \(slide s1\); MQTT connected", after=mark)

    mark = notify.mark()
    p.publish(f"panels/{p.id}/cmd", {"id": "req-1", "cmd": "sleep", "seconds": 600})
    asleep = wait_status(notify, r"asleep until \d\d:\d\d \(sleep command\); MQTT connected", after=mark)

    every = statuses(notify)
    assert all(a != b for a, b in zip(every, every[1:])), every  # each one a change
    assert lost in every and asleep == every[-1]
    assert len(every) < 20, every
    assert p.stop() == 0


def test_status_in_the_sleep_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   fake_systemd: FakeSystemd) -> None:
    """A player in process, inside a sleep window of its config, MQTT off: the line says until when."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from player.app import Player
    from player.config import config_from_data

    local = datetime.now(ZoneInfo("Europe/Paris"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    monkeypatch.setenv("NOTIFY_SOCKET", fake_systemd.path)
    cfg = config_from_data({
        "panel": {"id": "s1", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": [96, 54], "path": str(tmp_path / "frame.png"), "layout": "fullscreen",
                    "sleep": [f"{start:%H:%M}-{end:%H:%M}"]},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    })
    player = Player(cfg)
    try:
        player.start()
        fake_systemd.wait_for("READY=1", timeout=10)
        deadline = time.monotonic() + 10
        while not statuses(fake_systemd)[1:] and time.monotonic() < deadline:
            player.step()
        until = f"{end:%H:%M}" if end.date() == local.date() else f"{end:%a %H:%M}"  # after midnight
        assert statuses(fake_systemd)[1:] == [f"asleep until {until}; MQTT off"]
    finally:
        player.stop()
        while player.exit_code is None:
            player.step()
        player.close()

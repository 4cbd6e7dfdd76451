"""Issue 5 end to end: the heartbeat (CONTRACT §8), sensors and brightness in the real player.

Two halves:

- a real ``panel-player run`` process on a real mosquitto: the heartbeat's
  fields and types, retained, its pace, the immediate one on an alert, and
  ``fps`` measured from the frames actually drawn;
- a :class:`~player.app.Player` driven in the test thread (``start()`` then
  ``step()``) with gpiozero's mock pins and the simulated MCP3008, so the test
  can move the light, cut the sensor's wire, open the door and heat the CPU,
  and look at what reaches the broker and the PNG.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures_broker import Broker, Sub
from fixtures_player import PREFIX, PanelProcess, text_playlist

from player import __version__

HEARTBEAT_KEYS = {"panel", "ts", "firmware", "uptime_s", "playlist", "slide", "alerts", "brightness", "ambient",
                  "cpu_temp_c", "fps", "rss_mb", "disk_free_mb", "mqtt_reconnects", "door_open", "clock_synced",
                  "errors"}
ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_float(v: Any) -> bool:
    """A JSON number with a fraction part (``41.0``, not ``41``): what CONTRACT §8 shows as a float."""
    return isinstance(v, float)


def contract_problems(hb: dict[str, Any]) -> list[str]:
    """Every departure of ``hb`` from CONTRACT §8, checked independently of the player's own checker."""
    p: list[str] = []
    missing = HEARTBEAT_KEYS - hb.keys()
    if missing:
        p.append(f"missing {sorted(missing)}")

    def check(key: str, ok: bool) -> None:
        if key in hb and not ok:
            p.append(f"{key}: {hb[key]!r}")

    check("panel", isinstance(hb.get("panel"), str))
    ts = hb.get("ts")
    ok_ts = isinstance(ts, str) and bool(ISO_WITH_OFFSET.fullmatch(ts))
    if ok_ts:
        ok_ts = datetime.fromisoformat(ts).tzinfo is not None  # type: ignore[arg-type]
    check("ts", ok_ts)
    check("firmware", isinstance(hb.get("firmware"), str) and bool(hb.get("firmware")))
    check("uptime_s", is_int(hb.get("uptime_s")) and hb["uptime_s"] >= 0)
    pl = hb.get("playlist")
    check("playlist", pl is None or (isinstance(pl, dict) and set(pl) == {"id", "version"}
                                     and isinstance(pl["id"], str) and is_int(pl["version"])))
    check("slide", hb.get("slide") is None or isinstance(hb.get("slide"), str))
    check("alerts", isinstance(hb.get("alerts"), list) and all(isinstance(a, str) for a in hb["alerts"]))
    check("brightness", hb.get("brightness") is None or (is_int(hb["brightness"]) and 0 <= hb["brightness"] <= 100))
    check("ambient", hb.get("ambient") is None or (is_float(hb["ambient"]) and 0.0 <= hb["ambient"] <= 1.0))
    check("cpu_temp_c", hb.get("cpu_temp_c") is None or is_float(hb["cpu_temp_c"]))
    check("fps", hb.get("fps") is None or (is_float(hb["fps"]) and hb["fps"] >= 0))
    check("rss_mb", is_float(hb.get("rss_mb")) and hb["rss_mb"] > 0)
    check("disk_free_mb", is_int(hb.get("disk_free_mb")) and hb["disk_free_mb"] >= 0)
    check("mqtt_reconnects", is_int(hb.get("mqtt_reconnects")) and hb["mqtt_reconnects"] >= 0)
    check("door_open", hb.get("door_open") is None or isinstance(hb["door_open"], bool))
    check("clock_synced", hb.get("clock_synced") is None or isinstance(hb["clock_synced"], bool))
    check("errors", isinstance(hb.get("errors"), list))
    return p


def heartbeats(sub: Sub, panel_id: str, after: int = 0) -> list[tuple[float, dict[str, Any]]]:
    """``(received at, heartbeat)`` for every heartbeat recorded from index ``after``."""
    topic = f"{PREFIX}/panels/{panel_id}/heartbeat"
    return [(m.timestamp, json.loads(m.payload)) for m in list(sub.messages[after:]) if m.topic == topic]


def wait_heartbeat(p: PanelProcess, where: Callable[[dict[str, Any]], bool] = lambda hb: True,
                   after: int = 0, timeout: float = 5.0) -> tuple[float, dict[str, Any]]:
    try:
        m = p.sub.wait_for(f"{p.topic}/heartbeat", after=after, timeout=timeout,
                           where=lambda m: where(json.loads(m.payload)))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- player log ---\n{p.log_text()[-3000:]}") from None
    return m.timestamp, json.loads(m.payload)


# ======================================================================================
# A real player process on a real broker
# ======================================================================================

def test_heartbeat_has_every_contract_field_is_retained_and_keeps_its_interval(panel: Callable[..., PanelProcess],
                                                                               broker: Broker) -> None:
    p = panel(extra={"heartbeat": {"interval": 1}})
    # Past the start-up ones (see test_the_connection_sends_one_heartbeat_saying_connected), the pace:
    wait_heartbeat(p, lambda hb: hb["uptime_s"] >= 1)
    mark = p.sub.mark()
    deadline = time.monotonic() + 10
    while len(heartbeats(p.sub, p.id, mark)) < 4:
        assert time.monotonic() < deadline, f"fewer than 4 heartbeats in 10 s\n{p.log_text()[-3000:]}"
        time.sleep(0.05)
    got = heartbeats(p.sub, p.id, mark)
    for _, hb in got:
        assert contract_problems(hb) == [], hb
    _, hb = got[-1]
    assert hb["panel"] == "p1" and hb["firmware"] == __version__
    # Nothing configured to read these here: null, never made up.
    assert hb["ambient"] is None  # no light sensor
    assert hb["door_open"] is None  # no door switch
    assert hb["playlist"] == {"id": "demo-mairie", "version": 1}  # the bundled content is on screen
    assert hb["alerts"] == [] and hb["mqtt_reconnects"] == 0

    # Every interval (1 s), not more often and not less.
    times = [t for t, _ in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.6 <= g <= 1.8 for g in gaps), gaps
    assert 0.8 <= sum(gaps) / len(gaps) <= 1.3, gaps
    assert got[-1][1]["uptime_s"] > got[0][1]["uptime_s"]

    # Retained: a maintenance tool connecting now gets the last one at once.
    with broker.sub(f"{PREFIX}/panels/p1/heartbeat") as late:
        m = late.wait_for(f"{PREFIX}/panels/p1/heartbeat", timeout=3)
        assert m.retain
        assert contract_problems(json.loads(m.payload)) == []


def test_an_alert_start_and_end_each_send_a_heartbeat_at_once(panel: Callable[..., PanelProcess]) -> None:
    p = panel(extra={"heartbeat": {"interval": 30}})
    wait_heartbeat(p, timeout=5)  # the one sent on connection
    mark = p.sub.mark()
    sent = time.monotonic()
    p.publish("panels/p1/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE",
                                          "body": "Évacuez les berges."}, retain=True)
    at, hb = wait_heartbeat(p, lambda hb: "crue-1" in hb["alerts"], after=mark, timeout=3)
    assert at - sent < 1.0, f"alert heartbeat after {at - sent:.2f} s"
    assert hb["alerts"] == ["crue-1"] and contract_problems(hb) == []

    mark = p.sub.mark()
    sent = time.monotonic()
    p.publish("panels/p1/alerts/crue-1", b"", retain=True)
    at, hb = wait_heartbeat(p, lambda hb: hb["alerts"] == [], after=mark, timeout=3)
    assert at - sent < 1.0, f"alert-end heartbeat after {at - sent:.2f} s"


def test_fps_is_measured_from_the_frames_drawn(panel: Callable[..., PanelProcess], broker: Broker) -> None:
    # Two panels side by side: "still" shows one full-screen text slide (its
    # playlist is waiting, retained, when it connects); "moving" shows the
    # bundled content, whose landscape layout scrolls a ticker at the frame rate.
    broker.publish(f"{PREFIX}/panels/still/playlist", json.dumps(text_playlist("fixe", 1, "#204060")).encode(),
                   retain=True)
    extra = {"heartbeat": {"interval": 1}, "display": {"fps": 30}}
    still = panel("still", size=(320, 180), extra=extra)
    moving = panel("moving", size=(320, 180), extra=extra)

    _, hb = wait_heartbeat(moving, lambda hb: hb["uptime_s"] >= 2 and hb["fps"] is not None, timeout=8)
    assert hb["playlist"] == {"id": "demo-mairie", "version": 1}
    assert 15.0 <= hb["fps"] <= 33.0, hb["fps"]

    # A still picture costs no frames: once the start-up frames leave the 5 s window, 0.
    _, hb = wait_heartbeat(still, lambda hb: hb["playlist"] == {"id": "fixe", "version": 1} and hb["fps"] == 0.0,
                           timeout=10)
    assert hb["slide"] == "s1"
    _, hb = wait_heartbeat(moving, lambda hb: hb["uptime_s"] >= 5, timeout=5)
    assert 15.0 <= hb["fps"] <= 33.0, hb["fps"]  # still animating meanwhile


def test_the_connection_sends_one_heartbeat_saying_connected(panel: Callable[..., PanelProcess]) -> None:
    """What a heartbeat received over MQTT says about MQTT must be true, and a start sends one, not two.

    The race it looks for (the link connects before the main loop has handled
    the connection) happens on about a third of starts, so the player is
    started several times.
    """
    p = panel(extra={"heartbeat": {"interval": 30}})
    seen: list[list[bool]] = []
    for attempt in range(6):
        if attempt:
            assert p.stop() == 0
            mark = p.sub.mark()
            p.start()
        else:
            mark = 0
        wait_heartbeat(p, after=mark, timeout=5)
        time.sleep(0.5)  # an absence cannot be waited for: a duplicate follows within milliseconds
        seen.append([hb["mqtt_connected"] for _, hb in heartbeats(p.sub, p.id, mark)])
    assert all(flags == [True] for flags in seen), f"mqtt_connected of the start-up heartbeats per start: {seen}"


# ======================================================================================
# The Player driven in the test thread, with gpiozero's mock pins
# ======================================================================================

IN_PROCESS_ID = "e1"


class Rig:
    """A Player started in this thread on the test broker, its heartbeats recorded.

    ``drive(until)`` turns the main loop (``Player.step``) until ``until()`` holds.
    """

    def __init__(self, broker: Broker, folder: Path, sensors: dict[str, Any], brightness: dict[str, Any],
                 heartbeat_interval: float) -> None:
        from player.app import Player
        from player.config import config_from_data

        self.png = folder / "frame.png"
        self.topic = f"{PREFIX}/panels/{IN_PROCESS_ID}"
        data = {
            "panel": {"id": IN_PROCESS_ID, "timezone": "Europe/Paris"},
            "display": {"output": "png", "size": [160, 90], "path": str(self.png), "layout": "fullscreen",
                        "transition": "cut"},
            "mqtt": {"host": broker.host, "port": broker.port, "prefix": PREFIX},
            "state_dir": str(folder / "state"),
            "heartbeat": {"interval": heartbeat_interval},
            "sensors": sensors,
            "brightness": brightness,
        }
        self.broker = broker
        self.sub = broker.sub(f"{self.topic}/#")
        self.player = Player(config_from_data(data))
        self.player.start()

    @property
    def ops(self) -> Any:
        return self.player.ops

    @property
    def chip(self) -> Any:
        """The simulated MCP3008 behind the light sensor."""
        return self.ops.sensors.simulation

    def drive(self, until: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = until()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last heartbeat "
                                     f"{self.heartbeats()[-1:]}; brightness {self.ops.brightness}")
            self.player.step()

    def heartbeats(self, after: int = 0) -> list[dict[str, Any]]:
        return [hb for _, hb in heartbeats(self.sub, IN_PROCESS_ID, after)]

    def heartbeat_where(self, where: Callable[[dict[str, Any]], bool], after: int = 0) -> dict[str, Any] | None:
        return next((hb for hb in self.heartbeats(after) if where(hb)), None)

    def wait_heartbeat(self, where: Callable[[dict[str, Any]], bool], timeout: float, what: str,
                       after: int = 0) -> dict[str, Any]:
        return self.drive(lambda: self.heartbeat_where(where, after), timeout, what)

    def pixel(self, x: int, y: int) -> tuple[int, int, int] | None:
        from PIL import Image

        try:
            with Image.open(self.png) as img:
                return img.convert("RGB").getpixel((x, y))  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self.player.close()
        self.sub.close()


@pytest.fixture
def pins() -> Iterator[Any]:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    yield factory
    leaked = {pin.name: users for pin, users in factory._reservations.items() if users}
    factory.reset()
    Device.pin_factory = old
    assert not leaked, f"the player left devices open: {leaked}"


@pytest.fixture
def rig(pins: Any, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    made: list[Rig] = []

    def make(sensors: dict[str, Any], brightness: dict[str, Any] | None = None,
             heartbeat_interval: float = 30) -> Rig:
        # The fallback schedule is the same day and night, so the time of the run does not matter.
        b = {"fallback": {"day": 77, "night": 77}, **(brightness or {})}
        r = Rig(broker, tmp_path, sensors, b, heartbeat_interval)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def thermal_file(tmp_path: Path, millidegrees: int) -> Path:
    path = tmp_path / "thermal_temp"
    path.write_text(f"{millidegrees}\n")
    return path


def test_brightness_follows_the_light_level_and_the_heartbeat_reports_it(rig: Callable[..., Rig],
                                                                         tmp_path: Path) -> None:
    r = rig({"interval": 0.1, "light": {"type": "mcp3008", "channel": 0},
             "cpu_temp": {"file": str(thermal_file(tmp_path, 45000))}},
            {"smoothing": 0.5, "median": 3, "hysteresis": 3}, heartbeat_interval=1)
    r.chip.set_level(0, 0.9)
    r.drive(lambda: r.ops.brightness is not None and r.ops.brightness >= 92, 5, "bright: curve(0.9) = 95")
    hb = r.wait_heartbeat(lambda hb: hb["brightness"] >= 92 and hb["ambient"] is not None, 3, "a bright heartbeat")
    assert abs(hb["ambient"] - 0.9) < 0.01 and hb["brightness_source"] == "sensor"
    assert hb["cpu_temp_c"] == 45.0 and contract_problems(hb) == []

    # Dusk: the level falls at once, the brightness follows it gradually (smoothing, 0.5 s).
    r.chip.set_level(0, 0.1)
    path: list[int] = []

    def dimmed() -> bool:
        if not path or path[-1] != r.ops.brightness:
            path.append(r.ops.brightness)
        return bool(r.ops.brightness <= 28)

    r.drive(dimmed, 8, "dim: curve(0.1) = 25")
    assert all(a > b for a, b in zip(path, path[1:])), path  # steadily down, no overshoot
    assert len([v for v in path if 30 < v < 90]) >= 3, path  # through several steps, not one jump
    mark = r.sub.mark()
    hb = r.wait_heartbeat(lambda hb: True, 3, "the next heartbeat", after=mark)
    assert hb["brightness"] <= 28 and abs(hb["ambient"] - 0.1) < 0.01
    assert hb["errors"] == [] and hb["sensor_faults"] == []


def test_a_disconnected_or_stuck_sensor_hands_over_to_the_schedule_and_says_so(rig: Callable[..., Rig],
                                                                               tmp_path: Path) -> None:
    r = rig({"interval": 0.1, "light": {"type": "mcp3008", "rail_after_s": 0.5, "stuck_after_s": 1.5},
             "cpu_temp": {"file": str(thermal_file(tmp_path, 45000))}},
            {"smoothing": 0, "median": 1})
    r.chip.set_level(0, 0.5)
    r.wait_heartbeat(lambda hb: hb["brightness_source"] == "sensor" and hb["brightness"] == 70, 5,
                     "a heartbeat with the sensor in charge (curve(0.5) = 70)")

    mark = r.sub.mark()
    cut = time.monotonic()
    r.chip.disconnect(0)  # the wire to the divider is cut: the input reads 0
    hb = r.wait_heartbeat(lambda hb: "light: disconnected" in hb["sensor_faults"], 3,
                          "a heartbeat reporting the cut wire", after=mark)
    assert time.monotonic() - cut < 0.5 + 1.5  # at once once detected, not at the 30 s interval
    assert hb["brightness_source"] == "schedule" and hb["brightness"] == 77  # the fallback schedule
    assert hb["ambient"] is None  # no reading it can trust: null, not 0
    cut_wire = [e for e in hb["errors"] if "light: disconnected" in e["reason"]]
    assert len(cut_wire) == 1, hb["errors"]  # listed once however many readings found it
    assert contract_problems(hb) == []

    r.chip.reconnect(0)
    r.drive(lambda: r.ops.brightness_ctl.source == "sensor", 3, "the sensor back in charge")

    mark = r.sub.mark()
    r.chip.freeze()  # the converter latches up: the same code for ever
    hb = r.wait_heartbeat(lambda hb: "light: stuck" in hb["sensor_faults"], 4,
                          "a heartbeat reporting the stuck sensor", after=mark)
    assert hb["brightness_source"] == "schedule" and hb["brightness"] == 77 and hb["ambient"] is None
    assert any("light: stuck" in e["reason"] for e in hb["errors"]), hb["errors"]


def test_opening_the_door_sends_a_heartbeat_at_once(rig: Callable[..., Rig], pins: Any, tmp_path: Path) -> None:
    r = rig({"interval": 0.5, "door": {"pin": 17, "bounce_s": 0},
             "cpu_temp": {"file": str(thermal_file(tmp_path, 45000))}})
    door = pins.pin(17)
    door.drive_low()  # closed: the door holds the switch closed to ground
    r.wait_heartbeat(lambda hb: hb["door_open"] is False, 5, "a heartbeat with the door closed")
    mark = r.sub.mark()
    opened = time.monotonic()
    door.drive_high()  # opened
    hb = r.wait_heartbeat(lambda hb: hb["door_open"] is True, 2, "a heartbeat with the door open", after=mark)
    assert time.monotonic() - opened < 1.0
    assert contract_problems(hb) == [] and hb["ambient"] is None  # no light sensor configured: null


def test_a_hot_cpu_lowers_the_brightness(rig: Callable[..., Rig], tmp_path: Path) -> None:
    thermal = thermal_file(tmp_path, 45000)
    r = rig({"interval": 0.1, "cpu_temp": {"file": str(thermal)}},
            {"fallback": {"day": 100, "night": 100}, "derate": {"above_c": 70, "per_degree": 5, "floor": 20}})
    r.wait_heartbeat(lambda hb: hb["brightness"] == 100 and hb["cpu_temp_c"] == 45.0, 5, "a cool, full heartbeat")
    mark = r.sub.mark()
    thermal.write_text("85000\n")
    hb = r.wait_heartbeat(lambda hb: hb["cpu_temp_c"] == 85.0, 2, "the over-temperature heartbeat", after=mark)
    assert hb["brightness"] == 25  # 100 - 5 x (85 - 70)
    assert r.ops.brightness_ctl.derated
    thermal.write_text("50000\n")
    r.drive(lambda: r.ops.brightness == 100, 3, "full brightness once cool again")


def test_the_brightness_command_dims_the_picture_itself(rig: Callable[..., Rig], broker: Broker,
                                                        tmp_path: Path) -> None:
    broker.publish(f"{PREFIX}/panels/{IN_PROCESS_ID}/playlist",
                   json.dumps(text_playlist("blanc", 1, "#ffffff", title="A")).encode(), retain=True)
    r = rig({"interval": 1, "cpu_temp": {"file": str(thermal_file(tmp_path, 45000))}},
            {"fallback": {"day": 100, "night": 100}}, heartbeat_interval=1)
    r.drive(lambda: r.pixel(5, 5) == (255, 255, 255), 5, "the white slide at full brightness")
    mark = r.sub.mark()
    broker.publish(f"{r.topic}/cmd", json.dumps({"id": "req-44", "cmd": "brightness", "value": 40,
                                                 "seconds": 600}).encode())

    def done() -> bool:
        return any(json.loads(m.payload).get("type") == "command.done"
                   for m in list(r.sub.messages[mark:]) if m.topic == f"{r.topic}/events")

    r.drive(done, 3, "command.done for req-44")

    def grey() -> bool:
        px = r.pixel(5, 5)
        return px is not None and all(abs(c - 102) <= 3 for c in px)  # 40 % of 255

    r.drive(grey, 2, "the white area at 40 %")
    px = r.pixel(150, 80)  # the far corner too: the whole picture is dimmed
    assert px is not None and all(abs(c - 102) <= 3 for c in px), px
    hb = r.wait_heartbeat(lambda hb: hb["brightness"] == 40, 2, "a heartbeat with brightness 40", after=mark)
    assert hb["brightness_source"] == "override"

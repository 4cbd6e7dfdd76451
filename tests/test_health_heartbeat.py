"""Heartbeat fields and types (CONTRACT §8), the error list, notable changes, and health figures."""

from __future__ import annotations

import json
import queue
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from player.heartbeat import HEARTBEAT_FIELDS, ErrorLog, build_heartbeat, check_heartbeat, notable_change
from player.hw import health
from player.hw.brightness import BrightnessController
from player.hw.config import BrightnessConfig, parse_sensors
from player.hw.sampler import Sampler, SensorReadings
from player.hw.sensors import open_sensors
from player.validate import Node, Problems

# The example of CONTRACT §8, verbatim: every field and the type of its value.
CONTRACT_EXAMPLE = json.loads("""
{"panel": "mairie-entree", "ts": "2026-11-25T18:00:00Z", "firmware": "0.1.0",
 "uptime_s": 1234, "playlist": {"id": "hiver-2026", "version": 3}, "slide": "marche",
 "alerts": ["crue-1"], "brightness": 62, "ambient": 0.41, "cpu_temp_c": 48.3,
 "fps": 29.8, "rss_mb": 41.2, "disk_free_mb": 1234, "mqtt_reconnects": 0,
 "door_open": false, "clock_synced": true, "errors": []}
""")
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc)


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(panel="mairie-entree", ts=T0, firmware="0.1.0", uptime_s=1234.7,
                                playlist={"id": "hiver-2026", "version": 3}, slide="marche", alerts=["crue-1"],
                                brightness=62, ambient=0.41, cpu_temp_c=48.3, fps=29.8, rss_mb=41.2,
                                disk_free_mb=1234, mqtt_reconnects=0, door_open=False, clock_synced=True,
                                errors=[])
    base.update(changes)
    return base


def test_heartbeat_has_exactly_the_contract_fields_and_types() -> None:
    hb = build_heartbeat(**fields())
    assert hb == CONTRACT_EXAMPLE
    assert set(HEARTBEAT_FIELDS) == set(CONTRACT_EXAMPLE)
    for name, value in CONTRACT_EXAMPLE.items():
        assert type(hb[name]) is type(value), name
    assert json.loads(json.dumps(hb)) == hb


def test_unknown_values_are_null_and_extras_are_kept() -> None:
    hb = build_heartbeat(**fields(playlist=None, slide=None, brightness=None, ambient=None, cpu_temp_c=None,
                                  fps=None, rss_mb=None, disk_free_mb=None, door_open=None, clock_synced=None),
                         under_voltage=None, sensor_faults=["light: stuck"])
    for name in ("playlist", "slide", "brightness", "ambient", "cpu_temp_c", "fps", "rss_mb", "disk_free_mb",
                 "door_open", "clock_synced"):
        assert hb[name] is None, name
    assert hb["sensor_faults"] == ["light: stuck"] and "under_voltage" in hb
    assert check_heartbeat(hb) == []
    assert '"ambient": null' in json.dumps(hb)


def test_wrong_types_are_refused() -> None:
    with pytest.raises(TypeError, match="door_open"):
        build_heartbeat(**fields(door_open="no"))
    with pytest.raises(TypeError, match="alerts"):
        build_heartbeat(**fields(alerts="crue-1"))
    with pytest.raises(ValueError, match="naive|aware"):
        build_heartbeat(**fields(ts=datetime(2026, 1, 1)))
    bad = build_heartbeat(**fields())
    bad["uptime_s"] = True
    del bad["fps"]
    assert check_heartbeat(bad) == ["uptime_s: expected int, got bool", "fps: missing"]
    assert build_heartbeat(**fields(ambient=float("nan")))["ambient"] is None


def test_error_log_is_bounded_and_deduplicated() -> None:
    log = ErrorLog(max_items=3, max_age_s=3600)
    assert log.add("mqtt: connection refused", T0) is True
    assert log.add("mqtt: connection refused", T0 + timedelta(seconds=30)) is False
    for i in range(3):
        log.add(f"asset: missing a{i}.png", T0 + timedelta(seconds=40 + i))
    items = log.items(T0 + timedelta(seconds=60))
    assert [e["reason"] for e in items] == ["asset: missing a0.png", "asset: missing a1.png", "asset: missing a2.png"]
    log.add("asset: missing a0.png", T0 + timedelta(seconds=70))
    items = log.items(T0 + timedelta(seconds=80))
    assert [e["reason"] for e in items][-1] == "asset: missing a0.png"
    assert items[-1] == {"reason": "asset: missing a0.png", "count": 2, "first": "2026-11-25T18:00:40Z",
                         "last": "2026-11-25T18:01:10Z"}
    assert len(log.items(T0 + timedelta(hours=2))) == 0  # aged out
    repeated = ErrorLog(max_items=20)
    for i in range(1000):
        repeated.add(f"error {i % 10}", T0 + timedelta(seconds=i))
    assert len(repeated) == 10 and all(e["count"] == 100 for e in repeated.items())
    flood = ErrorLog(max_items=20)
    for i in range(1000):
        flood.add(f"error {i % 50}", T0 + timedelta(seconds=i))
    assert [e["reason"] for e in flood.items()] == [f"error {i}" for i in range(30, 50)]
    hb = build_heartbeat(**fields(errors=flood.items(T0)))
    assert check_heartbeat(hb) == []


def test_notable_changes() -> None:
    base = build_heartbeat(**fields(), sensor_faults=[], display="ok", under_voltage=False)
    assert notable_change(None, base) == "started"
    assert notable_change(base, dict(base, uptime_s=9999, fps=12.0, brightness=10)) is None
    assert notable_change(base, dict(base, door_open=True)) == "door opened"
    assert notable_change(dict(base, door_open=True), base) == "door closed"
    assert notable_change(base, dict(base, sensor_faults=["light: stuck"])) == "sensor fault: light: stuck"
    assert notable_change(dict(base, sensor_faults=["light: stuck"]), base) is None  # cleared: next interval
    assert notable_change(base, dict(base, cpu_temp_c=81.0)) == "over-temperature"
    assert notable_change(dict(base, cpu_temp_c=81.0), dict(base, cpu_temp_c=82.0)) is None
    assert notable_change(base, dict(base, display="absent")) == "display lost"
    assert notable_change(base, dict(base, under_voltage=True)) == "under-voltage"
    assert notable_change(base, dict(base, alerts=["crue-1", "orage-2"])) == "alerts changed"
    assert notable_change(base, dict(base, alerts=[])) == "alerts changed"
    assert notable_change(base, dict(base, alerts=["crue-1"])) is None


# -- the chain: sensor → sampler → heartbeat ------------------------------------

@pytest.fixture
def factory() -> Iterator[MockFactory]:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = old


def heartbeat_from(r: SensorReadings, ctl: BrightnessController, errors: ErrorLog, now: datetime) -> dict[str, Any]:
    for fault in r.faults:
        errors.add(fault, now)
    return build_heartbeat(**fields(ambient=r.ambient, cpu_temp_c=r.cpu_temp_c, door_open=r.door_open,
                                    brightness=ctl.percent, errors=errors.items(now)),
                           sensor_faults=list(r.faults), brightness_source=ctl.source)


def test_stuck_sensor_and_door_reach_the_heartbeat(factory: MockFactory) -> None:
    problems = Problems()
    cfg = parse_sensors(Node({"light": {"type": "mcp3008", "stuck_after_s": 60}, "door": {"pin": 5, "bounce_s": 0},
                              "cpu_temp": "none", "interval": 3600}, "sensors", problems))
    assert problems.errors == []
    clock = [0.0]
    inbox: queue.Queue[SensorReadings] = queue.Queue()
    ctl, errors = BrightnessController(BrightnessConfig()), ErrorLog()
    with open_sensors(cfg) as sensors:
        door_pin = factory.pin(5)
        door_pin.drive_low()
        sampler = Sampler(sensors, cfg, inbox, clock=lambda: clock[0])
        try:
            prev = None
            for _ in range(3):
                clock[0] += 5
                r = sampler.sample_once()
                ctl.update(r.ambient, clock[0], T0, r.cpu_temp_c, r.light_ok)
                prev = heartbeat_from(r, ctl, errors, T0)
            assert prev is not None and prev["sensor_faults"] == [] and prev["brightness_source"] == "sensor"
            assert prev["door_open"] is False and prev["ambient"] is not None
            sensors.simulation.freeze()
            for _ in range(14):
                clock[0] += 5
                r = sampler.sample_once()
                ctl.update(r.ambient, clock[0], T0, r.cpu_temp_c, r.light_ok)
            cur = heartbeat_from(r, ctl, errors, T0)
            assert cur["sensor_faults"] == ["light: stuck"] and cur["ambient"] is None
            assert cur["brightness_source"] == "schedule"
            assert [e["reason"] for e in cur["errors"]] == ["light: stuck"]
            assert notable_change(prev, cur) == "sensor fault: light: stuck"

            while not inbox.empty():
                inbox.get_nowait()
            door_pin.drive_high()  # the door is opened
            r = inbox.get(timeout=2)
            opened = heartbeat_from(r, ctl, errors, T0)
            assert opened["door_open"] is True and notable_change(cur, opened) == "door opened"
        finally:
            sampler.stop()


# -- health figures ------------------------------------------------------------------

def test_health_figures(tmp_path: Path) -> None:
    thermal = tmp_path / "temp"
    thermal.write_text("52125\n")
    throttled = tmp_path / "get_throttled"
    throttled.write_text("1\n")
    h = health.Health(tmp_path, cpu_temp_file=str(thermal), throttle_file=str(throttled))
    figures = h.figures()
    assert figures["cpu_temp_c"] == 52.1
    assert figures["under_voltage"] is True and figures["throttled"] is False
    assert figures["disk_free_mb"] == shutil.disk_usage(tmp_path).free // 2**20
    assert isinstance(figures["uptime_s"], int) and 0 <= figures["uptime_s"] < 5
    assert figures["clock_synced"] in (True, False, None)
    missing = health.Health(tmp_path / "gone", cpu_temp_file=str(tmp_path / "none"),
                            throttle_file=str(tmp_path / "none")).figures()
    assert missing["cpu_temp_c"] is None and missing["disk_free_mb"] is None
    assert missing["under_voltage"] is None and missing["throttled"] is None


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_rss_grows_with_memory_held() -> None:
    before = health.rss_mb()
    assert before is not None and before > 1
    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    after = health.rss_mb()
    assert after is not None and after - before > 50
    del block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux only")
def test_clock_synced_reads_the_kernel_state() -> None:
    synced = health.clock_synced_adjtimex()
    assert synced in (True, False)  # Linux always answers adjtimex(2) in read-only mode
    answer = health.clock_synced_timedatectl()
    if answer is not None:  # where timedated runs, both views agree
        assert answer == synced
    assert health.clock_synced() == synced

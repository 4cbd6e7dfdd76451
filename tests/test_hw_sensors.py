"""Sensor config, the simulated MCP3xxx on gpiozero's mock SPI pins, and the sampler's fault rules."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import MCP3002, MCP3008, Device
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from player.errors import SensorError
from player.hw.config import LightConfig, SensorsConfig, DoorConfig, parse_sensors, parse_window
from player.hw.fakes import HungReader, SimulatedADC
from player.hw.sampler import LightHealth, Sampler, SensorReadings
from player.hw.sensors import FileCpuTemp, FileThrottle, Sensors, open_sensors
from player.validate import Node, Problems


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    leaked = {pin.name: users for pin, users in Device.pin_factory._reservations.items() if users}
    Device.pin_factory.reset()
    Device.pin_factory = old
    assert not leaked, f"devices left open: {leaked}"


def sensors_cfg(data: object) -> tuple[SensorsConfig, list[str]]:
    problems = Problems()
    cfg = parse_sensors(Node(data, "sensors", problems))
    return cfg, problems.errors


# -- config ----------------------------------------------------------------

def test_sensor_config_defaults_and_full() -> None:
    cfg, errors = sensors_cfg(None)
    assert errors == [] and cfg.light.type == "none" and cfg.door is None
    cfg, errors = sensors_cfg({
        "interval": 2, "timeout": 0.5,
        "light": {"type": "mcp3002", "channel": 1, "invert": True, "min_valid": 0.01, "max_valid": 0.99,
                  "stuck_after_s": 600, "rail_after_s": 30, "fail_after": 2},
        "cpu_temp": {"file": "/tmp/t"}, "door": {"pin": 17, "open_when": "pressed"}, "throttle": "none"})
    assert errors == []
    assert cfg.light == LightConfig("mcp3002", 1, 0, 0, None, True, 0.01, 0.99, 600, 30, 2)
    assert cfg.door == DoorConfig(pin=17, open_when="pressed")
    assert cfg.cpu_temp_file == "/tmp/t" and cfg.throttle_file is None and cfg.timeout == 0.5


def test_sensor_config_errors_name_their_keys() -> None:
    _, errors = sensors_cfg({"intervall": 3, "light": {"type": "mcp3002", "channel": 2, "min_valid": 0.9,
                                                       "max_valid": 0.1},
                             "door": {"pull_up": "yes"}})
    assert 'sensors.intervall: unknown key (did you mean "interval"?)' in errors
    assert "sensors.light.channel: must be between 0 and 1, got 2" in errors
    assert any(e.startswith("sensors.light.max_valid: must be greater") for e in errors)
    assert "sensors.door.pin: required" in errors
    assert 'sensors.door.pull_up: expected true or false, got "yes"' in errors
    _, errors = sensors_cfg({"light": {"type": "lightsensor"}})
    assert errors == ["sensors.light.pin: required"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_time_windows_from_garbage_never_crash(text: str) -> None:
    try:
        window = parse_window(text)
    except ValueError:
        return
    assert str(parse_window(str(window))) == str(window)


def test_time_window_wraps_midnight() -> None:
    from datetime import time as t

    w = parse_window("22:00-06:00")
    assert w.contains(t(23, 0)) and w.contains(t(5, 59)) and not w.contains(t(6, 0)) and w.contains(t(22, 0))
    assert parse_window("08:00-24:00").contains(t(23, 59))
    for bad in ("10:00-10:00", "24:00-02:00", "7:00-8:00", "12:00"):
        with pytest.raises(ValueError):
            parse_window(bad)


# -- the simulated ADC, through gpiozero's own MCP3xxx classes -----------------

def test_simulated_mcp3008_answers_gpiozero_bit_by_bit(factory: MockFactory) -> None:
    with SimulatedADC.attach(model="mcp3008") as chip:
        for channel, level in enumerate([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 0.333]):
            chip.set_level(channel, level)
        for channel, level in enumerate([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 0.333]):
            with MCP3008(channel=channel) as adc:
                assert adc.raw_value == round(level * 1023)
        assert chip.conversions == 8


def test_simulated_mcp3002_and_second_chip_select(factory: MockFactory) -> None:
    with SimulatedADC.attach(model="mcp3002", device=1) as chip:
        chip.set_level(1, 0.6)
        with MCP3002(channel=1, port=0, device=1) as adc:
            assert adc.raw_value == 614


def test_simulated_faults_and_noise(factory: MockFactory) -> None:
    with SimulatedADC.attach(noise_steps=2, seed=7) as chip, MCP3008(channel=0) as adc:
        chip.set_level(0, 0.5)
        codes = {adc.raw_value for _ in range(30)}
        assert len(codes) > 1 and all(abs(c - 512) <= 3 for c in codes)
        chip.freeze()
        frozen = adc.raw_value
        chip.set_level(0, 0.9)
        assert {adc.raw_value for _ in range(5)} == {frozen}
        chip.thaw()
        assert adc.raw_value > 900
        chip.disconnect(0)
        assert adc.raw_value == 0


# -- open_sensors ---------------------------------------------------------------

def test_open_sensors_in_mock_mode_and_close_releases_every_pin(factory: MockFactory, tmp_path: Path) -> None:
    thermal = tmp_path / "temp"
    thermal.write_text("48312\n")
    cfg, _ = sensors_cfg({"light": {"type": "mcp3008", "channel": 3}, "door": {"pin": 17},
                          "cpu_temp": {"file": str(thermal)}})
    sensors = open_sensors(cfg)
    assert sensors.open_faults == [] and isinstance(sensors.simulation, SimulatedADC)
    sensors.simulation.noise_steps = 0
    sensors.simulation.set_level(3, 0.42)
    assert sensors.light is not None and sensors.light.read() == pytest.approx(round(0.42 * 1023) / 1023)
    assert sensors.cpu_temp is not None and sensors.cpu_temp.read() == pytest.approx(48.312)
    assert factory._reservations  # the pins are claimed ...
    sensors.close()
    sensors.close()  # safe twice
    assert not any(factory._reservations.values())  # ... and all released


def test_a_sensor_that_cannot_open_is_left_out_and_reported(factory: MockFactory) -> None:
    factory.pin(17)  # claim the door pin as another device would
    from gpiozero import LED

    with LED(17):
        cfg, _ = sensors_cfg({"door": {"pin": 17}, "cpu_temp": "none"})
        with open_sensors(cfg) as sensors:
            assert sensors.door is None
            assert len(sensors.open_faults) == 1 and sensors.open_faults[0].startswith("door: unavailable")


def test_door_switch_callback(factory: MockFactory) -> None:
    cfg, _ = sensors_cfg({"door": {"pin": 17, "bounce_s": 0}, "cpu_temp": "none"})
    seen: list[bool] = []
    with open_sensors(cfg) as sensors:
        assert sensors.door is not None
        sensors.door.on_change(seen.append)
        pin = factory.pin(17)
        pin.drive_low()  # door closed: it holds the switch closed to ground
        assert sensors.door.is_open is False
        pin.drive_high()  # door opened
        assert sensors.door.is_open is True
        assert seen == [False, True]


def test_cpu_temp_and_throttle_files(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.write_text("71500\n")
    assert FileCpuTemp(str(temp)).read() == 71.5
    temp.write_text("garbage")
    with pytest.raises(SensorError):
        FileCpuTemp(str(temp)).read()
    with pytest.raises(SensorError):
        FileCpuTemp(str(tmp_path / "missing")).read()
    throttled = tmp_path / "get_throttled"
    throttled.write_text("50005\n")
    flags = FileThrottle(str(throttled)).read()
    assert flags is not None and flags["under_voltage"] and flags["throttled"] and not flags["freq_capped"]
    assert flags["under_voltage_occurred"] and flags["throttled_occurred"]
    throttled.write_text("0\n")
    assert FileThrottle(str(throttled)).read() == dict.fromkeys(flags, False)
    assert FileThrottle(str(tmp_path / "none")).read() is None


# -- fault rules (pure) ----------------------------------------------------------

def test_light_health_rules() -> None:
    health = LightHealth(LightConfig(type="mcp3008", stuck_after_s=100, rail_after_s=10, fail_after=3,
                                     max_valid=0.95))
    assert health.observe(0.5, None, 0) == (0.5, None)
    assert health.observe(0.5, None, 99) == (0.5, None)
    assert health.observe(0.5, None, 100) == (None, "light: stuck")
    assert health.observe(0.501, None, 101) == (0.501, None)  # moved: healthy again
    assert health.observe(0.0, None, 102) == (0.0, None)
    assert health.observe(0.0, None, 112) == (None, "light: disconnected")
    assert health.observe(0.97, None, 113) == (None, None)  # out of range once: ignored
    assert health.observe("x", None, 114) == (None, None)
    assert health.observe(float("nan"), None, 115) == (None, "light: out of range")
    assert health.observe(None, "light: timed out", 116) == (None, "light: timed out")
    assert health.observe(0.3, None, 117) == (0.3, None)
    inverted = LightHealth(LightConfig(type="mcp3008", invert=True))
    assert inverted.observe(0.25, None, 0) == (0.75, None)


# -- the sampler ------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sampler_detects_stuck_and_disconnected_adc(factory: MockFactory) -> None:
    cfg, _ = sensors_cfg({"light": {"type": "mcp3008", "stuck_after_s": 60, "rail_after_s": 20},
                          "cpu_temp": "none"})
    clock = FakeClock()
    inbox: queue.Queue[SensorReadings] = queue.Queue()
    with open_sensors(cfg) as sensors:
        chip = sensors.simulation
        chip.rng.seed(20261125)  # the noise is random: a fixed seed keeps the frozen run's start exact
        chip.set_level(0, 0.4)
        sampler = Sampler(sensors, cfg, inbox, clock=clock)
        try:
            for _ in range(20):  # noisy, live sensor: never stuck
                clock.now += 5
                r = sampler.sample_once()
                assert r.ambient is not None and abs(r.ambient - 0.4) < 0.01 and r.light_ok
            chip.freeze()
            faults = []
            for _ in range(14):
                clock.now += 5
                faults.append(sampler.sample_once().faults)
            assert faults[10] == () and faults[12] == ("light: stuck",)
            chip.thaw()
            clock.now += 5
            assert sampler.sample_once().light_ok
            chip.disconnect(0)
            readings = []
            for _ in range(5):
                clock.now += 5
                readings.append(sampler.sample_once())
            assert readings[-1].faults == ("light: disconnected",) and readings[-1].ambient is None
            assert not readings[-1].light_ok
            assert inbox.qsize() == 20 + 14 + 1 + 5
        finally:
            sampler.stop()


def test_a_hung_sensor_does_not_block_the_other_readings(tmp_path: Path) -> None:
    thermal = tmp_path / "temp"
    thermal.write_text("45000\n")
    hung = HungReader(0.5)
    sensors = Sensors(light=hung, cpu_temp=FileCpuTemp(str(thermal)))
    cfg = SensorsConfig(interval=0.05, timeout=0.2, light=LightConfig(type="mcp3008", fail_after=2))
    inbox: queue.Queue[SensorReadings] = queue.Queue()
    sampler = Sampler(sensors, cfg, inbox)
    sampler.start()
    try:
        got = [inbox.get(timeout=5) for _ in range(3)]
        assert all(r.cpu_temp_c == 45.0 and r.ambient is None for r in got)
        assert got[0].faults == () and "light: timed out" in got[1].faults
        assert hung.calls == 1  # a hung reader is not piled up with more reads
        thermal.write_text("46000\n")
        deadline = time.monotonic() + 5
        while inbox.get(timeout=5).cpu_temp_c != 46.0:
            assert time.monotonic() < deadline
        hung.release()
        deadline = time.monotonic() + 5
        while True:
            r = inbox.get(timeout=5)
            if r.ambient == 0.5:
                break
            assert time.monotonic() < deadline
        assert r.light_ok
    finally:
        sampler.stop()
        sensors.close()


def test_a_raising_sensor_is_a_fault_after_fail_after_reads() -> None:
    class Broken:
        def read(self) -> float:
            raise SensorError("SPI bus error")

        def close(self) -> None:
            pass

    cfg = SensorsConfig(light=LightConfig(type="mcp3008", fail_after=2))
    inbox: queue.Queue[SensorReadings] = queue.Queue()
    sampler = Sampler(Sensors(light=Broken()), cfg, inbox)
    try:
        assert sampler.sample_once().faults == ()
        assert sampler.sample_once().faults == ("light: read failed",)
    finally:
        sampler.stop()


def test_door_change_is_posted_at_once(factory: MockFactory) -> None:
    cfg, _ = sensors_cfg({"door": {"pin": 22, "bounce_s": 0}, "cpu_temp": "none", "interval": 3600})
    inbox: queue.Queue[SensorReadings] = queue.Queue()
    with open_sensors(cfg) as sensors:
        pin = factory.pin(22)
        pin.drive_low()
        sampler = Sampler(sensors, cfg, inbox)
        sampler.start()
        try:
            assert inbox.get(timeout=5).door_open is False  # the first round
            pin.drive_high()
            r = inbox.get(timeout=1)  # not the next round, an hour away
            assert r.door_open is True
        finally:
            sampler.stop()

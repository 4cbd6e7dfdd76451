"""Brightness: config, the controller's rules driven by the simulated ADC, and the actuators."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import given, settings
from hypothesis import strategies as st

from player.errors import OutputError
from player.hw.actuators import (LedMatrixBrightness, PwmBacklight, SoftwareDimmer, SysfsBacklight,
                                 open_actuator)
from player.hw.brightness import BrightnessController, interpolate
from player.hw.config import BrightnessConfig, parse_brightness, parse_sensors
from player.hw.fakes import make_backlight_tree
from player.hw.sampler import Sampler, SensorReadings
from player.hw.sensors import open_sensors
from player.validate import Node, Problems

NOON = datetime(2026, 6, 1, 12, 0)
MIDNIGHT = datetime(2026, 6, 1, 23, 30)
CURVE = [[0.0, 10], [0.2, 40], [0.6, 80], [1.0, 100]]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    leaked = {pin.name for pin, users in Device.pin_factory._reservations.items() if users}
    Device.pin_factory.reset()
    Device.pin_factory = old
    assert not leaked, f"devices left open: {leaked}"


def brightness_cfg(data: Any) -> tuple[BrightnessConfig, list[str]]:
    problems = Problems()
    cfg = parse_brightness(Node(data, "brightness", problems))
    return cfg, problems.errors


def good(data: Any) -> BrightnessConfig:
    cfg, errors = brightness_cfg(data)
    assert errors == []
    return cfg


# -- config ----------------------------------------------------------------

def test_brightness_config_full() -> None:
    cfg = good({"curve": CURVE, "min": 8, "max": 90, "median": 1, "smoothing": 30, "hysteresis": 4,
                "night": {"hours": "22:30-05:30", "max": 25}, "derate": {"above_c": 65, "per_degree": 4, "floor": 15},
                "fallback": {"day": 70, "night": 15}, "actuator": {"type": "pwm", "pin": 18, "frequency": 500}})
    assert cfg.curve == ((0.0, 10), (0.2, 40), (0.6, 80), (1.0, 100)) and cfg.min == 8 and cfg.median == 1
    assert cfg.night is not None and str(cfg.night.hours) == "22:30-05:30"
    assert str(cfg.fallback.hours) == "22:30-05:30"  # defaults to the night hours
    assert cfg.derate is not None and cfg.derate.floor == 15 and cfg.actuator.pin == 18
    assert good({"derate": False}).derate is None


def test_invalid_curve_and_schedule_name_their_keys() -> None:
    _, errors = brightness_cfg({"curve": [[0, 10], [0.5, 20], [0.4, 30]], "night": {"hours": "22:00-22:00"},
                                "fallback": {"hours": "late"}, "min": 60, "max": 50, "actuator": {"type": "lcd"}})
    assert "brightness.curve[2]: ambient must be strictly increasing (0.4 after 0.5)" in errors
    assert ('brightness.night.hours: "22:00-22:00": start and end are the same time (an empty window; '
            '"00:00-24:00" is the whole day)') in errors
    assert 'brightness.fallback.hours: "late": expected "HH:MM-HH:MM"' in errors
    assert "brightness.min: must not exceed max (50)" in errors
    assert any(e.startswith("brightness.actuator.type: expected one of") for e in errors)
    _, errors = brightness_cfg({"curve": [[0, 10]], "night": {"max": 20}})
    assert errors == ["brightness.curve: needs at least 2 items", "brightness.night.hours: required"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(st.one_of(st.floats(-2, 200), st.integers(-5, 200), st.text(max_size=3),
                                             st.none(), st.booleans()), max_size=3),
                          st.integers(), st.text(max_size=4)), max_size=6))
def test_generated_curves_are_either_valid_or_rejected_by_key(curve: list[Any]) -> None:
    cfg, errors = brightness_cfg({"curve": curve})
    if errors:
        assert all(e.startswith("brightness.curve") for e in errors)
    else:
        xs = [x for x, _ in cfg.curve]
        assert xs == sorted(set(xs)) and all(0 <= x <= 1 for x in xs)
        assert all(0 <= y <= 100 for _, y in cfg.curve)


# -- pure rules -----------------------------------------------------------------

def test_interpolation() -> None:
    curve = ((0.0, 10.0), (0.2, 40.0), (0.6, 80.0), (1.0, 100.0))
    assert interpolate(curve, -1) == 10 and interpolate(curve, 0.1) == 25 and interpolate(curve, 0.4) == 60
    assert interpolate(curve, 1.5) == 100 and interpolate(((0.3, 20.0), (0.5, 60.0)), 0.1) == 20


def test_min_max_night_cap_and_override_timeout() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "min": 15, "max": 90, "median": 1, "smoothing": 0,
                                     "night": {"hours": "22:00-06:00", "max": 30}}))
    assert ctl.update(0.0, 0, NOON, None, True) == 15
    assert ctl.update(1.0, 1, NOON, None, True) == 90
    assert ctl.update(1.0, 2, MIDNIGHT, None, True) == 30 and ctl.night_capped
    ctl.override(70, 600, now_mono=3)
    assert ctl.update(1.0, 4, MIDNIGHT, None, True) == 70 and ctl.source == "override"
    assert ctl.override_until() == 603
    assert ctl.update(1.0, 602.9, MIDNIGHT, None, True) == 70
    assert ctl.update(1.0, 603, MIDNIGHT, None, True) == 30 and ctl.source == "sensor"
    ctl.override(100, 60, now_mono=700)
    assert ctl.update(None, 701, NOON, None, True) == 90  # clamped to max
    with pytest.raises(ValueError):
        ctl.override(120, 10, 0)


def test_schedule_without_sensor_is_not_a_fault() -> None:
    ctl = BrightnessController(good({"fallback": {"day": 75, "night": 20, "hours": "21:00-07:00"}}))
    assert ctl.update(None, 0, NOON, None, True) == 75 and ctl.source == "schedule" and not ctl.fault
    assert ctl.update(None, 10, MIDNIGHT, None, True) == 20
    assert ctl.state["brightness_source"] == "schedule" and ctl.state["brightness_fault"] is False


# -- the controller fed through the simulated ADC and the sampler -------------------

class Rig:
    """Simulated MCP3008 → gpiozero → sampler (fake clock, 5 s rounds) → controller."""

    def __init__(self, sensors_data: dict[str, Any], brightness_data: dict[str, Any]) -> None:
        problems = Problems()
        self.sensors_cfg = parse_sensors(Node(sensors_data, "sensors", problems))
        self.ctl = BrightnessController(parse_brightness(Node(brightness_data, "brightness", problems)))
        assert problems.errors == []
        self.sensors = open_sensors(self.sensors_cfg)
        self.chip = self.sensors.simulation
        self.chip.noise_steps = 1
        self.chip.rng.seed(5)
        self.now = 0.0
        self.local = NOON
        self.sampler = Sampler(self.sensors, self.sensors_cfg, queue.Queue(), clock=lambda: self.now)
        self.last: SensorReadings | None = None

    def step(self, level: float | None = None, seconds: float = 5.0) -> int:
        if level is not None:
            self.chip.set_level(0, level)
        self.now += seconds
        r = self.last = self.sampler.sample_once()
        return self.ctl.update(r.ambient, self.now, self.local, r.cpu_temp_c, r.light_ok)

    def close(self) -> None:
        self.sampler.stop()
        self.sensors.close()


@pytest.fixture
def rig(factory: MockFactory, tmp_path: Path) -> Iterator[Rig]:
    thermal = tmp_path / "temp"
    thermal.write_text("45000\n")
    rig = Rig({"light": {"type": "mcp3008", "rail_after_s": 20, "stuck_after_s": 120},
               "cpu_temp": {"file": str(thermal)}},
              {"curve": CURVE, "smoothing": 20, "hysteresis": 3, "min": 5, "max": 100,
               "fallback": {"day": 80, "night": 20, "hours": "22:00-06:00"}})
    rig.thermal = thermal  # type: ignore[attr-defined]
    yield rig
    rig.close()


def test_brightness_follows_the_curve_with_smoothing_and_hysteresis(rig: Rig) -> None:
    for _ in range(10):
        steady = rig.step(0.4)
    assert steady == 60 and rig.ctl.source == "sensor"  # curve(0.4)

    # Headlights for one reading, then a passing shadow: no visible change at all.
    assert rig.step(1.0) == 60
    assert rig.step(0.4) == 60
    assert rig.step(0.0) == 60
    assert [rig.step(0.4) for _ in range(3)] == [60, 60, 60]

    # A slow drift worth less than the hysteresis: the output holds still.
    assert [rig.step(0.42) for _ in range(20)] == [60] * 20

    # Dusk: a lasting change is followed, gradually.
    path = [rig.step(0.1) for _ in range(24)]
    assert path[0] == 60  # the median still holds the old level
    assert 25 < path[3] < 60  # on its way, not there yet (time constant 20 s)
    assert all(a >= b for a, b in zip(path, path[1:]))  # monotonic, no overshoot
    assert all(a == b or a - b >= 3 for a, b in zip(path, path[1:]))  # steps of at least the hysteresis
    assert abs(path[-1] - 25) < 3  # curve(0.1)


def test_stuck_and_disconnected_sensor_fall_back_to_the_schedule(rig: Rig) -> None:
    for _ in range(5):
        rig.step(0.9)
    assert rig.ctl.percent == 95
    rig.chip.freeze()
    for _ in range(30):  # 150 s of identical codes
        rig.step(0.9)
    assert rig.last is not None and rig.last.faults == ("light: stuck",)
    assert rig.ctl.percent == 80 and rig.ctl.source == "schedule" and rig.ctl.fault
    rig.local = MIDNIGHT
    assert rig.step() == 20
    rig.chip.thaw()
    rig.local = NOON
    # Recovered as soon as the code moves (noise may repeat the frozen code once or twice).
    assert 95 in [rig.step(0.9) for _ in range(6)] and not rig.ctl.fault
    rig.chip.disconnect(0)
    levels = [rig.step() for _ in range(6)]
    assert levels[0] == 95 and levels[-1] == 80  # a rail for 20 s is a cut wire
    assert rig.last is not None and rig.last.faults == ("light: disconnected",)
    assert rig.ctl.state["brightness_fault"] is True


def test_thermal_derating_through_the_thermal_file(rig: Rig) -> None:
    for _ in range(5):
        rig.step(0.98)  # bright, yet off the rail (a rail for 20 s would be a cut wire)
    assert rig.ctl.percent == 99
    rig.thermal.write_text("74000\n")  # type: ignore[attr-defined]
    assert rig.step() == 80 and rig.ctl.derated  # 100 - 5 × (74 - 70)
    rig.thermal.write_text("95000\n")  # type: ignore[attr-defined]
    assert rig.step() == 20  # the floor
    rig.ctl.override(90, 600, rig.now)
    assert rig.step() == 20  # the override does not overheat the panel
    rig.thermal.write_text("60000\n")  # type: ignore[attr-defined]
    assert rig.step() == 90


# -- actuators ------------------------------------------------------------------

def test_sysfs_backlight_writes_into_a_fake_tree(tmp_path: Path) -> None:
    folder = make_backlight_tree(tmp_path / "backlight", "10-0045", max_brightness=31)
    cfg = good({"actuator": {"type": "backlight", "path": str(folder)}})
    backlight = open_actuator(cfg.actuator)
    assert isinstance(backlight, SysfsBacklight)
    backlight.set(50)
    assert (folder / "brightness").read_text() == "16\n"
    backlight.set(100)
    assert (folder / "brightness").read_text() == "31\n"
    backlight.set(0)
    assert (folder / "brightness").read_text() == "0\n"
    with pytest.raises(OutputError):
        SysfsBacklight(tmp_path / "nothing")
    with pytest.raises(ValueError):
        backlight.set(101)


def test_pwm_value_on_a_mock_pwm_pin() -> None:
    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory(pin_class=MockPWMPin)
    try:
        cfg = good({"actuator": {"type": "pwm", "pin": 18, "frequency": 800}})
        pwm = open_actuator(cfg.actuator)
        assert isinstance(pwm, PwmBacklight)
        pin = factory.pin(18)
        assert pin.state == 0 and pin.frequency == 800
        pwm.set(40)
        assert pin.state == pytest.approx(0.4)
        pwm.set(100)
        assert pin.state == 1
        pwm.close()
        pwm.close()
        assert not any(factory._reservations.values())
        inverted = PwmBacklight(18, active_high=False)
        inverted.set(25)
        assert factory.pin(18).state == pytest.approx(0.75)
        inverted.close()
    finally:
        factory.reset()
        Device.pin_factory = old


def test_software_and_matrix_actuators() -> None:
    dims: list[float] = []
    dimmer = open_actuator(good(None).actuator, set_dim=dims.append)
    assert isinstance(dimmer, SoftwareDimmer)
    dimmer.set(50)
    dimmer.set(50)  # unchanged: not repeated
    dimmer.set(20)
    assert dims == [0.5, 0.2] and dimmer.factor == 0.2
    levels: list[int] = []
    matrix = open_actuator(good({"actuator": {"type": "ledmatrix"}}).actuator, set_matrix_brightness=levels.append)
    assert isinstance(matrix, LedMatrixBrightness)
    matrix.set(30)
    matrix.set(30)
    matrix.set(31)
    assert levels == [30, 31]

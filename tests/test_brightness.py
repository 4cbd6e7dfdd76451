"""Brightness: config, the controller's rules driven by the simulated ADC, and the actuators."""

from __future__ import annotations

import math
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


# -- rules pinned down one by one (each kills a mutant the tests above let live) ----------

EVENING = datetime(2026, 6, 1, 22, 0)


def test_night_cap_also_bounds_the_fallback_schedule() -> None:
    # No light sensor: the fallback schedule is in charge, and its "day" level still
    # runs at 22:00 because its own night starts later. The night cap must apply.
    ctl = BrightnessController(good({"min": 0, "night": {"hours": "21:00-07:00", "max": 25},
                                     "fallback": {"day": 90, "night": 10, "hours": "23:30-05:00"}}))
    assert ctl.update(None, 0, NOON, None, True) == 90 and not ctl.night_capped
    assert ctl.update(None, 1, EVENING, None, True) == 25
    assert ctl.source == "schedule" and ctl.night_capped and ctl.state["night_capped"] is True
    assert ctl.update(None, 2, MIDNIGHT.replace(minute=45), None, True) == 10 and not ctl.night_capped
    # The same with a faulty sensor (sensor_ok False): the fallback is capped too.
    faulty = BrightnessController(good({"min": 0, "night": {"hours": "21:00-07:00", "max": 25},
                                        "fallback": {"day": 90, "night": 10, "hours": "23:30-05:00"}}))
    assert faulty.update(0.9, 0, EVENING, None, False) == 25 and faulty.fault and faulty.night_capped


def test_night_cap_at_exactly_the_cap_is_not_reported_as_capped() -> None:
    ctl = BrightnessController(good({"min": 0, "night": {"hours": "21:00-07:00", "max": 30},
                                     "fallback": {"day": 30, "hours": "23:30-05:00"}}))
    assert ctl.update(None, 0, EVENING, None, True) == 30 and not ctl.night_capped


def test_a_new_controller_reports_nothing_unusual() -> None:
    ctl = BrightnessController(good(None))
    assert ctl.percent is None and ctl.smoothed is None and ctl.override_until() is None
    assert ctl.state == {"brightness": None, "brightness_source": "schedule", "brightness_fault": False,
                         "derated": False, "night_capped": False, "alert_floor": False,
                         "below_alert_floor": False}
    assert ctl.update(None, 0, NOON, None, True) == 100  # the default fallback day level
    assert ctl.state == {"brightness": 100, "brightness_source": "schedule", "brightness_fault": False,
                         "derated": False, "night_capped": False, "alert_floor": False,
                         "below_alert_floor": False}


def test_override_bounds_and_an_override_without_end() -> None:
    ctl = BrightnessController(good({"min": 0, "max": 100}))
    message = r"^override needs 0 <= value <= 100 and seconds > 0$"
    for value, seconds in [(-1, 10), (100.5, 10), (101, 10), (50, 0), (50, -5), (50, math.nan)]:
        with pytest.raises(ValueError, match=message):
            ctl.override(value, seconds, 0)
    ctl.override(0, 0.5, now_mono=0)  # both ends of the range and short times are allowed
    assert ctl.update(None, 0.1, NOON, None, True) == 0 and ctl.source == "override"
    ctl.override(100, 10, now_mono=1)
    assert ctl.update(None, 2, NOON, None, True) == 100
    ctl.override(40, None, now_mono=3)  # until the next override or a restart
    assert ctl.override_until() is None
    assert ctl.update(None, 1e9, NOON, None, True) == 40 and ctl.source == "override"
    ctl.clear_override()
    assert ctl.update(None, 1e9 + 1, NOON, None, True) == 100 and ctl.source == "schedule"


def test_override_at_night_is_not_reported_as_night_capped() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0, "min": 0,
                                     "night": {"hours": "22:00-06:00", "max": 30}}))
    assert ctl.update(1.0, 0, MIDNIGHT, None, True) == 30 and ctl.night_capped
    ctl.override(70, 60, now_mono=1)
    assert ctl.update(1.0, 2, MIDNIGHT, None, True) == 70 and ctl.night_capped is False
    assert ctl.state["night_capped"] is False


def test_readings_are_clamped_to_0_1_and_smoothed_with_the_time_constant() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 20}))
    ctl.update(1.5, 0, NOON, None, True)  # a reading above full scale counts as 1.0
    assert ctl.smoothed == 1.0
    ctl.update(0.0, 20, NOON, None, True)  # one time constant later: 63 % of the way
    assert ctl.smoothed == pytest.approx(math.exp(-1))
    ctl.update(-0.5, 20, NOON, None, True)  # below zero counts as 0.0; no time passed: no change
    assert ctl.smoothed == pytest.approx(math.exp(-1))
    ctl.update(0.0, 10, NOON, None, True)  # the clock going backwards does not move it either
    assert ctl.smoothed == pytest.approx(math.exp(-1))
    # A time constant below one second still smooths, over fractions of a second.
    quick = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0.5}))
    quick.update(0.0, 0, NOON, None, True)
    quick.update(1.0, 0.25, NOON, None, True)
    assert quick.smoothed == pytest.approx(1 - math.exp(-0.5))


def test_alert_floor_lifts_the_level_and_is_reported() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0, "min": 0, "max": 60,
                                     "hysteresis": 10, "night": {"hours": "22:00-06:00", "max": 20}}))
    assert ctl.update(1.0, 0, MIDNIGHT, None, True, floor=None) == 20
    assert ctl.update(1.0, 1, MIDNIGHT, None, True, floor=80) == 80  # over the night cap and max
    assert ctl.floored and ctl.state["alert_floor"] is True and not ctl.below_floor
    assert ctl.update(1.0, 2, MIDNIGHT, None, True, floor=20) == 20  # equal: nothing lifted
    assert ctl.floored is False and ctl.below_floor is False
    # The floor ending is applied at once, even when the change is below the hysteresis.
    assert ctl.update(1.0, 3, MIDNIGHT, None, True, floor=25) == 25 and ctl.floored
    assert ctl.update(1.0, 4, MIDNIGHT, None, True, floor=None) == 20 and not ctl.floored
    assert ctl.state["alert_floor"] is False and ctl.state["below_alert_floor"] is False


def test_derating_caps_the_alert_floor_only_above_its_temperature() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0, "min": 0, "max": 60,
                                     "derate": {"above_c": 70, "per_degree": 5, "floor": 10}}))
    # At exactly above_c the limit is max itself, but no derating is in force yet.
    assert ctl.update(1.0, 0, NOON, 70.0, True, floor=80) == 80 and not ctl.derated and not ctl.below_floor
    assert ctl.update(1.0, 1, NOON, 72.0, True, floor=80) == 50 and ctl.derated and ctl.below_floor
    assert ctl.state["derated"] is True and ctl.state["below_alert_floor"] is True
    # A floor equal to what derating allows is reached: not below it.
    assert ctl.update(1.0, 2, NOON, 72.0, True, floor=50) == 50 and not ctl.below_floor


def test_a_level_equal_to_the_derating_limit_is_not_derated() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0, "min": 0, "max": 100,
                                     "derate": {"above_c": 70, "per_degree": 5, "floor": 10}}))
    assert ctl.update(0.6, 0, NOON, 74.0, True) == 80 and ctl.derated is False  # limit 100 - 5 × 4 = 80
    assert ctl.update(0.6, 1, NOON, None, True) == 80 and ctl.derated is False


def test_hysteresis_gives_way_to_a_new_source_a_full_step_and_the_range_ends() -> None:
    ctl = BrightnessController(good({"curve": CURVE, "median": 1, "smoothing": 0, "min": 55, "max": 90,
                                     "hysteresis": 5, "fallback": {"day": 62}}))
    assert ctl.update(0.4, 0, NOON, None, True) == 60
    assert ctl.update(0.44, 1, NOON, None, True) == 60  # 64: less than 5 points, held
    assert ctl.update(0.45, 2, NOON, None, True) == 65  # exactly 5 points: applied
    assert ctl.update(0.42, 3, NOON, None, True) == 65  # 62: held
    assert ctl.update(None, 4, NOON, None, False) == 62 and ctl.source == "schedule"  # new source: applied
    assert ctl.update(0.37, 5, NOON, None, True) == 57 and ctl.source == "sensor"  # back: applied
    assert ctl.update(0.3, 6, NOON, None, True) == 55  # 50, clamped to min 55: the end is reached
    assert ctl.update(0.74, 7, NOON, None, True) == 87
    assert ctl.update(1.0, 8, NOON, None, True) == 90  # 3 points, but max is reached
    assert ctl.update(1.0, 9, NOON, None, True) == 90

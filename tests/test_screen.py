"""Sleep hours and the screen's state (player/screen.py), the alert floor, and what
switches the picture off: backlight power, PWM duty, framebuffer blanking."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pygame
import pytest
from fake_framebuffer import make_fb
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import given, settings
from hypothesis import strategies as st

from player.alerts import AlertsConfig
from player.config import config_from_data
from player.errors import ConfigError
from player.hw.actuators import PwmBacklight, SysfsBacklight
from player.hw.brightness import BrightnessController
from player.hw.config import BrightnessConfig, parse_brightness
from player.hw.fakes import make_backlight_tree
from player.render.outputs import init_display, open_output
from player.screen import SleepHours, SleepWindow, decide
from player.validate import Node, Problems

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc


def load(sleep: Any = None, **sections: Any) -> Any:
    display: dict[str, Any] = {"output": "png", "size": [64, 32]}
    if sleep is not None:
        display["sleep"] = sleep
    return config_from_data({"panel": {"id": "p1"}, "display": display, **sections})


def errors(sleep: Any = None, **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(sleep, **sections)
    return exc.value.errors


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


# -- config ------------------------------------------------------------------------------

def test_sleep_windows_plain_with_days_wrapping_and_ending_at_24() -> None:
    cfg = load(["23:00-06:00", {"hours": "06:00-23:00", "days": ["sun"]}, {"hours": "12:00-14:00", "days": ["Mon"]}])
    assert [str(w) for w in cfg.display.sleep] == ["23:00-06:00", "06:00-23:00 sun", "12:00-14:00 mon"]
    assert cfg.display.sleep[1] == SleepWindow(360, 1380, frozenset({6}))
    assert load([{"hours": "12:00-24:00", "days": ["sat"]}]).display.sleep[0].end_min == 1440
    assert cfg.warnings == ()
    assert cfg.alerts.wake_level == "warning" and cfg.alerts.min_brightness == 60


def test_bad_sleep_windows_name_their_keys() -> None:
    found = errors(["25:00-06:00", {"hours": "10:00-11:00", "days": ["funday"]}, 5, {"hour": "1-2"},
                    "06:00-06:00", "24:00-02:00", "12:00-24:30"])
    assert found == [
        'display.sleep[0]: "25:00-06:00": expected "HH:MM-HH:MM"',
        'display.sleep[1].days[0]: expected one of mon, tue, wed, thu, fri, sat, sun, got "funday"',
        'display.sleep[2]: expected "HH:MM-HH:MM" or a mapping with hours and days, got 5',
        'display.sleep[3].hour: unknown key (did you mean "hours"?)',
        "display.sleep[3].hours: required",
        'display.sleep[4]: "06:00-06:00": start and end are the same time (an empty window; '
        '"00:00-24:00" is the whole day)',
        'display.sleep[5]: "24:00-02:00": a window cannot start at 24:00',
        'display.sleep[6]: "12:00-24:30": 24:00 is the latest time',
    ]
    assert errors("23:00-06:00") == ['display.sleep: expected a list, got "23:00-06:00"']


def test_overlapping_windows_are_refused_naming_both_and_where() -> None:
    assert errors(["22:00-06:00", {"hours": "00:00-24:00", "days": ["sun"]}]) == [
        'display.sleep[1]: "00:00-24:00 sun" overlaps display.sleep[0] "22:00-06:00" from sun 00:00 to sun 06:00; '
        "make the windows meet, not overlap"]
    # Sunday night's window runs into Monday morning: the week wraps too.
    assert errors([{"hours": "22:00-07:00", "days": ["sun"]}, {"hours": "06:00-08:00", "days": ["mon"]}]) == [
        'display.sleep[1]: "06:00-08:00 mon" overlaps display.sleep[0] "22:00-07:00 sun" from mon 06:00 '
        "to mon 07:00; make the windows meet, not overlap"]
    # Windows that only meet are fine.
    assert load(["22:00-06:00", {"hours": "06:00-09:00", "days": ["sun"]}]).display.sleep


def test_a_sleep_covering_the_whole_week_is_allowed_with_a_warning() -> None:
    cfg = load(["00:00-24:00"])
    assert cfg.warnings == ("display.sleep: the windows cover the whole week: the screen lights only for "
                            "alerts and the wake command",)
    assert load(["12:00-12:00".replace("12:00-12:00", "06:00-05:59")]).warnings == ()


def test_alert_wake_level_and_min_brightness_are_checked() -> None:
    assert errors(alerts={"wake_level": "severe", "min_brightness": 0}) == [
        'alerts.wake_level: expected one of info, warning, critical, got "severe"',
        "alerts.min_brightness: must be between 1 and 100, got 0"]
    assert errors(alerts={"min_brightness": 101}) == ["alerts.min_brightness: must be between 1 and 100, got 101"]
    cfg = load(alerts={"wake_level": "critical", "min_brightness": 75}).alerts
    assert cfg.wakes("critical") and not cfg.wakes("warning") and cfg.min_brightness == 75
    assert AlertsConfig().wakes("warning") and not AlertsConfig().wakes("info")


def test_brightness_windows_accept_the_whole_day() -> None:
    problems = Problems()
    cfg = parse_brightness(Node({"night": {"hours": "00:00-24:00", "max": 0}, "min": 0}, "brightness", problems))
    assert problems.errors == [] and cfg.night is not None
    assert all(cfg.night.hours.contains(datetime(2026, 1, 1, h, m).time()) for h in range(24) for m in (0, 59))


# -- the schedule on the wall clock -------------------------------------------------------

def hours(*items: Any) -> SleepHours:
    return SleepHours(load(list(items)).display.sleep, PARIS)


def test_asleep_and_next_change_across_midnight_and_by_day() -> None:
    h = hours("23:00-06:00")
    assert not h.asleep(paris(2026, 12, 3, 22, 59))
    assert h.asleep(paris(2026, 12, 3, 23, 0)) and h.asleep(paris(2026, 12, 4, 5, 59))
    assert not h.asleep(paris(2026, 12, 4, 6, 0))
    assert h.next_change(paris(2026, 12, 3, 12, 0)) == paris(2026, 12, 3, 23, 0)
    assert h.next_wake(paris(2026, 12, 3, 12, 0)) == paris(2026, 12, 4, 6, 0)
    assert h.next_wake(paris(2026, 12, 4, 1, 0)) == paris(2026, 12, 4, 6, 0)
    # A Saturday-night window ends on Sunday morning; nothing on other nights.
    sat = hours({"hours": "22:00-02:00", "days": ["sat"]})
    assert sat.asleep(paris(2026, 12, 6, 1, 0)) and not sat.asleep(paris(2026, 12, 7, 1, 0))
    assert sat.next_change(paris(2026, 12, 7, 3, 0)) == paris(2026, 12, 12, 22, 0)


def test_windows_that_meet_make_one_sleep() -> None:
    h = hours("22:00-24:00", "00:00-06:00")
    assert h.next_change(paris(2026, 12, 3, 21, 0)) == paris(2026, 12, 3, 22, 0)
    assert h.next_change(paris(2026, 12, 3, 23, 0)) == paris(2026, 12, 4, 6, 0)  # not 00:00


def test_daylight_saving_changes() -> None:
    h = hours("01:30-02:30")
    # Spring forward (2026-03-29, 02:00 -> 03:00): the window lasts from 01:30 to the jump.
    assert h.asleep(paris(2026, 3, 29, 1, 45))
    assert h.next_change(paris(2026, 3, 29, 1, 45)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert not h.asleep(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 local
    # Fall back (2026-10-25, 03:00 -> 02:00): 02:00-02:30 happens twice, asleep both times.
    assert h.asleep(paris(2026, 10, 25, 2, 15, fold=0)) and h.asleep(paris(2026, 10, 25, 2, 15, fold=1))
    assert not h.asleep(datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # 02:45 CEST, between the passes


def test_a_whole_week_asleep_never_changes_and_no_windows_never_sleep() -> None:
    assert hours("00:00-24:00").next_change(paris(2026, 12, 3, 12, 0)) is None
    none = SleepHours((), PARIS)
    assert not none.asleep(paris(2026, 12, 3, 3, 0)) and none.next_change(paris(2026, 12, 3, 3, 0)) is None
    assert none.next_wake(paris(2026, 12, 3, 3, 0)) is None


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 1439), length=st.integers(1, 1439),
       moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)))
def test_next_change_is_exact(start: int, length: int, moment: datetime) -> None:
    end = (start + length) % 1440 or 1440
    h = SleepHours((SleepWindow(start, end),), PARIS)
    now = moment.replace(tzinfo=UTC)
    change = h.next_change(now)
    assert change is not None and change > now
    state = h.asleep(now)
    assert h.asleep(change) != state
    # Constant in between, probed every few minutes.
    probe = now
    while probe < change:
        assert h.asleep(probe) == state, probe
        probe += timedelta(minutes=7)


def test_decide() -> None:
    assert decide(scheduled=False, alert_wakes=False, woken=False, slept=False) == "on"
    assert decide(scheduled=True, alert_wakes=False, woken=False, slept=False) == "asleep"
    assert decide(scheduled=True, alert_wakes=True, woken=False, slept=False) == "woken"
    assert decide(scheduled=True, alert_wakes=False, woken=True, slept=False) == "woken"
    assert decide(scheduled=False, alert_wakes=False, woken=False, slept=True) == "asleep"
    assert decide(scheduled=False, alert_wakes=True, woken=False, slept=True) == "woken"
    assert decide(scheduled=False, alert_wakes=True, woken=False, slept=False) == "on"


# -- the alert floor -------------------------------------------------------------------------

def controller(**data: Any) -> BrightnessController:
    problems = Problems()
    cfg: BrightnessConfig = parse_brightness(Node(data, "brightness", problems))
    assert problems.errors == []
    return BrightnessController(cfg)


NIGHT = datetime(2026, 12, 3, 23, 30)
DAY = datetime(2026, 12, 3, 12, 0)


def test_the_floor_lifts_the_night_cap_the_schedule_and_the_override() -> None:
    ctl = controller(min=0, night={"hours": "00:00-24:00", "max": 0})
    assert ctl.update(None, 0.0, NIGHT, None, True) == 0  # the fallback schedule, capped at 0
    assert ctl.update(None, 1.0, NIGHT, None, True, floor=60) == 60
    assert ctl.floored and not ctl.below_floor
    assert ctl.update(None, 2.0, NIGHT, None, True) == 0 and not ctl.floored
    ctl.override(0, None, 3.0)
    assert ctl.update(None, 3.0, DAY, None, True) == 0
    assert ctl.update(None, 4.0, DAY, None, True, floor=60) == 60
    ctl.override(90, None, 5.0)
    assert ctl.update(None, 5.0, DAY, None, True, floor=60) == 90  # a floor, not a cap


def test_the_floor_lifts_the_sensor_and_max() -> None:
    ctl = controller(max=40, curve=[[0, 5], [1, 40]], smoothing=0, median=1)
    assert ctl.update(0.0, 0.0, DAY, None, True) == 5
    assert ctl.update(0.0, 1.0, DAY, None, True, floor=60) == 60


def test_only_thermal_derating_goes_below_the_floor_and_says_so() -> None:
    ctl = controller(derate={"above_c": 70, "per_degree": 10, "floor": 20})
    assert ctl.update(None, 0.0, DAY, 80.0, True, floor=60) == 20
    assert ctl.derated and ctl.below_floor and ctl.state["below_alert_floor"]
    assert ctl.update(None, 1.0, DAY, 50.0, True, floor=60) == 100 and not ctl.below_floor


# -- what switches the picture off -------------------------------------------------------------

def test_backlight_power_uses_bl_power_and_keeps_the_level(tmp_path: Path) -> None:
    folder = make_backlight_tree(tmp_path, max_brightness=100)
    bl = SysfsBacklight(folder)
    bl.set(70)
    bl.power(False)
    assert (folder / "bl_power").read_text() == "4\n" and (folder / "brightness").read_text() == "70\n"
    bl.set(30)  # set while off: applied, the backlight stays off
    bl.power(True)
    assert (folder / "bl_power").read_text() == "0\n" and (folder / "brightness").read_text() == "30\n"


def test_backlight_without_bl_power_goes_to_zero_and_back(tmp_path: Path) -> None:
    folder = make_backlight_tree(tmp_path, max_brightness=100)
    (folder / "bl_power").unlink()
    bl = SysfsBacklight(folder)
    bl.set(70)
    bl.power(False)
    assert (folder / "brightness").read_text() == "0\n"
    bl.set(50)
    assert (folder / "brightness").read_text() == "0\n"  # still off
    bl.power(True)
    assert (folder / "brightness").read_text() == "50\n"


def test_pwm_power_off_is_duty_zero_and_on_restores() -> None:
    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory(pin_class=MockPWMPin)
    try:
        pwm = PwmBacklight(18)
        pwm.set(40)
        pwm.power(False)
        assert factory.pin(18).state == 0
        pwm.set(60)
        assert factory.pin(18).state == 0
        pwm.power(True)
        assert factory.pin(18).state == pytest.approx(0.6)
        pwm.close()
    finally:
        factory.reset()
        Device.pin_factory = old


def test_fbdev_blanks_through_sysfs_when_the_ioctl_is_not_there(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 32, 16, 32, fill=0x55)
    init_display("fbdev")
    out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    try:
        blank = sysfs / "class" / "graphics" / "fb0" / "blank"
        how = out.set_power(False)
        assert blank.read_text() == "4\n" and "blanked" in how and not out.powered
        out.set_power(True)
        assert blank.read_text() == "0\n" and out.powered
        frame = pygame.Surface((32, 16))
        frame.fill((255, 255, 255))
        out.show(frame, [])  # written whole after the wake, whatever the dirty list says
        assert Path(device).read_bytes()[:4] == b"\xff\xff\xff\x00"
    finally:
        out.close()


def test_an_output_that_cannot_blank_shows_black(tmp_path: Path) -> None:
    init_display("png")
    out = open_output("png", size=(16, 8), path=tmp_path / "f.png")
    try:
        frame = pygame.Surface((16, 8))
        frame.fill((200, 100, 50))
        out.show(frame, None)
        assert "black" in out.set_power(False)
        out.flush(out.next_deadline() or 0.0)  # the main loop calls it at that deadline
        assert out.wait_idle(5)
        from PIL import Image

        with Image.open(tmp_path / "f.png") as img:
            assert img.convert("RGB").getextrema() == ((0, 0), (0, 0), (0, 0))
    finally:
        out.close()


def test_check_prints_the_whole_week_warning_and_passes(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text('panel: {id: p1}\ndisplay: {output: png, size: [64, 32], sleep: ["00:00-24:00"]}\n')
    done = subprocess.run([sys.executable, "-m", "player.cli", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning: display.sleep: the windows cover the whole week" in done.stdout


def test_the_loop_is_due_at_the_window_edge_and_the_screen_goes_off_there(tmp_path: Path) -> None:
    """In-process player (png output): its screen part asks the loop to wake at the next
    edge of a sleep window, and switches the screen off when the wall clock passes it."""
    import time

    from player.app import Player

    wall = datetime.now(UTC)
    edge = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
    window = f"{edge:%H:%M}-{edge + timedelta(minutes=30):%H:%M}"
    cfg = config_from_data({
        "panel": {"id": "p1", "timezone": "UTC"},
        "display": {"output": "png", "size": [64, 32], "path": str(tmp_path / "f.png"), "sleep": [window]},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
    })
    player = Player(cfg)
    try:
        player.start()
        assert player.screen.state == "on" and player.output.powered
        now, wall = time.monotonic(), datetime.now(UTC)
        due = [d for d in player.screen.deadlines(now, wall) if d is not None]
        assert due and abs(min(due) - (now + (edge - wall).total_seconds())) < 0.5
        assert min(player.deadlines(now, wall)) <= min(due)  # the loop's own wait ends there at the latest
        player.screen.tick(min(due), edge)
        assert player.screen.state == "asleep" and not player.output.powered
        assert player.content.slide_ends is None  # no slide turns in the dark
        # Thirty minutes later the window is over.
        player.screen.tick(min(due) + 1800, edge + timedelta(minutes=30))
        assert player.screen.state == "on" and player.output.powered
    finally:
        player.close()


# -- pinned down one by one (each kills a mutant the tests above let live) ----------------------

def test_week_spans_at_the_end_of_the_week_and_the_text_of_several_days() -> None:
    sunday_night = SleepWindow(22 * 60, 6 * 60, frozenset({6}))
    assert sunday_night.week_spans() == [(6 * 1440 + 1320, 7 * 1440), (0, 360)]
    until_midnight = SleepWindow(22 * 60, 1440, frozenset({6}))
    assert until_midnight.week_spans() == [(6 * 1440 + 1320, 7 * 1440)]  # no empty span on Monday
    assert str(SleepWindow(23 * 60, 6 * 60, frozenset({1, 0}))) == "23:00-06:00 mon,tue"


def test_sleep_window_mapping_errors_and_the_window_limit() -> None:
    found = errors([{"hours": "25:00-06:00", "days": ["mon"]}])
    assert found == ['display.sleep[0].hours: "25:00-06:00": expected "HH:MM-HH:MM"']
    short = [f"{i // 2:02d}:{i % 2 * 30:02d}-{i // 2:02d}:{i % 2 * 30 + 15:02d}" for i in range(33)]
    assert any(e.startswith("display.sleep: ") for e in errors(short))  # 33 windows: too many
    assert len(load(short[:32]).display.sleep) == 32
    windows = (SleepWindow(60, 120),)
    assert SleepHours(windows, PARIS).windows == windows


def test_overlap_reaching_the_end_of_the_week_and_next_change_within_its_horizon() -> None:
    found = errors([{"hours": "22:00-24:00", "days": ["sun"]}, {"hours": "23:00-24:00", "days": ["sun"]}])
    assert found == ['display.sleep[1]: "23:00-24:00 sun" overlaps display.sleep[0] "22:00-24:00 sun" '
                     "from sun 23:00 to mon 00:00; make the windows meet, not overlap"]
    hours = SleepHours((SleepWindow(60, 120, frozenset({0})),), PARIS)  # Mondays 01:00-02:00
    tuesday = paris(2026, 12, 1, 12)
    assert hours.next_change(tuesday, horizon=timedelta(days=1)) is None  # next Monday is 6 days away
    assert hours.next_change(tuesday) == paris(2026, 12, 7, 1)

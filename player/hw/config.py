"""The ``sensors:`` and ``brightness:`` sections of the panel config.

Both parsers take a :class:`player.validate.Node` and record every problem
(with its key path, unknown keys with a did-you-mean hint) in the node's
``Problems``; they always return a usable, frozen object built from the
defaults where a value was wrong, so validation of the rest goes on.

Example::

    problems = Problems()
    root = Node(yaml.safe_load(text), "", problems)
    sensors = parse_sensors(root.child("sensors"))
    brightness = parse_brightness(root.child("brightness"))
    if problems:
        raise ConfigError(problems.errors)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

from player.validate import REQUIRED, Node, describe

THERMAL_ZONE0 = "/sys/class/thermal/thermal_zone0/temp"
FIRMWARE_THROTTLE = "/sys/devices/platform/soc/soc:firmware/get_throttled"

LIGHT_TYPES = ("none", "mcp3008", "mcp3002", "lightsensor")
ACTUATOR_TYPES = ("software", "backlight", "pwm", "ledmatrix")


# -- time windows --------------------------------------------------------

@dataclass(frozen=True)
class TimeWindow:
    """A daily window such as ``"22:00-06:00"``; it may wrap over midnight.

    ``start`` is included, ``end`` excluded; ``24:00`` is accepted as an end.
    """

    start_min: int
    end_min: int

    def contains(self, t: time) -> bool:
        """Whether the local wall-clock time ``t`` falls inside the window."""
        m = t.hour * 60 + t.minute
        if self.start_min < self.end_min:
            return self.start_min <= m < self.end_min
        return m >= self.start_min or m < self.end_min

    def __str__(self) -> str:
        def fmt(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"
        return f"{fmt(self.start_min)}-{fmt(self.end_min)}"


_WINDOW = re.compile(r"([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")


def parse_window(text: str) -> TimeWindow:
    """``"22:00-06:00"`` → :class:`TimeWindow`; raises ``ValueError`` with the reason."""
    m = _WINDOW.fullmatch(text.replace(" ", ""))
    if not m:
        raise ValueError('expected "HH:MM-HH:MM"')
    sh, sm, eh, em = (int(g) for g in m.groups())
    if (sh == 24 and sm) or (eh == 24 and em):
        raise ValueError("24:00 is the latest time")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == 1440:
        raise ValueError("a window cannot start at 24:00")
    if start == end:
        raise ValueError('start and end are the same time (an empty window; "00:00-24:00" is the whole day)')
    return TimeWindow(start, end)


def _window(node: Node, key: str, default: TimeWindow) -> TimeWindow:
    text = node.string(key, default=None)
    if text is None:
        return default
    try:
        return parse_window(text)
    except ValueError as exc:
        node.problems.add(f"{node.path}.{key}", f"{describe(text)}: {exc}")
        return default


# -- sensors ---------------------------------------------------------------

@dataclass(frozen=True)
class LightConfig:
    """``sensors.light``: the ambient light sensor.

    Keys (defaults in brackets):

    - ``type`` [none]: ``none``; ``mcp3008`` or ``mcp3002`` (an LDR divider on
      an ADC channel over SPI); ``lightsensor`` (an LDR and capacitor timed on
      one GPIO pin, gpiozero ``LightSensor``).
    - ``channel`` [0]: ADC channel (0-7 for mcp3008, 0-1 for mcp3002).
    - ``port`` [0], ``device`` [0]: SPI port and chip-select of the ADC.
    - ``pin`` [required for lightsensor]: GPIO pin, e.g. ``18`` or ``"GPIO18"``.
    - ``invert`` [false]: the reading rises with darkness (LDR on the low side).
    - ``min_valid`` [0.0], ``max_valid`` [1.0]: raw readings outside this range
      are a fault (``out of range``).
    - ``stuck_after_s`` [1800]: a fault (``stuck``) when every raw reading has
      been exactly identical for this long; real light always jitters by at
      least one ADC step over half an hour. 0 disables.
    - ``rail_after_s`` [60]: a fault (``disconnected``) when the raw reading sits
      at 0.0 or 1.0 (a broken wire or short) for this long. 0 disables.
    - ``fail_after`` [3]: consecutive failed, timed-out or garbage reads before
      the sensor is reported as faulty (single glitches are ignored).
    """

    type: str = "none"
    channel: int = 0
    port: int = 0
    device: int = 0
    pin: int | str | None = None
    invert: bool = False
    min_valid: float = 0.0
    max_valid: float = 1.0
    stuck_after_s: float = 1800.0
    rail_after_s: float = 60.0
    fail_after: int = 3


@dataclass(frozen=True)
class DoorConfig:
    """``sensors.door``: the door / tamper switch (absent or ``null``: none).

    - ``pin`` [required]: GPIO pin of the switch.
    - ``pull_up`` [true]: internal pull-up (switch to ground); false: pull-down.
    - ``open_when`` [released]: ``released`` for the usual fail-safe wiring where
      the closed door holds the switch closed (a cut wire then reads open);
      ``pressed`` for a switch that closes when the door opens.
    - ``bounce_s`` [0.05]: debounce time.
    """

    pin: int | str
    pull_up: bool = True
    open_when: str = "released"
    bounce_s: float = 0.05


@dataclass(frozen=True)
class SensorsConfig:
    """The ``sensors:`` section.

    - ``interval`` [5]: seconds between readings.
    - ``timeout`` [2]: seconds one read may take before it counts as failed.
    - ``light``: see :class:`LightConfig` [type none].
    - ``cpu_temp.file`` [/sys/class/thermal/thermal_zone0/temp]: millidegree file
      (any sensor file of that format); ``cpu_temp: none`` disables it.
    - ``door``: see :class:`DoorConfig` [none].
    - ``throttle.file`` [auto]: the Pi firmware's ``get_throttled`` file when
      present (``auto``), a path, or ``none``; under-voltage is null elsewhere.
    """

    interval: float = 5.0
    timeout: float = 2.0
    light: LightConfig = field(default_factory=LightConfig)
    cpu_temp_file: str | None = THERMAL_ZONE0
    door: DoorConfig | None = None
    throttle_file: str | None = "auto"


def _pin(node: Node, key: str, required: bool) -> int | str | None:
    if not node.has(key):
        if required:
            node.problems.add(f"{node.path}.{key}", "required")
        return None
    value = node.value[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, int) and not 0 <= value <= 53):
        node.problems.add(f"{node.path}.{key}", f"expected a GPIO pin number (0-53) or name, got {describe(value)}")
        return None
    return value


def _disabled(node: Node, key: str) -> bool:
    """``key: none`` / ``key: false`` switch an optional part off."""
    value = node.value.get(key) if isinstance(node.value, dict) else None
    return value == "none" or value is False


def parse_sensors(node: Node) -> SensorsConfig:
    """Read the ``sensors:`` section (absent: every default)."""
    if node.value is None:
        return SensorsConfig()
    if not node.is_mapping({"interval", "timeout", "light", "cpu_temp", "door", "throttle"}):
        return SensorsConfig()
    interval = node.number("interval", 5.0, minimum=0.1, maximum=3600)
    timeout = node.number("timeout", 2.0, minimum=0.05, maximum=60)

    light = LightConfig()
    if node.has("light") and not _disabled(node, "light"):
        ln = node.section("light", {"type", "channel", "port", "device", "pin", "invert", "min_valid",
                                    "max_valid", "stuck_after_s", "rail_after_s", "fail_after"})
        kind = ln.string("type", "none", choices=LIGHT_TYPES)
        max_channel = {"mcp3002": 1}.get(kind, 7)
        min_valid = ln.number("min_valid", 0.0, minimum=0.0, maximum=1.0)
        max_valid = ln.number("max_valid", 1.0, minimum=0.0, maximum=1.0)
        if min_valid >= max_valid:
            ln.problems.add(f"{ln.path}.max_valid", f"must be greater than min_valid ({min_valid:g})")
            min_valid, max_valid = 0.0, 1.0
        light = LightConfig(
            type=kind,
            channel=ln.integer("channel", 0, minimum=0, maximum=max_channel),
            port=ln.integer("port", 0, minimum=0, maximum=6),
            device=ln.integer("device", 0, minimum=0, maximum=2),
            pin=_pin(ln, "pin", required=kind == "lightsensor"),
            invert=ln.boolean("invert", False),
            min_valid=float(min_valid),
            max_valid=float(max_valid),
            stuck_after_s=float(ln.number("stuck_after_s", 1800.0, minimum=0)),
            rail_after_s=float(ln.number("rail_after_s", 60.0, minimum=0)),
            fail_after=ln.integer("fail_after", 3, minimum=1, maximum=100),
        )

    cpu_file: str | None = THERMAL_ZONE0
    if _disabled(node, "cpu_temp"):
        cpu_file = None
    elif node.has("cpu_temp"):
        cpu_file = node.section("cpu_temp", {"file"}).string("file", THERMAL_ZONE0)

    door = None
    if node.has("door") and not _disabled(node, "door"):
        dn = node.section("door", {"pin", "pull_up", "open_when", "bounce_s"})
        pin = _pin(dn, "pin", required=True)
        door_cfg = DoorConfig(
            pin=pin if pin is not None else 0,
            pull_up=dn.boolean("pull_up", True),
            open_when=dn.string("open_when", "released", choices=("released", "pressed")),
            bounce_s=float(dn.number("bounce_s", 0.05, minimum=0, maximum=5)),
        )
        door = door_cfg if pin is not None else None

    throttle: str | None = "auto"
    if _disabled(node, "throttle"):
        throttle = None
    elif node.has("throttle"):
        throttle = node.section("throttle", {"file"}).string("file", "auto")

    return SensorsConfig(interval=float(interval), timeout=float(timeout), light=light,
                         cpu_temp_file=cpu_file, door=door, throttle_file=throttle)


# -- brightness ------------------------------------------------------------

@dataclass(frozen=True)
class NightCap:
    """``brightness.night``: ``hours`` [required] during which brightness is at most ``max`` [30]."""

    hours: TimeWindow
    max: int = 30


@dataclass(frozen=True)
class Derate:
    """``brightness.derate``: above ``above_c`` [70] °C, lower the brightness by
    ``per_degree`` [5] percent points per degree, never below ``floor`` [20].
    ``derate: false`` disables it."""

    above_c: float = 70.0
    per_degree: float = 5.0
    floor: int = 20


@dataclass(frozen=True)
class Fallback:
    """``brightness.fallback``: the schedule used without a working light sensor:
    ``day`` [100] percent, ``night`` [20] percent during ``hours``
    [night.hours if set, else 22:00-06:00]."""

    day: int = 100
    night: int = 20
    hours: TimeWindow = TimeWindow(22 * 60, 6 * 60)


@dataclass(frozen=True)
class ActuatorConfig:
    """``brightness.actuator``: what the percentage drives.

    - ``type`` [software]: ``software`` (the renderer dims the picture),
      ``backlight`` (a ``/sys/class/backlight/NAME`` folder), ``pwm`` (a GPIO pin
      through gpiozero ``PWMOutputDevice``), ``ledmatrix`` (the matrix's own
      brightness).
    - ``path`` [required for backlight]: the backlight folder, e.g.
      ``/sys/class/backlight/10-0045``.
    - ``pin`` [required for pwm]; ``frequency`` [1000] Hz; ``active_high`` [true].
    """

    type: str = "software"
    path: str | None = None
    pin: int | str | None = None
    frequency: float = 1000.0
    active_high: bool = True


DEFAULT_CURVE: tuple[tuple[float, float], ...] = ((0.0, 10.0), (0.2, 40.0), (0.6, 80.0), (1.0, 100.0))


@dataclass(frozen=True)
class BrightnessConfig:
    """The ``brightness:`` section.

    - ``curve`` [[[0, 10], [0.2, 40], [0.6, 80], [1, 100]]]: points
      ``[ambient 0..1, percent 0..100]`` with strictly increasing ambient,
      interpolated linearly, flat beyond the ends.
    - ``min`` [5], ``max`` [100]: bounds of the output (percent).
    - ``median`` [3]: the ambient level is first the median of this many last
      readings, which removes a spike shorter than half of them (headlights,
      a passing shadow) entirely; 1 disables it.
    - ``smoothing`` [20]: time constant in seconds of the exponential smoothing
      of that level, for slower changes (clouds).
    - ``hysteresis`` [3]: percent points; smaller changes of the output are not
      applied.
    - ``night``: see :class:`NightCap` [none].
    - ``derate``: see :class:`Derate`.
    - ``fallback``: see :class:`Fallback`.
    - ``actuator``: see :class:`ActuatorConfig`.
    """

    curve: tuple[tuple[float, float], ...] = DEFAULT_CURVE
    min: int = 5
    max: int = 100
    median: int = 3
    smoothing: float = 20.0
    hysteresis: float = 3.0
    night: NightCap | None = None
    derate: Derate | None = field(default_factory=Derate)
    fallback: Fallback = field(default_factory=Fallback)
    actuator: ActuatorConfig = field(default_factory=ActuatorConfig)


def _curve(node: Node) -> tuple[tuple[float, float], ...]:
    points = node.items("curve", None, min_items=2, max_items=32)
    if points is None:
        return DEFAULT_CURVE
    before = len(node.problems.errors)
    curve: list[tuple[float, float]] = []
    for point in points:
        pair = point.value
        if (not isinstance(pair, list) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair)):
            node.problems.add(point.path, f"expected [ambient, percent], got {describe(pair)}")
            continue
        ambient, percent = float(pair[0]), float(pair[1])
        if not 0.0 <= ambient <= 1.0:
            node.problems.add(point.path, f"ambient must be between 0 and 1, got {pair[0]!r}")
        elif not 0.0 <= percent <= 100.0:
            node.problems.add(point.path, f"percent must be between 0 and 100, got {pair[1]!r}")
        elif curve and ambient <= curve[-1][0]:
            node.problems.add(point.path, f"ambient must be strictly increasing ({ambient:g} after {curve[-1][0]:g})")
        else:
            curve.append((ambient, percent))
    return tuple(curve) if len(node.problems.errors) == before else DEFAULT_CURVE


def parse_brightness(node: Node) -> BrightnessConfig:
    """Read the ``brightness:`` section (absent: every default)."""
    if node.value is None:
        return BrightnessConfig()
    if not node.is_mapping({"curve", "min", "max", "median", "smoothing", "hysteresis", "night", "derate",
                            "fallback", "actuator"}):
        return BrightnessConfig()
    curve = _curve(node)
    low = node.integer("min", 5, minimum=0, maximum=100)
    high = node.integer("max", 100, minimum=1, maximum=100)
    if low > high:
        node.problems.add(f"{node.path}.min", f"must not exceed max ({high})")
        low, high = 5, 100

    night = None
    if node.has("night") and not _disabled(node, "night"):
        nn = node.section("night", {"hours", "max"})
        if not nn.has("hours"):
            nn.problems.add(f"{nn.path}.hours", "required")
        night = NightCap(hours=_window(nn, "hours", TimeWindow(22 * 60, 6 * 60)),
                         max=nn.integer("max", 30, minimum=0, maximum=100))

    derate: Derate | None = Derate()
    if _disabled(node, "derate"):
        derate = None
    elif node.has("derate"):
        dn = node.section("derate", {"above_c", "per_degree", "floor"})
        derate = Derate(above_c=float(dn.number("above_c", 70.0, minimum=20, maximum=120)),
                        per_degree=float(dn.number("per_degree", 5.0, minimum=0, maximum=100)),
                        floor=dn.integer("floor", 20, minimum=0, maximum=100))

    fn = node.section("fallback", {"day", "night", "hours"})
    fallback = Fallback(day=fn.integer("day", 100, minimum=0, maximum=100),
                        night=fn.integer("night", 20, minimum=0, maximum=100),
                        hours=_window(fn, "hours", night.hours if night else Fallback.hours))

    an = node.section("actuator", {"type", "path", "pin", "frequency", "active_high"})
    kind = an.string("type", "software", choices=ACTUATOR_TYPES)
    actuator = ActuatorConfig(
        type=kind,
        path=an.string("path", REQUIRED if kind == "backlight" else None),
        pin=_pin(an, "pin", required=kind == "pwm"),
        frequency=float(an.number("frequency", 1000.0, minimum=1, maximum=100_000)),
        active_high=an.boolean("active_high", True),
    )
    return BrightnessConfig(curve=curve, min=low, max=high,
                            median=node.integer("median", 3, minimum=1, maximum=15),
                            smoothing=float(node.number("smoothing", 20.0, minimum=0, maximum=3600)),
                            hysteresis=float(node.number("hysteresis", 3.0, minimum=0, maximum=50)),
                            night=night, derate=derate, fallback=fallback, actuator=actuator)

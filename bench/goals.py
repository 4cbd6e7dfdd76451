"""The benchmarks' goals as data: what was promised, what was measured, and where.

Each benchmark's ``run()`` returns its figures as a dict whose ``"goals"`` entry is a
list of :class:`Goal`. ``python -m bench`` collects them, prints a verdict table and
exits 1 when a goal measured at its own size is missed. A goal measured at another
size (the smoke sizes: 640x360 instead of 1920x1080, 20 alerts instead of 200) is
reported with its figure but not judged::

    limit = goals.value("memory")                 # 80.0, or what --goal memory=… says
    Goal("memory", "fbdev, 8 pictures", 47.2, limit, "MB",
         measured_at="640x360, 8 pictures", goal_at="1920x1080, 50 pictures").verdict()
    # 'not judged (measured at 640x360, 8 pictures; goal for 1920x1080, 50 pictures)'
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (default value, what the value counts). ``--goal NAME=VALUE`` replaces the value.
DEFAULTS: dict[str, tuple[float, str]] = {
    "frame_cost": (2.0, "ms of CPU per animated frame in the real process (landscape 1920x1080, ticker at 60 fps)"),
    "idle_cpu": (0.5, "% of one core, still text slide"),
    "startup": (1.5, "s from process start to the first frame, worst run"),
    "memory": (80.0, "MB peak RSS, 50 distinct 1920x1080 pictures, png and fbdev"),
    "fanout_answers_ratio": (1.5, "× a bare paho subscriber's CPU per message: panelctl's CPU per panel answer "
                                  "of a real push, N ≥ 1,000 simulated panels"),
    "playlist_apply_ratio": (2.0, "× parsing it alone: a real player's CPU to receive and apply one playlist "
                                  "(png 320x180, 50 in a row, its idle CPU subtracted)"),
    "alert_latency": (1.0, "frame periods over the broker's p99 (p99 of publish → whole alert on screen)"),
    "sleep_idle": (1.0, "scheduler ticks over the period, above a still slide awake (idle CPU asleep)"),
    "ticker_process": (0.1, "× a Chromium kiosk's CPU, same page and ticker on the same X server (fbdev and sdl)"),
    "sleep_wake": (1.0, "frame periods over the p99 of the same alerts awake (alert on a sleeping panel)"),
    "image_memory": (120.0, "MB peak RSS of the player decoding the largest accepted JPEG and PNG (40 MP) at 1920x1080"),
    "stall": (2.0, "frame periods, longest gap between frames while 35 MP pictures rotate with short slides"),
}

_overrides: dict[str, float] = {}


def set_override(name: str, value: float) -> None:
    """Use ``value`` for the goal ``name`` from now on (``--goal NAME=VALUE``)."""
    if name not in DEFAULTS:
        raise KeyError(name)
    _overrides[name] = float(value)


def clear_overrides() -> None:
    _overrides.clear()


def value(name: str) -> float:
    """The goal's value: its default, or the override given on the command line."""
    return _overrides.get(name, DEFAULTS[name][0])


def overridden(name: str) -> bool:
    return name in _overrides


@dataclass(frozen=True)
class Goal:
    """One goal checked against one measured figure.

    ``limit`` is the bound ``measured`` must not exceed (already derived from the goal's
    value, e.g. broker p99 + one frame); ``measured_at`` says the size it was measured
    at and ``goal_at`` the size the goal is set for. They are compared as given unless
    ``at_goal_size`` says otherwise (a benchmark that knows, e.g., that any count of 100
    alerts or more gives a p99).
    """

    name: str
    what: str
    measured: float
    limit: float
    unit: str
    measured_at: str
    goal_at: str
    at_goal_size: bool | None = None

    @property
    def judged(self) -> bool:
        return self.measured_at == self.goal_at if self.at_goal_size is None else self.at_goal_size

    @property
    def met(self) -> bool:
        return self.measured <= self.limit

    @property
    def missed(self) -> bool:
        """A miss that fails the run: judged, and over the limit."""
        return self.judged and not self.met

    def figure(self) -> str:
        return f"{_number(self.measured)} {self.unit}".strip()

    def bound(self) -> str:
        return f"≤ {_number(self.limit)} {self.unit}".strip()

    def verdict(self) -> str:
        if not self.judged:
            return f"not judged (measured at {self.measured_at}; goal for {self.goal_at})"
        return "met" if self.met else "MISSED"

    def line(self) -> str:
        """The goal's line in a benchmark's own report."""
        return f"{self.bound()}: {self.verdict()}"


def _number(x: float) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def table(goals: list[Goal]) -> list[str]:
    """The verdict table's lines."""
    rows = [("goal", "row", "measured", "goal", "verdict")]
    rows += [(g.name, g.what, g.figure(), g.bound(), g.verdict()) for g in goals]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]

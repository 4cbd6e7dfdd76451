"""Layouts: named zones as fractions of the panel, each with a role.

A layout is YAML (see ``layouts/*.yaml``)::

    name: landscape
    background: "#101820"
    zones:
      - {name: header, role: title, rect: [0, 0, 0.75, 0.12], background: "#003366"}
      - {name: clock, role: clock, rect: [0.75, 0, 0.25, 0.12]}
      - {name: main, role: main, rect: [0, 0.12, 1, 0.78]}
      - {name: ticker, role: ticker, rect: [0, 0.9, 1, 0.1], speed: 120}

Roles: ``main`` (the slide; exactly one), ``title`` (the text slide's title,
else the zone's ``text``), ``clock`` (time and French date in the panel's
timezone), ``ticker`` (the playlist's ticker, scrolling), ``text`` (the zone's
fixed ``text``). When a layout has no ``title`` zone, the main zone shows the
slide's title above its body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .content import COLOR_PATTERN, RGB, parse_color
from .errors import ConfigError
from .validate import Node, Problems

ROLES = ("main", "title", "clock", "ticker", "text")
OVERFLOWS = ("auto", "page", "scroll")
"""What a text slide too long for the main zone does: ``page`` (split into pages shown in
turn), ``scroll`` (set on one line, scrolled horizontally), ``auto`` (pages, unless the
zone holds a single line at the smallest legible size: then it scrolls)."""
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"


@dataclass(frozen=True)
class Zone:
    name: str
    role: str
    rect: tuple[float, float, float, float]  # x, y, width, height as fractions of the panel
    background: RGB | None = None  # None: the slide's or layout's background shows through
    color: RGB = (255, 255, 255)
    align: str = "center"
    text: str = ""
    speed: float = 120.0  # ticker only: pixels per second
    padding: float = 0.04  # fraction of the zone's smaller side

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The zone's rectangle in pixels on a ``width`` × ``height`` panel, edges shared exactly."""
        x0 = round(self.rect[0] * width)
        y0 = round(self.rect[1] * height)
        x1 = round((self.rect[0] + self.rect[2]) * width)
        y1 = round((self.rect[1] + self.rect[3]) * height)
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


@dataclass(frozen=True)
class Layout:
    name: str
    zones: tuple[Zone, ...]
    background: RGB = (0, 0, 0)
    font: str | None = None  # None: the panel's default (see fonts.default_font); "pixel"; else a font file path
    antialias: bool = True
    line_spacing: float = 1.15
    description: str = ""
    overflow: str = "auto"  # see OVERFLOWS

    def zone(self, role: str) -> Zone | None:
        """The first zone with this role, or ``None``."""
        for zone in self.zones:
            if zone.role == role:
                return zone
        return None

    @property
    def main(self) -> Zone:
        zone = self.zone("main")
        assert zone is not None  # guaranteed by validation
        return zone


def layout_dirs() -> list[Path]:
    """Where built-in layouts live: the checkout's ``layouts/``, else the installed copy."""
    here = Path(__file__).resolve().parent
    return [p for p in (here.parent / "layouts", here / "data" / "layouts") if p.is_dir()]


def builtin_layouts() -> dict[str, Path]:
    """Built-in layout names and their files."""
    found: dict[str, Path] = {}
    for folder in reversed(layout_dirs()):
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = path
    return found


def layout_from_data(data: Any, source: str = "layout") -> Layout:
    """Validate decoded YAML as a layout; raises :class:`ConfigError` listing every problem."""
    problems = Problems()
    root = Node(data, "", problems)
    if not root.is_mapping({"name", "description", "background", "font", "antialias", "line_spacing", "overflow",
                            "zones"}):
        raise ConfigError(problems.errors, source)
    name = root.string("name", pattern=NAME_PATTERN)
    background = root.string("background", "#000000", pattern=COLOR_PATTERN)
    font = root.string("font", None)
    antialias = root.boolean("antialias", True)
    spacing = root.number("line_spacing", 1.15, minimum=0.8, maximum=3)
    overflow = root.string("overflow", "auto", choices=OVERFLOWS)
    zones: list[Zone] = []
    names: set[str] = set()
    for node in root.items("zones", min_items=1, max_items=32) or []:
        if not node.is_mapping({"name", "role", "rect", "background", "color", "align", "text", "speed", "padding"}):
            continue
        zname = node.string("name", pattern=NAME_PATTERN)
        role = node.string("role", choices=ROLES)
        rect_nodes = node.items("rect", min_items=4, max_items=4)
        rect: list[float] = []
        for r in rect_nodes or []:
            wrapper = Node({"v": r.value}, "", problems)
            before = len(problems.errors)
            v = wrapper.number("v", minimum=0, maximum=1)
            for i in range(before, len(problems.errors)):
                problems.errors[i] = r.path + problems.errors[i][1:]
            if v is not None:
                rect.append(float(v))
        if len(rect) == 4:
            if rect[2] <= 0 or rect[3] <= 0:
                problems.add(f"{node.path}.rect", "width and height must be greater than 0")
            if rect[0] + rect[2] > 1.0001 or rect[1] + rect[3] > 1.0001:
                problems.add(f"{node.path}.rect", "zone extends past the panel's edge")
        zbg = node.string("background", None, pattern=COLOR_PATTERN)
        zcolor = node.string("color", "#ffffff", pattern=COLOR_PATTERN)
        align = node.string("align", "center", choices=("left", "center", "right"))
        text = node.string("text", "", allow_empty=True, max_length=500)
        speed = node.number("speed", 120.0, minimum=1, maximum=5000)
        padding = node.number("padding", 0.04, minimum=0, maximum=0.4)
        if zname in names:
            problems.add(f"{node.path}.name", f'duplicate zone name "{zname}"')
        if zname:
            names.add(zname)
        if zname and role and len(rect) == 4:
            zones.append(Zone(name=zname, role=role, rect=(rect[0], rect[1], rect[2], rect[3]),
                              background=parse_color(zbg) if zbg else None,
                              color=parse_color(zcolor or "#ffffff"), align=align or "center",
                              text=text or "", speed=float(speed or 120), padding=float(padding or 0)))
    if zones and sum(1 for z in zones if z.role == "main") != 1:
        problems.add("zones", "a layout needs exactly one zone with role main")
    if problems:
        raise ConfigError(problems.errors, source)
    assert name is not None
    return Layout(name=name, zones=tuple(zones), background=parse_color(background or "#000000"),
                  font=font, antialias=bool(antialias), line_spacing=float(spacing or 1.15),
                  description=str(root.value.get("description", "")), overflow=overflow or "auto")


def load_layout(name_or_path: str) -> Layout:
    """A built-in layout by name, or a layout YAML file by path.

    Raises :class:`ConfigError` when it is unknown, unreadable or invalid.
    """
    builtins = builtin_layouts()
    if name_or_path in builtins:
        path = builtins[name_or_path]
    elif "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
    else:
        from .validate import did_you_mean

        raise ConfigError([f'unknown layout "{name_or_path}"{did_you_mean(name_or_path, builtins)}; '
                           f"built-in: {', '.join(sorted(builtins))}"], "layout")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"cannot read layout {path}: {exc.strerror or exc}"], "layout") from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"layout {path} is not valid YAML: {exc}"], "layout") from None
    try:
        return layout_from_data(data, f"layout {path}")
    except ConfigError as exc:
        raise ConfigError([f"{path}: {e}" for e in exc.errors], "layout") from None

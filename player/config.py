"""The panel's YAML config (CONTRACT §2): loaded into frozen objects, every error at once.

Example::

    cfg = load_config(Path("/etc/panel-player/config.yaml"))
    cfg.panel.id, cfg.display.output, cfg.mqtt.port

Errors name their key path (``mqtt.port: expected an integer, got "abc"``);
unknown keys are errors with a did-you-mean hint. The defaults are documented
in ``docs/config.md``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from .alerts import AlertsConfig, parse_alerts_config
from .content import DEFAULT_LANGUAGE, language_problem, normalize_language
from .errors import ConfigError
from .hw.config import BrightnessConfig, SensorsConfig, parse_brightness, parse_sensors
from .layout import Layout, builtin_layouts, load_layout
from .screen import SleepWindow, parse_sleep_windows
from .validate import Node, Problems, describe, did_you_mean

PANEL_ID = r"[a-z0-9][a-z0-9-]{0,62}"
OUTPUTS = ("fbdev", "sdl", "png", "ledmatrix")
MQTT_PREFIX = r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*"


@dataclass(frozen=True)
class PanelConfig:
    id: str
    groups: tuple[str, ...] = ()
    timezone: str | None = None  # None: the system's
    location: tuple[float, float] | None = None  # (lat, lon)
    name: str = ""  # shown on the test card and the identify screen
    language: str = "fr"  # BCP 47 tag: the language of slides that name none (their `lang`)

    def tz(self) -> ZoneInfo:
        """The panel's timezone: the configured one, else the system's, else UTC."""
        return ZoneInfo(self.timezone) if self.timezone else system_timezone()


@dataclass(frozen=True)
class LedMatrixConfig:
    """``display.led``: the panels' wiring and timing (named as rpi-rgb-led-matrix names
    them), the driver library, and the colours the panels can show."""

    rows: int = 32
    cols: int = 64
    chain_length: int = 1
    parallel: int = 1
    hardware_mapping: str = "regular"
    gpio_slowdown: int = 2
    pwm_bits: int = 11
    brightness: int = 100
    drop_privileges: bool = False
    driver: str = "auto"  # auto: piomatter on a Raspberry Pi 5, else rgbmatrix
    colors: str = "rgb"  # rgb, mono, rgb111, rgb333
    mono_color: str = "#ffb000"  # the lit colour of a mono panel, #rrggbb in lower case
    mono_threshold: int = 128  # luminance from which a pixel of a mono panel is lit
    png_dots: int = 0  # output png: each LED drawn as a round dot of this many file pixels (0: one pixel)


@dataclass(frozen=True)
class DisplayConfig:
    output: str = "png"
    size: tuple[int, int] | None = None
    path: Path = Path("/tmp/panel-player.png")
    device: str = "/dev/fb0"
    rotation: int = 0
    fps: int = 30
    layout: str = "fullscreen"
    font: str | None = None  # None: the layout's font, else pygame's bundled font
    antialias: bool | None = None  # None: the layout's setting
    transition: str = "fade"
    transition_s: float = 0.6
    image_cache_mb: int | None = None  # None: room for two decoded full-screen images
    wait_s: float = 0.0  # fbdev: how long to wait for the device at start before running without it
    viewing_distance_m: float | None = None  # from where people read the panel: sets the smallest text
    pixel_pitch_mm: float | None = None  # the size of one pixel on the panel (needed with the distance)
    led: LedMatrixConfig = field(default_factory=LedMatrixConfig)
    sleep: tuple[SleepWindow, ...] = ()  # the screen is off in these windows, but for alerts


@dataclass(frozen=True)
class TlsConfig:
    """``mqtt.tls``: CA bundle (None: the system's), client certificate and key (both or neither)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class BrokerAccess:
    """Where the broker is and how to log in: what the player's link, its ``mqtt:``
    section and panelctl have in common."""

    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "signage"
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class MqttConfig(BrokerAccess):
    keepalive: int = 30
    protocol: str = "5"
    session_expiry: int = 86400
    max_message_kb: int = 1024
    max_asset_kb: int = 2048
    enabled: bool = True


@dataclass(frozen=True)
class HeartbeatConfig:
    interval: float = 30.0


@dataclass(frozen=True)
class StorageConfig:
    asset_quota_mb: int = 512
    fetch_timeout_s: float = 20.0
    fetch_max_mb: int = 50
    asset_wait_s: float = 300.0  # how long a playlist waits for its assets before it is rejected


@dataclass(frozen=True)
class UpdateConfig:
    """``update:``: over-the-air updates (see docs/updates.md). ``health_s``: seconds a new
    version has, after the switch, to draw its first frame, connect to the broker and
    publish a heartbeat; otherwise the updater switches back to the old one.
    ``max_bundle_mb``: the largest bundle an update command may announce (it travels in
    parts, each an asset within ``mqtt.max_asset_kb``)."""

    health_s: float = 120.0
    max_bundle_mb: int = 64


@dataclass(frozen=True)
class TrustConfig:
    """``trust:``: the public keys whose signatures this panel accepts (``(kid, 32 bytes)``)
    and which messages must be signed (``alerts``, ``playlists``, ``commands``)."""

    keys: tuple[tuple[str, bytes], ...] = ()
    require: frozenset[str] = frozenset()

    def requires(self, category: str) -> bool:
        return category in self.require

    @property
    def kids(self) -> list[str]:
        return [kid for kid, _ in self.keys]


@dataclass(frozen=True)
class Config:
    panel: PanelConfig
    display: DisplayConfig = field(default_factory=DisplayConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    state_dir: Path = Path("/var/lib/panel-player")
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    sensors: SensorsConfig = field(default_factory=SensorsConfig)
    brightness: BrightnessConfig = field(default_factory=BrightnessConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    log_level: str = "info"
    source: Path | None = None
    # What `check` should point out though the config is valid (a sleep covering the week).
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def layout(self) -> Layout:
        return load_layout(self.display.layout)


TOP_KEYS = {"panel", "display", "mqtt", "state_dir", "heartbeat", "storage", "alerts", "sensors",
            "brightness", "trust", "update", "log_level"}


def system_timezone() -> ZoneInfo:
    """The system's zone from $TZ or /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
            if "zoneinfo/" in target:
                name = target.split("zoneinfo/", 1)[1]
        except OSError:
            name = ""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _panel(root: Node) -> PanelConfig | None:
    node = root.section("panel", {"id", "groups", "timezone", "location", "name", "language"}, required=True)
    pid = node.string("id", pattern=PANEL_ID)
    groups: list[str] = []
    for g in node.items("groups", None, max_items=16) or []:
        name = g.as_string(pattern=PANEL_ID)
        if name in groups:
            g.problems.add(g.path, f'duplicate group "{name}"')
        elif name:
            groups.append(name)
    tz = node.string("timezone", None)
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            node.problems.add("panel.timezone", f"unknown IANA timezone {describe(tz)}"
                              + did_you_mean(tz, available_timezones()))
            tz = None
    location = None
    if node.has("location"):
        loc = node.section("location", {"lat", "lon"})
        lat = loc.number("lat", minimum=-90, maximum=90)
        lon = loc.number("lon", minimum=-180, maximum=180)
        if lat is not None and lon is not None:
            location = (float(lat), float(lon))
    name = node.string("name", "", max_length=80, allow_empty=True)
    language = node.string("language", DEFAULT_LANGUAGE, max_length=35)
    if language is not None and language_problem(language):
        node.problems.add("panel.language", language_problem(language) or "")
        language = None
    if pid is None:
        return None
    return PanelConfig(id=pid, groups=tuple(groups), timezone=tz, location=location, name=name or "",
                       language=normalize_language(language or DEFAULT_LANGUAGE))


def _png_dots(led: Node, default: int) -> int:
    value = led.integer("png_dots", default, minimum=0, maximum=32)
    if value == 1:
        led.problems.add("display.led.png_dots", "expected 0 (plain pixels) or a dot of 2 to 32 pixels, got 1")
        return default
    return default if value is None else value


def _led(node: Node) -> LedMatrixConfig:
    d = LedMatrixConfig()
    led = node.section("led", {"rows", "cols", "chain_length", "parallel", "hardware_mapping",
                               "gpio_slowdown", "pwm_bits", "brightness", "drop_privileges",
                               "driver", "colors", "mono_color", "mono_threshold", "png_dots"})
    driver = led.string("driver", d.driver, choices=("auto", "rgbmatrix", "piomatter"))
    mono_color = led.string("mono_color", d.mono_color)
    if mono_color is not None and not re.fullmatch(r"#[0-9a-fA-F]{6}", mono_color):
        led.problems.add("display.led.mono_color",
                         f'expected a colour as "#rrggbb" (amber: "#ffb000"), got {describe(mono_color)}')
        mono_color = None
    cfg = LedMatrixConfig(
        rows=led.integer("rows", d.rows, minimum=8, maximum=128),
        cols=led.integer("cols", d.cols, minimum=8, maximum=256),
        chain_length=led.integer("chain_length", d.chain_length, minimum=1, maximum=16),
        parallel=led.integer("parallel", d.parallel, minimum=1, maximum=6),
        hardware_mapping=led.string("hardware_mapping", d.hardware_mapping,
                                    choices=("regular", "adafruit-hat", "adafruit-hat-pwm", "regular-pi1",
                                             "classic", "classic-pi1", "compute-module")),
        gpio_slowdown=led.integer("gpio_slowdown", d.gpio_slowdown, minimum=0, maximum=5),
        pwm_bits=led.integer("pwm_bits", d.pwm_bits, minimum=1, maximum=11),
        brightness=led.integer("brightness", d.brightness, minimum=1, maximum=100),
        drop_privileges=led.boolean("drop_privileges", d.drop_privileges),
        driver=driver or d.driver,
        colors=led.string("colors", d.colors, choices=("rgb", "mono", "rgb111", "rgb333")) or d.colors,
        mono_color=(mono_color or d.mono_color).lower(),
        mono_threshold=led.integer("mono_threshold", d.mono_threshold, minimum=1, maximum=255),
        png_dots=_png_dots(led, d.png_dots),
    )
    if cfg.driver == "piomatter":
        # Named in the config: what Piomatter cannot drive is an error now, not at start.
        from .render.outputs.piomatter import wiring_problems

        for problem in wiring_problems(cfg.rows, cfg.parallel, cfg.hardware_mapping):
            key, _, message = problem.partition(": ")
            led.problems.add(key, message)
    return cfg


def _display(root: Node, warnings: list[str]) -> DisplayConfig:
    d = DisplayConfig()
    node = root.section("display", {"output", "size", "path", "device", "rotation", "fps", "layout", "font",
                                    "antialias", "transition", "transition_s", "image_cache_mb", "wait_s", "led",
                                    "sleep", "viewing_distance_m", "pixel_pitch_mm"})
    output = node.string("output", d.output, choices=OUTPUTS)
    size = None
    sizes = node.items("size", None, min_items=2, max_items=2)
    if sizes is not None:
        dims = []
        for s in sizes:
            if isinstance(s.value, bool) or not isinstance(s.value, int) or not 8 <= s.value <= 8192:
                s.problems.add(s.path, f"expected an integer between 8 and 8192, got {describe(s.value)}")
            else:
                dims.append(s.value)
        if len(dims) == 2:
            size = (dims[0], dims[1])
    elif output in ("png", "sdl"):
        node.problems.add("display.size", f"required for output {output}")
    led = _led(node)
    if output == "ledmatrix" and size is None:
        size = (led.cols * led.chain_length, led.rows * led.parallel)
    if output == "png" and led.png_dots and size is not None:
        from .render.outputs.png import png_dots_look

        try:
            png_dots_look(led.png_dots).size_of(size)
        except ValueError as exc:
            node.problems.add("display.led.png_dots", str(exc))
    rotation = node.integer("rotation", d.rotation)
    if rotation is not None and rotation not in (0, 90, 180, 270):
        node.problems.add("display.rotation", f"expected 0, 90, 180 or 270, got {describe(rotation)}")
        rotation = 0
    layout = node.string("layout", d.layout)
    if layout is not None:
        try:
            load_layout(layout)
        except ConfigError as exc:
            for err in exc.errors:
                node.problems.add("display.layout", err)
    font = node.string("font", None)
    if font is not None and font != "pixel" and not (Path(font).is_file() or Path(font).is_dir()):
        node.problems.add("display.font", f'no such font file or folder "{font}" (or "pixel": '
                                          "the bundled pixel fonts)")
    distance = node.number("viewing_distance_m", None, minimum=0.5, maximum=200)
    pitch = node.number("pixel_pitch_mm", None, minimum=0.05, maximum=50)
    if distance is not None and pitch is None and not node.has("pixel_pitch_mm"):
        node.problems.add("display.pixel_pitch_mm", "needed with display.viewing_distance_m: the size of one "
                                                    "pixel on the panel in mm (about 0.5 for a 43-inch 1920x1080 "
                                                    "screen, 4 for a P4 LED matrix)")
    sleep, sleep_warnings = parse_sleep_windows(node)
    warnings.extend(sleep_warnings)
    return DisplayConfig(
        output=output or d.output,
        size=size,
        path=Path(node.string("path", str(d.path))),
        device=node.string("device", d.device, pattern=r"/dev/fb\d+|/.+"),
        rotation=rotation or 0,
        fps=node.integer("fps", d.fps, minimum=1, maximum=120),
        layout=layout or d.layout,
        font=font,
        antialias=node.boolean("antialias", None),
        transition=node.string("transition", d.transition, choices=("fade", "cut")),
        transition_s=float(node.number("transition_s", d.transition_s, minimum=0, maximum=5)),
        image_cache_mb=node.integer("image_cache_mb", None, minimum=4, maximum=1024),
        wait_s=float(node.number("wait_s", d.wait_s, minimum=0, maximum=600)),
        viewing_distance_m=float(distance) if distance is not None else None,
        pixel_pitch_mm=float(pitch) if pitch is not None else None,
        led=led,
        sleep=sleep,
    )


def _mqtt(root: Node) -> MqttConfig:
    d = MqttConfig()
    node = root.section("mqtt", {"host", "port", "prefix", "username", "password_file", "tls", "keepalive",
                                 "protocol", "session_expiry", "max_message_kb", "max_asset_kb", "enabled"})
    tls = None
    if node.has("tls"):
        t = node.section("tls", {"ca_file", "cert_file", "key_file"})
        files = {}
        for key in ("ca_file", "cert_file", "key_file"):
            value = t.string(key, None)
            if value is not None and not Path(value).is_file():
                t.problems.add(f"mqtt.tls.{key}", f"no such file {describe(value)}")
            files[key] = Path(value) if value else None
        if (files["cert_file"] is None) != (files["key_file"] is None):
            t.problems.add("mqtt.tls", "cert_file and key_file go together")
        tls = TlsConfig(**files)
    password_file = node.string("password_file", None)
    username = node.string("username", None, max_length=256)
    if password_file is not None and username is None:
        node.problems.add("mqtt.password_file", "needs mqtt.username")
    protocol = node.value.get("protocol", "5") if isinstance(node.value, dict) else "5"
    if isinstance(protocol, (int, float)) and not isinstance(protocol, bool):
        protocol = str(protocol)  # YAML reads `protocol: 5` as a number
    if protocol not in ("5", "3.1.1"):
        node.problems.add("mqtt.protocol", f'expected "5" or "3.1.1", got {describe(protocol)}')
        protocol = "5"
    host = node.string("host", d.host, max_length=253)
    if host and not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]+", host):
        node.problems.add("mqtt.host", f"not a host name or address: {describe(host)}")
    raw_prefix = node.value.get("prefix") if isinstance(node.value, dict) else None
    if isinstance(raw_prefix, str) and "." in raw_prefix:
        from .alerts import dot_reason

        node.problems.add("mqtt.prefix", dot_reason(raw_prefix, "prefix", "no message would reach the panels"))
        prefix = d.prefix
    else:
        prefix = node.string("prefix", d.prefix, pattern=MQTT_PREFIX, max_length=100)
    return MqttConfig(
        host=host or d.host,
        port=node.integer("port", d.port, minimum=1, maximum=65535),
        prefix=prefix,
        username=username,
        password_file=Path(password_file) if password_file else None,
        tls=tls,
        keepalive=node.integer("keepalive", d.keepalive, minimum=5, maximum=3600),
        protocol=str(protocol),
        session_expiry=node.integer("session_expiry", d.session_expiry, minimum=0, maximum=2**32 - 1),
        max_message_kb=node.integer("max_message_kb", d.max_message_kb, minimum=16, maximum=16384),
        max_asset_kb=node.integer("max_asset_kb", d.max_asset_kb, minimum=16, maximum=262144),
        enabled=node.boolean("enabled", d.enabled),
    )


def _storage(root: Node) -> StorageConfig:
    d = StorageConfig()
    node = root.section("storage", {"asset_quota_mb", "fetch_timeout_s", "fetch_max_mb", "asset_wait_s"})
    return StorageConfig(
        asset_quota_mb=node.integer("asset_quota_mb", d.asset_quota_mb, minimum=8, maximum=1 << 20),
        fetch_timeout_s=float(node.number("fetch_timeout_s", d.fetch_timeout_s, minimum=1, maximum=600)),
        fetch_max_mb=node.integer("fetch_max_mb", d.fetch_max_mb, minimum=1, maximum=4096),
        asset_wait_s=float(node.number("asset_wait_s", d.asset_wait_s, minimum=1, maximum=86400)),
    )


def _trust(root: Node) -> TrustConfig:
    from .trust import CATEGORIES, KID_PATTERN, SignatureError, load_public_key, public_key_bytes

    node = root.section("trust", {"keys", "require"})
    keys: list[tuple[str, bytes]] = []
    for item in node.items("keys", None, max_items=32) or []:
        found: tuple[str, bytes] | None = None
        if isinstance(item.value, str):
            try:
                raw, kid = load_public_key(Path(item.value))
                found = (kid, raw)
            except ConfigError as exc:
                for err in exc.errors:
                    item.problems.add(item.path, err)
        elif isinstance(item.value, dict):
            if item.is_mapping({"kid", "key"}):
                kid, text = item.string("kid", pattern=KID_PATTERN), item.string("key")
                if kid is not None and text is not None:
                    try:
                        found = (kid, public_key_bytes(text, "key"))
                    except SignatureError as exc:
                        item.problems.add(f"{item.path}.key", exc.reason)
        else:
            item.problems.add(item.path, f"expected the path of a .pub file or {{kid, key}}, got {describe(item.value)}")
        if found is not None:
            if found[0] in [k for k, _ in keys]:
                item.problems.add(item.path, f'key id "{found[0]}" is listed twice')
            else:
                keys.append(found)
    require = frozenset(CATEGORIES) if keys else frozenset()
    picked = node.items("require", None, max_items=3)
    if picked is not None:
        names = {n for n in (p.as_string() for p in picked) if n is not None}
        for bad in sorted(names - set(CATEGORIES)):
            node.problems.add("trust.require", f"expected some of {', '.join(CATEGORIES)}, got {describe(bad)}"
                              + did_you_mean(bad, CATEGORIES))
        require = frozenset(names & set(CATEGORIES))
        if require and not node.has("keys"):
            node.problems.add("trust.require", "needs trust.keys: no signature could be checked")
    return TrustConfig(keys=tuple(keys), require=require)


def config_from_data(data: Any, source: Path | None = None) -> Config:
    """Validate decoded YAML as a config; raises :class:`ConfigError` listing every problem."""
    problems = Problems()
    root = Node(data, "", problems)
    if data is None:
        raise ConfigError(["the config is empty; it needs at least panel.id"])
    if not root.is_mapping(TOP_KEYS):
        raise ConfigError(problems.errors)
    warnings: list[str] = []
    panel = _panel(root)
    display = _display(root, warnings)
    mqtt = _mqtt(root)
    state_dir = root.string("state_dir", "/var/lib/panel-player")
    hb = root.section("heartbeat", {"interval"})
    heartbeat = HeartbeatConfig(interval=float(hb.number("interval", 30.0, minimum=1, maximum=86400)))
    storage = _storage(root)
    alerts = parse_alerts_config(root.section("alerts", None))
    sensors = parse_sensors(root.section("sensors", None))
    brightness = parse_brightness(root.section("brightness", None))
    trust = _trust(root)
    up = root.section("update", {"health_s", "max_bundle_mb"})
    update = UpdateConfig(health_s=float(up.number("health_s", UpdateConfig.health_s, minimum=5, maximum=3600)),
                          max_bundle_mb=up.integer("max_bundle_mb", UpdateConfig.max_bundle_mb, minimum=1,
                                                   maximum=1024))
    log_level = root.string("log_level", "info", choices=("debug", "info", "warning", "error"))
    if problems or panel is None:
        raise ConfigError(problems.errors or ["panel.id: required"])
    return Config(panel=panel, display=display, mqtt=mqtt, state_dir=Path(state_dir), heartbeat=heartbeat,
                  storage=storage, alerts=alerts, sensors=sensors, brightness=brightness, trust=trust,
                  update=update, log_level=log_level or "info", source=source, warnings=tuple(warnings))


def load_config(path: Path) -> Config:
    """Read and validate a config file; raises :class:`ConfigError` with every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path} is not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    return config_from_data(data, Path(path))


def known_layouts() -> frozenset[str]:
    return frozenset(builtin_layouts())

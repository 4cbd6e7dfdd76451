"""``panelctl preview``: what a panel of a given size shows, drawn offline by the panel's own renderer.

No broker is involved: the playlist (or the alert) is validated and drawn here, with the
renderer, the layouts, the fonts and the alert screen of the firmware, on SDL's ``dummy``
video driver. The result is one PNG, a contact sheet: a row per slide (or one row for
an alert), each row the frames that differ during the slide's duration: one for a
still slide, one per page of a text slide too long for its zone, several frames of a
line that scrolls (:data:`MAX_FRAMES` at most, spread over the slide), the flashing band
of an alert. Frames are labelled with the time into the slide and shown upright, as the
street sees the panel (a rotated panel's output is turned back).

Example::

    rows = preview_playlist(prepared.playlist, Panel((128, 64), led=True), images.path_of, warn=print)
    contact_sheet(rows, Panel((128, 64), led=True), "hiver-2026").save("hiver.png")

Pictures: an image slide's ``file:`` (relative to the playlist, as for ``push``), else its
``asset`` looked up in the playlist's folder and the ``--assets`` folders (a file named
``SHA.png``, as on a panel, or any image whose sha256 matches). An image that cannot be
found or decoded is drawn as a crossed placeholder and named on stderr (the panel
itself would wait for it); everything else that is wrong (an invalid playlist, an
unknown layout, an unreadable ``file:``) exits with status 2 and nothing is written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageDraw, ImageFont

from ..errors import AssetError, ConfigError, ContentError, ValidationError

MAX_FRAMES = 6
"""Frames kept per slide at most (the first, the last and evenly between)."""
SAMPLES = 240  # moments looked at per slide, at most (every 0.25 s of a short slide)
STEP_S = 0.25
ALERT_SECONDS = 4.0  # an alert is looked at this long: its flashing band, its scrolling text
TILE_MIN_W = 384  # a small panel's frames are enlarged (whole pixels) to at least this width
TILE_MAX_W = 640  # a large screen's frames are reduced to this width
SHEET_MAX_W = 2400  # frames wrap to the next line beyond this width
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
MAX_HASHED_FILES = 500  # images hashed per asset folder when looking for a sha256
SHEET_BG = (40, 40, 40)
INK = (235, 235, 235)
DIM_INK = (170, 170, 170)
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Panel:
    """The panel previewed: physical ``size``, ``rotation``, ``layout`` (None: the one
    ``provision`` picks for it), LED look and colours."""

    size: tuple[int, int]
    rotation: int = 0
    layout: str | None = None
    led: bool = False
    colours: Any = None  # PanelColours; None: full colour
    font: str | None = None
    timezone: str = "Europe/Paris"
    pitch: int = 6
    wall: datetime | None = None  # the clock shown (default: now)

    @property
    def logical_size(self) -> tuple[int, int]:
        w, h = self.size
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def layout_name(self) -> str:
        from ..provision import layout_for

        return self.layout or layout_for("ledmatrix" if self.led else "png", self.size, self.rotation)


@dataclass
class Shot:
    """One frame of the sheet (physical orientation, in the panel's colours) and its label."""

    image: Image.Image
    label: str


@dataclass
class Row:
    heading: str
    shots: list[Shot] = field(default_factory=list)


# -- pictures ---------------------------------------------------------------------------------


class Images:
    """Finds a playlist's pictures by sha256: ``file:`` paths first, then the folders."""

    def __init__(self, folders: list[Path], files: dict[str, Path] | None = None) -> None:
        self.folders = [f for f in folders if f.is_dir()]
        self.known: dict[str, Path] = dict(files or {})
        self._hashed = False

    def path_of(self, sha: str) -> Path | None:
        if sha in self.known:
            return self.known[sha]
        for folder in self.folders:
            for candidate in sorted(folder.glob(f"{sha}.*")):
                self.known[sha] = candidate
                return candidate
        if not self._hashed:
            self._hashed = True
            for folder in self.folders:
                for path in sorted(folder.iterdir())[:MAX_HASHED_FILES]:
                    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                        try:
                            self.known.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
                        except OSError:
                            continue
        return self.known.get(sha)


def file_assets(data: Any, base: Path) -> dict[str, Path]:
    """``{sha256: path}`` of the ``file:`` of every image slide of a playlist document."""
    found: dict[str, Path] = {}
    slides = data.get("slides") if isinstance(data, dict) else None
    for slide in slides if isinstance(slides, list) else []:
        raw = slide.get("file") if isinstance(slide, dict) else None
        if isinstance(raw, str) and raw:
            path = base / Path(raw).expanduser()
            try:
                found[hashlib.sha256(path.read_bytes()).hexdigest()] = path
            except OSError:
                continue  # prepare_playlist reports it
    return found


def placeholder(folder: Path, size: tuple[int, int]) -> Path:
    """A crossed grey picture of ``size``, written once in ``folder``: a missing image."""
    path = folder / f"missing-{size[0]}x{size[1]}.png"
    if not path.exists():
        w, h = max(2, size[0]), max(2, size[1])
        img = Image.new("RGB", (w, h), (90, 90, 90))
        d = ImageDraw.Draw(img)
        width = max(1, min(w, h) // 24)
        d.rectangle([0, 0, w - 1, h - 1], outline=(255, 60, 60), width=width)
        d.line([(0, 0), (w - 1, h - 1)], fill=(255, 60, 60), width=width)
        d.line([(0, h - 1), (w - 1, 0)], fill=(255, 60, 60), width=width)
        img.save(path)
    return path


# -- drawing ------------------------------------------------------------------------------------


def _start_display() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    from ..render.outputs import init_display

    init_display("png")  # SDL's dummy driver: nothing opens on screen


def _open_layout(panel: Panel) -> Any:
    from ..layout import load_layout

    return load_layout(panel.layout_name())


def _renderer(panel: Panel, layout: Any) -> Any:
    from zoneinfo import ZoneInfo

    from ..render.compositor import Renderer

    tz = ZoneInfo(panel.timezone)
    return Renderer(panel.size, layout, tz=tz, rotation=panel.rotation, transition="cut", font=panel.font)


def _grab(renderer: Any, panel: Panel) -> Image.Image:
    import pygame

    frame = renderer.snapshot()
    image = Image.frombytes("RGB", frame.get_size(), pygame.image.tobytes(frame, "RGB"))
    if panel.colours is not None:
        from ..render.colours import reduce_image

        image = reduce_image(image, panel.colours)
    return image


def _physical(rect: tuple[int, int, int, int], panel: Panel) -> Any:
    """A logical rectangle (x, y, w, h) in the physical frame, as a ``pygame.Rect``."""
    import pygame

    lw, lh = panel.logical_size
    x, y, w, h = rect
    if panel.rotation == 90:
        x, y, w, h = lh - y - h, x, h, w
    elif panel.rotation == 180:
        x, y = lw - x - w, lh - y - h
    elif panel.rotation == 270:
        x, y, w, h = y, lw - x - w, h, w
    return pygame.Rect(x, y, w, h)


def upright(image: Image.Image, rotation: int) -> Image.Image:
    """A physical frame turned back as the street sees the panel (the renderer turned it
    ``rotation`` degrees clockwise for the output)."""
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return image.transpose(turn[rotation]) if rotation in turn else image


def _moments(duration: float) -> Iterator[float]:
    step = max(STEP_S, duration / SAMPLES)
    t = 0.0
    while t < duration - 1e-9:
        yield t
        t += step


def _spread(shots: list[Shot], most: int) -> list[Shot]:
    if len(shots) <= most:
        return shots
    picks = sorted({round(i * (len(shots) - 1) / (most - 1)) for i in range(most)})
    return [shots[i] for i in picks]


def _film(renderer: Any, panel: Panel, start: float, wall: datetime, duration: float,
          watch: list[Any] | None) -> list[Shot]:
    """The distinct frames of ``duration`` seconds from ``start``: those whose ``watch``
    rectangles (None: the whole frame) changed since the previous one kept. Frames whose
    changes (the renderer's dirty rectangles) miss them, a ticker step, are not looked at."""
    shots: list[Shot] = []
    last: bytes | None = None
    boxes = [(r.left, r.top, r.right, r.bottom) for r in watch] if watch else None
    for t in _moments(duration):
        drawn = renderer.render(start + t, wall + timedelta(seconds=t))
        if drawn is None and shots:
            continue
        dirty = drawn[1] if drawn is not None else None
        if watch and shots and dirty is not None and not any(r.colliderect(d) for r in watch for d in dirty):
            continue
        image = _grab(renderer, panel)
        key = b"".join(image.crop(box).tobytes() for box in boxes) if boxes else image.tobytes()
        if key != last:
            shots.append(Shot(upright(image, panel.rotation), f"{t:.1f} s"))
            last = key
    return shots


def preview_playlist(playlist: Any, panel: Panel, path_of: Callable[[str], Path | None], warn: Warn,
                     scratch: Path) -> list[Row]:
    """A row per slide of ``playlist`` as ``panel`` shows it (see the module docstring).

    ``path_of(sha)`` finds a picture; a missing or undecodable one is drawn as a
    placeholder and ``warn`` is told. Raises :class:`ConfigError` for an unknown layout.
    """
    from ..content import ImageSlide, TextSlide
    from ..layout import load_layout

    _start_display()
    layout = load_layout(playlist.layout) if playlist.layout else _open_layout(panel)
    wall = panel.wall or datetime.now(timezone.utc)
    lw, lh = panel.logical_size
    watch = [_physical(z.pixels(lw, lh), panel) for z in layout.zones if z.role in ("main", "title")]
    rows: list[Row] = []
    with _renderer(panel, layout) as renderer:
        now = 1000.0
        renderer.set_ticker(playlist.ticker, now)
        count = len(playlist.slides)
        for i, slide in enumerate(playlist.slides, 1):
            path = None
            note = ""
            if isinstance(slide, ImageSlide):
                path = path_of(slide.asset)
                if path is None:
                    warn(f"slide {slide.id}: image sha256:{slide.asset} not found (give its file: or --assets "
                         "FOLDER): drawn as a crossed placeholder")
                    path, note = placeholder(scratch, layout.main.pixels(lw, lh)[2:]), ", image missing"
            try:
                renderer.show(slide, now, path)
            except AssetError as exc:
                warn(f"slide {slide.id}: {exc}: drawn as a crossed placeholder")
                note = ", image unreadable"
                renderer.show(slide, now, placeholder(scratch, layout.main.pixels(lw, lh)[2:]))
            shots = _film(renderer, panel, now, wall, slide.duration, watch)
            kind = "text" if isinstance(slide, TextSlide) else f"image, {slide.fit}"
            if len(shots) > 1:
                note += f", {len(shots)} pages" if len(shots) <= MAX_FRAMES else ", scrolls"
            rows.append(Row(f"{i}/{count}  {slide.id}  ({kind}, {slide.duration:g} s{note})",
                            _spread(shots, MAX_FRAMES)))
            now += slide.duration
            wall += timedelta(seconds=slide.duration)
    return rows


def preview_alert(alert: Any, panel: Panel, image: Path | None, warn: Warn, info_mode: str = "banner",
                  under: Any = None, path_of: Callable[[str], Path | None] | None = None) -> Row:
    """The alert screen of ``alert`` as ``panel`` shows it, over the first slide of the
    playlist ``under`` (else the idle clock) when it is a banner; as the firmware builds
    it (``AlertPart._view``)."""
    import pygame

    from ..content import ImageSlide
    from ..render.alert_view import AlertView
    from ..render.images import decode_image

    _start_display()
    layout = _open_layout(panel)
    if under is not None and under.layout:
        from ..layout import load_layout

        layout = load_layout(under.layout)
    wall = panel.wall or datetime.now(timezone.utc)
    with _renderer(panel, layout) as renderer:
        now = 1000.0
        lw, lh = renderer.logical_size
        first = under.slides[0] if under is not None and under.slides else None
        first_path = path_of(first.asset) if isinstance(first, ImageSlide) and path_of is not None else None
        if isinstance(first, ImageSlide) and first_path is None:
            first = None  # the idle clock beneath rather than a missing picture
        if under is not None:
            renderer.set_ticker(under.ticker, now)
        renderer.show(first, now, first_path)
        mono = panel.colours is not None and panel.colours.mode == "mono"
        led = panel.led or not layout.antialias or lh <= 128
        ticker = layout.zone("ticker")
        view = AlertView(panel.font or layout.font, flash=True, led=led, mono=mono,
                         banner_fraction=ticker.rect[3] if ticker is not None else None,
                         on_error=lambda reason: warn(reason))
        surface = None
        if image is not None:
            try:
                decoded = decode_image(image, (lw // 3, lh // 3), "contain", (0, 0, 0))
                surface = pygame.image.frombuffer(decoded.data, decoded.size, "RGB").copy()
            except AssetError as exc:
                warn(f"alert image: {exc}: shown without it")
        mode = "banner" if alert.level == "info" and info_mode == "banner" else "fullscreen"
        view.set_alerts(alert, 1, 0, surface, now, mode=mode)
        renderer.set_overlay(view)
        shots = _film(renderer, panel, now, wall, ALERT_SECONDS, None)
    extra = f", {len(shots)} frames in {ALERT_SECONDS:g} s" if len(shots) > 1 else ""
    return Row(f"alert {alert.id}  ({alert.level}, {mode}{extra})", _spread(shots, MAX_FRAMES))


# -- the sheet ----------------------------------------------------------------------------------


def _font(px: int) -> Any:
    try:
        return ImageFont.load_default(px)
    except TypeError:  # Pillow before 10.1: one small bitmap font
        return ImageFont.load_default()


def tile(image: Image.Image, panel: Panel) -> Image.Image:
    """A frame as it goes on the sheet: LED dots, or enlarged (small panels) or reduced (screens)."""
    from ..render.outputs.png import led_dots, png_dots_look

    if panel.led:
        return led_dots(image, png_dots_look(panel.pitch))
    w, h = image.size
    if w < TILE_MIN_W:
        k = -(-TILE_MIN_W // w)
        return image.resize((w * k, h * k), Image.Resampling.NEAREST)
    if w > TILE_MAX_W:
        return image.resize((TILE_MAX_W, max(1, round(h * TILE_MAX_W / w))), Image.Resampling.LANCZOS)
    return image


def contact_sheet(rows: list[Row], panel: Panel, title: str) -> Image.Image:
    """One picture: ``title``, then each row's heading above its labelled frames (wrapped
    to lines of at most :data:`SHEET_MAX_W` pixels)."""
    tiles = [[tile(s.image, panel) for s in row.shots] for row in rows]
    tw = max((t.width for r in tiles for t in r), default=1)
    th = max((t.height for r in tiles for t in r), default=1)
    pad, head, label = 12, 22, 18
    big, small = _font(16), _font(13)
    most = max((len(r) for r in tiles), default=1)
    columns = max(1, min(most, (SHEET_MAX_W - pad) // (tw + pad)))
    lines = [-(-max(1, len(r)) // columns) for r in tiles]
    width = max(pad + columns * (tw + pad), 560)
    height = pad + head + sum(head + n * (th + label + pad) for n in lines)
    sheet = Image.new("RGB", (width, height), SHEET_BG)
    d = ImageDraw.Draw(sheet)
    d.text((pad, pad), title, font=big, fill=INK)
    y = pad + head
    for row, row_tiles, n in zip(rows, tiles, lines):
        d.text((pad, y), row.heading, font=big, fill=INK)
        y += head
        for k, (shot, t) in enumerate(zip(row.shots, row_tiles)):
            x = pad + (k % columns) * (tw + pad)
            top = y + (k // columns) * (th + label + pad)
            sheet.paste(t, (x, top))
            d.text((x, top + t.height + 2), shot.label, font=small, fill=DIM_INK)
        y += n * (th + label + pad)
    return sheet


# -- the command ----------------------------------------------------------------------------------


def add_preview_parser(add: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``preview`` with panelctl's ``add(name, help)``; its handler is :func:`cmd_preview`."""
    p = add("preview", "Draw what a panel of a given size shows for a playlist or an alert, with the panel's "
                       "own renderer, into one PNG (nothing is sent).",
            epilog="Exit status 2 for an invalid playlist or alert, an unknown layout or an unreadable file; "
                   "a picture not found is drawn as a crossed placeholder and named on stderr.")
    p.add_argument("playlist", type=Path, nargs="?", metavar="PLAYLIST",
                   help="a playlist file (YAML or JSON), as for push")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.png", help="the contact sheet")
    p.add_argument("--size", required=True, metavar="WxH", help="the panel's output size, e.g. 128x64 or 1920x1080")
    p.add_argument("--rotation", type=int, default=0, choices=(0, 90, 180, 270), help="display.rotation")
    p.add_argument("--layout", metavar="NAME|FILE",
                   help="the panel's display.layout, used when the playlist names none (default: what "
                        "provision picks for that size: led-matrix, portrait or landscape)")
    p.add_argument("--led", action="store_true", help="an LED matrix: draw every pixel as an LED dot")
    p.add_argument("--dot", type=int, default=6, metavar="PX", help="pixels per LED with --led (default 6)")
    p.add_argument("--mono", metavar="#RRGGBB", help="a single-colour panel of this colour (display.led.colors: mono)")
    p.add_argument("--mono-threshold", type=int, default=128, metavar="N", help="luminance from which an LED is lit")
    p.add_argument("--colors", choices=("rgb", "rgb111", "rgb333"), help="the colours a multicolour LED panel shows")
    p.add_argument("--font", metavar="FILE", help="display.font")
    p.add_argument("--timezone", default="Europe/Paris", help="for the clock (default Europe/Paris)")
    p.add_argument("--assets", type=Path, action="append", default=[], metavar="FOLDER",
                   help="where pictures named by sha256 are (repeatable; the playlist's folder is looked in too)")
    a = p.add_argument_group("an alert instead (or over the playlist's first slide)")
    a.add_argument("--alert", type=Path, metavar="FILE.json", help="an alert as sent (JSON)")
    a.add_argument("--cap", type=Path, metavar="FILE.xml", help="a CAP 1.2 alert")
    a.add_argument("--level", choices=("critical", "warning", "info"))
    a.add_argument("--title")
    a.add_argument("--body")
    a.add_argument("--asset", type=Path, metavar="FILE", help="the alert's picture")
    a.add_argument("--exercise", action="store_true")
    a.add_argument("--info-mode", choices=("banner", "fullscreen"), default="banner",
                   help="how info alerts show (the panels' alerts.info_mode, default banner)")
    p.set_defaults(func=cmd_preview)
    return p


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 0 < int(w) <= 8192 and 0 < int(h) <= 8192):
        raise ValidationError([f"--size: expected WIDTHxHEIGHT such as 128x64, got {text!r}"], "arguments")
    return int(w), int(h)


def panel_from(args: argparse.Namespace) -> Panel:
    from ..render.colours import PanelColours, parse_hex
    from ..render.outputs.png import png_dots_look

    errors: list[str] = []
    size = _size(args.size)
    colours = None
    if args.mono and args.colors:
        errors.append("--mono and --colors: give one (a panel is single-colour or not)")
    elif args.mono:
        try:
            colours = PanelColours("mono", parse_hex(args.mono), args.mono_threshold)
        except ValueError as exc:
            errors.append(f"--mono: {exc}")
    elif args.colors and args.colors != "rgb":
        colours = PanelColours(args.colors)
    if args.led:
        try:
            png_dots_look(args.dot).size_of(size)
        except ValueError as exc:
            errors.append(f"--led: {exc}")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(args.timezone)
    except Exception:
        errors.append(f"--timezone: unknown IANA timezone {args.timezone!r}")
    if errors:
        raise ValidationError(errors, "arguments")
    return Panel(size, args.rotation, args.layout, args.led, colours, args.font, args.timezone, args.dot)


def _alert_of(args: argparse.Namespace, images: Images) -> tuple[Any, Path | None]:
    from ..alerts import Alert
    from . import alerts as ctl_alerts

    flags = [f for f in ("level", "title", "body", "asset") if getattr(args, f) is not None]
    given = [n for n, v in (("--alert", args.alert), ("--cap", args.cap), ("--level/--title", flags)) if v]
    if len(given) > 1:
        raise ValidationError([f"{' and '.join(given)}: give one alert"], "arguments")
    if args.cap is not None:
        try:
            payload = args.cap.read_bytes()
        except OSError as exc:
            raise ValidationError([f"--cap: cannot read {args.cap}: {exc.strerror or exc}"], "arguments") from None
        alert = ctl_alerts.check_cap("preview", payload)
        if not isinstance(alert, Alert):
            raise ContentError(["the CAP file holds no alert to show (a cancel, or nothing for panels)"], "CAP alert")
        return alert, images.path_of(alert.asset) if alert.asset else None
    if args.alert is not None:
        from .push import load_document

        data = load_document(args.alert)
        if not isinstance(data, dict):
            raise ContentError([f"{args.alert}: expected a JSON object"], "alert")
        alert = ctl_alerts.check_json_alert(Path(args.alert).stem or "preview", [], data)
        return alert, images.path_of(alert.asset) if alert.asset else None
    missing = [f"--{f}" for f in ("level", "title") if getattr(args, f) is None]
    if missing:
        raise ValidationError([f"{' and '.join(missing)} required for an alert"], "arguments")
    picture = None
    asset = None
    if args.asset is not None:
        asset = ctl_alerts.check_asset_file(args.asset, 1 << 62)
        picture = args.asset
    data = ctl_alerts.build_alert(level=args.level, title=args.title, body=args.body, ttl=None, expires=None,
                                  asset=asset, exercise=args.exercise)
    return ctl_alerts.check_json_alert("preview", [], data), picture


def cmd_preview(args: argparse.Namespace, s: Any, io: Any) -> int:
    """Run ``panelctl preview``; 0 when the sheet is written, 2 for invalid input."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # stdout stays clean
    from .push import load_document, prepare_playlist

    panel = panel_from(args)
    wants_alert = any(getattr(args, f) is not None for f in ("alert", "cap", "level", "title", "body", "asset"))
    if args.playlist is None and not wants_alert:
        raise ValidationError(["give a PLAYLIST file, or an alert (--alert FILE, --cap FILE or "
                               "--level and --title)"], "arguments")
    if not args.output.parent.is_dir():
        raise ValidationError([f"-o: folder {args.output.parent} does not exist"], "arguments")
    try:
        _open_layout(panel)  # an unknown --layout is an error before anything is drawn
    except ConfigError as exc:
        raise ValidationError([f"--layout: {e}" for e in exc.errors], "arguments") from None
    folders = list(args.assets)
    playlist = None
    files: dict[str, Path] = {}
    if args.playlist is not None:
        data = load_document(args.playlist)
        base = args.playlist.parent
        folders.append(base)
        files = file_assets(data, base)
        playlist = prepare_playlist(data, base, max_asset_bytes=s.max_asset_kb * 1024,
                                    max_message_bytes=s.max_message_kb * 1024).playlist
    images = Images(folders, files)
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        io.err.write(f"panelctl preview: warning: {text}\n")

    what = f"{panel.size[0]}x{panel.size[1]}" + (f", rotated {panel.rotation}" if panel.rotation else "")
    what += ", LED" if panel.led else ""
    if panel.colours is not None:
        what += f", {panel.colours.describe()}"
    with tempfile.TemporaryDirectory(prefix="panelctl-preview-") as scratch:
        if wants_alert:
            alert, picture = _alert_of(args, images)
            rows = [preview_alert(alert, panel, picture, warn, args.info_mode, playlist, images.path_of)]
            title = f"alert {alert.id} on a {what} panel"
        else:
            assert playlist is not None
            rows = preview_playlist(playlist, panel, images.path_of, warn, Path(scratch))
            layout = playlist.layout or panel.layout_name()
            title = f"{playlist.id} v{playlist.version} on a {what} panel, layout {layout}"
    sheet = contact_sheet(rows, panel, title)
    from ..render.outputs.png import write_atomically

    def save(f: IO[bytes]) -> None:
        sheet.save(f, "PNG")

    write_atomically(args.output, save)
    frames = sum(len(r.shots) for r in rows)
    io.err.write(f"wrote {args.output} ({sheet.width}x{sheet.height}: {len(rows)} "
                 f"{'row' if len(rows) == 1 else 'rows'}, {frames} frames)"
                 + (f", {len(warnings)} warning{'s' if len(warnings) > 1 else ''}" if warnings else "") + "\n")
    return 0

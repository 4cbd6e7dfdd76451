"""Configuration errors shown on the panel itself, instead of a dark panel restarting in a loop.

When the service starts with a config it cannot use (invalid, and no previous valid
one to fall back on), :func:`show_config_errors` takes the screen: a red band saying
"Configuration invalide", then every error (each naming its key), sized to fit, a page
at a time when there are too many, with the panel's IP addresses at the bottom so a
crew can log in. It tells systemd it is ready and pings the watchdog, so systemd
neither kills it nor restarts it, and it watches the config file: once a fixed,
valid config is saved, it exits with status 75 and systemd starts the player again.

A valid config that cannot run on this machine is shown the same way: ``display.output:
ledmatrix`` without the ``rgbmatrix`` module (:func:`config_problems` lists it after
the config's own errors). That problem is looked for again at every check, since
installing the module does not touch the config file.

A ``panel-player.yaml`` refused at first boot while a previous config still works is
shown the same way for a while by :func:`show_rejected_boot_file`, then the player
carries on with the previous config.

The output is the config's own when its ``display`` section can be read
(:func:`output_hint_from_file`) and usable (not an LED matrix whose driver is
missing), else ``/dev/fb0`` when present, else a PNG at ``/tmp/panel-player-errors.png``.
For development and tests, ``PANEL_PLAYER_ERRORS_FB`` and ``PANEL_PLAYER_ERRORS_PNG``
name another framebuffer device and another PNG file.

Example::

    cfg, problems = config_problems(path)
    if problems and under_systemd():
        sys.exit(show_config_errors(problems, hint=output_hint_from_file(path), watch=path))
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402

from .errors import ConfigError, PanelError  # noqa: E402
from .inbox import Inbox  # noqa: E402
from .render.fonts import Color  # noqa: E402

log = logging.getLogger("panel-player.errors")

TITLE = "Configuration invalide"
REJECTED_TITLE = "panel-player.yaml refusé"
ERRORS_PNG = Path("/tmp/panel-player-errors.png")
FB_DEVICE = "/dev/fb0"
PNG_ENV = "PANEL_PLAYER_ERRORS_PNG"  # another file for the PNG fallback (development, tests)
FB_ENV = "PANEL_PLAYER_ERRORS_FB"  # another framebuffer device to try (development, tests)
PNG_SIZE = (1280, 720)
PAGE_SECONDS = 8.0
WATCH_EVERY_S = 2.0
REJECTED_SHOW_S = 120.0
EXIT_OK = 0
EXIT_RESTART = 75  # as the player's `restart` command: systemd's Restart=always starts the player again

BACKGROUND: Color = (0, 0, 0)
BAND: Color = (190, 0, 0)
TITLE_COLOR: Color = (255, 255, 255)
TEXT: Color = (255, 255, 255)
FOOTER: Color = (170, 170, 170)
BULLET = "• "


def under_systemd() -> bool:
    """True when this process was started by systemd as a service (``$INVOCATION_ID``)."""
    return bool(os.environ.get("INVOCATION_ID"))


def _errors_png() -> Path:
    return Path(os.environ.get(PNG_ENV) or ERRORS_PNG)


def _fb_device() -> str:
    return os.environ.get(FB_ENV) or FB_DEVICE


# -- what is wrong ----------------------------------------------------------------------


def config_problems(path: Path) -> tuple[Any, list[str]]:
    """(config, problems): why the config at ``path`` cannot run on this machine.

    The config's own errors (each naming its key; the config is then None), then a
    missing LED matrix driver when ``display.output`` is ``ledmatrix`` (read from the
    file even when it is invalid elsewhere, so both are fixed in one go). No problems:
    the player can start with the config returned.
    """
    cfg, errors, driver = _check(path)
    return cfg, errors + driver


def _check(path: Path) -> tuple[Any, list[str], list[str]]:
    """(config or None, the config's errors, the missing driver's message if any)."""
    from .config import load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return None, list(exc.errors), _driver_problems(*_output_in_file(path))
    return cfg, [], _driver_problems(cfg.display.output, cfg.display.led.driver)


def _output_in_file(path: Path) -> tuple[str | None, str]:
    """``display.output`` and ``display.led.driver`` as the file says them."""
    hint = output_hint_from_file(path)
    return (hint.output, _led_driver(hint.led)) if hint is not None else (None, "auto")


def _led_driver(led: dict[str, Any]) -> str:
    """``display.led.driver`` of a (maybe invalid) ``led`` section: ``auto`` unless it names one."""
    driver = led.get("driver")
    return driver if driver in ("rgbmatrix", "piomatter") else "auto"


def _driver_problems(output: str | None, driver: str = "auto") -> list[str]:
    if output != "ledmatrix":
        return []
    from .render.outputs.ledmatrix import missing_driver

    problem = missing_driver(driver)
    return [problem] if problem else []


class _ConfigWatch:
    """What the error screen looks at again every few seconds.

    The config file is read again when it changes; a missing LED driver is looked for
    at every check while it is missing, since installing it does not touch the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp = self._read_stamp()
        self.output, self.driver = _output_in_file(path)
        self.driver_missing = bool(_driver_problems(self.output, self.driver))

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def poll(self) -> list[str] | None:
        """None: nothing new; []: the config can run now; else the problems to show now."""
        stamp = self._read_stamp()
        if stamp == self.stamp:
            if not self.driver_missing:
                return None
            importlib.invalidate_caches()  # the module may have been installed since
            if _driver_problems("ledmatrix", self.driver):
                return None
        self.stamp = stamp
        self.output, self.driver = _output_in_file(self.path)
        _, errors, driver = _check(self.path)
        self.driver_missing = bool(driver)
        return errors + driver


def _status(title: str, errors: Sequence[str]) -> str:
    """The STATUS= line of ``systemctl status``: the count and the start of the first error
    (on an LED panel without its driver, the only place a crew reads it without a screen)."""
    first = " ".join(errors[0].split()) if errors else ""
    return f"{title}: {len(errors)} error(s) on screen" + (f": {first}" if first else "")


# -- where to draw --------------------------------------------------------------------


@dataclass(frozen=True)
class OutputHint:
    """The display settings to try first (from a config that may be invalid elsewhere)."""

    output: str = "fbdev"
    device: str = FB_DEVICE
    size: tuple[int, int] | None = None
    path: Path | None = None
    rotation: int = 0
    led: dict[str, Any] = field(default_factory=dict)


def output_hint_from_file(path: Path) -> OutputHint | None:
    """The ``display`` section of a config file, read as far as it makes sense; None if unusable.

    Only well-formed values are taken: an invalid config can still say where its screen is.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    display = data.get("display") if isinstance(data, dict) else None
    if not isinstance(display, dict) or display.get("output") not in ("fbdev", "sdl", "png", "ledmatrix"):
        return None
    size = display.get("size")
    ok_size = (isinstance(size, list) and len(size) == 2
               and all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 8192 for v in size))
    device = display.get("device")
    png = display.get("path")
    rotation = display.get("rotation")
    led = display.get("led")
    return OutputHint(
        output=display["output"],
        device=device if isinstance(device, str) and device.startswith("/") else FB_DEVICE,
        size=(size[0], size[1]) if ok_size and size is not None else None,
        path=Path(png) if isinstance(png, str) and png else None,
        rotation=rotation if rotation in (0, 90, 180, 270) else 0,
        led=dict(led) if isinstance(led, dict) else {},
    )


def output_hint_from_config(cfg: Any) -> OutputHint:
    """The display settings of a valid :class:`~player.config.Config`."""
    d = cfg.display
    led = {f.name: getattr(d.led, f.name) for f in fields(d.led)}
    return OutputHint(d.output, d.device, d.size, d.path, d.rotation, led)


def _led_options(raw: dict[str, Any]) -> Any:
    from .render.outputs.ledmatrix import LedOptions

    known = {f.name: f for f in fields(LedOptions)}
    good: dict[str, Any] = {k: v for k, v in raw.items() if k in known and isinstance(v, (int, str, bool))}
    try:
        options = LedOptions(**good)
    except TypeError:
        return LedOptions()
    try:
        options.colours  # noqa: B018 (checks display.led.colors, mono_color, mono_threshold)
    except PanelError:  # not valid: the errors are shown in full colour rather than not at all
        d = LedOptions()
        options = replace(options, colors=d.colors, mono_color=d.mono_color, mono_threshold=d.mono_threshold)
    if not (isinstance(options.png_dots, int) and 2 <= options.png_dots <= 32):
        options = replace(options, png_dots=0)  # not valid: plain pixels
    return options


def open_best_output(hint: OutputHint | None, *, fb_device: str | None = None, png_path: Path | None = None,
                     sysfs_root: Path = Path("/sys")) -> tuple[Any, int]:
    """(output, rotation): ``hint``'s output, else fbdev ``fb_device`` if it opens, else a PNG at ``png_path``.

    ``fb_device`` and ``png_path`` default to ``/dev/fb0`` and ``/tmp/panel-player-errors.png``
    (or what ``PANEL_PLAYER_ERRORS_FB`` and ``PANEL_PLAYER_ERRORS_PNG`` say). An LED
    matrix hint whose driver is missing is skipped without trying it.
    """
    from .render.outputs import init_display, open_output

    fb_device = fb_device or _fb_device()
    png_path = png_path or _errors_png()
    if hint is not None and hint.output == "ledmatrix" and _driver_problems("ledmatrix", _led_driver(hint.led)):
        log.info("no LED matrix driver: the errors go to the framebuffer or a PNG file")
        hint = None  # its rotation is the matrix's, not a screen's
    candidates: list[OutputHint] = [hint] if hint is not None else []
    if Path(fb_device).exists():
        candidates.append(OutputHint("fbdev", fb_device, rotation=hint.rotation if hint else 0))
    candidates.append(OutputHint("png", size=(hint.size if hint and hint.output == "png" else None) or PNG_SIZE,
                                 path=png_path, rotation=hint.rotation if hint else 0))
    for i, c in enumerate(candidates):
        size = c.size or (PNG_SIZE if c.output in ("png", "sdl") else None)
        if c.output == "png" and c.path is None:
            continue
        try:
            init_display(c.output, size)
            # png too: an LED panel's PNG mirror shows the errors in the panel's colours.
            led = _led_options(c.led) if c.output in ("ledmatrix", "png") else None
            if led is not None and led.png_dots and c.output == "png" and size is not None:
                from .render.outputs.png import png_dots_look
                try:
                    png_dots_look(led.png_dots).size_of(size)
                except ValueError:
                    led = replace(led, png_dots=0)  # too large as dots: plain pixels
            return open_output(c.output, size=size, path=c.path, device=c.device, sysfs_root=sysfs_root,
                               led=led), c.rotation
        except (PanelError, OSError, pygame.error) as exc:
            if i == len(candidates) - 1:
                raise
            log.warning("cannot show the errors on %s: %s; trying the next output", c.output, exc)
    raise AssertionError("unreachable: the png candidate either opens or raises")


# -- what to draw ---------------------------------------------------------------------


class ErrorsView:
    """Full-screen overlay: a title band, the errors fitted to the screen (paged), a footer.

    ``footer`` is shown at the bottom with the page number (e.g. the IP addresses).
    Pages turn every :data:`PAGE_SECONDS` from ``start`` (default: the first draw).
    """

    def __init__(self, errors: Sequence[str], *, title: str = TITLE, footer: str = "", led: bool = False,
                 start: float | None = None) -> None:
        from .render.fonts import open_face
        from .render.text import TextPainter

        self.errors = [" ".join(e.split()) for e in errors] or ["(aucun détail)"]
        self.title = title
        self.footer = footer
        self.led = led
        # The bundled font, whatever the config says: the configured one may be the problem.
        self.painter = TextPainter(open_face(None), antialias=not led, line_spacing=1.0 if led else 1.15,
                                   typography=None)
        self.start = start
        self.revision = 0
        self._plans: dict[tuple[int, int], tuple[int, list[list[tuple[bool, str]]]]] = {}

    def set_errors(self, errors: Sequence[str]) -> None:
        """Show another list of errors (the config was edited but is still invalid)."""
        cleaned = [" ".join(e.split()) for e in errors] or ["(aucun détail)"]
        if cleaned != self.errors:
            self.errors = cleaned
            self._plans.clear()
            self.revision += 1

    # geometry
    def areas(self, size: tuple[int, int]) -> tuple[pygame.Rect, pygame.Rect, pygame.Rect]:
        """(title band, errors, footer) on a surface of ``size``; the footer may be empty."""
        w, h = size
        small = self.led or h < 200
        band_h = max(8, round(h * (0.3 if small else 0.16)))
        foot_h = 0 if small else max(8, round(h * 0.07))
        m = max(1, round(min(w, h) * 0.03))
        body = pygame.Rect(m, band_h + m, max(1, w - 2 * m), max(1, h - band_h - foot_h - 2 * m))
        return (pygame.Rect(0, 0, w, band_h), body,
                pygame.Rect(m, h - foot_h, max(1, w - 2 * m), foot_h))

    def _min_px(self, size: tuple[int, int]) -> int:
        return max(8, size[1] // 28)

    def plan(self, size: tuple[int, int]) -> tuple[int, list[list[tuple[bool, str]]]]:
        """(text size, pages of (first line of an error?, text)): the largest size at which every error fits, else
        the smallest readable size and as many pages as needed (an error is not split
        across pages unless it is longer than a page)."""
        from .render.text import last_true

        cached = self._plans.get(size)
        if cached is not None:
            return cached
        _, body, _ = self.areas(size)
        painter, face = self.painter, self.painter.face
        sizes = face.sizes(max(8, size[1] // 12))

        def wrapped(px: int) -> list[list[tuple[bool, str]]]:
            # A hanging indent: the bullet on the first line, the rest aligned after it.
            width = max(1, body.w - face.width(BULLET, px))
            return [[(i == 0, line) for i, line in enumerate(painter.wrap(e, px, width, True) or [""])]
                    for e in self.errors]

        def height(n: int, px: int) -> int:
            return n * painter.advance(px) - (painter.advance(px) - face.line_height(px)) if n else 0

        def fits(px: int) -> bool:
            return height(sum(len(b) for b in wrapped(px)), px) <= body.h

        px = sizes[last_true(0, len(sizes) - 1, lambda i: fits(sizes[i]))]
        if fits(px) and px >= min(self._min_px(size), sizes[-1]):
            result = (px, [[line for block in wrapped(px) for line in block]])
        else:
            px = next((s for s in sizes if s >= self._min_px(size)), sizes[-1])
            per_page = max(1, (body.h - face.line_height(px)) // painter.advance(px) + 1)
            pages: list[list[tuple[bool, str]]] = [[]]
            for block in wrapped(px):
                if pages[-1] and len(pages[-1]) + len(block) > per_page:
                    pages.append([])
                for line in block:
                    if len(pages[-1]) == per_page:
                        pages.append([])
                    pages[-1].append(line)
            result = (px, pages)
        self._plans[size] = result
        return result

    def page_at(self, now: float, pages: int) -> int:
        if self.start is None or pages <= 1:
            return 0
        return math.floor(max(0.0, now - self.start) / PAGE_SECONDS) % pages

    # drawing (the Renderer's overlay protocol)
    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        if self.start is None:
            self.start = now
        size = surface.get_size()
        band, body, foot = self.areas(size)
        px, pages = self.plan(size)
        page = self.page_at(now, len(pages))
        surface.fill(BACKGROUND)
        surface.fill(BAND, band)
        title = self.title if len(pages) == 1 or foot.h else f"{self.title} {page + 1}/{len(pages)}"
        self.painter.draw_line(surface, band.inflate(-2 * max(1, band.h // 8), -2 * max(1, band.h // 8)),
                               title, TITLE_COLOR)
        indent = self.painter.face.width(BULLET, px)
        clip = surface.get_clip()
        surface.set_clip(body)
        try:
            y = body.y
            for first, text in pages[page]:
                if first:
                    surface.blit(self.painter.render_line(BULLET, px, TEXT), (body.x, y))
                surface.blit(self.painter.render_line(text, px, TEXT), (body.x + indent, y))
                y += self.painter.advance(px)
        finally:
            surface.set_clip(clip)
        if foot.h:
            parts = [p for p in (self.footer, f"page {page + 1}/{len(pages)}" if len(pages) > 1 else "") if p]
            if parts:
                self.painter.draw_line(surface, foot, " · ".join(parts), FOOTER, align="left")

    def next_frame(self, now: float) -> float | None:
        """The next page turn, or None for a single page (a still picture)."""
        if self.start is None:
            return now
        sizes = list(self._plans.values())
        if not sizes or all(len(p) <= 1 for _, p in sizes):
            return None
        turns = math.floor(max(0.0, now - self.start) / PAGE_SECONDS) + 1
        return self.start + turns * PAGE_SECONDS + 1e-6


# -- the loop -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stop:
    reason: str


class _Screen:
    """The minimal loop: one output, one overlay, an inbox for signals; no network, no sensors."""

    def __init__(self, errors: Sequence[str], *, title: str, footer: str | None, hint: OutputHint | None,
                 fb_device: str | None, png_path: Path | None, sysfs_root: Path, watch: Path | None,
                 watch_every: float) -> None:
        self.errors = list(errors)
        self.title = title
        self.footer = footer
        self.hint = hint
        self.fb_device = fb_device
        self.png_path = png_path
        self.sysfs_root = sysfs_root
        self.watch = watch
        self.watch_every = watch_every
        self.inbox = Inbox()  # a signal handler may post to it without a lock (player/inbox.py)

    def run(self, seconds: float | None) -> str:
        """"signal", "time" or "fixed" (the watched config can run now)."""
        from .hw.notify import Notifier, WatchdogPacer, watchdog_interval
        from .layout import load_layout
        from .render.compositor import Renderer
        from .render.identify import describe_addresses

        output, rotation = open_best_output(self.hint, fb_device=self.fb_device, png_path=self.png_path,
                                            sysfs_root=self.sysfs_root)
        log.error("%s: showing %d error(s) on %s (%s)", self.title, len(self.errors), output.name, output.status)
        notifier = Notifier()
        pacer = WatchdogPacer(watchdog_interval())
        renderer = None
        try:
            watch = _ConfigWatch(self.watch) if self.watch is not None else None
            addresses = ", ".join(describe_addresses())
            footer = self.footer if self.footer is not None else (f"IP {addresses}" if addresses else "")
            view = ErrorsView(self.errors, title=self.title, footer=footer, led=output.name == "ledmatrix")
            renderer = Renderer(output.size, load_layout("fullscreen"), tz=timezone.utc, rotation=rotation,
                                transition="cut")
            renderer.set_overlay(view)
            start = time.monotonic()
            end = start + seconds if seconds is not None else None
            next_watch = start + self.watch_every if watch is not None else None
            first = True
            while True:
                now = time.monotonic()
                drawn = renderer.render(now, datetime.now(timezone.utc))
                if drawn is not None:
                    output.show(*drawn)
                output.flush(now)
                if first:
                    notifier.ready(_status(self.title, self.errors))
                    first = False
                pacer.tick(now, notifier)
                if end is not None and now >= end:
                    return "time"
                if watch is not None and next_watch is not None and now >= next_watch:
                    next_watch = now + self.watch_every
                    problems = watch.poll()
                    if problems:
                        view.set_errors(problems)
                        renderer.set_overlay(view)
                        notifier.status(_status(self.title, problems))
                        continue
                    if problems is not None:
                        log.info("%s can be used now: restarting the player", self.watch)
                        return "fixed"
                due = [t for t in (renderer.next_deadline(now, datetime.now(timezone.utc)), output.next_deadline(),
                                   end, next_watch, pacer.next_due(now)) if t is not None and math.isfinite(t)]
                timeout = max(0.0, min(due) - time.monotonic()) if due else 3600.0
                try:
                    msg = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    msg = None
                signum = self.inbox.take_signal()
                if signum is not None:
                    log.info("stopping: %s", signal.Signals(signum).name)
                    return "signal"
                if isinstance(msg, _Stop):
                    log.info("stopping: %s", msg.reason)
                    return "signal"
        finally:
            notifier.stopping()
            notifier.close()
            if renderer is not None:
                renderer.close()
            output.close()


def _with_signals(screen: _Screen, seconds: float | None) -> str:
    """Run ``screen`` with SIGTERM/SIGINT ending it (handlers restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        return screen.run(seconds)

    def on_signal(signum: int, _frame: object) -> None:
        screen.inbox.post_signal(signum)  # no lock: the loop may be inside the inbox

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return screen.run(seconds)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def show_config_errors(errors: list[str], *, hint: OutputHint | None = None, title: str = TITLE,
                       footer: str | None = None, watch: Path | None = None, seconds: float | None = None,
                       fb_device: str | None = None, png_path: Path | None = None,
                       sysfs_root: Path = Path("/sys"),
                       watch_every: float = WATCH_EVERY_S) -> int:
    """Show ``errors`` on the panel until SIGTERM/SIGINT (or ``seconds``); returns the exit status.

    0 after a signal or ``seconds``; 75 (:data:`EXIT_RESTART`) once ``watch`` (the config
    file) can be used: it changed and is valid, or the LED driver it needs was installed
    (:func:`config_problems` finds nothing). Under systemd the player then starts again.
    ``footer`` replaces the default footer (the IP addresses). Raises what
    :func:`open_best_output` raises when no output at all can be opened.
    """
    screen = _Screen(errors, title=title, footer=footer, hint=hint, fb_device=fb_device, png_path=png_path,
                     sysfs_root=sysfs_root, watch=watch, watch_every=watch_every)
    ended = _with_signals(screen, seconds)
    return EXIT_RESTART if ended == "fixed" else EXIT_OK


def show_rejected_boot_file(errors: list[str], *, hint: OutputHint | None = None,
                            seconds: float = REJECTED_SHOW_S, **kwargs: Any) -> bool:
    """Show why ``panel-player.yaml`` was refused for ``seconds``, while a previous config works.

    True when the time is up (go on with the previous config), False when a signal
    asked to stop (exit 0).
    """
    footer = kwargs.pop("footer", "voir panel-player.yaml.errors.txt sur la partition de démarrage ; "
                                  "l'ancienne configuration reste en service")
    screen = _Screen(errors, title=REJECTED_TITLE, footer=footer, hint=hint,
                     fb_device=kwargs.pop("fb_device", None), png_path=kwargs.pop("png_path", None),
                     sysfs_root=kwargs.pop("sysfs_root", Path("/sys")), watch=None, watch_every=WATCH_EVERY_S)
    if kwargs:
        raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
    return _with_signals(screen, seconds) == "time"


def main(argv: list[str] | None = None) -> int:
    """``python -m player.boot_errors --config FILE``: show FILE's errors as the panel would."""
    parser = argparse.ArgumentParser(prog="python -m player.boot_errors")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--png", type=Path, default=None,
                        help=f"where the png fallback writes the picture (default: ${PNG_ENV}, else {ERRORS_PNG})")
    parser.add_argument("--fb-device", default=None, help=f"default: ${FB_ENV}, else {FB_DEVICE}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    _, problems = config_problems(args.config)
    if problems:
        return show_config_errors(problems, hint=output_hint_from_file(args.config), watch=args.config,
                                  seconds=args.seconds, fb_device=args.fb_device, png_path=args.png)
    print(f"{args.config} is valid: nothing to show", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

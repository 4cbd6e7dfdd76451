"""The Player: owns the main loop, pygame and all display state.

Other threads (MQTT, asset downloads, sensor sampling) never touch the display:
they put small, already-checked messages on :attr:`Player.inbox`, an
:class:`~player.inbox.Inbox`; signal handlers only record their signal there
(:meth:`~player.inbox.Inbox.post_signal`, no lock). The loop blocks on that inbox
until the next deadline (slide end, animation frame, clock minute, heartbeat,
alert expiry, watchdog), so a still picture costs no CPU and a message is acted
on, and drawn, as soon as it arrives.

The parts the loop drives live beside it: :mod:`player.app_content` (playlists,
assets), :mod:`player.app_alerts` (the alert board on screen),
:mod:`player.app_ops` (commands, heartbeat, brightness, systemd).
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .errors import DisplayUnavailable, PanelError
from .inbox import Inbox
from .layout import Layout, load_layout
from .net.protocol import Inbound
from .store import StateStore

log = logging.getLogger("panel-player")

EXIT_OK = 0
EXIT_RESTART = 75  # the `restart` command: systemd's Restart=always starts us again
QUIET_TICK_S = 0.25  # the parts' tick runs at least this often while the loop turns (a safety net)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


LIMITED_EVENTS = frozenset({"playlist.rejected", "alert.rejected", "error"})


class EventLimiter:
    """A token bucket: ``rate`` events a second on average, bursts of ``burst``."""

    def __init__(self, rate: float = 50.0, burst: float = 200.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.held = 0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def allow(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1 and not self.held:
            self.tokens -= 1
            return True
        self.held += 1
        return False

    def take_held(self, now: float) -> int:
        """How many were held back, once the bucket has room for the report again."""
        self._refill(now)
        if not self.held or self.tokens < 1:
            return 0
        held, self.held = self.held, 0
        self.tokens -= 1
        return held

    def next_report(self) -> float | None:
        return None if not self.held else self.stamp + max(0.0, 1 - self.tokens) / self.rate


@dataclass(frozen=True)
class Stop:
    """Ask the loop to end (signal handler, tests)."""

    code: int = EXIT_OK
    reason: str = "stop requested"


@dataclass(frozen=True)
class Call:
    """Run ``fn`` on the main loop (worker threads hand results over this way)."""

    fn: Callable[[], None]


class Player:
    """The panel's main loop. ``run()`` returns the process exit status.

    Example::

        player = Player(load_config(Path("config.yaml")))
        signal.signal(signal.SIGTERM, lambda signum, _: player.inbox.post_signal(signum))
        sys.exit(player.run())
    """

    def __init__(self, cfg: Config) -> None:
        from .app_alerts import AlertPart
        from .app_content import ContentPart
        from .app_ops import OpsPart
        from .app_screen import ScreenPart
        from .app_status import StatusLine
        from .app_trust import TrustGate

        self.cfg = cfg
        self.version = __version__
        self.inbox = Inbox()
        self.tz = cfg.panel.tz()
        self.started = time.monotonic()
        self.exit_code: int | None = None
        self.store = StateStore(cfg.state_dir, cfg.storage.asset_quota_mb * 2**20)
        self.layout_name = cfg.display.layout
        self.layout: Layout = load_layout(self.layout_name)
        self.renderer: Any = None
        self.images: Any = None
        self.output: Any = None
        self.link: Any = None
        self.frames = 0
        # The parts' earliest deadline, cached between full ticks (None: to be worked out):
        # a pass with no message and nothing due skips their tick (see step).
        self._parts_due: float | None = None
        self._full_tick_at = -math.inf
        self.fps_window: list[float] = []
        self.first_frame_at: float | None = None
        self._on_frame: list[Callable[[float], None]] = []
        self.early_events: list[dict[str, Any]] = []
        self.limiter = EventLimiter()
        self.trust = TrustGate(self)
        self.content = ContentPart(self)
        self.alerts = AlertPart(self)
        self.ops = OpsPart(self)
        self.screen = ScreenPart(self)
        self.status_line = StatusLine()  # systemd's STATUS=, sent when it changes

    # -- helpers for the parts -------------------------------------------
    def event(self, event: dict[str, Any], limit: bool = True) -> None:
        """Publish an event (CONTRACT §7) and log it.

        Refusals and errors are rate-limited (a flood of hostile messages must not
        crowd out command answers in the outgoing queue); what is held back is
        counted and reported in one ``error`` event once the flood ebbs.
        """
        if limit and event["type"] in LIMITED_EVENTS and not self.limiter.allow(time.monotonic()):
            log.debug("event held back (flood): %s", event)
            return
        level = logging.WARNING if event["type"].endswith(("rejected", "failed")) or event["type"] == "error" \
            else logging.INFO
        log.log(level, "event %s", {k: v for k, v in event.items() if k != "ts"})
        if self.link is not None:
            self.link.publish_event(event)
        elif len(self.early_events) < 100:
            self.early_events.append(event)  # sent once the link exists

    def flush_held_events(self, now: float) -> None:
        held = self.limiter.take_held(now)
        if held:
            from .net.protocol import event_error

            self.event(event_error(f"{held} more refusals or errors were not sent one by one "
                                   f"(more than {self.limiter.rate:g} a second)"), limit=False)

    def report_error(self, reason: str, publish: bool = True) -> None:
        """An error the crews should see: logged, in the heartbeat, and as an ``error`` event."""
        from .net.protocol import event_error

        if self.ops.errors.add(reason, utcnow()) and publish:
            self.event(event_error(reason))
        else:
            log.error("%s", reason)

    def after_frame(self, fn: Callable[[float], None]) -> None:
        """Call ``fn(shown_at)`` once the next frame has been handed to the output."""
        self._on_frame.append(fn)

    def set_layout(self, name: str) -> None:
        if name == self.layout_name:
            return
        try:
            self.layout = load_layout(name)
        except PanelError as exc:
            self.report_error(f"layout {name}: {exc}")
            return
        self.layout_name = name
        self.renderer.set_layout(self.layout)
        self.alerts.layout_changed()

    # -- display ---------------------------------------------------------
    def open_display(self) -> None:
        from .render.outputs import init_display, open_configured

        d = self.cfg.display
        init_display(d.output, d.size)

        def opener(wait_s: float = 0.0) -> Any:
            return open_configured(d, wait_s=wait_s)

        try:
            self.output = opener(d.wait_s)
        except DisplayUnavailable as exc:
            # No screen yet (KMS creates /dev/fb0 only when one was connected at boot): run
            # without it — messages are received and persisted — and retry every few seconds.
            from .render.outputs.waiting import WaitingOutput

            log.warning("%s; retrying every few seconds", exc)
            self.output = WaitingOutput(d.size or (1920, 1080), opener, str(exc))
        self.build_renderer()

    def build_renderer(self) -> None:
        from .render.compositor import Renderer
        from .render.fonts import min_text_px
        from .render.images import ImageCache, default_cache_bytes

        d = self.cfg.display
        if self.renderer is not None:
            self.renderer.close()
            self.images.close()
        w, h = self.output.size
        cache_bytes = d.image_cache_mb * 2**20 if d.image_cache_mb else default_cache_bytes((w, h))
        # A failed background decode surfaces again, as AssetError, when its slide is shown.
        self.images = ImageCache(cache_bytes, on_error=lambda key, err: log.debug("prefetch failed: %s", err))
        self.renderer = Renderer(
            self.output.size, self.layout, tz=self.tz, rotation=d.rotation, fps=d.fps,
            transition=d.transition, transition_s=d.transition_s, font=d.font, antialias=d.antialias,
            images=self.images, language=self.cfg.panel.language,
            min_text_px=min_text_px(d.viewing_distance_m, d.pixel_pitch_mm),
            # png and fbdev dim while they copy the frame: no dimmed full-frame layer then.
            dim_output=getattr(self.output, "set_dim", None),
            # fbdev and sdl let a frame of the ticker alone be drawn on their own pixels.
            direct=self.output.direct_surface,
        )

    def draw(self, now: float) -> None:
        if self.screen.asleep:
            return  # the screen is off: nothing is drawn until it wakes
        wall = utcnow()
        result = self.renderer.render(now, wall)
        if result is None:
            return
        frame, dirty = result
        drawn = self.renderer.direct_drawn
        shown_at = self.output.show_direct(drawn) if drawn else self.output.show(frame, dirty)
        self.frames += 1
        self.fps_window.append(now)
        if self.first_frame_at is None:
            self.first_frame_at = now
        self.alerts.frame_shown(shown_at)
        callbacks, self._on_frame = self._on_frame, []
        for fn in callbacks:
            fn(shown_at)

    def measured_fps(self, now: float) -> float | None:
        """Frames handed to the output per second over the last 5 s (0 for a still picture)."""
        self.fps_window = [t for t in self.fps_window if now - t <= 5.0]
        span = min(5.0, now - self.started)
        return round(len(self.fps_window) / span, 1) if span >= 1.0 else None

    # -- loop -----------------------------------------------------------
    def stop(self, code: int = EXIT_OK, reason: str = "stop requested") -> None:
        """Ask the loop to end; safe from any thread. A signal handler calls
        ``inbox.post_signal(signum)`` instead (no allocation, see :mod:`player.inbox`)."""
        self.inbox.put(Stop(code, reason))

    def deadlines(self, now: float, wall: datetime) -> list[float]:
        frame = None if self.screen.asleep else self.renderer.next_deadline(now, wall)
        found = [t for t in (frame, self.output.next_deadline(), self.limiter.next_report()) if t is not None]
        if self._parts_due is None:
            due = [t for part in (self.content, self.alerts, self.screen, self.ops)
                   for t in part.deadlines(now, wall) if t is not None]
            self._parts_due = min(due, default=math.inf)
        if self._parts_due != math.inf:
            found.append(self._parts_due)
        return found

    def handle(self, msg: object, now: float) -> None:
        if isinstance(msg, Stop):
            if self.exit_code is None:
                self.exit_code = msg.code
            log.info("stopping: %s", msg.reason)
        elif isinstance(msg, Call):
            msg.fn()
        elif isinstance(msg, Inbound) and (msg := self.trust.admit(msg)) is None:
            return  # refused: its event is out, nothing changes (admitted: handled below)
        elif not (self.content.handle(msg, now) or self.alerts.handle(msg, now) or self.ops.handle(msg, now)):
            log.warning("unexpected inbox item %r", type(msg).__name__)

    def tick(self, now: float) -> None:
        """Time-driven work of every part."""
        wall = utcnow()
        self._parts_due = None  # whatever changes now, their deadlines are asked again
        self._full_tick_at = now
        self.alerts.tick(now, wall)
        self.screen.tick(now, wall)
        self.content.tick(now, wall)
        self.ops.tick(now, wall)
        self.status_line.update(self, now, wall)

    def start(self) -> None:
        """Everything up to the first frame; nothing here waits for a network."""
        self.open_display()
        try:
            # Built before any picture is decoded: the alert screen's fonts and buffers
            # then sit below the image cache instead of in holes it leaves, and the
            # first real alert is not slowed by building them.
            self.alerts.warm_up()
        except Exception:
            log.exception("alert screen warm-up failed")
        self.content.start()
        self.alerts.start()
        now = time.monotonic()
        self.ops.start_brightness()
        self.alerts.tick(now, utcnow())
        self.screen.start(now)
        self.tick(now)
        self.draw(now)
        # READY=1 (in ops.start) promises the first frame is out, not merely queued.
        self.output.wait_idle(5.0)
        self.ops.start()

    def run(self) -> int:
        """Run until stopped; returns the exit status (0, or 75 for a restart)."""
        try:
            self.start()
            while self.exit_code is None:
                self.step()
        finally:
            self.close()
        return self.exit_code or EXIT_OK

    def step(self) -> None:
        """One pass of the loop: wait for a message or the next deadline, act, draw."""
        now = time.monotonic()
        upcoming = self.deadlines(now, utcnow())
        timeout = min(3600.0, max(0.0, min(upcoming) - now)) if upcoming else 3600.0
        try:
            msg: object | None = self.inbox.get(timeout=timeout)
        except queue.Empty:
            msg = None
        now = time.monotonic()
        had_input = msg is not None
        while (signum := self.inbox.take_signal()) is not None:
            had_input = True
            self.handle(Stop(EXIT_OK, _signal_name(signum)), now)
        while msg is not None:
            try:
                self.handle(msg, now)
            except Exception as exc:  # one bad message must never stop the panel
                log.exception("error handling %s", type(msg).__name__)
                self.report_error(f"internal error handling {type(msg).__name__}: {exc}")
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                msg = None
        # The parts' time-driven work runs after any message, when one of their deadlines
        # is due, and at least every QUIET_TICK_S while the loop turns; a frame of the
        # ticker alone (60 a second) skips it: nothing of theirs can have changed.
        if (had_input or self._parts_due is None or now >= self._parts_due
                or now - self._full_tick_at >= QUIET_TICK_S):
            try:
                self.tick(now)
            except Exception as exc:
                log.exception("error in the timed work")
                self.report_error(f"internal error: {exc}")
        self.flush_held_events(now)
        self.draw(now)
        if not self.alerts.body_pending():  # see AlertPart.changed and body_pending
            self.alerts.save_if_unsaved()
            self.trust.save_if_unsaved()
        self.output.flush(now)
        if getattr(self.output, "ready", None) is not None:
            self.display_arrived(now)
        self.ops.after_step(now)

    def display_arrived(self, now: float) -> None:
        """The screen that was missing at start is here: draw everything on it."""
        self.output = self.output.ready
        self.build_renderer()
        self.content.reload()
        self.alerts.layout_changed()
        self.screen.display_changed()
        self.ops.display_changed()
        self.tick(now)
        self.draw(now)

    def close(self) -> None:
        for part in (self.ops, self.screen, self.alerts, self.content):
            try:
                part.close()
            except Exception:
                log.exception("error while closing")
        if self.renderer is not None:
            self.renderer.close()
            self.images.close()
        if self.output is not None:
            self.output.close()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def bundled_dir() -> Path:
    """The bundled demo content: the checkout's ``content/demo``, else the installed copy."""
    here = Path(__file__).resolve().parent
    for path in (here.parent / "content" / "demo", here / "data" / "demo"):
        if (path / "playlist.json").is_file():
            return path
    raise FileNotFoundError("bundled demo content is missing from this installation")

"""The Player: owns the main loop, pygame and all display state.

Other threads (MQTT, asset fetches, sensor sampling, signals) never touch the
display: they put small, already-validated messages on :attr:`Player.inbox`.
The loop blocks on that inbox until the next deadline (slide end, animation
frame, clock minute, heartbeat, alert expiry, watchdog), so a still picture
costs no CPU and a message is acted on, and drawn, as soon as it arrives.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .content import ImageSlide, Playlist, parse_playlist
from .errors import AssetError, ContentError, DisplayUnavailable, PanelError
from .layout import Layout, load_layout
from .playlists import Candidate, PlaylistManager
from .schedule import Rotation
from .store import StateStore

log = logging.getLogger("panel-player")

EXIT_OK = 0
EXIT_RESTART = 75  # the `restart` command: systemd's Restart=always starts us again


def bundled_dir() -> Path:
    """The bundled demo content: the checkout's ``content/demo``, else the installed copy."""
    here = Path(__file__).resolve().parent
    for path in (here.parent / "content" / "demo", here / "data" / "demo"):
        if (path / "playlist.json").is_file():
            return path
    raise FileNotFoundError("bundled demo content is missing from this installation")


@dataclass(frozen=True)
class Stop:
    """Ask the loop to end (signal handler, tests)."""

    code: int = EXIT_OK
    reason: str = "stop requested"


@dataclass(frozen=True)
class Call:
    """Run ``fn`` on the main loop (used by worker threads to hand results over)."""

    fn: Callable[[], None]


class Player:
    """The panel's main loop. ``run()`` returns the process exit status.

    Example::

        player = Player(load_config(Path("config.yaml")))
        signal.signal(signal.SIGTERM, lambda *_: player.stop())
        sys.exit(player.run())
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.inbox: queue.Queue[object] = queue.Queue()
        self.tz = cfg.panel.tz()
        self.started = time.monotonic()
        self.exit_code: int | None = None
        self.store = StateStore(cfg.state_dir, cfg.storage.asset_quota_mb * 2**20)
        self.bundled = bundled_dir()
        self.layout_name = cfg.display.layout
        self.layout: Layout = load_layout(self.layout_name)
        self.playlists = PlaylistManager(cfg.panel.groups, self.has_asset, cfg.storage.asset_wait_s)
        self.rotation = Rotation(())
        self.slide_started = 0.0
        self.slide_ends: float | None = None
        self.idle_until: float | None = None
        self.frames = 0
        self.fps_window: list[float] = []
        self.errors: list[str] = []
        self.renderer: Any = None
        self.output: Any = None
        self.first_frame_at: float | None = None
        self._on_frame: list[Callable[[float], None]] = []

    # -- assets ---------------------------------------------------------
    def asset_path(self, sha: str) -> Path | None:
        """Where an asset's verified bytes are: the asset store, else the bundled content."""
        if self.store.assets.has(sha):
            return self.store.assets.path(sha)
        for candidate in self.bundled.glob(f"{sha}.*"):
            return candidate
        return None

    def has_asset(self, sha: str) -> bool:
        return self.asset_path(sha) is not None

    # -- start-up -------------------------------------------------------
    def initial_content(self) -> Candidate:
        """The last good persisted playlist, else the bundled demo content."""
        stored = self.store.load_playlist()
        if stored is not None:
            raw, meta = stored
            try:
                playlist = parse_playlist(raw)
                if all(self.has_asset(s) for s in playlist.assets()):
                    return Candidate(playlist, raw, "stored", time.monotonic(), origin=str(meta.get("source", "")))
                log.warning("stored playlist %s lacks assets; using the bundled content", playlist.id)
            except ContentError as exc:
                log.warning("stored playlist is invalid (%s); using the bundled content", exc)
        raw = (self.bundled / "playlist.json").read_bytes()
        return Candidate(parse_playlist(raw), raw, "bundled", time.monotonic())

    def open_display(self) -> None:
        from .render.compositor import Renderer
        from .render.images import ImageCache
        from .render.outputs import init_display, open_output

        d = self.cfg.display
        init_display(d.output, d.size)
        self.output = open_output(d.output, size=d.size, path=d.path, device=d.device, fps=d.fps,
                                  led=d.led, wait_s=d.wait_s)
        self.renderer = Renderer(
            self.output.size, self.layout, tz=self.tz, rotation=d.rotation, fps=d.fps,
            transition=d.transition, transition_s=d.transition_s, font=d.font, antialias=d.antialias,
            images=ImageCache(d.image_cache_mb * 2**20),
        )

    # -- content ---------------------------------------------------------
    def apply(self, cand: Candidate, now: float) -> None:
        """Switch the screen to a complete playlist."""
        playlist = cand.playlist
        layout_name = playlist.layout or self.cfg.display.layout
        if layout_name != self.layout_name:
            try:
                self.layout = load_layout(layout_name)
                self.layout_name = layout_name
                self.renderer.set_layout(self.layout)
            except PanelError as exc:
                self.report_error(f"playlist {playlist.id}: layout {layout_name}: {exc}")
        self.renderer.set_ticker(playlist.ticker, now)
        self.rotation.replace(playlist.slides)
        self.next_slide(now)

    def next_slide(self, now: float) -> None:
        """Advance to the next eligible slide, skipping those whose image cannot be shown."""
        wall = datetime.now(timezone.utc)
        for _ in range(max(1, len(self.rotation.slides))):
            slide = self.rotation.next(wall, self.tz)
            if slide is None:
                break
            path = None
            if isinstance(slide, ImageSlide):
                path = self.asset_path(slide.asset)
                if path is None:
                    self.report_error(f"slide {slide.id}: image sha256:{slide.asset} is missing")
                    continue
            try:
                self.renderer.show(slide, now, path)
            except AssetError as exc:
                self.report_error(f"slide {slide.id}: {exc}")
                continue
            self.slide_started = now
            self.slide_ends = now + slide.duration
            self.idle_until = None
            self.prefetch_next(wall)
            return
        # Nothing eligible: the idle screen until some slide may become eligible.
        self.renderer.show(None, now, None)
        self.slide_ends = None
        nxt = self.rotation.next_eligible(wall, self.tz)
        self.idle_until = now + max(1.0, (nxt - wall).total_seconds()) if nxt else now + 60.0

    def prefetch_next(self, wall: datetime) -> None:
        peek = getattr(self.rotation, "peek", None)
        slide = peek(wall, self.tz) if peek else None
        if isinstance(slide, ImageSlide):
            path = self.asset_path(slide.asset)
            if path is not None:
                self.renderer.prefetch(slide, path)

    def report_error(self, reason: str) -> None:
        log.error("%s", reason)
        if reason not in self.errors:
            self.errors.append(reason)
            del self.errors[:-20]

    # -- loop -----------------------------------------------------------
    def stop(self, code: int = EXIT_OK, reason: str = "stop requested") -> None:
        """Thread- and signal-safe request to end the loop."""
        self.inbox.put(Stop(code, reason))

    def deadlines(self, now: float, wall: datetime) -> list[float]:
        found = [t for t in (self.slide_ends, self.idle_until, self.playlists.asset_deadline()) if t is not None]
        nxt = self.renderer.next_deadline(now, wall)
        if nxt is not None:
            found.append(nxt)
        out = self.output.next_deadline()
        if out is not None:
            found.append(out)
        return found

    def handle(self, msg: object, now: float) -> None:
        if isinstance(msg, Stop):
            self.exit_code = msg.code
            log.info("stopping: %s", msg.reason)
        elif isinstance(msg, Call):
            msg.fn()
        else:
            log.warning("unexpected inbox item %r", type(msg).__name__)

    def tick(self, now: float) -> None:
        """Time-driven work: slide rotation, playlist decisions."""
        if (self.slide_ends is not None and now >= self.slide_ends) or (
                self.idle_until is not None and now >= self.idle_until):
            self.next_slide(now)
        decision = self.playlists.poll(now)
        if decision.apply is not None:
            self.apply(decision.apply, now)

    def draw(self, now: float) -> None:
        wall = datetime.now(timezone.utc)
        result = self.renderer.render(now, wall)
        if result is None:
            return
        frame, dirty = result
        shown_at = self.output.show(frame, dirty)
        self.frames += 1
        self.fps_window.append(now)
        if self.first_frame_at is None:
            self.first_frame_at = now
        callbacks, self._on_frame = self._on_frame, []
        for fn in callbacks:
            fn(shown_at)

    def measured_fps(self, now: float) -> float | None:
        """Frames actually handed to the output per second over the last 5 s (0 for a still picture)."""
        self.fps_window = [t for t in self.fps_window if now - t <= 5.0]
        span = min(5.0, now - self.started)
        return round(len(self.fps_window) / span, 1) if span > 0.5 else None

    def run(self) -> int:
        """Run until stopped; returns the exit status (0, or 75 for a restart)."""
        self.open_display()
        start = self.initial_content()
        self.playlists.start_with(start)
        now = time.monotonic()
        self.apply(start, now)
        self.draw(now)
        log.info("panel %s showing %s v%s", self.cfg.panel.id, start.playlist.id, start.playlist.version)
        try:
            while self.exit_code is None:
                now = time.monotonic()
                wall = datetime.now(timezone.utc)
                upcoming = self.deadlines(now, wall)
                timeout = max(0.0, min(upcoming) - now) if upcoming else 3600.0
                try:
                    msg = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    msg = None
                now = time.monotonic()
                while msg is not None:
                    try:
                        self.handle(msg, now)
                    except Exception:  # one bad message must never stop the panel
                        log.exception("error handling %r", type(msg).__name__)
                        self.report_error(f"internal error handling {type(msg).__name__}")
                    try:
                        msg = self.inbox.get_nowait()
                    except queue.Empty:
                        msg = None
                self.tick(now)
                self.draw(now)
                self.output.flush(now)
        finally:
            self.close()
        return self.exit_code or EXIT_OK

    def close(self) -> None:
        if self.output is not None:
            self.output.close()


def current_playlist_identity(playlist: Playlist | None) -> dict[str, Any] | None:
    return None if playlist is None else playlist.identity()


def version_string() -> str:
    return f"panel-player {__version__}"


__all__ = ["Player", "Stop", "Call", "EXIT_RESTART", "DisplayUnavailable"]

"""Playlists on the main loop: precedence, assets, persistence, slide rotation.

A received playlist is validated, then applied only once every asset it needs
is on disk and verified (CONTRACT §4); until then the screen keeps what it
shows. Applied playlists are persisted before they are shown, so a power cut at
any moment leaves the old one or the new one, complete.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import known_layouts
from .content import ImageSlide, Playlist, parse_playlist
from .errors import AssetError, ContentError
from .playlists import Candidate, PlaylistManager
from .render.compositor import IMAGE_POLL_S
from .schedule import Rotation

if TYPE_CHECKING:
    from .app import Player

log = logging.getLogger("panel-player")

BUNDLED_PLAYLISTS = {"led-matrix": "playlist-led.json", "portrait": "playlist-portrait.json",
                     "landscape": "playlist.json"}
"""The bundled demo playlist for each panel shape (named by the layout that fits it)."""


class ContentPart:
    def __init__(self, player: Player) -> None:
        self.p = player
        cfg = player.cfg
        self.store = player.store
        from .app import bundled_dir

        self.bundled = bundled_dir()
        self.manager = PlaylistManager(cfg.panel.groups, self.has_asset, cfg.storage.asset_wait_s)
        self.rotation = Rotation(())
        self.slide_ends: float | None = None
        self.waiting = False  # an image slide waits for its picture (decoded in the background)
        self.on_screen: str | None = None  # the slide shown (the previous one while another waits)
        self.idle_until: float | None = None
        self.fetcher: Any = None
        self.requested: set[str] = set()
        self._wanted: set[str] | None = None
        self.broken: set[str] = set()  # assets that failed to decode: skipped until a new playlist
        self.layouts = known_layouts()

    # -- assets -----------------------------------------------------------
    def asset_path(self, sha: str) -> Path | None:
        """Where an asset's verified bytes are: the asset store, else the bundled content."""
        if self.store.assets.has(sha):
            return self.store.assets.path(sha)
        for candidate in self.bundled.glob(f"{sha}.*"):
            return candidate
        return None

    def has_asset(self, sha: str) -> bool:
        return self.asset_path(sha) is not None

    def url_for(self, sha: str) -> str | None:
        """The download URL of an asset, from the playlist waiting for it."""
        pending = self.manager.pending
        for slide in pending.playlist.slides if pending else ():
            if isinstance(slide, ImageSlide) and slide.asset == sha and slide.url:
                return slide.url
        return None

    # -- start ------------------------------------------------------------
    def initial(self) -> Candidate:
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
        raw = self.bundled_playlist().read_bytes()
        return Candidate(parse_playlist(raw), raw, "bundled", time.monotonic())

    def bundled_playlist(self) -> Path:
        """The bundled demo playlist made for this panel's shape: an LED matrix (or a
        panel as small), a portrait screen or a landscape one (:func:`~player.provision.layout_for`
        on the output, its size and the rotation), each with its own layout; the landscape
        one when an older installation lacks the variant."""
        from .provision import layout_for

        d = self.p.cfg.display
        renderer = self.p.renderer
        if renderer is not None:
            fit = layout_for(d.output, renderer.logical_size)  # already turned by the rotation
        else:
            fit = layout_for(d.output, d.size, d.rotation)
        path = self.bundled / BUNDLED_PLAYLISTS.get(fit, "playlist.json")
        return path if path.is_file() else self.bundled / "playlist.json"

    def start(self) -> None:
        first = self.initial()
        self.manager.start_with(first)
        self.show_playlist(first.playlist, time.monotonic())
        log.info("showing %s v%s (%s)", first.playlist.id, first.playlist.version, first.source)

    @property
    def playlist(self) -> Playlist | None:
        return self.manager.current.playlist if self.manager.current else None

    @property
    def slide_id(self) -> str | None:
        """The slide on screen (None: the idle screen, or the screen is off)."""
        return self.on_screen

    # -- messages -----------------------------------------------------------
    def handle(self, msg: object, now: float) -> bool:
        from .net.protocol import Fetched, Inbound, Rejected, event_playlist_rejected

        if isinstance(msg, Inbound) and msg.route.kind == "playlist":
            self.received(msg.route.scope, msg.route.name, msg.payload, now)
        elif isinstance(msg, Inbound) and msg.route.kind == "asset":
            if msg.payload:
                self.asset_arrived(msg.route.sha or "", msg.payload, now)
        elif isinstance(msg, Fetched):
            self.fetched(msg, now)
        elif isinstance(msg, Rejected) and getattr(msg.subject, "kind", None) == "playlist":
            self.p.event(event_playlist_rejected(f"{msg.topic}: {msg.reason}"))
        elif isinstance(msg, Rejected) and getattr(msg.subject, "kind", None) == "asset":
            self.p.report_error(f"asset refused on {msg.topic}: {msg.reason}")
        else:
            return False
        return True

    def received(self, scope: str, name: str | None, payload: bytes, now: float) -> None:
        from .net.protocol import event_playlist_rejected

        source = "panel" if scope == "panel" else f"group:{name}"
        if not payload:
            log.info("playlist cleared on %s", source)
            self.manager.received(source, None, b"", now)
            return
        try:
            playlist = parse_playlist(payload, max_bytes=self.p.cfg.mqtt.max_message_kb * 1024,
                                      layouts=self.layouts)
        except ContentError as exc:
            self.p.event(event_playlist_rejected("; ".join(exc.errors), _playlist_id(payload)))
            return
        self.manager.received(source, playlist, payload, now)

    def needed_assets(self) -> frozenset[str]:
        """Every asset still in use: playlists (current, pending, fall-back) and active alerts."""
        return self.manager.needed_assets() | self.p.alerts.assets()

    def asset_arrived(self, sha: str, data: bytes, now: float) -> None:
        if self.p.ops.update.asset_arrived(sha, data):
            return  # an update's bundle: stored and checked by the update agent
        if sha not in self.needed_assets():
            return  # not ours (another panel's playlist): nothing to store
        try:
            self.store.assets.put(sha, data)
        except (AssetError, OSError) as exc:
            self.p.report_error(f"asset sha256:{sha}: {exc}")
            return
        if sha in self.p.alerts.assets():
            self.p.alerts.dirty = True  # redraw the alert with its picture

    def fetched(self, msg: Any, now: float) -> None:
        from .net.protocol import event_playlist_rejected

        self.requested.discard(msg.sha)
        if msg.path is not None:
            try:
                self.store.assets.put_file(msg.sha, msg.path)
                return
            except (AssetError, OSError) as exc:
                reason = str(exc)
        else:
            reason = msg.reason or "download failed"
        pending = self.manager.pending
        if pending is not None and msg.sha in pending.missing:
            self.manager.give_up(pending)
            self.p.event(event_playlist_rejected(f"asset sha256:{msg.sha} from {msg.url}: {reason}",
                                                 pending.playlist.id))
        else:
            self.p.report_error(f"asset sha256:{msg.sha} from {msg.url}: {reason}")

    # -- time ---------------------------------------------------------------
    def tick(self, now: float, wall: datetime) -> None:
        from .net.protocol import event_playlist_rejected

        decision = self.manager.poll(now)
        for cand, reason in decision.rejected:
            self.p.event(event_playlist_rejected(reason, cand.playlist.id))
        for sha in decision.fetch - self.requested:
            self.request(sha)
        self.want_from_broker()
        if decision.apply is not None:
            self.apply(decision.apply, now)
        elif self.waiting:
            self.poll(now, wall)
        elif (self.slide_ends is not None and now >= self.slide_ends) or (
                self.idle_until is not None and now >= self.idle_until):
            self.next_slide(now)

    def deadlines(self, now: float, wall: datetime) -> list[float | None]:
        # While an image slide waits, its picture is looked for as often as the renderer
        # looks (see Renderer.next_deadline): the loop ticks this part then.
        picture = now + IMAGE_POLL_S if self.waiting else None
        return [self.slide_ends, self.idle_until, self.manager.asset_deadline(), picture]

    def pause(self) -> None:
        """The screen is off: no slide turns (and no image is decoded) until :meth:`resume`."""
        self.slide_ends = self.idle_until = None
        self.waiting = False
        self.on_screen = None

    def resume(self, now: float) -> None:
        """The screen is back on: the next slide, with its full duration."""
        self.next_slide(now)

    def request(self, sha: str) -> None:
        """Ask for a missing asset: download it when the playlist gives a URL, else wait for its topic."""
        url = self.url_for(sha)
        if url is None:
            return  # it comes retained on P/assets/SHA, to which the link is subscribed
        if self.fetcher is None:
            from .net.fetch import Fetcher

            s = self.p.cfg.storage
            self.fetcher = Fetcher(self.store.assets.root, self.p.inbox.put, timeout=s.fetch_timeout_s,
                                   max_bytes=s.fetch_max_mb * 2**20)
        if self.fetcher.submit(url, sha):
            self.requested.add(sha)

    def want_from_broker(self) -> None:
        """Subscribe to the asset topics of what the pending playlist still misses (no URL)."""
        link = self.p.link
        if link is None:
            return
        pending = self.manager.pending
        wanted = {sha for sha in (pending.missing if pending else ()) if self.url_for(sha) is None}
        wanted |= {sha for sha in self.p.alerts.assets() if not self.has_asset(sha)}
        wanted |= self.p.ops.update.wanted()  # an update's parts, beside the playlists' assets
        if wanted != self._wanted:
            self._wanted = wanted
            link.want_assets(wanted)

    def reload(self) -> None:
        """Show the current playlist again from its first slide (after a config reload)."""
        if self.manager.current is not None:
            self.show_playlist(self.manager.current.playlist, time.monotonic())

    def apply(self, cand: Candidate, now: float) -> None:
        """Persist, then show, a complete playlist."""
        from .net.protocol import event_playlist_applied

        if cand.source not in ("stored", "bundled"):
            try:
                self.store.save_playlist(cand.raw, {"source": cand.source,
                                                    "applied_at": datetime.now(timezone.utc).isoformat()})
            except OSError as exc:
                self.p.report_error(f"cannot persist playlist {cand.playlist.id}: {exc}")
        self.show_playlist(cand.playlist, now)
        try:  # before the event: once it is out, the store holds only what is referenced
            removed = self.store.assets.collect(self.needed_assets())
            if removed:
                log.info("removed %d unreferenced assets", len(removed))
        except OSError as exc:
            log.warning("asset clean-up failed: %s", exc)
        self.p.event(event_playlist_applied(cand.playlist.id, cand.playlist.version))
        self.p.ops.notable("playlist applied")

    def show_playlist(self, playlist: Playlist, now: float) -> None:
        self.broken.clear()
        self.p.renderer.retain_images(playlist.assets())  # the old playlist's pictures go
        self.p.set_layout(playlist.layout or self.p.cfg.display.layout)
        self.p.renderer.set_ticker(playlist.ticker, now)
        self.rotation.replace(playlist.slides)
        self.next_slide(now)
        if self.p.screen.asleep:
            self.pause()

    def next_slide(self, now: float) -> None:
        """Advance to the next eligible slide, skipping those whose image cannot be shown."""
        wall = datetime.now(timezone.utc)
        tz = self.p.tz
        for _ in range(max(1, len(self.rotation.slides))):
            slide = self.rotation.next(wall, tz)
            if slide is None:
                break
            path = None
            if isinstance(slide, ImageSlide):
                if slide.asset in self.broken:
                    continue
                path = self.asset_path(slide.asset)
                if path is None:
                    self.p.report_error(f"slide {slide.id}: image sha256:{slide.asset} is missing")
                    continue
            try:
                # Never decodes here: a picture not decoded yet is waited for (see poll).
                shown = self.p.renderer.show(slide, now, path, wait=False)
            except AssetError as exc:
                if isinstance(slide, ImageSlide):
                    self.broken.add(slide.asset)
                self.p.report_error(f"slide {slide.id}: {exc}")
                continue
            self.idle_until = None
            if shown:
                self.slide_ends = now + slide.duration
                self.waiting = False
                self.on_screen = slide.id
                self.prefetch(wall)
            else:
                self.slide_ends = None  # its time starts when its picture is on screen
                self.waiting = True
            return
        self.waiting = False
        self.on_screen = None
        # Nothing eligible: the idle screen until some slide may become eligible.
        self.p.renderer.show(None, now, None)
        self.slide_ends = None
        nxt = self.rotation.next_eligible(wall, tz)
        self.idle_until = now + min(3600.0, max(1.0, (nxt - wall).total_seconds())) if nxt else now + 3600.0

    def poll(self, now: float, wall: datetime) -> None:
        """Show the slide waiting for its picture once it is decoded; its time starts then.
        The screen keeps its picture meanwhile (ticker, clock and alerts run on)."""
        slide = self.p.renderer.waiting
        if slide is None:  # no longer waited for (another screen came and went): move on
            self.waiting = False
            self.next_slide(now)
            return
        try:
            shown = self.p.renderer.poll(now)
        except AssetError as exc:
            self.waiting = False
            self.broken.add(slide.asset)
            self.p.report_error(f"slide {slide.id}: {exc}")
            self.next_slide(now)
            return
        if shown:
            self.waiting = False
            self.slide_ends = now + slide.duration
            self.on_screen = slide.id
            self.prefetch(wall)

    def prefetch(self, wall: datetime) -> None:
        slide = self.rotation.peek(wall, self.p.tz)
        if isinstance(slide, ImageSlide):
            path = self.asset_path(slide.asset)
            if path is not None:
                self.p.renderer.prefetch(slide, path)

    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.close()


def _playlist_id(payload: bytes) -> str | None:
    """The ``id`` of a rejected playlist when it can be read, for the event."""
    import json

    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None

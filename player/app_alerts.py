"""Alerts on the main loop (CONTRACT §5): the board, the screen, the events, persistence.

An alert message is parsed as it is taken from the inbox, put on the board,
and the overlay is set in the same loop pass, so the next frame drawn (the one
right after its arrival) shows it. ``alert.displayed`` carries the moment the
frame with the whole alert (its title and its body: on a full screen the body comes
one frame after the title) was handed to the output, and ``title_at`` the moment of
the first frame showing it. Active alerts are stored atomically at every
change, so they are on screen again at once after a restart or a power cut.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .alertboard import AlertBoard
from .alerts import Alert, Cancel, parse_alert_message
from .errors import AssetError, ContentError
from .memory import release_free_memory
from .render.compositor import IMAGE_POLL_S

if TYPE_CHECKING:
    from .app import Player

log = logging.getLogger("panel-player")

SYNC_WAIT_S = 10.0  # after a (re)connection, how long the broker has to deliver its retained alerts


class AlertPart:
    def __init__(self, player: Player) -> None:
        self.p = player
        self.cfg = player.cfg.alerts
        self.board = AlertBoard(self.cfg.turn_seconds, groups=player.cfg.panel.groups)
        self.view: Any = None
        self.shown: Alert | None = None  # what the overlay shows now
        self.acknowledged: set[tuple[str, str, str]] = set()  # alerts whose alert.displayed went out
        self.title_shown: dict[tuple[str, str, str], float] = {}  # not yet acknowledged: its first frame
        self.unsaved = False  # the board changed since it was last stored
        self.stored_empty = False  # the last save wrote an empty list (unknown at start: False)
        self.dirty = True
        # Reconciliation with the broker after each (re)connection (see synced()).
        self.synced_connection = 0  # the last connection whose retained messages were all in
        self.sync_deadline: float | None = None
        self.unconfirmed: set[tuple[str, str, str]] = set()  # kept, though the broker may have lost them
        self.image_wait: tuple[object, object] | None = None  # (alert key, cache key) of a picture being decoded
        self.told_link: set[str] | None = None  # the alert topics last given to link.want_alerts

    # -- start ----------------------------------------------------------------
    def start(self) -> None:
        from .hw.health import clock_synced

        records = self.p.store.load_alerts()
        if records:
            self.board = AlertBoard.from_records(records, time.monotonic(), datetime.now(timezone.utc),
                                                 bool(clock_synced()), turn_seconds=self.cfg.turn_seconds,
                                                 groups=self.p.cfg.panel.groups)
            log.info("restored %d active alerts", len(self.board.active()))
            for alert in self.board.active():
                if not self.p.trust.trusted(alert.signed_by):
                    # trust.keys or trust.require changed since it was stored: no longer believed.
                    self.board.cancel(alert.id, alert.scope, alert.scope_name)
                    self.unsaved = True
                    log.warning("stored alert %s dropped: %s", alert.id,
                                f"its key {alert.signed_by!r} is no longer trusted" if alert.signed_by
                                else "unsigned, and trust.require now names alerts")
        self.dirty = True

    def warm_up(self) -> None:
        """Build the alert screen once before the first frame, so the first real alert is not slowed by it."""
        from .alerts import Alert

        sample = Alert(id="warm-up", scope="all", scope_name="", level="critical", title="ALERTE",
                       body="Évacuez les berges avant 18 h.")
        view = self._view()
        view.set_alerts(sample, 1, 0, None, time.monotonic(), mode="fullscreen")
        view.draw(self.p.renderer.scratch(), time.monotonic(), datetime.now(timezone.utc))
        view.set_alerts(None, 0, 0, None, time.monotonic())
        # The screen's working buffers (large lines of text, the band's tiles) are freed by
        # now but would stay in the heap's middle, below what is allocated next.
        release_free_memory()

    def layout_changed(self) -> None:
        self.view = None
        self.shown = None
        self.dirty = True

    def assets(self) -> frozenset[str]:
        """The images of the active alerts."""
        return frozenset(a.asset for a in self.board.active() if a.asset)

    def ids(self) -> list[str]:
        return sorted({a.id for a in self.board.active()})

    def unconfirmed_ids(self) -> list[str]:
        active = {a.key for a in self.board.active()}
        return sorted({key[2] for key in self.unconfirmed & active})

    # -- reconciliation with the broker -------------------------------------------------
    def link_connected(self, now: float, connection: int) -> None:
        """The broker has until the deadline to confirm what it holds for this connection."""
        if connection > self.synced_connection:
            self.sync_deadline = now + SYNC_WAIT_S

    def synced(self, remembered: bool, topics: frozenset[str], now: float, connection: int = 0) -> None:
        """Every retained alert of a connection is in (``topics``: the alert topics the
        broker delivered something on). An active alert the broker no longer holds was
        cancelled while the panel was away, if the broker kept its retained messages;
        otherwise the panel cannot know, keeps it until it expires, and says so."""
        from .net.protocol import event_error

        self.synced_connection = max(self.synced_connection, connection)
        self.sync_deadline = None
        seen = {a.key for a in self.board.active() if self.topic_of(a) in topics}
        gone = [a for a in self.board.active() if a.key not in seen]
        self.unconfirmed &= {a.key for a in self.board.active()}
        self.unconfirmed -= seen
        if not gone:
            return
        if remembered:
            for alert in gone:
                log.warning("alert %s ended: cancelled while this panel was offline (the broker no longer "
                            "holds it)", alert.id)
                self.ended(self.board.cancel(alert.id, alert.scope, alert.scope_name), "cancelled")
            return
        fresh = [a for a in gone if a.key not in self.unconfirmed]
        self.unconfirmed |= {a.key for a in gone}
        for alert in fresh:
            self.p.event(event_error(
                f"alert {alert.id}: not confirmed by the broker, which holds no retained message for it and "
                "may have lost them (restarted without persistence); kept until it expires or is cancelled"))
        if fresh:
            self.p.ops.notable("alerts unconfirmed")

    # -- messages ---------------------------------------------------------------
    def handle(self, msg: object, now: float) -> bool:
        from .net.protocol import Inbound, Rejected, RetainedSynced, event_alert_rejected

        if isinstance(msg, RetainedSynced):
            self.synced(msg.remembered, msg.alert_topics, now, msg.connection)
            return True

        if isinstance(msg, Inbound) and msg.route.kind == "alert":
            self.received(msg.route.scope, msg.route.name or "", msg.route.alert or "", msg.payload,
                          msg.retained, now, msg.signed_by)
            return True
        if isinstance(msg, Rejected) and getattr(msg.subject, "kind", None) == "alert":
            self.p.event(event_alert_rejected(getattr(msg.subject, "alert", None) or msg.topic, msg.reason))
            return True
        if isinstance(msg, Rejected) and isinstance(msg.subject, str):
            alert_id = _alert_topic_leaf(msg.subject, self.p.cfg.mqtt.prefix)
            if alert_id is not None:  # an alert topic whose id level itself was refused
                self.p.event(event_alert_rejected(alert_id, msg.reason))
                return True
        return False

    def received(self, scope: str, name: str, alert_id: str, payload: bytes, retained: bool, now: float,
                 signed_by: str | None = None) -> None:
        from .net.protocol import event_alert_rejected

        wall = datetime.now(timezone.utc)
        if not payload:
            self.ended(self.board.cancel(alert_id, scope, name), "cancelled")
            return
        try:
            result = parse_alert_message(alert_id, scope, name, payload, now=wall, config=self.cfg,
                                         location=self.p.cfg.panel.location,
                                         max_bytes=self.p.cfg.mqtt.max_message_kb * 1024)
        except ContentError as exc:
            self.p.event(event_alert_rejected(alert_id, "; ".join(exc.errors)))
            return
        if result is None:
            # Not for this panel's area: an earlier version of it ends here.
            self.ended(self.board.cancel(alert_id, scope, name), "cancelled")
            log.info("alert %s does not apply to this panel's location", alert_id)
            return
        if isinstance(result, Cancel):
            self.ended(self.board.apply_cancel(result), "cancelled")
            return
        if signed_by is not None:
            result = dataclasses.replace(result, signed_by=signed_by)
        status, replaced = self.board.apply_replacing(result, now, wall, retained=retained)
        self.ended(replaced, "cancelled")
        if status in ("added", "updated"):
            self.acknowledged.discard(result.key)
            self.title_shown.pop(result.key, None)
            self.unconfirmed.discard(result.key)
            log.warning("alert %s %s: %s %s", result.id, status, result.level, result.title)
            self.changed()

    def ended(self, alerts: list[Alert], reason: str) -> None:
        from .net.protocol import event_alert_ended

        if not alerts:
            return
        for alert in alerts:
            self.acknowledged.discard(alert.key)
            self.title_shown.pop(alert.key, None)
            if reason == "expired":
                self.p.trust.alert_ended(self.topic_of(alert))
            if not self.board.is_active(alert.id):
                self.p.event(event_alert_ended(alert.id, reason))
        self.changed()

    def tell_link(self) -> None:
        """Give the link the exact topics of the active alerts: its next connection subscribes to
        them, so that their retained messages come back before the sync marker on any broker."""
        link = self.p.link
        if link is None or not hasattr(link, "want_alerts"):
            return
        topics = {self.topic_of(a) for a in self.board.active()}
        if topics != self.told_link:
            self.told_link = topics
            link.want_alerts(topics)

    def changed(self) -> None:
        self.tell_link()
        self.dirty = True
        # Stored once the frame showing the change is out (fsync takes milliseconds, tens
        # on an SD card: people in the street come first): by the loop right after it
        # draws, or earlier, by _displayed, so that an acknowledged alert is on disk.
        self.unsaved = True
        self.p.ops.notable("alerts changed")

    def save_if_unsaved(self) -> None:
        if self.unsaved:
            self.save()

    def body_pending(self) -> bool:
        """The title of the alert on screen is out and its body comes with the next frame,
        in the next loop pass: storing now (fsyncs, tens of ms on an SD card) would hold
        the body back. ``alert.displayed`` stores first, so nothing goes unsaved."""
        alert = self.shown
        return (alert is not None and alert.key in self.title_shown and alert.key not in self.acknowledged
                and self.p.screen.visible())  # dark meanwhile: no body frame comes, store now

    def save(self) -> None:
        from .hw.health import clock_synced

        self.unsaved = False
        # The replay guard first: a power cut between the two saves must not leave the new
        # alerts (a cancel applied) with the old guard, which would let the cancelled alert's
        # signed message back in. The other way round, the alert comes back from disk and
        # ends again at the reconnection, when the retained signed cancel arrives.
        self.p.trust.save_if_unsaved()
        records = self.board.to_records(time.monotonic(), datetime.now(timezone.utc),
                                        clock_synced=bool(clock_synced()))
        try:
            self.p.store.save_alerts(records)
        except OSError as exc:
            self.stored_empty = False
            self.p.report_error(f"cannot persist alerts: {exc}")
            return
        self.stored_empty = not records

    def refresh_stored(self) -> None:
        """Store the alerts again so that the ttl remaining on disk stays close to the truth
        (each heartbeat); with none held and none stored there is nothing to refresh, and
        the two fsyncs are spared."""
        if self.unsaved or not self.stored_empty or self.board.active():
            self.save()

    # -- time ---------------------------------------------------------------------
    def tick(self, now: float, wall: datetime) -> None:
        if self.sync_deadline is not None and now >= self.sync_deadline:
            log.warning("the broker did not confirm its retained messages within %g s", SYNC_WAIT_S)
            self.synced(False, frozenset(), now)  # no marker back (an ACL refusing it?): cannot know
        self.ended(self.board.expire(now, wall), "expired")
        current = self.board.current(now)
        if current != self.shown or self.dirty or self._image_ready():
            self.show(current, now)

    def deadlines(self, now: float, wall: datetime) -> list[float | None]:
        picture = now + IMAGE_POLL_S if self.image_wait is not None else None
        return [self.board.next_deadline(now, wall), self.sync_deadline, picture]

    def show(self, alert: Alert | None, now: float) -> None:
        self.dirty = False
        self.shown = alert
        if alert is None:
            self.p.ops.overlay_changed(None)
            return
        view = self._view()
        same_level = [a for a in self.board.active() if a.level == alert.level]
        index = next((i for i, a in enumerate(self._turn_order(same_level)) if a.key == alert.key), 0)
        mode = "banner" if alert.level == "info" and self.cfg.info_mode == "banner" else "fullscreen"
        view.set_alerts(alert, len(same_level), index, self._image(alert), now, mode=mode)
        self.p.ops.overlay_changed(view)

    def frame_shown(self, shown_at: float) -> None:
        """A frame went to the display (``shown_at``: when it was handed over).
        ``alert.displayed`` goes out for the alert on it the first time a person in the
        street could see all of it: a working display, on and lit, and the whole alert
        on that frame (:attr:`AlertView.complete`: a full screen adds the body one frame
        after the title). The first such frame with any of it is ``title_at``."""
        alert = self.shown
        if alert is None or alert.key in self.acknowledged or not self.p.screen.visible():
            return
        title_at = self.title_shown.setdefault(alert.key, shown_at)
        if self.view is not None and not getattr(self.view, "complete", True):
            return  # the title is out; the body comes on the next frame
        self.acknowledged.add(alert.key)
        del self.title_shown[alert.key]
        self._displayed(alert, shown_at, title_at)

    def topic_of(self, alert: Alert) -> str:
        """The topic ``alert`` came on (the protocol's own topic builders)."""
        from .net.topics import Topics

        topics = Topics(self.p.cfg.mqtt.prefix)
        if alert.scope == "panel":
            return topics.panel_alert_of(alert.scope_name, alert.id)
        if alert.scope == "group":
            return topics.group_alert(alert.scope_name, alert.id)
        return topics.all_alert(alert.id)

    def _view(self) -> Any:
        if self.view is None:
            from .render.alert_view import AlertView
            from .render.fonts import screen_style

            d = self.p.cfg.display
            font, led = screen_style(self.p.renderer.logical_size, d.font or self.p.layout.font,
                                     ledmatrix=d.output == "ledmatrix", layout_antialias=self.p.layout.antialias)
            ticker = self.p.layout.zone("ticker")
            band = ticker.rect[3] if ticker is not None else None
            mono = d.led.colors == "mono"  # levels told apart by frame and inverse video, not colour
            try:
                self.view = AlertView(font, antialias=d.antialias, flash=self.cfg.flash,
                                      led=led, banner_fraction=band, on_error=self._screen_failed, mono=mono)
            except Exception as exc:  # the alert must be shown all the same: pygame's own font
                log.exception("alert screen with the configured font")
                self._screen_failed(f"alert screen: {type(exc).__name__}: {exc}; pygame's bundled font used")
                self.view = AlertView(None, antialias=d.antialias, flash=self.cfg.flash, led=led,
                                      banner_fraction=band, on_error=self._screen_failed, mono=mono)
        return self.view

    def _screen_failed(self, reason: str) -> None:
        """The alert screen fell back to its minimal form (or its font): tell the crews."""
        self.p.report_error(reason)

    def _turn_order(self, alerts: list[Alert]) -> list[Alert]:
        return alerts

    def _displayed(self, alert: Alert, shown_at: float, title_at: float) -> None:
        from .net.protocol import event_alert_displayed

        self.save_if_unsaved()
        brightness = self.p.ops.brightness
        ctl = self.p.ops.brightness_ctl
        below = bool(self.cfg.wakes(alert.level) and ctl is not None and ctl.below_floor)
        self.p.event(event_alert_displayed(alert.id, datetime.fromtimestamp(shown_at, timezone.utc),
                                           brightness=brightness, below_floor=below, title_at=title_at))
        if below:
            self.p.report_error(f"alert {alert.id} shown at {brightness} %, below alerts.min_brightness "
                                f"{self.cfg.min_brightness} %: the panel is too hot (thermal derating)")

    def _image(self, alert: Alert) -> Any:
        """The alert's picture as a surface when it is decoded; None meanwhile (or when it
        has none). Decoding runs in the picture cache's thread, never here: the alert goes
        on screen at once without its picture, which joins it once decoded (see tick)."""
        if not alert.asset:
            return None
        try:
            path = self.p.content.asset_path(alert.asset)
            if path is None:
                self.p.report_error(f"alert {alert.id}: image sha256:{alert.asset} is not on this panel",
                                    publish=False)
                return None
            w, h = self.p.renderer.logical_size
            key = ("alert", alert.asset, (w // 3, h // 3))
            picture = self.p.images.get(key)
            if picture is None:
                self.p.images.prefetch(key, path, (w // 3, h // 3), "contain", (0, 0, 0), urgent=True)
                self.image_wait = (alert.key, key)
            return picture
        except AssetError as exc:
            self.p.report_error(f"alert {alert.id}: {exc}")
        except Exception as exc:  # an image must never keep the alert off the screen
            log.exception("alert %s: image", alert.id)
            self.p.report_error(f"alert {alert.id}: image sha256:{alert.asset}: {type(exc).__name__}: {exc}")
        return None

    def _image_ready(self) -> bool:
        """Whether the picture the alert on screen waits for is decoded (or failed: it is
        reported by :meth:`_image` and the alert stays without it)."""
        if self.image_wait is None:
            return False
        alert_key, key = self.image_wait
        if self.shown is None or self.shown.key != alert_key:
            self.image_wait = None  # another alert's turn: its own picture is asked for then
            return False
        if self.p.images.pending(key):
            return False
        self.image_wait = None
        return True

    def close(self) -> None:
        pass


def _alert_topic_leaf(topic: str, prefix: str) -> str | None:
    """The last level of a topic shaped like an alert topic (``P/panels/X/alerts/A``,
    ``P/groups/X/alerts/A``, ``P/all/alerts/A``); ``None`` for any other topic."""
    if not topic.startswith(prefix + "/"):
        return None
    levels = topic[len(prefix) + 1:].split("/")
    if (len(levels) == 4 and levels[0] in ("panels", "groups") and levels[2] == "alerts") or (
            len(levels) == 3 and levels[:2] == ["all", "alerts"]):
        return levels[-1][:200]
    return None

"""The console's MQTT side: what the panels publish into the fleet and the history,
and what the operators send out to the panels.

One long-lived :class:`~player.ctl.client.CtlClient` (clean session) subscribes to
every panel's ``online``, ``heartbeat``, ``events`` and ``screenshot`` topics. Its
network thread only queues the messages; one dispatcher thread hands them to the
:class:`~player.console.fleet.Fleet` and the :class:`~player.console.history.History`,
writes screenshots, and ticks the fleet every few seconds (stale panels). When the
connection is lost (broker restart, network), a supervisor thread connects a new
client and subscribes again, waiting 1 s, then 2, 4… up to 30 s between attempts; the
broker's retained ``online``/``heartbeat`` messages then bring the fleet up to date.

It connects as panelctl does (``protocol``: MQTT 5, 3.1.1 or auto). On a broker that
delivers retained messages only to exact-topic subscriptions (RabbitMQ), the initial
fleet comes from the fleet index ``P/fleet``: at each connection a short second client
reads it and the exact ``online``/``heartbeat`` topics of every panel it lists
(:func:`player.ctl.status.read_retained_fleet`) before the wildcards are subscribed.
The console keeps the indexes as panelctl does, through the same functions: a panel
heard that the index does not list is added (:func:`~player.ctl.status.note_panels`,
at most every few seconds), and every alert sent or cancelled updates the alert index of
its scopes (:func:`~player.ctl.alerts.update_alert_indexes`).

What goes out is built and checked by panelctl's own code (:mod:`player.ctl.alerts`,
:mod:`player.ctl.push`, :mod:`player.ctl.signing`), so an alert or a playlist the
console sends is exactly what ``panelctl alert send`` / ``panelctl push`` would send,
signed the same way when a key is configured.

Example::

    bridge = Bridge(ctl_settings, fleet, history, Path("screens"), signer=None)
    bridge.start()
    report = bridge.send_alert(alert_id=None, level="warning", title="Crue", body="Quais fermés",
                               minutes=120, panels=[], groups=["berges"], everyone=False, user="marie")
    bridge.stop()
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import secrets
import tempfile
import threading
import time
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ContentError
from ..net.topics import PANEL_ID_PATTERN, Topics, TopicError
from ..ctl.alerts import Target, build_alert, check_json_alert, prepare_alert, update_alert_indexes
from ..ctl.client import CtlClient, CtlError, Message
from ..ctl.push import prepare_playlist, upload_assets
from ..ctl.settings import CtlSettings
from ..ctl.signing import Signer, seal
from ..ctl.status import note_panels, read_retained_fleet
from .fleet import Change, Fleet
from .history import History

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
TICK_EVERY = 5.0            # the fleet re-evaluates stale panels this often
INDEX_EVERY = 5.0           # new panels are added to the fleet index at most this often
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_MINUTES = 7 * 24 * 60   # an alert's lifetime from the console: at most a week
ID_SAFE = re.compile(r"[^a-z0-9]+")


def new_alert_id(title: str, now: float | None = None) -> str:
    """A readable, unique alert id of ``[a-z0-9-]`` only: ``crue-de-la-seine-20261203-1405-9f3a``."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    slug = ID_SAFE.sub("-", ascii_title).strip("-")[:30].strip("-") or "alert"
    stamp = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).strftime("%Y%m%d-%H%M")
    return f"{slug}-{stamp}-{secrets.token_hex(2)}"


class _Client(CtlClient):
    """A CtlClient that also says when its connection ends (it never reconnects by itself)."""

    def __init__(self, settings: CtlSettings, lost: threading.Event) -> None:
        super().__init__(settings, client_id=f"panel-console-{secrets.token_hex(6)}")
        self._lost = lost

    def _on_disconnect(self, *args: Any) -> None:
        super()._on_disconnect(*args)
        if self._logged_in:  # not the MQTT 5 attempt that auto-detection retries with 3.1.1
            self._lost.set()


class Bridge:
    """See the module documentation. ``start()`` returns at once; ``connected`` says whether
    the broker is reachable now. Sending while not connected raises :class:`CtlError`."""

    def __init__(self, settings: CtlSettings, fleet: Fleet, history: History | None,
                 screenshot_dir: Path, signer: Signer | None = None) -> None:
        self.settings = settings
        self.fleet = fleet
        self.history = history
        self.screenshot_dir = Path(screenshot_dir)
        self.signer = signer
        self.topics = Topics(settings.prefix)
        self.backoff_first, self.backoff_max = BACKOFF_FIRST, BACKOFF_MAX
        self.connects = 0  # successful (re)connections, for the tests and the metrics
        self._lock = threading.Lock()
        self._client: _Client | None = None
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._inbox: queue.Queue[Message | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._states: dict[str, str] = {}  # the last state recorded in the history, per panel
        self._indexed: set[str] = set()  # panels the fleet index lists (as far as this console knows)
        self._heard: set[str] = set()    # panels heard that it may not list yet (under _lock)
        self.index_every = INDEX_EVERY
        self._remove_listener = fleet.add_listener(self._on_change) if history is not None else None

    # -- running -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        with self._lock:
            return self._client is not None

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for target, name in ((self._supervise, "console-mqtt"), (self._dispatch, "console-inbox")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._lost.set()
        self._inbox.put(None)
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads = []
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def _filters(self) -> list[str]:
        return [self.topics.all_panels(leaf) for leaf in ("online", "heartbeat", "events", "screenshot")]

    def _supervise(self) -> None:
        delay = 0.0  # the first attempt, and the first after a loss, at once
        while not self._stop.is_set():
            if delay and self._stop.wait(delay):
                return
            lost = threading.Event()
            self._lost = lost
            client = _Client(self.settings, lost)
            try:
                client.connect()
                self._initial_fleet()
                client.listen(self._inbox.put)  # before subscribing: the retained messages go there too
                client.subscribe(self._filters())
            except (CtlError, OSError) as exc:
                client.close()
                delay = min(self.backoff_max, max(self.backoff_first, delay * 2))
                log.warning("console: cannot reach the broker at %s: %s (again in %g s)",
                            self.settings.address, exc, delay)
                continue
            with self._lock:
                self._client = client
            self.connects += 1
            log.info("console: connected to the broker at %s", self.settings.address)
            written = time.monotonic()
            while not lost.wait(0.5) and not self._stop.is_set():
                if time.monotonic() - written >= self.index_every:
                    written = time.monotonic()
                    self._keep_fleet_index()
            with self._lock:
                self._client = None
            client.close()
            if not self._stop.is_set():
                log.warning("console: lost the broker at %s; reconnecting", self.settings.address)
            delay = 0.0

    def _initial_fleet(self) -> None:
        """The retained online/heartbeat of every panel the fleet index lists, into the inbox first
        (a broker without retained messages on wildcards gives them only on exact topics)."""
        with CtlClient(self.settings) as reader:
            found, listed = read_retained_fleet(reader, self.settings.prefix)
        with self._lock:
            self._indexed = set(listed)
        now = time.monotonic()
        for topic, payload in sorted(found.items(), key=lambda item: (item[0].rsplit("/", 1)[0],
                                                                     not item[0].endswith("/online"))):
            self._inbox.put(Message(topic, payload, True, now))  # each panel's online before its heartbeat

    def _keep_fleet_index(self) -> None:
        """Add the panels heard since the last time to ``P/fleet`` (a short client of its own)."""
        with self._lock:
            new, self._heard = self._heard - self._indexed, set()
        if not new:
            return
        try:
            with CtlClient(self.settings) as writer:
                note_panels(writer, self.settings.prefix, new)
        except (CtlError, OSError) as exc:
            log.warning("console: the fleet index was not updated: %s", exc)
            with self._lock:
                self._heard |= new
            return
        with self._lock:
            self._indexed |= new

    def _dispatch(self) -> None:
        next_tick = time.monotonic() + TICK_EVERY
        while True:
            try:
                msg = self._inbox.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                msg = None
                if self._stop.is_set():
                    return
            else:
                if msg is None:
                    return
            if msg is not None:
                try:
                    self._handle(msg)
                except Exception:  # noqa: BLE001 - one bad message must not stop the console
                    log.exception("console: message on %s not handled", msg.topic)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_EVERY
                self.fleet.tick()

    # -- what the panels say -------------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        try:
            route = self.topics.parse(msg.topic)
        except TopicError:
            return
        panel = route.name
        if route.scope != "panel" or panel is None:
            return
        if panel not in self._indexed and route.kind in ("online", "heartbeat", "events"):
            with self._lock:
                self._heard.add(panel)
        if route.kind == "online":
            text = msg.payload.strip()
            self.fleet.on_online(panel, True if text == b"true" else False if text == b"false" else None)
        elif route.kind in ("heartbeat", "events"):
            data = _json_object(msg.payload)
            if data is None:
                return
            if route.kind == "heartbeat":
                self.fleet.on_heartbeat(panel, data)
                if self.history is not None:
                    self.history.record_heartbeat(panel, data)
            else:
                self.fleet.on_event(panel, data)
                if self.history is not None:
                    self.history.record_event(panel, data)
        elif route.kind == "screenshot":
            if not msg.payload.startswith(PNG_MAGIC):
                log.warning("console: the screenshot of %s is not a PNG; ignored", panel)
                return
            self._store_screenshot(panel, msg.payload)
            self.fleet.on_screenshot(panel, self.fleet.clock())

    def _store_screenshot(self, panel: str, png: bytes) -> None:
        """``screenshot_dir/<panel>.png``, replaced atomically (a page never reads half a file)."""
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{panel}.", suffix=".tmp", dir=self.screenshot_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            os.replace(tmp, self.screenshot_dir / f"{panel}.png")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _on_change(self, change: Change) -> None:
        """Fleet listener: each panel state change goes into the history (the online strip)."""
        if change.get("kind") != "panel" or self.history is None:
            return
        row = change["row"]
        panel, state = row["panel"], row["state"]
        with self._lock:
            if self._states.get(panel) == state:
                return
            self._states[panel] = state
        since = row.get("state_since")
        try:
            self.history.record_state(panel, since if isinstance(since, float) else self.fleet.clock(), state)
        except RuntimeError:  # the history is closed: the console is stopping
            pass

    # -- what the operators send ------------------------------------------------------------------
    def _connected_client(self) -> _Client:
        with self._lock:
            client = self._client
        if client is None:
            raise CtlError(f"not connected to the broker at {self.settings.address} (it is reconnecting); "
                           "nothing was sent, try again in a moment")
        return client

    def _check_size(self, sealed: dict[str, bytes]) -> None:
        limit = self.settings.max_message_kb * 1024
        for topic, data in sealed.items():
            if len(data) > limit:
                raise ContentError([f"{topic}: {len(data)} bytes, above the panels' mqtt.max_message_kb "
                                    f"({self.settings.max_message_kb} KiB)"], "message")

    def send_alert(self, *, alert_id: str | None, level: str, title: str, body: str | None,
                   minutes: float | None, panels: list[str], groups: list[str], everyone: bool,
                   user: str) -> dict[str, Any]:
        """Publish an alert, retained, to every target; its report (tracked as the panels answer).

        ``minutes``: how long it stays (the panels end it, the broker drops it, then); ``None``
        until cancelled. Raises :class:`ValueError` (a :class:`ContentError` listing every
        problem) for an invalid alert or target, :class:`CtlError` when the broker is out of reach.
        """
        if minutes is not None and (isinstance(minutes, bool) or not 0 < minutes <= MAX_MINUTES):
            raise ContentError([f"minutes: expected a number above 0 and at most {MAX_MINUTES}, got {minutes!r}"],
                               "alert")
        targets = ([Target("panel", p) for p in panels] + [Target("group", g) for g in groups]
                   + ([Target("all", "")] if everyone else []))
        if not targets:
            raise ContentError(["choose at least one panel, one group, or every panel"], "alert")
        now = datetime.now(timezone.utc)
        alert_id = alert_id if alert_id is not None else new_alert_id(title, now.timestamp())
        data = build_alert(level=level, title=title, body=body or None, ttl=None if minutes is None else minutes * 60,
                           expires=None, asset=None)
        for t in targets:
            t.topic(self.topics, alert_id)  # checks the id (no ".") and the names
        parsed = check_json_alert(alert_id, targets, data, now=now)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        client = self._connected_client()
        outgoing = prepare_alert(client.protocol, self.settings.prefix, alert_id, targets, payload, parsed,
                                 self.signer, self.settings.max_message_kb * 1024, now)
        topic_list = list(outgoing.sealed)
        report = self.fleet.track_alert(
            alert_id, level=level, title=title, body=body or None,
            targets=[{"scope": t.scope, "name": t.name or None} for t in targets],
            expected=self.fleet.reach(panels, groups, everyone), sent_by=user,
            expires_at=None if minutes is None else now.timestamp() + minutes * 60)
        try:
            for topic in topic_list:
                client.publish(topic, outgoing.sealed[topic], retain=True, expiry=outgoing.expiry)
        except CtlError:
            self.fleet.forget_alert(alert_id)
            raise
        log.info("console: alert %s sent by %s to %s", alert_id, user, ", ".join(topic_list))
        self._update_indexes(targets, add=alert_id)
        return report

    def _update_indexes(self, targets: list[Target], *, add: str | None = None, remove: str | None = None) -> None:
        """The alert indexes of ``targets``' scopes, as panelctl keeps them; a failure is logged (the
        alert itself went out)."""
        try:
            with CtlClient(self.settings) as client:  # retained() needs a client of its own
                update_alert_indexes(client, self.settings.prefix, targets, add=add, remove=remove)
        except (CtlError, OSError) as exc:
            log.warning("console: the alert index was not updated for %s: %s", add or remove, exc)

    def cancel_alert(self, alert_id: str, user: str) -> dict[str, Any] | None:
        """Publish the retained cancel (empty, or signed empty) on every topic the alert was sent to:
        those the console tracked and those the broker still holds. The report, if tracked."""
        self.topics.all_alert(alert_id)  # checks the id (no ".")
        report = self.fleet.alert_report(alert_id)
        topic_list: set[str] = set()
        if report is not None:
            topic_list.update(Target(t["scope"], t["name"] or "").topic(self.topics, alert_id)
                              for t in report["targets"])
        filters = [f"{self.settings.prefix}/panels/+/alerts/{alert_id}",
                   f"{self.settings.prefix}/groups/+/alerts/{alert_id}", self.topics.all_alert(alert_id)]
        # A broker without retained messages on wildcards: the exact topic of every scope known.
        exact = [self.topics.panel_alert_of(p, alert_id) for p in self.fleet.panels()]
        exact += [self.topics.group_alert(g, alert_id) for g in self.fleet.groups() if _is_name(g)]
        client = self._connected_client()
        with CtlClient(self.settings) as reader:  # the listening client hands every message to the fleet
            held = reader.retained(filters, keep=False)
            for start in range(0, len(exact), 500):
                held.update(reader.retained(exact[start:start + 500], keep=False))
        topic_list.update(topic for topic, payload in held.items() if payload)
        if not topic_list:
            return None
        for topic in sorted(topic_list):
            client.publish(topic, seal(self.signer, topic, b""), retain=True)
        log.info("console: alert %s cancelled by %s on %s", alert_id, user, ", ".join(sorted(topic_list)))
        scopes = []
        for topic in sorted(topic_list):
            route = self.topics.parse(topic)
            scopes.append(Target(route.scope, route.name or ""))
        self._update_indexes(scopes, remove=alert_id)
        return self.fleet.alert_cancelled(alert_id, user)

    def push_playlist(self, data: dict[str, Any], files: dict[str, bytes], *, panels: list[str],
                      groups: list[str], user: str) -> dict[str, Any]:
        """Check a playlist (``file`` slides from ``files``: name → bytes), upload its images, publish
        it retained to the panels and groups; its report. Same errors as :meth:`send_alert`."""
        if not panels and not groups:
            raise ContentError(["choose at least one panel or one group"], "playlist")
        max_asset = self.settings.max_asset_kb * 1024
        with tempfile.TemporaryDirectory(prefix="panel-console-") as folder:
            base = Path(folder)
            for name, content in files.items():
                if not name or name != Path(name).name or name.startswith("."):
                    raise ContentError([f"file name {name!r}: a plain file name is expected"], "playlist")
                (base / name).write_bytes(content)
            prepared = prepare_playlist(data, base, max_asset_bytes=max_asset,
                                        max_message_bytes=self.settings.max_message_kb * 1024)
            targets = ([self.topics.panel_playlist_of(p) for p in panels]
                       + [self.topics.group_playlist(g) for g in groups])
            sealed = {topic: seal(self.signer, topic, prepared.payload) for topic in targets}
            self._check_size(sealed)
            self._connected_client()
            pl = prepared.playlist
            report = self.fleet.track_push(pl.id, pl.version, self.fleet.reach(panels, groups, False), user)
            try:
                with CtlClient(self.settings) as client:  # retained() needs a client of its own
                    upload_assets(client, self.topics, prepared.uploads, max_asset, io.StringIO())
                    for topic in targets:
                        client.publish(topic, sealed[topic], retain=True)
            except (CtlError, ContentError):
                self.fleet.forget_push(report["key"])
                raise
        log.info("console: playlist %s@%s pushed by %s to %s", pl.id, pl.version, user, ", ".join(targets))
        return report

    def request_screenshot(self, panel: str) -> str:
        """Ask ``panel`` for a screenshot; it arrives in ``screenshot_dir/<panel>.png`` and the
        fleet row's ``screenshot_ts`` changes. Returns the command's request id."""
        topic = self.topics.cmd_of(panel)
        command = {"id": f"console-{secrets.token_hex(6)}", "cmd": "screenshot"}
        client = self._connected_client()
        client.publish(topic, seal(self.signer, topic, json.dumps(command).encode("utf-8")))
        return command["id"]


def _is_name(text: str) -> bool:
    return re.fullmatch(PANEL_ID_PATTERN, text) is not None


def _json_object(payload: bytes) -> dict[str, Any] | None:
    if not payload:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None

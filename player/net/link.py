"""The panel's MQTT link: one paho-mqtt client, its own network thread, one inbox.

The link never blocks its caller on the network: :meth:`MqttLink.start`
returns at once and paho keeps (re)connecting in the background with an
exponential backoff. Whatever arrives is checked (topic, size, asset hash)
and put on the main loop's inbox as a :mod:`player.net.protocol` item.

Example::

    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(LinkSettings(host="127.0.0.1"), "mairie-entree", ["centre-ville"], inbox)
    link.start()
    item = inbox.get(timeout=5)        # LinkState(connected=True, ...), Inbound(...), ...
    link.publish_event(event_command_done("req-42", "identify"))
    link.stop()
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..config import BrokerAccess, TlsConfig
from ..errors import ConfigError
from .protocol import Inbound, LinkError, LinkState, Rejected, RetainedSynced, iso_now
from .topics import PanelTopics, Route, TopicError, check_alert_id

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
STOP_FLUSH_SECONDS = 2.0
MAX_QUEUED_OUTGOING = 1000
MAX_INDEX_IDS = 256
"""At most this many alert ids are read from one alert index (docs/protocol.md)."""
DUPLICATE_WINDOW_S = 2.0
MAX_RECENT = 4096
"""An identical copy of the last message on an exactly subscribed alert topic, within this
many seconds, is the same delivery again (wildcard and exact subscriptions overlap)."""


QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


@dataclass(frozen=True)
class LinkSettings(BrokerAccess):
    """Broker address and link behaviour (``mqtt`` section of the config)."""

    keepalive: int = 30
    protocol: str = "5"  # "5" or "3.1.1"
    session_expiry: int = 86400
    max_message_bytes: int = 1_048_576
    max_asset_bytes: int = 2 * 2**20
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0


def read_password(path: Path) -> str:
    """The first line of ``path`` without its newline; :class:`ConfigError` if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"mqtt.password_file: cannot read {path}: {exc}"]) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError([f"mqtt.password_file: {path} is empty"])
    return lines[0]


class MqttLink:
    """The panel side of CONTRACT §3 over one persistent MQTT session.

    ``connected`` is true between a successful CONNACK and the next
    disconnection; ``reconnects`` counts successful connections after the first.
    """

    def __init__(self, settings: LinkSettings, panel_id: str, groups: Sequence[str],
                 inbox: queue.Queue[object]) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ConfigError([f'mqtt.protocol: expected "5" or "3.1.1", got {settings.protocol!r}'])
        try:
            self.topics = PanelTopics(settings.prefix, panel_id, groups)
        except TopicError as exc:
            raise ConfigError([f"mqtt: {exc.reason}"]) from None
        self.settings = settings
        self.panel_id = panel_id
        self.inbox = inbox
        self.connected = False
        self.reconnects = 0
        self._connects = 0
        self._started = False
        self._stopped = False
        self._lock = threading.Lock()
        self._assets: set[str] = set()
        # Exact alert subscriptions (docs/protocol.md "Alert index"): the topics of the alerts
        # this panel holds active, and those its scopes' retained alert indexes list.
        self._held: set[str] = set()
        self._indexed: dict[str, frozenset[str]] = {}  # index topic → the alert topics it lists
        self._exact: set[str] = set()  # exact alert topics subscribed on this connection
        self._recent: dict[str, tuple[bytes, bool, float]] = {}  # last delivery on each of them
        self._subscribe_mid: int | None = None
        self._sync_topic = f"{settings.prefix}/panels/{panel_id}/sync"
        self._sync_token = ""
        self._sync_remembered = False
        self._sync_seen: set[str] = set()
        self._connected_reason = ""
        self._last_state: tuple[bool, str] | None = None
        self._v5 = settings.protocol == "5"
        self._client = self._make_client()

    # -- set-up ----------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        s = self.settings
        if self._v5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.panel_id,
                                 protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.panel_id,
                                 protocol=mqtt.MQTTv311, clean_session=False)
        if s.username is not None:
            password = read_password(s.password_file) if s.password_file is not None else None
            client.username_pw_set(s.username, password)
        elif s.password_file is not None:
            raise ConfigError(["mqtt.password_file: needs mqtt.username"])
        if s.tls is not None:
            self._set_tls(client, s.tls)
        client.will_set(self.topics.online(), "false", qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        client.max_queued_messages_set(MAX_QUEUED_OUTGOING)
        client.on_connect = self._guard(self._on_connect)
        client.on_connect_fail = self._guard(self._on_connect_fail)
        client.on_disconnect = self._guard(self._on_disconnect)
        client.on_message = self._guard(self._on_message)
        client.on_subscribe = self._guard(self._on_subscribe)
        client.on_publish = self._guard(self._on_publish)
        return client

    @staticmethod
    def _set_tls(client: mqtt.Client, tls: TlsConfig) -> None:
        if (tls.cert_file is None) != (tls.key_file is None):
            raise ConfigError(["mqtt.tls: cert_file and key_file go together"])
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, key)
            if path is not None and not Path(path).is_file():
                raise ConfigError([f"mqtt.tls.{key}: no such file: {path}"])
        try:
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError([f"mqtt.tls: {exc}"]) from None

    def _guard(self, fn: F) -> F:
        """Wrap a paho callback: an exception there would silently end paho's thread."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the network thread must survive anything
                log.exception("MQTT callback %s failed", fn.__name__)
                self._put(LinkError(f"MQTT callback {fn.__name__.lstrip('_')} failed: {exc!r}"))
                return None

        return guarded  # type: ignore[return-value]

    def _put(self, item: object) -> None:
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            log.error("inbox full: dropped %s", type(item).__name__)
        except Exception:  # noqa: BLE001 - a broken inbox must not end the network thread
            log.exception("inbox refused %s", type(item).__name__)

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; returns at once. No-op once started or stopped."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
        s = self.settings
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = s.session_expiry
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive,
                                       clean_start=False, properties=properties)
        else:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        """Publish ``online=false``, wait briefly for it to leave, disconnect. Safe twice."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        if self.connected:
            info = self._client.publish(self.topics.online(), "false", qos=1, retain=True)
            try:
                info.wait_for_publish(STOP_FLUSH_SECONDS)
            except (RuntimeError, ValueError) as exc:
                log.warning("online=false not sent: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected = False

    def __enter__(self) -> MqttLink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- publishing ----------------------------------------------------------------
    def _publish(self, topic: str, payload: bytes | str, retain: bool) -> bool:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish on %s refused: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    def publish_event(self, event: dict[str, Any]) -> bool:
        """Send an event (QoS 1, not retained); queued while offline."""
        if "ts" not in event:
            event = {**event, "ts": iso_now()}
        return self._publish(self.topics.events(), _json(event), retain=False)

    def publish_heartbeat(self, hb: dict[str, Any]) -> bool:
        """Replace the retained heartbeat; dropped while offline (a fresh one follows the reconnect)."""
        if not self.connected:
            return False
        return self._publish(self.topics.heartbeat(), _json(hb), retain=True)

    def publish_screenshot(self, png: bytes) -> bool:
        """Send a PNG (not retained); dropped while offline."""
        if not self.connected:
            return False
        return self._publish(self.topics.screenshot(), png, retain=False)

    def want_assets(self, shas: Iterable[str]) -> None:
        """Subscribe to exactly these assets' topics (``P/assets/SHA``), now and after reconnects.

        The broker sends each retained asset once on subscription; assets no
        longer wanted are unsubscribed.
        """
        wanted = {s.removeprefix("sha256:") for s in shas}
        with self._lock:
            added, removed = wanted - self._assets, self._assets - wanted
            self._assets = wanted
        if self.connected:
            for sha in sorted(added):
                self._client.subscribe(self.topics.asset(sha), qos=1)
            for sha in sorted(removed):
                self._client.unsubscribe(self.topics.asset(sha))

    def index_topics(self) -> list[str]:
        """The retained alert-index topics of this panel's scopes (all, its groups, itself)."""
        t = self.topics
        return ([t.alert_index("all")] + [t.alert_index("group", g) for g in t.groups]
                + [t.alert_index("panel", self.panel_id)])

    def want_alerts(self, topics: Iterable[str]) -> None:
        """The exact topics of the alerts this panel holds active (told by the main loop).

        Each connection's SUBSCRIBE names them, so that a broker that delivers retained
        messages only to exact subscriptions (RabbitMQ) still tells the reconciliation
        what it holds. Exact subscriptions neither held nor indexed any more are dropped.
        """
        held = set()
        for topic in topics:
            try:
                self.topics.parse_inbound(topic)  # e.g. a group no longer in panel.groups: not ours
            except TopicError:
                continue
            held.add(topic)
        with self._lock:
            self._held = held
            drop = self._exact - self._held - self._indexed_topics()
            self._exact -= drop
        if drop and self.connected:
            self._client.unsubscribe(sorted(drop))

    def exact_alert_topics(self) -> frozenset[str]:
        """The exact alert topics subscribed on this connection (for tests and status)."""
        with self._lock:
            return frozenset(self._exact)

    def _indexed_topics(self) -> set[str]:
        found: set[str] = set()
        for topics in self._indexed.values():
            found |= topics
        return found

    def _index_received(self, client: mqtt.Client, route: Route, payload: bytes) -> Rejected | None:
        """A scope's alert index: subscribe exactly to the alerts it lists (a hint only:
        what arrives on them is checked as any alert)."""
        ids, problems = parse_alert_index(payload)
        topics = set()
        for alert_id in ids:
            if route.scope == "all":
                topics.add(self.topics.all_alert(alert_id))
            elif route.scope == "group":
                topics.add(self.topics.group_alert(route.name or "", alert_id))
            else:
                topics.add(self.topics.panel_alert(alert_id))
        with self._lock:
            self._indexed[route.topic] = frozenset(topics)
            wanted = self._held | self._indexed_topics()
            add, drop = wanted - self._exact, self._exact - wanted
            self._exact = wanted
        if add:
            client.subscribe([(topic, 1) for topic in sorted(add)])
        if drop:
            client.unsubscribe(sorted(drop))
        return Rejected(route, "; ".join(problems)) if problems else None

    def _duplicate(self, topic: str | None, payload: bytes, retained: bool) -> bool:
        """Whether this message is a second copy of the last one on an exactly subscribed alert
        topic (mosquitto sends one per matching subscription: the wildcard's and the exact one's)."""
        if topic is None or "/alerts/" not in topic:
            return False
        now = time.monotonic()
        digest = hashlib.sha256(payload).digest()
        with self._lock:
            # Every alert topic's last delivery is noted: the wildcard's copy may come before
            # the index that makes the topic an exact subscription.
            last = self._recent.pop(topic, None)
            self._recent[topic] = (digest, retained, now)
            if len(self._recent) > MAX_RECENT:
                del self._recent[next(iter(self._recent))]
            exact = topic in self._exact
        return (exact and last is not None and last[:2] == (digest, retained)
                and now - last[2] < DUPLICATE_WINDOW_S)

    # -- paho callbacks (network thread) -----------------------------------------
    def _state(self, connected: bool, reason: str) -> None:
        if self._last_state == (connected, reason):
            return
        self._last_state = (connected, reason)
        self._put(LinkState(connected, reason, self._connects))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        # The broker's PUBACK to one of our events needs no answer, so our TCP stack
        # would delay its ACK (up to 40 ms). Meanwhile, with Nagle's algorithm on the
        # broker's side (mosquitto's default), an alert for us waits behind that
        # unacknowledged PUBACK. Acknowledge it now instead.
        sock = client.socket()
        if QUICKACK is not None and sock is not None and hasattr(sock, "setsockopt"):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                pass

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.connected = False
            self._state(False, f"connection refused by the broker: {reason_code}")
            return
        sock = client.socket()
        if sock is not None and hasattr(sock, "setsockopt"):
            # Events and acknowledgements leave at once, not after the broker's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            wanted = sorted(self._assets)
            self._exact = self._held | self._indexed_topics()
            exact = sorted(self._exact)
            self._recent = {}
        # Exact alert topics right after the wildcards: on a broker that delivers retained
        # messages to both (mosquitto) the two copies come close together.
        filters = (self.topics.subscriptions() + self.index_topics() + exact
                   + [self.topics.asset(sha) for sha in wanted] + [self._sync_topic])
        # One SUBSCRIBE for all: "connected" is announced on its SUBACK, once
        # every message addressed to the panel is sure to reach it.
        _, self._subscribe_mid = client.subscribe([(topic, 1) for topic in filters])
        # The marker comes back after every retained message of that SUBSCRIBE (the
        # broker handles a client's packets in order); left retained, it also tells the
        # next connection whether the broker kept its retained messages.
        self._sync_remembered = False
        self._sync_seen = set()
        self._sync_token = f"{self.panel_id} {uuid.uuid4().hex}"
        client.publish(self._sync_topic, self._sync_token, qos=1, retain=True)
        client.publish(self.topics.online(), "true", qos=1, retain=True)
        self._connects += 1
        if self._connects > 1:
            self.reconnects += 1
        self.connected = True
        session = "resumed" if flags.session_present else "new"
        self._connected_reason = f"connected to {self.settings.host}:{self.settings.port} ({session} session)"

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.connected = False
        self._state(False, f"cannot connect to {self.settings.host}:{self.settings.port}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        self.connected = False
        why = "stopped" if self._stopped else f"connection lost: {reason_code}"
        self._state(False, why)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        for code in reason_codes:
            if code.is_failure:
                self._put(LinkError(f"subscription refused by the broker: {code}"))
        if mid == self._subscribe_mid and self.connected:
            self._last_state = None
            self._state(True, self._connected_reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic if _topic_is_utf8(message) else None
        if topic == self._sync_topic:
            if bytes(message.payload) == self._sync_token.encode():
                self._put(RetainedSynced(self._sync_remembered, frozenset(self._sync_seen), self._connects))
            elif message.retain and message.payload:
                self._sync_remembered = True  # the marker of an earlier connection
            return
        payload, retained = bytes(message.payload), bool(message.retain)
        if self._duplicate(topic, payload, retained):
            return
        item = self.check(topic, payload, retained)
        route = item.route if isinstance(item, Inbound) else item.subject
        if topic is not None and getattr(route, "kind", None) == "alert":
            self._sync_seen.add(topic)  # refused or not, the broker holds something there
        if isinstance(item, Inbound) and item.route.kind == "alert-index":
            refused = self._index_received(client, item.route, item.payload)
            if refused is not None:
                self._put(refused)
            return
        self._put(item)

    def check(self, topic: str | None, payload: bytes, retained: bool) -> Inbound | Rejected:
        """Turn a received message into an inbox item (pure: topic, size and hash checks)."""
        received = time.monotonic()
        if topic is None:
            return Rejected("<topic is not valid UTF-8>", "topic is not valid UTF-8")
        try:
            route = self.topics.parse_inbound(topic)
        except TopicError as exc:
            return Rejected(topic, exc.reason)
        limit = self.settings.max_asset_bytes if route.kind == "asset" else self.settings.max_message_bytes
        if len(payload) > limit:
            return Rejected(route, f"payload too large ({len(payload)} bytes, at most {limit})")
        if route.kind == "asset" and payload:
            digest = hashlib.sha256(payload).hexdigest()
            if digest != route.sha:
                return Rejected(route, f"asset bytes have sha256 {digest}, not the {route.sha} of their topic")
        return Inbound(route, bytes(payload), retained, received)


def parse_alert_index(payload: bytes) -> tuple[list[str], list[str]]:
    """The alert ids of an alert index payload, and what was wrong with it (never raises).

    ``{"alerts": ["crue-1", ...], "ts": "..."}``; an empty payload (the index deleted)
    lists nothing. Ids that are not valid alert ids are left out and named; at most
    :data:`MAX_INDEX_IDS` are read.
    """
    if not payload:
        return [], []
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return [], [f"alert index is not JSON: {exc}"]
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list):
        return [], ['alert index: "alerts" must be a list of alert ids']
    ids: list[str] = []
    problems: list[str] = []
    for item in alerts:
        try:
            check_alert_id(item)
        except TopicError as exc:
            problems.append(f"alert index: {exc.reason}")
            continue
        if item not in ids:
            ids.append(item)
    if len(ids) > MAX_INDEX_IDS:
        problems.append(f"alert index lists {len(ids)} alerts, at most {MAX_INDEX_IDS} are read")
        ids = ids[:MAX_INDEX_IDS]
    return ids, problems[:5]


def _topic_is_utf8(message: mqtt.MQTTMessage) -> bool:
    try:
        message.topic
    except UnicodeDecodeError:
        return False
    return True


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


__all__ = ["LinkSettings", "MqttLink", "parse_alert_index", "read_password"]

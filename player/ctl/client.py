"""A small blocking MQTT client for panelctl (paho-mqtt 2.x, MQTT 5, clean session).

Every call waits for the broker's answer with a deadline: :meth:`CtlClient.publish`
returns once the PUBACK is in (and raises if the broker refused it),
:meth:`CtlClient.subscribe` once the SUBACK is in. Received messages queue up
until :meth:`CtlClient.next_message` takes them, or go straight to a handler
set with :meth:`CtlClient.listen`.

:meth:`CtlClient.retained` reads what the broker holds on some filters without
guessing a quiet period: it subscribes, then publishes a marker to a topic of its
own; the broker queues the retained messages of a subscription before it handles
the client's next packet, so once the marker is back every retained message has
arrived.

Example::

    with CtlClient(settings) as client:
        client.publish("signage/panels/p1/cmd", b'{"id": "r1", "cmd": "reload"}')
        online = client.retained(["signage/panels/+/online"])   # {topic: payload}
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..errors import PanelError
from ..net.link import read_password
from .settings import CtlSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
ACK_TIMEOUT = 30.0
RETAINED_TIMEOUT = 5.0
# PUBLISH fixed header (≤ 5 bytes), topic length (2), packet id (2), properties (a few):
# a payload must leave this much room below the broker's maximum packet size.
PACKET_OVERHEAD = 64


class CtlError(PanelError, RuntimeError):
    """The broker could not be reached, refused something, or did not answer in time."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retained: bool
    received: float  # time.monotonic()


class CtlClient:
    """One connection to the broker for one panelctl command; use as a context manager."""

    def __init__(self, settings: CtlSettings, client_id: str | None = None) -> None:
        self.settings = settings
        self.client_id = client_id or f"panelctl-{uuid.uuid4().hex[:12]}"
        self.max_packet: int | None = None  # announced by the broker in CONNACK (MQTT 5)
        self._cond = threading.Condition()
        self._connected: bool | None = None
        self._connect_error = ""
        self._acks: dict[int, Any] = {}
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._handler: Callable[[Message], None] | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if settings.username is not None:
            password = read_password(settings.password_file) if settings.password_file else None
            self._client.username_pw_set(settings.username, password)
        if settings.tls is not None:
            tls = settings.tls
            try:
                self._client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                                     certfile=str(tls.cert_file) if tls.cert_file else None,
                                     keyfile=str(tls.key_file) if tls.key_file else None)
            except (OSError, ValueError) as exc:
                raise CtlError(f"TLS set-up failed: {exc}") from None
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_ack
        self._client.on_subscribe = self._on_suback
        self._client.on_message = self._on_message
        self._marker = 0

    # -- connection ------------------------------------------------------------
    def connect(self, timeout: float = CONNECT_TIMEOUT) -> Self:
        """Connect (clean session) and wait for the CONNACK; :class:`CtlError` on failure."""
        where = self.settings.address
        try:
            self._client.connect(self.settings.host, self.settings.port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as exc:
            raise CtlError(f"cannot connect to the broker at {where}: {exc}") from None
        self._client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connected is not None, timeout)
            if self._connected is None:
                self.close()
                raise CtlError(f"no answer from the broker at {where} within {timeout:g} s")
            if not self._connected:
                self.close()
                raise CtlError(f"the broker at {where} refused the connection: {self._connect_error}")
        return self

    def close(self) -> None:
        """Disconnect; safe twice."""
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def payload_limit(self, configured: int) -> int:
        """The largest payload to publish: ``configured`` bytes, lowered to the broker's packet limit."""
        if self.max_packet is None:
            return configured
        return min(configured, self.max_packet - PACKET_OVERHEAD)

    # -- publishing and subscribing -----------------------------------------------
    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                expiry: int | None = None, timeout: float = ACK_TIMEOUT) -> None:
        """Publish QoS 1 and wait for the PUBACK; ``expiry``: MQTT 5 message expiry in seconds."""
        properties = None
        if expiry is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, int(expiry))
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CtlError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
        code = self._wait_ack(info.mid, timeout, f"publish on {topic}")
        if code is not None and getattr(code, "is_failure", False):
            raise CtlError(f"the broker refused the publish on {topic}: {code}")

    def subscribe(self, filters: list[str], timeout: float = ACK_TIMEOUT) -> None:
        """Subscribe QoS 1 to every filter and wait for the SUBACK."""
        if not filters:
            return
        rc, mid = self._client.subscribe([(f, 1) for f in filters])
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise CtlError(f"subscribe failed: {mqtt.error_string(rc)}")
        codes = self._wait_ack(mid, timeout, "subscribe")
        refused = [f for f, c in zip(filters, codes or ()) if getattr(c, "is_failure", False)]
        if refused:
            raise CtlError(f"the broker refused the subscription to {', '.join(refused)}")

    def unsubscribe(self, filters: list[str]) -> None:
        if filters:
            self._client.unsubscribe(filters)

    def listen(self, handler: Callable[[Message], None] | None) -> None:
        """Hand every message received from now on to ``handler`` instead of queueing it.

        ``handler`` runs on paho's network thread: it must be quick, must not call
        this client, and guards its own state. Reading hundreds of answers this way
        spares a wake-up of the caller's thread per message. ``None`` queues them
        again for :meth:`next_message`.
        """
        self._handler = handler

    def next_message(self, deadline: float) -> Message | None:
        """The next message received, waiting until ``deadline`` (monotonic); ``None`` then."""
        left = deadline - time.monotonic()
        try:
            return self._inbox.get(timeout=max(0.0, left)) if left > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return None

    def retained(self, filters: list[str], timeout: float = RETAINED_TIMEOUT,
                 keep: bool = True) -> dict[str, bytes]:
        """Every retained message currently held on ``filters``: ``{topic: payload}``.

        With ``keep`` the subscriptions stay, so later (live) messages keep
        arriving for :meth:`next_message`; messages taken here are only the
        retained ones. Without, they are dropped again.
        """
        self._marker += 1
        marker = f"{self.settings.prefix}/ctl/{self.client_id}/sync"
        token = f"{self._marker}".encode()
        self.subscribe(filters + [marker])
        self.publish(marker, token)
        found: dict[str, bytes] = {}
        later: list[Message] = []
        deadline = time.monotonic() + timeout
        while (msg := self.next_message(deadline)) is not None:
            if msg.topic == marker:
                if msg.payload == token:
                    break
                continue
            if msg.retained and any(mqtt.topic_matches_sub(f, msg.topic) for f in filters):
                found[msg.topic] = msg.payload
            else:
                later.append(msg)
        self.unsubscribe([marker] + ([] if keep else filters))
        for msg in later:  # live messages that came in meanwhile stay for the caller
            self._inbox.put(msg)
        return found

    # -- paho callbacks (network thread; they only record) -------------------------
    def _wait_ack(self, mid: int, timeout: float, what: str) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks or self._connected is False, timeout):
                raise CtlError(f"{what}: no acknowledgement from the broker within {timeout:g} s")
            if mid not in self._acks:
                raise CtlError(f"{what}: the connection to the broker was lost")
            return self._acks.pop(mid)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        with self._cond:
            self._connected = not reason_code.is_failure
            self._connect_error = str(reason_code)
            limit = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
            self.max_packet = int(limit) if isinstance(limit, int) else None
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        with self._cond:
            if self._connected is None:
                self._connect_error = str(reason_code)
            self._connected = False
            self._cond.notify_all()

    def _on_ack(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._cond:
            self._acks[mid] = reason_code
            self._cond.notify_all()

    def _on_suback(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any],
                   properties: Any) -> None:
        with self._cond:
            self._acks[mid] = list(reason_codes)
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return
        msg = Message(topic, bytes(message.payload), bool(message.retain), time.monotonic())
        handler = self._handler
        if handler is None:
            self._inbox.put(msg)
            return
        try:
            handler(msg)
        except Exception:  # noqa: BLE001 - paho's network thread must survive a handler's bug
            log.exception("message handler failed on %s", topic)

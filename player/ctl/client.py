"""A small blocking MQTT client for panelctl (paho-mqtt 2.x, MQTT 5 or 3.1.1, clean session).

The protocol is ``settings.protocol``: ``"5"``, ``"3.1.1"`` or ``"auto"`` (the
default): auto connects with MQTT 5 and, when the broker refuses that version
(a CONNACK "unsupported protocol version", or the connection closed before any
CONNACK, as RabbitMQ before 3.13 does), connects again with MQTT 3.1.1 and says
once on stderr ``the broker at H:P does not accept MQTT 5; using MQTT 3.1.1``.
The answer is remembered for that broker by this process (:func:`reset_detection`
forgets it), so later connections go straight to 3.1.1. :attr:`CtlClient.protocol`
is the version in use once connected. On 3.1.1 there is no message expiry (the
``expiry`` of :meth:`CtlClient.publish` is not sent: callers put an absolute
``expires`` in the alert instead) and no maximum packet size from the broker.

:meth:`CtlClient.connect` ends within its time-out whatever the network does; a
refused login, a closed port or a TLS failure raises :class:`CtlError` with a
sentence naming the cause (see :func:`connack_failure`, :func:`socket_failure`).
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
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

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


MQTT5, MQTT311 = "5", "3.1.1"
PROTOCOLS = (MQTT5, MQTT311, "auto")
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK: unsupported protocol version (3.1.1's return code 1 maps to it)

# What auto-detection found, per broker address, for this process; and where its one line goes.
_detected: dict[tuple[str, int], str] = {}
_detected_lock = threading.Lock()
notice_stream: IO[str] | None = None  # None: sys.stderr at the time of writing


def reset_detection() -> None:
    """Forget which brokers refused MQTT 5 (each panelctl command starts afresh)."""
    with _detected_lock:
        _detected.clear()


def fallback_notice(settings: CtlSettings) -> str:
    return f"the broker at {settings.address} does not accept MQTT 5; using MQTT 3.1.1"


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
        # Written by paho's network thread under _cond, read by the caller's thread:
        # None until the CONNACK (or the end of the connection), then whether it is up.
        self._connected: bool | None = None
        self._reason: ReasonCode | None = None  # the refusing CONNACK's or the DISCONNECT's code
        self._logged_in = False  # a successful CONNACK came, even if the connection has ended since
        self._acks: dict[int, Any] = {}
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._handler: Callable[[Message], Any] | None = None
        self._password = read_password(settings.password_file) \
            if settings.username is not None and settings.password_file else None
        wanted = getattr(settings, "protocol", "auto")
        if wanted not in PROTOCOLS:
            raise CtlError(f"protocol {wanted!r}: expected one of {', '.join(PROTOCOLS)}")
        self.wanted = wanted
        with _detected_lock:
            known = _detected.get((settings.host, settings.port))
        # The version in use (the one tried first until connect() has returned).
        self.protocol = MQTT311 if wanted == MQTT311 or (wanted == "auto" and known == MQTT311) else MQTT5
        self._client = self._make_client(self.protocol)
        self._marker = 0

    def _make_client(self, protocol: str) -> mqtt.Client:
        settings = self.settings
        # No reconnection: with a clean session the subscriptions would be gone, and a lost
        # connection already fails the command (a refused login would only be retried).
        if protocol == MQTT5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 protocol=mqtt.MQTTv311, clean_session=True, reconnect_on_failure=False)
        if settings.username is not None:
            client.username_pw_set(settings.username, self._password)
        if settings.tls is not None:
            tls = settings.tls
            try:
                client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                               certfile=str(tls.cert_file) if tls.cert_file else None,
                               keyfile=str(tls.key_file) if tls.key_file else None)
            except (OSError, ValueError) as exc:
                raise CtlError(f"TLS set-up failed: {exc}") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_ack
        client.on_subscribe = self._on_suback
        client.on_message = self._on_message
        return client

    # -- connection ------------------------------------------------------------
    def connect(self, timeout: float = CONNECT_TIMEOUT) -> Self:
        """Connect (clean session) and wait for the CONNACK.

        Everything (name lookup, TCP, TLS handshake, login) ends within ``timeout``
        seconds; on failure the connection is closed and :class:`CtlError` says why,
        e.g. ``the broker at h:1883 refused the login: not authorised (…)``.
        """
        deadline = time.monotonic() + timeout
        try:
            failure = self._open(deadline, timeout) or self._wait_connack(deadline, timeout)
            if failure and self.wanted == "auto" and self.protocol == MQTT5 and self._refused_version():
                first = failure
                self.close()  # never with self._cond held: the network thread's callbacks take it
                with self._cond:
                    self._connected, self._reason, self._logged_in = None, None, False
                    self._acks.clear()
                self.protocol = MQTT311
                self._client = self._make_client(MQTT311)
                failure = self._open(deadline, timeout) or self._wait_connack(deadline, timeout)
                if not failure:
                    self._remember_fallback()
                elif not self._refused_login():
                    failure = first  # 3.1.1 fails too: the first sentence (TLS hints) is the better one
        except BaseException:  # Ctrl-C while waiting: leave no network thread behind
            self.close()
            raise
        if failure:
            self.close()
            raise CtlError(failure)
        return self

    def _refused_version(self) -> bool:
        """The MQTT 5 CONNECT was refused as a version, or hung up on before any CONNACK."""
        with self._cond:
            connected, reason, logged_in = self._connected, self._reason, self._logged_in
        if connected is not False or logged_in:
            return False
        if reason is not None and reason.packetType == PacketTypes.CONNACK:
            return bool(reason.value == UNSUPPORTED_PROTOCOL)
        return True

    def _refused_login(self) -> bool:
        with self._cond:
            reason = self._reason
        return reason is not None and reason.packetType == PacketTypes.CONNACK and \
            reason.value in (BAD_LOGIN, NOT_AUTHORISED)

    def _remember_fallback(self) -> None:
        key = (self.settings.host, self.settings.port)
        with _detected_lock:
            said = key in _detected
            _detected[key] = MQTT311
        if not said:
            stream = notice_stream if notice_stream is not None else sys.stderr
            stream.write(fallback_notice(self.settings) + "\n")
            stream.flush()

    def _open(self, deadline: float, timeout: float) -> str:
        """Open the socket, shake hands and send CONNECT; the failure sentence, or "".

        paho's connect() blocks in the name lookup (no timeout at all) and the TLS
        handshake, so it runs on a helper thread and the caller waits only until
        ``deadline``.
        """
        outcome: list[BaseException | None] = []
        done, given_up = threading.Event(), threading.Event()
        guard = threading.Lock()

        def attempt() -> None:
            error: BaseException | None = None
            try:
                if self.protocol == MQTT5:
                    self._client.connect(self.settings.host, self.settings.port, keepalive=30, clean_start=True)
                else:
                    self._client.connect(self.settings.host, self.settings.port, keepalive=30)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                error = exc
            with guard:
                outcome.append(error)
                done.set()
                late = given_up.is_set() and error is None
            if late:  # the caller has moved on: hang up rather than leave a half-open session
                self._client.disconnect()

        threading.Thread(target=attempt, name=f"{self.client_id}-connect", daemon=True).start()
        done.wait(max(0.0, deadline - time.monotonic()))
        with guard:
            if not done.is_set():
                given_up.set()
                return (f"no answer from the broker at {self.settings.address} within {timeout:g} s "
                        "(is the host up and the port open?)")
        error = outcome[0]
        if error is None:
            self._client.loop_start()
            return ""
        if isinstance(error, (OSError, ValueError)):
            return socket_failure(error, self.settings)
        raise error

    def _wait_connack(self, deadline: float, timeout: float) -> str:
        """Wait for the CONNACK (or the connection's end); the failure sentence, or ""."""
        with self._cond:
            self._cond.wait_for(lambda: self._connected is not None, max(0.0, deadline - time.monotonic()))
            connected, reason, logged_in = self._connected, self._reason, self._logged_in
        if connected:
            return ""
        where = self.settings.address
        if connected is None:
            return f"no answer from the broker at {where} within {timeout:g} s (connected, but no CONNACK)"
        if reason is not None and reason.packetType == PacketTypes.CONNACK:
            return connack_failure(reason, self.settings, self.protocol)
        if logged_in:
            why = reason_sentence(reason) if reason is not None else "no reason given"
            return f"the broker at {where} accepted the login, then closed the connection: {why}"
        return closed_before_connack(self.settings, self.protocol if self.wanted == MQTT5 else None)

    def close(self) -> None:
        """Disconnect and stop the network thread; safe twice, never raises for a dead connection."""
        try:
            self._client.disconnect()
        except (OSError, ValueError):
            pass
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
        """Publish QoS 1 and wait for the PUBACK; ``expiry``: MQTT 5 message expiry in seconds
        (not sent on MQTT 3.1.1, which has none)."""
        properties = None
        if expiry is not None and self.protocol == MQTT5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, int(expiry))
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CtlError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
        code = self._wait_ack(info.mid, timeout, f"publish on {topic}")
        if isinstance(code, ReasonCode) and code.is_failure:
            why = refusal(code, self.settings, "publish")
            raise CtlError(f"the broker refused the publish on {topic}: {why}")

    def subscribe(self, filters: list[str], timeout: float = ACK_TIMEOUT) -> None:
        """Subscribe QoS 1 to every filter and wait for the SUBACK."""
        if not filters:
            return
        rc, mid = self._client.subscribe([(f, 1) for f in filters])
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise CtlError(f"subscribe failed: {mqtt.error_string(rc)}")
        codes = self._wait_ack(mid, timeout, "subscribe")
        refused = [(f, c) for f, c in zip(filters, codes or ()) if isinstance(c, ReasonCode) and c.is_failure]
        if refused:
            raise CtlError(f"the broker refused the subscription to {', '.join(f for f, _ in refused)}: "
                           f"{refusal(refused[0][1], self.settings, 'subscribe')}")

    def unsubscribe(self, filters: list[str]) -> None:
        if filters:
            self._client.unsubscribe(filters)

    def listen(self, handler: Callable[[Message], Any] | None) -> None:
        """Hand every message received from now on to ``handler`` instead of queueing it.

        A handler that returns ``False`` leaves the message to the queue (so that
        :meth:`retained` still works while, say, a tracker takes the events).

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

    def _wait_ack(self, mid: int, timeout: float, what: str) -> Any:
        with self._cond:
            arrived = self._cond.wait_for(lambda: mid in self._acks or self._connected is False, timeout)
            got = mid in self._acks
            ack, reason = self._acks.pop(mid, None), self._reason
        if not arrived:
            raise CtlError(f"{what}: no acknowledgement from the broker within {timeout:g} s")
        if not got:
            why = f": {reason_sentence(reason)}" if reason is not None and reason.is_failure else ""
            raise CtlError(f"{what}: the connection to the broker at {self.settings.address} was lost{why}")
        return ack

    # -- paho callbacks (network thread) -------------------------------------------
    # They only record, under _cond, and never call paho nor wait for anything: the
    # caller's thread may be inside paho (disconnect, loop_stop joining this very
    # thread), and an exception here would kill the network thread unseen.
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        try:
            limit = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
            with self._cond:
                self._connected = not reason_code.is_failure
                self._logged_in = self._logged_in or not reason_code.is_failure
                self._reason = reason_code if reason_code.is_failure else None
                self.max_packet = int(limit) if isinstance(limit, int) else None
                self._cond.notify_all()
        except Exception:  # noqa: BLE001 - see above
            log.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        try:
            with self._cond:
                if self._connected is not False:  # keep the refusing CONNACK's code
                    self._reason = reason_code
                self._connected = False
                self._cond.notify_all()
        except Exception:  # noqa: BLE001 - see above
            log.exception("on_disconnect failed")

    def _on_ack(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                properties: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = reason_code
            self._cond.notify_all()

    def _on_suback(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
                   properties: Properties | None) -> None:
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
            if handler(msg) is False:
                self._inbox.put(msg)
        except Exception:  # noqa: BLE001 - paho's network thread must survive a handler's bug
            log.exception("message handler failed on %s", topic)


# -- why a connection failed, in a sentence ---------------------------------------------------
# MQTT 5 reason codes (CONNACK, PUBACK, SUBACK, DISCONNECT) by value.
BAD_LOGIN, NOT_AUTHORISED = 0x86, 0x87
_LOGIN_REFUSED = "not authorised"
_REASONS = {
    BAD_LOGIN: _LOGIN_REFUSED + " (bad user name or password)",
    NOT_AUTHORISED: _LOGIN_REFUSED,
    0x84: "it does not speak MQTT 5 (mosquitto 1.6 or later does)",
    0x85: "it rejects the client id",
    0x88: "server unavailable, try again later",
    0x89: "server busy, try again later",
    0x8A: "this client is banned",
    0x8C: "bad authentication method",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x9C: "it sends its clients to another server",
    0x9D: "it sends its clients to another server",
    0x9F: "too many connections in a short time, try again later",
}


def reason_sentence(code: ReasonCode) -> str:
    """A broker's MQTT 5 reason code in words: 0x87 → ``not authorised``."""
    return _REASONS.get(code.value, str(code).lower())


def refusal(code: ReasonCode, settings: CtlSettings, action: str) -> str:
    """Why the broker refused a PUBLISH or SUBSCRIBE: ``action`` is "publish" or "subscribe"."""
    if code.value == NOT_AUTHORISED:
        who = f"user {settings.username}" if settings.username is not None else "anonymous clients"
        return f"{_LOGIN_REFUSED} (the broker's access list does not let {who} {action} there)"
    return reason_sentence(code)


def connack_failure(code: ReasonCode, settings: CtlSettings, protocol: str = MQTT5) -> str:
    """Why the broker refused the CONNECT, with what to check."""
    where = settings.address
    if code.value in (BAD_LOGIN, NOT_AUTHORISED):
        hint = ("check the user name and password file" if settings.username is not None
                else "it wants a user name: --username and --password-file")
        return f"the broker at {where} refused the login: {_LOGIN_REFUSED} ({hint})"
    if code.value == UNSUPPORTED_PROTOCOL:
        if protocol == MQTT311:
            return f"the broker at {where} refused the connection: it does not accept MQTT 3.1.1 either"
        return (f"the broker at {where} refused the connection: it does not accept MQTT 5 "
                "(--protocol 3.1.1, or auto to fall back by itself)")
    return f"the broker at {where} refused the connection: {reason_sentence(code)}"


def closed_before_connack(settings: CtlSettings, protocol: str | None = None) -> str:
    """The broker hung up between CONNECT and CONNACK: mostly a TLS mismatch, or (``protocol``
    "5" asked for explicitly) a broker that does not accept MQTT 5."""
    where = settings.address
    if settings.tls is None:
        hint = "is it a TLS port? Then give --tls-ca (or --tls)"
    elif settings.tls.cert_file is None:
        hint = "TLS: does it require a client certificate? --tls-cert and --tls-key"
    else:
        hint = "TLS: is the client certificate signed by a CA the broker trusts? See the broker's log"
    if protocol == MQTT5:
        hint += "; or it does not accept MQTT 5: --protocol 3.1.1 (or auto)"
    return f"the broker at {where} closed the connection without answering the login ({hint})"


def socket_failure(exc: OSError | ValueError, settings: CtlSettings) -> str:
    """Why the TCP connection or the TLS handshake failed, with what to check."""
    where = settings.address
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = (exc.verify_message or str(exc)).rstrip(".")
        return (f"TLS: the certificate of the broker at {where} is not trusted: {detail} "
                "(is --tls-ca the CA that signed it, and is it made out to this host name?)")
    if isinstance(exc, ssl.SSLError) or (settings.tls is not None and isinstance(exc, ConnectionError)):
        detail = getattr(exc, "reason", None) or exc.strerror or str(exc)
        return (f"TLS handshake with the broker at {where} failed: {str(detail).lower().replace('_', ' ')} "
                "(is it a TLS port, and does it want a client certificate?)")
    if isinstance(exc, ConnectionRefusedError):
        return (f"cannot connect to the broker at {where}: connection refused "
                "(nothing listens there: is the broker running, is the port right?)")
    if isinstance(exc, socket.gaierror):
        return f"cannot find the broker's host {settings.host!r}: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        if "handshake" in str(exc):
            return f"TLS handshake with the broker at {where} timed out (is it a TLS port?)"
        return f"no answer from the broker at {where} (is the host up, or does a firewall drop the port?)"
    if isinstance(exc, OSError):
        return f"cannot connect to the broker at {where}: {(exc.strerror or str(exc)).lower()}"
    return f"cannot connect to the broker at {where}: {exc}"

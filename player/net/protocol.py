"""Wire messages of the central-server channel: inbox items, commands, events.

Inbox items are what the MQTT link and the asset fetcher put on the main
loop's queue; they are small, frozen and already checked (topic, size).
Commands follow CONTRACT §6 and events CONTRACT §7.

Example::

    cmd = parse_command(b'{"id": "req-44", "cmd": "brightness", "value": 40}')
    cmd.value                                   # 40
    event_command_done(cmd.id, cmd.cmd)         # {'type': 'command.done', 'ts': '…Z', ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..content import decode_json
from ..errors import ContentError
from ..validate import Node, Problems
from .topics import Route

# -- inbox items --------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """A message on a topic addressed to this panel, within its size cap.

    ``received`` is ``time.monotonic()`` when the network thread got it. An
    asset payload, when not empty, already matches the sha256 in its topic.
    """

    route: Route
    payload: bytes
    retained: bool
    received: float
    signed_by: str | None = None  # set by the trust gate once the signature is verified


@dataclass(frozen=True)
class Rejected:
    """A message refused by the link; the main loop reports it as an event.

    ``subject`` is the :class:`Route` when the topic was valid, else the raw topic.
    """

    subject: Route | str
    reason: str

    @property
    def topic(self) -> str:
        return self.subject.topic if isinstance(self.subject, Route) else self.subject


@dataclass(frozen=True)
class LinkState:
    """The broker connection went up (``connected``) or down, and why."""

    connected: bool
    reason: str
    connection: int = 0  # the link's connection count (1 for the first)


@dataclass(frozen=True)
class RetainedSynced:
    """Every retained message the broker holds for the panel's subscriptions has arrived
    (they are in the inbox before this). ``remembered``: the broker still held the
    marker the panel left at its previous connection, so it kept its retained messages:
    an alert topic with nothing retained was cancelled. False: the broker lost them
    (restarted without persistence), or this is the first connection."""

    remembered: bool
    alert_topics: frozenset[str] = frozenset()  # the alert topics it delivered something on
    connection: int = 0  # the link's connection count it belongs to


@dataclass(frozen=True)
class LinkError:
    """Something failed inside the network thread; it kept running."""

    reason: str


@dataclass(frozen=True)
class Fetched:
    """An asset download finished: ``path`` on success, else ``reason``."""

    sha: str
    url: str
    path: Path | None
    reason: str | None = None


# -- commands (CONTRACT §6) ---------------------------------------------------

COMMANDS = ("identify", "screenshot", "brightness", "reload", "restart", "wake", "sleep", "update", "rollback")
REQUEST_ID_PATTERN = r"[^\x00-\x1f\x7f]{1,128}"
MAX_COMMAND_BYTES = 4096
_FIELDS: dict[str, tuple[str, ...]] = {
    "identify": ("seconds",),
    "screenshot": (),
    "brightness": ("value", "seconds"),
    "reload": (),
    "restart": (),
    "wake": ("seconds",),
    "sleep": ("seconds",),
    "update": ("bundle", "size", "version", "parts"),
    "rollback": (),
}
BUNDLE_PATTERN = r"sha256:[0-9a-f]{64}"
VERSION_PATTERN = r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}"  # a release's version, also a folder name (versions/<V>)
MAX_BUNDLE_BYTES = 1 << 30
IDENTIFY_DEFAULT_SECONDS = 30


@dataclass(frozen=True)
class Command:
    """A validated command. ``seconds``: identify time, brightness override length
    (``None`` for a brightness override until the next one or a reload), wake time
    (``None``: the default), sleep time (``None``: until the schedule next lights the
    screen); ``value``: brightness percent 0..100. ``update``: ``bundle`` (``sha256:<hex>``
    of the bundle file), its ``size`` in bytes, the ``version`` it holds and ``parts``
    (``sha256:<hex>`` of the parts index, the asset listing the bundle's parts)."""

    id: str
    cmd: str
    seconds: int | None = None
    value: int | None = None
    bundle: str | None = None
    size: int | None = None
    version: str | None = None
    parts: str | None = None


class CommandError(ContentError):
    """An invalid command; ``request`` and ``cmd`` are set when readable, so the
    answer can still be a ``command.failed`` carrying the request id."""

    def __init__(self, errors: list[str], request: str | None = None, cmd: str | None = None) -> None:
        self.request = request
        self.cmd = cmd
        super().__init__(errors, "command")


def parse_command(payload: bytes | str) -> Command:
    """Decode and validate a command, or raise :class:`CommandError` with every reason."""
    try:
        data = decode_json(payload, "command", max_bytes=MAX_COMMAND_BYTES)
    except ContentError as exc:
        raise CommandError(exc.errors) from None
    problems = Problems()
    root = Node(data, "", problems)
    if not isinstance(data, dict):
        root.is_mapping()
        raise CommandError(problems.errors)
    request = root.string("id", pattern=REQUEST_ID_PATTERN)
    cmd = root.string("cmd", choices=COMMANDS, max_length=32)
    fields = _FIELDS.get(cmd, ()) if cmd else tuple(k for f in _FIELDS.values() for k in f)
    root.is_mapping({"id", "cmd", *fields})
    seconds = value = None
    if cmd == "identify":
        seconds = root.integer("seconds", IDENTIFY_DEFAULT_SECONDS, minimum=1, maximum=86400)
    elif cmd == "brightness":
        value = root.integer("value", minimum=0, maximum=100)
        seconds = root.integer("seconds", None, minimum=1, maximum=86400)
    elif cmd in ("wake", "sleep"):
        seconds = root.integer("seconds", None, minimum=1, maximum=7 * 86400)
    bundle = size = version = parts = None
    if cmd == "update":
        bundle = root.string("bundle", pattern=BUNDLE_PATTERN)
        size = root.integer("size", minimum=1, maximum=MAX_BUNDLE_BYTES)
        version = root.string("version", pattern=VERSION_PATTERN)
        parts = root.string("parts", pattern=BUNDLE_PATTERN)
    if problems:
        raise CommandError(problems.errors, request, cmd)
    assert request is not None and cmd is not None
    return Command(request, cmd, seconds, value, bundle, size, version, parts)


# -- events (CONTRACT §7) -----------------------------------------------------

ALERT_END_REASONS = ("expired", "cancelled")


def iso_utc(when: datetime | float) -> str:
    """An aware datetime or a ``time.time()`` value as ISO 8601 UTC with ``Z``, to the millisecond."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("a naive datetime has no known offset")
        moment = when.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(when, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_now() -> str:
    """Now, as ISO 8601 UTC with ``Z`` (``2026-11-25T18:00:00.123Z``)."""
    return iso_utc(datetime.now(timezone.utc))


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "ts": iso_now()}
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def event_playlist_applied(playlist_id: str, version: int) -> dict[str, Any]:
    return _event("playlist.applied", playlist=playlist_id, version=version)


def event_playlist_rejected(reason: str, playlist: str | None = None,
                            version: int | None = None) -> dict[str, Any]:
    """``playlist``/``version`` are included when the rejected payload told them."""
    return _event("playlist.rejected", reason=reason, playlist=playlist, version=version)


def event_alert_displayed(alert: str, displayed_at: datetime | float, brightness: int | None = None,
                          below_floor: bool = False, title_at: datetime | float | None = None) -> dict[str, Any]:
    """``displayed_at``: when the first frame showing the whole alert (title and body) went
    to the display, lit; ``title_at``: the first frame with its title (an extension);
    ``brightness``: the percent it was shown at (null when unknown); ``derated``: true when
    thermal derating kept it below ``alerts.min_brightness``."""
    event = _event("alert.displayed", alert=alert, displayed_at=iso_utc(displayed_at),
                   title_at=None if title_at is None else iso_utc(title_at))
    event["brightness"] = brightness
    if below_floor:
        event["derated"] = True
    return event


SCREEN_EVENTS = ("screen.asleep", "screen.woken", "screen.on")


def event_screen(kind: str, reason: str, alert: str | None = None, how: str | None = None) -> dict[str, Any]:
    """``screen.asleep`` (``reason``: ``schedule``, ``sleep command``, ``alert ended``, …;
    ``how``: how the picture was switched off), ``screen.woken`` (in the sleep hours;
    ``reason`` ``alert`` with the ``alert`` id, or ``wake command``), ``screen.on``."""
    if kind not in SCREEN_EVENTS:
        raise ValueError(f"screen event must be one of {SCREEN_EVENTS}, got {kind!r}")
    return _event(kind, reason=reason, alert=alert, how=how)


def event_alert_ended(alert: str, reason: str) -> dict[str, Any]:
    if reason not in ALERT_END_REASONS:
        raise ValueError(f"alert end reason must be one of {ALERT_END_REASONS}, got {reason!r}")
    return _event("alert.ended", alert=alert, reason=reason)


def event_alert_rejected(alert: str, reason: str) -> dict[str, Any]:
    return _event("alert.rejected", alert=alert, reason=reason)


def event_command_done(request: str, cmd: str) -> dict[str, Any]:
    return _event("command.done", request=request, cmd=cmd)


def event_command_failed(request: str | None, cmd: str | None, reason: str) -> dict[str, Any]:
    """``request``/``cmd`` may be ``None`` when the command was unreadable; they are then sent as null."""
    event = _event("command.failed", reason=reason)
    event["request"] = request
    event["cmd"] = cmd
    return event


def event_error(reason: str) -> dict[str, Any]:
    return _event("error", reason=reason)


# -- updates (docs/protocol.md, "Updates") -------------------------------------------------------

def event_update_failed(version: str, reason: str) -> dict[str, Any]:
    """The update to ``version`` was refused or failed before the switch; nothing changed."""
    return _event("update.failed", version=version, reason=reason)


def event_update_applied(from_version: str, to_version: str) -> dict[str, Any]:
    """Sent by the new version once it passed its health check."""
    return _event("update.applied", **{"from": from_version, "to": to_version})


def event_update_rolled_back(from_version: str, to_version: str, reason: str) -> dict[str, Any]:
    """Sent by the old version once it runs again: ``from`` the new version that failed
    its health check (``reason``), ``to`` the version running now."""
    return _event("update.rolled_back", **{"from": from_version, "to": to_version, "reason": reason})

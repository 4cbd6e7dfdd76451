"""Alerts (CONTRACT §5): the alert model, the `alerts:` config section, and message parsing.

A message on ``P/{panels/ID,groups/G,all}/alerts/A`` is JSON, CAP 1.2 XML (see
:mod:`player.cap`) or empty. :func:`parse_alert_message` turns it into an
:class:`Alert` to show, a :class:`Cancel` to apply, ``None`` (a CAP alert whose
area does not contain this panel) or raises :class:`~player.errors.ContentError`
listing the reasons, for ``alert.rejected``.

Example::

    msg = parse_alert_message("crue-1", "all", "", b'{"level": "critical", "title": "CRUE"}',
                              now=datetime.now(timezone.utc), config=AlertsConfig(), location=None)
    msg.level    # "critical"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from .content import SHA_PATTERN, decode_json, parse_datetime
from .errors import ContentError
from .validate import Node, Problems, describe

LEVELS = ("info", "warning", "critical")  # rank by index
SCOPES = ("panel", "group", "all")
INFO_MODES = ("banner", "fullscreen")
ALERT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
"""Alert ids: letters, digits, ``_`` and ``-`` (no ``.``: see :func:`dot_reason`)."""
SCOPE_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
LANGUAGE_PATTERN = r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*"
MAX_TITLE = 200
MAX_TTL = 366 * 86400.0
DEFAULT_MAX_BYTES = 1_048_576


def level_rank(level: str) -> int:
    """``info`` → 0, ``warning`` → 1, ``critical`` → 2."""
    return LEVELS.index(level)


@dataclass(frozen=True)
class AlertsConfig:
    """The ``alerts:`` section of the panel config.

    ``languages``: CAP ``info`` language preference; ``allow_exercise`` /
    ``allow_test``: accept CAP ``status`` Exercise / Test (shown marked EXERCISE);
    ``flash``: the attention animation; ``max_body``: CAP bodies are cut to this
    many characters, longer JSON bodies are refused; ``turn_seconds``: how long each
    alert of the top level shows before the next; ``info_mode``: ``banner`` (an
    ``info`` alert is a band over the playlist) or ``fullscreen``; ``wake_level``: an
    alert at or above this level lights a sleeping screen (``display.sleep``) and is
    shown at ``min_brightness`` percent at least, whatever the night cap, the light
    sensor or a manual override say (only thermal derating may go lower).
    """

    languages: tuple[str, ...] = ("fr", "en")
    allow_exercise: bool = False
    allow_test: bool = False
    flash: bool = True
    max_body: int = 1000
    turn_seconds: float = 8.0
    info_mode: str = "banner"
    wake_level: str = "warning"
    min_brightness: int = 60

    def wakes(self, level: str) -> bool:
        """Whether an alert of ``level`` lights the screen and lifts the brightness."""
        return level_rank(level) >= level_rank(self.wake_level)


ALERTS_CONFIG_KEYS = ("languages", "allow_exercise", "allow_test", "flash", "max_body", "turn_seconds",
                      "info_mode", "wake_level", "min_brightness")


def parse_alerts_config(node: Node) -> AlertsConfig:
    """Read the ``alerts:`` section; problems (unknown keys included) go to ``node.problems``."""
    d = AlertsConfig()
    if node.value is None:
        return d
    if not node.is_mapping(ALERTS_CONFIG_KEYS):
        return d
    languages = d.languages
    items = node.items("languages", None, min_items=1, max_items=16)
    if items is not None:
        picked = [item.as_string(pattern=LANGUAGE_PATTERN) for item in items]
        if all(p is not None for p in picked):
            languages = tuple(str(p).lower() for p in picked)
    return AlertsConfig(
        languages=languages,
        allow_exercise=bool(node.boolean("allow_exercise", d.allow_exercise)),
        allow_test=bool(node.boolean("allow_test", d.allow_test)),
        flash=bool(node.boolean("flash", d.flash)),
        max_body=int(node.integer("max_body", d.max_body, minimum=10, maximum=20000)),
        turn_seconds=float(node.number("turn_seconds", d.turn_seconds, minimum=1, maximum=3600)),
        info_mode=str(node.string("info_mode", d.info_mode, choices=INFO_MODES)),
        wake_level=str(node.string("wake_level", d.wake_level, choices=LEVELS)),
        min_brightness=int(node.integer("min_brightness", d.min_brightness, minimum=1, maximum=100)),
    )


@dataclass(frozen=True)
class CapRef:
    """One CAP ``references`` entry: the message ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: str

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class Alert:
    """An alert to show. ``(scope, scope_name, id)`` is its key on the board.

    ``scope_name`` is the panel id, the group name, or ``""`` for ``all``.
    ``expires`` is an aware datetime (wall clock); ``ttl`` seconds count from
    receipt on the monotonic clock. ``asset`` is a sha256 hex digest.
    ``exercise``: a CAP Exercise/Test message, shown marked EXERCISE.
    ``cap_references``: the CAP messages this one updates.
    """

    id: str
    scope: str
    scope_name: str
    level: str
    title: str
    body: str = ""
    expires: datetime | None = None
    ttl: float | None = None
    asset: str | None = None
    exercise: bool = False
    source: str = "json"
    cap_identifier: str | None = None
    cap_sender: str | None = None
    cap_sent: datetime | None = None
    cap_references: tuple[CapRef, ...] = ()
    signed_by: str | None = None  # the key id of its signature (trust.keys); None: unsigned

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scope, self.scope_name, self.id)


@dataclass(frozen=True)
class Cancel:
    """End alerts: ``ids`` on the scope the message came from, and the CAP
    messages in ``references`` on any scope (see :meth:`AlertBoard.apply_cancel`).
    The reason reported is ``cancelled``."""

    ids: tuple[str, ...]
    scope: str = "all"
    scope_name: str = ""
    references: tuple[CapRef, ...] = ()


AlertMessage = Union[Alert, Cancel, None]


def dot_reason(text: str, what: str = "alert id", lost: str = "the alert would never reach the panels") -> str:
    """The one sentence that refuses a ``.`` in an alert id (or, with ``what="prefix"``, a topic prefix).

    Shared by the panel (``alert.rejected``), panelctl and the console, so that
    every refusal says the same thing.
    """
    return (f'{what} {describe(text)}: "." is not allowed: brokers that map MQTT topics to AMQP '
            f'routing keys (RabbitMQ) turn it into a topic level, and {lost}; use "-" or "_"')


def check_alert_id(alert_id: str) -> None:
    """Raise :class:`ContentError` unless ``alert_id`` is a valid last topic level."""
    if not isinstance(alert_id, str):
        raise ContentError([f"alert id must be a string, got {describe(alert_id)}"], "alert")
    if "+" in alert_id or "#" in alert_id:
        raise ContentError([f"alert id {describe(alert_id)} contains an MQTT wildcard (+ or #)"], "alert")
    if "/" in alert_id:
        raise ContentError([f"alert id {describe(alert_id)} contains '/'"], "alert")
    if "." in alert_id:
        raise ContentError([dot_reason(alert_id)], "alert")
    if not re.fullmatch(ALERT_ID_PATTERN, alert_id):
        raise ContentError([f"alert id {describe(alert_id)} does not match {ALERT_ID_PATTERN}"], "alert")


def check_scope(scope: str, scope_name: str) -> None:
    """Raise :class:`ContentError` for a scope that no alert topic can have."""
    if scope not in SCOPES:
        raise ContentError([f"alert scope must be one of {', '.join(SCOPES)}, got {describe(scope)}"], "alert")
    if scope == "all":
        if scope_name:
            raise ContentError([f"the all scope takes no name, got {describe(scope_name)}"], "alert")
    elif not isinstance(scope_name, str) or not re.fullmatch(SCOPE_NAME_PATTERN, scope_name):
        raise ContentError([f"{scope} name {describe(scope_name)} does not match {SCOPE_NAME_PATTERN}"], "alert")


def parse_alert_message(alert_id: str, scope: str, scope_name: str | None, payload: bytes, *, now: datetime,
                        config: AlertsConfig, location: tuple[float, float] | None,
                        max_bytes: int = DEFAULT_MAX_BYTES) -> Alert | Cancel | None:
    """Parse the payload of an alert topic.

    ``scope_name``: the panel id or group name; ``""`` or ``None`` for ``all``.
    Empty payload → ``Cancel((alert_id,))``. A first non-space byte ``<`` means
    CAP 1.2 XML, anything else JSON. ``None``: a CAP alert for an area that does
    not contain ``location`` (the caller ends any alert with that id).
    Raises :class:`ContentError` with every reason found.
    """
    scope_name = scope_name or ""
    check_alert_id(alert_id)
    check_scope(scope, scope_name)
    if not isinstance(payload, (bytes, bytearray)):
        raise ContentError([f"payload must be bytes, got {type(payload).__name__}"], "alert")
    if len(payload) == 0:
        return Cancel(ids=(alert_id,), scope=scope, scope_name=scope_name)
    if len(payload) > max_bytes:
        raise ContentError([f"payload too large ({len(payload)} bytes, at most {max_bytes})"], "alert")
    if payload.lstrip()[:1] == b"<":
        from .cap import parse_cap  # cap imports this module's model

        return parse_cap(alert_id, scope, scope_name, bytes(payload), now=now, config=config,
                         location=location)
    return alert_from_data(alert_id, scope, scope_name, decode_json(payload, "alert"), now=now, config=config)


def alert_from_data(alert_id: str, scope: str, scope_name: str, data: Any, *, now: datetime,
                    config: AlertsConfig) -> Alert:
    """Validate a decoded JSON alert (CONTRACT §5); raises :class:`ContentError` listing every problem.

    Besides the contract's keys, ``"exercise": true`` marks a drill, accepted
    only when ``allow_exercise`` is set.
    """
    problems = Problems()
    root = Node(data, "", problems)
    if not root.is_mapping({"level", "title", "body", "expires", "ttl", "asset", "exercise"}):
        raise ContentError(problems.errors, "alert")
    level = root.string("level", choices=LEVELS)
    title = root.string("title", max_length=MAX_TITLE)
    if isinstance(title, str) and not title.strip():
        problems.add("title", "must not be blank")
    body = root.string("body", "", allow_empty=True)
    if isinstance(body, str) and len(body) > config.max_body:
        problems.add("body", f"too long ({len(body)} characters, at most {config.max_body})")
    expires = None
    if root.has("expires"):
        raw = root.value["expires"]
        try:
            expires = parse_datetime(raw)
        except (ValueError, TypeError):
            problems.add("expires", f"expected an ISO 8601 date-time with an offset, got {describe(raw)}")
        else:
            if expires <= now:
                problems.add("expires", f"expired at {expires.isoformat()} (now {now.isoformat()})")
    ttl = root.number("ttl", None, minimum=0, maximum=MAX_TTL, exclusive_minimum=True)
    asset = root.string("asset", None, pattern=SHA_PATTERN)
    exercise = bool(root.boolean("exercise", False))
    if exercise and not config.allow_exercise:
        problems.add("exercise", "exercise alerts are refused (alerts.allow_exercise is false)")
    if problems:
        raise ContentError(problems.errors, "alert")
    return Alert(id=alert_id, scope=scope, scope_name=scope_name, level=level, title=title.strip(),
                 body=body or "", expires=expires, ttl=None if ttl is None else float(ttl),
                 asset=asset[7:] if asset else None, exercise=exercise, source="json")

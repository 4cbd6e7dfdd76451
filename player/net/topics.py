"""MQTT topic names of CONTRACT §3: build them, parse them, validate every level.

Topics come from the broker, and a broker relays whatever a client publishes,
so :meth:`Topics.parse` treats each topic as hostile and says precisely what is
wrong with it.

Example::

    topics = PanelTopics("signage", "mairie-entree", ["centre-ville"])
    topics.panel_playlist()            # 'signage/panels/mairie-entree/playlist'
    route = topics.parse_inbound("signage/groups/centre-ville/alerts/crue-1")
    route.kind, route.scope, route.alert   # ('alert', 'group', 'crue-1')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..alerts import ALERT_ID_PATTERN, dot_reason
from ..errors import ContentError
from ..validate import describe

PANEL_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
"""Panel ids and group names (CONTRACT §2)."""
SHA_HEX_PATTERN = r"[0-9a-f]{64}"
MAX_TOPIC_BYTES = 1024
MAX_PREFIX_LEVEL = 64

SERVER_TO_PANEL = ("playlist", "alert", "asset", "cmd", "alert-index")
ALERT_INDEX_LEAF = "alert-index"
"""``P/all/alert-index``, ``P/groups/G/alert-index``, ``P/panels/ID/alert-index``:
the retained list of a scope's active alert ids (a hint, see docs/protocol.md)."""
FLEET_LEAF = "fleet"
PANEL_TO_SERVER = ("online", "heartbeat", "events", "screenshot")
_PANEL_LEAVES = ("playlist", "cmd") + PANEL_TO_SERVER


class TopicError(ContentError):
    """A topic or topic level is not one of CONTRACT §3; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__([reason], "topic")


@dataclass(frozen=True)
class Route:
    """What a topic addresses.

    ``kind``: playlist | alert | asset | cmd | alert-index (server → panel) or
    online | heartbeat | events | screenshot (panel → server), or fleet
    (``P/fleet``, read by panelctl and the console).
    ``scope``: panel | group | all. ``name``: the panel id or group name
    (``None`` for scope ``all``). ``alert``: the alert id; ``sha``: the asset's
    lowercase hex sha256.
    """

    kind: str
    scope: str
    name: str | None
    topic: str
    alert: str | None = None
    sha: str | None = None


def _show(text: str) -> str:
    return describe(text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_level(text: str, what: str) -> None:
    """Raise :class:`TopicError` unless ``text`` is a usable single topic level."""
    if not isinstance(text, str):
        raise TopicError(f"{what} must be a string, got {describe(text)}")
    if text == "":
        raise TopicError(f"{what} is empty")
    for bad, name in (("\x00", "a NUL character"), ("+", 'the wildcard "+"'),
                      ("#", 'the wildcard "#"'), ("/", 'a "/"')):
        if bad in text:
            raise TopicError(f"{what} {_show(text)} contains {name}")
    if _CONTROL.search(text):
        raise TopicError(f"{what} {_show(text)} contains a control character")


def _check_pattern(text: str, pattern: str, what: str, rule: str) -> None:
    check_level(text, what)
    if not re.fullmatch(pattern, text):
        raise TopicError(f"{what} {_show(text)} is not valid ({rule})")


def check_panel_id(text: str, what: str = "panel id") -> None:
    _check_pattern(text, PANEL_ID_PATTERN, what, "lowercase letters, digits and '-', at most 63")


def check_alert_id(text: str) -> None:
    check_level(text, "alert id")
    if "." in text:
        raise TopicError(dot_reason(text))
    _check_pattern(text, ALERT_ID_PATTERN, "alert id",
                   "letters, digits, _ and -, starting with a letter or digit, at most 64")


def check_sha(text: str) -> None:
    _check_pattern(text, SHA_HEX_PATTERN, "asset sha256", "64 lowercase hex digits")


def check_prefix(prefix: str) -> None:
    """The topic root: one or more levels, no wildcard, not a ``$`` system topic."""
    if not isinstance(prefix, str) or prefix == "":
        raise TopicError("prefix is empty")
    if prefix.startswith("$"):
        raise TopicError(f"prefix {_show(prefix)} must not start with '$' (reserved by brokers)")
    if "." in prefix:
        raise TopicError(dot_reason(prefix, "prefix", "no message would reach the panels"))
    for level in prefix.split("/"):
        check_level(level, "prefix level")
        if len(level) > MAX_PREFIX_LEVEL:
            raise TopicError(f"prefix level {_show(level)} is longer than {MAX_PREFIX_LEVEL} characters")


class Topics:
    """Every CONTRACT §3 topic under ``prefix``, for any panel or group."""

    def __init__(self, prefix: str) -> None:
        check_prefix(prefix)
        self.prefix = prefix

    # -- building ------------------------------------------------------------
    def _panel(self, panel_id: str, leaf: str) -> str:
        check_panel_id(panel_id)
        return f"{self.prefix}/panels/{panel_id}/{leaf}"

    def panel_playlist_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "playlist")

    def group_playlist(self, group: str) -> str:
        check_panel_id(group, "group")
        return f"{self.prefix}/groups/{group}/playlist"

    def panel_alert_of(self, panel_id: str, alert: str) -> str:
        check_alert_id(alert)
        return self._panel(panel_id, f"alerts/{alert}")

    def group_alert(self, group: str, alert: str) -> str:
        check_panel_id(group, "group")
        check_alert_id(alert)
        return f"{self.prefix}/groups/{group}/alerts/{alert}"

    def all_alert(self, alert: str) -> str:
        check_alert_id(alert)
        return f"{self.prefix}/all/alerts/{alert}"

    def alert_index(self, scope: str, name: str | None = None) -> str:
        """The exact, retained topic of the active alert ids of one scope.

        ``alert_index("all", None)`` → ``P/all/alert-index``;
        ``alert_index("group", "g")`` → ``P/groups/g/alert-index``;
        ``alert_index("panel", "id")`` → ``P/panels/id/alert-index``.
        """
        if scope == "all":
            if name:
                raise TopicError(f"the all scope takes no name, got {_show(name)}")
            return f"{self.prefix}/all/{ALERT_INDEX_LEAF}"
        if scope == "group":
            check_panel_id(name or "", "group")
            return f"{self.prefix}/groups/{name}/{ALERT_INDEX_LEAF}"
        if scope == "panel":
            return self._panel(name or "", ALERT_INDEX_LEAF)
        raise TopicError(f"alert scope must be one of panel, group, all, got {_show(scope)}")

    def fleet_index(self) -> str:
        """``P/fleet``: the retained list of known panel ids (kept by panelctl and the console)."""
        return f"{self.prefix}/{FLEET_LEAF}"

    def asset(self, sha: str) -> str:
        """``P/assets/SHA``; accepts ``sha256:<hex>`` or the bare hex digest."""
        sha = sha.removeprefix("sha256:")
        check_sha(sha)
        return f"{self.prefix}/assets/{sha}"

    def cmd_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "cmd")

    def online_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "online")

    def heartbeat_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "heartbeat")

    def events_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "events")

    def screenshot_of(self, panel_id: str) -> str:
        return self._panel(panel_id, "screenshot")

    def all_panels(self, leaf: str) -> str:
        """A subscription filter for ``leaf`` of every panel, e.g. ``P/panels/+/online``."""
        if leaf not in _PANEL_LEAVES and leaf != "alerts/+":
            raise TopicError(f"unknown panel topic {_show(leaf)}")
        return f"{self.prefix}/panels/+/{leaf}"

    def subscriptions_for(self, panel_id: str, groups: Sequence[str]) -> list[str]:
        """The filters a panel always subscribes to (all QoS 1).

        Asset topics are not among them: a panel subscribes to ``P/assets/SHA``
        only for the assets its playlists need (:meth:`MqttLink.want_assets`),
        so it never downloads the whole fleet's retained images.
        """
        subs = [self.panel_playlist_of(panel_id)]
        subs += [self.group_playlist(g) for g in groups]
        subs.append(self._panel(panel_id, "alerts/+"))
        subs += [f"{self.prefix}/groups/{g}/alerts/+" for g in groups]
        subs.append(f"{self.prefix}/all/alerts/+")
        subs.append(self.cmd_of(panel_id))
        return subs

    # -- parsing -------------------------------------------------------------
    def parse(self, topic: str) -> Route:
        """Route any CONTRACT §3 topic, or raise :class:`TopicError` saying why not."""
        if not isinstance(topic, str):
            raise TopicError(f"topic must be a string, got {describe(topic)}")
        size = len(topic.encode("utf-8", "surrogatepass"))
        if size > MAX_TOPIC_BYTES:
            raise TopicError(f"topic is too long ({size} bytes, at most {MAX_TOPIC_BYTES})")
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic {_show(topic)} is not under the prefix {_show(self.prefix)}")
        levels = topic[len(head):].split("/")
        for i, level in enumerate(levels):
            if level == "":
                raise TopicError(f"topic {_show(topic)} has an empty level (number {i + 1} after the prefix)")
            check_level(level, "topic level")
        n = len(levels)
        first = levels[0]
        if first == "panels" and n >= 3:
            check_panel_id(levels[1])
            if n == 3 and levels[2] in _PANEL_LEAVES + (ALERT_INDEX_LEAF,):
                return Route(levels[2], "panel", levels[1], topic)
            if n == 4 and levels[2] == "alerts":
                check_alert_id(levels[3])
                return Route("alert", "panel", levels[1], topic, alert=levels[3])
        elif first == "groups" and n >= 3:
            check_panel_id(levels[1], "group")
            if n == 3 and levels[2] in ("playlist", ALERT_INDEX_LEAF):
                return Route(levels[2], "group", levels[1], topic)
            if n == 4 and levels[2] == "alerts":
                check_alert_id(levels[3])
                return Route("alert", "group", levels[1], topic, alert=levels[3])
        elif first == "all" and n == 3 and levels[1] == "alerts":
            check_alert_id(levels[2])
            return Route("alert", "all", None, topic, alert=levels[2])
        elif first == "all" and n == 2 and levels[1] == ALERT_INDEX_LEAF:
            return Route(ALERT_INDEX_LEAF, "all", None, topic)
        elif first == FLEET_LEAF and n == 1:
            return Route(FLEET_LEAF, "all", None, topic)
        elif first == "assets" and n == 2:
            check_sha(levels[1])
            return Route("asset", "all", None, topic, sha=levels[1])
        raise TopicError(f"topic {_show(topic)} is not a panel-player topic")


class PanelTopics(Topics):
    """The topics of one panel: what it publishes, subscribes to and accepts."""

    def __init__(self, prefix: str, panel_id: str, groups: Sequence[str] = ()) -> None:
        super().__init__(prefix)
        check_panel_id(panel_id)
        for g in groups:
            check_panel_id(g, "group")
        self.panel_id = panel_id
        self.groups = tuple(groups)

    def panel_playlist(self) -> str:
        return self.panel_playlist_of(self.panel_id)

    def panel_alert(self, alert: str) -> str:
        return self.panel_alert_of(self.panel_id, alert)

    def cmd(self) -> str:
        return self.cmd_of(self.panel_id)

    def online(self) -> str:
        return self.online_of(self.panel_id)

    def heartbeat(self) -> str:
        return self.heartbeat_of(self.panel_id)

    def events(self) -> str:
        return self.events_of(self.panel_id)

    def screenshot(self) -> str:
        return self.screenshot_of(self.panel_id)

    def subscriptions(self) -> list[str]:
        return self.subscriptions_for(self.panel_id, self.groups)

    def parse_inbound(self, topic: str) -> Route:
        """Route a topic received by this panel; anything not addressed to it is refused."""
        route = self.parse(topic)
        if route.kind not in SERVER_TO_PANEL:
            raise TopicError(f"topic {_show(topic)} is a panel → server topic")
        if route.scope == "panel" and route.name != self.panel_id:
            raise TopicError(f"topic {_show(topic)} is for panel {_show(route.name or '')}, "
                             f"not {_show(self.panel_id)}")
        if route.scope == "group" and route.name not in self.groups:
            raise TopicError(f"topic {_show(topic)} is for group {_show(route.name or '')}, "
                             "which this panel is not in")
        return route

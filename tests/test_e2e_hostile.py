"""A real player process and a real broker: hostile and broken input (issue 3, "Bad input").

Each bad message must be answered on the events topic with its reason
(``playlist.rejected`` / ``alert.rejected`` / ``command.failed`` / ``error``),
leave the picture as it was and the process running. The generated test sends
more than a thousand bad messages through the broker, then checks that a good
playlist still applies.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fixtures_broker import Broker
from fixtures_player import PREFIX, PanelProcess, rgb, text_playlist
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from player.alerts import Alert, AlertsConfig, parse_alert_message
from player.config import known_layouts
from player.errors import ContentError
from player.net.protocol import CommandError, parse_command

GREEN = "#12ab34"
REJECTIONS = ("playlist.rejected", "alert.rejected", "command.failed", "error")


def good_playlist(version: int = 1, colour: str = GREEN) -> dict[str, Any]:
    return text_playlist("bon", version, colour, ticker=["Collecte jeudi"])


def showing_good(p: PanelProcess) -> bytes:
    mark = p.sub.mark()
    p.publish(f"panels/{p.id}/playlist", good_playlist(), retain=True)
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour(rgb(GREEN))
    return p.picture().tobytes()


def still_good(p: PanelProcess, picture: bytes) -> None:
    assert p.proc is not None and p.proc.poll() is None, f"the player died:\n{p.log_text()[-3000:]}"
    assert p.picture().tobytes() == picture, "the picture changed"


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


# -- hand-picked cases ------------------------------------------------------------------

BIG = "x" * 17_000  # mqtt.max_message_kb is 16 in these tests

PLAYLIST_CASES = [
    ("malformed JSON", b'{"id": "x", "version": ', "not valid JSON"),
    ("wrong type", dumps({**good_playlist(2), "version": "2"}), "version"),
    ("unknown field", dumps({**good_playlist(2), "colour": "#ff0000"}), "colour"),
    ("unknown slide type", dumps({**good_playlist(2), "slides": [{"id": "v", "type": "video", "src": "a.mp4"}]}),
     "video"),
    ("invalid UTF-8", b'{"id": "bon", "version": 2, "slides": [{"id": "s", "type": "text", "title": "\xff\xfe"}]}',
     "UTF-8"),
    ("oversize", dumps({**good_playlist(2), "ticker": [BIG]}), "too large"),
    ("very long id", dumps({**good_playlist(2), "id": "a" * 300}), "id"),
    ("not a mapping", b"[1, 2, 3]", "mapping"),
    ("NaN", b'{"id": "bon", "version": NaN, "slides": []}', "NaN"),
]


@pytest.mark.parametrize("retain", [True, False])
def test_bad_playlists_are_rejected_with_their_reason_and_change_nothing(panel, retain):
    p = panel(extra={"mqtt": {"max_message_kb": 16}})
    picture = showing_good(p)
    for name, payload, reason in PLAYLIST_CASES:
        mark = p.sub.mark()
        p.publish("panels/p1/playlist", payload, retain=retain)
        event = p.wait_event("playlist.rejected", after=mark)
        assert reason in event["reason"], (name, event)
        still_good(p, picture)


ALERT_CASES = [
    ("malformed JSON", "a1", b'{"level": "critical", ', "not valid JSON"),
    ("unknown level", "a1", dumps({"level": "apocalypse", "title": "Fin"}), "level"),
    ("wrong type", "a1", dumps({"level": "critical", "title": 42}), "title"),
    ("unknown field", "a1", dumps({"level": "critical", "title": "Crue", "colour": "red"}), "colour"),
    ("invalid UTF-8", "a1", b'{"level": "critical", "title": "\xc3\x28"}', "UTF-8"),
    ("oversize", "a1", dumps({"level": "critical", "title": "Crue", "body": BIG}), "too large"),
    ("expired", "a1", dumps({"level": "critical", "title": "Crue", "expires": "2001-01-01T00:00:00Z"}), "expire"),
    ("broken CAP", "a1", b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><status>", "XML"),
]


def test_bad_alerts_are_rejected_with_their_reason_and_change_nothing(panel):
    p = panel(extra={"mqtt": {"max_message_kb": 16}})
    picture = showing_good(p)
    for name, alert, payload, reason in ALERT_CASES:
        mark = p.sub.mark()
        p.publish(f"panels/p1/alerts/{alert}", payload, retain=True)
        event = p.wait_event("alert.rejected", after=mark)
        assert event["alert"] == alert and reason in event["reason"], (name, event)
        still_good(p, picture)


@pytest.mark.parametrize("level", ["with space", "é-accent", "a" * 300, "-dash-first", "x.y:z", "dollar$"])
def test_odd_alert_topic_levels_are_refused_with_their_reason(panel, level):
    p = panel()
    picture = showing_good(p)
    mark = p.sub.mark()
    p.publish(f"panels/p1/alerts/{level}", dumps({"level": "critical", "title": "Crue"}), retain=True)
    event = p.wait_event("alert.rejected", after=mark)
    # The event echoes the refused id, bounded (at most 200 characters).
    assert event["alert"] == level[:200] and "alert id" in event["reason"], event
    still_good(p, picture)


def test_wildcards_cannot_even_be_published():
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wild")
    for topic in (f"{PREFIX}/panels/p1/alerts/+", f"{PREFIX}/panels/#", f"{PREFIX}/panels/p1/alerts/a+b"):
        with pytest.raises(ValueError):
            client.publish(topic, b"{}", qos=1)


COMMAND_CASES = [
    ("malformed JSON", b'{"id": "c0", "cmd": ', None, "not valid JSON"),
    ("wrong type", dumps({"id": "c1", "cmd": "brightness", "value": "high"}), "c1", "value"),
    ("unknown field", dumps({"id": "c2", "cmd": "identify", "shell": "rm -rf /"}), "c2", "shell"),
    ("unknown command", dumps({"id": "c3", "cmd": "exec", "path": "/bin/sh"}), "c3", "exec"),
    ("id of the wrong type", dumps({"id": 7, "cmd": "reload"}), None, "id"),
    ("invalid UTF-8", b'{"id": "c5", "cmd": "identify\xff"}', None, "UTF-8"),
    ("oversize", dumps({"id": "c6", "cmd": "identify", "pad": BIG}), None, "too large"),
    ("negative seconds", dumps({"id": "c7", "cmd": "identify", "seconds": -5}), "c7", "seconds"),
]


def test_bad_commands_fail_with_their_reason_and_change_nothing(panel):
    p = panel(extra={"mqtt": {"max_message_kb": 16}})
    picture = showing_good(p)
    for name, payload, request, reason in COMMAND_CASES:
        mark = p.sub.mark()
        p.publish("panels/p1/cmd", payload)
        event = p.wait_event("command.failed", after=mark)
        assert event["request"] == request and reason in event["reason"], (name, event)
        still_good(p, picture)


def test_asset_bytes_that_do_not_match_their_topic_are_refused(panel, broker):
    p = panel()
    picture = showing_good(p)
    buf = io.BytesIO()
    Image.new("RGB", (160, 90), (200, 30, 100)).save(buf, "PNG")
    image = buf.getvalue()
    digest = hashlib.sha256(image).hexdigest()
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", {"id": "img", "version": 1, "slides": [
        {"id": "i", "type": "image", "asset": f"sha256:{digest}", "fit": "stretch", "duration": 3600}]}, retain=True)
    p.publish(f"assets/{digest}", b"\x89PNG not the image at all", retain=True)
    event = p.wait_event("error", after=mark)
    assert digest in event["reason"] and "sha256" in event["reason"], event
    still_good(p, picture)
    assert not (p.folder / "state" / "assets" / digest).exists()
    assert not [e for e in p.events(mark) if e["type"] == "playlist.applied"]

    p.publish(f"assets/{digest}", image, retain=True)  # the right bytes: now it applies
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour((200, 30, 100), at=(80, 45))


# -- generated bad input -------------------------------------------------------------------

ALERT_CFG = AlertsConfig()
LAYOUTS = known_layouts()
NOW = datetime.now(timezone.utc)


def _is_bad_playlist(payload: bytes) -> bool:
    from player.content import parse_playlist

    try:
        parse_playlist(payload, max_bytes=1024 * 1024, layouts=LAYOUTS)
    except ContentError:
        return True
    return False


def _is_bad_alert(alert: str, payload: bytes) -> bool:
    try:
        return not isinstance(parse_alert_message(alert, "panel", "p1", payload, now=NOW, config=ALERT_CFG,
                                                  location=None), Alert)
    except ContentError:
        return True


def _is_bad_command(payload: bytes) -> bool:
    try:
        parse_command(payload)
    except CommandError:
        return True
    return False


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
garbage = st.binary(min_size=1, max_size=200)
# Topic levels a broker relays: no wildcard, no "/", no control or NUL character.
odd_levels = st.text(st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="/+#"),
                     max_size=80)


@st.composite
def mutated_playlist(draw: st.DrawFn) -> bytes:
    data = copy.deepcopy(good_playlist(draw(st.integers(0, 50))))
    slide = data["slides"][0]
    how = draw(st.sampled_from(["drop", "retype", "unknown", "slide", "truncate", "style"]))
    if how == "drop":
        del data[draw(st.sampled_from(["id", "version", "slides"]))]
    elif how == "retype":
        data[draw(st.sampled_from(["id", "version", "slides", "layout", "ticker"]))] = draw(json_values)
    elif how == "unknown":
        data[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    elif how == "slide":
        slide[draw(st.sampled_from(["id", "type", "duration", "title", "schedule", "asset", "zzz"]))] = \
            draw(json_values)
    elif how == "style":
        slide["style"][draw(st.sampled_from(["background", "color", "align", "font"]))] = draw(json_values)
    raw = dumps(data)
    if how == "truncate":
        raw = raw[:draw(st.integers(1, len(raw) - 1))]
    return raw


@st.composite
def bad_command(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = {"id": draw(st.text(max_size=10) | st.integers()),
                            "cmd": draw(st.sampled_from(["identify", "brightness", "screenshot", "reload", "restart",
                                                         "format", ""]))}
    for key in draw(st.lists(st.sampled_from(["value", "seconds", "path", "id", "cmd"]), max_size=3)):
        data[key] = draw(json_values)
    return dumps(data)


@st.composite
def bad_alert(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = {"level": draw(st.sampled_from(["critical", "warning", "info", "CRITICAL", "panic"])),
                            "title": draw(st.text(max_size=20))}
    for key in draw(st.lists(st.sampled_from(["level", "title", "body", "expires", "ttl", "asset", "exercise",
                                              "zone"]), min_size=1, max_size=3)):
        data[key] = draw(json_values)
    return dumps(data)


playlist_topics = st.sampled_from(["panels/p1/playlist", "groups/g1/playlist"])
alert_topics = st.tuples(st.sampled_from(["panels/p1/alerts", "groups/g1/alerts", "all/alerts"]),
                         st.sampled_from(["crue", "vent-2"]) | odd_levels)

messages = st.one_of(
    st.tuples(playlist_topics, garbage | mutated_playlist() | json_values.map(dumps)).filter(
        lambda m: _is_bad_playlist(m[1])),
    st.tuples(alert_topics, garbage | bad_alert() | json_values.map(dumps)).filter(
        lambda m: _is_bad_alert(m[0][1], m[1])).map(lambda m: (f"{m[0][0]}/{m[0][1]}", m[1])),
    st.tuples(st.just("panels/p1/cmd"), garbage | bad_command() | json_values.map(dumps)).filter(
        lambda m: _is_bad_command(m[1])),
)


def generate(strategy: st.SearchStrategy[Any], count: int, per_example: int = 12) -> list[Any]:
    """At least ``count`` examples of ``strategy`` with a random retain flag, the same on every run.

    They are drawn ``per_example`` at a time: hypothesis's fixed cost per example
    would otherwise dominate.
    """
    out: list[Any] = []

    @settings(max_examples=-(-count // per_example) + 5, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(strategy, st.booleans()), min_size=per_example, max_size=per_example,
                    unique_by=lambda m: m[0]))
    def gather(drawn: list[tuple[tuple[str, bytes], bool]]) -> None:
        out.extend((leaf, payload, retain) for (leaf, payload), retain in drawn)

    gather()
    return out


class Flooder:
    """One persistent QoS 1 publisher, fast enough to send a thousand messages in a blink."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert connected.wait(5), "flooder could not connect"

    def send(self, batch: list[tuple[str, bytes, bool]]) -> None:
        infos = [self.client.publish(f"{PREFIX}/{leaf}", payload, qos=1, retain=retain)
                 for leaf, payload, retain in batch]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_thousand_generated_bad_messages_leave_the_panel_running_and_a_good_playlist_still_applies(panel, broker):
    batch = generate(messages, 1200)
    distinct = len({(leaf, payload) for leaf, payload, _ in batch})
    assert distinct >= 1000, f"only {distinct} different messages generated"
    kinds = {"playlist": 0, "alerts": 0, "cmd": 0}
    for leaf, _, _ in batch:
        kinds[next(k for k in kinds if f"/{k}" in f"/{leaf}")] += 1
    assert min(kinds.values()) >= 100, kinds

    p = panel(groups=["g1"])
    picture = showing_good(p)
    mark = p.sub.mark()
    flooder = Flooder(broker)
    try:
        flooder.send(batch)
    finally:
        flooder.close()
    settled_at = wait_quiet(p, quiet_s=1.5, timeout=60)
    # Then the panel still answers, at once.
    barrier = p.sub.mark()
    p.publish("panels/p1/cmd", dumps({"id": "fin-du-deluge", "cmd": "nope"}))
    p.wait_event("command.failed", after=barrier, timeout=5, where=lambda e: e.get("request") == "fin-du-deluge")

    events = [json.loads(m.payload) for m in p.sub.messages[mark:settled_at] if m.topic == f"{p.topic}/events"]
    counts = {kind: sum(1 for e in events if e["type"] == kind) for kind in REJECTIONS}
    print(f"\n{len(batch)} bad messages sent ({kinds}); rejection events back: {sum(counts.values())} {counts}")
    assert not [e for e in events if e["type"] in ("playlist.applied", "alert.displayed")]
    still_good(p, picture)

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", good_playlist(2, "#224466"), retain=True)
    p.wait_event("playlist.applied", after=mark, where=lambda e: e["version"] == 2)
    p.wait_colour(rgb("#224466"))

    # Each bad message is accounted for: answered one by one, or — past the rate limit on
    # refusals, which keeps the outgoing queue free for command answers — counted in a
    # summary `error` event. None may be silently thrown away.
    assert "Message queue full" not in p.log_text(), (
        f"the player dropped events under the flood: {sum(counts.values())} answers for {len(batch)} messages")
    held = sum(int(m.group(1)) for e in events if e["type"] == "error"
               for m in [re.match(r"(\d+) more refusals or errors were not sent one by one", e["reason"])] if m)
    summaries = sum(1 for e in events if e["type"] == "error" and "not sent one by one" in e["reason"])
    assert sum(counts.values()) - summaries + held == len(batch), (counts, held)
    assert counts["command.failed"] == kinds["cmd"]  # command answers are never held back


def wait_quiet(p: PanelProcess, quiet_s: float, timeout: float) -> int:
    """Wait until the panel has published nothing for ``quiet_s``; returns the message count then."""
    deadline = time.monotonic() + timeout
    last, since = p.sub.mark(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"the panel kept publishing for {timeout} s"
        time.sleep(0.05)
        now = p.sub.mark()
        if now != last:
            last, since = now, time.monotonic()
    return last

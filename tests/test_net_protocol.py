"""Topics (CONTRACT §3), commands (§6) and events (§7): pure functions, generated bad input."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.net.protocol import (
    Command,
    CommandError,
    event_alert_displayed,
    event_alert_ended,
    event_alert_rejected,
    event_screen,
    event_command_done,
    event_command_failed,
    event_error,
    event_playlist_applied,
    event_playlist_rejected,
    iso_now,
    iso_utc,
    parse_command,
)
from player.net.topics import PanelTopics, Route, TopicError, Topics

SHA = "ab" * 32
T = PanelTopics("signage", "mairie-entree", ["centre-ville", "quartier-sud"])


# -- topics -------------------------------------------------------------------------


def test_every_contract_topic_builds_and_parses_back() -> None:
    cases = {
        T.panel_playlist(): Route("playlist", "panel", "mairie-entree", T.panel_playlist()),
        T.group_playlist("centre-ville"): Route("playlist", "group", "centre-ville",
                                                "signage/groups/centre-ville/playlist"),
        T.panel_alert("crue-1"): Route("alert", "panel", "mairie-entree", T.panel_alert("crue-1"), alert="crue-1"),
        T.group_alert("quartier-sud", "a_b"): Route("alert", "group", "quartier-sud",
                                                    "signage/groups/quartier-sud/alerts/a_b", alert="a_b"),
        T.all_alert("X-1_y-z"): Route("alert", "all", None, "signage/all/alerts/X-1_y-z", alert="X-1_y-z"),
        T.alert_index("all"): Route("alert-index", "all", None, "signage/all/alert-index"),
        T.alert_index("group", "centre-ville"): Route("alert-index", "group", "centre-ville",
                                                      "signage/groups/centre-ville/alert-index"),
        T.alert_index("panel", "mairie-entree"): Route("alert-index", "panel", "mairie-entree",
                                                       "signage/panels/mairie-entree/alert-index"),
        T.asset("sha256:" + SHA): Route("asset", "all", None, f"signage/assets/{SHA}", sha=SHA),
        T.cmd(): Route("cmd", "panel", "mairie-entree", "signage/panels/mairie-entree/cmd"),
    }
    for topic, route in cases.items():
        assert T.parse_inbound(topic) == route
    assert T.panel_playlist() == "signage/panels/mairie-entree/playlist"
    assert T.asset(SHA) == f"signage/assets/{SHA}"
    for leaf in ("online", "heartbeat", "events", "screenshot"):
        topic = getattr(T, leaf)()
        assert topic == f"signage/panels/mairie-entree/{leaf}"
        assert T.parse(topic).kind == leaf
        with pytest.raises(TopicError, match="panel → server"):
            T.parse_inbound(topic)


def test_alert_index_and_fleet_topics() -> None:
    assert T.alert_index("all") == "signage/all/alert-index"
    assert T.alert_index("group", "quartier-sud") == "signage/groups/quartier-sud/alert-index"
    assert T.alert_index("panel", "autre") == "signage/panels/autre/alert-index"
    assert T.fleet_index() == "signage/fleet"
    assert T.parse("signage/fleet").kind == "fleet"
    for scope, name in (("all", "x"), ("group", None), ("group", "Bad"), ("panel", ""), ("area", "x")):
        with pytest.raises(TopicError):
            T.alert_index(scope, name)
    with pytest.raises(TopicError, match='for panel "autre"'):
        T.parse_inbound("signage/panels/autre/alert-index")
    with pytest.raises(TopicError, match="which this panel is not in"):
        T.parse_inbound("signage/groups/ailleurs/alert-index")


DOT_SENTENCE = ('alert id "crue.1": "." is not allowed: brokers that map MQTT topics to AMQP routing keys '
                '(RabbitMQ) turn it into a topic level, and the alert would never reach the panels; use "-" or "_"')


def test_a_dot_in_an_alert_id_is_refused_with_the_shared_sentence() -> None:
    from player.alerts import check_alert_id, dot_reason
    from player.errors import ContentError
    assert dot_reason("crue.1") == DOT_SENTENCE
    with pytest.raises(TopicError) as caught:
        T.parse_inbound("signage/all/alerts/crue.1")
    assert caught.value.reason == DOT_SENTENCE
    with pytest.raises(TopicError) as caught:
        T.all_alert("crue.1")
    assert caught.value.reason == DOT_SENTENCE
    with pytest.raises(ContentError) as content:
        check_alert_id("crue.1")
    assert content.value.errors == [DOT_SENTENCE]
    with pytest.raises(TopicError, match=r'prefix "ville\.a": "\." is not allowed'):
        Topics("ville.a")


def test_subscriptions_cover_exactly_the_inbound_topics() -> None:
    assert T.subscriptions() == [
        "signage/panels/mairie-entree/playlist",
        "signage/groups/centre-ville/playlist",
        "signage/groups/quartier-sud/playlist",
        "signage/panels/mairie-entree/alerts/+",
        "signage/groups/centre-ville/alerts/+",
        "signage/groups/quartier-sud/alerts/+",
        "signage/all/alerts/+",
        "signage/panels/mairie-entree/cmd",
    ]
    # Asset topics are subscribed one by one, for the assets a playlist needs.
    assert not any("assets" in t for t in T.subscriptions())


def test_multi_level_prefix() -> None:
    t = PanelTopics("ville/affichage", "p1")
    assert t.parse_inbound("ville/affichage/panels/p1/cmd").kind == "cmd"
    assert Topics("ville/affichage").all_panels("online") == "ville/affichage/panels/+/online"


@pytest.mark.parametrize(("topic", "reason"), [
    ("signage/panels/autre/cmd", 'for panel "autre", not "mairie-entree"'),
    ("signage/groups/ailleurs/playlist", 'for group "ailleurs", which this panel is not in'),
    ("other/panels/mairie-entree/cmd", 'not under the prefix "signage"'),
    ("signage/panels/mairie-entree//cmd", "has an empty level"),
    ("signage/panels/mairie-entree/cmd/", "has an empty level"),
    ("signage/all/alerts/a+b", 'contains the wildcard "+"'),
    ("signage/all/alerts/#", 'contains the wildcard "#"'),
    ("signage/all/alerts/a\x00b", "contains a NUL character"),
    ("signage/all/alerts/a\tb", "contains a control character"),
    ("signage/all/alerts/" + "a" * 129, "is not valid"),
    ("signage/all/alerts/a b", "is not valid"),
    ("signage/all/alerts/a/b", "is not a panel-player topic"),
    ("signage/assets/" + "AB" * 32, "64 lowercase hex digits"),
    ("signage/assets/" + SHA + "0", "64 lowercase hex digits"),
    ("signage/panels/Mairie/cmd", 'panel id "Mairie" is not valid'),
    ("signage/panels/mairie-entree/secret", "is not a panel-player topic"),
    ("signage/" + "x/" * 600 + "cmd", "too long"),
])
def test_hostile_topics_are_refused_with_their_reason(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        T.parse_inbound(topic)
    assert reason in caught.value.reason
    assert caught.value.errors == [caught.value.reason]


@pytest.mark.parametrize("prefix", ["", "a//b", "a/+", "#", "$SYS", "a\x00", "/lead", "x" * 65, "a.b"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(TopicError):
        Topics(prefix)


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "Upper", "-lead", "a" * 64])
def test_builders_refuse_bad_levels(bad: str) -> None:
    with pytest.raises(TopicError):
        T.group_playlist(bad)
    with pytest.raises(TopicError):
        T.all_alert(bad + "/")
    with pytest.raises(TopicError):
        PanelTopics("signage", bad)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_crashes_and_accepts_only_wellformed_topics(topic: str) -> None:
    try:
        route = T.parse_inbound(topic)
    except TopicError as exc:
        assert exc.reason
        return
    # Whatever is accepted routes back to a well-formed topic of this panel.
    assert route.topic == topic
    assert not re.search(r"[+#\x00]", topic)
    assert "//" not in topic and not topic.endswith("/")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["signage", "panels", "mairie-entree", "groups", "centre-ville", "all",
                                 "alerts", "assets", "playlist", "cmd", "x", SHA, "+", "#", "", "é"]),
                max_size=6))
def test_parse_on_near_miss_topics(levels: list[str]) -> None:
    topic = "/".join(levels)
    try:
        route = T.parse_inbound(topic)
    except TopicError:
        return
    assert route.kind in ("playlist", "alert", "asset", "cmd")


# -- commands -----------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "expected"), [
    ({"id": "req-42", "cmd": "identify", "seconds": 30}, Command("req-42", "identify", 30)),
    ({"id": "req-42", "cmd": "identify"}, Command("req-42", "identify", 30)),
    ({"id": "req-43", "cmd": "screenshot"}, Command("req-43", "screenshot")),
    ({"id": "req-44", "cmd": "brightness", "value": 40, "seconds": 600}, Command("req-44", "brightness", 600, 40)),
    ({"id": "req-44", "cmd": "brightness", "value": 0}, Command("req-44", "brightness", None, 0)),
    ({"id": "req-45", "cmd": "reload"}, Command("req-45", "reload")),
    ({"id": "req-46", "cmd": "restart"}, Command("req-46", "restart")),
])
def test_contract_commands_parse(payload: dict[str, object], expected: Command) -> None:
    assert parse_command(json.dumps(payload).encode()) == expected


@pytest.mark.parametrize(("payload", "reasons", "request_id"), [
    (b'{"id": "r", "cmd": "brightness", "value": 101}', ["value: must be between 0 and 100, got 101"], "r"),
    (b'{"id": "r", "cmd": "brightness"}', ["value: required"], "r"),
    (b'{"id": "r", "cmd": "identify", "seconds": 0}', ["seconds: must be between 1 and 86400, got 0"], "r"),
    (b'{"id": "r", "cmd": "identify", "seconds": 86401}', ["seconds: must be between 1 and 86400, got 86401"],
     "r"),
    (b'{"id": "r", "cmd": "identify", "seconds": "10"}', ['seconds: expected an integer, got "10"'], "r"),
    (b'{"id": "r", "cmd": "screenshot", "seconds": 5}', ["seconds: unknown key"], "r"),
    (b'{"id": "r", "cmd": "reload", "force": true}', ["force: unknown key"], "r"),
    (b'{"id": "r", "cmd": "shell", "shell": "/bin/sh"}',
     ["cmd: expected one of identify, screenshot, brightness, reload, restart, wake, sleep, update, rollback, got \"shell\"", "shell: unknown key"],
     "r"),
    (b'{"id": "r", "cmd": "update", "bundle": "sha256:' + b"a" * 64 + b'", "size": 5, "version": "1.0"}',
     ["parts: required"], "r"),  # a bundle travels in parts: the command names their index
    (b'{"cmd": "reload"}', ["id: required"], None),
    (b'{"id": "", "cmd": "reload"}', ["id: must not be empty"], None),
    (b'{"id": "r", "cmd": "brightnes", "value": 3}',
     ['cmd: expected one of identify, screenshot, brightness, reload, restart, wake, sleep, update, rollback, got "brightnes" '
      '(did you mean "brightness"?)'], "r"),
    (b"[]", ["expected a mapping, got a list"], None),
    (b"not json", None, None),
    (b"\xff", ["payload is not valid UTF-8 (byte 0)"], None),
    (b'{"id": "r", "cmd": "reload"}' + b" " * 5000, None, None),
])
def test_bad_commands_give_every_reason(payload: bytes, reasons: list[str] | None, request_id: str | None) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(payload)
    if reasons is not None:
        assert caught.value.errors == reasons
    else:
        assert caught.value.errors
    assert caught.value.request == request_id


def test_value_as_boolean_is_not_an_integer() -> None:
    with pytest.raises(CommandError, match="value: expected an integer, got true"):
        parse_command(b'{"id": "r", "cmd": "brightness", "value": true}')


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3),
                           max_leaves=10)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "cmd", "seconds", "value", "path", "args"]), json_values,
                       max_size=5) | json_values)
def test_generated_commands_parse_or_fail_cleanly(data: object) -> None:
    try:
        cmd = parse_command(json.dumps(data).encode())
    except CommandError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return
    assert isinstance(data, dict) and set(data) <= {"id", "cmd", "seconds", "value"}
    assert cmd.cmd in ("identify", "screenshot", "brightness", "reload", "restart")
    assert cmd.value is None or 0 <= cmd.value <= 100
    assert cmd.seconds is None or 1 <= cmd.seconds <= 86400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_command_parser(payload: bytes) -> None:
    try:
        parse_command(payload)
    except CommandError:
        pass


# -- events -------------------------------------------------------------------------

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_every_event_type_has_type_ts_and_its_fields() -> None:
    shown = datetime(2026, 11, 25, 19, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1)))
    events = [
        (event_playlist_applied("hiver-2026", 3), {"type": "playlist.applied", "playlist": "hiver-2026", "version": 3}),
        (event_playlist_rejected("slides: required"), {"type": "playlist.rejected", "reason": "slides: required"}),
        (event_playlist_rejected("old", "hiver-2026", 2),
         {"type": "playlist.rejected", "reason": "old", "playlist": "hiver-2026", "version": 2}),
        (event_alert_displayed("crue-1", shown),
         {"type": "alert.displayed", "alert": "crue-1", "displayed_at": "2026-11-25T18:00:00.250Z",
          "brightness": None}),
        (event_alert_displayed("crue-1", shown, brightness=40, below_floor=True),
         {"type": "alert.displayed", "alert": "crue-1", "displayed_at": "2026-11-25T18:00:00.250Z",
          "brightness": 40, "derated": True}),
        (event_screen("screen.woken", "alert", alert="crue-1"),
         {"type": "screen.woken", "reason": "alert", "alert": "crue-1"}),
        (event_screen("screen.asleep", "schedule", how="/dev/fb0 blanked (FBIOBLANK)"),
         {"type": "screen.asleep", "reason": "schedule", "how": "/dev/fb0 blanked (FBIOBLANK)"}),
        (event_alert_ended("crue-1", "expired"), {"type": "alert.ended", "alert": "crue-1", "reason": "expired"}),
        (event_alert_ended("crue-1", "cancelled"), {"type": "alert.ended", "alert": "crue-1", "reason": "cancelled"}),
        (event_alert_rejected("crue-1", "level: required"),
         {"type": "alert.rejected", "alert": "crue-1", "reason": "level: required"}),
        (event_command_done("req-42", "identify"), {"type": "command.done", "request": "req-42", "cmd": "identify"}),
        (event_command_failed("req-44", "brightness", "value: required"),
         {"type": "command.failed", "request": "req-44", "cmd": "brightness", "reason": "value: required"}),
        (event_command_failed(None, None, "payload is not valid JSON"),
         {"type": "command.failed", "request": None, "cmd": None, "reason": "payload is not valid JSON"}),
        (event_error("disk full"), {"type": "error", "reason": "disk full"}),
    ]
    for event, expected in events:
        ts = event.pop("ts")
        assert ISO_Z.fullmatch(ts), ts
        assert event == expected
        json.dumps(event)


def test_alert_end_reason_is_checked() -> None:
    with pytest.raises(ValueError, match="expired"):
        event_alert_ended("a", "bored")


def test_iso_times() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    now = datetime.fromisoformat(iso_now())
    assert abs((datetime.now(timezone.utc) - now).total_seconds()) < 5
    with pytest.raises(ValueError):
        iso_utc(datetime(2026, 1, 1))


def test_a_config_prefix_with_a_dot_is_refused_with_the_sentence() -> None:
    from player.config import config_from_data
    from player.errors import ConfigError

    base = {"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]}}
    with pytest.raises(ConfigError) as caught:
        config_from_data({**base, "mqtt": {"prefix": "ville.a/affichage"}})
    assert caught.value.errors == [
        'mqtt.prefix: prefix "ville.a/affichage": "." is not allowed: brokers that map MQTT topics to AMQP '
        'routing keys (RabbitMQ) turn it into a topic level, and no message would reach the panels; use "-" or "_"']
    assert config_from_data({**base, "mqtt": {"prefix": "ville_a/affichage"}}).mqtt.prefix == "ville_a/affichage"

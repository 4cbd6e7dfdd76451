"""The alert model, JSON alert messages (CONTRACT §5) and the `alerts:` config section."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.alerts import (LEVELS, Alert, AlertsConfig, Cancel, level_rank, parse_alert_message,
                           parse_alerts_config)
from player.errors import ContentError, ValidationError
from player.validate import Node, Problems

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
CFG = AlertsConfig()
SHA = "ab" * 32


def parse(payload: bytes | dict, alert_id: str = "crue-1", scope: str = "all", scope_name: str = "",
          config: AlertsConfig = CFG) -> Alert | Cancel | None:
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return parse_alert_message(alert_id, scope, scope_name, payload, now=NOW, config=config, location=None)


def reasons(payload: bytes | dict, **kw: str) -> str:
    with pytest.raises(ContentError) as info:
        parse(payload, **kw)
    assert isinstance(info.value, ValidationError) and info.value.errors
    return "; ".join(info.value.errors)


# -- config --------------------------------------------------------------------

def config_of(value: object) -> tuple[AlertsConfig, list[str]]:
    problems = Problems()
    cfg = parse_alerts_config(Node({"alerts": value}, "", problems).child("alerts"))
    return cfg, problems.errors


def test_config_defaults_when_absent() -> None:
    assert config_of(None) == (AlertsConfig(), [])
    assert AlertsConfig().languages == ("fr", "en") and AlertsConfig().info_mode == "banner"


def test_config_reads_every_key() -> None:
    cfg, errors = config_of({"languages": ["de", "FR-ch"], "allow_exercise": True, "allow_test": True,
                             "flash": False, "max_body": 300, "turn_seconds": 5, "info_mode": "fullscreen"})
    assert errors == []
    assert cfg == AlertsConfig(languages=("de", "fr-ch"), allow_exercise=True, allow_test=True, flash=False,
                               max_body=300, turn_seconds=5.0, info_mode="fullscreen")


def test_config_reports_every_problem_with_its_key() -> None:
    _, errors = config_of({"langauges": ["fr"], "info_mode": "popup", "turn_seconds": 0,
                           "allow_exercise": "yes", "languages": ["fr fr"]})
    text = "\n".join(errors)
    assert 'alerts.langauges: unknown key (did you mean "languages"?)' in text
    assert "alerts.info_mode: expected one of banner, fullscreen" in text
    assert "alerts.turn_seconds: must be between 1 and 3600" in text
    assert "alerts.allow_exercise: expected true or false" in text
    assert "alerts.languages[0]" in text
    assert len(errors) == 5


def test_config_not_a_mapping() -> None:
    _, errors = config_of(["fr"])
    assert errors == ["alerts: expected a mapping, got a list"]


# -- JSON alerts ---------------------------------------------------------------

def test_levels_rank() -> None:
    assert LEVELS == ("info", "warning", "critical")
    assert level_rank("critical") > level_rank("warning") > level_rank("info")


def test_full_json_alert() -> None:
    alert = parse({"level": "critical", "title": "ALERTE CRUE", "body": "Évacuez les berges.",
                   "expires": "2026-11-26T12:00:00+01:00", "ttl": 3600, "asset": f"sha256:{SHA}"},
                  scope="group", scope_name="centre-ville")
    assert alert == Alert(id="crue-1", scope="group", scope_name="centre-ville", level="critical",
                          title="ALERTE CRUE", body="Évacuez les berges.",
                          expires=datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc), ttl=3600.0, asset=SHA)
    assert alert.key == ("group", "centre-ville", "crue-1")
    assert alert.source == "json" and not alert.exercise


def test_minimal_json_alert_is_active_until_cancelled() -> None:
    alert = parse({"level": "info", "title": "Marché annulé"}, scope="panel", scope_name="mairie-entree")
    assert isinstance(alert, Alert)
    assert alert.expires is None and alert.ttl is None and alert.body == ""


def test_empty_payload_cancels_the_topic_alert() -> None:
    assert parse(b"", scope="panel", scope_name="mairie-entree") == Cancel(
        ids=("crue-1",), scope="panel", scope_name="mairie-entree")


@pytest.mark.parametrize("payload, reason", [
    (b"{", "payload is not valid JSON"),
    (b"\xff\xfe", "payload is not valid UTF-8"),
    (b"[1, 2]", "expected a mapping, got a list"),
    (b'{"level": "critical", "title": NaN}', "payload is not valid JSON"),
    ({"level": "critical"}, "title: required"),
    ({"level": "critical", "title": "   "}, "title: must not be blank"),
    ({"level": "urgent", "title": "x"}, 'level: expected one of info, warning, critical, got "urgent"'),
    ({"title": "x"}, "level: required"),
    ({"level": "info", "title": "x", "expires": "2026-11-26T10:59:59+01:00"}, "expires: expired at 2026-11-26T"),
    ({"level": "info", "title": "x", "expires": "2026-11-27T10:00:00"}, "expires: expected an ISO 8601"),
    ({"level": "info", "title": "x", "body": "é" * 1001}, "body: too long (1001 characters, at most 1000)"),
    ({"level": "info", "title": "x" * 201}, "title: too long"),
    ({"level": "info", "title": "x", "ttl": 0}, "ttl: must be greater than 0"),
    ({"level": "info", "title": "x", "ttl": "60"}, "ttl: expected a number"),
    ({"level": "info", "title": "x", "asset": "sha256:XYZ"}, "asset:"),
    ({"level": "info", "title": "x", "colour": "red"}, "colour: unknown key"),
    ({"level": "info", "title": "x", "exercise": True}, "exercise alerts are refused"),
])
def test_bad_json_alerts_are_refused_with_the_reason(payload: bytes | dict, reason: str) -> None:
    assert reason in reasons(payload)


def test_every_problem_is_reported_at_once() -> None:
    text = reasons({"level": "urgent", "body": 3, "ttl": -1})
    for part in ("level:", "title: required", "body:", "ttl:"):
        assert part in text


def test_exercise_accepted_and_marked_when_allowed() -> None:
    alert = parse({"level": "warning", "title": "Exercice", "exercise": True},
                  config=AlertsConfig(allow_exercise=True))
    assert isinstance(alert, Alert) and alert.exercise


def test_oversize_payload_refused_before_parsing() -> None:
    payload = json.dumps({"level": "info", "title": "x", "body": "a" * 2000}).encode()
    with pytest.raises(ContentError, match="payload too large"):
        parse_alert_message("a", "all", "", payload, now=NOW, config=CFG, location=None, max_bytes=1000)


@pytest.mark.parametrize("alert_id, reason", [
    ("crue+1", "MQTT wildcard"), ("#", "MQTT wildcard"), ("a/b", "contains '/'"), ("", "does not match"),
    ("é", "does not match"), ("x" * 65, "does not match"), ("a b", "does not match"),
])
def test_bad_alert_ids(alert_id: str, reason: str) -> None:
    assert reason in reasons({"level": "info", "title": "x"}, alert_id=alert_id)
    assert reason in reasons(b"", alert_id=alert_id)  # a cancel too


@pytest.mark.parametrize("scope, name", [("panels", "x"), ("group", ""), ("all", "x"), ("panel", "A/B")])
def test_bad_scopes(scope: str, name: str) -> None:
    with pytest.raises(ContentError):
        parse(b"", scope=scope, scope_name=name)


def test_all_scope_name_may_be_none() -> None:
    result = parse_alert_message("a", "all", None, b"", now=NOW, config=CFG, location=None)
    assert result == Cancel(ids=("a",), scope="all", scope_name="")


def test_ids_with_underscores_and_dashes_but_no_dot() -> None:
    assert isinstance(parse({"level": "info", "title": "x"}, alert_id="crue_2026-11-a"), Alert)
    # RabbitMQ turns "." into a topic level: refused with the sentence every part shares.
    assert reasons({"level": "info", "title": "x"}, alert_id="crue_2026.11-a") == (
        'alert id "crue_2026.11-a": "." is not allowed: brokers that map MQTT topics to AMQP routing keys '
        '(RabbitMQ) turn it into a topic level, and the alert would never reach the panels; use "-" or "_"')


def test_expiry_is_judged_against_the_injected_now() -> None:
    payload = {"level": "info", "title": "x", "expires": (NOW + timedelta(seconds=1)).isoformat()}
    assert isinstance(parse(payload), Alert)
    payload["expires"] = NOW.isoformat()
    assert "expired at" in reasons(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12)
alert_like = st.fixed_dictionaries({}, optional={
    "level": st.sampled_from(LEVELS) | st.text(max_size=10), "title": st.text(max_size=250) | json_values,
    "body": st.text(max_size=1200) | json_values, "ttl": st.floats() | st.integers() | json_values,
    "expires": st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat) | json_values,
    "asset": st.just(f"sha256:{SHA}") | json_values, "exercise": json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(alert_like.map(lambda d: json.dumps(d).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                 st.binary(max_size=200)))
def test_generated_json_gives_an_alert_or_a_content_error(payload: bytes) -> None:
    try:
        result = parse(payload)
    except ContentError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return
    assert isinstance(result, (Alert, Cancel))
    if isinstance(result, Alert):
        assert result.level in LEVELS and result.title.strip()
        assert result.expires is None or result.expires > NOW
        assert result.ttl is None or result.ttl > 0

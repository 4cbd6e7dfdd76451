"""The console's /metrics (player.console.metrics) over a real Fleet and NoticeEngine,
read back with prometheus_client's own parser; and the Grafana dashboard in deploy/,
whose every metric name must exist in that output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fixtures_broker import wait_until
from player.console.fleet import Fleet
from player.console.metrics import Metrics, authorized, read_token
from player.console.notices import NoticeEngine, WebhookSender
from player.console.settings import NoticeSettings
from test_console_notices import T0, Clock, WebhookReceiver, doc_section, heartbeat

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "panel-player-dashboard.json"
MIB = 1024 * 1024

FULL = {"panel": "full", "firmware": "1.4.0", "alerts": ["crue-1"], "brightness": 62, "ambient": 0.41,
        "cpu_temp_c": 80.5, "fps": 29.8, "rss_mb": 41.5, "disk_free_mb": 1234, "mqtt_reconnects": 3,
        "door_open": True, "under_voltage": False, "uptime_s": 1234, "screen": "on",
        "errors": [{"reason": "sensor light: no answer", "count": 3, "first": "2027-01-15T07:00:00Z",
                    "last": "2027-01-15T07:50:00Z"}]}
# A panel without sensors, asleep: every value it could not read is null.
BARE = {"panel": "bare", "alerts": [], "brightness": None, "ambient": None, "cpu_temp_c": None, "fps": None,
        "rss_mb": None, "disk_free_mb": None, "mqtt_reconnects": 0, "door_open": None, "under_voltage": None,
        "uptime_s": 60, "screen": "asleep", "errors": []}


class Scrape:
    """One /metrics body, parsed: ``value(name, **labels)``; ``names`` of every sample."""

    def __init__(self, body: bytes) -> None:
        self.samples = [s for family in text_string_to_metric_families(body.decode("utf-8")) for s in family.samples]
        self.names = {s.name for s in self.samples}

    def values(self, name: str, **labels: str) -> list[float]:
        return [s.value for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        [value] = self.values(name, **labels)
        return value


@pytest.fixture
def fleet_and_notices() -> Iterator[tuple[Fleet, NoticeEngine, WebhookReceiver]]:
    clock = Clock()
    fleet = Fleet(interval=30, stale_factor=3, clock=clock)
    fleet.on_online("full", True)
    fleet.on_heartbeat("full", heartbeat(T0 - 12, **FULL))
    fleet.on_online("bare", True)
    fleet.on_heartbeat("bare", heartbeat(T0, **BARE))
    fleet.on_online("gone", False)                       # Last Will, never a heartbeat
    fleet.on_online("quiet", True)
    fleet.on_heartbeat("quiet", heartbeat(T0 - 600, panel="quiet"))   # 10 min old: stale
    fleet.tick()
    receiver = WebhookReceiver()
    engine = NoticeEngine(fleet, NoticeSettings(language="en"), [WebhookSender(receiver.url, 5)], clock=clock)
    engine.evaluate()                                    # full: hot and door
    wait_until(lambda: engine.sent.get("webhook", {}).get("ok") == 2, 10, "both notices delivered")
    yield fleet, engine, receiver
    engine.close()
    receiver.close()


def scrape(fleet: Fleet, engine: NoticeEngine | None = None, connected: bool = True) -> Scrape:
    body, content_type = Metrics(fleet, engine, connected=lambda: connected).render()
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain; version=")
    return Scrape(body)


def test_per_panel_gauges(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]) -> None:
    fleet, engine, _ = fleet_and_notices
    m = scrape(fleet, engine)
    assert m.value("panel_cpu_temperature_celsius", panel="full") == 80.5
    assert m.value("panel_brightness_percent", panel="full") == 62
    assert m.value("panel_ambient_ratio", panel="full") == 0.41
    assert m.value("panel_fps", panel="full") == 29.8
    assert m.value("panel_resident_memory_bytes", panel="full") == 41.5 * MIB
    assert m.value("panel_disk_free_bytes", panel="full") == 1234 * MIB
    assert m.value("panel_mqtt_reconnects", panel="full") == 3
    assert m.value("panel_errors", panel="full") == 1
    assert m.value("panel_door_open", panel="full") == 1
    assert m.value("panel_under_voltage", panel="full") == 0
    assert m.value("panel_uptime_seconds", panel="full") == 1234
    assert m.value("panel_alerts_active", panel="full") == 1
    assert m.value("panel_heartbeat_age_seconds", panel="full") == 12
    assert m.value("panel_info", panel="full", firmware="1.4.0") == 1
    assert {p: m.value("panel_up", panel=p) for p in ("full", "bare", "gone", "quiet")} == {
        "full": 1, "bare": 1, "gone": 0, "quiet": 0}
    for panel, state in (("full", "online"), ("bare", "asleep"), ("gone", "offline"), ("quiet", "stale")):
        assert m.value("panel_state", panel=panel, state=state) == 1
        assert sum(m.values("panel_state", panel=panel)) == 1
        assert len(m.values("panel_state", panel=panel)) == 5      # one sample per state


def test_values_a_panel_did_not_send_are_left_out(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]
                                                  ) -> None:
    fleet, engine, _ = fleet_and_notices
    m = scrape(fleet, engine)
    for name in ("panel_cpu_temperature_celsius", "panel_brightness_percent", "panel_ambient_ratio", "panel_fps",
                 "panel_resident_memory_bytes", "panel_disk_free_bytes", "panel_door_open", "panel_under_voltage"):
        assert m.values(name, panel="bare") == [], f"{name} invented for a panel that sent null"
    assert m.value("panel_mqtt_reconnects", panel="bare") == 0         # a real 0 stays
    assert m.value("panel_alerts_active", panel="bare") == 0
    assert m.value("panel_errors", panel="bare") == 0
    # The offline panel never sent a heartbeat: only its state is known.
    assert {s.name for s in m.samples if s.labels.get("panel") == "gone"} == {"panel_up", "panel_state"}


def test_console_gauges(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]) -> None:
    fleet, engine, receiver = fleet_and_notices
    m = scrape(fleet, engine, connected=True)
    assert {s: m.value("console_panels", state=s) for s in ("online", "stale", "offline", "asleep", "unknown")} \
        == {"online": 1, "stale": 1, "offline": 1, "asleep": 1, "unknown": 0}
    assert m.value("console_mqtt_connected") == 1
    assert scrape(fleet, engine, connected=False).value("console_mqtt_connected") == 0
    assert {k: m.value("console_notices_active", kind=k) for k in ("offline", "stale", "hot", "door")} == {
        "offline": 0, "stale": 0, "hot": 1, "door": 1}
    assert m.value("console_notices_sent_total", channel="webhook", result="ok") == 2
    assert m.value("console_notices_sent_total", channel="webhook", result="failed") == 0
    assert len(receiver.bodies) == 2
    # Without a notice engine, the notice metrics are absent rather than zero.
    bare = scrape(fleet)
    assert "console_notices_active" not in bare.names and "console_notices_sent_total" not in bare.names


def test_own_registry_not_the_global_one(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]) -> None:
    fleet, engine, _ = fleet_and_notices
    Metrics(fleet, engine)
    assert b"panel_up" not in generate_latest(REGISTRY)


def test_bearer_token(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("  s3cret-token\n")
    token = read_token(token_file)
    assert token == "s3cret-token"
    assert authorized("Bearer s3cret-token", token) and authorized("bearer s3cret-token", token)
    assert not authorized(None, token) and not authorized("Bearer wrong", token)
    assert not authorized("Basic s3cret-token", token)
    assert authorized(None, None)
    token_file.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token(token_file)


# -- the Grafana dashboard -----------------------------------------------------------------

PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a small reader, enough for the dashboard's queries)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)     # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)                       # label matchers, ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)   # label lists
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query    # either form Grafana accepts
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert found, query
            queries.append(found.group(1))
    return queries


def test_metric_reader_finds_names() -> None:
    assert metric_names('sum by (state) (console_panels)') == {"console_panels"}
    assert metric_names('increase(panel_mqtt_reconnects{panel=~"$panel"}[1h])') == {"panel_mqtt_reconnects"}
    assert metric_names('panel_heartbeat_age_seconds and on (panel) (panel_state{state=~"a|b"} == 1)') == {
        "panel_heartbeat_age_seconds", "panel_state"}
    assert metric_names("100 * panel_ambient_ratio") == {"panel_ambient_ratio"}


def test_dashboard_uses_only_metrics_the_console_serves(
        fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]) -> None:
    fleet, engine, _ = fleet_and_notices
    served = scrape(fleet, engine).names
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used: set[str] = set()
    for expr in dashboard_queries(board):
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        used |= names
    assert used - served == set(), f"the dashboard queries metrics /metrics does not serve: {used - served}"
    for wanted in ("console_panels", "panel_state", "panel_cpu_temperature_celsius", "panel_brightness_percent",
                   "panel_ambient_ratio", "panel_resident_memory_bytes", "panel_disk_free_bytes",
                   "panel_mqtt_reconnects", "console_notices_active"):
        assert wanted in used, f"the dashboard has no graph of {wanted}"


def test_dashboard_model(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]) -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    [temperature] = [p for p in board["panels"] if "panel_cpu_temperature_celsius" in p["targets"][0]["expr"]]
    steps = temperature["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 75} in steps
    assert temperature["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert temperature["fieldConfig"]["defaults"]["unit"] == "celsius"


def test_doc_lists_every_metric_with_its_labels(fleet_and_notices: tuple[Fleet, NoticeEngine, WebhookReceiver]
                                                 ) -> None:
    fleet, engine, _ = fleet_and_notices
    m = scrape(fleet, engine)
    served = {s.name: sorted(s.labels) for s in m.samples}
    section = doc_section("### Metrics")
    documented = {name: sorted(re.findall(r"`(\w+)`", labels))
                  for name, labels in re.findall(r"^\| `(\w+)` \|([^|]*)\|", section, re.MULTILINE)}
    assert documented == served

"""``/metrics``: the fleet in Prometheus' text format, for towns that already run Grafana.

:class:`Metrics` registers one custom collector in a registry of its own (never
prometheus_client's global one, so that importing the console adds nothing to
another program's metrics) and reads the :class:`~player.console.fleet.Fleet`
at each scrape: there is no state to keep in step.

Per panel (label ``panel``): ``panel_up``, ``panel_state`` (label ``state``: 1
for the current one, 0 for the others), ``panel_heartbeat_age_seconds``,
``panel_brightness_percent``, ``panel_ambient_ratio``,
``panel_cpu_temperature_celsius``, ``panel_fps``, ``panel_resident_memory_bytes``,
``panel_disk_free_bytes``, ``panel_mqtt_reconnects``, ``panel_errors``,
``panel_door_open``, ``panel_under_voltage``, ``panel_uptime_seconds``,
``panel_alerts_active``, ``panel_info`` (label ``firmware``). The console:
``console_panels`` (label ``state``), ``console_notices_active`` (label ``kind``),
``console_mqtt_connected``, ``console_notices_sent_total`` (labels ``channel``,
``result``). A value the panel did not send (``None``) is left out of its gauge,
never shown as 0. docs/console-monitoring.md explains each.

Example::

    metrics = Metrics(fleet, notices=engine, connected=lambda: bridge.connected)
    body, content_type = metrics.render()
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .fleet import Fleet

if TYPE_CHECKING:
    from .notices import NoticeEngine

STATES = ("online", "stale", "offline", "asleep", "unknown")
UP_STATES = ("online", "asleep")   # connected, heartbeats on time
NOTICE_KINDS = ("offline", "stale", "hot", "door")
MIB = 1024 * 1024

# (metric name, help, row field, factor); booleans become 1/0, None is left out.
PANEL_GAUGES: tuple[tuple[str, str, str, float], ...] = (
    ("panel_heartbeat_age_seconds", "Seconds since the panel's last heartbeat (by its ts).", "heartbeat_age_s", 1),
    ("panel_brightness_percent", "Current brightness of the screen, percent 0 to 100.", "brightness", 1),
    ("panel_ambient_ratio", "Ambient light from the panel's sensor, 0.0 (dark) to 1.0.", "ambient", 1),
    ("panel_cpu_temperature_celsius", "CPU temperature of the panel's computer, degrees Celsius.", "cpu_temp_c", 1),
    ("panel_fps", "Frames handed to the display per second over the last 5 s.", "fps", 1),
    ("panel_resident_memory_bytes", "Resident memory of the player process, bytes.", "rss_mb", MIB),
    ("panel_disk_free_bytes", "Free space on the panel's state file system, bytes.", "disk_free_mb", MIB),
    ("panel_mqtt_reconnects", "Successful MQTT reconnections since the player started.", "mqtt_reconnects", 1),
    ("panel_errors", "Distinct errors (reasons) in the panel's heartbeat, each kept 24 h after it last happened.",
     "errors", 1),
    ("panel_door_open", "1 if the cabinet door switch reports the door open, else 0.", "door_open", 1),
    ("panel_under_voltage", "1 if the Raspberry Pi firmware reports under-voltage now, else 0.", "under_voltage", 1),
    ("panel_uptime_seconds", "Seconds since the player process started.", "uptime_s", 1),
)


def _number(value: Any) -> float | None:
    """A row value as a sample value; ``None`` (or anything not numeric) means: leave it out."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


class FleetCollector(Collector):
    """Builds every metric family from the fleet (and the notices) at each scrape."""

    def __init__(self, fleet: Fleet, notices: NoticeEngine | None, connected: Callable[[], bool]) -> None:
        self.fleet = fleet
        self.notices = notices
        self.connected = connected

    def collect(self) -> Iterable[Metric]:
        rows = self.fleet.rows()
        up = GaugeMetricFamily("panel_up", "1 if the panel is online or asleep (heartbeats on time), else 0.",
                               labels=["panel"])
        state = GaugeMetricFamily("panel_state", "1 for the panel's current state, 0 for the others.",
                                  labels=["panel", "state"])
        gauges = [(GaugeMetricFamily(name, text, labels=["panel"]), field, factor)
                  for name, text, field, factor in PANEL_GAUGES]
        alerts = GaugeMetricFamily("panel_alerts_active", "Alerts the panel reports active in its heartbeat.",
                                   labels=["panel"])
        info = GaugeMetricFamily("panel_info", "Always 1; the firmware version the panel reports.",
                                 labels=["panel", "firmware"])
        counts = dict.fromkeys(STATES, 0)
        for row in rows:
            panel = str(row["panel"])
            current = str(row.get("state") or "unknown")
            counts[current] = counts.get(current, 0) + 1
            up.add_metric([panel], 1.0 if current in UP_STATES else 0.0)
            for name in STATES:
                state.add_metric([panel, name], 1.0 if name == current else 0.0)
            for family, field, factor in gauges:
                value = _number(row.get(field))
                if value is not None:
                    family.add_metric([panel], value * factor)
            if row.get("heartbeat") is not None and isinstance(row.get("alerts"), list):
                alerts.add_metric([panel], float(len(row["alerts"])))
            if isinstance(row.get("firmware"), str):
                info.add_metric([panel, row["firmware"]], 1.0)
        yield up
        yield state
        for family, _, _ in gauges:
            yield family
        yield alerts
        yield info

        panels = GaugeMetricFamily("console_panels", "Panels known to the console, by state.", labels=["state"])
        for name, n in counts.items():
            panels.add_metric([name], float(n))
        yield panels
        yield GaugeMetricFamily("console_mqtt_connected", "1 if the console is connected to the broker, else 0.",
                                value=1.0 if self.connected() else 0.0)
        if self.notices is not None:
            active = GaugeMetricFamily("console_notices_active", "Notices in force, by rule.", labels=["kind"])
            by_kind = dict.fromkeys(NOTICE_KINDS, 0)
            for notice in self.notices.active():
                by_kind[notice["kind"]] = by_kind.get(notice["kind"], 0) + 1
            for kind, n in by_kind.items():
                active.add_metric([kind], float(n))
            yield active
            sent = CounterMetricFamily("console_notices_sent", "Notices handed to a webhook or mail server "
                                       "(result ok), given up after retries (failed) or dropped (queue full).",
                                       labels=["channel", "result"])
            for channel, results in sorted(self.notices.sent.items()):
                for result, n in sorted(results.items()):
                    sent.add_metric([channel, result], float(n))
            yield sent


class Metrics:
    """The console's ``/metrics`` body, in a registry of its own."""

    def __init__(self, fleet: Fleet, notices: NoticeEngine | None = None,
                 connected: Callable[[], bool] = lambda: False) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = FleetCollector(fleet, notices, connected)
        self.registry.register(self.collector)

    def render(self) -> tuple[bytes, str]:
        """``(body, content type)`` for the HTTP answer."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def read_token(path: Path) -> str:
    """The bearer token Prometheus must send (``console.metrics_token_file``), surrounding blanks removed."""
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path}: the metrics token file is empty")
    return token


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``; always true without a token."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))

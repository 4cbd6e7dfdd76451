"""The console's fleet model (player.console.fleet) and its settings (player.console.settings)."""

from __future__ import annotations

import os
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from player.console.fleet import Fleet
from player.console.settings import ConsoleSettings, load_console_settings, read_or_create_secret
from player.errors import ConfigError

T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hb(panel: str, t: float, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"panel": panel, "ts": iso(t), "screen": "on", "groups": []}
    data.update(fields)
    return data


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet(clock: Clock) -> Fleet:
    return Fleet(interval=30, stale_factor=3, clock=clock)


# -- states ---------------------------------------------------------------------------


def test_states_from_online_and_heartbeat(fleet: Fleet, clock: Clock) -> None:
    fleet.on_heartbeat("a", hb("a", T0))           # a heartbeat but no online message
    assert fleet.row("a")["state"] == "unknown"
    fleet.on_online("a", True)
    assert fleet.row("a")["state"] == "online"
    fleet.on_online("b", False)
    fleet.on_heartbeat("b", hb("b", T0))
    assert fleet.row("b")["state"] == "offline"
    fleet.on_online("c", True)
    fleet.on_heartbeat("c", hb("c", T0, screen="asleep"))
    assert fleet.row("c")["state"] == "asleep"
    fleet.on_online("d", True)                       # online, no heartbeat yet: online
    assert fleet.row("d")["state"] == "online"
    fleet.on_online("a", None)                       # retained online cleared
    assert fleet.row("a")["state"] == "unknown"
    assert [r["panel"] for r in fleet.rows()] == ["a", "b", "c", "d"]
    assert fleet.row("zz") is None


def test_stale_by_age_with_the_injected_clock(fleet: Fleet, clock: Clock) -> None:
    fleet.on_online("a", True)
    fleet.on_heartbeat("a", hb("a", T0))
    changes: list[dict[str, Any]] = []
    fleet.add_listener(changes.append)
    clock.now = T0 + 90                               # exactly 3 x 30 s: not yet stale
    fleet.tick()
    assert fleet.row("a")["state"] == "online" and changes == []
    assert fleet.row("a")["heartbeat_age_s"] == 90.0
    clock.now = T0 + 91
    fleet.tick()
    row = fleet.row("a")
    assert row["state"] == "stale" and row["state_since"] == T0 + 91
    assert [c["row"]["state"] for c in changes] == ["stale"]
    fleet.tick()                                       # no change, no emission
    assert len(changes) == 1
    # stale wins over asleep: a panel dead in its sleep hours is not "asleep"
    fleet.on_heartbeat("a", hb("a", T0 - 10, screen="asleep"))
    assert fleet.row("a")["state"] == "stale"
    fleet.on_heartbeat("a", hb("a", T0 + 91, screen="asleep"))
    assert fleet.row("a")["state"] == "asleep"
    fleet.on_heartbeat("a", hb("a", T0 + 92))
    assert fleet.row("a")["state"] == "online" and fleet.row("a")["state_since"] == T0 + 91
    # an unreadable ts: no age, never stale by age
    fleet.on_heartbeat("a", {"panel": "a", "ts": "yesterday"})
    clock.now = T0 + 10_000
    fleet.tick()
    assert fleet.row("a")["state"] == "online" and fleet.row("a")["heartbeat_age_s"] is None


def test_values_not_sent_stay_none(fleet: Fleet) -> None:
    fleet.on_online("a", True)
    fleet.on_heartbeat("a", {"panel": "a", "ts": iso(T0), "brightness": None, "cpu_temp_c": 51.5,
                             "door_open": None, "fps": "fast", "disk_free_mb": 812, "ambient": 0.25})
    row = fleet.row("a")
    for key in ("brightness", "fps", "rss_mb", "uptime_s", "mqtt_reconnects", "door_open", "under_voltage",
                "throttled", "firmware", "screen", "display", "update", "playlist", "slide", "errors",
                "screenshot_ts"):
        assert row[key] is None, key
    assert row["cpu_temp_c"] == 51.5 and row["disk_free_mb"] == 812 and row["ambient"] == 0.25
    assert row["alerts"] == [] and row["groups"] == [] and row["error_list"] == []
    assert row["showing"] == {"kind": "idle", "text": None}
    assert row["last_heartbeat"] == iso(T0) and row["received"] == T0
    # a panel with only an online message: nothing known about its screen
    fleet.on_online("b", True)
    b = fleet.row("b")
    assert b["showing"] == {"kind": "unknown", "text": None} and b["heartbeat"] is None
    assert b["last_heartbeat"] is None and b["heartbeat_age_s"] is None


def test_row_fields_from_a_full_heartbeat(fleet: Fleet) -> None:
    errors = [{"reason": "sensor light: no answer", "count": 3, "first": iso(T0), "last": iso(T0)},
              {"reason": "image x.png", "count": 1, "first": iso(T0), "last": iso(T0)}]
    data = hb("a", T0, firmware="0.1.0", uptime_s=1234, playlist={"id": "hiver", "version": 3}, slide="marche",
              alerts=[], brightness=62, ambient=0.41, cpu_temp_c=48.3, fps=29.8, rss_mb=41.2, disk_free_mb=1234,
              mqtt_reconnects=2, door_open=False, errors=errors, under_voltage=False, throttled=True,
              display={"output": "png", "healthy": True, "status": "ok"}, groups=["berges", "centre"],
              update={"state": "applied", "version": "0.1.0", "reason": None})
    fleet.on_online("a", True)
    fleet.on_heartbeat("a", data)
    fleet.on_screenshot("a", T0 + 5)
    row = fleet.row("a")
    assert row["showing"] == {"kind": "slide", "text": "marche (hiver)"}
    assert row["playlist"] == {"id": "hiver", "version": 3} and row["slide"] == "marche"
    assert (row["firmware"], row["uptime_s"], row["brightness"], row["fps"]) == ("0.1.0", 1234, 62, 29.8)
    assert (row["errors"], row["error_list"]) == (2, errors)
    assert (row["door_open"], row["under_voltage"], row["throttled"]) == (False, False, True)
    assert row["groups"] == ["berges", "centre"] and row["mqtt_reconnects"] == 2
    assert row["display"]["healthy"] is True and row["update"]["state"] == "applied"
    assert row["screenshot_ts"] == T0 + 5 and row["heartbeat"] == data
    fleet.on_heartbeat("a", dict(data, alerts=["crue-1", "vent-2"]))
    assert fleet.row("a")["showing"] == {"kind": "alert", "text": "crue-1, vent-2"}
    assert fleet.row("a")["alerts"] == ["crue-1", "vent-2"]


# -- groups, reach, listeners ---------------------------------------------------------------


def test_groups_and_reach(fleet: Fleet) -> None:
    fleet.on_online("a", True)
    fleet.on_heartbeat("a", hb("a", T0, groups=["berges", "centre"]))
    fleet.on_heartbeat("b", hb("b", T0, groups=["centre"]))
    fleet.on_online("c", False)
    assert fleet.groups() == ["berges", "centre"]
    assert fleet.reach([], ["centre"], False) == ["a", "b"]
    assert fleet.reach([], ["berges"], False) == ["a"]
    assert fleet.reach(["c", "nobody"], ["berges"], False) == ["a", "c"]  # unknown panels not counted
    assert fleet.reach([], [], True) == ["a", "b", "c"]
    assert fleet.reach([], [], False) == []
    fleet.on_heartbeat("a", hb("a", T0, groups=[]))   # membership follows the last heartbeat
    assert fleet.reach([], ["berges"], False) == []


def test_listeners_get_changes_outside_the_lock(fleet: Fleet) -> None:
    seen: list[dict[str, Any]] = []

    def listener(change: dict[str, Any]) -> None:
        fleet.rows()  # calling back into the fleet must not deadlock
        seen.append(change)

    def broken(change: dict[str, Any]) -> None:
        raise RuntimeError("a broken page")

    fleet.add_listener(broken)
    remove = fleet.add_listener(listener)
    fleet.on_online("a", True)
    fleet.on_heartbeat("a", hb("a", T0, cpu_temp_c=40.0))
    fleet.emit({"kind": "notice", "notice": {"text": "door open"}})
    assert [c["kind"] for c in seen] == ["panel", "panel", "notice"]
    assert seen[1]["row"]["cpu_temp_c"] == 40.0
    remove()
    fleet.on_online("a", False)
    assert len(seen) == 3


def test_threads_feeding_and_reading_at_once(fleet: Fleet) -> None:
    count = [0]
    lock = threading.Lock()

    def listener(change: dict[str, Any]) -> None:
        with lock:
            count[0] += 1

    fleet.add_listener(listener)

    def feed(n: int) -> None:
        for i in range(200):
            fleet.on_heartbeat(f"p{n}", hb(f"p{n}", T0, uptime_s=i))
            fleet.rows()

    threads = [threading.Thread(target=feed, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count[0] == 800
    assert [r["uptime_s"] for r in fleet.rows()] == [199] * 4


# -- what the console sent -------------------------------------------------------------


def test_alert_tracking(fleet: Fleet, clock: Clock) -> None:
    changes: list[dict[str, Any]] = []
    fleet.add_listener(changes.append)
    report = fleet.track_alert("crue-1", level="critical", title="Crue", body="Quais fermés",
                               targets=[{"scope": "group", "name": "berges"}], expected=["b", "a", "c"],
                               sent_by="marie", expires_at=T0 + 3600)
    assert report["expected"] == ["a", "b", "c"] and (report["reached"], report["total"]) == (0, 3)
    assert {e["status"] for e in report["panels"].values()} == {"waiting"}
    assert report["sent_at"] == T0 and report["sent_by"] == "marie" and report["cancelled_at"] is None
    fleet.on_event("a", {"type": "alert.displayed", "ts": "2026-12-03T10:00:02.100Z", "alert": "crue-1",
                         "displayed_at": "2026-12-03T10:00:02.050Z", "brightness": 60})
    fleet.on_event("b", {"type": "alert.rejected", "ts": "2026-12-03T10:00:02Z", "alert": "crue-1",
                         "reason": "signature refused"})
    fleet.on_event("c", {"type": "alert.displayed", "ts": "2026-12-03T10:00:03Z", "alert": "other"})
    r = fleet.alert_report("crue-1")
    assert r is not None
    assert r["panels"]["a"]["status"] == "displayed" and r["panels"]["a"]["at"] == "2026-12-03T10:00:02.050Z"
    assert r["panels"]["b"] == dict(r["panels"]["b"], status="rejected", detail="signature refused")
    assert r["panels"]["c"]["status"] == "waiting"
    assert (r["reached"], r["total"]) == (1, 3)
    fleet.on_event("a", {"type": "alert.ended", "ts": "2026-12-03T10:05:00Z", "alert": "crue-1",
                         "reason": "cancelled"})
    r = fleet.alert_report("crue-1")
    assert r["panels"]["a"]["status"] == "ended" and r["panels"]["a"]["detail"] == "cancelled"
    assert r["reached"] == 1   # it was shown there: still reached
    # a panel outside the expected list that shows it (joined the group since) counts too
    fleet.on_event("d", {"type": "alert.displayed", "ts": "2026-12-03T10:06:00Z", "alert": "crue-1"})
    r = fleet.alert_report("crue-1")
    assert r["expected"] == ["a", "b", "c", "d"] and (r["reached"], r["total"]) == (2, 4)
    assert r["panels"]["d"]["at"] == "2026-12-03T10:06:00Z"  # no displayed_at: the event's ts
    kinds = [c["kind"] for c in changes]
    assert kinds == ["alert"] * 5 and changes[-1]["alert"]["reached"] == 2
    clock.now = T0 + 60
    cancelled = fleet.alert_cancelled("crue-1", "paul")
    assert cancelled is not None and cancelled["cancelled_at"] == T0 + 60
    assert fleet.alert_cancelled("nope", "paul") is None
    fleet.track_alert("vent-2", level="info", title="Vent", body=None, targets=[{"scope": "all", "name": None}],
                      expected=[], sent_by="marie", expires_at=None)
    assert [r["id"] for r in fleet.alert_reports()] == ["vent-2", "crue-1"]
    # reports handed out are copies
    fleet.alert_report("vent-2")["panels"]["x"] = {}
    assert fleet.alert_report("vent-2")["panels"] == {}


def test_push_tracking(fleet: Fleet, clock: Clock) -> None:
    report = fleet.track_push("hiver", 3, ["a", "b", "c"], "marie")
    assert report["key"] == "hiver@3" and (report["applied"], report["total"]) == (0, 3)
    fleet.on_event("a", {"type": "playlist.applied", "ts": "2026-12-03T10:00:01Z", "playlist": "hiver",
                         "version": 3})
    fleet.on_event("b", {"type": "playlist.applied", "ts": "2026-12-03T10:00:01Z", "playlist": "hiver",
                         "version": 2})  # an older version: not this push
    fleet.on_event("c", {"type": "playlist.rejected", "ts": "2026-12-03T10:00:02Z", "playlist": "hiver",
                         "reason": "slides[0].file: asset missing"})
    r = fleet.push_report("hiver@3")
    assert r is not None
    assert [r["panels"][p]["status"] for p in "abc"] == ["applied", "waiting", "rejected"]
    assert r["panels"]["c"]["detail"] == "slides[0].file: asset missing"
    assert r["panels"]["a"]["at"] == "2026-12-03T10:00:01Z"
    assert (r["applied"], r["total"]) == (1, 3)
    clock.now = T0 + 1
    fleet.track_push("ete", 1, ["b"], "paul")
    fleet.on_event("b", {"type": "playlist.rejected", "ts": "2026-12-03T10:01:00Z",
                         "reason": "not valid JSON"})  # unnamed: the newest push waiting on b
    assert fleet.push_report("ete@1")["panels"]["b"]["status"] == "rejected"
    assert fleet.push_report("hiver@3")["panels"]["b"]["status"] == "waiting"
    assert [r["key"] for r in fleet.push_reports()] == ["ete@1", "hiver@3"]
    assert fleet.push_report("nope@1") is None


# -- settings -------------------------------------------------------------------------


def test_settings_defaults_and_values(tmp_path: Path) -> None:
    d = load_console_settings(None)
    assert d == ConsoleSettings() and d.listen_host == "127.0.0.1" and d.listen_port == 8470
    assert d.retention_days == 30 and d.heartbeat_interval == 30.0 and d.stale_factor == 3.0
    assert d.notices.language == "fr" and d.notices.mail_to == [] and d.notices.temp_c == 75.0
    assert d.db.endswith("/.local/share/panelctl/console.db") and d.db_is_sqlite
    s = load_console_settings({"listen_port": 9000, "db": "data/console.db", "retention_days": 7,
                               "stale_factor": 2, "secure_cookies": True, "screenshot_dir": "shots",
                               "notices": {"temp_c": 70, "mail_to": ["a@ville.example"], "language": "en",
                                           "webhook_url": "https://hooks.example/x"}}, base=tmp_path)
    assert s.listen_port == 9000 and s.db == str(tmp_path / "data/console.db") and s.retention_days == 7
    assert s.stale_factor == 2.0 and s.secure_cookies and s.screenshot_dir == tmp_path / "shots"
    assert s.notices.temp_c == 70.0 and s.notices.mail_to == ["a@ville.example"] and s.notices.language == "en"
    pg = load_console_settings({"db": "postgresql://console@db.example/panels"})
    assert pg.db == "postgresql://console@db.example/panels" and not pg.db_is_sqlite


def test_settings_refuse_bad_values_with_every_reason() -> None:
    with pytest.raises(ConfigError) as info:
        load_console_settings({"listen_port": "x", "retention_days": 0, "colour": "red", "secure_cookies": "yes",
                               "db": "mysql://x", "notices": {"language": "de", "mail_to": ["nobody"]}})
    text = str(info.value)
    for part in ("console.listen_port: expected an integer from 1 to 65535, got 'x'", "console.retention_days",
                 "console.colour: unknown key", "console.secure_cookies: expected true or false",
                 "console.db: expected a file path", "console.notices.language: expected one of fr, en",
                 "console.notices.mail_to"):
        assert part in text, part
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_console_settings(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_secret_created_0600_once(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "console-secret"
    first = read_or_create_secret(path)
    assert len(first) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_or_create_secret(path) == first

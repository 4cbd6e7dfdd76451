"""The console's history (player.console.history): a simulated day of heartbeats of two panels
with injected timestamps, read back as 24 h / 7 d / 30 d series, folded into 5-minute averages,
dropped after the retention, kept across a restart. Every test runs on SQLite and on a real
PostgreSQL server (tests/fixtures_postgres.py), which must give the same numbers."""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fixtures_postgres import PostgresServer

from player.console.history import History, redact
from player.console.settings import load_console_settings
from player.errors import ConfigError

T0 = datetime(2026, 12, 2, 0, 0, 0, tzinfo=timezone.utc).timestamp()  # a midnight: every bucket aligned
DAY = 86400
SAMPLES = DAY // 30          # one heartbeat every 30 s
RESTART_AT = 1000            # panel b restarts before its 1000th heartbeat...
RESTART_UPTIME = 5           # ...which says it has been up 5 s


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hb_a(k: int) -> dict[str, Any]:
    """Panel a: temperature 40..49 over every ten samples (44.5 per 5 minutes), no light sensor."""
    hour = k // 120
    return {"panel": "a", "ts": iso(T0 + 30 * k), "cpu_temp_c": 40.0 + k % 10, "brightness": 2 * hour,
            "ambient": None, "rss_mb": 40.0 + hour, "disk_free_mb": 1000, "mqtt_reconnects": 0,
            "uptime_s": 100_000 + 30 * k}


def hb_b(k: int) -> dict[str, Any]:
    """Panel b: 30 °C + the hour; ambient 1.0 once in even 5-minute buckets, 0.0 ten times in odd ones."""
    hour, bucket = k // 120, k // 10
    if bucket % 2 == 0:
        ambient = 1.0 if k % 10 == 0 else None
    else:
        ambient = 0.0
    uptime = 500 + 30 * k if k < RESTART_AT else RESTART_UPTIME + 30 * (k - RESTART_AT)
    return {"panel": "b", "ts": iso(T0 + 30 * k), "cpu_temp_c": 30.0 + hour, "brightness": None,
            "ambient": ambient, "uptime_s": uptime, "mqtt_reconnects": 1 if k >= 2000 else 0}


def record_day(history: History, ks: range = range(SAMPLES)) -> None:
    for k in ks:
        history.record_heartbeat("a", hb_a(k))
        history.record_heartbeat("b", hb_b(k))
    history.flush()


def values(series: dict[str, Any], metric: str) -> list[Any]:
    return [v for _, v in series["metrics"][metric]]


@dataclass
class Store:
    """Where a test's history lives: ``url`` for History, ``count`` reads the database itself."""

    kind: str
    url: str
    server: PostgresServer | None = None
    name: str = ""

    def count(self, sql: str) -> int:
        if self.server is not None:
            return int(self.server.sql(sql, self.name)[0][0])
        with sqlite3.connect(self.url) as conn:
            return int(conn.execute(sql).fetchone()[0])


def rows(db: Store, where: str = "1 = 1") -> int:
    return db.count(f"SELECT COUNT(*) FROM samples WHERE {where}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "console.db"))
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.new_db()
    return Store("postgresql", server.url(name), server, name)


@pytest.fixture
def history(db: Store) -> Any:
    h = History(db.url, retention_days=30, clock=lambda: T0 + DAY)
    yield h
    h.close()


def test_a_day_in_24h_buckets(history: History, db: Store) -> None:
    record_day(history)
    assert history.commits <= 5  # 11 520 writes in a few transactions: batched by the writer thread
    now = T0 + DAY - 1
    s = history.series("a", "24h", now=now)
    assert (s["from"], s["to"], s["step"], s["span"]) == (T0, now, 300, "24h")
    times = [t for t, _ in s["metrics"]["cpu_temp_c"]]
    assert times == [T0 + 300 * i for i in range(288)]
    assert values(s, "cpu_temp_c") == [44.5] * 288
    assert values(s, "brightness") == [2 * (i // 12) for i in range(288)]
    assert values(s, "rss_mb") == [40.0 + i // 12 for i in range(288)]
    assert values(s, "ambient") == [None] * 288          # no sensor: no curve, not zeros
    assert values(s, "disk_free_mb") == [1000] * 288
    assert s["restarts"] == [] and s["thresholds"] == {"cpu_temp_c": 75.0}
    b = history.series("b", "24h", now=now)
    assert values(b, "cpu_temp_c") == [30.0 + i // 12 for i in range(288)]
    assert values(b, "ambient") == [1.0 if i % 2 == 0 else 0.0 for i in range(288)]
    assert values(b, "brightness") == [None] * 288
    assert values(b, "mqtt_reconnects")[199:202] == [0.0, 1.0, 1.0]   # k = 2000 starts bucket 200
    assert b["restarts"] == [T0 + 30 * RESTART_AT - RESTART_UPTIME]
    # an hour later the first bucket has left the 24 h window and an empty current one came
    later = history.series("b", "24h", now=T0 + DAY + 3600)
    assert later["from"] == T0 + 3900 and values(later, "cpu_temp_c")[0] == 31.0
    assert values(later, "cpu_temp_c")[-13:] == [None] * 13
    assert history.series("nobody", "24h", now=now)["metrics"]["cpu_temp_c"][0][1] is None
    with pytest.raises(ValueError, match="span: expected one of 24h, 7d, 30d"):
        history.series("a", "1y", now=now)


def test_7d_and_30d_spans(history: History) -> None:
    record_day(history)
    now = T0 + DAY - 1
    week = history.series("b", "7d", now=now)
    assert week["step"] == 1800 and len(week["metrics"]["cpu_temp_c"]) == 7 * 48
    assert week["from"] == T0 + DAY - 7 * DAY and week["metrics"]["cpu_temp_c"][-48][0] == T0
    day = values(week, "cpu_temp_c")[-48:]
    assert day == [30.0 + j // 2 for j in range(48)]
    assert values(week, "cpu_temp_c")[:-48] == [None] * (6 * 48)
    # ambient per half hour: 3 readings of 1.0 and 30 of 0.0, not the mean of the 5-minute means
    assert values(week, "ambient")[-48:] == [round(3 / 33, 3)] * 48
    month = history.series("b", "30d", now=now)
    assert month["step"] == 7200 and len(month["metrics"]["cpu_temp_c"]) == 360
    assert values(month, "cpu_temp_c")[-12:] == [30.5 + 2 * j for j in range(12)]
    assert values(month, "cpu_temp_c")[:-12] == [None] * 348
    assert month["restarts"] == [T0 + 30 * RESTART_AT - RESTART_UPTIME]


def test_folding_into_5_minute_buckets_keeps_the_averages(history: History, db: Store) -> None:
    record_day(history)
    now = T0 + DAY - 1
    before = {(p, span): history.series(p, span, now=now) for p in "ab" for span in ("24h", "7d", "30d")}
    assert rows(db, "res = 0") == 2 * SAMPLES
    history.maintain(now=T0 + 2 * DAY)      # the whole day is now older than a day
    assert rows(db, "res = 0") == 0 and rows(db, "res = 300") == 2 * 288
    for key, series in before.items():
        assert history.series(key[0], key[1], now=now) == series, key
    # a late raw sample in a folded bucket still averages right with it
    history.record_heartbeat("a", {"ts": iso(T0 + 15), "cpu_temp_c": 55.0})
    history.flush()
    first = history.series("a", "24h", now=now)["metrics"]["cpu_temp_c"][0][1]
    assert first == pytest.approx((44.5 * 10 + 55.0) / 11, abs=1e-3)
    history.maintain(now=T0 + 2 * DAY)      # folded again: two 5-minute rows for that bucket, same average
    assert rows(db, "res = 0") == 0
    assert history.series("a", "24h", now=now)["metrics"]["cpu_temp_c"][0][1] == first


def test_recent_samples_stay_raw_and_the_retention_drops_old_ones(db: Store) -> None:
    h = History(db.url, retention_days=2, clock=lambda: T0)
    try:
        record_day(h)
        h.record_event("a", {"type": "playlist.applied", "ts": iso(T0 + 60), "playlist": "hiver", "version": 3})
        h.record_event("a", {"type": "error", "ts": iso(T0 + DAY - 60), "reason": "sensor light: no answer"})
        h.record_state("a", T0 - 10, "online")
        h.record_state("a", T0 + 40_000, "offline")
        h.flush()
        h.maintain(now=T0 + DAY + 43_200)   # samples of the last 24 h stay raw: the second half of the day
        assert rows(db, "res = 0") == 2 * SAMPLES // 2 and rows(db, "res = 300") == 2 * 144
        now = T0 + 2 * DAY + 43_200          # retention 2 days: the first half of the day goes
        h.maintain(now=now)
        assert rows(db, "res = 300") == 2 * 144 and rows(db, "res = 0") == 0
        series = h.series("b", "7d", now=now)
        by_time = {t: v for t, v in series["metrics"]["cpu_temp_c"]}
        assert [by_time[T0 + 1800 * j] for j in range(24)] == [None] * 24     # dropped
        assert [by_time[T0 + 43_200 + 1800 * j] for j in range(24)] == [42.0 + j // 2 for j in range(24)]
        assert sum(v is not None for v in by_time.values()) == 24
        assert [e["kind"] for e in h.events("a", since=0)] == ["error"]    # the older event went
        # the state in force at the cut is kept, so the strip still starts with it
        assert h.series("a", "7d", now=now)["states"][0][2] == "offline"
    finally:
        h.close()


def test_states_strip(history: History) -> None:
    for t, state in ((T0 - 5000, "offline"), (T0, "online"), (T0 + 3600, "stale"), (T0 + 3700, "online"),
                     (T0 + 3800, "online"), (T0 + 80_000, "offline")):
        history.record_state("a", t, state)
    history.flush()
    now = T0 + DAY - 1
    assert history.series("a", "24h", now=now)["states"] == [
        [T0, T0 + 3600, "online"], [T0 + 3600, T0 + 3700, "stale"], [T0 + 3700, T0 + 80_000, "online"],
        [T0 + 80_000, now, "offline"]]
    assert history.series("b", "24h", now=now)["states"] == []


def test_the_database_survives_a_restart(db: Store) -> None:
    first = History(db.url, clock=lambda: T0)
    record_day(first, range(0, 1500))
    now = T0 + DAY - 1
    series = {p: first.series(p, "24h", now=now) for p in "ab"}
    first.close()
    if db.server is None:
        with sqlite3.connect(db.url) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        again = History(db.url, clock=lambda: T0)
    else:  # the same database reached through the unix socket this time
        again = History(db.server.url(db.name, tcp=False), clock=lambda: T0)
    assert (first.backend, again.backend) == (("SQLite",) * 2 if db.server is None else ("PostgreSQL",) * 2)
    try:
        assert {p: again.series(p, "24h", now=now) for p in "ab"} == series
        count = rows(db)
        again.record_heartbeat("b", hb_b(1499))   # the retained heartbeat delivered again: not twice
        again.flush()
        assert rows(db) == count
        again.record_heartbeat("b", {"ts": iso(T0 + 30 * 1500), "uptime_s": 12})   # a restart, seen
        again.flush()                                                               # across ours
        assert again.series("b", "24h", now=now)["restarts"] == [
            T0 + 30 * RESTART_AT - RESTART_UPTIME, T0 + 30 * 1500 - 12]
    finally:
        again.close()
    with pytest.raises(RuntimeError, match="closed"):
        again.record_state("a", T0, "online")


def test_postgresql_survives_a_restart_of_the_server(postgres: PostgresServer, caplog: Any) -> None:
    """The server restarts under the console: the next batch and the next read use new connections."""
    name = postgres.new_db()
    h = History(postgres.url(name), clock=lambda: T0)
    try:
        record_day(h, range(0, 10))
        postgres.restart()
        with caplog.at_level(logging.WARNING, logger="player.console.history"):
            record_day(h, range(10, 20))
        assert "connected again" in caplog.text and "writes lost" not in caplog.text
        assert values(h.series("a", "24h", now=T0 + 600), "cpu_temp_c")[-3:-1] == [44.5, 44.5]
        assert int(postgres.sql("SELECT COUNT(*) FROM samples", name)[0][0]) == 40
    finally:
        h.close()


def test_postgresql_schema_and_types(postgres: PostgresServer) -> None:
    name = postgres.new_db()
    History(postgres.url(name)).close()
    History(postgres.url(name)).close()       # a second start finds the schema: nothing added twice
    columns = dict(postgres.sql("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'samples'", name))
    assert columns["t"] == "double precision" and columns["cpu_temp_c"] == "double precision"
    assert columns["n_cpu_temp_c"] == "integer" and columns["panel"] == "character varying"
    assert postgres.sql("SELECT version FROM schema_version", name) == [(1,)]
    # a role that may connect but not create tables (PostgreSQL 15: public is the owner's) is told so
    other = postgres.new_db()
    postgres.sql("CREATE ROLE visitor LOGIN")
    try:
        with pytest.raises(ConfigError, match=r"console.db: cannot create or read the history's tables in "
                           r"postgresql://visitor@.*permission denied.*the role needs to own the database"):
            History(f"postgresql://visitor@127.0.0.1:{postgres.port}/{other}")
    finally:
        postgres.sql("DROP ROLE visitor")


def test_postgresql_errors_are_sentences(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"postgresql://panel:s3cret@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(ConnectionError, match=r"console.db: cannot connect to PostgreSQL at "
                       r"postgresql://panel:\*\*\*@127.0.0.1:\d+/no_such_db: .*") as info:
        History(closed)
    assert "s3cret" not in str(info.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)   # as on a console installed without the extra
    with pytest.raises(ConfigError, match=r"psycopg, is not installed: pip install 'panel-player\[console\]'"):
        History(postgres.url("postgres"))
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("postgresql://u@h/db?sslmode=require&password=p") == "postgresql://u@h/db?sslmode=require&password=***"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_settings_accept_postgresql_urls_and_refuse_other_schemes() -> None:
    for url in ("postgresql://panelctl@db.example/panels", "postgres://panelctl:pw@10.0.0.5:5433/panels",
                "postgresql:///panels?host=/run/postgresql"):
        settings = load_console_settings({"db": url})
        assert settings.db == url and not settings.db_is_sqlite
    with pytest.raises(ConfigError, match=r"console.db: expected a file path \(SQLite\) or a postgresql:// URL"):
        load_console_settings({"db": "mysql://panelctl@db.example/panels"})
    with pytest.raises(ConfigError, match="console.db: the PostgreSQL URL names no database"):
        load_console_settings({"db": "postgresql://panelctl@db.example"})
    with pytest.raises(ConfigError, match="console.db: not a valid PostgreSQL URL"):
        load_console_settings({"db": "postgresql://panelctl@db.example:port/panels"})


def test_batching_on_postgresql_is_measured(postgres: PostgresServer) -> None:
    """A day of two panels (5 760 heartbeats) is written in a few transactions, and quickly."""
    h = History(postgres.url(postgres.new_db()), clock=lambda: T0 + DAY)
    try:
        started = time.monotonic()
        record_day(h)
        elapsed = time.monotonic() - started
        assert h.commits <= 8 and elapsed < 30, (h.commits, elapsed)
        print(f"postgresql: {2 * SAMPLES} heartbeats recorded in {elapsed:.2f} s, {h.commits} commits")
    finally:
        h.close()


def test_a_heartbeat_again_is_skipped_another_in_the_same_second_kept(history: History, db: Store) -> None:
    beat = {"ts": iso(T0), "cpu_temp_c": 50.0, "uptime_s": 600}
    history.record_heartbeat("a", beat)
    history.record_heartbeat("a", dict(beat))                       # delivered again (retained)
    history.record_heartbeat("a", dict(beat, cpu_temp_c=80.0))      # a notable change, same second
    history.flush()
    assert rows(db) == 2
    assert history.series("a", "24h", now=T0 + 60)["metrics"]["cpu_temp_c"][-1][1] == 65.0
    history.record_heartbeat("a", dict(beat, uptime_s=2))            # restarted within that second
    history.flush()
    assert history.series("a", "24h", now=T0 + 60)["restarts"] == [T0 - 2]


def test_the_documented_settings_load() -> None:
    """The YAML examples of docs/console-history.md are accepted by the settings as they are written."""
    import re

    import yaml

    text = (Path(__file__).resolve().parent.parent / "docs" / "console-history.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    dbs = [load_console_settings(yaml.safe_load(block)["console"]).db for block in blocks]
    assert len(dbs) == 3 and dbs[0].endswith("/.local/share/panelctl/console.db")
    assert dbs[1:] == ["postgresql://panelctl@db.ville.example/panels", "postgresql:///panels?host=/run/postgresql"]


def test_two_consoles_on_one_postgresql_fold_once(postgres: PostgresServer) -> None:
    """Two consoles maintaining the same database at once: the advisory lock lets one fold, the other finds
    nothing left to fold (without it both would read the same raw rows and store each 5 minutes twice)."""
    import threading

    name = postgres.new_db()
    first, second = (History(postgres.url(name), clock=lambda: T0 + DAY) for _ in range(2))
    try:
        record_day(first)
        for _ in range(3):
            go = threading.Barrier(2)
            threads = [threading.Thread(target=lambda h=h: (go.wait(), h.maintain(now=T0 + 2 * DAY)))
                       for h in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            store = Store("postgresql", postgres.url(name), postgres, name)
            assert (rows(store, "res = 0"), rows(store, "res = 300")) == (0, 2 * 288)
        assert values(second.series("b", "24h", now=T0 + DAY - 1), "cpu_temp_c") == [30.0 + i // 12 for i in range(288)]
    finally:
        first.close()
        second.close()

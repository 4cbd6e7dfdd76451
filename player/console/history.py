"""The console's history of every panel: heartbeat metrics, states, restarts, events.

Kept in SQLite (WAL mode, one file: ``console.db`` setting), or in PostgreSQL when
``console.db`` is a ``postgresql://`` URL (driver: psycopg 3, the console extra). Each heartbeat is a
sample at its own ``ts``; for the last day every sample is kept, older ones are
folded into 5-minute averages by :meth:`History.maintain`, and everything older
than ``retention_days`` is dropped. Each metric is stored with the number of
readings behind it (``n_<metric>``: 0 for a ``null``), so an average over any
span is ``Σ value·n / Σ n`` whether the rows are raw or already folded: folding
never changes an average, and a panel without a light sensor has no ambient
curve rather than a curve of zeros.

A restart is a drop of the heartbeat's ``uptime_s``; it is placed at the
moment the player started (``ts - uptime_s``).

Writes are queued and committed by one writer thread every second, in one
transaction each time; :meth:`History.flush` waits for what was queued. Reads
use a connection of their own (WAL: they never wait for the writer). Both
databases run the same SQL; the little that differs (placeholders ``?`` or
``%s``, how to connect, SQLite's pragmas, PostgreSQL's advisory locks) is in
:class:`_Sqlite` and :class:`_Postgres`. See docs/console-history.md.

Example::

    history = History("/var/lib/panelctl/console.db", retention_days=30)
    # or History("postgresql://panelctl@db.example/panels")
    history.record_heartbeat("p1", {"ts": "2026-12-03T10:00:00Z", "cpu_temp_c": 48.5, "uptime_s": 60})
    history.flush()
    history.series("p1", "24h")["metrics"]["cpu_temp_c"]   # [[t, 48.5], [t, None], ...]
    history.close()
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .fleet import parse_ts

log = logging.getLogger(__name__)

METRICS = ("cpu_temp_c", "brightness", "ambient", "rss_mb", "disk_free_mb", "mqtt_reconnects")
SPANS = {"24h": (86400, 300), "7d": (7 * 86400, 1800), "30d": (30 * 86400, 7200)}  # span s, step s
RAW_KEEP = 86400.0          # samples younger than this stay as they came
FOLD = 300                  # older ones become one row per 5 minutes
COMMIT_EVERY = 1.0          # the writer thread commits what is queued this often
MAINTAIN_EVERY = 3600.0     # and folds/drops old rows this often
MAINTAIN_FIRST = 60.0       # the first time a minute after the start
SCHEMA_VERSION = 1
DEFAULT_THRESHOLDS = {"cpu_temp_c": 75.0}

_METRIC_COLUMNS = ", ".join(f"{m} DOUBLE PRECISION, n_{m} INTEGER NOT NULL" for m in METRICS)
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    # res: 0 for a heartbeat as it came, FOLD for a 5-minute average (t = the bucket's start)
    f"CREATE TABLE IF NOT EXISTS samples (panel VARCHAR(200) NOT NULL, t DOUBLE PRECISION NOT NULL, "
    f"res INTEGER NOT NULL, {_METRIC_COLUMNS})",
    "CREATE INDEX IF NOT EXISTS samples_panel_t ON samples (panel, t)",
    "CREATE INDEX IF NOT EXISTS samples_res_t ON samples (res, t)",
    "CREATE TABLE IF NOT EXISTS states (panel VARCHAR(200) NOT NULL, t DOUBLE PRECISION NOT NULL, "
    "state VARCHAR(20) NOT NULL)",
    "CREATE INDEX IF NOT EXISTS states_panel_t ON states (panel, t)",
    "CREATE TABLE IF NOT EXISTS events (panel VARCHAR(200) NOT NULL, t DOUBLE PRECISION NOT NULL, "
    "kind VARCHAR(64) NOT NULL, detail TEXT)",
    "CREATE INDEX IF NOT EXISTS events_panel_t ON events (panel, t)",
    # the last heartbeat recorded per panel: duplicates (a retained heartbeat delivered again)
    # are skipped and restarts found across a restart of the console too
    "CREATE TABLE IF NOT EXISTS panel_meta (panel VARCHAR(200) PRIMARY KEY, last_t DOUBLE PRECISION, "
    "uptime_s BIGINT)",
]
INSERT_SAMPLE = (f"INSERT INTO samples (panel, t, res, {', '.join(METRICS)}, {', '.join('n_' + m for m in METRICS)}) "
                 f"VALUES ({', '.join('?' * (3 + 2 * len(METRICS)))})")
UPSERT_META = ("INSERT INTO panel_meta (panel, last_t, uptime_s) VALUES (?, ?, ?) "
               "ON CONFLICT (panel) DO UPDATE SET last_t = excluded.last_t, uptime_s = excluded.uptime_s")

Op = tuple[str, tuple[Any, ...]]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# PostgreSQL: two consoles on one database create the schema and fold old rows one at a time
_LOCK_SCHEMA, _LOCK_MAINTAIN = 0x70616E656C01, 0x70616E656C02


def is_postgres(db: str) -> bool:
    """Whether a ``console.db`` value names a PostgreSQL database rather than a SQLite file."""
    return db.startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    url = re.sub(r"^(\w+://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


class _Sqlite:
    """SQLite: one file in WAL mode; ``?`` placeholders."""

    name = "SQLite"

    def __init__(self, db: str) -> None:
        if db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.path = str(Path(db).expanduser()) if db != ":memory:" else db

    def connect(self, reader: bool) -> Any:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def sql(self, text: str) -> str:
        return text

    def lock(self, cur: Any, key: int) -> None:
        """SQLite has one writer at a time anyway."""

    def broken(self, conn: Any) -> bool:
        return False


class _Postgres:
    """PostgreSQL through psycopg 3: ``%s`` placeholders; readers in autocommit (no idle transaction)."""

    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError([f"console.db is a PostgreSQL URL ({redact(url)}) but its driver, psycopg, is not "
                               "installed: pip install 'panel-player[console]' (or psycopg[binary])"]) from None
        self.psycopg = psycopg
        self.url = url

    def connect(self, reader: bool) -> Any:
        try:
            return self.psycopg.connect(self.url, autocommit=reader, connect_timeout=10,
                                        application_name="panelctl-console")
        except self.psycopg.Error as exc:
            raise ConnectionError(f"console.db: cannot connect to PostgreSQL at {redact(self.url)}: "
                                  f"{' '.join(str(exc).split())}") from exc

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def lock(self, cur: Any, key: int) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)


@contextmanager
def _transaction(conn: Any) -> Iterator[Any]:
    """A cursor in one transaction, committed at the end or rolled back on an error (both drivers)."""
    cur = conn.cursor()
    try:
        yield cur
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a dead connection: nothing to roll back
            pass
        raise
    finally:
        cur.close()


def _metric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class History:
    """See the module documentation; every method may be called from any thread."""

    def __init__(self, db: str, retention_days: int = 30, clock: Callable[[], float] = time.time,
                 thresholds: dict[str, float] | None = None) -> None:
        self.db = db
        self._backend: _Sqlite | _Postgres = _Postgres(db) if is_postgres(db) else _Sqlite(db)
        self.retention_days = retention_days
        self.clock = clock
        self.thresholds = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
        self.commits = 0  # transactions committed by the writer (batching: far fewer than the writes)
        self._write = self._backend.connect(reader=False)
        try:
            with _transaction(self._write) as cur:
                self._backend.lock(cur, _LOCK_SCHEMA)
                for statement in SCHEMA:
                    cur.execute(statement)
                if cur.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                    cur.execute(self._backend.sql("INSERT INTO schema_version (version) VALUES (?)"),
                                (SCHEMA_VERSION,))
                # panel -> (ts, uptime_s, digest of the heartbeat or None when read back from the database)
                self._meta: dict[str, tuple[float, int | None, str | None]] = {
                    str(p): (float(t), None if u is None else int(u), None)
                    for p, t, u in cur.execute("SELECT panel, last_t, uptime_s FROM panel_meta").fetchall()}
        except Exception as exc:
            self._write.close()
            if isinstance(self._backend, _Postgres) and isinstance(exc, self._backend.psycopg.Error):
                raise ConfigError([f"console.db: cannot create or read the history's tables in "
                                   f"{redact(db)}: {(str(exc).strip().splitlines() or ['?'])[0]} (the role needs to own the database, "
                                   "see docs/console-history.md)"]) from exc
            raise
        self._read = self._backend.connect(reader=True)
        self._read_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name="console-history", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> str:
        """"SQLite" or "PostgreSQL"."""
        return self._backend.name

    # -- recording (queued) ------------------------------------------------------------
    def record_heartbeat(self, panel: str, hb: dict[str, Any]) -> None:
        """Queue one sample at the heartbeat's ``ts`` (the console's clock if unreadable)."""
        t = parse_ts(hb.get("ts"))
        if t is None:
            t = self.clock()
        uptime = hb.get("uptime_s")
        uptime = uptime if isinstance(uptime, int) and not isinstance(uptime, bool) else None
        digest = hashlib.sha256(json.dumps(hb, sort_keys=True, default=str).encode()).hexdigest()
        with self._meta_lock:
            last = self._meta.get(panel)
            if last is not None and last[0] == t and last[2] in (None, digest):
                # the same heartbeat again (retained, after a reconnection or a restart of ours);
                # another one within the same second (a notable change) is kept
                return
            restart = (last is not None and t >= last[0] and uptime is not None and last[1] is not None
                       and uptime < last[1])
            if last is None or t >= last[0]:
                self._meta[panel] = (t, uptime, digest)
                self._put("sql", (UPSERT_META, (panel, t, uptime)))
        values = [_metric(hb.get(m)) for m in METRICS]
        self._put("sql", (INSERT_SAMPLE, (panel, t, 0, *values, *(0 if v is None else 1 for v in values))))
        if restart:
            assert uptime is not None
            self._put("sql", ("INSERT INTO events (panel, t, kind, detail) VALUES (?, ?, ?, ?)",
                              (panel, t - uptime, "restart", json.dumps({"uptime_s": uptime, "ts": hb.get("ts")}))))

    def record_state(self, panel: str, ts: float, state: str) -> None:
        """Queue a state change (the online strip of the panel page)."""
        self._put("sql", ("INSERT INTO states (panel, t, state) VALUES (?, ?, ?)", (panel, ts, state)))

    def record_event(self, panel: str, event: dict[str, Any]) -> None:
        """Queue an event of the panel, at its ``ts`` (the console's clock if unreadable)."""
        t = parse_ts(event.get("ts"))
        kind = event.get("type")
        self._put("sql", ("INSERT INTO events (panel, t, kind, detail) VALUES (?, ?, ?, ?)",
                          (panel, self.clock() if t is None else t, str(kind)[:64] if kind else "unknown",
                           json.dumps(event, sort_keys=True, default=str))))

    def _put(self, kind: str, item: Any) -> None:
        if self._closed:
            raise RuntimeError("the history is closed")
        self._queue.put((kind, item))

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        self._put("flush", done)
        done.wait()

    def maintain(self, now: float | None = None) -> None:
        """Fold samples older than a day into 5-minute averages; drop what is older than the retention."""
        done = threading.Event()
        self._put("maintain", (self.clock() if now is None else now, done))
        done.wait()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._queue.put(("stop", None))
        self._thread.join()
        self._write.close()
        with self._read_lock:
            self._read.close()

    # -- the writer thread ---------------------------------------------------------------
    def _writer(self) -> None:
        next_maintain = time.monotonic() + MAINTAIN_FIRST  # a console restarted often still folds
        while True:
            deadline = time.monotonic() + COMMIT_EVERY
            batch: list[Op] = []
            waiting: list[threading.Event] = []
            stop = False
            maintain: tuple[float, threading.Event] | None = None
            while True:  # gather until the second is over, or someone waits
                try:
                    kind, item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if kind == "sql":
                    batch.append(item)
                    continue
                if kind == "flush":
                    waiting.append(item)
                elif kind == "maintain":
                    maintain = item
                else:
                    stop = True
                break
            self._commit(batch)
            if maintain is None and time.monotonic() >= next_maintain:
                maintain = (self.clock(), threading.Event())
            if maintain is not None:
                next_maintain = time.monotonic() + MAINTAIN_EVERY
                try:
                    self._maintain(maintain[0])
                except Exception:  # noqa: BLE001 - the writer thread must live on
                    log.exception("history maintenance failed")
                maintain[1].set()
            for event in waiting:
                event.set()
            if stop:
                return

    def _commit(self, batch: list[Op]) -> None:
        if not batch:
            return
        for attempt in (1, 2):
            try:
                with _transaction(self._write) as cur:  # one transaction for the whole batch
                    for sql, params in batch:
                        cur.execute(self._backend.sql(sql), params)
                self.commits += 1
                return
            except Exception:  # noqa: BLE001 - the writer thread must live on
                if attempt == 1 and self._reconnect_writer():
                    continue  # the server restarted or the link dropped: once more on a new connection
                log.exception("history: %d writes lost", len(batch))
                return

    def _reconnect_writer(self) -> bool:
        """A new write connection if the old one is dead (PostgreSQL); whether there is one."""
        if not self._backend.broken(self._write):
            return False
        try:
            self._write = self._backend.connect(reader=False)
        except OSError as exc:
            log.warning("history: %s", exc)
            return False
        log.warning("history: connected again to %s", redact(self.db))
        return True

    def _maintain(self, now: float) -> None:
        cutoff = math.floor((now - RAW_KEEP) / FOLD) * FOLD  # whole 5-minute buckets only
        drop = now - self.retention_days * 86400.0
        if self._backend.broken(self._write):
            self._reconnect_writer()
        sql = self._backend.sql
        with _transaction(self._write) as cur:
            self._backend.lock(cur, _LOCK_MAINTAIN)  # another console folding the same rows waits, then sees none
            rows = cur.execute(sql(
                f"SELECT panel, t, {', '.join(METRICS)}, {', '.join('n_' + m for m in METRICS)} "
                "FROM samples WHERE res = 0 AND t < ? ORDER BY panel, t"), (cutoff,)).fetchall()
            folded: dict[tuple[str, float], list[float]] = {}  # (panel, bucket) -> sums then counts
            k = len(METRICS)
            for row in rows:
                acc = folded.setdefault((row[0], math.floor(row[1] / FOLD) * FOLD), [0.0] * (2 * k))
                for i in range(k):
                    n = row[2 + k + i]
                    if n:
                        acc[i] += row[2 + i] * n
                        acc[k + i] += n
            if folded:
                cur.executemany(sql(INSERT_SAMPLE), [
                    (panel, bucket, FOLD, *(acc[i] / acc[k + i] if acc[k + i] else None for i in range(k)),
                     *(int(acc[k + i]) for i in range(k)))
                    for (panel, bucket), acc in folded.items()])
            cur.execute(sql("DELETE FROM samples WHERE res = 0 AND t < ?"), (cutoff,))
            cur.execute(sql("DELETE FROM samples WHERE t < ?"), (drop,))
            cur.execute(sql("DELETE FROM events WHERE t < ?"), (drop,))
            # the state in force at the cut stays, so that the strip starts with it
            cur.execute(sql("DELETE FROM states WHERE t < ? AND t < (SELECT MAX(s.t) FROM states s "
                            "WHERE s.panel = states.panel AND s.t < ?)"), (drop, drop))

    # -- reading ---------------------------------------------------------------------------
    def _query(self, sql: str, params: Iterable[Any]) -> list[Any]:
        with self._read_lock:
            for attempt in (1, 2):
                try:
                    cur = self._read.cursor()
                    try:
                        return list(cur.execute(self._backend.sql(sql), tuple(params)).fetchall())
                    finally:
                        cur.close()
                except Exception:
                    if attempt == 2 or not self._backend.broken(self._read):
                        raise
                    self._read = self._backend.connect(reader=True)  # PostgreSQL restarted: once more
            raise AssertionError("unreachable")

    def series(self, panel: str, span: str, now: float | None = None) -> dict[str, Any]:
        """The panel's metrics over ``span`` ("24h", "7d", "30d") in buckets of 5 min, 30 min or 2 h.

        ``metrics[m]`` is ``[[bucket start, average or None], ...]`` for every bucket from
        ``from`` to the one holding ``to`` (now); ``restarts`` the start times found in the
        span; ``states`` ``[[from, to, state], ...]`` covering it from the first state known.
        """
        if span not in SPANS:
            raise ValueError(f"span: expected one of {', '.join(SPANS)}, got {span!r}")
        length, step = SPANS[span]
        to = self.clock() if now is None else now
        start = math.floor((to - length) / step) * step + step
        buckets = list(range(int(start), int(math.floor(to / step) * step) + 1, step))
        index = {b: i for i, b in enumerate(buckets)}
        k = len(METRICS)
        sums = [[0.0] * len(buckets) for _ in METRICS]
        counts = [[0] * len(buckets) for _ in METRICS]
        rows = self._query(f"SELECT t, {', '.join(METRICS)}, {', '.join('n_' + m for m in METRICS)} "
                           "FROM samples WHERE panel = ? AND t >= ? AND t <= ?", (panel, start, to))
        for row in rows:
            i = index.get(int(math.floor(row[0] / step) * step))
            if i is None:
                continue
            for m in range(k):
                n = row[1 + k + m]
                if n:
                    sums[m][i] += row[1 + m] * n
                    counts[m][i] += n
        metrics = {name: [[float(b), round(sums[m][i] / counts[m][i], 3) if counts[m][i] else None]
                          for i, b in enumerate(buckets)] for m, name in enumerate(METRICS)}
        restarts = [float(t) for (t,) in self._query(
            "SELECT t FROM events WHERE panel = ? AND kind = 'restart' AND t >= ? AND t <= ? ORDER BY t",
            (panel, start, to))]
        return {"panel": panel, "span": span, "from": float(start), "to": float(to), "step": step,
                "metrics": metrics, "restarts": restarts, "states": self._states(panel, start, to),
                "thresholds": dict(self.thresholds)}

    def _states(self, panel: str, start: float, to: float) -> list[list[Any]]:
        before = self._query("SELECT t, state FROM states WHERE panel = ? AND t <= ? ORDER BY t DESC LIMIT 1",
                             (panel, start))
        inside = self._query("SELECT t, state FROM states WHERE panel = ? AND t > ? AND t <= ? ORDER BY t",
                             (panel, start, to))
        changes = [(start, before[0][1])] if before else []
        changes += [(float(t), str(s)) for t, s in inside]
        segments: list[list[Any]] = []
        for i, (t, state) in enumerate(changes):
            end = changes[i + 1][0] if i + 1 < len(changes) else to
            if segments and segments[-1][2] == state:
                segments[-1][1] = end
            else:
                segments.append([float(t), float(end), state])
        return segments

    def events(self, panel: str, since: float, limit: int = 200) -> list[dict[str, Any]]:
        """The panel's recorded events since ``since``, newest first (restarts included)."""
        rows = self._query("SELECT t, kind, detail FROM events WHERE panel = ? AND t >= ? ORDER BY t DESC LIMIT ?",
                           (panel, since, limit))
        return [{"t": float(t), "kind": str(kind), "detail": json.loads(detail) if detail else None}
                for t, kind, detail in rows]

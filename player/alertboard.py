"""The alert board: which alerts are active, which one to show now, when they end.

Pure logic, no I/O; the clocks are arguments: ``mono`` (``time.monotonic()``)
and ``wall`` (an aware ``datetime``). The rules (see ``docs/alerts.md``):

- alerts are kept by ``(scope, scope_name, id)``: the same id on two scopes is two
  retained messages, each cancelled by its own topic; for display the most specific
  one wins (panel, then groups in config order, then ``all``), the other waits;
- ``ttl`` counts from receipt on the monotonic clock, ``expires`` on the wall clock;
- the highest level present is shown; alerts of that level take turns every
  ``turn_seconds`` in arrival order; a new or changed one is shown at once;
- a retained redelivery (broker reconnect, restart) of an alert already on the
  board keeps its original receipt time, and one that already ended stays ended.

Example::

    board = AlertBoard(turn_seconds=8)
    board.apply(alert, time.monotonic(), datetime.now(timezone.utc))
    board.expire(mono, wall)          # call before current()
    board.current(mono)               # the alert to draw, or None
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from .alerts import LEVELS, Alert, Cancel, CapRef, check_alert_id, check_scope, level_rank
from .content import parse_datetime

Key = tuple[str, str, str]  # (scope, scope_name, id)
SCOPE_ORDER = {"panel": 0, "group": 1, "all": 2}
MAX_ENDED = 64
RECORD_VERSION = 1


@dataclass
class _Entry:
    alert: Alert
    seq: int  # arrival order: the order of turns
    ttl_deadline: float | None  # monotonic


class AlertBoard:
    """Active alerts of one panel. ``groups``: the panel's groups in config order."""

    def __init__(self, turn_seconds: float = 8.0, *, groups: Iterable[str] = ()) -> None:
        if turn_seconds <= 0:
            raise ValueError("turn_seconds must be positive")
        self.turn_seconds = float(turn_seconds)
        self.groups = tuple(groups)
        self._entries: dict[Key, _Entry] = {}
        self._ended: dict[Key, Alert] = {}  # alerts that expired or were withdrawn by reference
        self._next_seq = 0
        self._shown: Key | None = None
        self._shown_seq = -1
        self._shown_level = ""
        self._shown_since = 0.0

    # -- changes ---------------------------------------------------------------
    def apply(self, alert: Alert, mono: float, wall: datetime, *, retained: bool = False) -> str:
        """Add or update an alert: ``"added"``, ``"updated"``, ``"unchanged"`` or ``"ignored"``.

        ``retained``: the MQTT message came with the retain flag (a redelivery on
        subscribe). An identical redelivery keeps the receipt time (``"unchanged"``);
        one of an alert that already expired is ``"ignored"``.
        """
        return self.apply_replacing(alert, mono, wall, retained=retained)[0]

    def apply_replacing(self, alert: Alert, mono: float, wall: datetime, *,
                        retained: bool = False) -> tuple[str, list[Alert]]:
        """:meth:`apply`, also returning the alerts a CAP Update replaced (on other topics)."""
        key = alert.key
        old = self._entries.get(key)
        if retained and old is not None and old.alert == alert:
            return "unchanged", []
        if retained and old is None and self._ended.get(key) == alert:
            return "ignored", []
        self._ended.pop(key, None)
        replaced_entries = [self._entries[k] for k in self.resolve_cap_references(alert.cap_references)
                            if k != key]
        for entry in replaced_entries:
            self._end(entry)
        seqs = [e.seq for e in replaced_entries] + ([old.seq] if old else [])
        if seqs:
            seq = min(seqs)
        else:
            seq = self._next_seq
            self._next_seq += 1
        ttl_deadline = None if alert.ttl is None else mono + alert.ttl
        self._entries[key] = _Entry(alert, seq, ttl_deadline)
        if key in [a.key for a in self.active()] and alert.level == self.top_level():
            self._show(self._entries[key], mono)
        status = "updated" if old is not None or replaced_entries else "added"
        return status, [e.alert for e in replaced_entries]

    def cancel(self, alert_id: str, scope: str | None = None, scope_name: str | None = None) -> list[Alert]:
        """End the alerts with this id (on one scope when given); returns those ended.

        This is the empty retained payload: the topic no longer holds the alert,
        so a later identical message is a new alert.
        """
        ended = []
        for key, entry in list(self._entries.items()):
            if key[2] == alert_id and scope in (None, key[0]) and scope_name in (None, key[1]):
                del self._entries[key]
                ended.append(entry.alert)
        for key in [k for k in self._ended if k[2] == alert_id and scope in (None, k[0])
                    and scope_name in (None, k[1])]:
            del self._ended[key]
        return ended

    def apply_cancel(self, cancel: Cancel) -> list[Alert]:
        """Apply a :class:`Cancel`: its ids on its own scope, its CAP references anywhere."""
        ended = []
        for alert_id in cancel.ids:
            ended += self.cancel(alert_id, cancel.scope, cancel.scope_name)
        for key in self.resolve_cap_references(cancel.references):
            ended.append(self._end(self._entries[key]))
        return ended

    def resolve_cap_references(self, refs: Iterable[CapRef]) -> list[Key]:
        """The keys of the alerts that are, or updated, one of the CAP messages ``refs``.

        Messages are matched by sender and identifier (CAP makes that pair unique).
        """
        wanted = {(r.sender, r.identifier) for r in refs}
        if not wanted:
            return []
        found = []
        for key, entry in self._entries.items():
            a = entry.alert
            names = {(a.cap_sender, a.cap_identifier)} | {(r.sender, r.identifier) for r in a.cap_references}
            if names & wanted:
                found.append(key)
        return found

    def expire(self, mono: float, wall: datetime) -> list[Alert]:
        """Remove and return the alerts whose ttl (monotonic) or expires (wall) has passed."""
        gone = [e for e in self._entries.values()
                if (e.ttl_deadline is not None and e.ttl_deadline <= mono)
                or (e.alert.expires is not None and e.alert.expires <= wall)]
        return [self._end(e) for e in sorted(gone, key=lambda e: e.seq)]

    def _end(self, entry: _Entry) -> Alert:
        key = entry.alert.key
        del self._entries[key]
        self._ended.pop(key, None)
        self._ended[key] = entry.alert
        while len(self._ended) > MAX_ENDED:
            del self._ended[next(iter(self._ended))]
        return entry.alert

    # -- queries ------------------------------------------------------------------
    def _specificity(self, alert: Alert) -> tuple[int, int]:
        group = self.groups.index(alert.scope_name) if alert.scope_name in self.groups else len(self.groups)
        return (SCOPE_ORDER[alert.scope], group if alert.scope == "group" else 0)

    def _effective(self) -> list[_Entry]:
        best: dict[str, _Entry] = {}
        for entry in self._entries.values():
            held = best.get(entry.alert.id)
            if held is None or self._specificity(entry.alert) < self._specificity(held.alert):
                best[entry.alert.id] = entry
        return sorted(best.values(), key=lambda e: (-level_rank(e.alert.level), e.seq))

    def active(self) -> list[Alert]:
        """The alerts that apply (one per id), highest level first, then arrival order."""
        return [e.alert for e in self._effective()]

    def stored(self) -> list[Alert]:
        """Every alert held, including those hidden by the same id on a more specific scope."""
        return [e.alert for e in sorted(self._entries.values(), key=lambda e: e.seq)]

    def is_active(self, alert_id: str) -> bool:
        """Whether some scope still holds ``alert_id`` (then it has not ended for the panel)."""
        return any(key[2] == alert_id for key in self._entries)

    def top_level(self) -> str | None:
        effective = self._effective()
        return effective[0].alert.level if effective else None

    def _turns(self) -> list[_Entry]:
        effective = self._effective()
        return [e for e in effective if e.alert.level == effective[0].alert.level] if effective else []

    def current(self, mono: float) -> Alert | None:
        """The alert to show at ``mono``: the top level's alerts in turns; ``None`` when empty."""
        turns = self._turns()
        if not turns:
            self._shown = None
            return None
        keys = [e.alert.key for e in turns]
        if self._shown not in keys:
            # The one shown ended: its successor in the turn order starts now.
            same_level = self._shown_level == turns[0].alert.level
            after = [e for e in turns if e.seq > self._shown_seq] if same_level else []
            pick = after[0] if after else turns[0]
            self._show(pick, mono)
            return pick.alert
        index = keys.index(self._shown)
        if len(turns) > 1 and mono >= self._shown_since + self.turn_seconds:
            steps = int((mono - self._shown_since) // self.turn_seconds)
            # Float division may fall one short of the turn boundary: never show past it.
            while self._shown_since + (steps + 1) * self.turn_seconds <= mono:
                steps += 1
            while steps > 1 and self._shown_since + steps * self.turn_seconds > mono:
                steps -= 1
            index = (index + steps) % len(turns)
            self._show(turns[index], self._shown_since + steps * self.turn_seconds)
        return turns[index].alert

    def _show(self, entry: _Entry, since: float) -> None:
        self._shown, self._shown_seq, self._shown_level = entry.alert.key, entry.seq, entry.alert.level
        self._shown_since = since

    def next_deadline(self, mono: float, wall: datetime) -> float | None:
        """Monotonic time of the next expiry or change of turn; ``None`` when nothing is due."""
        times = []
        for entry in self._entries.values():
            if entry.ttl_deadline is not None:
                times.append(entry.ttl_deadline)
            if entry.alert.expires is not None:
                times.append(mono + (entry.alert.expires - wall).total_seconds())
        turns = self._turns()
        if len(turns) > 1:
            shown = self._shown in [e.alert.key for e in turns]
            times.append(self._shown_since + self.turn_seconds if shown else mono)
        return min(times) if times else None

    # -- persistence -----------------------------------------------------------
    def to_records(self, mono: float, wall: datetime, *, clock_synced: bool = True) -> list[dict[str, Any]]:
        """JSON-ready records of the active alerts and the recently ended ones.

        A ttl is stored twice: the seconds remaining now and, when the wall clock
        is synchronised, the wall-clock deadline. Rewrite the records now and then
        (with the heartbeat, say): the remaining ttl is counted from the last write.
        """
        records = []
        for entry in sorted(self._entries.values(), key=lambda e: e.seq):
            record = _alert_record(entry.alert)
            if entry.ttl_deadline is not None:
                remaining = max(0.0, entry.ttl_deadline - mono)
                record["ttl_remaining"] = remaining
                record["ttl_deadline"] = (wall + timedelta(seconds=remaining)).isoformat() if clock_synced else None
            records.append(record)
        for alert in self._ended.values():
            records.append({**_alert_record(alert), "ended": True})
        return records

    @classmethod
    def from_records(cls, records: Iterable[Any], mono: float, wall: datetime, clock_synced: bool, *,
                     turn_seconds: float = 8.0, groups: Iterable[str] = ()) -> AlertBoard:
        """Rebuild a board after a restart; expired alerts are not restored, bad records skipped.

        A ttl resumes from its wall-clock deadline when ``clock_synced`` (the time
        spent powered off counts); otherwise from the remaining seconds stored,
        counted from now (the alert may then last longer, never shorter).
        """
        board = cls(turn_seconds, groups=groups)
        for record in records:
            try:
                alert = _alert_from_record(record)
                ended = record.get("ended") is True
                remaining: float | None = None
                if not ended and alert.ttl is not None:
                    deadline = record.get("ttl_deadline")
                    if clock_synced and isinstance(deadline, str):
                        remaining = (parse_datetime(deadline) - wall).total_seconds()
                    else:
                        remaining = float(record["ttl_remaining"])
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            entry = _Entry(alert, board._next_seq, None if remaining is None else mono + remaining)
            board._next_seq += 1
            if ended or (remaining is not None and remaining <= 0) or (alert.expires and alert.expires <= wall):
                board._ended[alert.key] = alert
            else:
                board._entries[alert.key] = entry
        while len(board._ended) > MAX_ENDED:
            del board._ended[next(iter(board._ended))]
        return board


def _alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "v": RECORD_VERSION, "id": alert.id, "scope": alert.scope, "scope_name": alert.scope_name,
        "level": alert.level, "title": alert.title, "body": alert.body,
        "expires": alert.expires.isoformat() if alert.expires else None, "ttl": alert.ttl,
        "asset": alert.asset, "exercise": alert.exercise, "source": alert.source,
        "cap_identifier": alert.cap_identifier, "cap_sender": alert.cap_sender,
        "cap_sent": alert.cap_sent.isoformat() if alert.cap_sent else None,
        "cap_references": [[r.sender, r.identifier, r.sent] for r in alert.cap_references],
        "signed_by": alert.signed_by,
    }


def _optional_str(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(key)
    return value


def _alert_from_record(record: Any) -> Alert:
    if not isinstance(record, dict) or record.get("v") != RECORD_VERSION:
        raise ValueError("not a version 1 alert record")
    check_alert_id(record["id"])
    check_scope(record["scope"], record["scope_name"])
    if record["level"] not in LEVELS:
        raise ValueError("level")
    for key in ("title", "body"):
        if not isinstance(record[key], str):
            raise TypeError(key)
    ttl = record.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise TypeError("ttl")
    expires, cap_sent = _optional_str(record, "expires"), _optional_str(record, "cap_sent")
    alert = Alert(id=record["id"], scope=record["scope"], scope_name=record["scope_name"],
                  level=record["level"], title=record["title"], body=record["body"],
                  expires=parse_datetime(expires) if expires else None,
                  ttl=None if ttl is None else float(ttl), asset=_optional_str(record, "asset"),
                  exercise=record.get("exercise") is True, source=_optional_str(record, "source") or "json",
                  cap_identifier=_optional_str(record, "cap_identifier"),
                  cap_sender=_optional_str(record, "cap_sender"),
                  cap_sent=parse_datetime(cap_sent) if cap_sent else None,
                  cap_references=tuple(CapRef(str(s), str(i), str(t))
                                       for s, i, t in record.get("cap_references") or ()),
                  signed_by=_optional_str(record, "signed_by"))
    return alert

"""``panelctl alert``: send, cancel and list alerts on the retained alert topics (CONTRACT §5).

Alerts are validated with the panel's own code before anything is published
(:func:`player.alerts.alert_from_data`, :func:`player.cap.parse_cap`). A sent
alert with a ``ttl`` or ``expires`` also carries an MQTT 5 message expiry, so
the broker drops the retained copy when the alert is over and a panel that
connects later does not show it again. MQTT 3.1.1 has no message expiry: there a
JSON alert's ``ttl`` is sent as an absolute ``expires`` instead (:func:`for_protocol`),
so a panel that restarts does not start the ttl again, and the retained copy stays
until cancelled (panels ignore it once expired).

Every send and cancel also keeps the retained alert index of each target scope
(``P/all/alert-index`` …, :func:`update_alert_indexes`): the id added or removed, and
the ids whose retained alert is gone, cancelled or expired dropped. Panels use it on
brokers that deliver retained messages only to exact-topic subscriptions.

Example::

    data = build_alert(level="critical", title="CRUE", body=None, ttl=3600, expires=None, asset=None)
    check_json_alert("crue-1", [("all", "")], data)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from ..alerts import ALERT_ID_PATTERN, Alert, AlertsConfig, Cancel, alert_from_data, parse_alert_message
from ..content import parse_datetime
from ..errors import ContentError
from ..net.topics import Topics
from .client import MQTT311, CtlClient, CtlError
from .index import MAX_ALERTS, chunks, decode_index, encode_index
from .signing import Signer, seal, unwrap
from .push import check_image, upload_assets
from .status import NONE, format_table, note_panels, read_fleet
from .track import Progress, Tracker, awaited

# What a panel may accept: the panel's own config decides about drills.
LENIENT = AlertsConfig(allow_exercise=True, allow_test=True)


@dataclass(frozen=True)
class Target:
    """Where an alert goes: scope ``panel`` | ``group`` | ``all`` and the panel id or group name."""

    scope: str
    name: str

    def index_topic(self, topics: Topics) -> str:
        """The scope's retained alert index."""
        return topics.alert_index(self.scope, self.name or None)

    def topic(self, topics: Topics, alert_id: str) -> str:
        if self.scope == "panel":
            return topics.panel_alert_of(self.name, alert_id)
        if self.scope == "group":
            return topics.group_alert(self.name, alert_id)
        return topics.all_alert(alert_id)


def targets_from(panels: list[str] | None, groups: list[str] | None, everyone: bool) -> list[Target]:
    out = [Target("panel", p) for p in panels or []] + [Target("group", g) for g in groups or []]
    if everyone:
        out.append(Target("all", ""))
    return out


def build_alert(*, level: str, title: str, body: str | None, ttl: float | None, expires: str | None,
                asset: str | None, exercise: bool = False) -> dict[str, Any]:
    """The CONTRACT §5 JSON (only the fields given)."""
    data: dict[str, Any] = {"level": level, "title": title}
    if body is not None:
        data["body"] = body
    if expires is not None:
        data["expires"] = expires
    if ttl is not None:
        data["ttl"] = int(ttl) if float(ttl).is_integer() else ttl
    if asset is not None:
        data["asset"] = asset
    if exercise:
        data["exercise"] = True
    return data


def check_json_alert(alert_id: str, targets: list[Target], data: dict[str, Any],
                     now: datetime | None = None) -> Alert:
    """Validate as every target panel would; raises :class:`ContentError` listing every problem."""
    now = now or datetime.now(timezone.utc)
    target = targets[0] if targets else Target("all", "")
    return alert_from_data(alert_id, target.scope, target.name, data, now=now, config=LENIENT)


def check_cap(alert_id: str, payload: bytes, now: datetime | None = None) -> Alert | Cancel | None:
    """Parse a CAP 1.2 message as a panel without a configured location would."""
    now = now or datetime.now(timezone.utc)
    if not payload.strip():
        raise ContentError(["the CAP file is empty"], "CAP alert")
    if payload.lstrip()[:1] != b"<":
        raise ContentError(["the CAP file is not XML (it must start with '<')"], "CAP alert")
    return parse_alert_message(alert_id, "all", "", payload, now=now, config=LENIENT, location=None)


def expiry_seconds(alert: Alert | Cancel | None, now: datetime) -> int | None:
    """How long the broker should keep the retained copy (``None``: until cancelled)."""
    if not isinstance(alert, Alert):
        return None
    limits = []
    if alert.ttl is not None:
        limits.append(alert.ttl)
    if alert.expires is not None:
        limits.append((alert.expires - now).total_seconds())
    return max(1, int(min(limits)) + 1) if limits else None


def for_protocol(payload: bytes, parsed: Alert | Cancel | None, protocol: str,
                 now: datetime) -> tuple[bytes, str | None]:
    """The payload to send on ``protocol`` and, on MQTT 3.1.1, the absolute end put in it.

    MQTT 3.1.1 has no message expiry, and a ``ttl`` counts from receipt: a panel that
    restarts would receive the retained alert again and start the ttl anew. So there
    a JSON alert's ``ttl`` becomes ``expires`` = now + ttl (rounded up to the second;
    an earlier ``expires`` given with it stays). CAP and MQTT 5 payloads are unchanged.
    """
    if protocol != MQTT311 or not isinstance(parsed, Alert) or payload.lstrip()[:1] == b"<":
        return payload, None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload, None
    if not isinstance(data, dict) or not isinstance(data.get("ttl"), (int, float)):
        return payload, None
    ttl = float(data.pop("ttl"))
    end = datetime.fromtimestamp(math.ceil((now + timedelta(seconds=ttl)).timestamp()), timezone.utc)
    if parsed.expires is not None and parsed.expires < end:
        end = parsed.expires
    data["expires"] = end.isoformat()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), data["expires"]


@dataclass(frozen=True)
class Outgoing:
    """An alert ready to publish: the sealed payload per topic, the MQTT 5 expiry, the 3.1.1 end."""

    sealed: dict[str, bytes]
    expiry: int | None
    expires: str | None

    def describe(self, protocol: str) -> str:
        if self.expiry and protocol != MQTT311:
            return f", the broker drops it after {self.expiry} s"
        if self.expires:
            return (f", ends at {self.expires}: MQTT 3.1.1 has no message expiry, so its ttl is sent as "
                    "this absolute time and the broker keeps it until cancelled")
        return ""


def prepare_alert(protocol: str, prefix: str, alert_id: str, targets: list[Target], payload: bytes,
                  parsed: Alert | Cancel | None, signer: Signer | None, max_message_bytes: int | None,
                  now: datetime | None = None) -> Outgoing:
    """Adapt (:func:`for_protocol`), sign and size-check an alert for every target; nothing is sent."""
    now = now or datetime.now(timezone.utc)
    topics = Topics(prefix)
    payload, expires = for_protocol(payload, parsed, protocol, now)
    sealed = {t.topic(topics, alert_id): b"" for t in targets}
    sealed = {topic: seal(signer, topic, payload) for topic in sealed}
    _check_size(sealed, max_message_bytes)
    return Outgoing(sealed, expiry_seconds(parsed, now) if protocol != MQTT311 else None, expires)


def send(client: CtlClient, prefix: str, alert_id: str, targets: list[Target], payload: bytes,
         parsed: Alert | Cancel | None, *, asset_file: Path | None, max_asset_bytes: int, wait: bool,
         timeout: float, out: IO[str], err: IO[str], signer: Signer | None = None,
         max_message_bytes: int | None = None) -> int:
    """Publish an alert (retained) to every target, signed when ``signer`` is given, and add it
    to the scopes' alert indexes; with ``wait``, report ``alert.displayed`` / ``rejected``."""
    topics = Topics(prefix)
    outgoing = prepare_alert(client.protocol, prefix, alert_id, targets, payload, parsed, signer,
                             max_message_bytes)
    if asset_file is not None:
        sha = hashlib.sha256(asset_file.read_bytes()).hexdigest()
        upload_assets(client, topics, {sha: asset_file}, max_asset_bytes, err)
    fleet = read_fleet(client, prefix, err) if wait else {}
    expected, possible = awaited(fleet, [t.name for t in targets if t.scope == "panel"],
                                 [t.name for t in targets if t.scope == "group"],
                                 everyone=any(t.scope == "all" for t in targets))

    def match(pid: str, event: dict[str, Any]) -> tuple[str, str] | None:
        if event.get("alert") != alert_id:
            return None
        if event.get("type") == "alert.displayed":
            return ("displayed", f"at {event.get('displayed_at')}")
        if event.get("type") == "alert.rejected":
            return ("rejected", str(event.get("reason", "")))
        return None

    tracker = Tracker(client, prefix, expected=expected, possible=possible, match=match, success="displayed",
                      progress=Progress(err))
    if wait:
        tracker.start()
    for topic, data in outgoing.sealed.items():
        client.publish(topic, data, retain=True, expiry=outgoing.expiry)
        err.write(f"alert {alert_id} published to {topic} (retained" + outgoing.describe(client.protocol)
                  + (f", signed by {signer.kid}" if signer else "") + ")\n")
    _index(client, prefix, targets, err, add=alert_id)
    if not wait:
        return 0
    if not (expected or possible):
        out.write("no panel to wait for: none of the targets is known online now; the alert is retained and "
                  "shows when they connect (on a broker that keeps retained messages from wildcards, "
                  "'panelctl status --listen 60' learns the fleet)\n")
        return 0
    answers = tracker.wait(timeout)
    note_panels(client, prefix, set(answers) - set(fleet), err)
    rows, failed = [], False
    for pid in sorted(set(answers) | expected | possible):
        a = answers.get(pid)
        if a is None:
            failed = failed or pid in {t.name for t in targets if t.scope == "panel"}
            why = ("not shown: offline, a higher-level alert on screen, or outside a CAP area"
                   if pid in expected else "group membership unknown (its heartbeat has no groups)")
            rows.append([pid, "no answer", why])
        else:
            failed = failed or a.outcome == "rejected"
            rows.append([pid, a.outcome, a.detail])
    out.write(format_table(("PANEL", "RESULT", "DETAIL"), rows) + "\n")
    return 1 if failed else 0


def _index(client: CtlClient, prefix: str, targets: list[Target], err: IO[str], *,
           add: str | None = None, remove: str | None = None) -> None:
    try:
        changed = update_alert_indexes(client, prefix, targets, add=add, remove=remove, err=err)
    except CtlError as exc:
        raise CtlError(f"the alert was {'sent' if add else 'cancelled'}, but the alert index was not "
                       f"updated: {exc}") from None
    for topic, ids in changed.items():
        err.write(f"alert index {topic}: {', '.join(ids) if ids else '(none)'}\n")


def cancel(client: CtlClient, prefix: str, alert_id: str, targets: list[Target], err: IO[str],
           signer: Signer | None = None) -> int:
    """Publish the retained cancel of ``alert_id`` on every target topic: an empty payload,
    or with ``signer`` a signed empty payload, which stays on the broker as the record
    that the alert is over; then remove it from the scopes' alert indexes."""
    topics = Topics(prefix)
    for t in targets:
        topic = t.topic(topics, alert_id)
        client.publish(topic, seal(signer, topic, b""), retain=True)
        err.write(f"alert {alert_id} cancelled on {topic}" + (f" (signed by {signer.kid})" if signer else "") + "\n")
    _index(client, prefix, targets, err, remove=alert_id)
    return 0


def held_state(topic: str, payload: bytes | None, prefix: str, now: datetime) -> str:
    """``"active"``, or why an indexed alert no longer is: ``"gone"`` (nothing retained, or an
    empty / signed empty cancel), ``"cancel message"``, ``"expired"``; ``"invalid"`` is kept."""
    if payload is None or not unwrap(payload)[0].strip():
        return "gone"
    rows = _retained_rows({topic: payload}, prefix, now)
    return rows[0]["state"] if rows else "invalid"


def update_alert_indexes(client: CtlClient, prefix: str, targets: list[Target], *, add: str | None = None,
                         remove: str | None = None, err: IO[str] | None = None,
                         now: datetime | None = None) -> dict[str, list[str]]:
    """Keep the retained alert index of every target scope: ``add`` and ``remove`` an id, and drop
    the ids whose retained alert (read on its exact topic) is gone, cancelled or expired.

    Publishes (retained, QoS 1) only the indexes that changed; returns ``{index topic: ids}``
    of those. At most :data:`MAX_ALERTS` ids: beyond, ``add`` is not listed (said on ``err``).
    """
    now = now or datetime.now(timezone.utc)
    topics = Topics(prefix)
    scopes = {t.index_topic(topics): t for t in targets}
    held = client.retained(sorted(scopes), keep=False)
    before = {topic: decode_index(held.get(topic), "alerts", ALERT_ID_PATTERN) for topic in scopes}
    check = {scopes[i].topic(topics, a): (i, a) for i, ids in before.items() for a in ids or [] if a != add}
    alerts: dict[str, bytes] = {}
    for chunk in chunks(sorted(check)):
        alerts.update(client.retained(chunk, keep=False))
    after = {i: set(ids or []) for i, ids in before.items()}
    for topic, (i, a) in check.items():
        if held_state(topic, alerts.get(topic), prefix, now) in ("gone", "cancel message", "expired"):
            after[i].discard(a)
    for i, ids in after.items():
        if remove:
            ids.discard(remove)
        if add:
            if len(ids | {add}) > MAX_ALERTS:
                if err is not None:
                    err.write(f"note: {i} already lists {MAX_ALERTS} alerts, the most a panel reads: {add} is "
                              "not listed (panels that start later get it only from brokers that deliver "
                              "retained messages to wildcards)\n")
            else:
                ids.add(add)
    changed: dict[str, list[str]] = {}
    for i, ids in sorted(after.items()):
        if before[i] is None and not ids and not add:
            continue  # no index yet and nothing to list: leave the broker as it is
        if sorted(ids) != (before[i] or []) or before[i] is None:
            client.publish(i, encode_index("alerts", ids, now), retain=True)
            changed[i] = sorted(ids)
    return changed


def _check_size(sealed: dict[str, bytes], limit: int | None) -> None:
    """Refuse, before anything is published, a message the panels would refuse as too large."""
    if limit is None:
        return
    for topic, data in sealed.items():
        if len(data) > limit:
            raise ContentError([f"{topic}: {len(data)} bytes once signed, above the panels' "
                                f"mqtt.max_message_kb ({limit // 1024} KiB)"], "message")


def list_alerts(client: CtlClient, prefix: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """The retained alerts of every scope, each as the panel would read it (no location
    filter), with the panels whose heartbeat shows it; then the alerts panels show that
    the broker does not hold (state ``not on the broker``).

    Read through the ``+`` wildcards and, for brokers that deliver retained messages only
    to exact subscriptions, through the alert indexes of every scope the fleet shows
    (all, each panel, each group its heartbeats name) and the exact topics they list."""
    now = now or datetime.now(timezone.utc)
    topics = Topics(prefix)
    found = client.retained([f"{prefix}/panels/+/alerts/+", f"{prefix}/groups/+/alerts/+",
                             f"{prefix}/all/alerts/+"], keep=False)
    fleet = read_fleet(client, prefix)
    groups = {g for state in fleet.values() for g in (state.heartbeat or {}).get("groups") or []
              if isinstance(g, str)}
    scopes = [Target("all", "")] + [Target("panel", p) for p in sorted(fleet)]
    for g in sorted(groups):
        try:
            topics.group_playlist(g)
        except ContentError:
            continue
        scopes.append(Target("group", g))
    by_index = {t.index_topic(topics): t for t in scopes}
    indexes: dict[str, bytes] = {}
    for chunk in chunks(sorted(by_index)):
        indexes.update(client.retained(chunk, keep=False))
    exact = {by_index[i].topic(topics, a) for i, payload in indexes.items()
             for a in decode_index(payload, "alerts", ALERT_ID_PATTERN) or []} - set(found)
    for chunk in chunks(sorted(exact)):
        found.update(client.retained(chunk, keep=False))
    rows = _retained_rows(found, prefix, now)
    shown: dict[str, list[str]] = {}
    unconfirmed: dict[str, list[str]] = {}
    for pid, state in sorted(fleet.items()):
        hb = state.heartbeat or {}
        for alert_id in hb.get("alerts") or []:
            shown.setdefault(str(alert_id), []).append(pid)
        for alert_id in hb.get("alerts_unconfirmed") or []:
            unconfirmed.setdefault(str(alert_id), []).append(pid)
    held = {row["alert"] for row in rows if row["state"] not in ("cancel message", "expired", "invalid")}
    for row in rows:
        row["shown_by"] = shown.get(str(row["alert"]), []) if row["alert"] in held else []
    for alert_id in sorted(set(shown) - held):
        rows.append({"topic": None, "scope": "?", "target": None, "alert": alert_id, "format": None,
                     "state": "not on the broker", "level": None, "title": None, "expires": None, "ttl": None,
                     "signed_by": None, "shown_by": shown[alert_id],
                     "unconfirmed_on": unconfirmed.get(alert_id, [])})
    return rows


def _retained_rows(found: dict[str, bytes], prefix: str, now: datetime) -> list[dict[str, Any]]:
    topics = Topics(prefix)
    rows = []
    for topic, held in sorted(found.items()):
        try:
            route = topics.parse(topic)
        except ContentError as exc:
            if held:  # e.g. an id with "." sent before the rule: shown, so that it can be removed
                rows.append(_unusable_row(topic, prefix, "; ".join(exc.errors)))
            continue
        payload, kid = unwrap(held)
        row: dict[str, Any] = {"topic": topic, "scope": route.scope, "target": route.name, "alert": route.alert,
                               "format": "cap" if payload.lstrip()[:1] == b"<" else "json",
                               "state": "active", "level": None, "title": None, "expires": None, "ttl": None,
                               "signed_by": kid}
        try:
            parsed = parse_alert_message(route.alert or "", route.scope, route.name or "", payload, now=now,
                                         config=LENIENT, location=None)
        except ContentError as exc:
            reason = "; ".join(exc.errors)
            row["state"] = "expired" if "expired at" in reason else "invalid"
            row["reason"] = reason
            _fill_from_json(row, payload)
        else:
            if isinstance(parsed, Alert):
                row.update(level=parsed.level, title=parsed.title, ttl=parsed.ttl,
                           expires=parsed.expires.isoformat() if parsed.expires else None)
                if parsed.exercise:
                    row["state"] = "active (exercise)"
            elif isinstance(parsed, Cancel):
                row["state"] = "cancel message"
        rows.append(row)
    return rows


def _unusable_row(topic: str, prefix: str, reason: str) -> dict[str, Any]:
    """A retained message on an alert wildcard whose topic no panel accepts (state ``invalid``)."""
    levels = topic[len(prefix) + 1:].split("/")
    scope = {"panels": "panel", "groups": "group", "all": "all"}.get(levels[0], "?")
    return {"topic": topic, "scope": scope, "target": levels[1] if scope in ("panel", "group") else None,
            "alert": levels[-1], "format": None, "state": "invalid", "reason": reason, "level": None,
            "title": None, "expires": None, "ttl": None, "signed_by": None}


def _fill_from_json(row: dict[str, Any], payload: bytes) -> None:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return
    if isinstance(data, dict):
        for key in ("level", "title", "expires", "ttl"):
            if isinstance(data.get(key), (str, int, float)):
                row[key] = data[key]


def alert_cells(row: dict[str, Any]) -> list[str]:
    target = row["target"] if row["scope"] != "all" else "(all)"
    ends = row["expires"] or (f"ttl {row['ttl']:g} s" if isinstance(row["ttl"], (int, float)) else "when cancelled")
    title = str(row["title"] or NONE)
    panels = row.get("shown_by") or []
    shown_by = ",".join(panels[:3]) + (f" +{len(panels) - 3}" if len(panels) > 3 else "") if panels else NONE
    return [row["scope"], str(target), str(row["alert"]), str(row["level"] or NONE),
            title if len(title) <= 40 else title[:39] + "…", ends, str(row["format"] or NONE), row["state"],
            str(row.get("signed_by") or NONE), shown_by]


ALERT_COLUMNS = ("SCOPE", "TARGET", "ID", "LEVEL", "TITLE", "ENDS", "FORMAT", "STATE", "SIGNED", "SHOWN BY")


def parse_expires(text: str) -> str:
    """Check an ``--expires`` value (ISO 8601 with an offset) and return it unchanged."""
    try:
        parse_datetime(text)
    except (ValueError, TypeError):
        raise ContentError([f"--expires: expected an ISO 8601 date-time with an offset "
                            f"(2026-11-26T12:00:00+01:00), got {text!r}"], "alert") from None
    return text


def check_asset_file(path: Path, max_asset_bytes: int) -> str:
    """The ``sha256:<hex>`` of an alert image, after checking it can be shown and sent."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContentError([f"--asset: cannot read {path}: {exc.strerror or exc}"], "alert") from None
    problem = check_image(path)
    if problem:
        raise ContentError([f"--asset: {path}: {problem}"], "alert")
    if len(data) > max_asset_bytes:
        raise ContentError([f"--asset: {path} is {len(data)} bytes, above the {max_asset_bytes} an asset may "
                            "have over MQTT"], "alert")
    return "sha256:" + hashlib.sha256(data).hexdigest()

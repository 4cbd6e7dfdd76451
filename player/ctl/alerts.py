"""``panelctl alert``: send, cancel and list alerts on the retained alert topics (CONTRACT §5).

Alerts are validated with the panel's own code before anything is published
(:func:`player.alerts.alert_from_data`, :func:`player.cap.parse_cap`). A sent
alert with a ``ttl`` or ``expires`` also carries an MQTT 5 message expiry, so
the broker drops the retained copy when the alert is over and a panel that
connects later does not show it again.

Example::

    data = build_alert(level="critical", title="CRUE", body=None, ttl=3600, expires=None, asset=None)
    check_json_alert("crue-1", [("all", "")], data)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..alerts import Alert, AlertsConfig, Cancel, alert_from_data, parse_alert_message
from ..content import parse_datetime
from ..errors import ContentError
from ..net.topics import Topics
from .client import CtlClient
from .signing import Signer, seal, unwrap
from .push import check_image, upload_assets
from .status import NONE, format_table, read_fleet
from .track import Progress, Tracker, awaited

# What a panel may accept: the panel's own config decides about drills.
LENIENT = AlertsConfig(allow_exercise=True, allow_test=True)


@dataclass(frozen=True)
class Target:
    """Where an alert goes: scope ``panel`` | ``group`` | ``all`` and the panel id or group name."""

    scope: str
    name: str

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


def send(client: CtlClient, prefix: str, alert_id: str, targets: list[Target], payload: bytes,
         parsed: Alert | Cancel | None, *, asset_file: Path | None, max_asset_bytes: int, wait: bool,
         timeout: float, out: IO[str], err: IO[str], signer: Signer | None = None,
         max_message_bytes: int | None = None) -> int:
    """Publish an alert (retained) to every target, signed when ``signer`` is given; with
    ``wait``, report ``alert.displayed`` / ``rejected``."""
    topics = Topics(prefix)
    topic_list = [t.topic(topics, alert_id) for t in targets]
    sealed = {topic: seal(signer, topic, payload) for topic in topic_list}
    _check_size(sealed, max_message_bytes)
    if asset_file is not None:
        sha = hashlib.sha256(asset_file.read_bytes()).hexdigest()
        upload_assets(client, topics, {sha: asset_file}, max_asset_bytes, err)
    fleet = read_fleet(client, prefix) if wait else {}
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
    expiry = expiry_seconds(parsed, datetime.now(timezone.utc))
    for topic in topic_list:
        client.publish(topic, sealed[topic], retain=True, expiry=expiry)
        err.write(f"alert {alert_id} published to {topic} (retained"
                  + (f", the broker drops it after {expiry} s" if expiry else "")
                  + (f", signed by {signer.kid}" if signer else "") + ")\n")
    if not wait or not (expected or possible):
        return 0
    answers = tracker.wait(timeout)
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


def cancel(client: CtlClient, prefix: str, alert_id: str, targets: list[Target], err: IO[str],
           signer: Signer | None = None) -> int:
    """Publish the retained cancel of ``alert_id`` on every target topic: an empty payload,
    or with ``signer`` a signed empty payload, which stays on the broker as the record
    that the alert is over."""
    topics = Topics(prefix)
    for t in targets:
        topic = t.topic(topics, alert_id)
        client.publish(topic, seal(signer, topic, b""), retain=True)
        err.write(f"alert {alert_id} cancelled on {topic}" + (f" (signed by {signer.kid})" if signer else "") + "\n")
    return 0


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
    the broker does not hold (state ``not on the broker``)."""
    now = now or datetime.now(timezone.utc)
    found = client.retained([f"{prefix}/panels/+/alerts/+", f"{prefix}/groups/+/alerts/+",
                             f"{prefix}/all/alerts/+"], keep=False)
    rows = _retained_rows(found, prefix, now)
    shown: dict[str, list[str]] = {}
    unconfirmed: dict[str, list[str]] = {}
    for pid, state in sorted(read_fleet(client, prefix).items()):
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
        except ContentError:
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

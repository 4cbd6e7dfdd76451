"""CAP 1.2 (OASIS Common Alerting Protocol) messages on the alert topics.

Parsed with defusedxml: entity declarations (entity-expansion bombs) and external
entities are refused. The mapping to :class:`~player.alerts.Alert` is described
in ``docs/alerts.md``; in short:

- ``status`` Actual is shown; Exercise / Test only when ``alerts.allow_exercise`` /
  ``alerts.allow_test`` is set, marked EXERCISE; System and Draft are refused.
- ``msgType`` Alert → :class:`Alert`; Update → :class:`Alert` that replaces the
  messages it references; Cancel → :class:`Cancel` of those messages.
- the ``info`` block is chosen by language preference, then by area, then by severity;
  severity Extreme/Severe → critical, Moderate → warning, Minor/Unknown → info.
- title = headline (else event); body = description + instruction, cut to ``max_body``.
- ``area`` polygons and circles are matched against the panel's location; an alert
  with neither (geocodes only) applies everywhere.

Example::

    parse_cap("crue-1", "all", "", xml_bytes, now=sent_time, config=AlertsConfig(), location=(45.19, 5.72))
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Iterable
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from .alerts import MAX_TITLE, Alert, AlertsConfig, Cancel, CapRef
from .content import parse_datetime
from .errors import ContentError
from .validate import describe

NS = "urn:oasis:names:tc:emergency:cap:1.2"
SEVERITY_LEVELS = {"Extreme": "critical", "Severe": "critical", "Moderate": "warning",
                   "Minor": "info", "Unknown": "info"}
SEVERITY_ORDER = ("Unknown", "Minor", "Moderate", "Severe", "Extreme")
EARTH_RADIUS_KM = 6371.0088
# A circle's radius is widened by this much: a CAP circle of radius 0 (a point)
# then matches a panel whose configured location rounds to the same place at
# 3 decimals (at most ~80 m off).
CIRCLE_TOLERANCE_KM = 0.1
# A point this close (in degrees, ~1 cm) to a polygon edge counts as inside.
EDGE_TOLERANCE_DEG = 1e-7


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _refuse(reason: str) -> ContentError:
    return ContentError([reason], "CAP alert")


def _parse_xml(payload: bytes) -> Element:
    try:
        return SafeET.fromstring(payload, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise _refuse(f"XML external entity {exc.name!r} ({exc.sysid or exc.pubid}) refused") from None
        raise _refuse(f"XML entity declaration {exc.name!r} refused (protection against "
                      "entity-expansion bombs)") from None
    except ExternalReferenceForbidden as exc:
        raise _refuse(f"XML external reference ({exc.sysid or exc.pubid}) refused") from None
    except DTDForbidden:
        raise _refuse("XML document type declaration refused") from None
    except DefusedXmlException as exc:
        raise _refuse(f"unsafe XML refused ({exc})") from None
    except ParseError as exc:
        raise _refuse(f"malformed XML ({exc})") from None
    except (ValueError, LookupError, UnicodeError) as exc:  # bad encoding declarations and the like
        raise _refuse(f"unreadable XML ({exc})") from None


def _text(parent: Element, tag: str) -> str | None:
    """The stripped text of the first child ``tag``; ``None`` when absent or empty."""
    child = parent.find(_q(tag))
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _tidy(text: str) -> str:
    """Collapse the XML's line wrapping and indentation; keep blank-line paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _datetime(value: str | None, name: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except (ValueError, TypeError, OverflowError):
        problems.append(f"{name}: expected a date-time with an offset, got {describe(value)}")
        return None


def parse_references(text: str | None) -> tuple[CapRef, ...]:
    """``"s,id,sent s2,id2,sent2"`` → CapRefs; raises :class:`ContentError` on a malformed entry."""
    refs = []
    for entry in (text or "").split():
        parts = entry.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise _refuse(f"references: expected sender,identifier,sent, got {describe(entry)}")
        refs.append(CapRef(parts[0], parts[1], parts[2]))
    return tuple(refs)


# -- geometry ---------------------------------------------------------------

def _point(text: str, what: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise _refuse(f"area {what}: expected lat,lon, got {describe(text)}") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise _refuse(f"area {what}: coordinates out of range in {describe(text)}")
    return lat, lon


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """``"lat,lon lat,lon …"`` → points; at least 3 distinct corners."""
    points = [_point(pair, "polygon") for pair in text.split()]
    if len(set(points)) < 3:
        raise _refuse(f"area polygon: needs at least 3 corners, got {describe(text)}")
    return points


def parse_circle(text: str) -> tuple[float, float, float]:
    """``"lat,lon radius_km"`` → (lat, lon, radius_km)."""
    parts = text.split()
    if len(parts) != 2:
        raise _refuse(f"area circle: expected \"lat,lon radius\", got {describe(text)}")
    lat, lon = _point(parts[0], "circle")
    try:
        radius = float(parts[1])
    except ValueError:
        radius = math.nan
    if not math.isfinite(radius) or radius < 0:
        raise _refuse(f"area circle: bad radius in {describe(text)}")
    return lat, lon, radius


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def in_circle(point: tuple[float, float], circle: tuple[float, float, float]) -> bool:
    return distance_km(point, circle[:2]) <= circle[2] + CIRCLE_TOLERANCE_KM


def in_polygon(point: tuple[float, float], polygon: list[tuple[float, float]]) -> bool:
    """Even-odd ray casting in the lat/lon plane (fine at town and county scale;
    polygons across the antimeridian are not handled). Edges count as inside."""
    lat, lon = point
    inside = False
    n = len(polygon)
    for i in range(n):
        (y1, x1), (y2, x2) = polygon[i], polygon[(i + 1) % n]
        cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
        length = math.hypot(x2 - x1, y2 - y1)
        if (abs(cross) <= EDGE_TOLERANCE_DEG * max(length, 1e-12)
                and min(x1, x2) - EDGE_TOLERANCE_DEG <= lon <= max(x1, x2) + EDGE_TOLERANCE_DEG
                and min(y1, y2) - EDGE_TOLERANCE_DEG <= lat <= max(y1, y2) + EDGE_TOLERANCE_DEG):
            return True
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def info_applies(info: Element, location: tuple[float, float] | None) -> bool:
    """Whether an ``info`` block's areas contain ``location``.

    True when no location is configured or the block has no polygon or circle
    (an area described by geocodes only). Empty ``<polygon/>`` elements, which
    real feeds emit, count as absent. Raises on malformed geometry.
    """
    polygons: list[list[tuple[float, float]]] = []
    circles: list[tuple[float, float, float]] = []
    for area in info.findall(_q("area")):
        for el in area.findall(_q("polygon")):
            if el.text and el.text.strip():
                polygons.append(parse_polygon(el.text))
        for el in area.findall(_q("circle")):
            if el.text and el.text.strip():
                circles.append(parse_circle(el.text))
    if location is None or not (polygons or circles):
        return True
    return any(in_polygon(location, p) for p in polygons) or any(in_circle(location, c) for c in circles)


# -- info selection ----------------------------------------------------------

def _language_rank(language: str, preferences: tuple[str, ...]) -> int:
    language = language.lower()
    for i, pref in enumerate(preferences):
        if language == pref or language.startswith(pref + "-") or pref.startswith(language + "-"):
            return i
    return len(preferences)


def choose_infos(infos: list[Element], preferences: Iterable[str]) -> list[Element]:
    """The ``info`` blocks in the most preferred language present (CAP's default
    language is en-US); when none is preferred, those in the first block's language."""
    prefs = tuple(p.lower() for p in preferences)
    langs = [(_text(info, "language") or "en-US").lower() for info in infos]
    ranks = [_language_rank(lang, prefs) for lang in langs]
    best = min(ranks)
    if best < len(prefs):
        return [info for info, r in zip(infos, ranks) if r == best]
    return [info for info, lang in zip(infos, langs) if lang == langs[0]]


def _severity_rank(info: Element) -> int:
    severity = _text(info, "severity") or "Unknown"
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else -1


# -- the message --------------------------------------------------------------

def parse_cap(alert_id: str, scope: str, scope_name: str, payload: bytes, *, now: datetime,
              config: AlertsConfig, location: tuple[float, float] | None) -> Alert | Cancel | None:
    """A CAP 1.2 message → :class:`Alert`, :class:`Cancel` or ``None`` (outside this panel's area).

    An Update that is already expired, or whose area no longer contains the panel,
    becomes a :class:`Cancel` of what it references (the sender withdrew those
    alerts here). Raises :class:`ContentError` with the reason otherwise.
    """
    root = _parse_xml(payload)
    if root.tag != _q("alert"):
        hint = " (CAP 1.1 is not supported)" if root.tag == "{urn:oasis:names:tc:emergency:cap:1.1}alert" else ""
        raise _refuse(f"not a CAP 1.2 alert: root element is {root.tag}{hint}")
    problems: list[str] = []
    identifier = _text(root, "identifier")
    sender = _text(root, "sender")
    for name, value in (("identifier", identifier), ("sender", sender), ("sent", _text(root, "sent"))):
        if value is None:
            problems.append(f"{name}: required")
    sent = _datetime(_text(root, "sent"), "sent", problems)
    status = _text(root, "status")
    exercise = False
    if status == "Exercise" or status == "Test":
        allowed = config.allow_exercise if status == "Exercise" else config.allow_test
        if not allowed:
            problems.append(f"status {status} is refused (alerts.allow_{status.lower()} is false)")
        exercise = True
    elif status != "Actual":
        problems.append(f"status {describe(status)} is not displayed (only Actual, and Exercise/Test "
                        "when allowed)")
    msg_type = _text(root, "msgType")
    if msg_type not in ("Alert", "Update", "Cancel"):
        problems.append(f"msgType {describe(msg_type)} is not displayed (only Alert, Update, Cancel)")
    if problems:
        raise ContentError(problems, "CAP alert")
    references = parse_references(_text(root, "references"))
    withdraw = Cancel(ids=(alert_id,), scope=scope, scope_name=scope_name, references=references)
    if msg_type == "Cancel":
        return withdraw

    infos = root.findall(_q("info"))
    if not infos:
        raise _refuse("no info block: nothing to show")
    applying = [info for info in choose_infos(infos, config.languages) if info_applies(info, location)]
    if not applying:
        return withdraw if msg_type == "Update" else None
    info = max(applying, key=_severity_rank)  # the first of the most severe
    severity = _text(info, "severity") or "Unknown"
    if severity not in SEVERITY_LEVELS:
        problems.append(f"info.severity: expected one of {', '.join(SEVERITY_ORDER)}, got {describe(severity)}")
    title = _tidy(_text(info, "headline") or _text(info, "event") or "")
    if not title:
        problems.append("info: needs a headline or an event")
    expires = _datetime(_text(info, "expires"), "info.expires", problems)
    if problems:
        raise ContentError(problems, "CAP alert")
    if expires is not None and expires <= now:
        if msg_type == "Update":
            return withdraw
        raise _refuse(f"expired at {expires.isoformat()} (now {now.isoformat()})")
    parts = [_tidy(t) for t in (_text(info, "description"), _text(info, "instruction")) if t]
    return Alert(id=alert_id, scope=scope, scope_name=scope_name, level=SEVERITY_LEVELS[severity],
                 title=_cut(title, MAX_TITLE), body=_cut("\n".join(p for p in parts if p), config.max_body),
                 expires=expires, exercise=exercise, source="cap", cap_identifier=identifier,
                 cap_sender=sender, cap_sent=sent, cap_references=references)

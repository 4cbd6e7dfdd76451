"""CAP 1.2 over the broker, end to end: a real player process, a real broker, the PNG it writes.

The messages of most tests are built here from a template with current times
(``sent`` = now, ``expires`` = now + 1 h), because the real samples in
``../shared/cap-samples`` are years old. Those samples are then published as they
are, each with the outcome its content calls for (see :data:`SAMPLE_OUTCOMES`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import pytest
from fixtures_player import PanelProcess, rgb
from test_e2e_alerts import (ALERT_AT, CRITICAL, INFO, PLAYLIST_AT, PLAYLIST_COLOUR, SIZE, WARNING, Publisher,
                             alert, events_of, for_alert, iso_time, pub, screenshot, start_panel)

__all__ = ["pub"]  # the fixture, shared with test_e2e_alerts

from conftest import CAP_SAMPLES as SAMPLES  # noqa: E402
NS = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "vigicrues@isere.example.fr"
GRENOBLE = {"lat": 45.1885, "lon": 5.7245}
AREAS = {
    "polygon inside": "<polygon>45.15,5.68 45.15,5.78 45.23,5.78 45.23,5.68 45.15,5.68</polygon>",
    "circle inside": "<circle>45.19,5.72 3</circle>",
    "polygon outside": "<polygon>45.70,4.80 45.70,4.90 45.80,4.90 45.80,4.80 45.70,4.80</polygon>",
    "circle outside": "<circle>45.76,4.84 5</circle>",
}
EXERCISE_AT = (2, SIZE[1] - 4)  # the EXERCICE strip along the bottom of the alert screen


def cap_time(dt: datetime) -> str:
    """CAP's date-time form: seconds, an explicit offset, never ``Z``."""
    return dt.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="seconds")


def cap(identifier: str, *, sender: str = SENDER, sent: datetime | None = None, msg_type: str = "Alert",
        status: str = "Actual", references: list[tuple[str, str, datetime]] = (),  # type: ignore[assignment]
        severity: str = "Severe", headline: str = "CRUE DE L'ISÈRE", description: str = "Évacuez les berges.",
        expires: datetime | None = None, area: str | None = None, language: str = "fr-FR") -> bytes:
    """A CAP 1.2 message; by default sent now and expiring in one hour."""
    now = datetime.now(timezone.utc)
    sent = sent or now
    expires = expires or now + timedelta(hours=1)
    refs = " ".join(f"{s},{i},{cap_time(t)}" for s, i, t in references)
    info = "" if msg_type == "Cancel" else f"""
  <info>
    <language>{language}</language>
    <category>Met</category>
    <event>Crue</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Observed</certainty>
    <expires>{cap_time(expires)}</expires>
    <headline>{escape(headline)}</headline>
    <description>{escape(description)}</description>
    <area><areaDesc>Grenoble et environs</areaDesc>{area or ""}</area>
  </info>"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>{cap_time(sent)}</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{f"{chr(10)}  <references>{refs}</references>" if refs else ""}{info}
</alert>
""".encode()


def show(p: PanelProcess, pub: Publisher, alert_id: str, payload: bytes, colour: tuple[int, int, int],
         at: tuple[int, int] = ALERT_AT) -> dict[str, Any]:
    """Publish on ``all/alerts/ID``; wait for its ``alert.displayed`` and for ``colour`` on screen."""
    mark = p.sub.mark()
    pub.send(f"all/alerts/{alert_id}", payload)
    event = p.wait_event("alert.displayed", after=mark, where=for_alert(alert_id))
    p.wait_colour(colour, at=at)
    return event


# -- Alert, Update, Cancel ---------------------------------------------------------------------


@pytest.mark.parametrize("cancel_names", ["the first message", "every message"])
def test_cap_alert_then_update_then_cancel(panel, pub, cancel_names):
    p = start_panel(panel)
    first_sent = datetime.now(timezone.utc) - timedelta(minutes=5)
    show(p, pub, "cap-crue", cap("crue-1", sent=first_sent, severity="Severe"), CRITICAL)

    # The Update, on a topic of its own, replaces the alert it references: new title, now Moderate.
    update_sent = datetime.now(timezone.utc) - timedelta(minutes=1)
    mark = p.sub.mark()
    update = cap("crue-2", sent=update_sent, msg_type="Update", severity="Moderate",
                 headline="DÉCRUE EN COURS", references=[(SENDER, "crue-1", first_sent)])
    show(p, pub, "cap-crue-maj", update, WARNING)
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("cap-crue"))
    assert ended["reason"] == "cancelled"
    shot = screenshot(p, pub)  # every event of the update is out by now
    assert shot.getpixel(ALERT_AT) == WARNING, "the critical original must be gone, not merely outranked"
    assert len(events_of(p, "alert.displayed", "cap-crue-maj")) == 1
    assert len(events_of(p, "alert.displayed", "cap-crue")) == 1

    refs = [(SENDER, "crue-1", first_sent)]
    if cancel_names == "every message":
        refs.append((SENDER, "crue-2", update_sent))
    mark = p.sub.mark()
    pub.send("all/alerts/cap-crue-fin", cap("crue-3", msg_type="Cancel", references=refs))
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("cap-crue-maj"))
    assert ended["reason"] == "cancelled"
    p.wait_colour(rgb(PLAYLIST_COLOUR), at=PLAYLIST_AT)
    assert screenshot(p, pub).getpixel(ALERT_AT) != WARNING
    assert not [e for e in p.events(mark) if e["type"] in ("alert.displayed", "alert.rejected")]


def test_cap_update_on_the_same_topic_replaces_the_alert(panel, pub):
    p = start_panel(panel)
    first_sent = datetime.now(timezone.utc) - timedelta(minutes=5)
    show(p, pub, "cap-vent", cap("vent-1", sent=first_sent, severity="Extreme", headline="TEMPÊTE"), CRITICAL)
    mark = p.sub.mark()
    update = cap("vent-2", msg_type="Update", severity="Moderate", headline="VENT FORT",
                 references=[(SENDER, "vent-1", first_sent)])
    show(p, pub, "cap-vent", update, WARNING)
    screenshot(p, pub)
    assert len(events_of(p, "alert.displayed", "cap-vent", after=mark)) == 1
    assert not events_of(p, "alert.ended", "cap-vent", after=mark), "the id is still active"


# -- areas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", list(AREAS))
def test_cap_area_filter_against_the_panel_location(panel, pub, where):
    p = start_panel(panel, extra={"panel": {"location": GRENOBLE}})
    mark = p.sub.mark()
    pub.send("all/alerts/zone", cap("zone-1", severity="Extreme", area=AREAS[where]))
    if where.endswith("inside"):
        p.wait_event("alert.displayed", after=mark, where=for_alert("zone"))
        p.wait_colour(CRITICAL, at=ALERT_AT)
        return
    # Outside: nothing to show and nothing wrong. A lower-level marker published after it must be
    # what shows (a critical "zone" alert would outrank it) and the only alert acknowledged.
    show(p, pub, "marqueur", alert("warning", "MARQUEUR"), WARNING)
    assert screenshot(p, pub).getpixel(ALERT_AT) == WARNING
    got = [(e["type"], e.get("alert")) for e in p.events(mark) if e["type"].startswith("alert.")]
    assert got == [("alert.displayed", "marqueur")], got


# -- status -----------------------------------------------------------------------------------


def test_cap_exercise_is_refused_by_default(panel, pub):
    p = start_panel(panel)
    before = screenshot(p, pub)
    mark = p.sub.mark()
    pub.send("all/alerts/exercice", cap("exo-1", status="Exercise"))
    event = p.wait_event("alert.rejected", after=mark, where=for_alert("exercice"))
    assert "Exercise" in event["reason"] and "allow_exercise" in event["reason"], event["reason"]
    after = screenshot(p, pub)
    assert after.tobytes() == before.tobytes()
    assert not events_of(p, "alert.displayed", "exercice")


def test_cap_exercise_when_allowed_is_shown_marked(panel, pub):
    p = start_panel(panel, extra={"alerts": {"allow_exercise": True}})
    show(p, pub, "exercice", cap("exo-1", status="Exercise"), CRITICAL)
    assert screenshot(p, pub).getpixel(EXERCISE_AT) == (255, 255, 255), "no EXERCICE strip"
    pub.send("all/alerts/exercice", b"")
    show(p, pub, "reel", cap("reel-1"), CRITICAL)
    assert screenshot(p, pub).getpixel(EXERCISE_AT) == CRITICAL, "an Actual alert is not marked"


# -- the real samples --------------------------------------------------------------------------

# What each sample must become on a panel with no location configured, today (their dates
# are past): "displayed" (no expires: CAP says it lasts until cancelled), "rejected" with
# words of the reason, "withdraws" (an Update already expired on arrival: the alerts it
# references end), "replaces" (an Update: shown, and the alerts it references end).
SAMPLE_OUTCOMES: dict[str, tuple[str, Any]] = {
    "v1dot2_appendix_adot1.xml": ("displayed", CRITICAL),  # Severe, no expires, no area
    "v1dot2_appendix_adot2.xml": ("rejected", ["expired"]),  # expires 2003-06-17
    "v1dot2_appendix_adot3.xml": ("replaces", INFO),  # Update, Minor, no expires
    "v1dot2_appendix_adot4.xml": ("displayed", CRITICAL),  # Severe, no expires, geocode only
    "google-PAAQ-4-mg5a94.xml": ("withdraws", None),  # Update whose expires equals its sent
    "ipaws-5e6dd964023f1930ef638846.xml": ("rejected", ["expired"]),
    "ipaws-5ea321f39fc226a7b44b6874.xml": ("rejected", ["expired"]),
    "nws-atom-index-not-an-alert.xml": ("rejected", ["not a CAP 1.2 alert"]),
}
BANNER_AT = (SIZE[0] - 2, SIZE[1] - 8)


def _references(data: bytes) -> list[tuple[str, str]]:
    root = SafeET.fromstring(data)
    text = root.findtext(f"{{{NS}}}references") or ""
    return [(e.split(",")[0], e.split(",")[1]) for e in text.split()]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"the CAP samples folder {SAMPLES} is absent")
def test_every_real_cap_sample_is_handled_and_none_crashes_the_player(panel, pub):
    p = start_panel(panel)
    files = sorted(SAMPLES.glob("*.xml"))
    assert {f.name for f in files} >= set(SAMPLE_OUTCOMES), "a known sample is missing"
    for n, path in enumerate(files):
        data = path.read_bytes()
        sample_id = f"sample-{n}"
        outcome, detail = SAMPLE_OUTCOMES.get(path.name, ("any", None))
        # The alerts an Update or Cancel refers to, as if they had been received earlier today.
        earlier = []
        for k, (sender, identifier) in enumerate(_references(data)):
            earlier_id = f"{sample_id}-earlier-{k}"
            show(p, pub, earlier_id, cap(identifier, sender=sender, severity="Moderate"), WARNING)
            earlier.append(earlier_id)
        mark = p.sub.mark()
        pub.send(f"all/alerts/{sample_id}", data)
        screenshot(p, pub)  # the sample has been handled once the screenshot is back
        assert p.proc is not None and p.proc.poll() is None, f"{path.name} stopped the player"
        mine = [e for e in p.events(mark) if e.get("alert") == sample_id]
        ended = {e["alert"]: e["reason"] for e in p.events(mark) if e["type"] == "alert.ended"}
        kinds = [e["type"] for e in mine]
        what = f"{path.name}: events {[(e['type'], e.get('reason')) for e in p.events(mark)]}"
        if outcome == "rejected":
            assert kinds == ["alert.rejected"], what
            for word in detail:
                assert word in mine[0]["reason"], what
        elif outcome in ("displayed", "replaces"):
            assert kinds == ["alert.displayed"], what
            at = BANNER_AT if detail == INFO else ALERT_AT
            p.wait_colour(detail, at=at)
            assert all(ended.get(e) == "cancelled" for e in earlier), what
        elif outcome == "withdraws":
            assert earlier and kinds == [], what
            assert all(ended.get(e) == "cancelled" for e in earlier), what
        else:  # a sample this test does not know yet: refused with a reason, or shown
            assert kinds in (["alert.rejected"], ["alert.displayed"]), what
            assert all(e.get("reason") for e in mine if e["type"] == "alert.rejected"), what
        # Leave the panel showing its playlist for the next sample.
        for leftover in [sample_id, *earlier]:
            pub.send(f"all/alerts/{leftover}", b"")
        p.wait_colour(rgb(PLAYLIST_COLOUR), at=PLAYLIST_AT)
    # Still alive and answering.
    shown = show(p, pub, "apres", cap("apres-1", headline="TOUJOURS LÀ"), CRITICAL)
    assert iso_time(shown["displayed_at"]) <= datetime.now(timezone.utc)

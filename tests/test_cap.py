"""CAP 1.2 messages: safe XML, status, msgType and references, languages, severity, areas,
and every real message in ../shared/cap-samples/."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.alerts import Alert, AlertsConfig, Cancel, CapRef, parse_alert_message
from player.cap import CIRCLE_TOLERANCE_KM, distance_km, in_polygon
from player.errors import ContentError

from conftest import CAP_SAMPLES as SAMPLES  # noqa: E402
CFG = AlertsConfig()
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
GRENOBLE = (45.1885, 5.7245)


def sample(name: str) -> bytes:
    if not SAMPLES.is_dir():
        pytest.skip(f"the shared CAP samples folder {SAMPLES} is absent")
    return (SAMPLES / name).read_bytes()


def sent_of(payload: bytes) -> datetime:
    """The message's own <sent> time, used as `now` so its expiry does not refuse it."""
    match = re.search(rb"<sent>([^<]+)</sent>", payload)
    assert match
    return datetime.fromisoformat(match.group(1).decode())


def parse(payload: bytes, *, now: datetime | None = None, config: AlertsConfig = CFG,
          location: tuple[float, float] | None = None, alert_id: str = "cap-1") -> Alert | Cancel | None:
    return parse_alert_message(alert_id, "all", "", payload, now=now or sent_of(payload), config=config,
                               location=location)


def refusal(payload: bytes, **kw: object) -> str:
    with pytest.raises(ContentError) as info:
        parse(payload, **kw)  # type: ignore[arg-type]
    return "; ".join(info.value.errors)


def cap(*, status: str = "Actual", msg_type: str = "Alert", identifier: str = "FR-38-0001",
        references: str = "", infos: str | None = None, sent: str = "2026-11-26T10:00:00+01:00") -> bytes:
    """A small CAP 1.2 message written for these tests."""
    if infos is None:
        infos = info()
    refs = f"<references>{references}</references>" if references else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{identifier}</identifier><sender>prefecture-38@interieur.gouv.fr</sender>"
            f"<sent>{sent}</sent><status>{status}</status><msgType>{msg_type}</msgType>"
            f"<scope>Public</scope>{refs}{infos}</alert>").encode()


def info(*, language: str = "fr-FR", severity: str = "Severe", headline: str | None = "Crue de l'Isère",
         event: str = "Inondation", description: str = "Montée rapide des eaux.",
         instruction: str | None = "Évacuez les berges.", expires: str | None = "2026-11-26T18:00:00+01:00",
         area: str = "") -> str:
    parts = [f"<language>{language}</language>" if language else "", "<category>Met</category>",
             f"<event>{event}</event>", "<urgency>Immediate</urgency>", f"<severity>{severity}</severity>",
             "<certainty>Observed</certainty>", f"<expires>{expires}</expires>" if expires else "",
             f"<headline>{headline}</headline>" if headline else "", f"<description>{description}</description>",
             f"<instruction>{instruction}</instruction>" if instruction else "",
             f"<area><areaDesc>Grenoble</areaDesc>{area}</area>"]
    return "<info>" + "".join(parts) + "</info>"


# -- every shared sample --------------------------------------------------------

def test_sample_a1_alert_without_area() -> None:
    alert = parse(sample("v1dot2_appendix_adot1.xml"), location=GRENOBLE)
    assert isinstance(alert, Alert)
    assert alert.level == "critical" and alert.title == "Homeland Security Sets Code ORANGE"
    assert alert.body.startswith("The Department of Homeland Security has elevated the Homeland Security Advisory "
                                 "System threat level")
    assert "\nA High Condition is declared" in alert.body  # description, then instruction
    assert "  " not in alert.body
    assert alert.source == "cap" and alert.cap_sender == "hsas@dhs.gov" and alert.cap_identifier == "43b080713727"
    assert alert.cap_sent == datetime.fromisoformat("2003-04-02T14:39:01-05:00")
    assert alert.expires is None and not alert.exercise and alert.cap_references == ()


def test_sample_a2_polygon_and_expires() -> None:
    payload = sample("v1dot2_appendix_adot2.xml")
    inside = (38.47, -119.95)
    alert = parse(payload, location=inside)
    assert isinstance(alert, Alert)
    assert alert.level == "critical" and alert.title == "SEVERE THUNDERSTORM WARNING"
    assert alert.expires == datetime.fromisoformat("2003-06-17T16:00:00-07:00")
    assert alert.body.endswith("TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES.")
    assert parse(payload, location=GRENOBLE) is None  # outside the polygon: not for this panel
    assert isinstance(parse(payload, location=None), Alert)  # no location configured: shown


def test_sample_a2_with_the_real_clock_is_expired() -> None:
    reason = refusal(sample("v1dot2_appendix_adot2.xml"), now=datetime.now(timezone.utc))
    assert reason.startswith("expired at 2003-06-17T16:00:00-07:00")


def test_sample_a3_update_with_circle_of_radius_zero() -> None:
    payload = sample("v1dot2_appendix_adot3.xml")
    alert = parse(payload)
    assert isinstance(alert, Alert)
    assert alert.level == "info" and alert.title == "EQ 3.4 Imperial County CA"
    assert alert.cap_references == (CapRef("trinet@caltech.edu", "TRI13970876.1", "2003-06-11T20:30:00-07:00"),)
    assert isinstance(parse(payload, location=(32.9525, -115.5527)), Alert)  # at the point
    assert isinstance(parse(payload, location=(32.9530, -115.5530)), Alert)  # ~60 m away: within tolerance
    withdrawn = parse(payload, location=(32.97, -115.5527))  # ~2 km away
    # An Update that no longer concerns this panel withdraws what it updates here.
    assert withdrawn == Cancel(ids=("cap-1",), scope="all", scope_name="", references=alert.cap_references)


def test_sample_a4_language_choice_and_geocode_only_area() -> None:
    payload = sample("v1dot2_appendix_adot4.xml")
    english = parse(payload, location=GRENOBLE)  # geocodes only: no geometric area, so shown
    assert isinstance(english, Alert) and english.title == "Amber Alert in Los Angeles County"
    assert english.level == "critical"
    spanish = parse(payload, config=AlertsConfig(languages=("es",)))
    assert isinstance(spanish, Alert) and spanish.title == "Alerta Amber en el condado de Los Ángeles"
    first = parse(payload, config=AlertsConfig(languages=("de",)))  # no preferred language: the first block
    assert isinstance(first, Alert) and first.title == english.title


def test_sample_google_tsunami_cancellation_update() -> None:
    payload = sample("google-PAAQ-4-mg5a94.xml")
    result = parse(payload)  # expires == sent: already over when it arrives
    refs = tuple(CapRef("wcatwc@noaa.gov", f"PAAQ-{n}-mg5a94", sent) for n, sent in
                 ((1, "2013-01-05T09:01:16-00:00"), (2, "2013-01-05T09:30:16-00:00"),
                  (3, "2013-01-05T10:17:31-00:00")))
    assert result == Cancel(ids=("cap-1",), scope="all", scope_name="", references=refs)
    before = parse(payload, now=datetime(2013, 1, 5, 10, 58, tzinfo=timezone.utc))
    assert isinstance(before, Alert) and before.cap_references == refs and before.level == "info"
    assert before.title.startswith("The tsunami Warning is canceled")
    assert parse(payload, now=datetime.now(timezone.utc)) == result


def test_sample_ipaws_administrative_test_message() -> None:
    alert = parse(sample("ipaws-5e6dd964023f1930ef638846.xml"))
    assert isinstance(alert, Alert)
    # status is Actual (an administrative message, not a CAP Test): shown, severity Unknown → info
    assert alert.level == "info" and alert.title == "ADR Test Message" and not alert.exercise
    assert alert.body == "This is a test ADR message issued by Clark Regional Emergency Services Agency."


def test_sample_ipaws_extreme() -> None:
    alert = parse(sample("ipaws-5ea321f39fc226a7b44b6874.xml"), location=GRENOBLE)
    assert isinstance(alert, Alert)
    assert alert.level == "critical"
    assert alert.title == "IPAWS Message - MI Stay Home Stay Safe Extension 5/15"
    assert alert.expires == datetime.fromisoformat("2020-04-24T14:23:35-04:00")


def test_sample_nws_index_is_refused() -> None:
    reason = refusal(sample("nws-atom-index-not-an-alert.xml"), now=NOW)
    assert reason.startswith("not a CAP 1.2 alert: root element is {urn:oasis:names:tc:emergency:cap:1.1}alert")


def test_an_atom_feed_is_refused() -> None:
    feed = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>'
    assert refusal(feed, now=NOW) == "not a CAP 1.2 alert: root element is {http://www.w3.org/2005/Atom}feed"


def test_every_shared_sample_is_handled() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"the shared CAP samples folder {SAMPLES} is absent")
    files = sorted(SAMPLES.glob("*.xml"))
    assert len(files) >= 8
    for path in files:
        payload = path.read_bytes()
        for now in (sent_of(payload), datetime.now(timezone.utc)):
            for location in (None, GRENOBLE):
                try:
                    result = parse(payload, now=now, location=location)
                except ContentError as exc:
                    assert exc.errors and exc.errors[0], path.name
                else:
                    assert result is None or isinstance(result, (Alert, Cancel)), path.name


# -- safe XML ---------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alert [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""


def test_billion_laughs_is_refused() -> None:
    assert "entity declaration 'lol' refused" in refusal(BILLION_LAUGHS, now=NOW)


def test_external_entity_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file://{secret}">]>'
           '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>').encode()
    reason = refusal(xxe, now=NOW)
    assert f"external entity 'xxe' (file://{secret}) refused" in reason
    assert "TOP-SECRET" not in reason


def test_external_parameter_entity_is_refused() -> None:
    payload = (b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
               b"%remote;]><alert/>")
    assert "refused" in refusal(payload, now=NOW)


@pytest.mark.parametrize("payload, reason", [
    (b"<alert", "malformed XML"),
    (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>&undefined;</alert>", "malformed XML"),
    (b'<?xml version="1.0" encoding="klingon"?><alert/>', "XML"),
    (b"<alert/>", "not a CAP 1.2 alert: root element is alert"),
])
def test_malformed_xml(payload: bytes, reason: str) -> None:
    assert reason in refusal(payload, now=NOW)


# -- status, msgType, references ------------------------------------------------------

def test_exercise_and_test_refused_by_default() -> None:
    assert "status Exercise is refused (alerts.allow_exercise is false)" in refusal(cap(status="Exercise"))
    assert "status Test is refused (alerts.allow_test is false)" in refusal(cap(status="Test"))
    assert "is not displayed" in refusal(cap(status="System"))
    assert "is not displayed" in refusal(cap(status="Draft"))


def test_exercise_and_test_accepted_and_marked_when_allowed() -> None:
    drill = parse(cap(status="Exercise"), config=AlertsConfig(allow_exercise=True))
    assert isinstance(drill, Alert) and drill.exercise
    test = parse(cap(status="Test"), config=AlertsConfig(allow_test=True))
    assert isinstance(test, Alert) and test.exercise
    assert "allow_test" in refusal(cap(status="Test"), config=AlertsConfig(allow_exercise=True))


def test_alert_update_cancel_chain() -> None:
    first = parse(cap(identifier="FR-38-0001"), alert_id="crue")
    assert isinstance(first, Alert) and first.cap_references == ()
    ref = "prefecture-38@interieur.gouv.fr,FR-38-0001,2026-11-26T10:00:00+01:00"
    update = parse(cap(identifier="FR-38-0002", msg_type="Update", references=ref,
                       infos=info(severity="Extreme", headline="Crue majeure")), alert_id="crue-maj")
    assert isinstance(update, Alert) and update.title == "Crue majeure" and update.level == "critical"
    assert update.cap_references == (CapRef("prefecture-38@interieur.gouv.fr", "FR-38-0001",
                                            "2026-11-26T10:00:00+01:00"),)
    cancel = parse(cap(identifier="FR-38-0003", msg_type="Cancel", infos="",
                       references=ref + " prefecture-38@interieur.gouv.fr,FR-38-0002,2026-11-26T10:00:00+01:00"))
    assert isinstance(cancel, Cancel)
    assert cancel.ids == ("cap-1",) and [r.identifier for r in cancel.references] == ["FR-38-0001", "FR-38-0002"]


def test_unsupported_msgtypes_and_bad_references() -> None:
    assert "msgType \"Ack\" is not displayed" in refusal(cap(msg_type="Ack"))
    assert "references: expected sender,identifier,sent" in refusal(cap(msg_type="Cancel", references="junk"))


def test_missing_header_fields_are_all_reported() -> None:
    payload = b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><status>Actual</status></alert>'
    reason = refusal(payload, now=NOW)
    for part in ("identifier: required", "sender: required", "sent: required", "msgType"):
        assert part in reason


# -- info blocks ---------------------------------------------------------------------

@pytest.mark.parametrize("severity, level", [("Extreme", "critical"), ("Severe", "critical"),
                                             ("Moderate", "warning"), ("Minor", "info"), ("Unknown", "info")])
def test_severity_to_level(severity: str, level: str) -> None:
    alert = parse(cap(infos=info(severity=severity)))
    assert isinstance(alert, Alert) and alert.level == level


def test_bad_severity_and_missing_info() -> None:
    assert "info.severity: expected one of" in refusal(cap(infos=info(severity="Apocalyptic")))
    assert "no info block" in refusal(cap(infos=""))


def test_french_is_preferred_by_default_then_english() -> None:
    infos = info(language="en-GB", headline="Flood") + info(language="fr-FR", headline="Crue")
    assert parse(cap(infos=infos)).title == "Crue"  # type: ignore[union-attr]
    no_french = info(language="de-DE", headline="Hochwasser") + info(language="en-GB", headline="Flood")
    assert parse(cap(infos=no_french)).title == "Flood"  # type: ignore[union-attr]
    # no <language>: CAP's default is en-US
    assert parse(cap(infos=info(language="", headline="Default")), config=AlertsConfig(
        languages=("en",))).title == "Default"  # type: ignore[union-attr]


def test_most_severe_block_of_the_language_wins() -> None:
    infos = info(severity="Moderate", headline="Vigilance") + info(severity="Extreme", headline="Évacuation")
    alert = parse(cap(infos=infos))
    assert isinstance(alert, Alert) and alert.title == "Évacuation" and alert.level == "critical"


def test_title_falls_back_to_event_and_body_is_cut() -> None:
    alert = parse(cap(infos=info(headline=None, description="mot " * 400, instruction=None)),
                  config=AlertsConfig(max_body=100))
    assert isinstance(alert, Alert)
    assert alert.title == "Inondation"
    assert len(alert.body) == 100
    assert alert.body.endswith("…") and alert.body.startswith("mot mot")


def test_expired_alert_is_refused_but_an_expired_update_withdraws() -> None:
    old = info(expires="2026-11-26T09:30:00+01:00")
    assert refusal(cap(infos=old)).startswith("expired at 2026-11-26T09:30:00+01:00")
    ref = "prefecture-38@interieur.gouv.fr,FR-38-0001,2026-11-26T09:00:00+01:00"
    result = parse(cap(msg_type="Update", references=ref, infos=old))
    assert isinstance(result, Cancel) and result.references[0].identifier == "FR-38-0001"


# -- areas ------------------------------------------------------------------------------

# A square around the centre of Grenoble; its corners as CAP writes them (lat,lon; closed).
SQUARE = "<polygon>45.17,5.70 45.17,5.75 45.21,5.75 45.21,5.70 45.17,5.70</polygon>"


def test_polygon_inside_and_outside() -> None:
    payload = cap(infos=info(area=SQUARE))
    assert isinstance(parse(payload, location=GRENOBLE), Alert)
    assert parse(payload, location=(45.1885, 5.80)) is None  # east of the square
    assert parse(payload, location=(45.25, 5.7245)) is None  # north of it
    assert isinstance(parse(payload, location=(45.17, 5.72)), Alert)  # on the southern edge
    assert isinstance(parse(payload), Alert)  # no location configured


def test_concave_polygon() -> None:
    # A "U": the notch between its arms is outside.
    u = "<polygon>0,0 0,3 3,3 3,2 1,2 1,1 3,1 3,0 0,0</polygon>"
    payload = cap(infos=info(area=u))
    assert isinstance(parse(payload, location=(0.5, 1.5)), Alert)
    assert parse(payload, location=(2, 1.5)) is None
    assert in_polygon((2.5, 2.5), [(0, 0), (0, 3), (3, 3), (3, 2), (1, 2), (1, 1), (3, 1), (3, 0)])


def test_circle_inside_and_outside() -> None:
    payload = cap(infos=info(area="<circle>45.1885,5.7245 2</circle>"))
    assert isinstance(parse(payload, location=(45.20, 5.7245)), Alert)  # ~1.3 km north
    assert parse(payload, location=(45.22, 5.7245)) is None  # ~3.5 km north
    assert distance_km((45.20, 5.7245), GRENOBLE) < 2 < distance_km((45.22, 5.7245), GRENOBLE)


def test_circle_of_radius_zero_matches_within_tolerance() -> None:
    payload = cap(infos=info(area="<circle>45.1885,5.7245 0</circle>"))
    assert isinstance(parse(payload, location=GRENOBLE), Alert)
    assert isinstance(parse(payload, location=(45.1889, 5.7249)), Alert)  # ~55 m
    assert parse(payload, location=(45.1905, 5.7245)) is None  # ~220 m
    assert CIRCLE_TOLERANCE_KM == 0.1


def test_any_area_of_the_block_may_match() -> None:
    far = "<polygon>48.80,2.30 48.80,2.40 48.90,2.40 48.80,2.30</polygon>"
    payload = cap(infos=info(area=far + "<circle>45.1885,5.7245 1</circle>"))
    assert isinstance(parse(payload, location=GRENOBLE), Alert)
    assert isinstance(parse(payload, location=(48.82, 2.38)), Alert)
    assert parse(payload, location=(43.3, 5.4)) is None


def test_geocode_only_and_empty_polygon_count_as_no_area() -> None:
    payload = cap(infos=info(area="<polygon></polygon><geocode><valueName>INSEE</valueName>"
                                  "<value>38185</value></geocode>"))
    assert isinstance(parse(payload, location=(10.0, 10.0)), Alert)


@pytest.mark.parametrize("area, reason", [
    ("<polygon>45.1,5.7 45.2</polygon>", "expected lat,lon"),
    ("<polygon>45.1,5.7 45.2,5.8 45.1,5.7</polygon>", "at least 3 corners"),
    ("<polygon>95,5.7 45.2,5.8 45.3,5.9 95,5.7</polygon>", "out of range"),
    ("<circle>45.1,5.7</circle>", 'expected "lat,lon radius"'),
    ("<circle>45.1,5.7 -1</circle>", "bad radius"),
    ("<circle>45.1,5.7 nan</circle>", "bad radius"),
    ("<circle>nan,5.7 1</circle>", "out of range"),
])
def test_malformed_areas_are_refused(area: str, reason: str) -> None:
    assert reason in refusal(cap(infos=info(area=area)), location=GRENOBLE)


# -- generated bad input ----------------------------------------------------------------------

def _seeds() -> list[bytes]:
    seeds = [cap(), cap(msg_type="Cancel", references="a,b,c", infos=""),
             cap(infos=info(area=SQUARE)), cap(infos=info(area="<circle>45.1885,5.7245 0</circle>"))]
    if SAMPLES.is_dir():
        seeds += [p.read_bytes() for p in sorted(SAMPLES.glob("v1dot2*.xml")) + [SAMPLES / "google-PAAQ-4-mg5a94.xml"]]
    return seeds


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_seeds())))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"<", b">", b"&", b"&amp;", b"<info>", b"</area>", b",", b" ",
                                                  b"nan", b"-", b"\x00", b"\xc3", b"<!DOCTYPE a>", b"]]>"]))
        else:
            chunk = bytes(data[pos:pos + draw(st.integers(1, 80))])
            data[pos:pos] = chunk
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=300).map(lambda b: b"<" + b)),
       st.sampled_from([None, GRENOBLE, (38.47, -119.95)]))
def test_generated_cap_gives_a_result_or_a_content_error(payload: bytes, location: tuple[float, float] | None) -> None:
    try:
        result = parse_alert_message("gen", "all", "", payload, now=NOW, config=AlertsConfig(allow_exercise=True),
                                     location=location)
    except ContentError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return
    assert result is None or isinstance(result, (Alert, Cancel))
    if isinstance(result, Alert):
        assert result.level in ("info", "warning", "critical") and result.title
        assert len(result.body) <= AlertsConfig().max_body


# -- circle edges: points just inside and just outside the radius ------------------------------

KM_PER_DEGREE = 6371.0088 * 3.141592653589793 / 180  # along a meridian


def _north_of_grenoble(km: float) -> tuple[float, float]:
    return (GRENOBLE[0] + km / KM_PER_DEGREE, GRENOBLE[1])


def test_circle_radius_is_in_kilometres_to_the_edge() -> None:
    # Radius 2 km, widened by the 0.1 km tolerance: the edge is at 2.1 km. A radius
    # read as miles (× 1.609) or halved would move it by hundreds of metres.
    payload = cap(infos=info(area="<circle>45.1885,5.7245 2</circle>"))
    for km, inside in [(1.9, True), (2.05, True), (2.15, False), (2.4, False), (3.2, False)]:
        point = _north_of_grenoble(km)
        assert distance_km(point, GRENOBLE) == pytest.approx(km, abs=1e-6)
        result = parse(payload, location=point)
        assert isinstance(result, Alert) if inside else result is None, (km, result)


def test_circle_edge_east_west_uses_the_great_circle_distance() -> None:
    # 2.05 km east is inside, 2.15 km east is outside: a longitude degree here is
    # only ~78 km, so a flat lat/lon distance would get this wrong.
    per_degree_east = KM_PER_DEGREE * math.cos(math.radians(GRENOBLE[0]))
    payload = cap(infos=info(area="<circle>45.1885,5.7245 2</circle>"))
    assert isinstance(parse(payload, location=(GRENOBLE[0], GRENOBLE[1] + 2.05 / per_degree_east)), Alert)
    assert parse(payload, location=(GRENOBLE[0], GRENOBLE[1] - 2.15 / per_degree_east)) is None
    assert distance_km((0.0, 0.0), (0.0, 1.0)) == pytest.approx(KM_PER_DEGREE, rel=1e-9)
    assert distance_km((10.0, 20.0), (10.0, 20.0)) == 0.0


# -- polygon edges: the tolerance is ~1 cm across an edge, never more, and only along it ---------

# A triangle near Grenoble (lat, lon), with a diagonal edge from (45.00, 5.02) to (45.02, 5.00).
TRIANGLE = [(45.0, 5.0), (45.0, 5.02), (45.02, 5.0), (45.0, 5.0)]
UNIT = 1 / math.sqrt(2)  # the diagonal's outward normal is (UNIT, UNIT) in (lat, lon)


def test_points_within_a_centimetre_of_an_edge_count_as_inside() -> None:
    assert in_polygon((45.01, 5.01), TRIANGLE) is True  # on the diagonal
    for d in (3e-8, 8e-8):  # outside the diagonal, within the tolerance
        assert in_polygon((45.01 + d * UNIT, 5.01 + d * UNIT), TRIANGLE), d
    assert in_polygon((45.0 - 8e-8, 5.01), TRIANGLE)  # south of the southern edge
    assert in_polygon((45.01, 5.0 - 8e-8), TRIANGLE)  # west of the western edge
    assert in_polygon((45.0, 5.0), TRIANGLE) and in_polygon((45.0 - 5e-8, 5.0 - 5e-8), TRIANGLE)  # a corner
    assert in_polygon((45.0, 5.02 + 5e-8), TRIANGLE)  # just past the end of an edge, within the tolerance
    assert in_polygon((45.02 + 5e-8, 5.0), TRIANGLE)


def test_points_beyond_the_tolerance_or_along_an_edge_past_its_end_are_outside() -> None:
    for d in (3e-7, 1e-6, 1e-4):
        assert in_polygon((45.01 + d * UNIT, 5.01 + d * UNIT), TRIANGLE) is False, d
        assert in_polygon((45.0 - d, 5.01), TRIANGLE) is False, d
        assert in_polygon((45.01, 5.0 - d), TRIANGLE) is False, d
    # On the line of the southern edge, but past its ends: outside.
    assert in_polygon((45.0, 5.02 + 1e-6), TRIANGLE) is False
    assert in_polygon((45.0, 5.0 - 1e-6), TRIANGLE) is False
    assert in_polygon((45.02 + 1e-6, 5.0), TRIANGLE) is False
    # Short edges (a town's square, 0.04 degree sides) get the same 1e-7 degree tolerance, not more.
    square = [(45.17, 5.70), (45.17, 5.75), (45.21, 5.75), (45.21, 5.70), (45.17, 5.70)]
    assert in_polygon((45.17 - 5e-8, 5.72), square) and not in_polygon((45.17 - 1e-6, 5.72), square)
    assert not in_polygon((45.19, 5.75 + 1e-6), square) and in_polygon((45.19, 5.75 + 5e-8), square)


def test_a_cap_polygon_matches_a_panel_a_centimetre_off_its_edge_but_not_a_metre() -> None:
    payload = cap(infos=info(area=SQUARE))
    assert isinstance(parse(payload, location=(45.17 - 5e-8, 5.72)), Alert)
    assert parse(payload, location=(45.17 - 1e-5, 5.72)) is None  # ~1 m south


def test_area_coordinates_at_the_ends_of_their_ranges_and_refusals_quote_the_text() -> None:
    for corner in ("-90,-180", "90,180", "-90,180", "90,-180"):
        area = f"<circle>{corner} 1</circle>"
        assert parse(cap(infos=info(area=area)), location=GRENOBLE) is None  # valid, just far away
    for corner in ("-90.0001,5", "90.0001,5", "45,-180.0001", "45,180.0001"):
        reason = refusal(cap(infos=info(area=f"<circle>{corner} 1</circle>")), location=GRENOBLE)
        assert f'area circle: coordinates out of range in "{corner}"' in reason
    reason = refusal(cap(infos=info(area="<polygon>45.1,5.7 45.2,5.8 45.3;5.9 45.1,5.7</polygon>")),
                     location=GRENOBLE)
    assert 'area polygon: expected lat,lon, got "45.3;5.9"' in reason
    reason = refusal(cap(infos=info(area="<polygon>45.1,5.7 45.2,5.8 45.1,5.7</polygon>")), location=GRENOBLE)
    assert 'area polygon: needs at least 3 corners, got "45.1,5.7 45.2,5.8 45.1,5.7"' in reason
    assert 'area circle: expected "lat,lon radius", got "45.1,5.7"' in refusal(
        cap(infos=info(area="<circle>45.1,5.7</circle>")), location=GRENOBLE)
    assert 'area circle: bad radius in "45.1,5.7 deux"' in refusal(
        cap(infos=info(area="<circle>45.1,5.7 deux</circle>")), location=GRENOBLE)
    assert 'area circle: expected lat,lon, got "45.1;5.7"' in refusal(
        cap(infos=info(area="<circle>45.1;5.7 2</circle>")), location=GRENOBLE)


# -- what the message becomes: ids, scopes, defaults, choices ------------------------------------

def test_alert_and_cancel_carry_the_topic_id_and_scope() -> None:
    alert = parse_alert_message("crue-7", "group", "centre", cap(), now=NOW, config=CFG, location=None)
    assert isinstance(alert, Alert)
    assert (alert.id, alert.scope, alert.scope_name, alert.exercise) == ("crue-7", "group", "centre", False)
    cancel = parse_alert_message("crue-7", "panel", "p1", cap(msg_type="Cancel", references="s,crue,t", infos=""),
                                 now=NOW, config=CFG, location=None)
    assert isinstance(cancel, Cancel)
    assert (cancel.ids, cancel.scope, cancel.scope_name) == (("crue-7",), "panel", "p1")
    assert cancel.references == (CapRef("s", "crue", "t"),)
    # An entry with an empty sent part is kept; an empty sender or identifier is not.
    assert parse(cap(msg_type="Cancel", references="s,id,", infos="")).references == (  # type: ignore[union-attr]
        CapRef("s", "id", ""),)
    for bad in ("s,,t", ",id,t", "s,id"):
        assert f'references: expected sender,identifier,sent, got "{bad}"' in refusal(
            cap(msg_type="Cancel", references=bad, infos=""))


def test_refusals_are_cap_alert_errors_with_their_exact_reasons() -> None:
    def error(payload: bytes, **kw: object) -> ContentError:
        with pytest.raises(ContentError) as exc:
            parse(payload, **kw)  # type: ignore[arg-type]
        return exc.value

    assert error(cap(infos="")).what == "CAP alert" and error(cap(infos="")).errors == [
        "no info block: nothing to show"]
    assert error(cap(status="System")).errors == [
        'status "System" is not displayed (only Actual, and Exercise/Test when allowed)']
    assert error(cap(status="System")).what == "CAP alert"
    no_title = info(headline=None).replace("<event>Inondation</event>", "")
    assert error(cap(infos=no_title)).errors == ["info: needs a headline or an event"]
    assert error(cap(infos=no_title)).what == "CAP alert"
    assert error(cap(infos=info(severity="Grave"))).errors == [
        'info.severity: expected one of Unknown, Minor, Moderate, Severe, Extreme, got "Grave"']
    assert error(cap(sent="hier"), now=NOW).errors == ['sent: expected a date-time with an offset, got "hier"']
    assert error(cap(infos=info(expires="demain"))).errors == [
        'info.expires: expected a date-time with an offset, got "demain"']
    v11 = cap().replace(b"cap:1.2", b"cap:1.1")
    assert error(v11, now=NOW).errors == [
        "not a CAP 1.2 alert: root element is {urn:oasis:names:tc:emergency:cap:1.1}alert (CAP 1.1 is not supported)"]
    assert error(BILLION_LAUGHS, now=NOW).errors == [
        "XML entity declaration 'lol' refused (protection against entity-expansion bombs)"]


def test_missing_severity_is_unknown_and_an_invalid_one_never_outranks_it() -> None:
    no_severity = info().replace("<severity>Severe</severity>", "")
    alert = parse(cap(infos=no_severity))
    assert isinstance(alert, Alert) and alert.level == "info"
    # Two blocks in the same language: the valid "Unknown" one wins over an invalid severity.
    alert = parse(cap(infos=info(severity="Grave", headline="bad") + info(severity="Unknown", headline="ok")))
    assert isinstance(alert, Alert) and alert.title == "ok" and alert.level == "info"


def test_language_choice_without_a_preferred_language_and_with_regional_preferences() -> None:
    de_minor, es_extreme = info(language="de-DE", severity="Minor"), info(language="es-ES", severity="Extreme")
    alert = parse(cap(infos=de_minor + es_extreme))
    assert isinstance(alert, Alert) and alert.level == "info"  # the first block's language only
    # A block without <language> is en-US (CAP's default), which "en" prefers.
    no_lang = info(language="", severity="Extreme")
    alert = parse(cap(infos=de_minor + no_lang), config=AlertsConfig(languages=("en",)))
    assert isinstance(alert, Alert) and alert.level == "critical"
    # A regional preference (fr-ca) takes a block in the plain language (fr).
    alert = parse(cap(infos=de_minor + info(language="fr", severity="Extreme")),
                  config=AlertsConfig(languages=("fr-ca",)))
    assert isinstance(alert, Alert) and alert.level == "critical"


def test_body_paragraphs_and_the_cut_at_exactly_max_body() -> None:
    alert = parse(cap(infos=info(description="Premier   paragraphe\n  sur deux lignes.\n\n  Second.",
                                 instruction=None)))
    assert isinstance(alert, Alert) and alert.body == "Premier paragraphe sur deux lignes.\nSecond."
    limit = AlertsConfig().max_body
    exact = "a" * limit
    alert = parse(cap(infos=info(description=exact, instruction=None)))
    assert isinstance(alert, Alert) and alert.body == exact  # fits: not cut
    spaced = "b" * (limit - 2) + " cccc"  # the cut falls just after the space
    alert = parse(cap(infos=info(description=spaced, instruction=None)))
    assert isinstance(alert, Alert) and alert.body == "b" * (limit - 2) + "…"  # no space before the ellipsis
    assert len(alert.body) <= limit


def test_an_empty_circle_counts_as_absent() -> None:
    payload = cap(infos=info(area="<circle></circle><circle> </circle>"))
    assert isinstance(parse(payload, location=(10.0, 10.0)), Alert)


def test_a_block_without_severity_ranks_as_unknown_so_the_first_one_wins() -> None:
    no_severity = info(headline="premier").replace("<severity>Severe</severity>", "")
    alert = parse(cap(infos=no_severity + info(severity="Unknown", headline="second")))
    assert isinstance(alert, Alert) and alert.title == "premier"

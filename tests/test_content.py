"""Playlist parsing and validation (CONTRACT §4)."""

import json
from datetime import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.content import ImageSlide, TextSlide, parse_playlist, playlist_from_data
from player.errors import ContentError

SHA = "a" * 64


def good(**over):
    data = {
        "id": "hiver-2026", "version": 3, "layout": "landscape",
        "slides": [
            {"id": "marche", "type": "text", "duration": 8, "title": "Marché de Noël",
             "body": "Place de la Mairie\ndu 12 au 24 décembre",
             "style": {"background": "#003366", "color": "#ffffff", "align": "center"}},
            {"id": "affiche", "type": "image", "duration": 10, "asset": f"sha256:{SHA}",
             "url": "https://cms.example/affiche.png", "fit": "contain",
             "schedule": {"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-25T00:00:00+01:00",
                          "days": ["sat", "sun"], "hours": ["08:00-12:00", "14:00-19:00"]}},
        ],
        "ticker": ["Collecte des encombrants jeudi 3 décembre"],
    }
    data.update(over)
    return data


def errors_of(data) -> list[str]:
    with pytest.raises(ContentError) as info:
        playlist_from_data(data)
    return info.value.errors


def test_contract_example_parses():
    p = parse_playlist(json.dumps(good()).encode())
    assert (p.id, p.version, p.layout) == ("hiver-2026", 3, "landscape")
    text, image = p.slides
    assert isinstance(text, TextSlide) and text.style.background == (0, 0x33, 0x66)
    assert text.body.splitlines() == ["Place de la Mairie", "du 12 au 24 décembre"]
    assert isinstance(image, ImageSlide) and image.asset == SHA and image.fit == "contain"
    assert image.schedule.days == frozenset({5, 6})
    assert image.schedule.hours == ((time(8), time(12)), (time(14), time(19)))
    assert p.assets() == {SHA}
    assert p.ticker == ("Collecte des encombrants jeudi 3 décembre",)


def test_defaults():
    p = playlist_from_data({"id": "a", "version": 0, "slides": [{"id": "s", "type": "text", "body": "x"}]})
    assert p.slides[0].duration == 10.0 and p.slides[0].style.align == "center"


def test_every_error_is_reported_with_its_path():
    data = good(version=-1, extra=1)
    data["slides"][0]["duration"] = 0
    data["slides"][0]["style"]["color"] = "white"
    data["slides"][1]["fit"] = "contian"
    data["slides"][1]["url"] = "file:///etc/passwd"
    errs = errors_of(data)
    assert "extra: unknown key" in errs
    assert any(e.startswith("version: must be between 0") for e in errs)
    assert any(e.startswith("slides[0].duration: must be greater than 0") for e in errs)
    assert any(e.startswith("slides[0].style.color:") for e in errs)
    assert any(e.startswith("slides[1].fit:") and 'did you mean "contain"' in e for e in errs)
    assert any(e.startswith("slides[1].url: only http and https") for e in errs)


@pytest.mark.parametrize("mutate,fragment", [
    (lambda d: d["slides"].append(dict(d["slides"][0])), "duplicate slide id"),
    (lambda d: d["slides"][0].update(type="video"), "slides[0].type: expected one of text, image"),
    (lambda d: d["slides"][1].update(asset="sha256:" + "A" * 64), "slides[1].asset"),
    (lambda d: d["slides"][1]["schedule"].update(days=["lun"]), "slides[1].schedule.days[0]"),
    (lambda d: d["slides"][1]["schedule"].update(hours=["8h-12h"]), 'expected "HH:MM-HH:MM"'),
    (lambda d: d["slides"][1]["schedule"].update(start="2026-12-01T00:00:00"), "with an offset"),
    (lambda d: d["slides"][1]["schedule"].update(end="2026-11-01T00:00:00Z"), "must be after start"),
    (lambda d: d.update(slides=[]), "slides: needs at least 1 item"),
    (lambda d: d.pop("id"), "id: required"),
    (lambda d: d["slides"][0].update(body=7), "slides[0].body: expected a string, got 7"),
    (lambda d: d["slides"][0].update(title="", body=""), "needs a title or a body"),
    (lambda d: d["slides"][1].update(title="x"), "slides[1].title: unknown key"),
])
def test_specific_errors(mutate, fragment):
    data = good()
    mutate(data)
    assert any(fragment in e for e in errors_of(data)), errors_of(data)


@pytest.mark.parametrize("payload,fragment", [
    (b"\xff\xfe{", "not valid UTF-8"),
    (b"{\"id\": ", "not valid JSON"),
    (b"[1, 2]", "expected a mapping"),
    (b'{"id": "a", "version": NaN, "slides": []}', "not valid JSON"),
    (b"[" * 100000, "not valid JSON"),
])
def test_bad_payloads(payload, fragment):
    with pytest.raises(ContentError) as info:
        parse_playlist(payload)
    assert any(fragment in e for e in info.value.errors)


def test_size_cap():
    with pytest.raises(ContentError, match="too large"):
        parse_playlist(json.dumps(good()).encode(), max_bytes=100)


def test_unknown_layout_when_known_set_given():
    with pytest.raises(ContentError, match="unknown layout"):
        playlist_from_data(good(layout="paysage"), layouts=frozenset({"landscape"}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_rejected_cleanly_or_valid(value):
    try:
        playlist_from_data(value)
    except ContentError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["id", "version", "layout", "slides", "ticker"]), json_values)
def test_mutated_playlist_never_crashes(key, value):
    data = good()
    data[key] = value
    try:
        playlist_from_data(data)
    except ContentError as exc:
        assert exc.errors

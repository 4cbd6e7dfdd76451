"""Slides' language and visible text (validation), and panel.language (config)."""

from __future__ import annotations

from typing import Any

import pytest

from player.config import config_from_data
from player.content import TextSlide, language_problem, normalize_language, playlist_from_data, visible
from player.errors import ConfigError, ContentError

SHA = "a" * 64


def playlist(*slides: dict[str, Any]) -> dict[str, Any]:
    return {"id": "hiver", "version": 1, "slides": list(slides)}


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ContentError) as info:
        playlist_from_data(data)
    return info.value.errors


# ----------------------------------------------------------------------------- lang


@pytest.mark.parametrize("tag, kept", [
    ("fr", "fr"), ("en", "en"), ("de", "de"), ("FR-ca", "fr-CA"), ("sr-latn-rs", "sr-Latn-RS"),
    ("gsw", "gsw"), ("es-419", "es-419"), ("br", "br"), ("oc", "oc"),
])
def test_a_slide_names_its_language(tag: str, kept: str) -> None:
    parsed = playlist_from_data(playlist({"id": "a", "type": "text", "title": "Hello", "lang": tag}))
    slide = parsed.slides[0]
    assert isinstance(slide, TextSlide) and slide.lang == kept


def test_without_lang_a_slide_takes_the_panels() -> None:
    slide = playlist_from_data(playlist({"id": "a", "type": "text", "title": "Bonjour"})).slides[0]
    assert isinstance(slide, TextSlide) and slide.lang is None


@pytest.mark.parametrize("tag, says", [
    ("french", 'expected a language tag such as "fr", "en", "de" or "fr-CA" (BCP 47), got "french"'),
    ("fra", '(use "fr")'),
    ("eng", '(use "en")'),
    ("fr_FR", 'got "fr_FR"'),
    ("xx", 'unknown language "xx" in "xx"'),
    ("", "must not be empty"),
    ("fr-", 'got "fr-"'),
])
def test_a_bad_lang_is_refused_clearly(tag: str, says: str) -> None:
    errors = errors_of(playlist({"id": "a", "type": "text", "title": "Hello", "lang": tag}))
    assert len(errors) == 1 and errors[0].startswith("slides[0].lang: ") and says in errors[0], errors


def test_lang_must_be_a_string_and_only_on_text_slides() -> None:
    assert errors_of(playlist({"id": "a", "type": "text", "title": "Hi", "lang": 5})) == \
        ["slides[0].lang: expected a string, got 5"]
    errors = errors_of(playlist({"id": "b", "type": "image", "asset": f"sha256:{SHA}", "lang": "fr"}))
    assert len(errors) == 1 and "lang" in errors[0]


def test_language_helpers() -> None:
    assert language_problem("fr") is None and language_problem("pt-BR") is None
    assert (language_problem("fe") or "").startswith('unknown language "fe"')
    assert normalize_language("EN-gb") == "en-GB"


# ---------------------------------------------------------------------- visible text


@pytest.mark.parametrize("title, body", [
    ("", ""),
    ("   ", "\n\t "),
    ("\u00a0\u202f", "\u2009"),  # no-break, narrow no-break and thin spaces
    ("\u200b", "\u200d\ufeff"),  # zero-width space, joiner, byte-order mark
    ("\u00ad", "\u3164"),  # soft hyphen, Hangul filler
])
def test_a_text_slide_with_nothing_visible_is_refused_naming_it(title: str, body: str) -> None:
    errors = errors_of(playlist({"id": "ok", "type": "text", "title": "Bonjour"},
                                {"id": "vide", "type": "text", "title": title, "body": body}))
    assert len(errors) == 1, errors
    assert errors[0].startswith('slides[1]: text slide "vide" needs a title or a body with visible text')


def test_the_blank_slide_is_reported_next_to_other_problems() -> None:
    errors = errors_of(playlist({"id": "a", "type": "text", "title": "x", "style": {"align": "middle"}},
                                {"id": "b", "type": "text", "body": " "}))
    assert any(e.startswith("slides[0].style.align") for e in errors)
    assert any(e.startswith('slides[1]: text slide "b" needs a title or a body') for e in errors)


def test_visible_text_passes() -> None:
    for title, body in (("A", ""), ("", "·"), ("\u200b", "1"), ("", "😀"), ("", "«\u00a0»")):
        parsed = playlist_from_data(playlist({"id": "a", "type": "text", "title": title, "body": body}))
        assert parsed.slides[0].id == "a"
    assert visible("x") and not visible("\u00a0\u200b\n")


# -------------------------------------------------------------------- panel.language


BASE: dict[str, Any] = {"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]}}


def test_panel_language_defaults_to_french() -> None:
    assert config_from_data(BASE).panel.language == "fr"


def test_panel_language_is_read_and_checked() -> None:
    cfg = config_from_data({**BASE, "panel": {"id": "p1", "language": "en-gb"}})
    assert cfg.panel.language == "en-GB"
    with pytest.raises(ConfigError) as info:
        config_from_data({**BASE, "panel": {"id": "p1", "language": "francais"}})
    assert any(e.startswith("panel.language: expected a language tag") for e in info.value.errors)

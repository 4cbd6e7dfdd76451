"""Playlists and slides (CONTRACT §4): parse and validate wire messages.

Everything here is pure: bytes or decoded JSON in, frozen objects or a
:class:`~player.errors.ContentError` listing every problem out.

Example::

    playlist = parse_playlist(b'{"id": "hiver", "version": 1, "slides": '
                              b'[{"id": "a", "type": "text", "title": "Bonjour"}]}')
    playlist.slides[0].duration   # 10.0
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Union

from .errors import ContentError
from .validate import Node, Problems, describe

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SHA_PATTERN = r"sha256:[0-9a-f]{64}"
COLOR_PATTERN = r"#[0-9a-fA-F]{6}"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALIGNS = ("left", "center", "right")
FITS = ("contain", "cover", "stretch")
DEFAULT_DURATION = 10.0
MAX_SLIDES = 500
MAX_TEXT = 4000
MAX_TICKER_ITEMS = 50

RGB = tuple[int, int, int]

DEFAULT_LANGUAGE = "fr"
# ISO 639-1: the two-letter language codes a BCP 47 tag starts with.
ISO_639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii
ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi
mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw
sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk
ur uz ve vi vo wa wo xh yi yo za zh zu""".split())
# Three-letter codes (ISO 639-2) of languages that have a two-letter one: BCP 47 uses the latter.
_TWO_LETTER_OF = {"fra": "fr", "fre": "fr", "eng": "en", "deu": "de", "ger": "de", "ita": "it", "spa": "es",
                  "por": "pt", "nld": "nl", "dut": "nl", "bre": "br", "eus": "eu", "baq": "eu", "cat": "ca",
                  "cos": "co", "oci": "oc", "ara": "ar", "tur": "tr", "pol": "pl", "rus": "ru", "ukr": "uk",
                  "ron": "ro", "rum": "ro", "zho": "zh", "chi": "zh"}
_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|\d{3}))?")
# Characters that show nothing although Unicode does not class them as spaces or format
# characters (Hangul fillers, the blank Braille pattern).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def language_problem(tag: str) -> str | None:
    """Why ``tag`` is not a language tag the panel accepts, or None when it is: a BCP 47
    tag made of a language (ISO 639-1 two letters, or three letters for a language with no
    two-letter code), an optional script and an optional region: ``fr``, ``en``, ``de``,
    ``fr-CA``, ``sr-Latn-RS``, ``gsw``."""
    example = 'a language tag such as "fr", "en", "de" or "fr-CA" (BCP 47)'
    m = _LANGUAGE_TAG.fullmatch(tag)
    if m is None:
        return f"expected {example}, got {describe(tag)}"
    primary = m.group(1).lower()
    if primary in _TWO_LETTER_OF:
        return f'expected {example}, got {describe(tag)} (use "{_TWO_LETTER_OF[primary]}")'
    if len(primary) == 2 and primary not in ISO_639_1:
        return f"unknown language {describe(m.group(1))} in {describe(tag)}; expected {example}"
    return None


def normalize_language(tag: str) -> str:
    """A valid tag (:func:`language_problem`) in its usual case: ``FR-ca`` → ``fr-CA``."""
    m = _LANGUAGE_TAG.fullmatch(tag)
    if m is None:
        return tag
    parts = [m.group(1).lower()]
    if m.group(2):
        parts.append(m.group(2).title())
    if m.group(3):
        parts.append(m.group(3).upper())
    return "-".join(parts)


def visible(text: str) -> bool:
    """True when ``text`` shows something: a character other than spaces (no-break ones
    too), line breaks, format characters (zero-width spaces and joiners, soft hyphens,
    byte-order marks) and other characters that draw nothing."""
    return any(not c.isspace() and unicodedata.category(c)[0] not in "ZC" and c not in _BLANK_LETTERS
               for c in text)


def parse_color(text: str) -> RGB:
    """``"#003366"`` → ``(0, 51, 102)``."""
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


@dataclass(frozen=True)
class Style:
    background: RGB = (0, 0, 0)
    color: RGB = (255, 255, 255)
    align: str = "center"


@dataclass(frozen=True)
class Schedule:
    """When a slide may play; every part optional (``None`` = no restriction).

    ``start`` is inclusive and ``end`` exclusive (aware datetimes); ``days`` are
    weekday numbers (0 = Monday); ``hours`` are local-time windows, where an end
    not after its start crosses midnight (``22:00-02:00``) and ``24:00`` means
    the end of the day.
    """

    start: datetime | None = None
    end: datetime | None = None
    days: frozenset[int] | None = None
    hours: tuple[tuple[time, time | None], ...] | None = None


@dataclass(frozen=True)
class TextSlide:
    id: str
    title: str = ""
    body: str = ""
    style: Style = field(default_factory=Style)
    duration: float = DEFAULT_DURATION
    schedule: Schedule | None = None
    type: str = "text"
    lang: str | None = None  # BCP 47 tag; None: the panel's (panel.language)


@dataclass(frozen=True)
class ImageSlide:
    id: str
    asset: str  # 64 lowercase hex digits (without the "sha256:" prefix)
    url: str | None = None
    fit: str = "contain"
    duration: float = DEFAULT_DURATION
    schedule: Schedule | None = None
    type: str = "image"


Slide = Union[TextSlide, ImageSlide]


@dataclass(frozen=True)
class Playlist:
    id: str
    version: int
    slides: tuple[Slide, ...]
    layout: str | None = None
    ticker: tuple[str, ...] = ()

    def assets(self) -> frozenset[str]:
        """The sha256 hex digests of every image this playlist needs."""
        return frozenset(s.asset for s in self.slides if isinstance(s, ImageSlide))

    def identity(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version}


def decode_json(payload: bytes | str, what: str, max_bytes: int | None = None) -> Any:
    """Decode a UTF-8 JSON payload, raising :class:`ContentError` with a clear reason."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if max_bytes is not None and len(payload) > max_bytes:
        raise ContentError([f"payload too large ({len(payload)} bytes, at most {max_bytes})"], what)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError([f"payload is not valid UTF-8 (byte {exc.start})"], what) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ContentError([f"payload is not valid JSON ({exc})"], what) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_time_of_day(text: str) -> time | None:
    """``"08:30"`` → ``time(8, 30)``; ``"24:00"`` → ``None`` (end of day)."""
    m = re.fullmatch(r"([01]\d|2[0-4]):([0-5]\d)", text)
    if not m:
        raise ValueError(text)
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 24:
        if minute:
            raise ValueError(text)
        return None
    return time(hour, minute)


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time that must carry an offset (``Z`` or ``+01:00``)."""
    if not isinstance(text, str) or not re.match(r"\d{4}-\d{2}-\d{2}T", text):
        raise ValueError(text)
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value


def _datetime(node: Node, key: str) -> datetime | None:
    if not node.has(key):
        return None
    raw = node.value[key]
    try:
        return parse_datetime(raw)
    except (ValueError, TypeError):
        node.problems.add(f"{node.path}.{key}",
                          f"expected an ISO 8601 date-time with an offset, got {describe(raw)}")
        return None


def parse_days(node: Node, key: str = "days") -> frozenset[int] | None:
    """``days: [mon, …, sun]`` (any case) as weekday numbers (0 = Monday); None when absent.
    Unknown names go to ``node.problems``, each with its key path."""
    day_nodes = node.items(key, None, min_items=1, max_items=7)
    if day_nodes is None:
        return None
    picked = set()
    for d in day_nodes:
        name = d.as_string()
        if name is None:
            continue
        if name.lower() not in DAYS:
            node.problems.add(d.path, f"expected one of {', '.join(DAYS)}, got {describe(name)}")
        else:
            picked.add(DAYS.index(name.lower()))
    return frozenset(picked)


def _schedule(node: Node) -> Schedule | None:
    if node.value is None:
        return None
    if not node.is_mapping({"start", "end", "days", "hours"}):
        return None
    start, end = _datetime(node, "start"), _datetime(node, "end")
    if start and end and end <= start:
        node.problems.add(f"{node.path}.end", "must be after start")
    days = parse_days(node)
    hours = None
    hour_nodes = node.items("hours", None, min_items=1, max_items=24)
    if hour_nodes is not None:
        windows = []
        for h in hour_nodes:
            text = h.as_string()
            if text is None:
                continue
            try:
                a, b = text.split("-")
                t0, t1 = parse_time_of_day(a.strip()), parse_time_of_day(b.strip())
                if t0 is None:
                    raise ValueError(text)
                windows.append((t0, t1))
            except ValueError:
                node.problems.add(h.path, f'expected "HH:MM-HH:MM", got {describe(text)}')
        hours = tuple(windows)
    return Schedule(start=start, end=end, days=days, hours=hours)


def _slide(node: Node) -> Slide | None:
    common = {"id", "type", "duration", "schedule"}
    if not isinstance(node.value, dict):
        node.problems.add(node.path, f"expected a mapping, got {describe(node.value)}")
        return None
    kind = node.string("type", choices=("text", "image"))
    allowed = common | ({"title", "body", "style", "lang"} if kind == "text" else
                        {"asset", "url", "fit"} if kind == "image" else set(node.value))
    node.is_mapping(allowed)
    slide_id = node.string("id", pattern=ID_PATTERN)
    duration = node.number("duration", DEFAULT_DURATION, minimum=0, maximum=86400, exclusive_minimum=True)
    schedule = _schedule(node.child("schedule"))
    if kind == "text":
        before = len(node.problems.errors)
        title = node.string("title", "", max_length=MAX_TEXT, allow_empty=True)
        body = node.string("body", "", max_length=MAX_TEXT, allow_empty=True)
        if len(node.problems.errors) == before and not (visible(title or "") or visible(body or "")):
            shown = f"text slide {describe(slide_id)}" if slide_id is not None else "a text slide"
            blank = "are empty" if not (title or body) else "show nothing (only spaces or invisible characters)"
            node.problems.add(node.path, f"{shown} needs a title or a body with visible text: its title and body "
                                         f"{blank}")
        lang = node.string("lang", None, max_length=35)
        if lang is not None:
            problem = language_problem(lang)
            if problem:
                node.problems.add(f"{node.path}.lang", problem)
                lang = None
            else:
                lang = normalize_language(lang)
        st = node.section("style", {"background", "color", "align"})
        background = st.string("background", "#000000", pattern=COLOR_PATTERN)
        color = st.string("color", "#ffffff", pattern=COLOR_PATTERN)
        align = st.string("align", "center", choices=ALIGNS)
        if slide_id is None:
            return None
        return TextSlide(id=slide_id, title=title or "", body=body or "",
                         style=Style(parse_color(background or "#000000"), parse_color(color or "#ffffff"),
                                     align or "center"),
                         duration=float(duration or DEFAULT_DURATION), schedule=schedule, lang=lang)
    if kind == "image":
        asset = node.string("asset", pattern=SHA_PATTERN)
        url = node.string("url", None, max_length=2048)
        if url is not None and not re.match(r"https?://[^\s/]+", url, re.IGNORECASE):
            node.problems.add(f"{node.path}.url", f"only http and https URLs are accepted, got {describe(url)}")
            url = None
        fit = node.string("fit", "contain", choices=FITS)
        if slide_id is None or asset is None:
            return None
        return ImageSlide(id=slide_id, asset=asset[7:], url=url, fit=fit or "contain",
                          duration=float(duration or DEFAULT_DURATION), schedule=schedule)
    return None


def playlist_from_data(data: Any, *, layouts: frozenset[str] | None = None) -> Playlist:
    """Validate decoded JSON as a playlist; raises :class:`ContentError` with every problem.

    ``layouts``, when given, is the set of layout names the panel knows.
    """
    problems = Problems()
    root = Node(data, "", problems)
    if not root.is_mapping({"id", "version", "layout", "slides", "ticker"}):
        raise ContentError(problems.errors, "playlist")
    pid = root.string("id", pattern=ID_PATTERN)
    version = root.integer("version", minimum=0, maximum=2**53)
    layout = root.string("layout", None, pattern=r"[a-z0-9][a-z0-9_-]{0,63}")
    if layout is not None and layouts is not None and layout not in layouts:
        problems.add("layout", f"unknown layout {describe(layout)}; known: {', '.join(sorted(layouts))}")
    slides: list[Slide] = []
    seen: set[str] = set()
    for node in root.items("slides", min_items=1, max_items=MAX_SLIDES) or []:
        slide = _slide(node)
        if slide is None:
            continue
        if slide.id in seen:
            problems.add(f"{node.path}.id", f"duplicate slide id {describe(slide.id)}")
        seen.add(slide.id)
        slides.append(slide)
    ticker: list[str] = []
    for node in root.items("ticker", None, max_items=MAX_TICKER_ITEMS) or []:
        text = node.as_string(max_length=MAX_TEXT)
        if text:
            ticker.append(text)
    if problems:
        raise ContentError(problems.errors, "playlist")
    assert pid is not None and version is not None
    return Playlist(id=pid, version=version, slides=tuple(slides), layout=layout, ticker=tuple(ticker))


def parse_playlist(payload: bytes | str, *, max_bytes: int | None = None,
                   layouts: frozenset[str] | None = None) -> Playlist:
    """Parse a playlist message (UTF-8 JSON bytes)."""
    return playlist_from_data(decode_json(payload, "playlist", max_bytes), layouts=layouts)

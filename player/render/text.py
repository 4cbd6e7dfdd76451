"""Text blocks sized to their zone: French typography, wrapping, auto-fit, alignment.

    painter = TextPainter(open_face(None))
    painter.draw(screen, zone, "Marché de Noël", "Place de la Mairie\\ndu 12 au 24 décembre",
                 (255, 255, 255), align="center")

:meth:`TextPainter.fit` chooses the largest size at which the whole block fits, the title
about 1.5 times the body. Lines wrap at spaces; an explicit ``\\n`` always starts a new
line; a word is broken only when it would not fit whole even at the smallest size (the
block then takes the largest size at which the pieces fit).

Text is set by the rules of its language (``lang``, a BCP 47 tag, ``fr`` by default;
:meth:`TextPainter.for_lang`): French spacing for French only (:func:`typography_for`);
lines never break between a number and its unit, in times, dates and phone numbers, nor
after a dash or a one- or two-letter word when a better break exists
(:func:`break_rules`); an address too wide for a line is cut after its slashes, keeping
every character (:func:`url_breaks`); long words are hyphenated by the language's
patterns (pyphen, :func:`hyphenation_points`).

When nothing fits at the smallest size, :meth:`TextPainter.fit` shows the block at the
smallest size and shortened rather than overflowing: lines too wide are cut and end with
"…", lines that do not fit vertically are dropped (title lines are kept first) and the
last line kept ends with "…". So a fitted block never exceeds its zone, whatever the text.

Slides must not lose words: :meth:`TextPainter.paginate` splits such a block into pages
that each fit, and :meth:`TextPainter.scroll_line` sets it on one line to be scrolled
(see the compositor). ``min_px`` keeps every size at or above a legible one
(:meth:`FontFace.legible_px`).
"""

from __future__ import annotations

import bisect
import copy
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import pygame

from player.render.fonts import SAFE_WIDTH, Color, FontFace

if TYPE_CHECKING:
    import pyphen

NNBSP = "\u202f"  # narrow no-break space: before ; ! ?
NBSP = "\u00a0"  # no-break space: before : and inside « »
ELLIPSIS = "…"
TITLE_RATIO = 1.5
LINE_CACHE_BYTES = 2 * 2**20  # rendered lines kept per painter; re-rendering one costs a few ms
ESTIMATE_PX = 64  # the size whose metrics, scaled, guess the others' (see TextPainter._search)
ESTIMATE_FROM = 16  # fewer sizes than this to choose from: plain bisection is as quick

_HSPACE = "[ \t\u00a0\u202f\u2009\u2006]"
# The lookbehinds start a match only where a run of letters (or of address characters)
# starts, as the leftmost match would anyway: without them a long word costs the search
# a time quadratic in its length (minutes for a 200,000-character word).
_URL = re.compile(r"(?:(?<![a-zA-Z])[a-zA-Z][a-zA-Z0-9+.-]*://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+")
# High punctuation after a word: the spaces before it (if any) become one narrow no-break
# space. Only when it ends the word, so "?q=1" and "18:30" are left alone; "?!" stays tight.
_HIGH = re.compile(
    rf"(?<=[^\s;:!?«]){_HSPACE}*([;!?])(?=$|\s|[;:!?»)\]\"'’.,…])"
)
_COLON = re.compile(rf"(?<=[^\s;:!?«]){_HSPACE}*(:)(?=$|\s|[;:!?»)\]\"'’])")
_OPEN_QUOTE = re.compile(rf"«{_HSPACE}*(?=[^\s»])")
_CLOSE_QUOTE = re.compile(rf"(?<=[^\s«]){_HSPACE}*»")
_APOSTROPHE = re.compile(r"(?<=[^\W\d_])'")


def last_true(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest ``i`` in ``lo..hi`` with ``ok(i)``, for an ``ok`` that is true up to
    some point and false after it (a size that fits, then sizes that do not); ``lo``
    when none is, without calling ``ok(lo)``: the caller decides what that means."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüÿœæ")
_ONSETS = frozenset({"bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gn", "gr", "ph", "pl", "pr", "qu",
                     "th", "tr", "vr"})


def _syllable_cut(word: str, n: int) -> bool:
    """True when ``word`` may be hyphenated before ``word[n]`` by French syllables: before a
    consonant (or a consonant pair that starts syllables: pr, bl, ch...) followed by a
    vowel, as in dé-pla-ce-ments, com-pré-hen-sion."""
    w = word.lower()
    if len(w) <= n + 1 or w[n] in _VOWELS:
        return False
    if w[n + 1] in _VOWELS:
        return w[n - 1:n + 1] not in _ONSETS and w[n - 1] != "q"
    return w[n:n + 2] in _ONSETS and len(w) > n + 2 and w[n + 2] in _VOWELS


def _outside_urls(pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str) -> str:
    spans = [m.span() for m in _URL.finditer(text)] if ("://" in text or "www." in text or "@" in text) else []

    def sub(m: re.Match[str]) -> str:
        if any(a <= m.start() < b or a < m.end() <= b for a, b in spans):
            return m.group(0)
        return repl(m)

    return pattern.sub(sub, text)


def french_typography(text: str) -> str:
    """French spacing and apostrophes: what a typesetter would do, and no more.

    - narrow no-break space (U+202F) before ``; ! ?``, no-break space (U+00A0) before
      ``:``, replacing any spaces typed there;
    - no-break space inside « »;
    - straight apostrophe after a letter becomes ’ (``l'Isère`` → ``l’Isère``).

    Left alone: URLs and e-mail addresses, times (``18:30``), punctuation inside a word
    (``?q=1``), at the start of a line, or following other punctuation (``?!``).
    Idempotent: applying it twice changes nothing more.

    >>> french_typography("Attention : crue ! Voir l'affiche") == (
    ...     "Attention\\u00a0: crue\\u202f! Voir l’affiche")
    True
    """
    text = _outside_urls(_HIGH, lambda m: NNBSP + m.group(1), text)
    text = _outside_urls(_COLON, lambda m: NBSP + m.group(1), text)
    text = _outside_urls(_OPEN_QUOTE, lambda m: "«" + NBSP, text)
    text = _outside_urls(_CLOSE_QUOTE, lambda m: NBSP + "»", text)
    return _outside_urls(_APOSTROPHE, lambda m: "’", text)


DEFAULT_LANG = "fr"
"""The language of text with none given (``panel.language`` overrides it)."""


def primary_language(lang: str | None) -> str:
    """The primary subtag of a BCP 47 tag, in lower case: ``"fr-CA"`` → ``"fr"``;
    :data:`DEFAULT_LANG` for None or ``""``."""
    return (lang or DEFAULT_LANG).replace("_", "-").split("-")[0].lower()


def apostrophes(text: str) -> str:
    """Straight apostrophes after a letter become ’ (``don't`` → ``don’t``); nothing else
    changes: the typography of text in a language other than French."""
    return _outside_urls(_APOSTROPHE, lambda m: "’", text)


def typography_for(lang: str | None) -> Callable[[str], str]:
    """The rewriting that suits text in ``lang``: :func:`french_typography` for French
    (``fr``, ``fr-CA``...), else :func:`apostrophes` only: an English "leave now !" keeps
    its spaces as typed."""
    return french_typography if primary_language(lang) == "fr" else apostrophes


# --- where a line may break -------------------------------------------------------------
#
# Lines break at plain spaces, but not at every one: between two words the glue is
# BREAK (any line break), SOFT (a break only when the words joined do not fit a line by
# themselves: a short word or a dash kept with the next word) or HARD (a break only where
# words must be cut anyway: a number and its unit, a time, a phone number). The text keeps
# its plain spaces; only the choice of the spaces lines break at changes.

BREAK, SOFT, HARD = 0, 1, 2
_LEADING = "([{«\"'‘“"
_TRAILING = "\u00a0\u202f.,;:!?)]}»\"'’”…"
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*(?:er|re|ère|e|è|ème|èmes|es|nd|nde|st|rd|th)?", re.IGNORECASE)
# Units written after a number, in every language: currencies, percent, SI units.
_UNITS = frozenset({
    "€", "$", "£", "¥", "%", "‰", "°", "°C", "°F", "EUR", "CHF", "USD",
    "km", "m", "cm", "mm", "µm", "kg", "g", "mg", "t", "l", "L", "ml", "mL", "cl", "cL", "dl",
    "ha", "m²", "m2", "m³", "m3", "km²", "km2", "km/h", "m/s", "kW", "kWh", "MW", "MWh", "W", "V",
    "Hz", "dB", "s", "ms", "mn", "min",
})
_UNITS_FR = frozenset({"h", "j", "an", "ans", "jour", "jours", "mois", "semaine", "semaines",
                       "heure", "heures", "minute", "minutes", "seconde", "secondes", "km/h", "€/mois",
                       "places", "personnes", "habitants"})
_UNITS_EN = frozenset({"am", "pm", "a.m.", "p.m.", "h", "hrs", "mph", "ft", "lb", "lbs", "mi", "oz"})
_MONTHS_FR = frozenset({"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                        "septembre", "octobre", "novembre", "décembre", "janv.", "févr.", "avr.",
                        "juil.", "sept.", "oct.", "nov.", "déc."})
_MONTHS_EN = frozenset({"january", "february", "march", "april", "may", "june", "july", "august",
                        "september", "october", "november", "december", "jan.", "feb.", "mar.", "apr.",
                        "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec."})
_BEFORE_NUMBER_FR = frozenset({"n°", "nº", "p.", "art.", "m.", "mme", "mlle", "dr", "st", "ste"})
_DASHES = frozenset({"–", "—", "―", "-", "−"})
_TWO_DIGITS = re.compile(r"\d\d")


def _bare(word: str) -> str:
    """``word`` without the punctuation around it: ``"(10"`` → ``"10"``, ``"€\u202f!"`` → ``"€"``."""
    return word.lstrip(_LEADING).rstrip(_TRAILING) or word


def _is_number(word: str) -> bool:
    return _NUMBER.fullmatch(word.lstrip(_LEADING).rstrip(_TRAILING)) is not None


def break_rules(words: Sequence[str], lang: str | None = None) -> list[int]:
    """The glue (:data:`BREAK`, :data:`SOFT`, :data:`HARD`) between each word of
    ``words`` and the next, by the typographic rules of ``lang``.

    HARD, in every language: a number and the unit after it (``10 €``, ``15 %``,
    ``12 km``). In French also ``19 h``, ``13 h 30``, ``3 décembre``, ``décembre 2026``,
    ``12 000``, ``n° 5``, ``M. Martin``, and phone numbers grouped by two
    (``04 76 12 34 56``, ``+33 4 76 12 34 56``); in English ``7 pm``, ``December 3``.
    SOFT, in every language: a dash and the word after it, a one- or two-letter word
    (``à``, ``de``, ``y``, ``a``, ``to``) and the word after it.

    >>> break_rules("samedi à 19 h".split())
    [0, 1, 2]
    """
    primary = primary_language(lang)
    french, english = primary == "fr", primary == "en"
    units = _UNITS | (_UNITS_FR if french else _UNITS_EN if english else frozenset())
    months = _MONTHS_FR if french else _MONTHS_EN if english else frozenset()
    n = len(words)
    glue = [BREAK] * max(0, n - 1)
    bare = [_bare(w) for w in words]
    number = [_is_number(w) for w in words]
    for i in range(n - 1):
        a, b = words[i], words[i + 1]
        if number[i] and (bare[i + 1] in units or bare[i + 1].lower() in months):
            glue[i] = HARD
        elif french and bare[i] == "h" and i and number[i - 1] and _TWO_DIGITS.fullmatch(bare[i + 1]):
            glue[i] = HARD  # 13 h 30
        elif bare[i].lower() in months and (re.fullmatch(r"\d{4}", bare[i + 1])
                                            or (english and number[i + 1])):
            glue[i] = HARD  # décembre 2026, December 3
        elif french and re.fullmatch(r"\d{1,3}", a) and re.fullmatch(r"\d{3}", bare[i + 1]):
            glue[i] = HARD  # 12 000
        elif french and a.lower() in _BEFORE_NUMBER_FR and (number[i + 1] or b[:1].isupper()):
            glue[i] = HARD  # n° 5, M. Martin
        elif a in _DASHES:
            glue[i] = SOFT
        elif len(a) <= 2 and a.isalpha() and not (i and glue[i - 1] == HARD and number[i - 1]):
            glue[i] = SOFT  # a short word, but not the unit of a number before it (19 h)
    if french:
        _glue_phone_numbers(words, glue)
    return glue


def _glue_phone_numbers(words: Sequence[str], glue: list[int]) -> None:
    """French phone numbers grouped by two: ``04 76 12 34 56``, ``+33 4 76 12 34 56``."""
    n = len(words)
    for i in range(n):
        w = words[i].lstrip(_LEADING)
        if re.fullmatch(r"0\d", w):
            start, pairs = i, 4
        elif w == "+33" and i + 1 < n and re.fullmatch(r"\d", words[i + 1]):
            start, pairs = i + 1, 4
        else:
            continue
        end = start + pairs
        if end >= n:
            continue
        middle = all(_TWO_DIGITS.fullmatch(words[k]) for k in range(start + 1, end))
        if middle and _TWO_DIGITS.fullmatch(_bare(words[end])):
            for k in range(i, end):
                glue[k] = HARD


@lru_cache(maxsize=512)
def _groups(paragraph: str, lang: str) -> tuple[tuple[str, ...], ...]:
    """``paragraph``'s words as groups kept on one line when they fit there (joined by
    SOFT or HARD glue), each group a tuple of runs joined by HARD glue (a run is its
    words with their spaces)."""
    words = [w for w in paragraph.split(" ") if w]
    if not words:
        return ()
    glue = break_rules(words, lang)
    groups: list[tuple[str, ...]] = []
    runs: list[str] = []
    run = [words[0]]
    for word, g in zip(words[1:], glue):
        if g == HARD:
            run.append(word)
            continue
        runs.append(" ".join(run))
        run = [word]
        if g == BREAK:
            groups.append(tuple(runs))
            runs = []
    runs.append(" ".join(run))
    groups.append(tuple(runs))
    return tuple(groups)


# --- long words and addresses -----------------------------------------------------------

_URL_WORD = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*://|www\.)\S+|[\w.+-]+@[\w-]+\.\S+|[\w-]+(?:\.[\w-]+)+/\S*")
_URL_BEFORE = frozenset(".?&#=-_@~%,;")


def is_url(word: str) -> bool:
    """True when ``word`` is a web or e-mail address (``https://…``, ``www.…``,
    ``mairie.example/page``, ``accueil@mairie.example``), with punctuation around it."""
    return _URL_WORD.fullmatch(word.lstrip(_LEADING).rstrip(".,;:!?)]}»\"'’…\u00a0\u202f")) is not None


def url_breaks(url: str) -> tuple[list[int], list[int]]:
    """Where an address may be cut, as lengths of the first piece: after a ``/`` (but
    not inside ``//``), the best; and before ``. ? & # = - _ @``, the others. No hyphen is
    added at either: the address reads the same once joined."""
    slashes = [i + 1 for i in range(len(url) - 1) if url[i] == "/" and url[i + 1] != "/"]
    others = [i for i in range(1, len(url)) if url[i] in _URL_BEFORE and url[i - 1] not in _URL_BEFORE]
    return slashes, others


_LETTER_RUN = re.compile(r"[^\W\d_]{5,64}")


@lru_cache(maxsize=16)
def _dictionary(lang: str) -> pyphen.Pyphen | None:
    """The hyphenation patterns of ``lang`` (a BCP 47 tag), None when pyphen has none.
    pyphen is imported here, the first time a word must be hyphenated: importing it costs
    the player about 3 MB, which most panels never need."""
    try:
        import pyphen
    except ImportError:  # pragma: no cover - a dependency; the syllable rule stands in
        return None
    found = pyphen.language_fallback(lang.replace("-", "_"))
    if found is None:
        return None
    # Two letters at least before a cut and three after, as French typesetters require.
    return pyphen.Pyphen(lang=found, left=2, right=3)


def hyphenation_points(word: str, lang: str | None = None) -> list[int] | None:
    """Where ``word`` may be hyphenated by ``lang``'s patterns (pyphen), as lengths of the
    first piece, ascending; None when there are no patterns for the language. Each run of
    letters is hyphenated on its own (``l’intercommunalité``, ``municipales\u00a0:``); runs
    longer than 64 letters are not words and get no points."""
    dic = _dictionary(lang or DEFAULT_LANG)
    if dic is None:
        return None
    points: list[int] = []
    for m in _LETTER_RUN.finditer(word):
        points.extend(m.start() + int(p) for p in dic.positions(m.group(0)))
    return points


PAGE_SEPARATOR = " – "
"""Between a slide's title and its body when they are set on one line to scroll."""


@dataclass(frozen=True)
class FittedText:
    """A block laid out for a zone: sizes in pixels, lines ready to render, total height."""

    title_px: int
    body_px: int
    title_lines: tuple[str, ...]
    body_lines: tuple[str, ...]
    height: int
    truncated: bool = False  # True when nothing fitted and the text was shortened

    def lines(self) -> list[tuple[str, int]]:
        """Every line with its size, title first."""
        return [(t, self.title_px) for t in self.title_lines] + [
            (b, self.body_px) for b in self.body_lines
        ]


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Least-recently-used values, at most ``limit`` of them, or with ``weight`` at most
    ``limit`` in all (rendered lines are weighed in bytes: one line of a full-screen
    clock is several megabytes, and a clock draws a new one every minute). A value
    heavier than the whole limit is handed back without being kept."""

    def __init__(self, limit: int, weight: Callable[[V], int] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self._weight = weight or (lambda _value: 1)
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        old = self._data.pop(key, None)
        if old is not None:
            self.used -= self._weight(old)
        size = self._weight(value)
        if size > self.limit:
            return value
        self._data[key] = value
        self.used += size
        while self.used > self.limit:
            _, evicted = self._data.popitem(last=False)
            self.used -= self._weight(evicted)
        return value


def _surface_bytes(surface: pygame.Surface) -> int:
    return surface.get_pitch() * surface.get_height()


def _clean(text: str) -> str:
    """Newlines normalised, tabs as spaces, outer blank space removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "\n".join(line.strip(" ") for line in text.strip().split("\n"))


def converted(surface: pygame.Surface, alpha: bool) -> pygame.Surface:
    """``surface`` in the display's pixel format when a display exists, else unchanged."""
    if pygame.display.get_init() and pygame.display.get_surface() is not None:
        return surface.convert_alpha() if alpha else surface.convert()
    return surface


class _ScaledMetrics:
    """A scalable font's metrics at any size, estimated from those at :data:`ESTIMATE_PX`
    scaled linearly: no glyph is loaded at a new size. Off by a pixel or two where
    hinting rounds differently, so only good for a first guess."""

    def __init__(self, face: FontFace) -> None:
        self.face = face
        self._widths: LRU[str, int] = LRU(4096)
        self._line = face.line_height(ESTIMATE_PX)

    def width(self, text: str, px: int) -> int:
        # A line is measured as its words and the spaces between them: the lines tried
        # while wrapping are new strings, their words are not.
        words = text.split(" ")
        total = self._word(" ") * (len(words) - 1) + sum(self._word(w) for w in words)
        return round(total * px / ESTIMATE_PX)

    def _word(self, word: str) -> int:
        w = self._widths.get(word)
        if w is None:
            w = self._widths.put(word, self.face.width(word, ESTIMATE_PX))
        return w

    def line_height(self, px: int) -> int:
        return round(self._line * px / ESTIMATE_PX)


class TextPainter:
    """Lays out and draws text with one face; caches layouts and rendered lines.

    ``antialias=False`` gives pure two-colour glyphs for LED matrices. ``line_spacing`` is
    the distance between baselines as a multiple of the line height. ``typography``
    rewrites text before layout (default :func:`french_typography`; None to keep it as is).
    ``min_px``: no text is laid out below this size (None: the face's smallest size,
    6 px for a scalable font); give ``face.legible_px(antialias)`` for text people must read.
    ``hyphenate``: a word too wide for the box is cut where a typesetter would, with a
    hyphen (see :meth:`wrap`), rather than anywhere without one.
    ``lang``: the language of the text (a BCP 47 tag, default ``fr``): it chooses the
    typography when ``typography`` is ``"auto"`` (:func:`typography_for`), the rules of
    where lines may break (:func:`break_rules`) and the hyphenation patterns.
    :meth:`for_lang` gives the same painter for text in another language.
    """

    def __init__(
        self,
        face: FontFace,
        antialias: bool = True,
        line_spacing: float = 1.15,
        typography: Callable[[str], str] | None | Literal["auto"] = "auto",
        min_px: int | None = None,
        hyphenate: bool = False,
        lang: str = DEFAULT_LANG,
    ) -> None:
        self.face = face
        self.antialias = antialias
        self.line_spacing = line_spacing
        self.lang = lang or DEFAULT_LANG
        self._auto_typography = typography == "auto"
        self.typography: Callable[[str], str] | None = (
            typography_for(self.lang) if typography == "auto" else typography)
        self.min_px = min_px
        self.hyphenate = hyphenate
        self._siblings: dict[str, TextPainter] = {self.lang: self}
        self.max_px: int | None = None  # see capped()
        self._capped: dict[tuple[str, int], TextPainter] = {}  # shared by the copies
        self._fit_cache: LRU[tuple[str, str, int, int], FittedText] = LRU(256)
        self._pages_cache: LRU[tuple[str, str, int, int, int], tuple[FittedText, ...]] = LRU(64)
        self._estimator: TextPainter | None = None
        self._lines: LRU[tuple[str, int, tuple[int, ...]], pygame.Surface] = LRU(LINE_CACHE_BYTES, _surface_bytes)

    def for_lang(self, lang: str | None) -> TextPainter:
        """This painter for text in ``lang`` (None: this painter's own language): same
        face, sizes and rendered lines, with the typography, line breaks and hyphenation
        of that language. Made once per language and kept."""
        if not lang or lang == self.lang:
            return self
        painter = self._siblings.get(lang)
        if painter is None:
            painter = copy.copy(self)
            painter.lang = lang
            if self._auto_typography:
                painter.typography = typography_for(lang)
            painter._fit_cache = LRU(256)
            painter._pages_cache = LRU(64)
            painter._estimator = None
            self._siblings[lang] = painter
        return painter

    def capped(self, px: int | None) -> TextPainter:
        """This painter laying text out at ``px`` or below (never under ``min_px``): for
        a body under a title set apart, in a header, at ``px``, so that the title is never
        smaller than the body. None: this painter. Made once per language and size."""
        if px is None:
            return self
        key = (self.lang, px)
        painter = self._capped.get(key)
        if painter is None:
            painter = copy.copy(self)
            painter.max_px = px
            painter._fit_cache = LRU(256)
            painter._pages_cache = LRU(64)
            painter._estimator = None
            self._capped[key] = painter
        return painter

    # --- measuring ----------------------------------------------------------------------

    def prepare(self, text: str) -> str:
        """``text`` cleaned and typeset as it will be laid out."""
        text = _clean(text)
        return self.typography(text) if self.typography else text

    def advance(self, px: int) -> int:
        """Distance in pixels from one line's top to the next one's at ``px``."""
        return round(self.face.line_height(px) * self.line_spacing)

    def block_height(self, lines: list[tuple[str, int]]) -> int:
        """Height of ``lines`` (text, px) stacked: advances, then the last line's own height."""
        if not lines:
            return 0
        return sum(self.advance(px) for _, px in lines[:-1]) + self.face.line_height(lines[-1][1])

    def _break_word(self, word: str, px: int, width: int, hyphen: bool = False) -> list[str]:
        """``word`` cut into pieces each as wide as fits (at least one character each).

        An address (:func:`is_url`) is cut where :func:`url_breaks` allows, never with a
        hyphen. With ``hyphen`` the cuts are a typesetter's: after a hyphen the word has
        (Saint-|Vincent), else where the language's hyphenation patterns allow
        (com-pré-hen-sion, by pyphen), else between two letters with two characters at
        least before and three letters or digits after, between French syllables when it
        can (dé-place-ments), marked with "-" (counted in the piece's width); anywhere
        only when no such cut fits. Every character of ``word`` is kept, in order."""
        if is_url(word):
            return self._break_url(word, px, width, anywhere=True) or [word]
        pieces = []
        if hyphen and len(word) > 1 and self.face.width(word, px) > width:
            points = hyphenation_points(word, self.lang)
            done = 0
            while len(word) > 1 and self.face.width(word, px) > width:
                local = None if points is None else [p - done for p in points if p > done]
                n = self._hyphen_cut(word, px, width, local)
                pieces.append(word[:n] if word[n - 1] == "-" else word[:n] + "-")
                word = word[n:]
                done += n
        while word:
            # The longest prefix that fits; one character at least.
            lo = last_true(1, len(word), lambda n: self.face.width(word[:n], px) <= width)
            while lo < len(word) and lo > 1 and unicodedata.combining(word[lo]):
                lo -= 1  # keep accents with their letter
            pieces.append(word[:lo])
            word = word[lo:]
        return pieces

    def _break_url(self, url: str, px: int, width: int, anywhere: bool) -> list[str] | None:
        """``url`` cut into pieces each no wider than ``width``, at the longest piece that
        fits at each cut: after a "/" when one fits, else before ``. ? & # = - _ @``
        (:func:`url_breaks`); when none fits, anywhere if ``anywhere``, else None.
        Joined, the pieces give ``url`` back."""
        fits = self.face.width
        pieces: list[str] = []
        while fits(url, px) > width:
            slashes, others = url_breaks(url)
            n = 0
            for cuts in (slashes, others):
                i = last_true(-1, len(cuts) - 1, lambda k: fits(url[:cuts[k]], px) <= width)
                if i >= 0:
                    n = cuts[i]
                    break
            if n == 0:
                if not anywhere:
                    return None
                n = last_true(1, len(url) - 1, lambda k: fits(url[:k], px) <= width)
            pieces.append(url[:n])
            url = url[n:]
        pieces.append(url)
        return pieces

    def _hyphen_cut(self, word: str, px: int, width: int, points: list[int] | None = None) -> int:
        """Where to cut ``word`` (too wide) for :meth:`_break_word` with hyphens: the length
        of the first piece. ``points``: where the language's patterns allow a hyphen (None:
        no patterns for it, the French syllable rule stands in when the text is French)."""
        fits = self.face.width
        after_hyphen = [i + 1 for i in range(1, len(word) - 1) if word[i] == "-"]
        kept = [n for n in after_hyphen if fits(word[:n], px) <= width]
        if kept:
            return kept[-1]
        longest = last_true(1, len(word) - 1, lambda n: fits(word[:n] + "-", px) <= width)
        if points:
            allowed = [n for n in points if 1 < n <= longest]
            if allowed:
                return allowed[-1]
        letters = [n for n in range(longest, 1, -1)
                   if word[n - 1].isalpha() and word[n].isalpha() and sum(c.isalnum() for c in word[n:]) >= 3]
        if points is None and primary_language(self.lang) == "fr":
            for n in letters:
                if _syllable_cut(word, n):
                    return n
        if letters:
            return letters[0]
        while longest > 1 and unicodedata.combining(word[longest]):
            longest -= 1  # keep accents with their letter
        return longest

    def _chunks(self, group: tuple[str, ...], px: int, width: int) -> list[tuple[str, ...]]:
        """The runs of a group too wide for a line, in chunks that each fit one (or single
        runs), chosen from the end so that a word keeps the short words before it
        (``et`` / ``un vide-grenier`` rather than ``et un`` / ``vide-grenier``)."""
        if len(group) > 32:  # not words, or not a group worth the search
            return [(run,) for run in group]
        chunks: list[tuple[str, ...]] = []
        end = len(group)
        while end > 0:
            start = end - 1
            while start > 0 and self.face.width(" ".join(group[start - 1:end]), px) <= width:
                start -= 1
            chunks.append(group[start:end])
            end = start
        return chunks[::-1]

    def wrap(self, text: str, px: int, width: int, break_words: bool, hyphen: bool | None = None) -> list[str] | None:
        """Lines of ``text`` no wider than ``width`` at ``px``; None when a word is too
        wide and ``break_words`` is False (True: it is cut, with hyphens when ``hyphen``,
        default :attr:`hyphenate`).

        Lines break only at plain spaces (never at no-break ones), and by the rules of
        :func:`break_rules` for the painter's language: words joined by SOFT glue (a short
        word or a dash and the next word) go to the next line together, and are parted
        only when together they do not fit a line; words joined by HARD glue (``19 h``,
        ``10 €``, ``04 76 12 34 56``) are parted only where words must be cut anyway
        (``break_words``). An address too wide for a line is cut at its slashes (see
        :meth:`_break_url`) even without ``break_words``."""
        if hyphen is None:
            hyphen = self.hyphenate
        fits = self.face.width
        lines: list[str] = []
        current = ""

        def place(piece: str) -> bool:
            """``piece`` added to the current line, or starting the next one; False
            when it does not fit a line by itself."""
            nonlocal current
            if current:
                candidate = f"{current} {piece}"
                if fits(candidate, px) <= width:
                    current = candidate
                    return True
                if fits(piece, px) <= width:
                    lines.append(current)
                    current = piece
                    return True
                return False
            if fits(piece, px) <= width:
                current = piece
                return True
            return False

        for paragraph in text.split("\n"):
            current = ""
            for group in _groups(paragraph, self.lang):
                if len(group) > 1 and place(" ".join(group)):
                    continue
                for chunk in self._chunks(group, px, width):
                    if len(chunk) > 1 and place(" ".join(chunk)):
                        continue  # (a chunk of several runs always fits a line)
                    run = chunk[0]
                    if place(run):
                        continue
                    words = run.split(" ")
                    if len(words) > 1 and not break_words:
                        return None
                    for word in words:
                        if place(word):
                            continue
                        pieces = self._break_url(word, px, width, anywhere=break_words) if is_url(word) else None
                        if pieces is None:
                            if not break_words:
                                return None
                            pieces = self._break_word(word, px, width, hyphen)
                        if current:
                            lines.append(current)
                        *full, current = pieces
                        lines.extend(full)
            lines.append(current)
        return lines

    def sizes(self, max_px: int) -> list[int]:
        """The sizes this painter uses up to ``max_px`` (and its own :attr:`max_px`), from
        ``min_px``, ascending; never empty."""
        if self.max_px is not None:
            max_px = min(max_px, self.max_px)
        return self.face.sizes(max_px, self.min_px)

    def _sizes(self, has_title: bool, has_body: bool, height: int) -> list[tuple[int, int]]:
        sizes = self.sizes(height)
        if has_title and has_body:
            pairs = []
            for body in sizes:
                # The largest size not above 1.5 × body (sizes is ascending).
                at = bisect.bisect_right(sizes, round(body * TITLE_RATIO)) - 1
                pairs.append((max(sizes[at], body), body))
            return pairs
        return [(s, 0) if has_title else (0, s) for s in sizes]

    def _layout(
        self, title: str, body: str, pair: tuple[int, int], width: int, break_words: bool,
        hyphen: bool | None = None,
    ) -> tuple[list[str], list[str]] | None:
        t_lines = self.wrap(title, pair[0], width, break_words, hyphen) if title else []
        b_lines = self.wrap(body, pair[1], width, break_words, hyphen) if body else []
        if t_lines is None or b_lines is None:
            return None
        return t_lines, b_lines

    def _fits(self, lines: tuple[list[str], list[str]] | None, pair: tuple[int, int],
              width: int, height: int) -> bool:
        if lines is None:
            return False
        sized = [(t, pair[0]) for t in lines[0]] + [(b, pair[1]) for b in lines[1]]
        if self.block_height(sized) > height:
            return False
        return all(self.face.width(t, px) <= width for t, px in sized)

    def fit(self, title: str, body: str, width: int, height: int) -> FittedText:
        """The largest layout of ``title`` and ``body`` that fits ``width`` × ``height``.

        Sizes come from :meth:`sizes` (up to ``height``), searched by bisection, so the size chosen
        fits and the next one up does not. Never wider or taller than asked: see the module
        docstring for what happens when even the smallest size does not fit. Cached.
        """
        key = (title, body, width, height)
        cached = self._fit_cache.get(key)
        if cached is not None:
            return cached
        title, body = self.prepare(title), self.prepare(body)
        if not (title or body) or width <= 0 or height <= 0:
            return self._fit_cache.put(key, FittedText(0, 0, (), (), 0))
        pairs = self._sizes(bool(title), bool(body), height)
        for break_words in (False, True):
            found = self._search(title, body, pairs, width, height, break_words)
            if found is not None:
                if 0 < found.height < height:
                    # Asked again for a box just as tall as the text (the alert screen sizes
                    # the title's area so), the answer is the same: it fits, and the next
                    # size up did not fit the taller box.
                    self._fit_cache.put((key[0], key[1], width, found.height), found)
                return self._fit_cache.put(key, found)
        return self._fit_cache.put(key, self._shortened(title, body, pairs[0], width, height))

    def _search(self, title: str, body: str, pairs: list[tuple[int, int]], width: int,
                height: int, break_words: bool) -> FittedText | None:
        """Bisection over ``pairs``: the last one that fits, knowing the next one does not;
        None when even the first does not fit."""
        best = self._layout(title, body, pairs[0], width, break_words)
        if not self._fits(best, pairs[0], width, height):
            return None
        found = {0: best}

        def fits(i: int) -> bool:
            lines = self._layout(title, body, pairs[i], width, break_words)
            found[i] = lines
            return self._fits(lines, pairs[i], width, height)

        last = len(pairs) - 1
        if self.face.bitmap or last < ESTIMATE_FROM:
            lo = last_true(0, last, fits)
        else:
            # Each size tried costs the font loading its glyphs at that size, the bulk of
            # the time for a new text (an alert). Guess the answer from the metrics of one
            # size scaled, then check it and its neighbour with the real ones: the result
            # is the same as bisecting on the real metrics (fits, and one size up does not).
            guess = self._scaled()
            g = last_true(0, last, lambda i: guess._fits(guess._layout(title, body, pairs[i], width, break_words),
                                                         pairs[i], width, height))
            if fits(g):
                lo = g if g == last or not fits(g + 1) else last_true(g + 1, last, fits)
            else:
                lo = g - 1 if g - 1 <= 0 or fits(g - 1) else last_true(0, g - 2, fits)
        best = found[lo]
        assert best is not None
        return self._fitted(pairs[lo], best[0], best[1])

    def _scaled(self) -> TextPainter:
        """This painter measuring with :class:`_ScaledMetrics` (estimates, for searching)."""
        if self._estimator is None:
            est = copy.copy(self)
            est.face = _ScaledMetrics(self.face)  # type: ignore[assignment]
            self._estimator = est
        return self._estimator

    def _fitted(self, pair: tuple[int, int], t: list[str], b: list[str],
                truncated: bool = False) -> FittedText:
        sized = [(x, pair[0]) for x in t] + [(x, pair[1]) for x in b]
        return FittedText(pair[0] if t else 0, pair[1] if b else 0, tuple(t), tuple(b),
                          self.block_height(sized), truncated)

    def ellipsize(self, text: str, px: int, width: int) -> str:
        """The longest start of ``text`` that, followed by "…", fits ``width`` ("" if none)."""
        if self.face.width(text, px) <= width:
            return text
        lo = last_true(0, len(text), lambda n: self.face.width(text[:n].rstrip() + ELLIPSIS, px) <= width)
        shortened = text[:lo].rstrip() + ELLIPSIS
        return shortened if self.face.width(shortened, px) <= width else ""

    def _shortened(self, title: str, body: str, pair: tuple[int, int], width: int,
                   height: int) -> FittedText:
        lines = self._layout(title, body, pair, width, True)
        assert lines is not None
        sized = [(t, pair[0], True) for t in lines[0]] + [(b, pair[1], False) for b in lines[1]]
        kept: list[tuple[str, int, bool]] = []
        for text, px, is_title in sized:
            if self.block_height([(t, p) for t, p, _ in kept] + [(text, px)]) > height:
                break
            kept.append((self.ellipsize(text, px, width), px, is_title))
        if kept and len(kept) < len(sized):
            text, px, is_title = kept[-1]
            kept[-1] = (self.ellipsize(text + ELLIPSIS, px, width), px, is_title)
        return self._fitted(pair, [t for t, _, is_t in kept if is_t],
                            [t for t, _, is_t in kept if not is_t], truncated=True)

    def line_px(self, text: str, width: int, height: int) -> int:
        """Largest size at which ``text`` (already prepared) fits on one line in the box,
        or the smallest size when none does."""
        sizes = self.sizes(height)
        return sizes[last_true(0, len(sizes) - 1, lambda i: self.face.line_height(sizes[i]) <= height
                                 and self.face.width(text, sizes[i]) <= width)]

    # --- text too long for its box: pages, or one line to scroll ---------------------------

    def paginate(self, title: str, body: str, width: int, height: int,
                 max_pages: int = 0) -> tuple[FittedText, ...]:
        """``title`` and ``body`` as pages to show in turn, each fitting ``width`` × ``height``.

        One page, that of :meth:`fit`, when the whole block fits at some size. Otherwise
        the block is laid out at the largest sizes (title about 1.5 times the body) that
        need at most ``max_pages`` pages (0: no limit), else at the smallest sizes, and its
        lines are dealt out to pages in order. Words stay whole: when one is too wide for
        the title's size the title takes the body's; only a word too wide for the box at
        the smallest size is cut, with a hyphen. Nothing is shortened: every word is on a
        page (only a box lower than one line clips that line). Cached.

        >>> [p.lines() for p in painter.paginate("Travaux", "Rue des Écoles fermée", 60, 24)]  # doctest: +SKIP
        [[('Travaux', 10), ('Rue des', 7)], [('Écoles', 7), ('fermée', 7)]]
        """
        key = (title, body, width, height, max_pages)
        cached = self._pages_cache.get(key)
        if cached is not None:
            return cached
        fitted = self.fit(title, body, width, height)
        if not fitted.truncated:
            return self._pages_cache.put(key, (fitted,))
        title, body = self.prepare(title), self.prepare(body)
        pairs = self._sizes(bool(title), bool(body), height)

        def pages(pair: tuple[int, int], break_words: bool = False) -> tuple[FittedText, ...] | None:
            lines = self._layout(title, body, pair, width, break_words, hyphen=True)
            return None if lines is None else self._split(lines, pair, height)

        smallest = self.sizes(height)[0]
        flat = (smallest if title else 0, smallest if body else 0)
        found = pages(pairs[0]) or pages(flat)
        if found is None:
            found = pages(flat, break_words=True)
            assert found is not None
        elif max_pages > 0 and len(found) < max_pages:
            larger: dict[int, tuple[FittedText, ...] | None] = {}

            def few_enough(i: int) -> bool:
                larger[i] = pages(pairs[i])
                return larger[i] is not None and len(larger[i] or ()) <= max_pages

            best = last_true(0, len(pairs) - 1, few_enough)
            found = larger.get(best) or found
        return self._pages_cache.put(key, found)

    def _split(self, lines: tuple[list[str], list[str]], pair: tuple[int, int],
               height: int) -> tuple[FittedText, ...]:
        """Lines dealt out in order to pages at most ``height`` tall (a page holds at least one line)."""
        sized = [(t, pair[0], True) for t in lines[0]] + [(b, pair[1], False) for b in lines[1]]
        pages: list[FittedText] = []
        page: list[tuple[str, int, bool]] = []
        for line in sized:
            if page and self.block_height([(t, p) for t, p, _ in page] + [line[:2]]) > height:
                pages.append(self._page(page, pair))
                page = []
            page.append(line)
        if page:
            pages.append(self._page(page, pair))
        return tuple(pages)

    def _page(self, page: list[tuple[str, int, bool]], pair: tuple[int, int]) -> FittedText:
        return self._fitted(pair, [t for t, _, is_t in page if is_t], [t for t, _, is_t in page if not is_t])

    def scroll_line(self, title: str, body: str, height: int, max_width: int = SAFE_WIDTH) -> tuple[str, int] | None:
        """``title`` and ``body`` on one line (title, " – ", body; line breaks as spaces) and
        the largest size at which that line fits ``height`` and is at most ``max_width``
        pixels wide, for scrolling; None when there is no text or it is too long even at
        the smallest size (then :meth:`paginate` it)."""
        parts = [" ".join(self.prepare(t).split()) for t in (title, body)]
        text = PAGE_SEPARATOR.join(p for p in parts if p)
        if not text or height <= 0:
            return None
        sizes = self.sizes(height)
        ok = [px for px in sizes if self.face.line_height(px) <= height] or sizes[:1]
        for px in reversed(ok):
            if self.face.width(text, px) <= max_width:
                return text, px
        return None

    # --- drawing ------------------------------------------------------------------------

    def render_line(self, text: str, px: int, color: Color) -> pygame.Surface:
        """``text`` (used as is) rendered at ``px``; cached, in the display format if any."""
        rgb = tuple(pygame.Color(color))
        key = (text, px, rgb)
        surface = self._lines.get(key)
        if surface is None:
            raw = self.face.render(text, px, (rgb[0], rgb[1], rgb[2]), self.antialias)
            surface = self._lines.put(key, converted(raw, alpha=True))
        return surface

    def _blit_lines(self, surface: pygame.Surface, rect: pygame.Rect,
                    lines: list[tuple[str, int]], top: int, color: Color,
                    align: str) -> pygame.Rect:
        if align not in ("left", "center", "right"):
            raise ValueError(f"align must be left, center or right, got {align!r}")
        ink: pygame.Rect | None = None
        old_clip = surface.get_clip()
        surface.set_clip(rect.clip(old_clip))
        try:
            y = top
            for text, px in lines:
                line = self.render_line(text, px, color)
                w = line.get_width()
                x = {"left": rect.x, "center": rect.x + (rect.w - w) // 2,
                     "right": rect.right - w}[align]
                surface.blit(line, (x, y))
                bound = line.get_bounding_rect().move(x, y).clip(rect)
                if bound.w and bound.h:
                    ink = bound if ink is None else ink.union(bound)
                y += self.advance(px)
        finally:
            surface.set_clip(old_clip)
        return ink if ink is not None else pygame.Rect(rect.centerx, rect.centery, 0, 0)

    def draw(self, surface: pygame.Surface, rect: pygame.Rect, title: str, body: str,
             color: Color, align: str = "center") -> pygame.Rect:
        """Fit ``title`` and ``body`` to ``rect`` and draw them centred vertically, each line
        aligned ``left``/``center``/``right``. Returns the rectangle holding the ink.
        Nothing is drawn outside ``rect``."""
        return self.draw_fitted(surface, rect, self.fit(title, body, rect.w, rect.h), color, align)

    def draw_fitted(self, surface: pygame.Surface, rect: pygame.Rect, fitted: FittedText,
                    color: Color, align: str = "center") -> pygame.Rect:
        """Draw a block already laid out (by :meth:`fit` or :meth:`paginate`) as :meth:`draw` does."""
        top = rect.y + (rect.h - fitted.height) // 2
        return self._blit_lines(surface, rect, fitted.lines(), top, color, align)

    def draw_line(self, surface: pygame.Surface, rect: pygame.Rect, text: str, color: Color,
                  align: str = "center") -> pygame.Rect:
        """``text`` on one line at the largest size that fits ``rect`` (shortened with "…"
        when none does), centred vertically. Returns the ink rectangle."""
        text = " ".join(self.prepare(text).split("\n"))
        px = self.line_px(text, rect.w, rect.h)
        text = self.ellipsize(text, px, rect.w)
        top = rect.y + (rect.h - self.face.line_height(px)) // 2
        return self._blit_lines(surface, rect, [(text, px)], top, color, align)

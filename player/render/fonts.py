"""Font faces: pygame's bundled font, any TTF/OTF file, a BDF/PCF pixel font, or a family
of pixel fonts (the bundled ``pixel`` one).

A :class:`FontFace` wraps ``pygame.freetype`` fonts and draws a line of text at any
pixel size (scalable fonts) or at the font's own fixed sizes (bitmap fonts)::

    face = open_face(None)                       # pygame's bundled FreeSans Bold
    line = face.render("Marché de Noël", 48, (255, 255, 255))
    face.missing_glyphs(FRENCH_SAMPLE)           # "" : every French glyph is there
    pixel = open_face(PIXEL_FONT)                # the bundled pixel fonts, 7 to 32 px
    pixel.sizes(64)                              # [7, 10, 13, 16, 20, 24, 32]

A *family* is a folder of BDF/PCF files (one fixed size each, or several in an OTB),
used as one face with all their sizes: :data:`PIXEL_FONT` names the folder bundled with
the player (``player/data/fonts``: X11 misc-fixed 5x7, 6x10, 6x13 and Terminus Bold 16 to
32 px; see its README), which small panels use when no font is configured.

Sizes are in pixels per em (``pygame.freetype`` at its default 72 dpi). A bitmap font
accepts any size too: it is drawn at :meth:`FontFace.fitting_size`, the largest of its own
sizes not above the one asked for, else its smallest (a 6x13 font asked for 8 px draws
at 13 px), so that no caller can ask for a size it lacks. Every line
rendered at one size has the same height, :meth:`FontFace.line_height`, with the
baseline at the same row, so lines stack evenly whatever their accents.

Characters a face lacks but that have an honest stand-in are drawn with it: the bundled
font has no glyph for the no-break space (U+00A0) nor the narrow no-break space (U+202F)
that French typography puts before ``: ; ! ?``, so they are drawn as its plain space;
pixel fonts often lack ``’ « » – — … œ €`` and get ``' " " - - ... oe EUR``.
:meth:`FontFace.missing_glyphs` lists only what is left with no glyph at all.
"""

from __future__ import annotations

import bisect
import math
import threading
import unicodedata
from pathlib import Path

import pygame
import pygame.freetype

from player.errors import ConfigError

FRENCH_SAMPLE = "àâäçéèêëîïôöùûüÿœæÀÂÇÉÈÊËÎÏÔÙÛÜŸŒÆ«»’–—€\u00a0\u202f"
"""Every glyph French text on a panel needs, besides ASCII (includes U+00A0 and U+202F)."""

SMALLEST_PX = 6
"""The smallest size offered for a scalable font by default (see :meth:`FontFace.legible_px`
for the smallest a reader can make out)."""

PIXEL_FONT = "pixel"
"""The name of the bundled pixel font family, as ``font: pixel`` in a layout."""

FONTS_DIR = Path(__file__).resolve().parent.parent / "data" / "fonts"
"""The bundled pixel fonts (the :data:`PIXEL_FONT` family) and their licences."""

BITMAP_SUFFIXES = (".bdf", ".pcf", ".pcf.gz", ".bdf.gz", ".otb")
"""Files of a family folder that are fonts."""

LEGIBLE_BITMAP_PX = 7
"""The smallest pixel-font size a passer-by reads on an LED matrix: a 5x7 cell, capitals
7 LEDs tall. Smaller cells (4x6) turn accents and e/a/s into blobs."""

LEGIBLE_SCALABLE_PX = {True: 9, False: 13}
"""The smallest size of a scalable font (outlines: FreeSans, DejaVu) that reads well,
anti-aliased (True) or not (False). Without anti-aliasing, hinted outlines lose strokes
at small sizes ("Place" read as "Plaœ", "21" as "2l"). Measured by OCR on French lines
of FreeSans Bold: anti-aliased, 9 px and up read back as well as large text (6 to 8 px
lose a fifth to two thirds of the words); without, only from 13 px on is every size
that good (6 to 9 px lose two fifths or more, 11 and 12 px a quarter)."""

SMALL_PANEL_PX = 128
"""A panel whose smaller side is at most this many pixels is *small*: it uses the bundled
pixel fonts when no font is configured (HUB75 matrices: 64x32 to 192x96)."""

CAP_MM_PER_M = 4.0
"""Capital letters a passer-by reads comfortably are 4 mm tall per metre of distance (20 mm
at 5 m): between the usual signage figures of 2.5 mm per metre (the farthest a text can
be read at all) and 8 mm per metre (read at a glance from a moving car)."""

CAP_PER_EM = 0.7
"""Height of a capital letter as a share of the font size (FreeSans 0.73, DejaVu Sans
0.73, the bundled pixel fonts 0.6 to 1): a size chosen from a capital height is a little
larger than needed rather than smaller."""


def min_text_px(viewing_distance_m: float | None, pixel_pitch_mm: float | None) -> int | None:
    """The smallest font size, in pixels, that people at ``viewing_distance_m`` read on a
    panel whose pixels are ``pixel_pitch_mm`` apart (``display.viewing_distance_m`` and
    ``display.pixel_pitch_mm``); None when either is not known::

        min_text_px(5, 0.496)   # 58: a 43-inch 1920x1080 screen read from 5 m
        min_text_px(10, 5)      # 12: a P5 LED matrix read from 10 m
    """
    if not viewing_distance_m or not pixel_pitch_mm:
        return None
    cap_px = CAP_MM_PER_M * viewing_distance_m / pixel_pitch_mm
    return max(1, math.ceil(cap_px / CAP_PER_EM))


SAFE_WIDTH = 32_768
"""Pixels of text FreeType measures and draws in one piece; its boxes wrap past 65,535."""

# Tallest accented capitals and deepest descenders: they set the line box, so that a line
# of "ÉTÉ" and a line of "été" have the same height and baseline.
_LINE_BOX_SAMPLE = "ÉÀÂÊÎÔÛÇŸÅgjpqyÿç|()"

# Stand-ins, tried in order, for characters a face has no glyph for.
_STAND_INS: dict[str, tuple[str, ...]] = {
    "\u202f": ("\u2009", "\u2006", "\u00a0", " "),
    "\u00a0": (" ",),
    "\u2009": ("\u2006", " "),
    "\u2006": ("\u2009", " "),
    "\u2007": (" ",),
    "\u2008": (" ",),
    "\u205f": (" ",),
    "\t": (" ",),
    "’": ("'",),
    "‘": ("'",),
    "«": ("\"",),
    "»": ("\"",),
    "“": ("\"",),
    "”": ("\"",),
    "–": ("-",),
    "—": ("-",),
    "‑": ("-",),
    "…": ("...",),
    "•": ("·", "*", "-"),
    "œ": ("oe",),
    "Œ": ("OE",),
    "æ": ("ae",),
    "Æ": ("AE",),
    "€": ("EUR",),
}

# Code points that are never drawn: controls, lone surrogates (FreeType cannot even encode
# them) and noncharacters.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs"})

Color = tuple[int, int, int]


def _init_freetype() -> None:
    if not pygame.freetype.get_init():
        pygame.freetype.init()


class FontFace:
    """A font file (or pygame's bundled default, or a family of pixel fonts) usable at any
    pixel size, via pygame.freetype.

    ``spec`` is ``None`` for pygame's bundled font, :data:`PIXEL_FONT` for the bundled
    pixel fonts, the path of a TTF/OTF/BDF/PCF file, or the path of a folder of BDF/PCF/OTB
    files (a family: each of their sizes is drawn with the file that has it).
    ``bitmap`` is True for fonts with fixed sizes only (BDF, PCF, families): :meth:`sizes`
    lists them and any other size is drawn and measured at :meth:`fitting_size`. A size
    below 1 raises ``ValueError``. Not thread-safe: use it from the thread that owns pygame.
    """

    spec: str | None
    bitmap: bool

    def __init__(self, spec: str | None) -> None:
        _init_freetype()
        self.spec = spec
        paths: list[str | None] = [spec]
        if spec is not None:
            folder = FONTS_DIR if spec == PIXEL_FONT else Path(spec)
            if folder.is_dir():
                paths = [str(f) for f in family_files(folder)]
                if not paths:
                    raise ConfigError([f"display.font: {spec!r}: no BDF, PCF or OTB font in {str(folder)!r}"])
        fonts = [self._open(path) for path in paths]
        self._font = fonts[0]
        self.bitmap = not any(f.scalable for f in fonts)
        if len(fonts) > 1 and not self.bitmap:
            raise ConfigError([f"display.font: {spec!r}: a family holds pixel fonts only"])
        # Fixed sizes as pixels per em (the sizes FreeType accepts), each with its font: the
        # first file (in name order) that has a size draws it.
        self._strikes: dict[int, pygame.freetype.Font] = {}
        if self.bitmap:
            for font in fonts:
                for strike in font.get_sizes():
                    self._strikes.setdefault(int(round(strike[4])), font)
        self._fixed = sorted(self._strikes)
        if self.bitmap and not self._fixed:
            raise ConfigError([f"display.font: {spec!r} has neither outlines nor bitmap sizes"])
        self._has: dict[str, bool] = {}
        self._boxes: dict[int, tuple[int, int]] = {}
        self._table = str.maketrans(self._stand_in_table())

    def _open(self, path: str | None) -> pygame.freetype.Font:
        try:
            font = pygame.freetype.Font(path)
        except (OSError, pygame.error, RuntimeError, ValueError) as exc:
            raise ConfigError([f"display.font: cannot open {path!r}: {exc}"]) from exc
        font.pad = True  # rectangles span the advance width and the font's line box
        font.kerning = False
        return font

    def _at(self, size: int) -> pygame.freetype.Font:
        """The font that draws ``size`` (a size :meth:`fitting_size` returned)."""
        return self._strikes.get(size, self._font)

    def __repr__(self) -> str:
        return f"FontFace({self.spec!r}, bitmap={self.bitmap})"

    # --- glyphs -------------------------------------------------------------------------

    def has_glyph(self, ch: str) -> bool:
        """True when the font itself has a glyph for the single character ``ch`` (a family:
        at every one of its sizes)."""
        known = self._has.get(ch)
        if known is None:
            try:
                if self.bitmap:  # every size must have it, or the text changes with the size
                    known = all(self._at(px).get_metrics(ch, size=px)[0] is not None for px in self._fixed)
                else:
                    known = self._font.get_metrics(ch, size=16)[0] is not None
            except (UnicodeError, ValueError, pygame.error):
                known = False
            self._has[ch] = known
        return known

    def _stand_in_table(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for ch, options in _STAND_INS.items():
            if self.has_glyph(ch):
                continue
            for option in options:
                if all(self.has_glyph(c) for c in option):
                    table[ch] = option
                    break
        return table

    def prepare(self, text: str) -> str:
        """``text`` as it will be drawn: NFC-composed, stand-ins applied, controls dropped."""
        text = unicodedata.normalize("NFC", text).translate(self._table)
        if text.isprintable():
            return text
        return "".join(c for c in text if unicodedata.category(c) not in _DROPPED_CATEGORIES)

    def approximated(self, text: str) -> str:
        """The distinct characters of ``text`` drawn with a stand-in (e.g. U+202F as a space)."""
        text = unicodedata.normalize("NFC", text)
        return "".join(sorted({c for c in text if ord(c) in self._table}))

    def missing_glyphs(self, text: str) -> str:
        """The distinct characters of ``text`` the font cannot draw, even with a stand-in.

        Line breaks and control characters are not glyphs and are never reported.
        """
        drawn = self.prepare(text.replace("\n", ""))
        return "".join(sorted({c for c in drawn if not self.has_glyph(c)}))

    # --- metrics ------------------------------------------------------------------------

    def sizes(self, max_px: int, smallest: int | None = None) -> list[int]:
        """The usable sizes from ``smallest`` up to ``max_px``, ascending; never empty.

        Scalable fonts: every integer from ``smallest`` (default :data:`SMALLEST_PX`).
        Bitmap fonts: their fixed sizes (when none is small enough, the smallest one at
        least ``smallest``, so that callers always have a size to try).
        """
        if self.bitmap:
            low = 0 if smallest is None else smallest
            floor = next((s for s in self._fixed if s >= low), self._fixed[-1])
            small = [s for s in self._fixed if floor <= s <= max_px]
            return small or [floor]
        low = SMALLEST_PX if smallest is None else max(1, smallest)
        return list(range(low, max(low, max_px) + 1))

    def legible_px(self, antialias: bool) -> int:
        """The smallest size a reader makes out at a glance, drawn with ``antialias``.

        Bitmap fonts: their smallest size of at least :data:`LEGIBLE_BITMAP_PX` (their
        largest when none is). Scalable fonts: :data:`LEGIBLE_SCALABLE_PX`.
        """
        if self.bitmap:
            return next((s for s in self._fixed if s >= LEGIBLE_BITMAP_PX), self._fixed[-1])
        return LEGIBLE_SCALABLE_PX[bool(antialias)]

    def fitting_size(self, px: int) -> int:
        """The size text asked for at ``px`` is drawn at: ``px`` for a scalable font; for a
        bitmap font the largest of its sizes not above ``px``, else its smallest one.

        >>> open_face("/usr/share/fonts/X11/misc/6x13.pcf.gz").fitting_size(8)  # doctest: +SKIP
        13
        """
        if px < 1:
            raise ValueError(f"font size must be positive, got {px}")
        if not self.bitmap:
            return px
        fixed = self._fixed
        return fixed[max(0, bisect.bisect_right(fixed, px) - 1)]

    def _box(self, px: int) -> tuple[int, int]:
        """(rows above the baseline, line height) at ``px``, the same for every line."""
        box = self._boxes.get(px)
        if box is None:
            size = self.fitting_size(px)
            font = self._at(size)
            rect = font.get_rect(_LINE_BOX_SAMPLE, size=size)
            above = max(rect.y, font.get_sized_ascender(size))
            below = max(rect.height - rect.y, 1 - font.get_sized_descender(size))
            box = (above, above + below)
            self._boxes[px] = box
        return box

    def line_height(self, px: int) -> int:
        """Height in pixels of every line rendered at ``px`` (no extra line spacing)."""
        return self._box(px)[1]

    def width(self, text: str, px: int) -> int:
        """Width in pixels of the surface :meth:`render` returns for ``text`` at ``px``."""
        return sum(rect.width for rect in self._chunk_rects(text, px))

    def _chunk_rects(self, text: str, px: int) -> list[pygame.Rect]:
        """FreeType's boxes of ``text`` at ``px``, measured in pieces: its box wraps around
        past 65,535 pixels, so a long text is cut short enough (no glyph is wider than
        4 em); none for an empty text."""
        px = self.fitting_size(px)
        font = self._at(px)
        text = self.prepare(text)
        step = max(1, SAFE_WIDTH // (4 * px))
        return [font.get_rect(text[i:i + step], size=px) for i in range(0, len(text), step)]

    def ink_rows(self, text: str, px: int) -> tuple[int, int]:
        """``[first, end)``: the rows of the line :meth:`render` returns for ``text`` that
        glyphs can touch (clipped to the line box); ``(0, 0)`` when nothing is drawn."""
        above, height = self._box(px)
        first, end = height, 0
        for rect in self._chunk_rects(text, px):
            if rect.height > 0:
                first = min(first, above - rect.y)
                end = max(end, above - rect.y + rect.height)
        first, end = max(0, first), min(height, end)
        return (first, end) if first < end else (0, 0)

    # --- drawing ------------------------------------------------------------------------

    def render(self, text: str, px: int, color: Color, antialias: bool = True) -> pygame.Surface:
        """One line of text as a per-pixel-alpha surface :meth:`line_height` tall.

        Every pixel carries ``color``; only alpha varies. With ``antialias=False`` alpha is
        0 or 255 (for LED matrices). A glyph taller than the line box is clipped.
        """
        above, height = self._box(px)
        px = self.fitting_size(px)
        text = self.prepare(text)
        rgb = pygame.Color(color)
        if not text:
            return pygame.Surface((0, height), pygame.SRCALPHA)
        font = self._at(px)
        font.antialiased = antialias
        rect = font.get_rect(text, size=px)
        out = pygame.Surface((rect.width, height), pygame.SRCALPHA)
        # Transparent pixels already hold the colour, so blending the glyphs in keeps it
        # exact: only alpha varies. FreeType draws straight into the line (a glyph surface
        # blitted with alpha onto it cost milliseconds per line at alert sizes).
        out.fill((rgb.r, rgb.g, rgb.b, 0))
        font.render_to(out, (0, above - rect.y), text, rgb, size=px)
        return out


_faces: dict[str | None, FontFace] = {}
_faces_lock = threading.Lock()


def family_files(folder: Path) -> list[Path]:
    """The font files of a family folder, in name order (see :data:`BITMAP_SUFFIXES`)."""
    return sorted(f for f in folder.iterdir() if f.name.lower().endswith(BITMAP_SUFFIXES) and f.is_file())


def default_font(size: tuple[int, int], font: str | None) -> str | None:
    """The font a panel of ``size`` pixels uses when ``font`` (configured: the layout's or
    ``display.font``) is None: :data:`PIXEL_FONT` on a small panel (see
    :data:`SMALL_PANEL_PX`) when the bundled fonts are there, else pygame's bundled font."""
    if font is None and min(size) <= SMALL_PANEL_PX and FONTS_DIR.is_dir():
        return PIXEL_FONT
    return font


def screen_style(size: tuple[int, int], font: str | None, *, ledmatrix: bool,
                 layout_antialias: bool = True) -> tuple[str | None, bool]:
    """``(font, led)`` for the player's own full screens (alert, identify, test card) on a
    panel of ``size`` pixels: ``font`` (``display.font`` or the layout's) or the default of
    :func:`default_font`, and ``led``, True for the LED look (no anti-aliasing, one-line
    texts that scroll, pixel-font sizes) on an LED matrix, with a layout drawn without
    anti-aliasing, or on any small panel (see :data:`SMALL_PANEL_PX`)::

        screen_style((128, 64), None, ledmatrix=False)      # ('pixel', True)
        screen_style((1920, 1080), None, ledmatrix=False)   # (None, False)
    """
    small = min(size) <= SMALL_PANEL_PX
    return default_font(size, font), ledmatrix or not layout_antialias or small


def open_face(spec: str | None) -> FontFace:
    """The :class:`FontFace` for ``spec`` (None: pygame's bundled font; :data:`PIXEL_FONT`:
    the bundled pixel fonts; a folder: a family of pixel fonts), opened once.

    Raises ``ConfigError(["display.font: cannot open ..."])`` when the file is absent or
    not a font.
    """
    key = None if spec is None else str(spec)
    with _faces_lock:
        face = _faces.get(key)
        if face is None:
            if key is not None and key != PIXEL_FONT and not Path(key).exists():
                raise ConfigError([f"display.font: cannot open {key!r}: no such file"])
            face = FontFace(key)
            _faces[key] = face
        return face

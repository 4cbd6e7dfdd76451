"""Typography of slides by their language: where lines break (numbers and their units,
times, dates, phone numbers, dashes, short words), addresses and long words cut at
sensible points, French spacing for French text only.

Each layout rule is checked against the plain greedy wrap at spaces the painter used to
do: at every width where that wrap parts what must stay together, the painter does not
(and such widths exist, so the test can fail). Pixel tests draw with the bundled pixel
font (5 px a character at 7 px) and the default scalable font, on SDL's dummy driver.
"""

from __future__ import annotations

import re
from pathlib import Path

import pygame
import pyphen
import pytest

from player.render.fonts import FontFace, open_face
from player.render.text import (BREAK, HARD, NBSP, NNBSP, SOFT, TextPainter, break_rules,
                                french_typography, hyphenation_points, is_url, typography_for,
                                url_breaks)

PX = 7
INK, PAPER = (255, 255, 255), (0, 0, 0)


@pytest.fixture(scope="module")
def pixel() -> FontFace:
    return open_face("pixel")


@pytest.fixture(scope="module")
def face() -> FontFace:
    return open_face(None)


def painter_for(face: FontFace, **kw: object) -> TextPainter:
    return TextPainter(face, antialias=False, line_spacing=1.0, min_px=PX, **kw)  # type: ignore[arg-type]


def greedy(face: FontFace, text: str, px: int, width: int) -> list[str]:
    """The plain wrap at every space, the painter's before the language's rules."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            if not word:
                continue
            candidate = f"{current} {word}" if current else word
            if face.width(candidate, px) <= width or not current:
                current = candidate
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def parted(lines: list[str], phrase: str) -> bool:
    """True when ``phrase`` (words separated by spaces) runs across a line break."""
    joined = "\n".join(lines)
    spaced = re.escape(phrase).replace(r"\ ", "[ \n]")
    return any("\n" in m.group(0) for m in re.finditer(spaced, joined))


def widths_parting(face: FontFace, text: str, phrase: str) -> list[int]:
    """The widths at which the plain wrap parts ``phrase`` while every word fits."""
    longest = max(face.width(w, PX) for w in text.split())
    return [w for w in range(longest, 60 * 5)
            if parted(greedy(face, text, PX, w), phrase)]


# --------------------------------------------------------------------- rules, as data


@pytest.mark.parametrize("text, glue", [
    ("samedi à 19 h", [BREAK, SOFT, HARD]),
    ("13 h 30 – 17 h", [HARD, HARD, BREAK, SOFT, HARD]),
    ("entrée 10 € !", [BREAK, HARD, BREAK]),
    ("le 3 décembre 2026", [SOFT, HARD, HARD]),
    ("appelez 04 76 12 34 56 vite", [BREAK, HARD, HARD, HARD, HARD, BREAK]),
    ("ou +33 4 76 12 34 56", [SOFT, HARD, HARD, HARD, HARD, HARD]),
    ("soit 12 000 habitants", [BREAK, HARD, HARD]),
    ("remise de 15 % sur 12 km", [BREAK, SOFT, HARD, BREAK, BREAK, HARD]),
    ("du 12 au 24", [SOFT, BREAK, SOFT]),
    ("à 19 h ce soir", [SOFT, HARD, BREAK, SOFT]),  # the unit "h" is not a short word to carry over
    ("dès 20 °C le 1er mai 2026", [BREAK, HARD, BREAK, SOFT, HARD, HARD]),
    ("salle n° 5 avec M. Martin", [BREAK, HARD, BREAK, BREAK, HARD]),
    ("de 1 000 à 2 000 €", [SOFT, HARD, BREAK, SOFT, HARD, HARD]),
])
def test_break_rules_in_french(text: str, glue: list[int]) -> None:
    assert break_rules(text.split(), "fr") == glue


def test_french_only_rules_stay_french() -> None:
    assert break_rules("at 19 h".split(), "en") == [SOFT, HARD]  # h: hours in English too
    assert break_rules("3 décembre".split(), "en") == [BREAK]
    assert break_rules("call 04 76 12 34 56".split(), "de") == [BREAK, BREAK, BREAK, BREAK, BREAK]
    assert break_rules("costs 10 € or 15 %".split(), "en") == [BREAK, HARD, BREAK, SOFT, HARD]
    assert break_rules("on December 3".split(), "en") == [SOFT, HARD]
    assert break_rules("from 7 pm".split(), "en") == [BREAK, HARD]


# --------------------------------------------------------------- numbers and their units


@pytest.mark.parametrize("text, phrase", [
    ("Fête du village samedi à 19 h", "19 h"),
    ("Permanence en mairie de 13 h 30 – 17 h", "13 h 30"),
    ("Permanence en mairie de 13 h 30 – 17 h", "17 h"),
    ("Entrée 10 € pour les adultes", "10 €"),
    ("Marché de Noël le 3 décembre sur la place", "3 décembre"),
    ("Soldes : 15 % sur les livres", "15 %"),
    ("Course de 12 km dimanche matin", "12 km"),
    ("Inscriptions au 04 76 12 34 56 avant vendredi", "04 76 12 34 56"),
])
def test_numbers_stay_with_their_units_times_dates_and_phones(pixel: FontFace, text: str, phrase: str) -> None:
    painter = painter_for(pixel)
    prepared = painter.prepare(text)
    widths = widths_parting(pixel, prepared, phrase)
    assert widths, "the plain wrap never parts it: the test would prove nothing"
    for width in widths:
        lines = painter.wrap(prepared, PX, width, break_words=False)
        if lines is None:  # the group is wider than the line: the painter takes a smaller size
            assert pixel.width(phrase, PX) > width
            continue
        assert not parted(lines, phrase), (width, lines)
        assert " ".join(lines) == prepared  # nothing lost, nothing added
        assert all(pixel.width(line, PX) <= width for line in lines)


def test_fit_shrinks_rather_than_part_a_phone_number(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    body = "Mairie : 04 76 12 34 56"
    for width in (70, 80, 100, 120):  # the number is 70 px wide at 7 px
        fitted = painter.fit("", body, width, 200)
        assert "04 76 12 34 56" in fitted.body_lines, (width, fitted)
        assert fitted.body_px >= PX and not fitted.truncated


def test_a_group_wider_than_any_line_is_parted_at_its_spaces_not_inside_a_word(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    # 14 characters: 70 px at 7 px, in a 40 px box: parted only because it must be.
    assert painter.wrap("04 76 12 34 56", PX, 40, break_words=False) is None
    assert painter.wrap("04 76 12 34 56", PX, 40, break_words=True) == ["04 76 12", "34 56"]


# ------------------------------------------------------------------ dashes, short words


def test_a_dash_is_never_left_at_a_line_end(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    text = painter.prepare("Réunion publique – salle des fêtes – entrée libre")
    widths = [w for w in range(60, 300) if any(line.endswith("–") for line in greedy(pixel, text, PX, w))]
    assert widths
    for width in widths:
        lines = painter.wrap(text, PX, width, break_words=False)
        assert lines is not None and " ".join(lines) == text
        assert not any(line.endswith("–") for line in lines), (width, lines)


def test_times_keep_their_dash_with_the_end_time(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    lines = painter.wrap("Ouvert de 13 h 30 – 17 h", PX, 16 * 5, break_words=False)
    assert lines == ["Ouvert", "de 13 h 30", "– 17 h"]
    assert greedy(pixel, "Ouvert de 13 h 30 – 17 h", PX, 16 * 5) == ["Ouvert de 13 h", "30 – 17 h"]


SHORT = re.compile(r"(?:^| )[^\W\d_]{1,2}$")


@pytest.mark.parametrize("text", [
    "Fête du village samedi à 19 h",
    "Rendez-vous devant la mairie de Grenoble à midi pour le départ",
    "Il y a un marché le jeudi et un vide-grenier en mai",
])
def test_a_short_word_is_not_left_at_a_line_end(pixel: FontFace, text: str) -> None:
    painter = painter_for(pixel)
    # Where each short word (or run of them) and the next word fit a line together: a
    # better break exists.
    chains = re.findall(r"(?:\b[^\W\d_]{1,2} )+\S+", text)
    widest = max(pixel.width(chain, PX) for chain in chains)
    widths = [w for w in range(widest, 300) if any(SHORT.search(line) for line in greedy(pixel, text, PX, w))]
    assert widths
    for width in widths:
        lines = painter.wrap(text, PX, width, break_words=False)
        assert lines is not None and " ".join(lines) == text
        assert not any(SHORT.search(line) for line in lines[:-1]), (width, lines)


def test_short_words_part_when_nothing_else_fits(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    # "à" and "Grenoble" do not fit 45 px together: they part rather than shrink the text.
    assert painter.wrap("à Grenoble", PX, 45, break_words=False) == ["à", "Grenoble"]


# --------------------------------------------------------------------------- addresses


URL = "https://mairie.example/inscriptions/ecole-maternelle/rentree-2026"


def test_an_address_is_cut_after_its_slashes_and_keeps_every_character(pixel: FontFace) -> None:
    painter = painter_for(pixel, hyphenate=True)
    lines = painter.wrap(f"Inscriptions sur {URL}", PX, 30 * 5, break_words=False)
    assert lines is not None
    assert lines[0] == "Inscriptions sur"
    assert "".join(lines[1:]) == URL  # no hyphen added, nothing cut off
    assert all(line.endswith("/") for line in lines[1:-1])
    assert all(pixel.width(line, PX) <= 30 * 5 for line in lines)


def test_an_address_does_not_shrink_the_whole_slide(face: FontFace) -> None:
    painter = TextPainter(face, min_px=9)
    text = f"Inscriptions à l'école sur {URL}"
    fitted = painter.fit("", text, 600, 400)
    assert not fitted.truncated
    # Kept whole, the address took the slide down to 19 px; cut after its slashes, 51 px.
    assert fitted.body_px > 40 and face.width(URL, fitted.body_px) > 600
    assert fitted.body_lines == ("Inscriptions à l’école sur", "https://mairie.example/", "inscriptions/",
                                 "ecole-maternelle/", "rentree-2026")
    assert all(face.width(line, fitted.body_px) <= 600 for line in fitted.body_lines)


def test_an_address_wider_than_a_line_even_between_slashes_is_cut_anywhere_without_hyphens(
        pixel: FontFace) -> None:
    painter = painter_for(pixel, hyphenate=True)
    url = "https://mairie.example/inscriptionsecolematernelle"
    assert painter.wrap(url, PX, 50, break_words=False) is None  # no sensible cut fits: a smaller size
    pieces = painter.wrap(url, PX, 50, break_words=True)
    assert pieces is not None and "".join(pieces) == url
    assert all(pixel.width(p, PX) <= 50 for p in pieces)


def test_url_cuts_and_detection() -> None:
    slashes, others = url_breaks("https://a.example/b/c?d=1&e=2")
    assert slashes == [len("https://"), len("https://a.example/"), len("https://a.example/b/")]
    assert len("https://a") in others and len("https://a.example/b/c") in others
    assert is_url(URL) and is_url("(www.mairie.example)") and is_url("accueil@mairie.example.")
    assert is_url("mairie.example/agenda")
    assert not is_url("Saint-Martin-d'Hères") and not is_url("13h30") and not is_url("et/ou")


# --------------------------------------------------------------------------- hyphenation


@pytest.mark.parametrize("word", ["intercommunalité", "déplacements", "anticonstitutionnellement",
                                  "municipales", "compréhension"])
def test_long_french_words_are_hyphenated_where_pyphen_allows(pixel: FontFace, word: str) -> None:
    painter = painter_for(pixel, hyphenate=True)
    lines = painter.wrap(word, PX, 8 * 5, break_words=True)
    assert lines is not None and len(lines) >= 2
    assert "".join(line.removesuffix("-") for line in lines) == word
    valid = set(pyphen.Pyphen(lang="fr", left=2, right=3).positions(word))
    cut = 0
    for line in lines[:-1]:
        assert line.endswith("-")
        cut += len(line) - 1
        assert cut in valid, (word, lines)
    assert all(pixel.width(line, PX) <= 8 * 5 for line in lines)


def test_no_mute_final_syllable_is_carried_over(pixel: FontFace) -> None:
    # The French rule: not "municipa-" / "les" (the syllable rule alone cut there).
    painter = painter_for(pixel, hyphenate=True)
    assert painter.wrap("municipales\u00a0:", PX, 64, break_words=True) == ["munici-", "pales\u00a0:"]


def test_hyphenation_follows_the_language(pixel: FontFace) -> None:
    en = painter_for(pixel, hyphenate=True, lang="en")
    lines = en.wrap("communication", PX, 9 * 5, break_words=True)
    assert lines is not None
    valid = set(pyphen.Pyphen(lang="en", left=2, right=3).positions("communication"))
    assert len(lines[0]) - 1 in valid
    assert hyphenation_points("l’intercommunalité", "fr") == [2 + p for p in
                                                               pyphen.Pyphen(lang="fr", left=2, right=3)
                                                               .positions("intercommunalité")]
    assert hyphenation_points("word", "zz") is None  # no patterns: the fallback cuts


def test_without_patterns_the_fallback_still_keeps_every_letter(pixel: FontFace) -> None:
    painter = painter_for(pixel, hyphenate=True, lang="zz")
    lines = painter.wrap("Ffffffffffffffffffffuuuuuu", PX, 40, break_words=True)
    assert lines is not None and "".join(line.removesuffix("-") for line in lines) == "Ffffffffffffffffffffuuuuuu"


# ------------------------------------------------------------------ French spacing, by language


def test_french_spacing_only_for_french_text(face: FontFace) -> None:
    fr = TextPainter(face)
    en = TextPainter(face, lang="en")
    assert fr.prepare("Partez maintenant !") == f"Partez maintenant{NNBSP}!"
    assert en.prepare("leave now !") == "leave now !"
    assert en.prepare("Opening hours: 9-12") == "Opening hours: 9-12"
    assert en.prepare("don't") == "don’t"
    assert fr.for_lang("en").prepare("leave now !") == "leave now !"
    assert fr.for_lang("fr-CA").prepare("Attention : crue") == f"Attention{NBSP}: crue"
    assert typography_for("de") is not french_typography and typography_for("fr-BE") is french_typography
    assert TextPainter(face, typography=None, lang="fr").prepare("a !") == "a !"  # explicit wins


def test_for_lang_is_made_once_and_shares_rendered_lines(face: FontFace) -> None:
    fr = TextPainter(face)
    en = fr.for_lang("en")
    assert fr.for_lang(None) is fr and fr.for_lang("fr") is fr
    assert fr.for_lang("en") is en and en.for_lang("fr") is fr
    assert en.lang == "en" and en.face is fr.face
    line = fr.render_line("Bonjour", 20, INK)
    assert en.render_line("Bonjour", 20, INK) is line


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_english_slide_is_drawn_without_french_spacing(face: FontFace) -> None:
    """Pixels: the English line is the text as typed; the French one differs where the
    font has a real narrow no-break space (DejaVu; the bundled fonts draw it as a space)."""
    font = open_face(str(DEJAVU)) if DEJAVU.exists() else face
    zone = pygame.Rect(0, 0, 400, 60)
    drawn = {}
    for lang, typography in (("en", "auto"), ("fr", "auto"), ("typed", None)):
        canvas = pygame.Surface(zone.size)
        canvas.fill(PAPER)
        painter = TextPainter(font, antialias=False, typography=typography,  # type: ignore[arg-type]
                              lang="en" if lang == "typed" else lang)
        painter.draw(canvas, zone, "", "leave now !", INK, "left")
        drawn[lang] = pygame.image.tobytes(canvas, "RGB")
    assert drawn["en"] == drawn["typed"]
    if font.has_glyph(NNBSP):
        assert drawn["fr"] != drawn["en"]


# ------------------------------------------------------------------------------ pixels


def bands(canvas: pygame.Surface) -> list[pygame.Rect]:
    """The ink of each text line on ``canvas``: runs of rows with lit pixels."""
    w, h = canvas.get_size()
    rows = [any(canvas.get_at((x, y))[:3] != PAPER for x in range(w)) for y in range(h)]
    out, start = [], None
    for y, lit in enumerate(rows + [False]):
        if lit and start is None:
            start = y
        elif not lit and start is not None:
            out.append(pygame.Rect(0, start, w, y - start))
            start = None
    return out


def expected_picture(face: FontFace, size: tuple[int, int], lines: list[str], px: int) -> bytes:
    """``lines`` rendered one under the other, left-aligned, centred vertically."""
    picture = pygame.Surface(size)
    picture.fill(PAPER)
    y = (size[1] - len(lines) * face.line_height(px)) // 2
    for line in lines:
        picture.blit(face.render(line, px, INK, antialias=False), (0, y))
        y += face.line_height(px)
    return pygame.image.tobytes(picture, "RGB")


def test_pixels_show_19_h_on_one_line(pixel: FontFace) -> None:
    """Drawn in a zone where the plain wrap would end a line with "19": the picture is
    exactly the lines "Fête", "du village", "samedi" and "à 19 h", one under the other."""
    text, width = "Fête du village samedi à 19 h", 12 * 5
    assert greedy(pixel, text, PX, width) == ["Fête du", "village", "samedi à 19", "h"]
    painter = painter_for(pixel)
    zone = pygame.Rect(0, 0, width, 4 * pixel.line_height(PX))
    canvas = pygame.Surface(zone.size)
    canvas.fill(PAPER)
    expected = ["Fête", "du village", "samedi", "à 19 h"]
    fitted = painter.fit("", text, zone.w, zone.h)
    assert fitted.body_lines == tuple(expected) and fitted.body_px == PX
    painter.draw(canvas, zone, "", text, INK, "left")
    assert pygame.image.tobytes(canvas, "RGB") == expected_picture(pixel, zone.size, expected, PX)
    assert len(bands(canvas)) == 4


def test_pixels_of_a_cut_address_hold_every_character(pixel: FontFace) -> None:
    painter = painter_for(pixel)
    zone = pygame.Rect(0, 0, 30 * 5, 6 * pixel.line_height(PX))
    canvas = pygame.Surface(zone.size)
    canvas.fill(PAPER)
    painter.draw(canvas, zone, "", f"Voir {URL}", INK, "left")
    fitted = painter.fit("", f"Voir {URL}", zone.w, zone.h)
    assert fitted.body_lines == ("Voir", "https://mairie.example/", "inscriptions/ecole-maternelle/",
                                 "rentree-2026")
    assert pygame.image.tobytes(canvas, "RGB") == expected_picture(pixel, zone.size, list(fitted.body_lines),
                                                                   fitted.body_px)

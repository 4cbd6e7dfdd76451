"""Legibility on small LED matrices, read back by OCR.

French slides are shown by the real :class:`Renderer` with the built-in ``led-matrix``
layout (its defaults: the bundled pixel fonts, no anti-aliasing, pages for text that does
not fit) at 64x32, 128x32, 128x64 and 192x96. The test drives the renderer the way the
main loop does (render, then sleep until ``next_deadline``) over one slide's duration,
keeps every distinct frame, and has tesseract (French data) read each one back.

How a frame is read: a 2-LED black margin is added around it (the panel's bezel; text
may touch the panel's edge), it is enlarged ×:data:`SCALE` by nearest neighbour (each LED
a square: 7-pixel text becomes 28 pixels tall, the size tesseract reads best; ×8 gives
figures within a few points), turned into dark text on white, and given to
``tesseract <png> - -l fra --psm 6``. For the *seen* figure, the one asserted, the
enlarged frame is then blurred a little (Gaussian, σ = :data:`SEEN_BLUR` LED pitch): the
light of each LED spreads about a pitch wide behind its diffuser, and a reader a few
metres away sees the dots merge into strokes; OCR, trained on print, misreads the
staircase edges of sharp square pixels ("m" as "H" in a 5x7 cell). The *sharp* figure,
read without the blur, is printed too. Either way, text drawn as the player drew it
before the pixel fonts (FreeSans without anti-aliasing, body dropped at 64x32) reads
back at 10 to 30 % at 64x32 and 128x32.

How words are counted: title and body cut into words (runs of letters and digits, so
"d’artifice" is two), compared case-insensitively with accents removed (OCR confuses
"é" and "e" on 7-pixel glyphs, a reader does not); the accents-kept figure is printed
too. A word counts as read when OCR finds it in any frame of its slide (a reader sees
every page); a word cut at a line end with a hyphen is joined again. The figure is the
share of the slides' words read, per panel size; it must be at least :data:`REQUIRED`.

Run with ``-s`` to see the figures: ``pytest -s tests/test_led_legibility.py``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from PIL import Image, ImageFilter, ImageOps

from player.content import TextSlide
from player.layout import load_layout
from player.render.compositor import Renderer

SIZES = [(64, 32), (128, 32), (128, 64), (192, 96)]
SCALE = 4
MARGIN = 2
SEEN_BLUR = 0.4  # in LED pitches
REQUIRED = 0.80
DURATION = 10.0  # the default slide duration
WALL = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)

SLIDES = [
    ("Route barrée", "Déviation par la rue de la Gare"),
    ("Marché de Noël", "Place de la Mairie\ndu 12 au 24 décembre"),
    ("Collecte des encombrants", "Mardi 21 octobre : sortez vos objets la veille au soir."),
    ("Travaux", "La rue des Écoles sera fermée à la circulation du lundi 3 au vendredi 14 mars. "
                "Merci de votre compréhension."),
    ("Vigilance orange", "Orages violents cet après-midi. Évitez les déplacements."),
    ("Fête du village", "Samedi 28 juin à partir de 19 h : repas, bal et feu d'artifice !"),
    ("Mairie fermée", "Le secrétariat sera fermé le vendredi 15 août."),
    ("Coupure d'eau", "Jeudi de 8 h à 12 h, quartier des Tilleuls."),
    ("Bibliothèque", "Nouveaux horaires : mercredi et samedi de 10 h à 12 h."),
    ("Bienvenue à Saint-Vincent", ""),
    ("", "Élections municipales : dimanche 15 mars, bureau de vote à la salle des fêtes."),
]

def _missing_ocr() -> str | None:
    """Why OCR cannot run here, or None."""
    if shutil.which("tesseract") is None:
        return "tesseract is not installed"
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
    return None if "fra" in langs else "tesseract has no French data"


_MISSING = _missing_ocr()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"{_MISSING} (scripts/bootstrap.sh --tests "
                                "installs tesseract-ocr and tesseract-ocr-fra)")


def words(text: str, accents: bool = False) -> list[str]:
    """The words of ``text``, lower-case, accents removed unless ``accents``."""
    text = unicodedata.normalize("NFC", text).lower()
    if not accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", text)


def frames_of(renderer: Renderer, slide: TextSlide, start: float) -> Iterator[pygame.Surface]:
    """Every frame the renderer hands out while ``slide`` is up, as the main loop asks for them."""
    renderer.show(slide, start)
    now = start
    while now < start + slide.duration:
        if renderer.render(now, WALL) is not None:
            yield renderer.snapshot()
        deadline = renderer.next_deadline(now, WALL)
        if deadline is None:
            break
        now = max(deadline, now + 1e-6)


def distinct_frames(size: tuple[int, int], slide: TextSlide) -> list[pygame.Surface]:
    renderer = Renderer(size, load_layout("led-matrix"), tz=ZoneInfo("Europe/Paris"), transition="cut")
    with renderer:
        seen: dict[bytes, pygame.Surface] = {}
        for frame in frames_of(renderer, slide, 1000.0):
            seen.setdefault(hashlib.sha256(pygame.image.tobytes(frame, "RGB")).digest(), frame)
        return list(seen.values())


def for_ocr(frame: pygame.Surface, blur: float) -> Image.Image:
    """The frame with a black margin, enlarged by nearest neighbour, dark on light, blurred by
    ``blur`` LEDs."""
    img = Image.frombytes("RGB", frame.get_size(), pygame.image.tobytes(frame, "RGB")).convert("L")
    img = ImageOps.expand(img, MARGIN, fill=0)
    img = img.resize((img.width * SCALE, img.height * SCALE), Image.Resampling.NEAREST)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur * SCALE))
    return ImageOps.invert(img)


def ocr(images: list[Image.Image], folder: Path) -> list[str]:
    """What tesseract reads in each image (one run for all: the model loads once)."""
    paths = []
    for i, img in enumerate(images):
        path = folder / f"frame{i:03d}.png"
        img.save(path)
        paths.append(str(path))
    listing = folder / "frames.txt"
    listing.write_text("\n".join(paths) + "\n")
    out = subprocess.run(["tesseract", str(listing), "-", "-l", "fra", "--psm", "6"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    pages = out.split("\f")
    assert len(pages) >= len(images), out
    return pages[:len(images)]


@dataclass
class Score:
    read: int = 0
    total: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.read / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.share:.0%} ({self.read}/{self.total})"


def score(slides: list[tuple[TextSlide, list[str]]], accents: bool) -> Score:
    result = Score()
    for slide, texts in slides:
        # "compréhen-|sion" is one word, "Saint-|Vincent" two: both readings count.
        read = {w for t in texts for w in words(t, accents) + words(re.sub(r"-\s*\n\s*", "", t), accents)}
        want = words(f"{slide.title} {slide.body}", accents)
        result.total += len(want)
        result.read += sum(w in read for w in want)
        result.missed += [w for w in want if w not in read]
    return result


@pytest.mark.timeout(300)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_french_slides_are_read_back(size: tuple[int, int], tmp_path: Path,
                                     record_property: Callable[[str, object], None]) -> None:
    slides = [TextSlide(id=f"s{i}", title=t, body=b, duration=DURATION) for i, (t, b) in enumerate(SLIDES)]
    frames = [distinct_frames(size, s) for s in slides]
    counts = [len(f) for f in frames]
    figures = {}
    for name, blur in (("seen", SEEN_BLUR), ("sharp", 0.0)):
        texts = ocr([for_ocr(f, blur) for fs in frames for f in fs], tmp_path)
        per_slide, at = [], 0
        for slide, n in zip(slides, counts):
            per_slide.append((slide, texts[at:at + n]))
            at += n
        figures[name] = (score(per_slide, accents=False), score(per_slide, accents=True))
    seen, sharp = figures["seen"], figures["sharp"]
    line = (f"{size[0]}x{size[1]}: {seen[0]} of the words read back (seen; accents kept {seen[1]}), "
            f"sharp {sharp[0]} (accents kept {sharp[1]}); {sum(counts)} frames for {len(slides)} slides")
    print("\nOCR legibility " + line + f"\n  missed (seen): {' '.join(seen[0].missed)}")
    record_property("ocr_words_read", seen[0].share)
    record_property("ocr_words_read_sharp", sharp[0].share)
    assert seen[0].share >= REQUIRED, line


# -- alerts ----------------------------------------------------------------------------------

ALERTS = [
    ("critical", "Crue de la Loire", "Évacuez les berges avant 18 h."),
    ("warning", "Orages violents", "Restez à l'abri, évitez les routes."),
    ("info", "Coupure d'eau", "Quartier des Tilleuls jusqu'à midi."),
    ("critical", "Canicule", "Buvez de l'eau, fermez les volets."),
]
ALERT_SECONDS = 25.0  # simulated: every word scrolls across the panel at least once


def alert_frames(size: tuple[int, int], tmp_path: Path) -> list[tuple[tuple[str, str], list[pygame.Surface]]]:
    """Each alert as the real player shows it on a small panel configured like a new user
    would (png output, no font named) playing a playlist in the ``fullscreen`` layout: the
    player picks the pixel fonts and the LED look all the same. Once ``alert.displayed`` is out, the player's own
    renderer is sampled on simulated time every third of a panel width of scrolling, so
    that every word is whole in at least one frame."""
    import time

    from player.config import config_from_data

    from test_led_colours import Driven

    cfg = config_from_data({
        "panel": {"id": "ocr"},
        "display": {"output": "png", "size": list(size), "path": str(tmp_path / "frame.png")},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
        "alerts": {"info_mode": "fullscreen"},
    })
    panel = Driven(cfg)
    found = []
    try:
        panel.player.start()
        # The town's playlist names the layout of large screens, as one made for them would.
        panel.send("panels/ocr/playlist", {"id": "mairie", "version": 1, "layout": "fullscreen", "slides": [
            {"id": "t", "type": "text", "duration": 60, "title": "Mairie", "body": "Ouverte de 9 h à 12 h"}]})
        panel.run(10, lambda: panel.seen("playlist.applied"))
        assert panel.player.layout.name == "fullscreen"
        step = size[0] / 3 / 24.0  # the LED alert screen scrolls at 24 px/s
        for i, (level, title, body) in enumerate(ALERTS):
            panel.send(f"all/alerts/o{i}", {"level": level, "title": title, "body": body})
            panel.run(10, lambda i=i: panel.seen("alert.displayed", alert=f"o{i}"))
            view = panel.player.alerts.view
            assert view.led and view.painter.face.spec == "pixel", "a small panel's alert in the pixel fonts"
            renderer, now = panel.player.renderer, time.monotonic()
            seen: dict[bytes, pygame.Surface] = {}
            t = now
            while t < now + ALERT_SECONDS:
                renderer.render(t, WALL)
                frame = renderer.snapshot()
                seen.setdefault(hashlib.sha256(pygame.image.tobytes(frame, "RGB")).digest(), frame)
                t += step
            found.append(((title, body), list(seen.values())))
            panel.send(f"all/alerts/o{i}", b"")
            panel.run(10, lambda i=i: panel.seen("alert.ended", alert=f"o{i}"))
    finally:
        panel.player.close()
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_french_alerts_are_read_back(size: tuple[int, int], tmp_path: Path,
                                     record_property: Callable[[str, object], None]) -> None:
    shown = alert_frames(size, tmp_path)
    slides = [TextSlide(id=f"a{i}", title=t, body=b, duration=ALERT_SECONDS) for i, ((t, b), _) in enumerate(shown)]
    counts = [len(frames) for _, frames in shown]
    texts = ocr([for_ocr(f, SEEN_BLUR) for _, frames in shown for f in frames], tmp_path)
    per_alert, at = [], 0
    for slide, n in zip(slides, counts):
        per_alert.append((slide, texts[at:at + n]))
        at += n
    seen, kept = score(per_alert, accents=False), score(per_alert, accents=True)
    line = (f"{size[0]}x{size[1]}: {seen} of the alerts' words read back (seen; accents kept {kept}); "
            f"{sum(counts)} frames for {len(slides)} alerts")
    print("\nOCR legibility of alerts " + line + f"\n  missed: {' '.join(seen.missed)}")
    record_property("ocr_alert_words_read", seen.share)
    assert seen.share >= REQUIRED, line

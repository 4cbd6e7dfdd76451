"""The ticker's speed and wrap, and the clock zone, checked on real pygame pixels."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pygame
import pytest

from player.render.clock import Clock, french_date, french_short_date
from player.render.fonts import FontFace, open_face
from player.render.text import TextPainter
from player.render.ticker import Ticker

BG = (0, 40, 80)
INK = (255, 255, 255)
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def face() -> FontFace:
    return open_face(None)


@pytest.fixture
def display() -> Iterator[pygame.Surface]:
    """A real (dummy-driver) display, so that strips are converted to its format."""
    pygame.display.init()
    try:
        yield pygame.display.set_mode((320, 60))
    finally:
        pygame.display.quit()


def columns(surface: pygame.Surface) -> list[bytes]:
    """Each pixel column of ``surface`` as bytes, left to right."""
    turned = pygame.transform.rotate(surface, 90)  # column x becomes row (width - 1 - x)
    data = pygame.image.tobytes(turned, "RGB")
    stride = turned.get_width() * 3
    rows = [data[i * stride:(i + 1) * stride] for i in range(turned.get_height())]
    return rows[::-1]


def leftward_shift(before: list[bytes], after: list[bytes], most: int) -> int:
    """How many pixels the picture moved left between two frames, from pixels alone.

    The one shift s in 0..most for which after[x] == before[x + s] everywhere they overlap.
    """
    width = len(before)
    matches = [s for s in range(most + 1)
               if all(after[x] == before[x + s] for x in range(width - s))]
    assert len(matches) == 1, f"ambiguous or no match: {matches}"
    return matches[0]


def ink_columns(surface: pygame.Surface) -> list[bool]:
    blank = bytes(BG) * surface.get_height()
    return [col != blank for col in columns(surface)]


# --- ticker ------------------------------------------------------------------------------

@pytest.mark.parametrize("speed", [137.0, 48.5])
@pytest.mark.parametrize("antialias", [True, False])
def test_ticker_speed_measured_on_pixels(
    face: FontFace, display: pygame.Surface, speed: float, antialias: bool
) -> None:
    painter = TextPainter(face, antialias=antialias)
    band = pygame.Rect(0, 10, 320, 40)
    start = 5000.0
    ticker = Ticker(painter, ["Marché de Noël", "Encombrants jeudi"], band.size, INK, BG,
                    speed, start)
    assert ticker.animating
    steps = [0.017, 0.040, 0.005]  # an irregular frame rate
    most = math.ceil(speed * max(steps)) + 2
    now = start + 0.0123
    display.fill((255, 0, 0))
    ticker.draw(display, band, now)
    first_time, previous = now, columns(display.subsurface(band))
    travelled, i = 0, 0
    # Long enough to go through the wrap of the strip at least once.
    while travelled < ticker.period * 1.3:
        now += steps[i % len(steps)]
        i += 1
        ticker.draw(display, band, now)
        current = columns(display.subsurface(band))
        travelled += leftward_shift(previous, current, most)
        previous = current
    measured = travelled / (now - first_time)
    assert measured == pytest.approx(speed, rel=0.02)
    # Nothing drawn outside the band.
    above = display.subsurface((0, 0, 320, band.top))
    assert {tuple(above.get_at((x, y))) for x in range(320) for y in range(band.top)} == {(255, 0, 0, 255)}


def test_ticker_wraps_seamlessly(face: FontFace) -> None:
    # Two identical items: the scrolling tape repeats every half strip if, and only if,
    # the end of the strip joins its start exactly like two items join in the middle.
    painter = TextPainter(face, antialias=False)
    probe = Ticker(painter, ["Ab"], (10, 30), INK, BG, 60.0, 0.0)
    ticker = Ticker(painter, ["Ab", "Ab"], (10, 30), INK, BG, 60.0, 0.0)
    half = probe.period
    assert ticker.period == 2 * half
    canvas = pygame.Surface((3 * ticker.period, 30))
    for offset in (ticker.period - 5, ticker.period - half // 2, 3):
        canvas.fill((255, 0, 0))
        ticker.draw(canvas, canvas.get_rect(), offset / 60.0 + 1e-6)
        assert ticker.offset(offset / 60.0 + 1e-6) == offset
        cols = columns(canvas)
        assert sum(ink_columns(canvas)) > 0
        assert all(cols[x] == cols[x + half] for x in range(len(cols) - half))


def test_short_ticker_text_loops_across_the_whole_band(face: FontFace) -> None:
    painter = TextPainter(face)
    ticker = Ticker(painter, ["Info"], (800, 30), INK, BG, 30.0, 0.0)
    assert ticker.animating and ticker.period < 200
    canvas = pygame.Surface((800, 30))
    ticker.draw(canvas, canvas.get_rect(), 2.5)
    ink = ink_columns(canvas)
    for x in range(0, 800 - ticker.period, 50):
        assert any(ink[x:x + ticker.period]), f"blank stretch at x={x}"


def test_empty_ticker_is_still(face: FontFace) -> None:
    ticker = Ticker(TextPainter(face), ["", "  "], (200, 30), INK, BG, 80.0, 0.0)
    assert not ticker.animating
    assert ticker.next_frame(12.0) is None
    canvas = pygame.Surface((200, 30))
    canvas.fill((255, 0, 0))
    ticker.draw(canvas, canvas.get_rect(), 3.0)
    assert sum(ink_columns(canvas)) == 0  # the band is plain background


def test_ticker_next_frame_is_the_next_pixel_step(face: FontFace) -> None:
    ticker = Ticker(TextPainter(face), ["Collecte des encombrants"], (300, 30), INK, BG,
                    40.0, 100.0)
    now = 100.3
    wake = ticker.next_frame(now)
    assert wake is not None and now < wake <= now + 1 / 40.0 + 1e-6
    assert ticker.offset(wake) == ticker.offset(now) + 1
    assert ticker.offset(wake - 1e-4) == ticker.offset(now)


def test_transparent_ticker_keeps_what_is_beneath(face: FontFace) -> None:
    ticker = Ticker(TextPainter(face, antialias=False), ["Info"], (300, 30), INK, None, 30.0, 0.0)
    canvas = pygame.Surface((300, 30))
    canvas.fill(BG)
    ticker.draw(canvas, canvas.get_rect(), 0.0)
    colours = {tuple(canvas.get_at((x, y)))[:3] for x in range(300) for y in range(30)}
    assert colours == {BG, INK}


def test_negative_speed_is_refused(face: FontFace) -> None:
    with pytest.raises(ValueError):
        Ticker(TextPainter(face), ["x"], (100, 20), INK, BG, -5.0, 0.0)


# --- clock -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("when", "long", "short"),
    [
        (datetime(2026, 11, 25), "mercredi 25 novembre 2026", "mer. 25 nov."),
        (datetime(2026, 12, 1), "mardi 1er décembre 2026", "mar. 1er déc."),
        (datetime(2027, 2, 14), "dimanche 14 février 2027", "dim. 14 févr."),
        (datetime(2026, 8, 15), "samedi 15 août 2026", "sam. 15 août"),
        (datetime(2026, 6, 19), "vendredi 19 juin 2026", "ven. 19 juin"),
        (datetime(2026, 3, 2), "lundi 2 mars 2026", "lun. 2 mars"),
        (datetime(2026, 7, 16), "jeudi 16 juillet 2026", "jeu. 16 juil."),
    ],
)
def test_french_dates(when: datetime, long: str, short: str) -> None:
    assert french_date(when) == long
    assert french_short_date(when) == short


@pytest.fixture
def painter(face: FontFace) -> TextPainter:
    return TextPainter(face)


def test_clock_converts_to_its_timezone(painter: TextPainter) -> None:
    winter = datetime(2026, 11, 25, 17, 34, 12, tzinfo=timezone.utc)
    summer = datetime(2026, 7, 14, 10, 0, tzinfo=timezone.utc)
    new_year = datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc)
    paris, utc = Clock(painter, PARIS), Clock(painter, timezone.utc)
    assert paris.text(winter, 100, 40) == "18:34"
    assert utc.text(winter, 100, 40) == "17:34"
    assert paris.text(summer, 100, 40) == "12:00"
    assert paris.text(new_year.astimezone(ZoneInfo("America/New_York")), 100, 40) == "00:30"
    assert paris.text(new_year, 2000, 80) == "00:30  vendredi 1er janvier 2027"
    assert utc.text(new_year, 2000, 80) == "23:30  jeudi 31 décembre 2026"


def test_clock_shows_the_date_when_there_is_room(painter: TextPainter) -> None:
    now = datetime(2026, 11, 25, 17, 34, tzinfo=timezone.utc)
    clock = Clock(painter, PARIS)
    assert clock.text(now, 1920, 100) == "18:34  mercredi 25 novembre 2026"  # header band
    assert clock.text(now, 400, 300) == "18:34\nmer. 25 nov."  # a squarish box
    assert clock.text(now, 120, 60) == "18:34"  # no room: the time alone


def test_clock_refuses_naive_times(painter: TextPainter) -> None:
    with pytest.raises(ValueError):
        Clock(painter, PARIS).text(datetime(2026, 11, 25, 18, 0), 100, 40)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 25, 17, 34, 12, 500, tzinfo=timezone.utc),
         datetime(2026, 11, 25, 17, 35, tzinfo=timezone.utc)),
        (datetime(2026, 11, 25, 17, 35, tzinfo=timezone.utc),
         datetime(2026, 11, 25, 17, 36, tzinfo=timezone.utc)),
        # 01:59:30 CET, a minute before clocks jump to 03:00 CEST.
        (datetime(2026, 3, 29, 1, 59, 30, tzinfo=PARIS),
         datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)),
        # The second 02:59:59 in the autumn (fold=1, CET).
        (datetime(2026, 10, 25, 2, 59, 59, tzinfo=PARIS, fold=1),
         datetime(2026, 10, 25, 2, 0, tzinfo=timezone.utc)),
    ],
)
def test_next_change_is_the_next_minute(painter: TextPainter, now: datetime, expected: datetime) -> None:
    nxt = Clock(painter, PARIS).next_change(now)
    assert nxt == expected  # the same instant
    assert nxt.tzinfo is now.tzinfo
    assert nxt.second == 0 and nxt.microsecond == 0
    elapsed = nxt.astimezone(timezone.utc) - now.astimezone(timezone.utc)
    assert timedelta(0) < elapsed <= timedelta(minutes=1)


def test_clock_drawn_inside_its_zone(painter: TextPainter) -> None:
    canvas = pygame.Surface((500, 200))
    canvas.fill(BG)
    zone = pygame.Rect(100, 50, 300, 100)
    now = datetime(2026, 11, 25, 17, 34, tzinfo=timezone.utc)
    ink = Clock(painter, PARIS).draw(canvas, zone, now, INK)
    assert zone.contains(ink) and ink.w > 0
    mask = pygame.mask.from_threshold(canvas, BG, (1, 1, 1, 255))
    mask.invert()
    assert mask.get_bounding_rects() and zone.contains(mask.get_bounding_rects()[0].unionall(
        mask.get_bounding_rects()))
    # What is drawn is the time then the date, as text() says, at the sizes they fit.
    reference = pygame.Surface((500, 200))
    reference.fill(BG)
    shown = Clock(painter, PARIS).text(now, zone.w, zone.h)
    assert shown.startswith("18:34")
    if "\n" in shown:
        painter.draw(reference, zone, *shown.split("\n"), INK)
    else:
        painter.draw_line(reference, zone, shown, INK)
    assert pygame.image.tobytes(reference, "RGB") == pygame.image.tobytes(canvas, "RGB")

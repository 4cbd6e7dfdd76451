"""The test card, the identify screen and the information block, on real pygame pixels."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.render.fonts import open_face
from player.render.identify import (PAGE_SECONDS, IdentifyView, PanelInfo, broker_text, describe_addresses,
                                    info_block, local_addresses, local_interfaces, panel_rows)
from player.render.testcard import BARS, CORNER, GRID_COLOR, RAMP_STEPS, TestCard, format_reading
from player.render.text import TextPainter

WALL = datetime(2026, 11, 25, 17, 30, 5, 250000, tzinfo=timezone.utc)
T0 = 100.0
SIZE = (1280, 720)
LED = (128, 64)
SENTINEL = (1, 2, 3)
INFO = PanelInfo("mairie-entree", "Mairie — entrée", "0.1.0", ("192.168.1.20 (eth0)", "2001:db8::5 (eth0)"),
                 "10.0.0.5:1883", True)
READINGS = {"ambient": 0.41, "cpu_temp_c": 48.3, "door_open": False}


def rgb(surface: pygame.Surface, xy: tuple[int, int]) -> tuple[int, int, int]:
    c = surface.get_at(xy)
    return c.r, c.g, c.b


def pixels(surface: pygame.Surface, rect: pygame.Rect) -> bytes:
    return pygame.image.tobytes(surface.subsurface(rect), "RGB")


def ink_count(surface: pygame.Surface, rect: pygame.Rect, background: tuple[int, int, int]) -> int:
    mask = pygame.mask.from_threshold(surface.subsurface(rect), background, (1, 1, 1, 255))
    return rect.w * rect.h - mask.count()


def card_frame(card: TestCard, size: tuple[int, int], now: float = T0, wall: datetime = WALL) -> pygame.Surface:
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    card.draw(surface, now, wall)
    return surface


# --- the pattern ------------------------------------------------------------------------------

@pytest.mark.parametrize("size,led", [(SIZE, False), ((540, 960), False), (LED, True), ((192, 96), True)])
def test_colour_bars_are_where_they_belong(size: tuple[int, int], led: bool) -> None:
    card = TestCard(INFO, readings=READINGS, led=led)
    screen = card_frame(card, size)
    lay = card.layout(size)
    assert [c for _, c in lay.bars] == [c for _, c in BARS]
    assert [name for name, _ in BARS] == ["white", "yellow", "cyan", "green", "magenta", "red", "blue", "black"]
    width = size[0]
    for i, (rect, colour) in enumerate(lay.bars):
        assert rect.x == width * i // 8 and rect.y == 0 and rect.h >= size[1] // 4
        assert rgb(screen, rect.center) == colour, (i, colour)
    assert lay.bars[-1][0].right == width


@pytest.mark.parametrize("size,led", [(SIZE, False), (LED, True)])
def test_grey_ramp_is_monotonic(size: tuple[int, int], led: bool) -> None:
    card = TestCard(INFO, led=led)
    screen = card_frame(card, size)
    lay = card.layout(size)
    assert len(lay.ramp) == RAMP_STEPS >= 16
    greys = [rgb(screen, rect.center) for rect, _ in lay.ramp]
    assert all(r == g == b for r, g, b in greys)
    levels = [g[0] for g in greys]
    assert levels[0] == 0 and levels[-1] == 255
    assert all(a < b for a, b in zip(levels, levels[1:]))
    assert all(rect.bottom <= lay.field.y for rect, _ in lay.ramp)


@pytest.mark.parametrize("size,led,step", [(SIZE, False, 64), (LED, True, 32), ((192, 96), True, 32)])
def test_grid_lines_are_on_their_pixel_columns_and_rows(size: tuple[int, int], led: bool, step: int) -> None:
    card = TestCard(INFO, led=led)
    screen = card_frame(card, size)
    lay = card.layout(size)
    assert lay.grid == step
    w, h = size
    field, info = lay.field, lay.info
    y = next(y for y in range(field.y + 1, field.bottom) if y % step and (y < info.y or card.small(size)))
    columns = [*range(0, w, step), w - 1]
    for x in columns:
        if not card.small(size) and info.x <= x < info.right:
            continue  # behind the information box
        assert rgb(screen, (x, y)) == GRID_COLOR, x
        if x + 1 < w and x + 1 not in columns:
            assert rgb(screen, (x + 1, y)) == (0, 0, 0)
    for row in range(field.y, h):
        on_line = row % step == 0 or row == h - 1
        assert (rgb(screen, (3, row)) == GRID_COLOR) == on_line or rgb(screen, (3, row)) == CORNER, row


def test_led_grid_marks_module_edges_at_32_pixels() -> None:
    card = TestCard(INFO, led=True)
    screen = card_frame(card, LED)
    y = card.layout(LED).field.y + 3
    assert [x for x in range(LED[0]) if rgb(screen, (x, y)) == GRID_COLOR] == [0, 32, 64, 96, 127]


@pytest.mark.parametrize("size,led", [(SIZE, False), (LED, True)])
def test_corners_and_orientation_marks(size: tuple[int, int], led: bool) -> None:
    card = TestCard(INFO, led=led)
    screen = card_frame(card, size)
    w, h = size
    for corner in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        assert rgb(screen, corner) == CORNER
    box = card.layout(size).orientation
    assert box.x < w // 4 and box.y < h // 8
    assert ink_count(screen, box, (0, 0, 0)) > 5  # the arrow (and the word when it fits)
    if not led:
        words = pygame.Rect(box.x + box.w // 3, box.y, box.w - box.w // 3, box.h)
        assert ink_count(screen, words, (0, 0, 0)) > 100  # HAUT


# --- the information block -----------------------------------------------------------------------

def test_info_block_shows_text_and_updates_live() -> None:
    card = TestCard(INFO, readings=READINGS, tz=ZoneInfo("Europe/Paris"))
    first = card_frame(card, SIZE)
    box = card.layout(SIZE).info
    assert ink_count(first, box.inflate(-8, -8), (0, 0, 0)) > 2000
    rows = dict(card.rows(SIZE, WALL))
    assert rows["Panneau"] == "mairie-entree" and rows["Écran"] == "1280 × 720"
    assert rows["Heure"] == "18:30:05" and rows["Temp. CPU"] == "48,3 °C" and rows["Porte"] == "fermée"
    assert rows["MQTT"] == "connecté (10.0.0.5:1883)"
    assert card.last_block is not None and card.last_block.pages == 1
    assert box.contains(card.last_block.ink)

    # The next frame is due at the next second of the wall clock, and shows it.
    due = card.next_frame(T0)
    assert due is not None and abs(due - (T0 + 0.75)) < 1e-3
    tick = card_frame(card, SIZE, due, WALL + timedelta(seconds=due - T0))
    assert dict(card.rows(SIZE, WALL + timedelta(seconds=due - T0)))["Heure"] == "18:30:06"
    assert pixels(first, box) != pixels(tick, box)

    # New sensor readings show on the next frame.
    revision = card.revision
    card.update({"ambient": 0.9, "cpu_temp_c": None, "door_open": True})
    assert card.revision == revision + 1
    card.update({"ambient": 0.9, "cpu_temp_c": None, "door_open": True})
    assert card.revision == revision + 1
    fresh = card_frame(card, SIZE, due, WALL + timedelta(seconds=due - T0))
    assert pixels(fresh, box) != pixels(tick, box)
    assert dict(card.rows(SIZE, WALL))["Temp. CPU"] == "—"


def test_led_card_takes_turns_between_pattern_and_information() -> None:
    card = TestCard(INFO, readings=READINGS, led=True)
    pattern = card_frame(card, LED, T0)
    assert card.showing_pattern(LED, T0, WALL)
    assert rgb(pattern, card.layout(LED).bars[2][0].center) == (0, 255, 255)
    page = card_frame(card, LED, T0 + PAGE_SECONDS + 0.5)
    assert not card.showing_pattern(LED, T0 + PAGE_SECONDS + 0.5, WALL)
    assert card.last_block is not None and card.last_block.pages > 1 and card.last_block.px >= 8
    assert ink_count(page, pygame.Rect(0, 0, *LED), (0, 0, 0)) > 100
    assert rgb(page, card.layout(LED).bars[2][0].center) != (0, 255, 255)
    seen = set()
    now = T0 + PAGE_SECONDS + 0.5
    for _ in range(card.last_block.pages):
        card_frame(card, LED, now)
        assert card.last_block is not None
        seen.add(card.last_block.page)
        now += PAGE_SECONDS
    assert seen == set(range(card.last_block.pages))
    due = card.next_frame(T0 + 0.1)
    assert due is not None and due <= T0 + 1.0


def test_format_reading() -> None:
    assert format_reading("ambient", 0.413) == ("Lumière", "0,41")
    assert format_reading("cpu_temp_c", 48.26) == ("Temp. CPU", "48,3 °C")
    assert format_reading("door_open", True) == ("Porte", "ouverte")
    assert format_reading("clock_synced", False) == ("Horloge synchro", "non")
    assert format_reading("lux", None) == ("lux", "—")
    assert format_reading("lux", float("nan")) == ("lux", "—")
    assert format_reading("brightness", 62) == ("Luminosité", "62 %")


def test_panel_rows_and_broker_text() -> None:
    rows = panel_rows(INFO)
    assert rows[0] == ("Panneau", "mairie-entree")
    assert ("IP", "192.168.1.20 (eth0)") in rows and ("", "2001:db8::5 (eth0)") in rows
    assert broker_text(PanelInfo("p", broker="h:1883", connected=False)) == "déconnecté (h:1883)"
    assert broker_text(PanelInfo("p")) == "non configuré"
    assert ("IP", "aucune") in panel_rows(PanelInfo("p"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=80)), min_size=1, max_size=20),
       w=st.integers(1, 400), h=st.integers(1, 200), page=st.integers(-5, 50))
def test_info_block_never_draws_outside_its_rectangle(rows: list[tuple[str, str]], w: int, h: int,
                                                      page: int) -> None:
    painter = TextPainter(open_face(None), antialias=False)
    surface = pygame.Surface((w + 20, h + 20))
    surface.fill((0, 0, 0))
    rect = pygame.Rect(10, 10, w, h)
    block = info_block(surface, rect, rows, painter, color=(255, 255, 255), page=page)
    assert 0 <= block.page < block.pages
    outside = pygame.mask.from_threshold(surface, (0, 0, 0), (1, 1, 1, 255))
    outside.invert()
    outside.erase(pygame.mask.Mask(rect.size, fill=True), rect.topleft)
    assert outside.count() == 0


def test_info_block_pages_when_rows_do_not_fit() -> None:
    painter = TextPainter(open_face(None), antialias=False)
    rows = [(f"L{i}", f"valeur {i}") for i in range(10)]
    rect = pygame.Rect(0, 0, 120, 30)
    shots = []
    for page in range(3):
        surface = pygame.Surface(rect.size)
        surface.fill((0, 0, 0))
        block = info_block(surface, rect, rows, painter, color=(255, 255, 255), page=page)
        assert block.px >= 8 and block.pages == -(-10 // block.rows_per_page) and block.pages > 1
        shots.append(pixels(surface, rect))
    assert len(set(shots)) == 3


# --- identify ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size,led", [(SIZE, False), (LED, True)])
def test_identify_shows_the_panel_and_expires(size: tuple[int, int], led: bool) -> None:
    view = IdentifyView(INFO, until=T0 + 30, led=led)
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    view.draw(surface, T0, WALL)
    id_rect, block = view.layout(size)
    yellow = pygame.mask.from_threshold(surface.subsurface(id_rect), IdentifyView.ID_COLOR, (1, 1, 1, 255))
    assert yellow.count() > (40 if led else 1000)
    boxes = yellow.get_bounding_rects()
    assert boxes[0].unionall(boxes[1:]).h >= (8 if led else 40)
    assert ink_count(surface, block, IdentifyView.BACKGROUND) > 50
    assert rgb(surface, (0, 0)) == IdentifyView.FRAME
    due = view.next_frame(T0)
    assert due is not None and T0 < due <= T0 + 30
    assert not view.expired(T0 + 29.9)

    later = pygame.Surface(size)
    later.fill(SENTINEL)
    view.draw(later, T0 + 30, WALL)
    assert view.expired(T0 + 30) and view.next_frame(T0 + 30) is None
    assert pygame.mask.from_threshold(later, SENTINEL, (1, 1, 1, 255)).count() == size[0] * size[1]


def test_identify_update_and_deadline() -> None:
    view = IdentifyView(INFO, until=T0 + 10)
    card = pygame.Surface(SIZE)
    view.draw(card, T0, WALL)
    assert view.next_frame(T0) == T0 + 10
    revision = view.revision
    view.update(PanelInfo("mairie-entree", broker="10.0.0.5:1883", connected=False), until=T0 + 20)
    assert view.revision == revision + 2 and view.next_frame(T0) == T0 + 20


# --- addresses ---------------------------------------------------------------------------------

def fake_net(tmp_path: Path, names: list[str], inet6: str) -> tuple[Path, Path]:
    sys_net = tmp_path / "sys" / "class" / "net"
    for name in names:
        (sys_net / name).mkdir(parents=True)
    if_inet6 = tmp_path / "if_inet6"
    if_inet6.write_text(inet6)
    return sys_net, if_inet6


def test_addresses_from_a_fake_tree_leave_out_loopback_and_link_local(tmp_path: Path) -> None:
    sys_net, if_inet6 = fake_net(tmp_path, ["lo", "pptest0", "pptest1"], (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "20010db8000000000000000000000005 02 40 00 80  pptest0\n"
        "fe800000000000000000000000000001 02 40 20 80  pptest0\n"
        "fd000000000000000000000000000002 03 40 00 80  pptest1\n"
        "fd000000000000000000000000000009 04 40 00 80  elsewhere\n"
        "garbage\n"
        "zz000000000000000000000000000002 03 40 00 80  pptest1\n"))
    assert local_interfaces(sys_net, if_inet6) == [("pptest0", "2001:db8::5"), ("pptest1", "fd00::2")]
    assert local_addresses(sys_net, if_inet6) == ["2001:db8::5", "fd00::2"]
    assert describe_addresses(sys_net, if_inet6) == ["2001:db8::5 (pptest0)", "fd00::2 (pptest1)"]
    assert local_addresses(tmp_path / "absent", if_inet6) == []


def test_real_addresses_are_never_loopback() -> None:
    for addr in local_addresses():
        assert not addr.startswith("127.") and addr != "::1"
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        socket.inet_pton(family, addr)  # a well-formed address

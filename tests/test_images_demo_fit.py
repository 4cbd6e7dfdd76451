"""The bundled demo keeps its pictures' text visible at every built-in layout's size.

A picture shown with ``cover`` loses what falls outside the main zone's proportions;
that may only be plain margin, never a title. Each image slide of each bundled
playlist is checked in every built-in layout (a crew may set any of them) at the usual
panel sizes, by decoding it as the player does and looking at what is cut away.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops

from player.app import bundled_dir
from player.content import ImageSlide, parse_playlist
from player.layout import builtin_layouts, load_layout
from player.render.images import decode_image

PANEL_SIZES = [(1920, 1080), (1366, 768), (1280, 1024), (800, 480), (1080, 1920), (768, 1366),
               (64, 32), (128, 32), (128, 64), (192, 96)]
TOLERANCE = 24  # a margin may carry a little grain or anti-aliasing, not text


def cut_away(size: tuple[int, int], target: tuple[int, int], fit: str) -> list[tuple[int, int, int, int]]:
    """The boxes of the picture (in its pixels) that ``fit`` leaves out of ``target``."""
    w, h = size
    tw, th = target
    if fit != "cover":
        return []  # contain shows everything; stretch everything, distorted
    k = max(tw / w, th / h)
    cw, ch = tw / k, th / k
    x0, y0 = int((w - cw) / 2), int((h - ch) / 2)  # whole pixels cut on each side
    boxes = []
    if x0 > 0:
        boxes += [(0, 0, x0, h), (w - x0, 0, w, h)]
    if y0 > 0:
        boxes += [(0, 0, w, y0), (0, h - y0, w, h)]
    return boxes


def plain(picture: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """True when ``box`` of ``picture`` is one colour (that of its first pixel), give or take."""
    region = picture.crop(box)
    solid = Image.new("RGB", region.size, region.getpixel((0, 0)))
    return all(high <= TOLERANCE for _, high in ImageChops.difference(region, solid).getextrema())


def demo_image_slides() -> list[tuple[str, ImageSlide, Path]]:
    folder = bundled_dir()
    found = []
    for playlist_file in sorted(folder.glob("playlist*.json")):
        playlist = parse_playlist(playlist_file.read_bytes(), layouts=frozenset(builtin_layouts()))
        for slide in playlist.slides:
            if isinstance(slide, ImageSlide):
                (path,) = folder.glob(f"{slide.asset}.*")
                found.append((playlist_file.name, slide, path))
    return found


@pytest.mark.parametrize(("playlist", "slide", "path"), demo_image_slides(),
                         ids=lambda v: v.id if isinstance(v, ImageSlide) else (v if isinstance(v, str) else ""))
def test_the_demo_pictures_lose_no_text_in_any_built_in_layout(playlist: str, slide: ImageSlide, path: Path) -> None:
    with Image.open(path) as opened:
        picture = opened.convert("RGB")
    problems = []
    for layout_name in sorted(builtin_layouts()):
        layout = load_layout(layout_name)
        for size in PANEL_SIZES:
            _, _, zw, zh = layout.main.pixels(*size)
            if zw <= 0 or zh <= 0:
                continue
            for box in cut_away(picture.size, (zw, zh), slide.fit):
                if not plain(picture, box):
                    problems.append(f"{layout_name} {size[0]}x{size[1]} (main zone {zw}x{zh}) cuts {box}")
            # and the player does decode it at that size
            assert decode_image(path, (zw, zh), slide.fit, (0, 0, 0)).size == (zw, zh)
    assert not problems, f"{playlist}: {slide.id} ({slide.fit}) loses more than plain margin: " + "; ".join(problems[:4])


def test_the_check_sees_a_title_cut_by_cover(tmp_path: Path) -> None:
    """The rule itself: a 16:9 poster with its title near the top, shown with ``cover`` in
    the landscape layout's main zone (wider than 16:9), loses the title."""
    poster = Image.new("RGB", (1600, 900), (245, 236, 216))
    poster.paste((44, 62, 80), (300, 60, 1300, 130))  # the title's ink
    _, _, zw, zh = load_layout("landscape").main.pixels(1920, 1080)
    boxes = cut_away(poster.size, (zw, zh), "cover")
    assert boxes and not all(plain(poster, box) for box in boxes)
    assert cut_away(poster.size, (zw, zh), "contain") == []

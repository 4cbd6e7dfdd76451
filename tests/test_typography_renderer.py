"""A Renderer sets each text slide by its language (per-slide lang, else panel.language):
``Renderer(language=...)`` and ``painter.for_lang(slide.lang)`` in its layout."""
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest

from player.content import TextSlide
from player.layout import load_layout
from player.render.compositor import Renderer
from player.render.text import NNBSP

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # a real narrow no-break space
pytestmark = pytest.mark.skipif(not DEJAVU.exists(), reason="needs fonts-dejavu-core (scripts/bootstrap.sh)")


def drawn(slide: TextSlide, language: str = "fr") -> bytes:
    with Renderer((480, 270), load_layout("fullscreen"), tz=ZoneInfo("UTC"), transition="cut",
                  font=str(DEJAVU), language=language) as r:
        r.show(slide, 0.0)
        r.render(0.0, datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc))
        return pygame.image.tobytes(r.snapshot(), "RGB")


def test_slide_lang_and_panel_language_choose_the_typography() -> None:
    typed = TextSlide("a", body="leave now !")
    french = TextSlide("a", body=f"leave now{NNBSP}!")
    assert drawn(TextSlide("a", body="leave now !", lang="en")) == drawn(typed, "en")
    assert drawn(TextSlide("a", body="leave now !")) == drawn(french, "en")
    assert drawn(TextSlide("a", body="leave now !"), "en") != drawn(french, "en")
    assert drawn(TextSlide("a", body="leave now !", lang="fr"), "en") == drawn(french, "en")

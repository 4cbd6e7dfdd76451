"""The alert screen never kills the player: the field report's case, end to end.

An LED panel (64x32, png output) whose font is a PCF pixel font of Debian's xfonts-base
without an 8 px size used to raise in the alert view at the first critical alert, and
again at every restart since the alert is retained. Here the real player shows it,
stays up, and shows hostile texts too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_broker import wait_until
from fixtures_player import PanelProcess, rgb, text_playlist
from test_e2e_alerts import CRITICAL, for_alert

PIXEL_FONTS = Path("/usr/share/fonts/X11/misc")  # xfonts-base: scripts/bootstrap.sh --tests installs it


def critical_share(p: PanelProcess) -> float:
    try:
        img = p.picture()
    except OSError:
        return 0.0
    return sum(n for n, c in img.getcolors(64 * 32) if c == CRITICAL) / (64 * 32)


@pytest.mark.parametrize("font", ["6x13B.pcf.gz", "5x7.pcf.gz"])
def test_a_pixel_font_led_panel_shows_critical_alerts_and_stays_up(panel, font):
    path = PIXEL_FONTS / font
    assert path.is_file(), f"{path} missing: run scripts/bootstrap.sh --tests (installs xfonts-base)"
    p = panel(size=(64, 32), extra={"display": {"font": str(path), "layout": "led-matrix"}})
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, "#12ab34", layout="led-matrix"), retain=True)
    p.wait_event("playlist.applied")
    texts = [("CRUE", "Évacuez les berges."), ("ALERTE" + "É" * 190, ""), ("طوارئ فيضان", "اخلوا ضفاف النهر"),
             ("ORAGE \x00\x1b[31m", "🌊🌊🌊 " * 50), ("X", "mot" * 330)]
    for i, (title, body) in enumerate(texts):
        mark = p.sub.mark()
        p.publish(f"all/alerts/a{i}", {"level": "critical", "title": title, "body": body}, retain=True)
        p.wait_event("alert.displayed", after=mark, where=for_alert(f"a{i}"), timeout=10)
        wait_until(lambda: critical_share(p) > 0.2, 3, f"alert {i} on the panel ({p.picture().getcolors(2048)})")
        p.publish(f"all/alerts/a{i}", b"", retain=True)
        p.wait_event("alert.ended", after=mark, where=for_alert(f"a{i}"))
    assert p.proc is not None and p.proc.poll() is None
    p.wait_colour(rgb("#12ab34"))

"""A real player process and a real broker: playlists (CONTRACT §3, §4)."""

import json

from fixtures_player import rgb, text_playlist


def test_pushed_playlist_is_applied_within_a_second_and_seen_on_screen(panel):
    p = panel()
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", text_playlist("essai", 1, "#12ab34"), retain=True)
    event = p.wait_event("playlist.applied", after=mark, timeout=5)
    assert event["playlist"] == "essai" and event["version"] == 1
    assert p.wait_colour(rgb("#12ab34"), timeout=1.0) <= 1.0


def test_retained_playlist_applies_at_connect(panel, any_broker):
    # RabbitMQ too: it gives retained messages to the panel's exact playlist subscriptions.
    any_broker.publish("signage/panels/p1/playlist", json.dumps(text_playlist("avant", 2, "#aa2211")).encode(),
                   retain=True)
    p = panel()
    p.wait_event("playlist.applied", where=lambda e: e["playlist"] == "avant")
    p.wait_colour(rgb("#aa2211"))


def test_group_precedence_and_fall_back_when_the_panel_playlist_is_cleared(panel, any_broker):
    p = panel(groups=["centre", "nord"])
    p.publish("groups/nord/playlist", text_playlist("nord", 1, "#000080"), retain=True)
    p.wait_colour(rgb("#000080"))
    p.publish("groups/centre/playlist", text_playlist("centre", 1, "#008000"), retain=True)
    p.wait_colour(rgb("#008000"))
    p.publish("panels/p1/playlist", text_playlist("propre", 1, "#800000"), retain=True)
    p.wait_colour(rgb("#800000"))
    p.publish("panels/p1/playlist", b"", retain=True)
    p.wait_colour(rgb("#008000"))
    p.publish("groups/centre/playlist", b"", retain=True)
    p.wait_colour(rgb("#000080"))


def test_invalid_playlist_is_rejected_with_its_reason_and_changes_nothing(panel):
    p = panel()
    p.publish("panels/p1/playlist", text_playlist("bon", 1, "#12ab34"), retain=True)
    p.wait_colour(rgb("#12ab34"))
    mark = p.sub.mark()
    bad = text_playlist("mauvais", 1, "#ff0000")
    bad["slides"][0]["duration"] = -1
    p.publish("panels/p1/playlist", bad, retain=True)
    event = p.wait_event("playlist.rejected", after=mark)
    assert "slides[0].duration: must be greater than 0" in event["reason"]
    assert event.get("playlist") == "mauvais"
    assert p.pixel(5, 5) == rgb("#12ab34")


def test_last_good_playlist_is_shown_at_once_after_a_restart_without_broker(panel, broker):
    p = panel()
    p.publish("panels/p1/playlist", text_playlist("garde", 4, "#334455"), retain=True)
    p.wait_colour(rgb("#334455"))
    p.stop()
    broker.stop()
    p.png.unlink()
    p.start(wait_online=False)
    assert p.wait_colour(rgb("#334455"), timeout=5) < 5

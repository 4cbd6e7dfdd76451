"""Playlist precedence and apply rules (CONTRACT §3, §4), without I/O."""

import json

from player.content import parse_playlist
from player.playlists import Candidate, PlaylistManager

SHA1, SHA2 = "1" * 64, "2" * 64


def pl(pid, version, assets=()):
    slides = [{"id": f"s{i}", "type": "image", "asset": f"sha256:{a}"} for i, a in enumerate(assets)]
    slides = slides or [{"id": "t", "type": "text", "title": pid}]
    raw = json.dumps({"id": pid, "version": version, "slides": slides}).encode()
    return parse_playlist(raw), raw


class Disk:
    def __init__(self):
        self.assets = set()

    def has(self, sha):
        return sha in self.assets


def manager(groups=("centre", "nord")):
    disk = Disk()
    m = PlaylistManager(groups, disk.has, asset_wait_s=30)
    p, raw = pl("bundled", 1)
    m.start_with(Candidate(p, raw, "bundled", 0.0))
    return m, disk


def feed(m, source, pid, version, now=1.0, assets=()):
    p, raw = pl(pid, version, assets)
    m.received(source, p, raw, now)
    return m.poll(now)


def test_panel_beats_groups_and_groups_follow_config_order():
    m, _ = manager()
    assert feed(m, "group:nord", "n", 1).apply.playlist.id == "n"
    assert feed(m, "group:centre", "c", 1).apply.playlist.id == "c"
    assert feed(m, "panel", "p", 1).apply.playlist.id == "p"
    # A later message on a lower-precedence source changes nothing on screen.
    assert feed(m, "group:centre", "c", 2).apply is None
    assert m.current.playlist.id == "p"


def test_clearing_falls_back_through_the_precedence():
    m, _ = manager()
    feed(m, "group:nord", "n", 1)
    feed(m, "panel", "p", 1)
    m.received("panel", None, b"", 2.0)
    assert m.poll(2.0).apply.playlist.id == "n"
    m.received("group:nord", None, b"", 3.0)
    # Every topic cleared: the last playlist applied stays (as it would after a restart), not the bundled one.
    assert m.poll(3.0).apply is None
    assert m.current.playlist.id == "n" and m.wanted().source == "stored"


def test_clearing_everything_keeps_the_last_applied_even_after_a_higher_precedence_one():
    m, _ = manager()
    feed(m, "group:nord", "n", 1)
    feed(m, "panel", "p", 1)
    m.received("panel", None, b"", 2.0)
    m.received("group:nord", None, b"", 2.0)
    assert m.poll(2.0).apply is None  # "p" is on screen already
    assert m.current.playlist.id == "p" and m.wanted().playlist.id == "p"


def test_same_id_and_older_or_equal_version_is_ignored():
    m, _ = manager()
    feed(m, "panel", "p", 5)
    assert feed(m, "panel", "p", 5).apply is None
    assert feed(m, "panel", "p", 4).apply is None
    assert m.current.playlist.version == 5
    assert feed(m, "panel", "p", 6).apply.playlist.version == 6


def test_stored_playlist_remembers_its_channel_for_the_version_rule():
    m, _ = manager()
    p, raw = pl("p", 5)
    m.start_with(Candidate(p, raw, "stored", 0.0, origin="panel"))
    assert feed(m, "panel", "p", 4).apply is None
    assert m.current.playlist.version == 5


def test_applied_only_once_every_asset_is_present():
    m, disk = manager()
    d = feed(m, "panel", "p", 1, assets=(SHA1, SHA2))
    assert d.apply is None and d.fetch == {SHA1, SHA2}
    assert m.current.playlist.id == "bundled"
    disk.assets.add(SHA1)
    assert m.poll(2.0).fetch == {SHA2}
    disk.assets.add(SHA2)
    assert m.poll(3.0).apply.playlist.id == "p"


def test_missing_assets_time_out_into_a_rejection_once():
    m, _ = manager()
    feed(m, "panel", "p", 1, now=10.0, assets=(SHA1,))
    assert m.asset_deadline() == 40.0
    d = m.poll(40.0)
    assert len(d.rejected) == 1 and "assets missing" in d.rejected[0][1] and SHA1 in d.rejected[0][1]
    assert m.current.playlist.id == "bundled"
    assert m.poll(41.0) == type(d)()  # not rejected again, nothing else to do


def test_a_newer_candidate_replaces_a_pending_one():
    m, disk = manager()
    feed(m, "panel", "p", 1, assets=(SHA1,))
    assert feed(m, "panel", "p", 2).apply.playlist.version == 2
    disk.assets.add(SHA1)
    assert m.poll(5.0).apply is None


def test_needed_assets_cover_current_pending_and_sources():
    m, disk = manager()
    disk.assets.add(SHA1)
    feed(m, "panel", "p", 1, assets=(SHA1,))
    feed(m, "group:nord", "n", 1, assets=(SHA2,))
    assert m.needed_assets() == {SHA1, SHA2}


# -- pinned down one by one (each kills a mutant the tests above let live) ----------------------

def test_a_manager_before_any_content_has_nothing_to_do():
    m = PlaylistManager(("centre",), Disk().has)
    assert m.asset_wait_s == 300.0  # the documented default
    assert (m.current, m.pending, m.fallback, m.wanted()) == (None, None, None, None)
    assert m.poll(0.0) == type(m.poll(0.0))() and m.asset_deadline() is None
    m.received("group:sud", None, b"", 1.0)  # clearing a topic that never had one: nothing to do
    assert m.sources == {}


def test_start_with_is_also_the_fallback():
    m, _ = manager()
    assert m.fallback is m.current and m.wanted() is m.current and m.asset_deadline() is None


def test_waiting_ends_at_the_deadline_not_before_and_the_reason_lists_every_asset():
    m, _ = manager()
    feed(m, "panel", "p", 1, now=10.0, assets=(SHA2, SHA1))
    assert m.poll(20.0).fetch == {SHA1, SHA2}  # 10 s of 30: still waiting
    assert m.poll(39.9).rejected == ()
    d = m.poll(40.0)
    assert d.rejected[0][1] == f"assets missing after 30 s: sha256:{SHA1}, sha256:{SHA2}"
    assert m.pending is None and m.asset_deadline() is None
    # Only that version was given up: a newer one is applied as usual.
    assert feed(m, "panel", "p", 2, now=41.0).apply.playlist.version == 2


def test_pending_is_dropped_when_the_screen_already_shows_what_is_wanted():
    m, disk = manager()
    feed(m, "panel", "p", 1)
    feed(m, "group:nord", "n", 1)  # lower precedence: not wanted
    feed(m, "panel", "q", 1, now=2.0, assets=(SHA1,))
    assert m.asset_deadline() == 32.0
    p, raw = pl("p", 1)
    m.received("panel", p, raw, 3.0)  # back to what is on screen, same bytes
    assert m.poll(3.0) == type(m.poll(3.0))() and m.asset_deadline() is None
    feed(m, "panel", "q", 2, now=4.0, assets=(SHA1,))
    m.received("panel", None, b"", 5.0)
    m.received("group:nord", None, b"", 5.0)
    assert m.wanted() is not m.current and m.poll(5.0).apply is None and m.asset_deadline() is None


def test_same_id_and_version_with_other_content_is_ignored_too():
    m, _ = manager()
    feed(m, "panel", "p", 5)
    feed(m, "panel", "p", 6, assets=(SHA1,))  # pending
    p, _ = pl("p", 5)
    m.received("panel", p, json.dumps({"id": "p", "version": 5, "slides": [
        {"id": "x", "type": "text", "title": "autre"}]}).encode(), 2.0)
    assert m.poll(2.0).apply is None and m.current.playlist.version == 5
    assert m.pending is None and m.asset_deadline() is None


def test_the_fallback_remembers_the_channel_it_came_from_across_a_restart():
    m, _ = manager()
    feed(m, "group:nord", "x", 5)
    assert m.fallback.source == "stored" and m.fallback.origin == "group:nord" and m.fallback.channel == "group:nord"
    restarted, _ = manager()
    restarted.start_with(m.fallback)
    assert feed(restarted, "group:nord", "x", 4).apply is None  # an older version on the same channel
    assert feed(restarted, "panel", "x", 4).apply is not None  # another channel: applied


def test_give_up_stops_waiting_for_that_version_only():
    m, disk = manager()
    feed(m, "panel", "p", 1, assets=(SHA1,))
    cand = m.pending
    other, raw = pl("o", 1)
    m.give_up(Candidate(other, raw, "panel", 1.0))  # not the pending one: it keeps waiting
    assert m.pending is cand
    m.give_up(cand)
    assert m.pending is None and m.asset_deadline() is None
    disk.assets.add(SHA1)
    assert m.poll(2.0).apply is None and m.current.playlist.id == "bundled"  # not tried again
    assert feed(m, "panel", "p", 2, now=3.0, assets=(SHA1,)).apply.playlist.version == 2


def test_nothing_is_pending_once_a_candidate_is_applied():
    m, disk = manager()
    feed(m, "panel", "p", 1, assets=(SHA1,))
    assert m.asset_deadline() == 31.0
    disk.assets.add(SHA1)
    assert m.poll(2.0).apply.playlist.id == "p"
    assert m.pending is None and m.asset_deadline() is None

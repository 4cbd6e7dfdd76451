"""A real player process and a real broker: image assets (CONTRACT §3 ``P/assets/SHA``, §4).

A playlist applies only once every asset it needs is on disk and verified; until
then, and when it is rejected, the screen keeps what it showed.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures_player import PanelProcess, rgb, text_playlist
from PIL import Image

GREEN = "#12ab34"
CRIMSON = (200, 30, 100)
TEAL = (20, 160, 150)


def png_of(colour: tuple[int, int, int], size: tuple[int, int] = (160, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_playlist(pid: str, version: int, digest: str, url: str | None = None) -> dict[str, Any]:
    slide: dict[str, Any] = {"id": "affiche", "type": "image", "duration": 3600,
                             "asset": f"sha256:{digest}", "fit": "stretch"}
    if url is not None:
        slide["url"] = url
    return {"id": pid, "version": version, "layout": "fullscreen", "slides": [slide]}


def barrier(p: PanelProcess, name: str) -> None:
    """Wait until the panel has handled every message published before this call.

    An invalid command goes through the same connection and inbox after them,
    and its answer comes back only once the main loop reached it.
    """
    mark = p.sub.mark()
    p.publish(f"panels/{p.id}/cmd", {"id": f"barrier-{name}", "cmd": "no-such-command"})
    p.wait_event("command.failed", after=mark, where=lambda e: e.get("request") == f"barrier-{name}")


def applied_after(p: PanelProcess, mark: int) -> list[dict[str, Any]]:
    return [e for e in p.events(mark) if e["type"] == "playlist.applied"]


def showing_green(p: PanelProcess) -> bytes:
    mark = p.sub.mark()
    p.publish(f"panels/{p.id}/playlist", text_playlist("base", 1, GREEN), retain=True)
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour(rgb(GREEN))
    return p.picture().tobytes()


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_asset_from_its_topic_applies_the_playlist_only_once_it_arrived(panel, any_broker):
    p = panel()
    plain = showing_green(p)
    image = png_of(CRIMSON)
    digest = sha(image)
    stranger = png_of(TEAL)
    any_broker.publish(f"signage/assets/{sha(stranger)}", stranger, retain=True)  # another panel's image

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("affiche", 1, digest), retain=True)
    barrier(p, "before-asset")
    assert applied_after(p, mark) == []
    assert p.picture().tobytes() == plain, "the screen changed before the asset arrived"

    any_broker.publish(f"signage/assets/{digest}", image, retain=True)
    event = p.wait_event("playlist.applied", after=mark)
    assert (event["playlist"], event["version"]) == ("affiche", 1)
    p.wait_colour(CRIMSON, at=(80, 45))
    assert (p.folder / "state" / "assets" / digest).read_bytes() == image
    assert not (p.folder / "state" / "assets" / sha(stranger)).exists(), "an asset nobody asked for was stored"


def test_asset_from_its_url_applies_the_playlist(panel, http_files):
    root, base = http_files
    image = png_of(CRIMSON)
    digest = sha(image)
    (root / "affiche.png").write_bytes(image)
    p = panel()
    showing_green(p)
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("web", 1, digest, f"{base}/affiche.png"), retain=True)
    event = p.wait_event("playlist.applied", after=mark)
    assert event["playlist"] == "web"
    p.wait_colour(CRIMSON, at=(80, 45))
    assert sha((p.folder / "state" / "assets" / digest).read_bytes()) == digest


def test_url_whose_bytes_do_not_match_the_hash_is_rejected_and_changes_nothing(panel, http_files):
    root, base = http_files
    expected = png_of(CRIMSON)
    (root / "swapped.png").write_bytes(png_of(TEAL))  # what the server really gives
    p = panel()
    plain = showing_green(p)
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("faux", 1, sha(expected), f"{base}/swapped.png"), retain=True)
    event = p.wait_event("playlist.rejected", after=mark)
    assert sha(expected) in event["reason"], event
    assert "hash" in event["reason"] or "sha256" in event["reason"], event
    barrier(p, "after-mismatch")
    assert applied_after(p, mark) == []
    assert p.picture().tobytes() == plain
    assert not (p.folder / "state" / "assets" / sha(expected)).exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/affiche.png", "gopher://x/1",
                                 "javascript:alert(1)", "/relative/affiche.png"])
def test_non_http_urls_are_rejected_at_validation(panel, url):
    p = panel()
    plain = showing_green(p)
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("schema", 1, sha(b"x"), url), retain=True)
    event = p.wait_event("playlist.rejected", after=mark, timeout=5)
    assert "slides[0].url" in event["reason"] and "http" in event["reason"], event
    assert p.picture().tobytes() == plain


def test_asset_that_never_arrives_rejects_the_playlist_after_the_wait(panel):
    p = panel(extra={"storage": {"asset_wait_s": 2}})
    plain = showing_green(p)
    digest = sha(png_of(CRIMSON))
    mark = p.sub.mark()
    sent = time.monotonic()
    p.publish("panels/p1/playlist", image_playlist("jamais", 1, digest), retain=True)
    event = p.wait_event("playlist.rejected", after=mark, timeout=8)
    waited = time.monotonic() - sent
    assert 1.8 <= waited <= 5.0, f"rejected after {waited:.2f} s, asset_wait_s is 2"
    assert digest in event["reason"] and event.get("playlist") == "jamais", event
    assert p.picture().tobytes() == plain
    assert applied_after(p, mark) == []


def test_assets_no_longer_referenced_are_removed_after_a_new_playlist_applies(panel, broker):
    p = panel()
    first, second = png_of(CRIMSON), png_of(TEAL)
    for data in (first, second):
        broker.publish(f"signage/assets/{sha(data)}", data, retain=True)
    assets = p.folder / "state" / "assets"

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("rotation", 1, sha(first)), retain=True)
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour(CRIMSON, at=(80, 45))
    assert (assets / sha(first)).is_file()

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", image_playlist("rotation", 2, sha(second)), retain=True)
    p.wait_event("playlist.applied", after=mark, where=lambda e: e["version"] == 2)
    p.wait_colour(TEAL, at=(80, 45))
    assert (assets / sha(second)).is_file()
    assert not (assets / sha(first)).exists(), "the image of the replaced playlist is still on disk"

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", text_playlist("rotation", 3, GREEN), retain=True)
    p.wait_event("playlist.applied", after=mark, where=lambda e: e["version"] == 3)
    assert sorted(x.name for x in assets.iterdir() if not x.name.startswith(".")) == []


def test_a_replayed_id_and_version_is_ignored(panel):
    p = panel(extra={"heartbeat": {"interval": 2}})
    mark = p.sub.mark()
    p.publish("panels/p1/playlist", text_playlist("replay", 5, GREEN), retain=True)
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour(rgb(GREEN))
    plain = p.picture().tobytes()

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", text_playlist("replay", 5, "#ff0000"), retain=True)  # same version
    p.publish("panels/p1/playlist", text_playlist("replay", 4, "#0000ff"), retain=True)  # older version
    barrier(p, "after-replay")
    assert applied_after(p, mark) == []
    assert p.picture().tobytes() == plain
    heartbeat = p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, timeout=5)
    assert json.loads(heartbeat.payload)["playlist"] == {"id": "replay", "version": 5}

    mark = p.sub.mark()
    p.publish("panels/p1/playlist", text_playlist("replay", 6, "#0000ff"), retain=True)
    p.wait_event("playlist.applied", after=mark, where=lambda e: e["version"] == 6)
    p.wait_colour(rgb("#0000ff"))

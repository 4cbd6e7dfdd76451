"""Power cuts during playlist applies (issue 3, "Must show").

The player is SIGKILLed at seeded random moments while it applies a new
playlist (text slide of a distinctive colour plus an image asset). It is then
started again with the broker out of reach, so it can only show what it
persisted: the state folder must hold one complete playlist (it loads, its
image is there and intact), and the picture must be exactly that playlist,
the old one or the new one, never anything else.

"Out of reach" is a relay between the player and mosquitto that holds new
connections unanswered until the test opens it: the player's CONNECT waits
as it would for a broker that is down, and once opened it goes through at
once, without the player's reconnect back-off slowing every round.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

from fixtures_broker import Broker, wait_until
from fixtures_player import PanelProcess, rgb
from PIL import Image

from player.content import ImageSlide, TextSlide, parse_playlist
from player.store import StateStore, sha256_file

ROUNDS = 50
SEED = 20261125
MAX_DELAY_S = 0.6
CORNERS = ((5, 5), (154, 5), (5, 84), (154, 84))  # background only: the title sits in the middle


class Gate:
    """A TCP relay to ``port`` that holds new connections while closed."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._open = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self._open.set()

    def close_gate(self) -> None:
        """Hold connections made from now on; drop any still held from before (their client is gone)."""
        self._open.clear()
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self._open.wait()
        with self._lock:
            if conn not in self._held:
                return
            self._held.remove(conn)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            conn.close()
            return
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def shutdown(self) -> None:
        self.server.close()
        self.close_gate()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def colour(n: int) -> str:
    return f"#{(37 * n + 11) % 256:02x}{(91 * n + 40) % 256:02x}{(53 * n + 100) % 256:02x}"


def noise_png(rng: random.Random, n: int) -> bytes:
    """A few hundred kB of incompressible image: its arrival, hashing and write take real time."""
    img = Image.frombytes("RGB", (320, 240), rng.randbytes(320 * 240 * 3))
    img.putpixel((0, 0), (n % 256, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def playlist(n: int, digest: str) -> dict[str, Any]:
    return {"id": "coupure", "version": n, "layout": "fullscreen", "slides": [
        {"id": "texte", "type": "text", "duration": 3600, "title": f"Version {n}",
         "style": {"background": colour(n), "color": "#ffffff"}},
        {"id": "image", "type": "image", "duration": 10, "asset": f"sha256:{digest}", "fit": "stretch"}]}


def persisted(state: Path) -> tuple[str, int]:
    """The colour and version of the playlist in ``state``; fails unless it is complete and intact."""
    stored = StateStore(state).load_playlist()
    assert stored is not None, "playlist.state is missing or damaged"
    raw, _meta = stored
    pl = parse_playlist(raw)
    text, image = pl.slides
    assert isinstance(text, TextSlide) and isinstance(image, ImageSlide)
    asset = state / "assets" / image.asset
    assert asset.is_file(), f"v{pl.version} persisted without its image"
    assert sha256_file(asset) == image.asset, f"v{pl.version}: image damaged"
    return "#%02x%02x%02x" % text.style.background, pl.version


def test_power_cut_during_applies_leaves_the_old_or_the_new_playlist_complete(panel, broker: Broker):
    rng = random.Random(SEED)
    colours = [colour(n) for n in range(ROUNDS + 1)]
    assert len(set(colours)) == len(colours)
    gate = Gate(broker.port)
    p: PanelProcess = panel(extra={"mqtt": {"port": gate.port, "session_expiry": 0}}, start=False)
    state = p.folder / "state"

    # Round 0: the panel has v0 persisted, as after some earlier apply.
    first = noise_png(rng, 0)
    digest = hashlib.sha256(first).hexdigest()
    seeded = StateStore(state)
    seeded.assets.put(digest, first)
    seeded.save_playlist(json.dumps(playlist(0, digest)).encode(), {"source": "panel"})

    allowed = {colours[0]}
    outcomes = {"old": 0, "new": 0}
    delays = []
    started = time.monotonic()
    try:
        for n in range(1, ROUNDS + 2):
            shown, version = persisted(state)
            assert shown in allowed, f"round {n}: persisted v{version} ({shown}), expected one of {allowed}"
            if n > 1:
                outcomes["new" if shown == colours[n - 1] else "old"] += 1

            gate.close_gate()
            p.png.unlink(missing_ok=True)
            p.start(wait_online=False)
            wait_until(p.png.exists, 10, f"round {n}: the first frame")
            for xy in CORNERS:
                seen = _pixel(p, xy)
                assert seen == rgb(shown), f"round {n}: the screen shows {seen} at {xy}, persisted is {shown}"
            if n > ROUNDS:
                break

            image = noise_png(rng, n)
            digest = hashlib.sha256(image).hexdigest()
            broker.publish(f"signage/assets/{digest}", image, retain=True)
            broker.publish("signage/panels/p1/playlist", json.dumps(playlist(n, digest)).encode(), retain=True)
            delay = rng.uniform(0, MAX_DELAY_S)
            delays.append(delay)
            gate.open()
            time.sleep(delay)  # the random moment of the cut is the point of this test
            p.kill()
            allowed = {shown, colours[n]}
    finally:
        gate.shutdown()
    elapsed = time.monotonic() - started
    print(f"\n{ROUNDS} power cuts in {elapsed:.1f} s (delays {min(delays) * 1000:.0f}-{max(delays) * 1000:.0f} ms):"
          f" {outcomes['new']} showed the new playlist, {outcomes['old']} the old one")
    # Cuts on both sides of the switch, or the test did not exercise the moment that matters.
    assert outcomes["old"] >= 1 and outcomes["new"] >= 1, outcomes


def _pixel(p: PanelProcess, xy: tuple[int, int]) -> tuple[int, int, int]:
    deadline = time.monotonic() + 5
    while True:
        try:
            return p.pixel(*xy)
        except OSError:  # replaced between open and read
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)

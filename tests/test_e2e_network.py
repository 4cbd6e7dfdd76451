"""A real player process and a real broker: outages, unreachable panels, crashes, commands.

CONTRACT §3 (online / heartbeat / screenshot topics), §6 (commands), §7 (events).
Waits are on conditions with deadlines; the only fixed waits are the ones a
scenario is made of (a broker down for 10 s, a process stopped past its keep-alive).
"""

from __future__ import annotations

import io
import json
import signal
import time
from typing import Any

from fixtures_broker import wait_until
from fixtures_player import PanelProcess, rgb, text_playlist
from PIL import Image

GREEN = "#12ab34"
NAVY = "#1a2b6c"


def _live(m: Any) -> bool:
    """A message the broker relayed as it was published (not a retained copy sent at subscription)."""
    return not m.retain


def _heartbeats(p: PanelProcess, after: int = 0) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in p.sub.messages[after:] if m.topic == f"{p.topic}/heartbeat"]


def _showing(p: PanelProcess, colour: str, version: int = 1) -> None:
    """Give the panel its own playlist of one colour and wait until the PNG shows it."""
    mark = p.sub.mark()
    p.publish(f"panels/{p.id}/playlist", text_playlist("net", version, colour), retain=True)
    p.wait_event("playlist.applied", after=mark, where=lambda e: e["version"] == version)
    p.wait_colour(rgb(colour))


def _command(p: PanelProcess, body: dict[str, Any]) -> int:
    mark = p.sub.mark()
    p.publish(f"panels/{p.id}/cmd", body)
    return mark


def _wait_answer(p: PanelProcess, request: str, after: int, timeout: float) -> dict[str, Any]:
    """The command.done / command.failed event answering ``request``."""
    def match(m: Any) -> bool:
        data = json.loads(m.payload)
        return data.get("type") in ("command.done", "command.failed") and data.get("request") == request

    try:
        m = p.sub.wait_for(f"{p.topic}/events", after=after, where=match, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- player log ---\n{p.log_text()[-3000:]}") from None
    return json.loads(m.payload)


# -- the broker goes away --------------------------------------------------------------


def test_broker_down_for_10_s_the_panel_keeps_its_picture_reconnects_and_still_takes_playlists(panel, broker):
    p = panel()
    _showing(p, GREEN)
    before = p.png.read_bytes()
    p.sub.close()
    broker.stop()
    outage_end = time.monotonic() + 10.0
    while time.monotonic() < outage_end:  # the scenario itself is 10 s of wall time
        assert p.proc is not None and p.proc.poll() is None, "the player died while the broker was down"
        assert p.png.read_bytes() == before, "the picture changed while the broker was down"
        time.sleep(0.25)

    broker.start()
    p.sub = broker.sub(f"{p.topic}/#")  # the test's own session did not survive the broker restart
    # online=true relayed live (not the retained copy from before the outage) proves a new connection.
    p.sub.wait_for(f"{p.topic}/online", b"true", where=_live, timeout=30)
    hb = p.sub.wait_for(f"{p.topic}/heartbeat", where=lambda m: json.loads(m.payload)["mqtt_reconnects"] >= 1,
                        timeout=10)
    assert json.loads(hb.payload)["playlist"] == {"id": "net", "version": 1}
    assert p.png.read_bytes() == before

    _showing(p, NAVY, version=2)


# -- the panel is unreachable, crashes, or stops -----------------------------------------


def test_command_sent_while_the_panel_is_stopped_past_its_keepalive_runs_after_it_resumes(panel):
    p = panel(keepalive=5)
    _showing(p, GREEN)
    mark = p.sub.mark()
    p.signal(signal.SIGSTOP)
    try:
        # The broker gives up on the panel after 1.5 keep-alives: its will says offline.
        p.sub.wait_for(f"{p.topic}/online", b"false", after=mark, where=_live, timeout=15)
        cmd_mark = _command(p, {"id": "req-pendant-arret", "cmd": "brightness", "value": 40, "seconds": 600})
    finally:
        p.signal(signal.SIGCONT)
    answer = _wait_answer(p, "req-pendant-arret", cmd_mark, timeout=20)
    assert answer["type"] == "command.done", answer
    assert answer["cmd"] == "brightness"
    p.sub.wait_for(f"{p.topic}/online", b"true", after=cmd_mark, where=_live, timeout=10)


def test_sigkill_leaves_the_retained_online_false_within_one_and_a_half_keepalives(panel, any_broker):
    p = panel(keepalive=5)
    mark = p.sub.mark()
    killed = time.monotonic()
    p.kill()
    p.sub.wait_for(f"{p.topic}/online", b"false", after=mark, timeout=1.5 * 5)
    assert time.monotonic() - killed <= 1.5 * 5
    with any_broker.sub(f"{p.topic}/online") as late:  # a newcomer sees the retained value
        assert late.wait_for(f"{p.topic}/online").payload == b"false"


def test_sigterm_publishes_online_false_and_exits_0(panel, any_broker):
    p = panel()
    mark = p.sub.mark()
    assert p.stop() == 0
    p.sub.wait_for(f"{p.topic}/online", b"false", after=mark, timeout=5)
    with any_broker.sub(f"{p.topic}/online") as late:
        assert late.wait_for(f"{p.topic}/online").payload == b"false"


# -- commands (CONTRACT §6) -------------------------------------------------------------


def test_screenshot_publishes_a_png_of_the_panel_size_showing_the_content(panel):
    p = panel(size=(160, 90))
    _showing(p, GREEN)
    mark = _command(p, {"id": "req-photo", "cmd": "screenshot"})
    shot = p.sub.wait_for(f"{p.topic}/screenshot", after=mark, timeout=5)
    with Image.open(io.BytesIO(shot.payload)) as img:
        assert img.format == "PNG"
        assert img.size == (160, 90)
        assert img.convert("RGB").getpixel((5, 5)) == rgb(GREEN)
    assert _wait_answer(p, "req-photo", mark, 5)["type"] == "command.done"


def test_identify_answers_done_and_changes_the_picture_for_its_time(panel):
    p = panel()
    _showing(p, GREEN)
    plain = p.picture().tobytes()
    mark = _command(p, {"id": "req-qui", "cmd": "identify", "seconds": 2})
    answer = _wait_answer(p, "req-qui", mark, 5)
    assert answer["type"] == "command.done", answer
    wait_until(lambda: p.picture().tobytes() != plain, 3, "the identify screen in the PNG")
    wait_until(lambda: p.picture().tobytes() == plain, 6, "the playlist back after the identify time")


def test_brightness_answers_done_and_the_heartbeat_reports_it(panel):
    p = panel(extra={"heartbeat": {"interval": 2}})
    mark = _command(p, {"id": "req-lum", "cmd": "brightness", "value": 37, "seconds": 600})
    assert _wait_answer(p, "req-lum", mark, 5)["type"] == "command.done"
    p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, where=lambda m: json.loads(m.payload)["brightness"] == 37,
                   timeout=6)


def test_brightness_without_seconds_holds_until_the_next_one(panel):
    # CONTRACT §6 makes "seconds" optional; the command must not fail without it.
    p = panel(extra={"heartbeat": {"interval": 2}})
    mark = _command(p, {"id": "req-lum-sans-duree", "cmd": "brightness", "value": 55})
    answer = _wait_answer(p, "req-lum-sans-duree", mark, 5)
    assert answer["type"] == "command.done", answer
    p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, where=lambda m: json.loads(m.payload)["brightness"] == 55,
                   timeout=6)


def test_restart_answers_done_then_exits_with_status_75(panel):
    p = panel()
    mark = _command(p, {"id": "req-redemarre", "cmd": "restart"})
    assert _wait_answer(p, "req-redemarre", mark, 5)["type"] == "command.done"
    assert p.proc is not None
    assert p.proc.wait(10) == 75
    p.sub.wait_for(f"{p.topic}/online", b"false", after=mark, timeout=5)


def test_invalid_commands_fail_with_the_request_id_and_the_reason(panel):
    p = panel()
    _showing(p, GREEN)
    picture = p.picture().tobytes()
    mark = _command(p, {"id": "req-inconnu", "cmd": "selfdestruct"})
    failed = _wait_answer(p, "req-inconnu", mark, 5)
    assert failed["type"] == "command.failed"
    assert "cmd" in failed["reason"] and "selfdestruct" in failed["reason"], failed

    mark = _command(p, {"id": "req-trop", "cmd": "brightness", "value": 101})
    failed = _wait_answer(p, "req-trop", mark, 5)
    assert failed["type"] == "command.failed" and failed["cmd"] == "brightness"
    assert "value" in failed["reason"] and "100" in failed["reason"], failed

    assert p.proc is not None and p.proc.poll() is None
    assert p.picture().tobytes() == picture

"""Issue 16's acceptance tests on both brokers: mosquitto (MQTT 5) and RabbitMQ 3.10's MQTT
plugin (MQTT 3.1.1, retained messages delivered only to exact-topic subscriptions, "." in a
topic turned into a level), with real player processes and the real panelctl program.

panelctl runs as a program (``python -m player.ctl.cli``) with its default ``--protocol auto``:
on RabbitMQ it finds MQTT 3.1.1 by itself. Each RabbitMQ test has a fresh vhost, so nothing
retained by one test reaches another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_broker import ROOT, wait_until
from fixtures_player import PanelProcess, rgb, text_playlist
from fixtures_rabbit import RabbitBroker, RabbitNode

CRITICAL_BG = (160, 0, 0)
GREEN = "#12ab34"
DOT_SENTENCE = ('alert id "crue.1": "." is not allowed: brokers that map MQTT topics to AMQP routing keys '
                "(RabbitMQ) turn it into a topic level, and the alert would never reach the panels; "
                'use "-" or "_"')


def panelctl(b: Any, *argv: str, home: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The panelctl program against broker ``b`` (its login when it has one), protocol auto."""
    login = ["--username", b.username, "--password-file", str(b.password_file)] if b.username else []
    env = dict(os.environ, HOME=str(home))
    env.pop("PANELCTL_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "player.ctl.cli", *argv, "--broker", f"{b.host}:{b.port}",
                           "--prefix", "signage", *login], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def ctl(any_broker: Any, tmp_path: Path) -> Any:
    home = tmp_path / "home"
    home.mkdir()

    def run(*argv: str, code: int | None = 0, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        done = panelctl(any_broker, *argv, home=home, timeout=timeout)
        if code is not None:
            assert done.returncode == code, f"panelctl {' '.join(argv)} -> {done.returncode}\n" \
                                            f"{done.stdout}\n{done.stderr}"
        return done

    return run


def is_rabbit(b: Any) -> bool:
    return isinstance(b, RabbitBroker)


BEAT = {"heartbeat": {"interval": 1}}  # live heartbeats every second: status --listen finds the panels soon


def learn_fleet(ctl: Any, *panels: str) -> None:
    """What an operator does once on a broker without retained-on-wildcards: listen for live
    heartbeats, which also writes the fleet index that later commands read."""
    rows = json.loads(ctl("status", "--json", "--listen", "2.5", "--interval", "1").stdout)
    assert sorted(r["panel"] for r in rows if r["state"] == "online") == sorted(panels), rows


def critical_share(p: PanelProcess) -> float:
    img = p.picture()
    pixels = list(img.get_flattened_data()) if hasattr(img, "get_flattened_data") else list(img.getdata())
    return sum(1 for px in pixels if px == CRITICAL_BG) / len(pixels)


def for_alert(alert_id: str) -> Any:
    return lambda e: e.get("alert") == alert_id


def test_panelctl_finds_the_protocol_by_itself(any_broker: Any, ctl: Any) -> None:
    done = ctl("alert", "list")
    assert "no alert" in done.stdout
    note = f"the broker at {any_broker.host}:{any_broker.port} does not accept MQTT 5; using MQTT 3.1.1"
    assert (note in done.stderr) == is_rabbit(any_broker), done.stderr


def test_alert_is_shown_live_reported_displayed_then_cancelled(any_broker: Any, panel: Any, ctl: Any) -> None:
    p = panel(groups=["centre"], extra=BEAT)
    p.publish("panels/p1/playlist", text_playlist("fond", 1, GREEN), retain=True)
    learn_fleet(ctl, "p1")
    p.wait_colour(rgb(GREEN), timeout=10)
    mark = p.sub.mark()
    done = ctl("alert", "send", "--id", "crue-1", "--group", "centre", "--level", "critical",
               "--title", "ALERTE CRUE", "--body", "Évacuez les berges", "--ttl", "600")
    assert done.stdout.splitlines()[1].split()[:2] == ["p1", "displayed"], done.stdout + done.stderr
    p.wait_event("alert.displayed", after=mark, where=for_alert("crue-1"))
    wait_until(lambda: critical_share(p) > 0.3, 5, "the critical alert on screen")

    mark = p.sub.mark()
    ctl("alert", "cancel", "--id", "crue-1", "--group", "centre")
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("crue-1"))
    assert ended["reason"] == "cancelled"
    p.wait_colour(rgb(GREEN))
    assert "no alert" in ctl("alert", "list").stdout


def test_panel_started_after_retained_alerts_shows_each_scope(any_broker: Any, panel: Any, ctl: Any) -> None:
    """The acceptance test of issue 16: on RabbitMQ no wildcard subscription brings a retained
    alert; the retained alert index of each scope tells the panel which exact topics to read."""
    for alert_id, target in (("canicule", ["--all"]), ("crue-2", ["--group", "centre"]),
                             ("route_barree", ["--panel", "p1"])):
        ctl("alert", "send", "--id", alert_id, *target, "--level", "critical", "--title", alert_id.upper(),
            "--ttl", "3600", "--no-wait")
    p = panel(groups=["centre"])
    # All three are held (the heartbeat lists the active alerts); same level: one on screen at a time.
    p.sub.wait_for(f"{p.topic}/heartbeat", timeout=15, where=lambda m: sorted(json.loads(m.payload).get("alerts") or [])
                   == ["canicule", "crue-2", "route_barree"])
    shown = p.wait_event("alert.displayed", timeout=10)
    assert shown["alert"] in ("canicule", "crue-2", "route_barree")
    wait_until(lambda: critical_share(p) > 0.3, 5, "a critical alert on screen")


def test_alert_cancelled_while_the_panel_was_off_ends_at_its_restart(any_broker: Any, panel: Any,
                                                                       ctl: Any) -> None:
    p = panel(groups=["centre"])
    p.publish("panels/p1/playlist", text_playlist("fond", 1, GREEN), retain=True)
    p.wait_event("playlist.applied")
    for alert_id in ("crue-3", "crue-4"):
        ctl("alert", "send", "--id", alert_id, "--group", "centre", "--level", "critical",
            "--title", alert_id.upper(), "--ttl", "3600")
        p.wait_event("alert.displayed", where=for_alert(alert_id))
    p.stop()
    ctl("alert", "cancel", "--id", "crue-3", "--group", "centre")
    mark = p.sub.mark()
    p.start()
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("crue-3"), timeout=15)
    assert ended["reason"] in ("cancelled", "gone"), ended
    # the other one is still held (its exact topic brought it back): it is not ended
    try:
        p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, timeout=15,
                       where=lambda m: json.loads(m.payload).get("alerts") == ["crue-4"])
        assert not [e for e in p.events(mark) if e.get("type") == "alert.ended" and e.get("alert") == "crue-4"]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{p.events(mark)}\n--- player log ---\n{p.log_text()[-4000:]}") from None


def test_playlist_pushed_is_applied_and_reaches_a_panel_started_later(any_broker: Any, panel: Any, ctl: Any,
                                                                      tmp_path: Path) -> None:
    p1 = panel("p1", groups=["centre"], extra=BEAT)
    learn_fleet(ctl, "p1")
    doc = tmp_path / "centre.yaml"
    doc.write_text(yaml.safe_dump(text_playlist("centre", 7, "#000080")))
    done = ctl("push", str(doc), "--group", "centre", "--timeout", "30")
    assert "p1" in done.stdout and "applied" in done.stdout, done.stdout + done.stderr
    assert p1.wait_event("playlist.applied", where=lambda e: e["playlist"] == "centre")["version"] == 7
    p1.wait_colour(rgb("#000080"))
    p2 = panel("p2", groups=["centre"])
    p2.wait_event("playlist.applied", where=lambda e: e["playlist"] == "centre", timeout=15)
    p2.wait_colour(rgb("#000080"))


def test_commands_are_answered(any_broker: Any, panel: Any, ctl: Any, tmp_path: Path) -> None:
    p = panel()
    mark = p.sub.mark()
    done = ctl("cmd", "p1", "identify", "--seconds", "5")
    assert "identify done" in done.stdout
    assert p.wait_event("command.done", after=mark)["cmd"] == "identify"
    shot = tmp_path / "shot.png"
    done = ctl("screenshot", "p1", "-o", str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and "160x90 PNG from p1" in done.stdout


def test_status_reads_the_heartbeat_then_the_panel_offline(any_broker: Any, panel: Any, ctl: Any) -> None:
    p = panel(extra=BEAT)
    beat = json.loads(p.sub.wait_for(f"{p.topic}/heartbeat", timeout=10).payload)
    # A panel panelctl never met: only its live heartbeats tell of it on RabbitMQ.
    rows = json.loads(ctl("status", "--json", "--listen", "2.5", "--interval", "1").stdout)
    assert [(r["panel"], r["state"]) for r in rows] == [("p1", "online")], rows
    assert rows[0]["firmware"] == beat["firmware"]
    # From now on the fleet index lists it: a plain status reads its retained state.
    rows = json.loads(ctl("status", "--json", "--interval", "1").stdout)
    assert [(r["panel"], r["state"]) for r in rows] == [("p1", "online")], rows
    p.stop()
    rows = json.loads(ctl("status", "--json", "--interval", "1").stdout)
    assert [(r["panel"], r["state"]) for r in rows] == [("p1", "offline")], rows


def test_alert_id_with_a_dot_is_refused_by_panelctl_before_anything_is_published(any_broker: Any,
                                                                                 ctl: Any) -> None:
    with any_broker.sub("signage/#") as seen:
        done = ctl("alert", "send", "--id", "crue.1", "--all", "--level", "critical", "--title", "CRUE",
                   "--ttl", "600", code=2)
        assert DOT_SENTENCE in done.stderr
        done = ctl("alert", "cancel", "--id", "crue.1", "--all", code=2)
        assert DOT_SENTENCE in done.stderr
        marker = "signage/test/marker"
        any_broker.publish(marker, b"m")
        seen.wait_for(marker)
        assert [m.topic for m in seen.messages] == [marker], "panelctl published something"


def test_alert_id_with_a_dot_from_another_publisher_is_refused_by_the_panel_or_never_a_panel_topic(
        any_broker: Any, panel: Any) -> None:
    """On mosquitto the panel gets it and refuses it with the sentence; RabbitMQ 3.10 turns the
    "." into a level, so it lands on a topic no panel reads (why panelctl refuses it first)."""
    p = panel()
    mark = p.sub.mark()
    alert = json.dumps({"level": "critical", "title": "CRUE", "ttl": 600}).encode()
    with any_broker.sub("signage/all/alerts/#") as seen:
        any_broker.publish("signage/all/alerts/crue.1", alert)
        if is_rabbit(any_broker):
            assert seen.wait_for("signage/all/alerts/#").topic == "signage/all/alerts/crue/1"
            return
    rejected = p.wait_event("alert.rejected", after=mark)
    assert DOT_SENTENCE in rejected["reason"], rejected


def test_rabbit_vhosts_keep_retained_messages_apart(rabbit: RabbitBroker, rabbit_node: RabbitNode,
                                                    tmp_path: Path) -> None:
    """What the RabbitMQ fixture promises, and what 3.10 does with retained messages."""
    rabbit.publish("signage/all/x", b"one", retain=True)
    with rabbit.sub("signage/all/x") as exact, rabbit.sub("signage/#") as wild:
        assert exact.wait_for("signage/all/x").payload == b"one"
        rabbit.publish("signage/all/y", b"live")
        assert wild.wait_for("signage/all/y").payload == b"live"
        assert wild.payloads("signage/all/x") == []  # retained only to exact subscriptions
    other = RabbitBroker(rabbit_node, tmp_path / "other")
    assert other.vhost != rabbit.vhost
    with other.sub("signage/all/x") as exact:
        other.publish("signage/all/z", b"mark", retain=True)
        with other.sub("signage/all/z") as marker:
            marker.wait_for("signage/all/z")
        assert exact.payloads("signage/all/x") == []


def test_a_rabbitmq_that_cannot_start_fails_the_test_with_its_output(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture never skips: no RabbitMQ, or one that exits, is a failure that says why."""
    import fixtures_rabbit

    monkeypatch.setattr(fixtures_rabbit, "RABBIT_BIN", tmp_path / "none")
    with pytest.raises(pytest.fail.Exception, match="RabbitMQ is not installed .*bootstrap.sh --tests"):
        RabbitNode()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "rabbitmq-server").write_text("#!/bin/sh\necho 'BOOT FAILED: eaddrinuse' >&2\nexit 3\n")
    (fake / "rabbitmq-server").chmod(0o755)
    monkeypatch.setattr(fixtures_rabbit, "RABBIT_BIN", fake)
    node = RabbitNode()
    try:
        with pytest.raises(pytest.fail.Exception) as info:
            node.start()
        assert "RabbitMQ exited (3) while starting" in str(info.value)
        assert "BOOT FAILED: eaddrinuse" in str(info.value)
    finally:
        node.cleanup()

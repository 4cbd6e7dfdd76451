"""panelctl against a real mosquitto and a real player process (CONTRACT §3-§8)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_broker import ROOT, wait_until
from fixtures_player import rgb, text_playlist
from PIL import Image

from player.ctl.cli import main, png_size
from player.ctl.settings import load_settings, parse_broker
from player.errors import ConfigError

CRITICAL_BG = (160, 0, 0)


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crew member's own ~/.config/panelctl.yaml must not leak into the tests."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PANELCTL_CONFIG", raising=False)


def ctl(broker: Any, *argv: str) -> tuple[int, str, str]:
    """Run panelctl in-process against ``broker``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--broker", f"{broker.host}:{broker.port}", "--prefix", "signage"], out, err)
    return code, out.getvalue(), err.getvalue()


def solid_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def assert_nothing_published(broker: Any, sub: Any) -> None:
    """Every message published before a marker has reached ``sub`` once the marker has: none may be ours."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    mark = sub.mark()
    broker.publish(marker, b"m")
    sub.wait_for(marker, after=mark)
    assert [m.topic for m in sub.messages if m.topic != marker] == []


# -- settings ---------------------------------------------------------------------------------


def test_broker_addresses_parse_and_bad_ones_are_explained() -> None:
    assert parse_broker("mqtt.ville.example") == ("mqtt.ville.example", None)
    assert parse_broker("10.0.0.5:8883") == ("10.0.0.5", 8883)
    assert parse_broker("[::1]:1884") == ("::1", 1884)
    with pytest.raises(ValueError, match="port"):
        parse_broker("host:99999")
    with pytest.raises(ValueError, match="no host"):
        parse_broker(":1883")


def test_config_file_is_read_flags_override_it_and_unknown_keys_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "panelctl.yaml"
    cfg.write_text("broker: mqtt.ville.example:8884\nprefix: ville\nmax_asset_kb: 512\n")
    s = load_settings(str(cfg), {})
    assert (s.host, s.port, s.prefix, s.max_asset_kb, s.tls) == ("mqtt.ville.example", 8884, "ville", 512, None)
    s = load_settings(str(cfg), {"broker": "127.0.0.1", "prefix": "autre"})
    assert (s.host, s.port, s.prefix) == ("127.0.0.1", 1883, "autre")
    cfg.write_text("brokr: x\ntls: {ca_file: /nonexistent/ca.crt}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg), {})
    text = "\n".join(info.value.errors)
    assert 'brokr: unknown key (did you mean "broker"?)' in text
    assert "tls.ca_file: no such file: /nonexistent/ca.crt" in text
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.yaml"), {})


def test_environment_names_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text("prefix: depuis-env\n")
    assert load_settings(None, {}, env={"PANELCTL_CONFIG": str(cfg)}).prefix == "depuis-env"


def test_help_runs_as_a_program() -> None:
    result = subprocess.run([sys.executable, "-m", "player.ctl.cli", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    for name in ("push", "status", "watch", "screenshot", "cmd", "alert"):
        assert name in result.stdout


# -- push ----------------------------------------------------------------------------------------


def test_push_uploads_a_file_image_and_the_panel_shows_it(panel: Any, tmp_path: Path) -> None:
    p = panel()
    colour = (200, 30, 80)
    solid_png(tmp_path / "affiche.png", colour)
    doc = tmp_path / "affiche.yaml"
    doc.write_text(yaml.safe_dump({"id": "affiche", "layout": "fullscreen", "slides": [
        {"id": "a", "type": "image", "file": "affiche.png", "fit": "stretch", "duration": 3600}]}))
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "push", str(doc), "--panel", "p1", "--timeout", "20")
    assert code == 0, err + out
    assert "uploading affiche.png" in err and "1/1 applied" in err
    assert out.splitlines()[1].split()[:2] == ["p1", "applied"]
    applied = p.wait_event("playlist.applied", after=mark)
    assert applied["playlist"] == "affiche" and applied["version"] > 1_700_000_000  # the time, in seconds
    p.wait_colour(colour, at=(5, 5))
    p.wait_colour(colour, at=(80, 45))

    # A newer version: the image is already retained, so it is not sent again.
    data = yaml.safe_load(doc.read_text())
    data["version"] = applied["version"] + 1
    doc.write_text(yaml.safe_dump(data))
    code, out, err = ctl(p.broker, "push", str(doc), "--panel", "p1", "--timeout", "20")
    assert code == 0, err + out
    assert "already on the broker" in err and "uploading" not in err


def test_push_to_a_group_waits_for_the_online_panels(panel: Any) -> None:
    p = panel(groups=["centre"])
    doc = p.folder / "groupe.json"
    doc.write_text(json.dumps(text_playlist("groupe", 7, "#204060")))
    code, out, err = ctl(p.broker, "push", str(doc), "--group", "centre", "--timeout", "20")
    assert code == 0, err + out
    assert "p1" in out and "applied" in out
    p.wait_colour(rgb("#204060"))


def test_invalid_playlist_lists_every_error_and_publishes_nothing(broker: Any, tmp_path: Path) -> None:
    doc = tmp_path / "mauvais.yaml"
    doc.write_text(yaml.safe_dump({"id": "mauvais", "version": 1, "slides": [
        {"id": "a", "type": "text", "title": "x", "duration": -1},
        {"id": "b", "type": "image", "asset": "sha256:" + "a" * 64, "fit": "contian"},
        {"id": "c", "type": "image", "file": "absent.png"}]}))
    with broker.sub("#") as sub:
        code, out, err = ctl(broker, "push", str(doc), "--panel", "p1")
        assert code == 2
        assert "slides[0].duration: must be greater than 0" in err
        assert 'slides[1].fit: expected one of contain, cover, stretch, got "contian"' in err
        assert "slides[2].file: cannot read" in err
        assert_nothing_published(broker, sub)


def test_an_image_above_the_asset_limit_is_refused_with_advice(broker: Any, tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    noise.save(tmp_path / "gros.png")
    (tmp_path / "panelctl.yaml").write_text("max_asset_kb: 4\n")
    doc = tmp_path / "gros.yaml"
    doc.write_text(yaml.safe_dump({"id": "gros", "slides": [{"id": "a", "type": "image", "file": "gros.png"}]}))
    with broker.sub("#") as sub:
        code, _, err = ctl(broker, "--config", str(tmp_path / "panelctl.yaml"), "push", str(doc), "--panel", "p1")
        assert code == 2
        assert "slides[0].file:" in err and "url" in err
        assert_nothing_published(broker, sub)


def test_push_needs_a_target_and_a_valid_one(broker: Any, tmp_path: Path) -> None:
    doc = tmp_path / "x.json"
    doc.write_text(json.dumps(text_playlist("x", 1)))
    assert ctl(broker, "push", str(doc))[0] == 2
    code, _, err = ctl(broker, "push", str(doc), "--panel", "Bad/Id")
    assert code == 2 and "panel id" in err


# -- status and watch ---------------------------------------------------------------------------------


def test_status_shows_the_panel_online_then_offline(panel: Any) -> None:
    p = panel()
    p.sub.wait_for(f"{p.topic}/heartbeat", timeout=10)
    code, out, err = ctl(p.broker, "status")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["PANEL", "STATE", "SCREEN", "HEARTBEAT"]
    assert row.split()[:3] == ["p1", "online", "on"]
    code, out, _ = ctl(p.broker, "status", "--json")
    (entry,) = json.loads(out)
    assert entry["state"] == "online" and entry["online"] is True and entry["screen"] == "on"
    assert entry["heartbeat_age_s"] is not None and entry["firmware"] == entry["heartbeat"]["firmware"]
    code, out, _ = ctl(p.broker, "status", "--json", "--interval", "0.0001", "--stale-factor", "1")
    assert json.loads(out)[0]["state"] == "stale"
    p.stop()
    code, out, _ = ctl(p.broker, "status", "--json")
    assert json.loads(out)[0]["state"] == "offline"
    code, out, _ = ctl(p.broker, "status")
    assert out.splitlines()[1].split()[:2] == ["p1", "offline"]


def test_watch_prints_live_events_until_count(panel: Any) -> None:
    p = panel()
    proc = subprocess.Popen([sys.executable, "-m", "player.ctl.cli", "watch", "--panel", "p1", "--count", "2",
                             "--seconds", "20", "--types", "playlist.applied,command.done",
                             "--broker", f"127.0.0.1:{p.broker.port}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("watching")  # subscribed
        p.publish("panels/p1/playlist", text_playlist("vu", 3, "#123456"), retain=True)
        p.wait_event("playlist.applied")
        p.publish("panels/p1/cmd", {"id": "req-w", "cmd": "identify", "seconds": 2})
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert "p1  playlist.applied" in lines[0] and 'playlist="vu"' in lines[0] and "version=3" in lines[0]
    assert "p1  command.done" in lines[1] and 'request="req-w"' in lines[1]


# -- screenshot and commands ----------------------------------------------------------------------------


def test_screenshot_writes_the_panels_picture(panel: Any, tmp_path: Path) -> None:
    p = panel(size=(160, 90))
    p.publish("panels/p1/playlist", text_playlist("photo", 1, "#3366cc"), retain=True)
    p.wait_colour(rgb("#3366cc"))
    shot = tmp_path / "shot.png"
    code, out, err = ctl(p.broker, "screenshot", "p1", "-o", str(shot))
    assert code == 0, err
    assert png_size(shot.read_bytes()) == (160, 90)
    with Image.open(shot) as img:
        assert img.convert("RGB").getpixel((5, 5)) == rgb("#3366cc")
    assert "160x90" in out


def test_commands_are_answered_and_bad_values_refused_locally(panel: Any) -> None:
    p = panel()
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "cmd", "p1", "identify", "--seconds", "5")
    assert code == 0, err
    assert "identify done" in out
    done = p.wait_event("command.done", after=mark)
    assert done["cmd"] == "identify" and done["request"].startswith("ctl-")
    code, out, err = ctl(p.broker, "cmd", "p1", "brightness", "40", "--seconds", "60")
    assert code == 0, err
    with p.broker.sub("signage/panels/p1/cmd", "test/#") as sub:
        code, _, err = ctl(p.broker, "cmd", "p1", "brightness", "150")
        assert code == 2 and "value: must be between 0 and 100, got 150" in err
        assert_nothing_published(p.broker, sub)
    code, _, err = ctl(p.broker, "cmd", "inconnu", "reload", "--timeout", "0.5")
    assert code == 1 and "never reported" in err and "no answer" in err


def test_wake_and_sleep_switch_the_screen_and_status_shows_it(panel: Any) -> None:
    p = panel()
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "sleep", "p1")
    assert code == 0, err
    assert "sleep done" in out
    assert p.wait_event("screen.asleep", after=mark)["reason"] == "sleep command"
    p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, where=lambda m: json.loads(m.payload)["screen"] == "asleep")
    code, out, _ = ctl(p.broker, "status")
    assert out.splitlines()[1].split()[:3] == ["p1", "online", "asleep"]
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "wake", "p1", "--seconds", "60")
    assert code == 0, err
    assert p.wait_event("screen.on", after=mark)["reason"] == "wake command"
    code, out, err = ctl(p.broker, "cmd", "p1", "sleep", "--seconds", "5")
    assert code == 0 and "sleep done" in out, err
    with p.broker.sub("signage/panels/p1/cmd", "test/#") as sub:
        code, _, err = ctl(p.broker, "wake", "p1", "--seconds", "0")
        assert code == 2 and "seconds: must be between 1 and 604800, got 0" in err
        assert_nothing_published(p.broker, sub)


# -- alerts ----------------------------------------------------------------------------------------------


def _critical_share(p: Any) -> float:
    img = p.picture()
    return sum(n for n, c in img.getcolors(img.width * img.height) if c == CRITICAL_BG) / (img.width * img.height)


def test_alert_send_list_cancel_on_a_running_panel(panel: Any, tmp_path: Path) -> None:
    p = panel()
    p.publish("panels/p1/playlist", text_playlist("fond", 1, "#12ab34"), retain=True)
    p.wait_colour(rgb("#12ab34"))
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "alert", "send", "--id", "crue-1", "--all", "--level", "critical",
                         "--title", "ALERTE CRUE", "--body", "Évacuez les berges", "--ttl", "600")
    assert code == 0, err + out
    assert "displayed" in out and "the broker drops it after 601 s" in err
    p.wait_event("alert.displayed", after=mark, where=lambda e: e["alert"] == "crue-1")
    wait_until(lambda: _critical_share(p) > 0.3, 5, "the critical alert on screen")

    code, out, _ = ctl(p.broker, "alert", "list", "--json")
    (row,) = json.loads(out)
    assert (row["scope"], row["alert"], row["level"], row["title"], row["ttl"]) == \
        ("all", "crue-1", "critical", "ALERTE CRUE", 600)
    if row["shown_by"] != ["p1"]:  # the heartbeat listing it follows the alert.displayed event
        p.sub.wait_for(f"{p.topic}/heartbeat", where=lambda m: json.loads(m.payload)["alerts"] == ["crue-1"])
        row = json.loads(ctl(p.broker, "alert", "list", "--json")[1])[0]
    assert row["shown_by"] == ["p1"]
    code, out, _ = ctl(p.broker, "alert", "list")
    assert out.splitlines()[1].split()[:4] == ["all", "(all)", "crue-1", "critical"]

    mark = p.sub.mark()
    assert ctl(p.broker, "alert", "cancel", "--id", "crue-1", "--all")[0] == 0
    ended = p.wait_event("alert.ended", after=mark)
    assert ended == {**ended, "alert": "crue-1", "reason": "cancelled"}
    p.wait_colour(rgb("#12ab34"))
    assert "no alert" in ctl(p.broker, "alert", "list")[1]


def test_cap_alert_is_checked_locally_then_shown(panel: Any, tmp_path: Path) -> None:
    p = panel()
    sent = datetime.now(timezone.utc).replace(microsecond=0)
    cap = tmp_path / "crue.xml"
    cap.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>crue-2026-1</identifier><sender>prefecture@isere.example</sender>
  <sent>{sent.isoformat()}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>fr-FR</language><category>Met</category><event>Crue</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <expires>{(sent + timedelta(hours=2)).isoformat()}</expires>
    <headline>Crue de l'Isère</headline><description>Montée rapide des eaux.</description></info>
</alert>""", encoding="utf-8")
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "alert", "send", "--cap", str(cap), "--id", "cap-1", "--panel", "p1")
    assert code == 0, err + out
    p.wait_event("alert.displayed", after=mark, where=lambda e: e["alert"] == "cap-1")
    code, out, _ = ctl(p.broker, "alert", "list", "--json")
    (row,) = json.loads(out)
    assert (row["format"], row["level"], row["title"]) == ("cap", "critical", "Crue de l'Isère")
    assert ctl(p.broker, "alert", "cancel", "--id", "cap-1", "--panel", "p1")[0] == 0
    p.wait_event("alert.ended", after=mark, where=lambda e: e["alert"] == "cap-1")


def test_bad_alerts_are_refused_before_anything_is_published(broker: Any, tmp_path: Path) -> None:
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    (tmp_path / "bad.xml").write_text("<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><unclosed></alert>")
    cases = [
        (["--id", "a/b", "--all", "--level", "info", "--title", "x"], "alert id"),
        (["--id", "a", "--all", "--level", "info", "--title", "  "], "title: must not be blank"),
        (["--id", "a", "--all", "--level", "info", "--title", "x", "--expires", past], "expires: expired at"),
        (["--id", "a", "--all", "--level", "info"], "--title required"),
        (["--id", "a", "--level", "info", "--title", "x"], "give at least one target"),
        (["--id", "a", "--all", "--cap", str(tmp_path / "bad.xml")], "malformed XML"),
    ]
    with broker.sub("#") as sub:
        for argv, message in cases:
            code, _, err = ctl(broker, "alert", "send", *argv)
            assert code == 2, (argv, err)
            assert message in err, (argv, err)
        assert_nothing_published(broker, sub)


def test_indexes_are_kept_on_mosquitto_too(broker: Any) -> None:
    """The fleet index lists the panels status sees; an alert send/cancel keeps the scope's alert
    index and drops the ids whose retained alert is gone (issue 16)."""
    def retained(topic: str) -> Any:
        with broker.sub(topic) as sub:
            return json.loads(sub.wait_for(topic, timeout=3).payload)

    broker.publish("signage/panels/p7/online", b"true", retain=True)
    broker.publish("signage/panels/p8/online", b"false", retain=True)
    assert ctl(broker, "status")[0] == 0
    assert retained("signage/fleet")["panels"] == ["p7", "p8"]
    # an index naming an alert the broker no longer holds (cancelled by hand, say)
    broker.publish("signage/all/alert-index", b'{"alerts": ["old-1"], "ts": "2026-12-01T00:00:00+00:00"}', retain=True)
    code, _, err = ctl(broker, "alert", "send", "--id", "new-1", "--all", "--level", "info", "--title", "x",
                       "--no-wait")
    assert code == 0 and "alert index signage/all/alert-index: new-1" in err, err
    index = retained("signage/all/alert-index")
    assert index["alerts"] == ["new-1"] and datetime.fromisoformat(index["ts"]).tzinfo is not None
    assert ctl(broker, "alert", "cancel", "--id", "new-1", "--all")[0] == 0
    assert retained("signage/all/alert-index")["alerts"] == []

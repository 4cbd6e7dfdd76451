"""panelctl on MQTT 3.1.1 and on a broker that keeps retained messages from wildcards
(issue 16): auto-detection, the fleet and alert indexes, every command against a real
player on RabbitMQ 3.10 (MQTT plugin), and the same on mosquitto with --protocol 3.1.1."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fixtures_broker import Broker, connect_client
from fixtures_player import PREFIX, rgb, text_playlist
from test_rollout import release  # noqa: F401 - the signed test bundle (a module fixture)

from player.ctl.cli import main

NOTICE = "does not accept MQTT 5; using MQTT 3.1.1"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PANELCTL_CONFIG", raising=False)


def ctl(broker: Any, *argv: str) -> tuple[int, str, str]:
    """panelctl in-process against ``broker`` (with its login when it has one)."""
    login = ["--username", broker.username, "--password-file", str(broker.password_file)] \
        if broker.username is not None else []
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--broker", f"{broker.host}:{broker.port}", "--prefix", PREFIX, *login], out, err)
    return code, out.getvalue(), err.getvalue()


def retained(broker: Any, topic: str, timeout: float = 3.0) -> bytes | None:
    """The retained payload on an exact topic (a fresh subscriber), or None."""
    with broker.sub(topic) as sub:
        try:
            return bytes(sub.wait_for(topic, timeout=timeout).payload)
        except AssertionError:
            return None


def index_of(broker: Any, topic: str) -> list[str] | None:
    payload = retained(broker, topic)
    return None if payload is None else json.loads(payload).get("alerts", json.loads(payload).get("panels"))


def test_auto_detection_on_rabbitmq_says_so_once_and_explicit_5_explains(rabbit: Any) -> None:
    code, out, err = ctl(rabbit, "status")
    assert code == 0, err
    assert err.count(NOTICE) == 1 and f"the broker at 127.0.0.1:{rabbit.port} {NOTICE}" in err
    assert "no panel has reported" in out
    # a command that connects several times says it once
    code, _, err = ctl(rabbit, "alert", "send", "--id", "a-1", "--all", "--level", "info", "--title", "x",
                       "--no-wait")
    assert code == 0 and err.count(NOTICE) == 1, err
    code, _, err = ctl(rabbit, "status", "--protocol", "3.1.1")
    assert code == 0 and NOTICE not in err
    code, _, err = ctl(rabbit, "status", "--protocol", "5")
    assert code == 1
    assert "closed the connection without answering the login" in err and "--protocol 3.1.1" in err


def test_a_dot_in_an_alert_id_is_refused_with_the_sentence_before_connecting(rabbit: Any) -> None:
    with rabbit.sub(f"{PREFIX}/#") as sub:
        for action in (["send", "--level", "critical", "--title", "CRUE"], ["cancel"]):
            code, _, err = ctl(rabbit, "alert", action[0], "--id", "crue.1", "--all", *action[1:])
            assert code == 2, err
            assert ('alert id "crue.1": "." is not allowed: brokers that map MQTT topics to AMQP routing keys '
                    '(RabbitMQ) turn it into a topic level, and the alert would never reach the panels; '
                    'use "-" or "_"') in err
            assert NOTICE not in err  # refused before any connection
        time.sleep(0.3)
        assert sub.messages == []
    err_io = io.StringIO()
    assert main(["status", "--broker", f"127.0.0.1:{rabbit.port}", "--prefix", "ville.centre"],
                io.StringIO(), err_io) == 2
    assert 'prefix "ville.centre": "." is not allowed' in err_io.getvalue()


def test_every_command_against_a_real_panel_on_rabbitmq(rabbit: Any, panel: Any) -> None:
    p = panel("p1", groups=["centre"])
    p.publish("panels/p1/playlist", text_playlist("fond", 1, "#12ab34"), retain=True)
    p.wait_colour(rgb("#12ab34"), timeout=10)
    # No fleet index yet, and RabbitMQ gives no retained message to P/panels/+/online.
    code, out, err = ctl(rabbit, "status")
    assert code == 0 and "no panel has reported" in out, out + err
    # cmd reaches it and, answered, puts it in the fleet index
    code, out, err = ctl(rabbit, "cmd", "p1", "identify", "--seconds", "2")
    assert code == 0 and "p1: identify done" in out, err
    assert index_of(rabbit, f"{PREFIX}/fleet") == ["p1"]
    code, out, err = ctl(rabbit, "status", "--json")
    (row,) = json.loads(out)
    assert (row["panel"], row["state"]) == ("p1", "online"), err
    code, out, _ = ctl(rabbit, "cmd", "p1", "brightness", "100")
    assert code == 0 and "brightness done" in out
    shot = Path(p.folder) / "shot.png"
    code, out, err = ctl(rabbit, "screenshot", "p1", "-o", str(shot))
    assert code == 0 and shot.read_bytes().startswith(b"\x89PNG"), err

    # push waits for the panel found through the index
    playlist = Path(p.folder) / "bleu.yaml"
    playlist.write_text(json.dumps(text_playlist("bleu", 2, "#2040c0")))
    code, out, err = ctl(rabbit, "push", str(playlist), "--panel", "p1", "--timeout", "15")
    assert code == 0, out + err
    assert "p1" in out and "applied" in out
    p.wait_colour(rgb("#2040c0"))

    # alert send: displayed, ttl sent as an absolute expires, the index lists it
    mark = p.sub.mark()
    before = datetime.now(timezone.utc)
    code, out, err = ctl(rabbit, "alert", "send", "--id", "crue-1", "--all", "--level", "critical",
                         "--title", "ALERTE CRUE", "--ttl", "600", "--timeout", "15")
    assert code == 0 and "displayed" in out, out + err
    p.wait_event("alert.displayed", after=mark, where=lambda e: e["alert"] == "crue-1")
    sent = json.loads(retained(rabbit, f"{PREFIX}/all/alerts/crue-1") or b"{}")
    assert "ttl" not in sent
    ends = datetime.fromisoformat(sent["expires"])
    assert 599 <= (ends - before).total_seconds() <= 603
    assert index_of(rabbit, f"{PREFIX}/all/alert-index") == ["crue-1"]
    code, out, _ = ctl(rabbit, "alert", "list", "--json")
    rows = [r for r in json.loads(out) if r["topic"]]
    assert [(r["alert"], r["state"]) for r in rows] == [("crue-1", "active")]

    # a panel started afterwards finds it through the index (RabbitMQ: no retained on alerts/+)
    p2 = panel("p2", start=False)
    mark2 = p2.sub.mark()
    p2.start()
    p2.wait_event("alert.displayed", after=mark2, where=lambda e: e["alert"] == "crue-1")

    # cancel: ended on both, the index empty again
    mark, mark2 = p.sub.mark(), p2.sub.mark()
    code, _, err = ctl(rabbit, "alert", "cancel", "--id", "crue-1", "--all")
    assert code == 0, err
    ended = p.wait_event("alert.ended", after=mark)
    assert (ended["alert"], ended["reason"]) == ("crue-1", "cancelled")
    p2.wait_event("alert.ended", after=mark2, where=lambda e: e["alert"] == "crue-1")
    assert index_of(rabbit, f"{PREFIX}/all/alert-index") == []


def test_status_listen_finds_a_panel_the_index_does_not_list(rabbit: Any) -> None:
    rabbit.publish(f"{PREFIX}/panels/p9/online", b"true", retain=True)  # before: not heard live
    result: list[tuple[int, str, str]] = []
    thread = threading.Thread(target=lambda: result.append(ctl(rabbit, "status", "--json", "--listen", "3")))
    thread.start()
    time.sleep(1.5)
    hb = {"panel": "p9", "ts": datetime.now(timezone.utc).isoformat(), "screen": "on"}
    rabbit.publish(f"{PREFIX}/panels/p9/heartbeat", json.dumps(hb).encode(), retain=True)
    thread.join(15)
    code, out, err = result[0]
    assert code == 0, err
    assert [(r["panel"], r["state"]) for r in json.loads(out)] == [("p9", "online")]
    assert index_of(rabbit, f"{PREFIX}/fleet") == ["p9"]
    # now a plain status finds it through the index and its exact topics
    (row,) = json.loads(ctl(rabbit, "status", "--json")[1])
    assert (row["panel"], row["screen"]) == ("p9", "on")


def test_alert_send_waiting_with_nobody_to_wait_for_says_so_at_once(rabbit: Any) -> None:
    start = time.monotonic()
    code, out, err = ctl(rabbit, "alert", "send", "--id", "vent-1", "--group", "centre", "--level", "warning",
                         "--title", "Vent")
    assert code == 0, err
    assert "no panel to wait for" in out and "status --listen" in out
    assert time.monotonic() - start < 2.0, "the index update must not wait out a time-out"


def test_mosquitto_with_3_1_1_sends_expires_and_prunes_expired_ids(broker: Broker) -> None:
    code, _, err = ctl(broker, "alert", "send", "--protocol", "3.1.1", "--id", "court", "--all",
                       "--level", "info", "--title", "bref", "--ttl", "1", "--no-wait")
    assert code == 0 and NOTICE not in err, err
    assert "ends at" in err and "MQTT 3.1.1 has no message expiry" in err
    assert "expires" in json.loads(retained(broker, f"{PREFIX}/all/alerts/court") or b"{}")
    assert index_of(broker, f"{PREFIX}/all/alert-index") == ["court"]
    time.sleep(2.2)  # "court" has expired; the broker still holds it (no message expiry on 3.1.1)
    assert retained(broker, f"{PREFIX}/all/alerts/court") is not None
    code, _, err = ctl(broker, "alert", "send", "--protocol", "3.1.1", "--id", "long", "--all",
                       "--level", "info", "--title", "long", "--no-wait")
    assert code == 0, err
    assert index_of(broker, f"{PREFIX}/all/alert-index") == ["long"]
    # auto on mosquitto: MQTT 5, the broker's own expiry, no notice
    code, _, err = ctl(broker, "alert", "send", "--id", "t5", "--group", "g", "--level", "info",
                       "--title", "x", "--ttl", "60", "--no-wait")
    assert code == 0 and NOTICE not in err and "the broker drops it after 61 s" in err
    assert json.loads(retained(broker, f"{PREFIX}/groups/g/alerts/t5") or b"{}")["ttl"] == 60
    assert index_of(broker, f"{PREFIX}/groups/g/alert-index") == ["t5"]


def test_update_rolls_out_through_the_fleet_index_on_rabbitmq(rabbit: Any, release: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """test_rollout's simulated panels (they fetch and verify the bundle's parts) on RabbitMQ 3.1.1."""
    import test_rollout

    monkeypatch.setattr(test_rollout, "connect_client",
                        lambda b, cid, protocol="5", on_message=None: connect_client(b, cid, "3.1.1", on_message))
    key, bundle, keys = release
    panels = {pid: test_rollout.SimPanel(rabbit, pid, keys) for pid in ("p01", "p02", "p03")}
    try:
        # what status/cmd/the console leave there; without it RabbitMQ shows update no panel
        code, _, err = ctl(rabbit, "update", str(bundle), "--all", "--key", str(key), "--timeout", "5")
        assert code == 2 and "no target" in err, err
        rabbit.publish(f"{PREFIX}/fleet", json.dumps({"panels": sorted(panels), "ts": "2026-12-03T10:00:00+00:00"}),
                       retain=True)
        code, out, err = ctl(rabbit, "update", str(bundle), "--all", "--canary", "1", "--key", str(key),
                             "--timeout", "20", "--part-kb", "8")
        assert code == 0, out + err
        assert all(p.firmware == test_rollout.NEW and not p.problems for p in panels.values())
        assert all(test_rollout.table(out)[pid][:3] == ["updated", test_rollout.OLD, test_rollout.NEW]
                   for pid in panels)
    finally:
        for p in panels.values():
            p.close()


def test_a_dotted_alert_left_from_before_the_rule_is_listed_invalid(broker: Broker) -> None:
    broker.publish(f"{PREFIX}/all/alerts/crue.1", b'{"level":"info","title":"old"}', retain=True)
    code, out, err = ctl(broker, "alert", "list", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["scope"], row["alert"], row["state"]) == ("all", "crue.1", "invalid")
    assert '"." is not allowed' in row["reason"]
    assert "invalid" in ctl(broker, "alert", "list")[1]

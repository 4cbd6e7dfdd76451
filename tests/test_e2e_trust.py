"""Signed messages end to end: a real player with trust.keys, a real mosquitto, the PNG it shows.

The test plays the central server: it signs with player.trust.sign, as panelctl does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fixtures_broker import Broker
from fixtures_player import PREFIX, PanelProcess, rgb, text_playlist
from test_e2e_alerts import ALERT_AT, CRITICAL, SIZE, Publisher, for_alert

from player.ctl.signing import Signer
from player.trust import b64url

CENTRAL = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"e2e central key").digest())
NEXT = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"e2e next key").digest())
INTRUDER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"e2e intruder key").digest())
PLAYLIST_COLOUR = "#12ab34"


def inline(kid: str, key: Ed25519PrivateKey) -> dict[str, str]:
    return {"kid": kid, "key": b64url(key.public_key().public_bytes_raw())}


class Server:
    """Signs (with panelctl's signer) and publishes as a central server would."""

    def __init__(self, pub: Publisher, key: Ed25519PrivateKey = CENTRAL, kid: str = "central") -> None:
        self.pub, self.signer = pub, Signer(key, kid)

    def seal(self, leaf: str, payload: bytes | dict[str, Any], iat: float | None = None) -> bytes:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        return self.signer.seal(f"{PREFIX}/{leaf}", data, iat)

    def send(self, leaf: str, payload: bytes | dict[str, Any], retain: bool = True) -> bytes:
        sealed = self.seal(leaf, payload)
        self.pub.send(leaf, sealed, retain=retain)
        return sealed


@pytest.fixture
def pub(broker: Broker) -> Iterator[Publisher]:
    publisher = Publisher(broker)
    yield publisher
    publisher.close()


def trusted_panel(make: Callable[..., PanelProcess], server: Server, keys: list[dict[str, str]] | None = None,
                  **kwargs: Any) -> PanelProcess:
    p = make(size=SIZE, extra={"trust": {"keys": keys or [inline("central", CENTRAL)]}}, **kwargs)
    mark = p.sub.mark()
    server.send(f"panels/{p.id}/playlist", text_playlist("base", 1, PLAYLIST_COLOUR))
    p.wait_event("playlist.applied", after=mark)
    p.wait_colour(rgb(PLAYLIST_COLOUR))
    return p


def unchanged(p: PanelProcess, server: Server) -> None:
    """The playlist colour is still what the panel shows, once it has handled everything sent."""
    request = f"ping-{uuid.uuid4().hex[:6]}"
    mark = p.sub.mark()
    p.broker.publish(f"{p.topic}/cmd", server.seal(f"panels/{p.id}/cmd", {"id": request, "cmd": "screenshot"}))
    p.wait_event("command.done", after=mark, where=lambda e: e.get("request") == request)
    assert p.pixel(5, 5) == rgb(PLAYLIST_COLOUR)


def test_unsigned_tampered_and_unknown_key_alerts_change_nothing(panel, pub):
    server = Server(pub)
    p = trusted_panel(panel, server)
    forged = {"level": "critical", "title": "FAUSSE ALERTE - ÉVACUEZ"}

    mark = p.sub.mark()
    pub.send("all/alerts/faux-1", forged)
    assert p.wait_event("alert.rejected", after=mark)["reason"] == (
        "unsigned alert or cancel: this panel accepts only signed alerts (trust.require)")
    unchanged(p, server)

    head, body, sig = server.seal("all/alerts/faux-2", {"level": "info", "title": "Marché"}).split(b".")
    tampered = head + b"." + b64url(json.dumps(forged).encode()).encode() + b"." + sig
    mark = p.sub.mark()
    pub.send("all/alerts/faux-2", tampered)
    assert p.wait_event("alert.rejected", after=mark)["reason"].startswith("bad signature (key 'central')")
    unchanged(p, server)

    mark = p.sub.mark()
    Server(pub, INTRUDER, "central").send("all/alerts/faux-3", forged)
    assert p.wait_event("alert.rejected", after=mark)["reason"].startswith("bad signature")
    Server(pub, INTRUDER, "pirate").send("all/alerts/faux-4", forged)
    assert p.wait_event("alert.rejected", after=mark, where=for_alert("faux-4"))["reason"] == (
        "signed with key 'pirate', which this panel does not trust")
    # Signed for one topic, published on another.
    mark = p.sub.mark()
    pub.send("all/alerts/faux-5", server.seal(f"panels/{p.id}/alerts/faux-5", forged))
    assert p.wait_event("alert.rejected", after=mark)["reason"] == "signed for another topic"
    unchanged(p, server)
    assert not [e for e in p.events() if e["type"] == "alert.displayed"]


def test_a_signed_alert_shows_a_forged_cancel_does_not_end_it_and_a_replay_after_its_cancel_is_refused(panel, pub):
    server = Server(pub)
    p = trusted_panel(panel, server)
    mark = p.sub.mark()
    original = server.send("all/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE"})
    p.wait_event("alert.displayed", after=mark, where=for_alert("crue-1"))
    p.wait_colour(CRITICAL, at=ALERT_AT)

    mark = p.sub.mark()
    pub.send("all/alerts/crue-1", b"")  # an unsigned cancel
    assert p.wait_event("alert.rejected", after=mark)["reason"].startswith("unsigned alert or cancel")
    Server(pub, INTRUDER, "pirate").send("all/alerts/crue-1", b"")
    assert "does not trust" in p.wait_event("alert.rejected", after=mark,
                                            where=lambda e: "pirate" in e["reason"])["reason"]
    # An old cancel of the same topic, signed before the alert: a replay too.
    pub.send("all/alerts/crue-1", server.seal("all/alerts/crue-1", b"", iat=1000.0))
    assert p.wait_event("alert.rejected", after=mark, where=lambda e: "replay" in e["reason"])
    assert p.pixel(*ALERT_AT) == CRITICAL
    assert not [e for e in p.events(mark) if e["type"] == "alert.ended"]

    mark = p.sub.mark()
    server.send("all/alerts/crue-1", b"")  # the real cancel
    assert p.wait_event("alert.ended", after=mark)["reason"] == "cancelled"
    p.wait_colour(rgb(PLAYLIST_COLOUR))

    mark = p.sub.mark()
    pub.send("all/alerts/crue-1", original)  # the captured alert, replayed
    assert p.wait_event("alert.rejected", after=mark)["reason"] == (
        "replay: signed before the last message accepted on this topic")
    unchanged(p, server)

    # Across a restart too (the retained message on the broker is now the replay).
    p.stop()
    mark = p.sub.mark()
    p.start()
    assert p.wait_event("alert.rejected", after=mark, timeout=15)["reason"].startswith("replay")
    p.wait_colour(rgb(PLAYLIST_COLOUR))
    unchanged(p, server)


def test_signed_commands_run_unsigned_ones_are_refused(panel, pub):
    server = Server(pub)
    p = trusted_panel(panel, server)
    request = "req-unsigned"
    mark = p.sub.mark()
    pub.send(f"panels/{p.id}/cmd", {"id": request, "cmd": "restart"}, retain=False)
    failed = p.wait_event("command.failed", after=mark, where=lambda e: e.get("request") == request)
    assert failed["cmd"] == "restart" and failed["reason"].startswith("unsigned command")
    sealed = server.send(f"panels/{p.id}/cmd", {"id": "req-signed", "cmd": "identify", "seconds": 5}, retain=False)
    p.wait_event("command.done", after=mark, where=lambda e: e.get("request") == "req-signed")
    mark = p.sub.mark()
    pub.send(f"panels/{p.id}/cmd", sealed, retain=False)  # the same command, captured and sent again
    failed = p.wait_event("command.failed", after=mark)
    assert failed["request"] == "req-signed" and failed["reason"] == "replay: this command was already run"
    assert p.proc is not None and p.proc.poll() is None  # the unsigned restart did not happen


def test_key_rotation_two_keys_then_the_old_one_removed(panel, pub, tmp_path):
    old, new = Server(pub), Server(pub, NEXT, "next")
    p = trusted_panel(panel, old, keys=[inline("central", CENTRAL), inline("next", NEXT)])
    mark = p.sub.mark()
    old.send("all/alerts/vieille", {"level": "warning", "title": "ORAGES"})
    new.send(f"panels/{p.id}/alerts/neuve", {"level": "critical", "title": "ALERTE CRUE"})
    p.wait_event("alert.displayed", after=mark, where=for_alert("neuve"))
    p.wait_colour(CRITICAL, at=ALERT_AT)

    # The old key is withdrawn from the config: after the restart its alert is not believed.
    p.stop()
    config = p.config.read_text()
    import yaml

    data = yaml.safe_load(config)
    data["trust"]["keys"] = [inline("next", NEXT)]
    p.config.write_text(yaml.safe_dump(data))
    mark = p.sub.mark()
    p.start()
    refused = p.wait_event("alert.rejected", after=mark, where=for_alert("vieille"), timeout=15)
    assert refused["reason"] == "signed with key 'central', which this panel does not trust"
    heartbeat = p.sub.wait_for(f"{p.topic}/heartbeat", after=mark,
                               where=lambda m: json.loads(m.payload)["alerts"] == ["neuve"], timeout=15)
    assert json.loads(heartbeat.payload)["alerts"] == ["neuve"]
    mark = p.sub.mark()
    new.send(f"panels/{p.id}/alerts/neuve", b"")
    p.wait_event("alert.ended", after=mark)
    p.wait_colour(rgb(PLAYLIST_COLOUR))


# -- panelctl --key ------------------------------------------------------------------------------------

CAP = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>crue-2026-7</identifier><sender>prefecture@isere.example</sender>
  <sent>{sent}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>fr-FR</language><category>Met</category><event>Crue</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <headline>Crue de l'Isère</headline><description>Montée rapide des eaux.</description></info>
</alert>"""


def test_panelctl_keys_new_and_key_sign_alerts_cap_cancels_playlists_and_commands(panel, tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from test_panelctl import ctl

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PANELCTL_CONFIG", raising=False)
    monkeypatch.delenv("PANELCTL_KEY", raising=False)
    code, out, err = ctl_offline("keys", "new", "central-2026", "--dir", str(tmp_path))
    assert code == 0, err
    assert "mode 0600" in out and "trust:" in out
    key, pub = tmp_path / "central-2026.key", tmp_path / "central-2026.pub"
    p = panel(size=SIZE, extra={"trust": {"keys": [str(pub)]}})

    doc = tmp_path / "fond.yaml"
    doc.write_text(yaml_dump(text_playlist("fond", 1, PLAYLIST_COLOUR)))
    code, out, err = ctl(p.broker, "push", str(doc), "--panel", p.id, "--timeout", "20")
    assert code == 1 and "unsigned playlist" in out + err  # without the key: refused by the panel
    code, out, err = ctl(p.broker, "--key", str(key), "push", str(doc), "--panel", p.id, "--timeout", "20")
    assert code == 0, out + err
    assert "signed by central-2026" in err
    p.wait_colour(rgb(PLAYLIST_COLOUR))

    monkeypatch.setenv("PANELCTL_KEY", str(key))  # the same, from the environment
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "alert", "send", "--id", "crue-9", "--all", "--level", "critical",
                         "--title", "ALERTE CRUE")
    assert code == 0, out + err
    p.wait_event("alert.displayed", after=mark, where=for_alert("crue-9"))
    code, out, _ = ctl(p.broker, "alert", "list", "--json")
    assert [(r["alert"], r["signed_by"]) for r in json.loads(out)] == [("crue-9", "central-2026")]
    mark = p.sub.mark()
    assert ctl(p.broker, "alert", "cancel", "--id", "crue-9", "--all")[0] == 0
    assert p.wait_event("alert.ended", after=mark)["reason"] == "cancelled"
    code, out, _ = ctl(p.broker, "alert", "list", "--json")
    assert [(r["alert"], r["state"]) for r in json.loads(out)] == [("crue-9", "cancel message")]

    cap = tmp_path / "crue.xml"
    cap.write_text(CAP.format(sent=datetime.now(timezone.utc).replace(microsecond=0).isoformat()), encoding="utf-8")
    mark = p.sub.mark()
    code, out, err = ctl(p.broker, "alert", "send", "--cap", str(cap), "--id", "cap-7", "--panel", p.id)
    assert code == 0, out + err
    p.wait_event("alert.displayed", after=mark, where=for_alert("cap-7"))

    code, out, err = ctl(p.broker, "cmd", p.id, "identify", "--seconds", "3")
    assert code == 0 and "identify done" in out, err
    monkeypatch.delenv("PANELCTL_KEY")
    code, out, err = ctl(p.broker, "cmd", p.id, "identify", "--seconds", "3")
    assert code == 1 and "unsigned command" in err


def ctl_offline(*argv: str) -> tuple[int, str, str]:
    import io

    from player.ctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


def yaml_dump(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, allow_unicode=True)

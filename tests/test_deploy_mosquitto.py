"""The broker configuration shipped in deploy/mosquitto/: per-panel credentials and ACL.

A real mosquitto loads the shipped ACL file, completed by the shipped ``add-panel``
script for two test panels, and the password file that script made with
``mosquitto_passwd``. Each panel then tries what a stolen panel's credentials
would try; an operator (``central``) watches what gets through.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fixtures_broker import ROOT, Broker, LinkChild, Sub, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from player.net.topics import Topics

DEPLOY = ROOT / "deploy" / "mosquitto"
ADD_PANEL = DEPLOY / "add-panel"
SHIPPED_ACL = DEPLOY / "panel-player.acl"
SHIPPED_CONF = DEPLOY / "panel-player.conf"

P = "signage"
PANEL, GROUPS = "mairie-entree", ["centre-ville", "ecoles"]
OTHER, OTHER_GROUPS = "piscine", ["quartier-sud"]
OPERATOR = "central"
SHA = hashlib.sha256(b"affiche").hexdigest()
NOT_AUTHORIZED = 135  # MQTT 5 PUBACK / CONNACK reason code

# What a panel's credentials may publish, and what they may not (server → panel
# topics, and another panel's status topics).
PANEL_WRITES = [f"{P}/panels/{PANEL}/{leaf}" for leaf in ("heartbeat", "events", "online", "screenshot", "sync")]
SERVER_TOPICS = [
    f"{P}/all/alerts/crue",
    f"{P}/panels/{PANEL}/alerts/crue",
    f"{P}/groups/{GROUPS[0]}/alerts/crue",
    f"{P}/panels/{PANEL}/playlist",
    f"{P}/groups/{GROUPS[0]}/playlist",
    f"{P}/assets/{SHA}",
    f"{P}/panels/{PANEL}/cmd",
    f"{P}/panels/{OTHER}/cmd",
    f"{P}/panels/{OTHER}/heartbeat",
    f"{P}/panels/{OTHER}/online",
    f"{P}/ctl/{OPERATOR}/sync",
]


# -- the fleet's files, made by the shipped script ------------------------------------


@dataclass
class Fleet:
    """The shipped ACL and a password file, in a temporary folder, as add-panel leaves them."""

    folder: Path
    acl: Path
    passwd: Path
    operator_password: str

    def add_panel(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(ADD_PANEL), "--acl", str(self.acl), "--passwd", str(self.passwd), *args],
                                capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"add-panel {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def password_file(self, panel: str) -> Path:
        return self.folder / f"{panel}.password"

    def password(self, panel: str) -> str:
        if panel == OPERATOR:
            return self.operator_password
        return self.password_file(panel).read_text().splitlines()[0]

    def users(self) -> list[str]:
        return [line.split(":", 1)[0] for line in self.passwd.read_text().splitlines()]


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    folder = tmp_path / "etc"
    folder.mkdir()
    acl = folder / "panel-player.acl"
    acl.write_bytes(SHIPPED_ACL.read_bytes())
    f = Fleet(folder, acl, folder / "panel-player.passwd", f"op-{uuid.uuid4().hex[:12]}")
    f.add_panel("--password-file", str(f.password_file(PANEL)), PANEL, *GROUPS)
    f.add_panel("--password-file", str(f.password_file(OTHER)), OTHER, *OTHER_GROUPS)
    # The operator's account, as README.md says (batch form of mosquitto_passwd).
    subprocess.run(["mosquitto_passwd", "-b", str(f.passwd), OPERATOR, f.operator_password],
                   check=True, capture_output=True)
    return f


class FleetBroker(Broker):
    """The test broker (free loopback port, plain TCP) with the fleet's password file and ACL.

    The helper clients of :class:`Broker` (``sub``, ``publish``) log in as the operator.
    """

    def __init__(self, folder: Path, fleet: Fleet) -> None:
        self.fleet = fleet
        super().__init__(folder, persistence=False)
        self.username, self.password = OPERATOR, fleet.operator_password

    def _write_config(self) -> None:
        super()._write_config()
        lines = [line for line in self.conf.read_text().splitlines() if line != "allow_anonymous true"]
        lines += ["allow_anonymous false", f"password_file {self.fleet.passwd}", f"acl_file {self.fleet.acl}"]
        self.conf.write_text("\n".join(lines) + "\n")

    def reload(self) -> None:
        """SIGHUP, as ``systemctl reload mosquitto`` does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def fleet_broker(tmp_path: Path, fleet: Fleet) -> Iterator[FleetBroker]:
    b = FleetBroker(tmp_path / "broker", fleet)
    b.start()
    try:
        yield b
    finally:
        b.stop()


# -- a client logged in as someone --------------------------------------------------


class Client:
    """One MQTT connection as ``username``: PUBACK and SUBACK reason codes, messages received."""

    def __init__(self, port: int, username: str, password: str, *, client_id: str | None = None,
                 protocol: str = "5", ca_file: Path | None = None,
                 will: tuple[str, str] | None = None, host: str = "127.0.0.1",
                 session: bool = False) -> None:
        self.protocol = protocol
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
        self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self._cond = threading.Condition()
        self.connack: Any = None
        self.session_present = False
        self.pubacks: dict[int, Any] = {}
        self.subacks: dict[int, list[Any]] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self.disconnects = 0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        if session:  # a persistent session, as the player's (MQTT 5)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        else:
            self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.connack is not None, timeout=5):
                self.close()
                raise AssertionError(f"no CONNACK for {username}")
        if not self.connected:  # refused: no reconnecting in the background
            self.close()

    # paho callbacks (network thread): record and notify
    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, p: Any) -> None:
        with self._cond:
            self.connack = rc
            self.session_present = bool(flags.session_present)
            self._cond.notify_all()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, p: Any) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self._cond:
            self.pubacks[mid] = rc
            self._cond.notify_all()

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[Any], p: Any) -> None:
        with self._cond:
            self.subacks[mid] = rcs
            self._cond.notify_all()

    def _on_message(self, c: Any, u: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> Any:
        """Publish at QoS 1 and return the PUBACK's reason code (always Success with MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self.pubacks, timeout=5):
                raise AssertionError(f"no PUBACK for {topic}")
            return self.pubacks[info.mid]

    def subscribe(self, *filters: str) -> list[Any]:
        """Subscribe at QoS 1; the SUBACK's reason codes, one per filter."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        assert mid is not None
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self.subacks, timeout=5):
                raise AssertionError(f"no SUBACK for {filters}")
            return self.subacks[mid]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 5.0) -> mqtt.MQTTMessage:
        def find() -> mqtt.MQTTMessage | None:
            return next((m for m in self.messages if m.topic == topic and m.payload == payload), None)

        with self._cond:
            if not self._cond.wait_for(lambda: find() is not None, timeout=timeout):
                seen = [(m.topic, bytes(m.payload[:40])) for m in self.messages]
                raise AssertionError(f"no {payload!r} on {topic} within {timeout} s; got {seen}")
            found = find()
            assert found is not None
            return found

    def sync(self, panel: str) -> None:
        """Publish a marker on the panel's own sync topic and wait for it to come back:
        every message the broker had for this client (retained ones included) came first."""
        topic, marker = f"{P}/panels/{panel}/sync", uuid.uuid4().hex.encode()
        assert not any(c.is_failure for c in self.subscribe(topic))
        assert not self.publish(topic, marker).is_failure
        self.wait_for(topic, marker)

    def wait_disconnected(self, timeout: float = 5.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.disconnects > 0, timeout=timeout):
                raise AssertionError(f"still connected after {timeout} s")

    def topics(self) -> set[str]:
        with self._cond:
            return {m.topic for m in self.messages if not m.topic.endswith("/sync")}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def hang_up(c: Client) -> None:
    """End the connection without DISCONNECT, as a panel losing power or network."""
    sock = c.client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)


def connack(port: int, username: str | None, password: str | None = None, *,
            ca_file: Path | None = None, host: str = "127.0.0.1") -> Any:
    """The CONNACK's reason code for one MQTT 5 connection attempt (then leaves)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"try-{uuid.uuid4().hex[:10]}",
                         protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file))
    answer: list[Any] = []
    client.on_connect = lambda c, u, f, rc, p: answer.append(rc)
    client.connect(host, port, keepalive=30)
    deadline = time.monotonic() + 5
    while not answer and time.monotonic() < deadline:  # this thread runs the network loop
        client.loop(timeout=0.05)
    client.disconnect()
    assert answer, f"no CONNACK for {username}"
    return answer[0]


def operator_sync(sub: Sub, broker: Broker) -> None:
    """Everything the broker queued for ``sub`` before now has reached it."""
    marker = uuid.uuid4().hex
    after = sub.mark()
    broker.publish(f"{P}/ctl/test-{marker}/sync", marker)
    sub.wait_for(f"{P}/ctl/test-{marker}/sync", marker.encode(), after=after)


# -- the script ----------------------------------------------------------------------


def panel_block(acl: Path, panel: str) -> list[str]:
    """The lines of ``panel``'s block in the ACL, from its ``# panel`` line to the next blank line."""
    lines = acl.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line == f"# panel {panel}"]
    assert len(starts) == 1, f"{len(starts)} blocks for {panel}"
    block = []
    for line in lines[starts[0]:]:
        if not line:
            break
        block.append(line)
    return block


def expected_block(panel: str, groups: list[str]) -> list[str]:
    return [f"# panel {panel}", f"user {panel}", f"topic read {P}/all/#", f"topic read {P}/assets/#",
            *(f"topic read {P}/groups/{g}/#" for g in groups)]


def test_add_panel_writes_one_entry_per_panel_and_updates_it_when_run_again(fleet: Fleet) -> None:
    shipped = SHIPPED_ACL.read_text().rstrip("\n")
    assert fleet.acl.read_text().startswith(shipped + "\n")  # the shipped part is untouched
    assert panel_block(fleet.acl, PANEL) == expected_block(PANEL, GROUPS)
    assert panel_block(fleet.acl, OTHER) == expected_block(OTHER, OTHER_GROUPS)
    assert sorted(fleet.users()) == sorted([PANEL, OTHER, OPERATOR])
    password_file = fleet.password_file(PANEL)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{48}", fleet.password(PANEL))
    assert stat.S_IMODE(fleet.passwd.stat().st_mode) & 0o007 == 0  # hashes not readable by all

    # Again with the same arguments: the same ACL, byte for byte; one user; the same password.
    acl_before, password_before = fleet.acl.read_bytes(), password_file.read_bytes()
    fleet.add_panel("--password-file", str(password_file), PANEL, *GROUPS)
    assert fleet.acl.read_bytes() == acl_before
    assert password_file.read_bytes() == password_before
    assert fleet.users().count(PANEL) == 1

    # New groups (a group given twice counts once); no --password-file: the password stays.
    passwd_before = fleet.passwd.read_bytes()
    fleet.add_panel(PANEL, "gare", "gare")
    assert panel_block(fleet.acl, PANEL) == expected_block(PANEL, ["gare"])
    assert panel_block(fleet.acl, OTHER) == expected_block(OTHER, OTHER_GROUPS)
    assert fleet.acl.read_text().count(f"user {PANEL}\n") == 1
    assert fleet.passwd.read_bytes() == passwd_before

    # Removed: its block and its user go, the others stay.
    fleet.add_panel("--remove", OTHER)
    assert f"user {OTHER}" not in fleet.acl.read_text()
    assert f"# panel {OTHER}" not in fleet.acl.read_text()
    assert sorted(fleet.users()) == sorted([PANEL, OPERATOR])
    assert panel_block(fleet.acl, PANEL) == expected_block(PANEL, ["gare"])
    assert "\n\n\n" not in fleet.acl.read_text() and fleet.acl.read_text().endswith("#\n")


def test_add_panel_refuses_what_it_must_not_write(fleet: Fleet) -> None:
    acl_before, passwd_before = fleet.acl.read_bytes(), fleet.passwd.read_bytes()
    cases = {
        (OPERATOR,): "did not write",  # the operator's block is not a panel's
        ("new-panel", "centre-ville"): "no password yet",  # a new panel needs --password-file
        ("Mairie",): "must match",
        (PANEL, "centre ville"): "must match",
        (PANEL, "a" * 64): "longer than 63",
        ("--prefix", "signage/#", PANEL): "--prefix",
        ("--remove", PANEL, "centre-ville"): "only the panel id",
    }
    for args, reason in cases.items():
        result = fleet.add_panel(*args, check=False)
        assert result.returncode == 2 and reason in result.stderr, (args, result.stderr)
    assert fleet.acl.read_bytes() == acl_before
    assert fleet.passwd.read_bytes() == passwd_before


# -- what a panel's credentials can do on a real broker -------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_panel_cannot_publish_server_topics_but_its_status_goes_through(
        fleet_broker: FleetBroker, protocol: str) -> None:
    with fleet_broker.sub(f"{P}/#") as seen:
        panel = Client(fleet_broker.port, PANEL, fleet_broker.fleet.password(PANEL),
                       client_id=PANEL, protocol=protocol)
        try:
            assert panel.connected, panel.connack
            for topic in SERVER_TOPICS:
                code = panel.publish(topic, b'{"level": "critical", "title": "FAUX"}', retain=True)
                if protocol == "5":
                    assert code.value == NOT_AUTHORIZED, (topic, code)
                else:  # MQTT 3.1.1 has no reason code: the broker acknowledges and drops it
                    assert not code.is_failure, (topic, code)
            for topic in PANEL_WRITES:
                assert not panel.publish(topic, b"ok").is_failure, topic
        finally:
            panel.close()
        for topic in PANEL_WRITES:  # these arrive after every refused message was handled
            seen.wait_for(topic, b"ok")
        assert not set(SERVER_TOPICS) & {m.topic for m in seen.messages}, \
            [m.topic for m in seen.messages]

    # Nothing refused was kept as a retained message either.
    with fleet_broker.sub(f"{P}/#") as later:
        operator_sync(later, fleet_broker)
        assert not set(SERVER_TOPICS) & {m.topic for m in later.messages}


def test_a_panel_reads_its_own_its_groups_and_the_all_topics_only(fleet_broker: FleetBroker) -> None:
    readable = [
        f"{P}/panels/{PANEL}/playlist", f"{P}/panels/{PANEL}/alerts/a1",
        f"{P}/groups/{GROUPS[0]}/playlist", f"{P}/groups/{GROUPS[1]}/alerts/a2",
        f"{P}/all/alerts/a3", f"{P}/assets/{SHA}",
    ]
    not_readable = [
        f"{P}/panels/{OTHER}/playlist", f"{P}/panels/{OTHER}/alerts/a4",
        f"{P}/groups/{OTHER_GROUPS[0]}/playlist", f"{P}/groups/{OTHER_GROUPS[0]}/alerts/a5",
        f"{P}/groups/gare/playlist", f"{P}/panels/{OTHER}/heartbeat", f"{P}/ctl/{OPERATOR}/sync",
    ]
    for topic in readable + not_readable:
        fleet_broker.publish(topic, topic.encode(), retain=True)

    panel = Client(fleet_broker.port, PANEL, fleet_broker.fleet.password(PANEL), client_id=PANEL)
    try:
        # What the player subscribes to, an asset, everything, and other panels' and groups' topics.
        filters = Topics(P).subscriptions_for(PANEL, GROUPS) + [
            f"{P}/assets/{SHA}", f"{P}/#", f"{P}/panels/{OTHER}/#", f"{P}/groups/+/playlist",
            f"{P}/panels/+/heartbeat"]
        codes = panel.subscribe(*filters)
        # mosquitto 2.0 grants every filter; the ACL decides message by message what is delivered.
        assert all(not c.is_failure for c in codes), codes
        panel.sync(PANEL)
        assert panel.topics() == set(readable)

        # Live messages too: its own command, not another panel's.
        fleet_broker.publish(f"{P}/panels/{OTHER}/cmd", b'{"id": "r1", "cmd": "restart"}')
        fleet_broker.publish(f"{P}/panels/{PANEL}/cmd", b'{"id": "r2", "cmd": "identify"}')
        panel.sync(PANEL)
        assert panel.topics() == set(readable) | {f"{P}/panels/{PANEL}/cmd"}
    finally:
        panel.close()


def test_the_operator_publishes_alerts_playlists_assets_and_commands(fleet_broker: FleetBroker) -> None:
    panel = Client(fleet_broker.port, PANEL, fleet_broker.fleet.password(PANEL), client_id=PANEL)
    operator = Client(fleet_broker.port, OPERATOR, fleet_broker.fleet.password(OPERATOR))
    try:
        panel.subscribe(*Topics(P).subscriptions_for(PANEL, GROUPS), f"{P}/assets/{SHA}")
        sent = [
            f"{P}/all/alerts/crue", f"{P}/panels/{PANEL}/alerts/crue", f"{P}/groups/{GROUPS[0]}/alerts/crue",
            f"{P}/panels/{PANEL}/playlist", f"{P}/groups/{GROUPS[1]}/playlist", f"{P}/assets/{SHA}",
            f"{P}/panels/{PANEL}/cmd",
        ]
        for topic in sent:
            assert not operator.publish(topic, topic.encode(), retain=not topic.endswith("/cmd")).is_failure, topic
        for topic in sent:
            panel.wait_for(topic, topic.encode())
        # It also reads every panel's status.
        operator.subscribe(f"{P}/panels/+/heartbeat")
        assert not panel.publish(f"{P}/panels/{PANEL}/heartbeat", b"{}").is_failure
        operator.wait_for(f"{P}/panels/{PANEL}/heartbeat", b"{}")
    finally:
        panel.close()
        operator.close()


def test_wrong_or_missing_credentials_are_refused(fleet_broker: FleetBroker) -> None:
    fleet = fleet_broker.fleet
    assert connack(fleet_broker.port, PANEL, fleet.password(PANEL)).value == 0
    assert connack(fleet_broker.port, PANEL, fleet.password(OTHER)).is_failure  # another panel's password
    assert connack(fleet_broker.port, "inconnu", "x").is_failure
    assert connack(fleet_broker.port, None).is_failure  # anonymous


def test_a_panel_cannot_mark_another_offline_with_its_will(fleet_broker: FleetBroker) -> None:
    password = fleet_broker.fleet.password(PANEL)
    with fleet_broker.sub(f"{P}/panels/+/online") as seen:
        spoof = Client(fleet_broker.port, PANEL, password, client_id="spoof",
                       will=(f"{P}/panels/{OTHER}/online", "false"))
        own = Client(fleet_broker.port, PANEL, password, client_id=PANEL,
                     will=(f"{P}/panels/{PANEL}/online", "false"))
        assert spoof.connected and own.connected  # mosquitto 2.0 checks a Will when it sends it
        for c in (spoof, own):
            c.client.loop_stop()
        # The connections die without DISCONNECT: the broker sends the Wills, one after the other.
        hang_up(spoof)
        wait_until(lambda: re.search(r"^\d+: (Client spoof closed its connection|Socket error on client spoof)",
                                     fleet_broker.log_text(), re.M),
                   5, "the broker to notice the first connection's end")
        hang_up(own)
        seen.wait_for(f"{P}/panels/{PANEL}/online", b"false")
        assert seen.payloads(f"{P}/panels/{OTHER}/online") == []


def test_another_panels_client_id_takes_its_connection_but_none_of_its_messages(
        fleet_broker: FleetBroker) -> None:
    """The limit README.md states: the ACL follows the user name, not the client id."""
    port, fleet = fleet_broker.port, fleet_broker.fleet
    other = Client(port, OTHER, fleet.password(OTHER), client_id=OTHER, session=True)
    other.subscribe(f"{P}/panels/{OTHER}/cmd")
    other.close()  # off line; the broker keeps its session and queues its commands
    fleet_broker.publish(f"{P}/panels/{OTHER}/cmd", b'{"id": "r1", "cmd": "identify"}')

    intruder = Client(port, PANEL, fleet.password(PANEL), client_id=OTHER, session=True)
    try:
        assert intruder.session_present  # mosquitto handed it the other panel's session…
        intruder.sync(PANEL)
        assert intruder.topics() == set()  # …without the command queued there
    finally:
        intruder.close()

    other = Client(port, OTHER, fleet.password(OTHER), client_id=OTHER, session=True)
    try:
        intruder = Client(port, PANEL, fleet.password(PANEL), client_id=OTHER)
        intruder.close()
        other.wait_disconnected()  # the connected panel was put off line
    finally:
        other.close()


# -- reload, as after adding a panel --------------------------------------------------------


def test_a_panel_added_or_removed_while_the_broker_runs_counts_after_a_reload(
        fleet_broker: FleetBroker) -> None:
    fleet, port = fleet_broker.fleet, fleet_broker.port
    fleet_broker.publish(f"{P}/groups/gare/playlist", b"gare", retain=True)
    fleet.add_panel("--password-file", str(fleet.password_file("kiosque")), "kiosque", "gare")
    fleet.add_panel("--remove", OTHER)
    assert connack(port, "kiosque", fleet.password("kiosque")).is_failure  # not before the reload
    assert connack(port, OTHER, fleet.password(OTHER)).value == 0

    fleet_broker.reload()
    wait_until(lambda: connack(port, "kiosque", fleet.password("kiosque")).value == 0, 5,
               "the new panel to be accepted after SIGHUP", step=0.05)
    assert connack(port, OTHER, fleet.password(OTHER)).is_failure
    kiosque = Client(port, "kiosque", fleet.password("kiosque"), client_id="kiosque")
    try:
        kiosque.subscribe(f"{P}/groups/+/playlist")
        kiosque.sync("kiosque")
        assert kiosque.topics() == {f"{P}/groups/gare/playlist"}
    finally:
        kiosque.close()


# -- the player itself, and the shipped mosquitto.conf ----------------------------------------


def test_the_player_link_connects_and_receives_under_the_acl(fleet_broker: FleetBroker) -> None:
    fleet_broker.publish(f"{P}/groups/{GROUPS[1]}/playlist", b"{}", retain=True)
    fleet_broker.publish(f"{P}/all/alerts/test", b"{}", retain=True)
    with fleet_broker.sub(f"{P}/panels/{PANEL}/online") as online:
        child = LinkChild(fleet_broker, PANEL, GROUPS, username=PANEL,
                          password_file=str(fleet_broker.fleet.password_file(PANEL)))
        try:
            child.wait_connected()
            online.wait_for(f"{P}/panels/{PANEL}/online", b"true")
            child.wait_for(lambda i: i.get("topic") == f"{P}/groups/{GROUPS[1]}/playlist", what="its group playlist")
            child.wait_for(lambda i: i.get("topic") == f"{P}/all/alerts/test", what="the all alert")
            assert child.stop() == 0
            online.wait_for(f"{P}/panels/{PANEL}/online", b"false")
            assert not [i for i in child.items if i["item"] in ("LinkError", "Rejected")], child.items
        finally:
            child.kill()


class ShippedBroker(Broker):
    """mosquitto running deploy/mosquitto/panel-player.conf itself: only its paths and ports
    are changed (to the fleet's files, the test's certificates and free loopback ports)."""

    def __init__(self, folder: Path, fleet: Fleet) -> None:
        self.fleet = fleet
        super().__init__(folder, tls=True, persistence=False)
        self.username, self.password = OPERATOR, fleet.operator_password

    def _write_config(self) -> None:
        assert self.certs is not None
        text = SHIPPED_CONF.read_text()
        swaps = {
            "/etc/mosquitto/panel-player.passwd": str(self.fleet.passwd),
            "/etc/mosquitto/panel-player.acl": str(self.fleet.acl),
            "/etc/mosquitto/certs/ca.crt": str(self.certs.ca),
            "/etc/mosquitto/certs/server.crt": str(self.certs.server_cert),
            "/etc/mosquitto/certs/server.key": str(self.certs.server_key),
            "\nlistener 8883\n": f"\nlistener {self.tls_port} {self.host}\n",
            "\nlistener 1883 127.0.0.1\n": f"\nlistener {self.port} {self.host}\n",
        }
        for old, new in swaps.items():
            assert text.count(old) == 1, f"{old!r} is not once in {SHIPPED_CONF.name}"
            text = text.replace(old, new)
        test_only = [f"log_dest file {self.log}", "log_type all", "connection_messages true", "persistence false"]
        if os.geteuid() == 0:
            test_only.append("user root")
        self.conf.write_text(text + "\n# test only\n" + "\n".join(test_only) + "\n")


def test_the_shipped_config_serves_panels_over_tls_and_the_operator_on_loopback(
        tmp_path: Path, fleet: Fleet) -> None:
    listeners = re.findall(r"^listener .*$", SHIPPED_CONF.read_text(), re.M)
    assert listeners == ["listener 8883", "listener 1883 127.0.0.1"]  # no plain listener but loopback
    broker = ShippedBroker(tmp_path / "broker", fleet)
    broker.start()
    try:
        assert broker.certs is not None and broker.tls_port is not None
        ca = broker.certs.ca
        assert connack(broker.tls_port, PANEL, "wrong", ca_file=ca, host="localhost").is_failure
        panel = Client(broker.tls_port, PANEL, fleet.password(PANEL), client_id=PANEL, ca_file=ca, host="localhost")
        operator = Client(broker.port, OPERATOR, fleet.password(OPERATOR))
        try:
            assert panel.connected and operator.connected
            panel.subscribe(*Topics(P).subscriptions_for(PANEL, GROUPS))
            assert panel.publish(f"{P}/all/alerts/faux", b"{}").value == NOT_AUTHORIZED
            assert not panel.publish(f"{P}/panels/{PANEL}/heartbeat", b"{}").is_failure
            assert not operator.publish(f"{P}/all/alerts/vrai", b"{}", retain=True).is_failure
            panel.wait_for(f"{P}/all/alerts/vrai", b"{}")
        finally:
            panel.close()
            operator.close()
        log = broker.log_text()
        assert "Warning" not in log.replace("Mosquitto should not be run as root", ""), log
    finally:
        broker.stop()

"""panelctl's connection failures end quickly, with exit 1 and a sentence naming the cause.

Against a real mosquitto (tests/fixtures_broker.py): a refused login, a port with
nothing behind it, TLS trouble, a broker that never answers, an access list.
Each in-process run happens on a watchdog thread, so a regression fails the test
instead of hanging it.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fixtures_broker import ROOT, Broker, free_port, make_certs, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from player.ctl.cli import main
from player.ctl.client import CtlClient, CtlError, connack_failure, reason_sentence
from player.ctl.settings import load_settings

T = TypeVar("T")
LIMIT = 10.0  # seconds: what "never hangs" promises
LOGIN_REFUSED = "refused the login: not authorised (check the user name and password file)"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crew member's own ~/.config/panelctl.yaml must not leak into the tests."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PANELCTL_CONFIG", raising=False)


@pytest.fixture
def wrong_password(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.password"
    path.write_text("not-the-password\n")
    return path


def ours() -> list[str]:
    """panelctl's threads still alive (paho names its thread after our client id)."""
    return [t.name for t in threading.enumerate() if "panelctl-" in t.name]


def within(limit: float, what: str, call: Callable[[], T]) -> tuple[T, float]:
    """``call()`` on a watchdog thread: (its result, seconds); fails the test past ``limit``."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            error.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    elapsed = time.monotonic() - start
    assert not worker.is_alive(), f"{what} still running after {limit:g} s"
    if error:
        raise error[0]
    return result[0], elapsed


def run(*argv: str, limit: float = LIMIT) -> tuple[int, str, float]:
    """panelctl in-process on a watchdog thread: (exit status, stderr, seconds); fails past ``limit``."""
    out, err = io.StringIO(), io.StringIO()
    code, elapsed = within(limit, f"panelctl {' '.join(argv)}", lambda: main(list(argv), out, err))
    return code, err.getvalue(), elapsed


def at(broker: Broker, port: int | None = None) -> list[str]:
    return ["--broker", f"{broker.host}:{port or broker.port}", "--prefix", "signage"]


def login(broker: Broker, password_file: Path | None = None) -> list[str]:
    assert broker.password_file is not None
    return ["--username", "panel", "--password-file", str(password_file or broker.password_file)]


# -- a refused login ------------------------------------------------------------------------


def test_wrong_password_exits_1_within_10_s_20_times_in_a_row(auth_broker: Broker, wrong_password: Path) -> None:
    times = []
    for _ in range(20):
        code, err, elapsed = run("status", *at(auth_broker), *login(auth_broker, wrong_password))
        assert code == 1, err
        assert err == f"panelctl: the broker at {auth_broker.host}:{auth_broker.port} {LOGIN_REFUSED}\n"
        times.append(elapsed)
    assert max(times) < LIMIT
    wait_until(lambda: not ours(), 2, f"panelctl's threads to end, still {ours()}")
    # One CONNECT per run: a refused login is not retried behind the user's back.
    assert auth_broker.log_text().count("not authorised") == 20, auth_broker.log_text()
    print(f"20 refused logins: {sum(times):.3f} s in all, slowest {max(times):.3f} s")


def test_right_password_gets_in(auth_broker: Broker) -> None:
    code, err, _ = run("status", *at(auth_broker), *login(auth_broker))
    assert code == 0, err


def test_no_user_name_for_a_broker_that_wants_one(auth_broker: Broker) -> None:
    code, err, elapsed = run("alert", "list", *at(auth_broker))
    assert code == 1 and elapsed < LIMIT
    assert "refused the login: not authorised (it wants a user name: --username and --password-file)" in err


def test_wrong_password_as_a_process_exits(auth_broker: Broker, wrong_password: Path, tmp_path: Path) -> None:
    """The process itself ends: no thread of panelctl's is left keeping it alive.

    Five processes: the old deadlock hit about one run in two.
    """
    panelctl = Path(sys.executable).with_name("panelctl")
    assert panelctl.exists(), f"{panelctl}: install the package (pip install -e .)"
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    times = []
    for _ in range(5):
        start = time.monotonic()
        result = subprocess.run([str(panelctl), "status", *at(auth_broker), *login(auth_broker, wrong_password)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT)
        times.append(time.monotonic() - start)
        assert result.returncode == 1, result.stderr
        assert result.stderr == f"panelctl: the broker at {auth_broker.host}:{auth_broker.port} {LOGIN_REFUSED}\n"
    print(f"panelctl processes with a wrong password: exit 1 after {', '.join(f'{t:.2f}' for t in times)} s")


# -- nothing there, or something that never answers ---------------------------------------------


def test_port_with_nothing_listening_is_connection_refused() -> None:
    port = free_port()
    code, err, elapsed = run("status", "--broker", f"127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(f"panelctl: cannot connect to the broker at 127.0.0.1:{port}: connection refused (")
    assert elapsed < 2.0


def test_unknown_host_is_named() -> None:
    code, err, elapsed = run("status", "--broker", "no-such-host.invalid")  # RFC 6761: never resolves
    assert code == 1 and elapsed < LIMIT + 1
    assert "cannot find the broker's host 'no-such-host.invalid'" in err


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that completes the TCP handshake (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize("tls", [False, True], ids=["mqtt", "tls"])
def test_a_broker_that_never_answers_fails_at_the_deadline(silent_port: int, tls: bool) -> None:
    # With TLS, paho blocks in the handshake (its own 5 s socket time-out): the deadline holds anyway.
    settings = load_settings(None, {"broker": f"127.0.0.1:{silent_port}", "tls": tls})
    client = CtlClient(settings)

    def connect() -> str:
        try:
            client.connect(timeout=1.0)
        except CtlError as exc:
            return str(exc)
        return "connected"

    text, elapsed = within(LIMIT, "connect(timeout=1.0)", connect)
    assert text.startswith(f"no answer from the broker at 127.0.0.1:{silent_port} within 1 s"), text
    assert 1.0 <= elapsed < 2.0
    client.close()  # safe again


# -- TLS ---------------------------------------------------------------------------------------


def tls_flags(broker: Broker, ca: Path | None = None, client_cert: bool = True) -> list[str]:
    certs = broker.certs
    assert certs is not None
    flags = ["--tls-ca", str(ca or certs.ca)]
    if client_cert:
        flags += ["--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
    return flags


def test_tls_with_the_right_ca_and_client_certificate_gets_in(tls_broker: Broker) -> None:
    code, err, _ = run("status", *at(tls_broker, tls_broker.tls_port), *tls_flags(tls_broker))
    assert code == 0, err


def test_tls_trusting_another_ca_names_the_certificate(tls_broker: Broker, tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other-ca")
    code, err, elapsed = run("status", *at(tls_broker, tls_broker.tls_port), *tls_flags(tls_broker, other.ca))
    assert code == 1 and elapsed < LIMIT
    assert err.startswith(f"panelctl: TLS: the certificate of the broker at 127.0.0.1:{tls_broker.tls_port} "
                          "is not trusted: "), err
    assert "(is --tls-ca the CA that signed it" in err


def test_tls_against_a_plain_listener_says_tls(tls_broker: Broker) -> None:
    code, err, elapsed = run("status", *at(tls_broker), *tls_flags(tls_broker))
    assert code == 1 and elapsed < LIMIT
    assert err.startswith(f"panelctl: TLS handshake with the broker at 127.0.0.1:{tls_broker.port} failed: "), err
    assert "is it a TLS port" in err


def test_plain_mqtt_against_a_tls_listener_suggests_tls(tls_broker: Broker) -> None:
    code, err, elapsed = run("status", *at(tls_broker, tls_broker.tls_port))
    assert code == 1 and elapsed < LIMIT
    assert err == (f"panelctl: the broker at 127.0.0.1:{tls_broker.tls_port} closed the connection without "
                   "answering the login (is it a TLS port? Then give --tls-ca (or --tls))\n")


def test_tls_without_the_client_certificate_the_broker_requires(tls_broker: Broker) -> None:
    code, err, elapsed = run("status", *at(tls_broker, tls_broker.tls_port), *tls_flags(tls_broker, client_cert=False))
    assert code == 1 and elapsed < LIMIT
    assert "closed the connection without answering the login (TLS: does it require a client certificate? " \
           "--tls-cert and --tls-key)" in err


def test_tls_failure_as_a_process_exits(tls_broker: Broker, tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other-ca")
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "player.ctl.cli", "status", *at(tls_broker, tls_broker.tls_port),
                             *tls_flags(tls_broker, other.ca)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT + 5)
    assert result.returncode == 1 and "certificate" in result.stderr, result.stderr
    assert time.monotonic() - start < LIMIT


# -- an access list ---------------------------------------------------------------------------


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """User panel may read everything under signage/ but write only panelctl's own sync topics."""
    broker = Broker(tmp_path / "broker", password=f"pw-{uuid.uuid4().hex[:10]}",
                    acl="user panel\ntopic read signage/#\ntopic write signage/ctl/#\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_a_publish_the_access_list_forbids_is_refused_by_name(acl_broker: Broker) -> None:
    code, err, elapsed = run("cmd", "p1", "reload", "--timeout", "5", *at(acl_broker), *login(acl_broker))
    assert code == 1 and elapsed < LIMIT
    assert err.endswith("panelctl: the broker refused the publish on signage/panels/p1/cmd: not authorised "
                        "(the broker's access list does not let user panel publish there)\n"), err


# -- the sentences ----------------------------------------------------------------------------


def test_reason_codes_read_as_sentences() -> None:
    settings = load_settings(None, {"broker": "mqtt.ville.example", "username": "crew"})
    for name in ("Bad user name or password", "Not authorized"):
        text = connack_failure(ReasonCode(PacketTypes.CONNACK, name), settings)
        assert text == "the broker at mqtt.ville.example:1883 " + LOGIN_REFUSED
    assert connack_failure(ReasonCode(PacketTypes.CONNACK, "Server busy"), settings) == \
        "the broker at mqtt.ville.example:1883 refused the connection: server busy, try again later"
    assert reason_sentence(ReasonCode(PacketTypes.PUBACK, "Not authorized")) == "not authorised"
    assert reason_sentence(ReasonCode(PacketTypes.PUBACK, "Quota exceeded")) == "quota exceeded"
    assert reason_sentence(ReasonCode(PacketTypes.PUBACK, "Topic name invalid")) == "topic name invalid"


# -- the MQTT version (issue 16) ------------------------------------------------------------


def test_protocol_setting_from_file_and_flag_and_bad_values_named(tmp_path: Path) -> None:
    cfg = tmp_path / "panelctl.yaml"
    cfg.write_text('protocol: "3.1.1"\n')
    assert load_settings(str(cfg), {}).protocol == "3.1.1"
    assert load_settings(str(cfg), {"protocol": "5"}).protocol == "5"
    cfg.write_text("protocol: 5\n")  # YAML's number 5
    assert load_settings(str(cfg), {}).protocol == "5"
    assert load_settings(None, {}, env={}).protocol == "auto"
    cfg.write_text("protocol: 3.1\n")
    with pytest.raises(Exception, match=r"protocol: expected one of 5, 3.1.1, auto, got 3.1"):
        load_settings(str(cfg), {})


def test_mosquitto_speaks_both_and_auto_stays_on_5(broker: Broker) -> None:
    from player.ctl import client as ctl_client

    said = io.StringIO()
    ctl_client.reset_detection()
    previous, ctl_client.notice_stream = ctl_client.notice_stream, said
    try:
        seen = []
        for wanted in ("auto", "5", "3.1.1"):
            s = load_settings(None, {"broker": f"127.0.0.1:{broker.port}", "protocol": wanted}, env={})
            with broker.sub("v/#") as sub, CtlClient(s) as c:
                seen.append(c.protocol)
                c.publish(f"v/{wanted}", b"x", expiry=60)
                m = sub.wait_for(f"v/{wanted}")
                expiry = getattr(m.properties, "MessageExpiryInterval", None) if m.properties else None
                assert (expiry is not None) == (wanted != "3.1.1"), wanted  # 3.1.1 has no message expiry
        assert seen == ["5", "5", "3.1.1"]
        assert said.getvalue() == ""
    finally:
        ctl_client.notice_stream = previous


def test_rabbitmq_auto_falls_back_once_per_process_and_a_wrong_password_is_still_named(rabbit: object,
                                                                                      tmp_path: Path) -> None:
    from player.ctl import client as ctl_client

    said = io.StringIO()
    ctl_client.reset_detection()
    previous, ctl_client.notice_stream = ctl_client.notice_stream, said
    port, user, pw = rabbit.port, rabbit.username, rabbit.password_file  # type: ignore[attr-defined]
    try:
        s = load_settings(None, {"broker": f"127.0.0.1:{port}", "username": user, "password_file": str(pw)}, env={})
        for _ in range(2):
            (c, elapsed) = within(LIMIT, "connect", lambda: CtlClient(s).connect())
            assert c.protocol == "3.1.1" and elapsed < 3
            c.close()
        assert said.getvalue() == f"the broker at 127.0.0.1:{port} does not accept MQTT 5; using MQTT 3.1.1\n"
        bad = tmp_path / "bad.password"
        bad.write_text("wrong\n")
        ctl_client.reset_detection()
        s = load_settings(None, {"broker": f"127.0.0.1:{port}", "username": user, "password_file": str(bad)}, env={})
        with pytest.raises(CtlError, match="refused the login"):
            CtlClient(s).connect()
    finally:
        ctl_client.notice_stream = previous

"""A real mosquitto for the tests, and helpers to talk to it.

Fixtures (loaded by conftest.py as a pytest plugin):

- ``broker``: anonymous mosquitto on a free 127.0.0.1 port, persistence in
  tmp_path (sessions and retained messages survive ``restart()``).
- ``tls_broker``: the same plus a TLS listener on ``broker.tls_port`` that
  requires a client certificate; ``broker.certs`` holds the CA, server and
  client files made with ``openssl`` for this test.
- ``auth_broker``: anonymous access off; user ``panel`` / password
  ``broker.password`` (mosquitto_passwd), the password also written to
  ``broker.password_file``.
- ``Broker(folder, password=…, acl=TEXT)``: the same with a mosquitto
  ``acl_file`` holding TEXT (which topics user ``panel`` may read or write).
- ``link_child``: a factory running an :class:`~player.net.link.MqttLink` in a
  child process (:class:`LinkChild`), so a test can SIGSTOP / SIGKILL "the panel".

Example::

    def test_echo(broker):
        with broker.sub("t/#") as sub:
            broker.publish("t/x", b"hi")
            assert sub.wait_for("t/x").payload == b"hi"
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    """Poll ``condition`` until it returns a true value; fail the test with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


# -- certificates ---------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(folder: Path) -> Certs:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=folder)
    return Certs(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                 folder / "client.crt", folder / "client.key")


# -- the broker -----------------------------------------------------------------


class Broker:
    """One mosquitto process with a generated config; ``start``/``stop``/``restart`` keep the port."""

    host = "127.0.0.1"

    def __init__(self, folder: Path, *, tls: bool = False, password: str | None = None,
                 max_packet_size: int = 8 * 2**20, autosave_interval: int = 30,
                 persistence: bool = True, acl: str | None = None) -> None:
        self.folder = folder
        self.persistence = persistence
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port: int | None = free_port() if tls else None
        self.certs = make_certs(folder / "certs") if tls else None
        self.username = "panel" if password is not None else None
        self.password = password
        self.password_file: Path | None = None
        self.max_packet_size = max_packet_size
        self.autosave_interval = autosave_interval
        self.acl = acl  # mosquitto acl_file text, e.g. "user panel\ntopic read signage/#\n"
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {data}/",
            f"autosave_interval {self.autosave_interval}",
            f"max_packet_size {self.max_packet_size}",
            f"log_dest file {self.log}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # otherwise it drops to "mosquitto", who cannot write tmp_path
        if self.password is not None:
            assert self.username is not None
            self.password_file = self.folder / "panel.password"
            self.password_file.write_text(self.password + "\n")
            users = self.folder / "users"
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(users), self.username, self.password],
                           check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {users}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_file = self.folder / "acl"
            acl_file.write_text(self.acl)
            lines.append(f"acl_file {acl_file}")
        if self.certs is not None:
            lines += [f"listener {self.tls_port} {self.host}",
                      f"cafile {self.certs.ca}", f"certfile {self.certs.server_cert}",
                      f"keyfile {self.certs.server_key}", "require_certificate true"]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start mosquitto (same port, same persistence) and wait until it accepts connections."""
        if self.running:
            return
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        deadline = time.monotonic() + START_TIMEOUT
        for port in ports:
            while not self._accepts(port):
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {err}\n{self.log_text()}")
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto did not listen on {port}:\n{self.log_text()}")
                time.sleep(0.01)

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: it saves its database) and wait for the exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: what survives is only what autosave wrote."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- clients ---------------------------------------------------------------
    def client_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "username": self.username, "password": self.password}

    def sub(self, *topics: str, protocol: str = "5") -> Sub:
        """A subscriber on ``topics`` (filters), already subscribed when returned."""
        return Sub(self, topics, protocol=protocol)

    def publish(self, topic: str, payload: bytes | str | None, *, qos: int = 1, retain: bool = False,
                timeout: float = 5.0) -> None:
        """Publish with a short-lived client and wait until the broker has it (QoS 1 ack)."""
        client = connect_client(self, f"pub-{uuid.uuid4().hex[:12]}")
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish on {topic} not acknowledged within {timeout} s"
        finally:
            client.disconnect()
            client.loop_stop()


def connect_client(broker: Broker, client_id: str, protocol: str = "5",
                   on_message: Callable[..., None] | None = None) -> Any:
    """A paho client connected to ``broker`` (its network loop running); raises if it cannot connect."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if on_message is not None:
        client.on_message = on_message
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    if not connected.wait(5):
        client.loop_stop()
        raise AssertionError(f"test client could not connect to the broker:\n{broker.log_text()}")
    return client


class Sub:
    """Records every message on some topic filters; tests wait on it with a deadline."""

    def __init__(self, broker: Broker, topics: tuple[str, ...], protocol: str = "5") -> None:
        self.messages: list[Any] = []
        self._cond = threading.Condition()
        self._client = connect_client(broker, f"sub-{uuid.uuid4().hex[:12]}", protocol, self._on_message)
        acked: set[int] = set()

        def on_subscribe(c: Any, u: Any, mid: int, codes: Any, p: Any) -> None:
            with self._cond:
                acked.add(mid)
                self._cond.notify_all()

        self._client.on_subscribe = on_subscribe
        mids = {self._client.subscribe(t, qos=1)[1] for t in topics}
        with self._cond:
            if not self._cond.wait_for(lambda: mids <= acked, timeout=5):
                raise AssertionError(f"no SUBACK for {topics}")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def mark(self) -> int:
        """The number of messages so far: pass it as ``after`` to wait for newer ones only."""
        with self._cond:
            return len(self.messages)

    def wait_for(self, topic: str, payload: bytes | None = None, *, after: int = 0,
                 where: Callable[[Any], bool] | None = None, timeout: float = 5.0) -> Any:
        """The first message (from index ``after``) on ``topic`` (a filter) that matches."""
        import paho.mqtt.client as mqtt

        def find() -> Any:
            for m in self.messages[after:]:
                if not mqtt.topic_matches_sub(topic, m.topic):
                    continue
                if payload is not None and m.payload != payload:
                    continue
                if where is not None and not where(m):
                    continue
                return m
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := find()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, bytes(m.payload[:60])) for m in self.messages[after:]]
                    raise AssertionError(f"no message on {topic} (payload {payload!r}) within {timeout} s; "
                                         f"got {seen}")
                self._cond.wait(left)
            return found

    def payloads(self, topic: str) -> list[bytes]:
        import paho.mqtt.client as mqtt

        with self._cond:
            return [bytes(m.payload) for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Sub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- a link in a child process ------------------------------------------------------


class LinkChild:
    """An MqttLink in its own process; each inbox item comes back as one JSON line.

    Items look like ``{"item": "LinkState", "connected": true, "reason": "…"}`` or
    ``{"item": "Inbound", "kind": "cmd", "topic": "…", "text": "…", "retained": false}``.
    """

    def __init__(self, broker: Broker, panel_id: str, groups: list[str] | None = None,
                 **settings: Any) -> None:
        spec = {"panel_id": panel_id, "groups": groups or [],
                "settings": {"host": broker.host, "port": broker.port,
                             "reconnect_min": 0.2, "reconnect_max": 2.0, **settings}}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), "link-child", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=ROOT)
        self.items: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.items.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, where: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                 what: str = "an inbox item", after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.items[after:]:
                    if where(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None \
                        and self.proc.stderr else ""
                    raise AssertionError(f"child never reported {what} within {timeout} s; "
                                         f"got {self.items[after:]} {err}")
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._cond:
            return len(self.items)

    def wait_connected(self, timeout: float = 5.0, after: int = 0) -> dict[str, Any]:
        return self.wait_for(lambda i: i["item"] == "LinkState" and i["connected"], timeout,
                             "a connection", after)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """Ask the child for a clean ``MqttLink.stop()`` and return its exit status."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stderr):
            if pipe:
                pipe.close()


def _child_main(spec_json: str) -> int:
    """The child side of :class:`LinkChild`."""
    from player.net.link import LinkSettings, MqttLink
    from player.net.protocol import Inbound, LinkError, LinkState, Rejected

    spec = json.loads(spec_json)
    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(LinkSettings(**spec["settings"]), spec["panel_id"], spec["groups"], inbox)
    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    link.start()
    while not stop.is_set():
        try:
            item = inbox.get(timeout=0.05)
        except queue.Empty:
            continue
        out: dict[str, Any] = {"item": type(item).__name__}
        if isinstance(item, LinkState):
            out.update(connected=item.connected, reason=item.reason, reconnects=link.reconnects)
        elif isinstance(item, Inbound):
            out.update(kind=item.route.kind, topic=item.route.topic, retained=item.retained,
                       text=item.payload.decode("utf-8", "replace"))
        elif isinstance(item, (Rejected, LinkError)):
            out.update(reason=item.reason)
        print(json.dumps(out), flush=True)
    link.stop()
    return 0


# -- fixtures -------------------------------------------------------------------------


def _running(b: Broker) -> Iterator[Broker]:
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _running(Broker(tmp_path / "broker"))


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _running(Broker(tmp_path / "broker", tls=True))


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _running(Broker(tmp_path / "broker", password=f"pw-{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def link_child(broker: Broker) -> Iterator[Callable[..., LinkChild]]:
    children: list[LinkChild] = []

    def make(panel_id: str, groups: list[str] | None = None, **settings: Any) -> LinkChild:
        child = LinkChild(broker, panel_id, groups, **settings)
        children.append(child)
        return child

    try:
        yield make
    finally:
        for child in children:
            child.kill()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "link-child":
    sys.exit(_child_main(sys.argv[2]))

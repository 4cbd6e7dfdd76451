"""A real RabbitMQ (MQTT plugin) for the tests, with the interface of fixtures_broker.Broker.

Debian's ``rabbitmq-server`` (3.10 on Debian 12, ``scripts/bootstrap.sh --tests`` installs it)
runs one node for the whole test session, from a temporary folder of its own: its own node
name, Erlang cookie (``HOME``), database and logs, and free ports for MQTT (127.0.0.1 only),
Erlang distribution and epmd (the epmd it starts is ended with it). AMQP is not listened on.
The node runs as whoever runs the tests (root included: RabbitMQ does not refuse it).

Each test gets a fresh virtual host, so retained messages, sessions and queues of one test
never reach another: MQTT clients log in as ``"<vhost>:guest"`` / ``guest`` (the plugin reads
the vhost from the user name). Virtual hosts are made in batches by one ``rabbitmqctl eval``
(a CLI call costs about 0.8 s, a vhost about 40 ms inside the node), so a test pays well
under a tenth of a second for its own.

Fixtures (loaded by conftest.py as a pytest plugin):

- ``rabbit_node``: the session's node (:class:`RabbitNode`).
- ``rabbit``: a :class:`RabbitBroker` on a fresh vhost; same attributes and helpers as
  ``Broker`` (``host``, ``port``, ``username``, ``password``, ``password_file``, ``protocol``,
  ``start``/``stop``/``restart``, ``sub()``, ``publish()``, ``client_kwargs()``, ``log_text()``),
  MQTT 3.1.1 only (RabbitMQ before 3.13 closes an MQTT 5 CONNECT).
- ``any_broker``: parametrized ``["mosquitto", "rabbitmq"]``: the ``broker`` fixture's mosquitto,
  then a ``rabbit``.

If the node cannot start, the test fails with the node's log (it never skips).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_broker import Broker, Sub, connect_client, free_port

RABBIT_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT = 90.0  # about 8 s on a quiet 2-core machine; the suite may load it
VHOST_BATCH = 16
GUEST = "guest"


def _epmd() -> str | None:
    return shutil.which("epmd") or next((str(p) for p in Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None)


class RabbitNode:
    """One RabbitMQ node with the MQTT plugin, started from a temporary folder."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            pytest.fail(f"RabbitMQ is not installed (no {RABBIT_BIN}/rabbitmq-server): apt-get install "
                        "--no-install-recommends rabbitmq-server, or scripts/bootstrap.sh --tests")
        self.root = Path(tempfile.mkdtemp(prefix="panel-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.name = f"panel{os.getpid()}x{uuid.uuid4().hex[:6]}@localhost"
        self.log_dir = self.root / "log"
        (self.root / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}\n"
            "mqtt.allow_anonymous = false\n"
            "loopback_users = none\n"
            "log.file.level = info\n"
            "log.console = false\n")
        (self.root / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.env = dict(
            os.environ,
            HOME=str(self.root),  # its .erlang.cookie, shared with rabbitmqctl below
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),  # none: not /etc's
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.root / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        for var in ("NOTIFY_SOCKET", "RABBITMQ_NODE_PORT", "RABBITMQ_PID_FILE"):
            self.env.pop(var, None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = self.root / "server.out"
        self._vhosts: list[str] = []
        self._made = 0
        self._lock = threading.Lock()
        self.start_seconds = 0.0
        self.vhost_seconds: list[float] = []  # the time each test waited for its vhost

    # -- the node ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the node and wait until its MQTT listener accepts connections."""
        if self.running:
            return
        began = time.monotonic()
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env, cwd=self.root,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = began + START_TIMEOUT
        while not self._accepts():
            if self.proc.poll() is not None:
                pytest.fail(f"RabbitMQ exited ({self.proc.returncode}) while starting:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"RabbitMQ did not listen on {self.host}:{self.port} within {START_TIMEOUT:g} s:\n"
                            f"{self.log_text()}")
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - began

    def _accepts(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS`` against this node; fails the test with the node's log if it fails."""
        done = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args], env=self.env,
                              cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            pytest.fail(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                        f"{self.log_text()}")
        return done.stdout

    def stop(self) -> None:
        """Stop the node (rabbitmqctl stop, then signals if needed) and end the epmd it started."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.name, "stop"], env=self.env,
                               cwd=self.root, capture_output=True, timeout=60, check=False)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # a node that does not stop is killed, never left behind
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self._end_epmd()

    def _end_epmd(self) -> None:
        epmd = _epmd()
        if epmd is None:
            return
        # With no node registered any more, "epmd -kill" ends the daemon on our port (and only it).
        for _ in range(50):
            done = subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self.env,
                                  capture_output=True, text=True, timeout=10, check=False)
            if "Killed" in done.stdout or "no epmd" in (done.stdout + done.stderr).lower() \
                    or "cannot connect" in (done.stdout + done.stderr).lower():
                return
            time.sleep(0.1)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")) + [self.output]:
            if path.exists():
                text = path.read_text(errors="replace")
                parts.append(f"--- {path.name} ---\n{text[-6000:]}")
        return "\n".join(parts)

    # -- virtual hosts --------------------------------------------------------------
    def new_vhost(self) -> str:
        """A virtual host nobody used yet, on which ``guest`` may do everything."""
        began = time.monotonic()
        with self._lock:
            if not self._vhosts:
                names = [f"t{self._made + i + 1}" for i in range(VHOST_BATCH)]
                self._made += VHOST_BATCH
                self.ctl("eval", _make_vhosts(names))
                self._vhosts.extend(names)
            name = self._vhosts.pop(0)
        self.vhost_seconds.append(time.monotonic() - began)
        return name


def _make_vhosts(names: list[str]) -> str:
    """Erlang for rabbitmqctl eval: create each vhost and give guest full permissions on it."""
    binaries = ", ".join(f'<<"{n}">>' for n in names)
    return (f"lists:foreach(fun(V) -> ok = rabbit_vhost:add(V, <<\"tests\">>), "
            f"ok = rabbit_auth_backend_internal:set_permissions(<<\"{GUEST}\">>, V, <<\".*\">>, <<\".*\">>, "
            f"<<\".*\">>, <<\"tests\">>) end, [{binaries}]), ok.")


class RabbitBroker:
    """One test's view of the node: its own vhost, MQTT 3.1.1, Broker's helpers."""

    host = "127.0.0.1"
    protocol = "3.1.1"
    kind = "rabbitmq"

    def __init__(self, node: RabbitNode, folder: Path) -> None:
        self.node = node
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = node.port
        self.vhost = node.new_vhost()
        self.username: str | None = f"{self.vhost}:{GUEST}"
        self.password: str | None = GUEST
        self.password_file: Path | None = folder / "rabbit.password"
        self.password_file.write_text(GUEST + "\n")
        self.tls_port: int | None = None
        self.certs = None

    @property
    def running(self) -> bool:
        return self.node.running

    def start(self) -> None:
        """Start the node again after :meth:`stop` (about 8 s); vhosts and retained messages survive."""
        self.node.start()

    def stop(self) -> None:
        """Stop the whole node (every connection is cut)."""
        self.node.stop()

    def kill(self) -> None:
        if self.node.proc is not None and self.node.proc.poll() is None:
            os.killpg(self.node.proc.pid, signal.SIGKILL)
            self.node.proc.wait()
        self.node.proc = None
        self.node._end_epmd()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.node.log_text()

    # -- clients -----------------------------------------------------------------
    def client_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "username": self.username, "password": self.password}

    def sub(self, *topics: str, protocol: str = "3.1.1") -> Sub:
        """A 3.1.1 subscriber (whatever ``protocol`` says: this RabbitMQ refuses MQTT 5)."""
        return Sub(self, topics, protocol="3.1.1")  # type: ignore[arg-type]

    def publish(self, topic: str, payload: bytes | str | None, *, qos: int = 1, retain: bool = False,
                timeout: float = 5.0) -> None:
        """Publish with a short-lived 3.1.1 client and wait until the broker has it (QoS 1 ack)."""
        client = connect_client(self, f"pub-{uuid.uuid4().hex[:12]}", "3.1.1")  # type: ignore[arg-type]
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish on {topic} not acknowledged within {timeout} s"
        finally:
            client.disconnect()
            client.loop_stop()


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def rabbit_node() -> Iterator[RabbitNode]:
    """The session's RabbitMQ node (started on first use, about 8 s)."""
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


@pytest.fixture
def rabbit(rabbit_node: RabbitNode, tmp_path: Path) -> Iterator[RabbitBroker]:
    """RabbitMQ on a fresh vhost of the session's node; the node is started again if a test stopped it."""
    rabbit_node.start()
    yield RabbitBroker(rabbit_node, tmp_path / "rabbit")
    rabbit_node.start()


@pytest.fixture(params=["mosquitto", "rabbitmq"])
def any_broker(request: pytest.FixtureRequest) -> Broker | RabbitBroker:
    """The test runs twice: on mosquitto (MQTT 5) and on RabbitMQ (MQTT 3.1.1)."""
    if request.param == "mosquitto":
        b: Broker | RabbitBroker = request.getfixturevalue("broker")
    else:
        b = request.getfixturevalue("rabbit")
    return b

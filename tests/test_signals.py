"""SIGTERM and SIGINT always stop the player: its signal handlers take no lock.

The player could ignore SIGTERM: its handler put a ``Stop`` on a ``queue.Queue``
while the main loop, in the same thread, might be inside that queue's ``get()``
holding its lock; the handler then waited for that lock forever. Now the handler
only records the signal on the :class:`~player.inbox.Inbox` and writes one byte
to its pipe (:meth:`~player.inbox.Inbox.post_signal`).

Three layers:

- the :class:`Inbox` itself: order, time-outs, wake-ups from threads and signals,
  no early return and no CPU spent while it waits;
- the reproduction: a child process whose main loop has the shape of
  ``Player.step`` (wait with a time-out, then drain) while a one-shot timer,
  re-armed by the loop, raises the stop signal at random moments (about one a
  millisecond) and a thread posts bursts of messages. With the old mechanism
  (``queue.Queue`` and a handler that puts on it) the child hangs: 20 times out of
  20; with the ``Inbox`` and the handler ``cli.py`` installs it finishes;
- the stress test on the real thing: ``panel-player run`` processes on a real
  mosquitto, busy (the bundled content's ticker scrolling at 30 fps, an alert
  set and cleared every 50 ms, a heartbeat a second), each sent SIGTERM or SIGINT
  at a random moment of its first 1.5 s online; every one must exit with status 0
  within 2 s and publish ``online=false``.

Why the stress test's count is a parameter: one run is a real process start (the
interpreter, pygame, paho, the first frame, the MQTT connection), about a second
of CPU, so 500 runs cost minutes of the 2 shared cores CI has. Starting the
players differently (forking a harness that has imported everything) would be
cheaper but would not be the process users run, so CI runs a few dozen real runs
(``PANEL_SIGNAL_RUNS``, default 24, two players at a time) and the 500-run check
is the same test with a larger count::

    PANEL_SIGNAL_RUNS=500 PANEL_SIGNAL_PARALLEL=3 SDL_VIDEODRIVER=dummy GPIOZERO_PIN_FACTORY=mock \\
        .venv/bin/python -m pytest tests/test_signals.py -k stress -s -o timeout=0

``-s`` shows the figures (runs, clean exits, slowest exit).
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_broker import Broker, connect_client
from fixtures_player import PREFIX, ROOT, PanelProcess

from player.inbox import Inbox

# ======================================================================================
# The Inbox


def test_items_come_out_in_order_and_get_waits_for_its_timeout() -> None:
    inbox = Inbox()
    for i in range(5):
        inbox.put(i)
    inbox.put_nowait(5)
    assert inbox.qsize() == 6 and not inbox.empty()
    assert [inbox.get(timeout=1) for _ in range(3)] + [inbox.get_nowait() for _ in range(3)] == list(range(6))
    assert inbox.empty()
    with pytest.raises(queue.Empty):
        inbox.get_nowait()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.2)
    assert 0.2 <= time.monotonic() - start < 1.0


def test_a_wake_up_left_by_an_item_already_taken_does_not_end_the_wait_early() -> None:
    # put() writes a byte for each item; get_nowait() does not read it. The next
    # get() sees that byte at once, but must keep waiting until its deadline.
    inbox = Inbox()
    inbox.put("a")
    assert inbox.get_nowait() == "a"
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.2)
    assert time.monotonic() - start >= 0.2


def test_waiting_costs_no_cpu() -> None:
    inbox = Inbox()
    cpu, wall = time.process_time(), time.monotonic()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.5)
    assert time.monotonic() - wall >= 0.5
    assert time.process_time() - cpu < 0.05  # a poll loop would burn the whole half second


def test_an_item_from_another_thread_ends_the_wait_at_once() -> None:
    inbox = Inbox()
    timer = threading.Timer(0.1, inbox.put, args=("hello",))
    start = time.monotonic()
    timer.start()
    assert inbox.get(timeout=10) == "hello"
    assert time.monotonic() - start < 2.0
    timer.join()


def test_many_producers_lose_nothing_and_never_leave_the_loop_asleep() -> None:
    inbox = Inbox()
    producers, each = 4, 5000

    def produce(n: int) -> None:
        for i in range(each):
            inbox.put((n, i))
            if i % 500 == 0:
                time.sleep(0.001)  # let the consumer catch up and go back to sleep now and then

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    for t in threads:
        t.start()
    got: list[tuple[int, int]] = []
    start = time.monotonic()
    while len(got) < producers * each:
        # A lost wake-up would leave this get() asleep for its whole (long) time-out.
        got.append(inbox.get(timeout=30))  # type: ignore[arg-type]
        while True:
            try:
                got.append(inbox.get_nowait())  # type: ignore[arg-type]
            except queue.Empty:
                break
    for t in threads:
        t.join()
    assert time.monotonic() - start < 20
    for n in range(producers):
        assert [i for m, i in got if m == n] == list(range(each))  # each producer's order kept


def test_a_signal_ends_the_wait_and_is_taken_once() -> None:
    inbox = Inbox()
    old = signal.signal(signal.SIGUSR1, lambda signum, _frame: inbox.post_signal(signum))
    try:
        timer = threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGUSR1))
        start = time.monotonic()
        timer.start()
        with pytest.raises(queue.Empty):
            inbox.get(timeout=10)  # no item: Empty, at once, so the loop can act on the signal
        assert time.monotonic() - start < 2.0
        timer.join()
        assert inbox.take_signal() == signal.SIGUSR1
        assert inbox.take_signal() is None
        inbox.put("after")
        assert inbox.get(timeout=1) == "after"
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_a_pending_signal_is_seen_before_waiting_even_with_no_limit() -> None:
    inbox = Inbox()
    inbox.post_signal(signal.SIGTERM)  # e.g. arrived while the first frame was drawn
    with pytest.raises(queue.Empty):
        inbox.get(timeout=None)
    assert inbox.take_signal() == signal.SIGTERM


def test_queue_bookkeeping_it_does_not_do_is_refused() -> None:
    inbox = Inbox()
    assert not inbox.full()
    with pytest.raises(NotImplementedError):
        inbox.task_done()
    with pytest.raises(NotImplementedError):
        inbox.join()


# ======================================================================================
# The reproduction: a signal storm on a busy loop

STORM = r"""import os, queue, random, signal, sys, threading, time
from player.app import Stop
mechanism, seconds = sys.argv[1], float(sys.argv[2])
if mechanism == "queue":  # before: cli.py's handler called Player.stop(), a put on a queue.Queue
    inbox = queue.Queue()
    signal.signal(signal.SIGTERM, lambda signum, _frame: inbox.put(Stop(0, "SIGTERM")))
    take_signal = lambda: None
else:  # now: the handler cli.py installs, on the Player's Inbox
    from player.cli import install_stop_signals
    from player.inbox import Inbox
    inbox = Inbox()
    install_stop_signals(inbox)
    take_signal = inbox.take_signal
# The kernel's timer sends the signals (SIGALRM, to the SIGTERM handler): about one a millisecond.
signal.signal(signal.SIGALRM, signal.getsignal(signal.SIGTERM))
end = time.monotonic() + seconds

def post_messages():  # the MQTT thread
    while time.monotonic() < end:
        for _ in range(random.randrange(100)):
            inbox.put("message")
        time.sleep(random.uniform(0, 0.002))

producer = threading.Thread(target=post_messages)
producer.start()
stops = messages = 0
while time.monotonic() < end:  # the shape of Player.step: wait until the next frame, then drain
    if not signal.getitimer(signal.ITIMER_REAL)[0]:  # the next signal, at a random moment
        signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.001))
    try:
        msg = inbox.get(timeout=0.002)
    except queue.Empty:
        msg = None
    while take_signal() is not None:
        stops += 1
    while msg is not None:
        if isinstance(msg, Stop):
            stops += 1
        else:
            messages += 1
        try:
            msg = inbox.get_nowait()
        except queue.Empty:
            msg = None
signal.setitimer(signal.ITIMER_REAL, 0)
producer.join()
print(stops, messages, flush=True)
"""


def _storm(mechanism: str, seconds: float, limit: float) -> subprocess.CompletedProcess[str] | None:
    """Run the storm child; ``None`` when it was still running after ``limit`` seconds (killed)."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", STORM, mechanism, str(seconds)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_the_old_mechanism_hangs_in_the_storm() -> None:
    """The control: the storm does reproduce the deadlock of a handler putting on a queue.Queue.

    Were this to pass the storm on the Inbox would prove nothing.
    """
    run = _storm("queue", seconds=1.0, limit=4.0)
    assert run is None, f"the queue.Queue loop survived the storm: {run}"


def test_the_inbox_and_the_handler_cli_installs_survive_the_storm() -> None:
    run = _storm("inbox", seconds=2.0, limit=20.0)
    assert run is not None, "the Inbox loop hung in the signal storm"
    assert run.returncode == 0, run.stderr
    stops, messages = (int(v) for v in run.stdout.split())
    # Signals coalesce, so fewer are taken than sent; but hundreds, and every message handled.
    assert stops >= 100 and messages >= 500, run.stdout


# ======================================================================================
# The stress test: real players, real broker, SIGTERM / SIGINT at random moments

RUNS = int(os.environ.get("PANEL_SIGNAL_RUNS", "24"))
PARALLEL = int(os.environ.get("PANEL_SIGNAL_PARALLEL", "2"))
EXIT_WITHIN = 2.0  # seconds from the signal to the process's exit
BUSY = {"heartbeat": {"interval": 1}, "display": {"fps": 30}}  # bundled content: a ticker at 30 fps


@dataclass
class Run:
    panel: str
    signal: str
    after_online: float  # seconds between online=true and the signal
    exit_s: float | None  # signal to exit; None: still running 10 s later (killed)
    status: int | None
    online_false: bool


def _alert_storm(broker: Broker, stop: threading.Event) -> None:
    """An alert set and cleared every 50 ms, on every panel (retained: a new start sees it too)."""
    client = connect_client(broker, "signals-alerts")
    try:
        i = 0
        while not stop.wait(0.05):
            topic = f"{PREFIX}/all/alerts/storm-{i % 3}"
            if i % 2 == 0:
                payload = json.dumps({"level": "critical", "title": f"ALERTE {i}", "body": "Éloignez-vous des berges."})
                client.publish(topic, payload, qos=1, retain=True)
            else:
                client.publish(topic, b"", qos=1, retain=True)
            i += 1
    finally:
        client.disconnect()
        client.loop_stop()


def _signal_runs(p: PanelProcess, count: int, rng: random.Random, out: list[Run]) -> None:
    for _ in range(count):
        try:
            p.start()  # returns once online=true is published
        except AssertionError as exc:
            raise AssertionError(f"{p.id} did not start: {exc}\n--- its log ---\n{p.log_text()[-3000:]}") from None
        online_at = time.monotonic()
        time.sleep(rng.uniform(0.0, 1.5))
        sig = rng.choice((signal.SIGTERM, signal.SIGINT))
        mark = p.sub.mark()
        assert p.proc is not None
        sent = time.monotonic()
        p.signal(sig)
        try:
            p.proc.wait(10.0)
            exit_s: float | None = time.monotonic() - sent
        except subprocess.TimeoutExpired:
            exit_s = None
            p.kill()
        try:
            p.sub.wait_for(f"{p.topic}/online", b"false", after=mark, timeout=2.0)
            online_false = True
        except AssertionError:
            online_false = False
        out.append(Run(p.id, sig.name, sent - online_at, exit_s, p.proc.returncode, online_false))
        if exit_s is None:
            return  # a hung player: no point going on with this one


def test_stress_sigterm_and_sigint_at_random_moments_of_a_busy_player(broker: Broker, tmp_path: Path) -> None:
    seed = int(os.environ.get("PANEL_SIGNAL_SEED", str(random.randrange(2**32))))
    print(f"\nseed {seed}: {RUNS} runs, {PARALLEL} players at a time")
    panels = []
    for n in range(PARALLEL):
        folder = tmp_path / f"sig{n}"
        folder.mkdir()
        panels.append(PanelProcess(broker, folder, f"sig{n}", size=(320, 180), extra=BUSY, start=False))
    stop = threading.Event()
    alerts = threading.Thread(target=_alert_storm, args=(broker, stop), daemon=True)
    alerts.start()
    runs: list[Run] = []
    errors: list[BaseException] = []

    def worker(p: PanelProcess, count: int, rng: random.Random) -> None:
        try:
            _signal_runs(p, count, rng, runs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(p, RUNS // PARALLEL + (n < RUNS % PARALLEL),
                                                     random.Random(seed + n)))
               for n, p in enumerate(panels)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        alerts.join(5)
        for p in panels:
            p.close()
    took = time.monotonic() - started

    exits = [r.exit_s for r in runs if r.exit_s is not None]
    bad = [r for r in runs if r.exit_s is None or r.exit_s > EXIT_WITHIN or r.status != 0 or not r.online_false]
    by_signal = {name: sum(r.signal == name for r in runs) for name in ("SIGTERM", "SIGINT")}
    if exits:
        print(f"{len(runs)} signals ({by_signal}), {len(runs) - len(bad)} clean exits in {took:.0f} s; "
              f"exit after the signal: median {statistics.median(exits):.3f} s, slowest {max(exits):.3f} s")
    logs = "\n".join(f"--- {p.id} ---\n{p.log_text()[-2000:]}" for p in panels if any(r.panel == p.id for r in bad))
    assert not bad, f"{len(bad)} of {len(runs)} runs did not stop cleanly: {bad[:10]}\n{logs}"
    assert not errors, errors
    assert len(runs) == RUNS

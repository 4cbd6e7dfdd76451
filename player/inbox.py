"""The main loop's inbox: other threads and signal handlers post to it without a lock.

``queue.Queue`` guards its items with a lock that ``get()`` and ``get_nowait()`` hold
for a few bytecodes. A Python signal handler runs in the main thread between two
bytecodes, possibly between those: had it put on the same queue, it would wait for
a lock its own thread holds, forever (a player that ignored SIGTERM that way).

:class:`Inbox` keeps its items in a :class:`collections.deque`, whose ``append`` and
``popleft`` are atomic under the GIL, and wakes the waiting loop through a
non-blocking pipe: a producer appends, then writes one byte; the loop waits on the
pipe with ``poll()`` for at most the time to its next deadline, so a still picture
still costs no CPU. A signal handler calls :meth:`Inbox.post_signal`, which only
records the signal number and writes one byte; the loop takes it with
:meth:`Inbox.take_signal` after each wait.

Example::

    inbox = Inbox()
    signal.signal(signal.SIGTERM, lambda signum, _frame: inbox.post_signal(signum))
    threading.Thread(target=lambda: inbox.put("hello")).start()
    try:
        item = inbox.get(timeout=5.0)   # "hello", or queue.Empty once a signal is pending
    except queue.Empty:
        item = None
    signum = inbox.take_signal()        # SIGTERM's number if it came, else None
"""

from __future__ import annotations

import math
import os
import queue
import select
import time
import weakref
from collections import deque

# Signals recorded and not yet taken; beyond this the oldest are forgotten (the loop
# only needs to know one came).
MAX_PENDING_SIGNALS = 64


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Inbox(queue.Queue[object]):
    """An unbounded FIFO for one consumer (the main loop) and any number of producers.

    ``put``/``put_nowait`` are safe from any thread and never block; ``get`` blocks
    until an item arrives, the timeout passes or a signal is pending (then it raises
    :class:`queue.Empty`); ``post_signal`` is the one method a signal handler may call.

    It derives from ``queue.Queue`` only so that code typed for one (the MQTT link, the
    sensor sampler) accepts it: none of the base class's lock-guarded code runs, and
    ``task_done``/``join`` are not supported. The pipe is closed when the inbox is
    garbage: a thread still holding it can always post, and never into a reused fd.
    """

    def __init__(self) -> None:
        # queue.Queue.__init__ is deliberately not called: its locks must never be used.
        self._items: deque[object] = deque()
        self._signals: deque[int] = deque(maxlen=MAX_PENDING_SIGNALS)
        self._rfd, self._wfd = os.pipe()  # both close-on-exec
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._poll = select.poll()
        self._poll.register(self._rfd, select.POLLIN)
        self._finalizer = weakref.finalize(self, _close_fds, self._rfd, self._wfd)

    # -- producers -------------------------------------------------------------
    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` and wake the loop; never blocks (the inbox is unbounded)."""
        self._items.append(item)
        self._wake()

    def put_nowait(self, item: object) -> None:
        self.put(item)

    def post_signal(self, signum: int) -> None:
        """Record ``signum`` and wake the loop. Safe in a signal handler: no lock, one
        atomic append of an int and one non-blocking write."""
        self._signals.append(signum)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wfd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop has a wake-up pending already

    # -- the consumer ------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> object:
        """The oldest item; waits up to ``timeout`` seconds (``None``: no limit).

        Raises :class:`queue.Empty` when the time is up, or at once when a signal
        is pending and no item is, so the loop can act on it.
        """
        if not block:
            return self.get_nowait()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            try:
                return self._items.popleft()
            except IndexError:
                pass
            if self._signals:
                raise queue.Empty
            if deadline is None:
                wait_ms: int | None = None
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise queue.Empty
                wait_ms = math.ceil(left * 1000)  # never wake before the deadline, then spin
            if self._poll.poll(wait_ms):
                self._drain()

    def get_nowait(self) -> object:
        try:
            return self._items.popleft()
        except IndexError:
            raise queue.Empty from None

    def take_signal(self) -> int | None:
        """The oldest signal recorded by :meth:`post_signal` and not yet taken, else ``None``."""
        try:
            return self._signals.popleft()
        except IndexError:
            return None

    def _drain(self) -> None:
        # Emptied before the deque is looked at again: a byte written after this read
        # belongs to an item appended after it, and wakes the next poll.
        try:
            while len(os.read(self._rfd, 4096)) == 4096:
                pass
        except BlockingIOError:
            pass

    # -- the rest of queue.Queue's interface -------------------------------------------
    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def task_done(self) -> None:
        raise NotImplementedError("Inbox does not track finished tasks")

    def join(self) -> None:
        raise NotImplementedError("Inbox does not track finished tasks")

"""Notices: a panel offline or stale too long, too hot, or with its cabinet door open.

:class:`NoticeEngine` looks at the :class:`~player.console.fleet.Fleet` rows each
time :meth:`NoticeEngine.evaluate` is called (every second by the console's
server) and raises a notice when a rule starts to hold, clears it when the rule
no longer holds:

- ``offline``: the panel's state is ``offline`` for more than ``offline_minutes``
  (counted from ``state_since``, the moment the console saw the change);
- ``stale``: the state is ``stale`` for more than ``stale_minutes``;
- ``hot``: ``cpu_temp_c`` is above ``temp_c``; it clears once the temperature is
  back at or below ``temp_c - HOT_HYSTERESIS_C`` (so that a panel hovering
  around the limit does not send a notice every heartbeat);
- ``door``: ``door_open`` is true (only when ``door`` is on in the settings).

Each notice is sent once when it is raised and once when it is cleared
("resolved") to every configured sender (webhook, e-mail), and shown on the
page through ``fleet.emit({"kind": "notice", "notice": ...})``. Sending happens
on one worker thread per sender, behind a bounded queue: a receiver that is
slow or down never blocks :meth:`evaluate`; failures are logged and retried
with a growing delay, then counted and dropped.

Example::

    engine = NoticeEngine(fleet, settings.notices, senders_from(settings.notices))
    engine.evaluate()      # every second: the notices raised or cleared now
    engine.active()        # what the page lists
    engine.close()         # at shutdown: lets the queued notices go out
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

from .fleet import Fleet
from .settings import NoticeSettings

log = logging.getLogger(__name__)

KINDS = ("offline", "stale", "hot", "door")
HOT_HYSTERESIS_C = 2.0   # a hot notice clears at temp_c - this, not just below temp_c
QUEUE_SIZE = 500         # notices waiting for one sender; beyond, the newest are dropped (and counted)
RETRIES = 3              # further attempts after a failed send
BACKOFF_S = 2.0          # first delay between attempts, doubled each time
USER_AGENT = "panel-player-console"

Notice = dict[str, Any]


# --------------------------------------------------------------------------- texts

_STATES = {
    "fr": {"online": "en ligne", "stale": "muet", "offline": "hors ligne", "asleep": "en veille",
           "unknown": "inconnu", "gone": "retiré de la flotte"},
    "en": {"online": "online", "stale": "stale", "offline": "offline", "asleep": "asleep",
           "unknown": "unknown", "gone": "gone from the fleet"},
}

_RAISED = {
    "fr": {
        "offline": "Le panneau {panel} est hors ligne depuis {since} (plus de {minutes} min).",
        "stale": "Le panneau {panel} ne donne plus signe de vie à temps depuis {since} "
                 "(état muet depuis plus de {minutes} min).",
        "hot": "Le panneau {panel} est à {temp} °C, au-dessus de la limite de {limit} °C.",
        "door": "La porte du caisson du panneau {panel} est ouverte (depuis {since}).",
    },
    "en": {
        "offline": "Panel {panel} has been offline since {since} (more than {minutes} min).",
        "stale": "Panel {panel} has not sent a heartbeat in time since {since} "
                 "(stale for more than {minutes} min).",
        "hot": "Panel {panel} is at {temp} °C, above the {limit} °C limit.",
        "door": "The cabinet door of panel {panel} is open (since {since}).",
    },
}

_CLEARED = {
    "fr": {
        "offline": "Résolu : le panneau {panel} n'est plus hors ligne (état : {state}), après {duration}.",
        "stale": "Résolu : le panneau {panel} n'est plus muet (état : {state}), après {duration}.",
        "hot": "Résolu : le panneau {panel} est redescendu à {temp} °C, après {duration} au-dessus de {limit} °C.",
        "door": "Résolu : la porte du caisson du panneau {panel} est fermée, après {duration}.",
    },
    "en": {
        "offline": "Resolved: panel {panel} is no longer offline (now {state}), after {duration}.",
        "stale": "Resolved: panel {panel} is no longer stale (now {state}), after {duration}.",
        "hot": "Resolved: panel {panel} is back at {temp} °C, after {duration} above {limit} °C.",
        "door": "Resolved: the cabinet door of panel {panel} is closed, after {duration}.",
    },
}

_CLEARED_UNREAD = {   # hot / door cleared because the value is no longer known (or the panel is gone)
    "fr": "Résolu : le panneau {panel} ne signale plus : {what} (état : {state}), après {duration}.",
    "en": "Resolved: panel {panel} no longer reports: {what} (now {state}), after {duration}.",
}

_SUBJECT = {
    "fr": {"raised": "[panneaux] {panel} : {what}", "resolved": "[panneaux] résolu : {panel} : {what}",
           "offline": "hors ligne", "stale": "muet", "hot": "surchauffe", "door": "porte ouverte"},
    "en": {"raised": "[panels] {panel}: {what}", "resolved": "[panels] resolved: {panel}: {what}",
           "offline": "offline", "stale": "stale", "hot": "over temperature", "door": "door open"},
}


def _number(value: float, language: str) -> str:
    text = f"{value:.1f}"
    return text.replace(".", ",") if language == "fr" else text


def _minutes(value: float, language: str) -> str:
    return str(int(value)) if float(value).is_integer() else _number(value, language)


def format_time(ts: float) -> str:
    """The console machine's local time, e.g. ``2026-12-03 14:05 CET``."""
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(ts))


def format_duration(seconds: float, language: str) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``, ``3 j 4 h`` (``3 d 4 h`` in English)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} {'j' if language == 'fr' else 'd'} {hours} h"


def subject(event: str, notice: Notice, language: str) -> str:
    """The e-mail subject of a raised or resolved notice."""
    words = _SUBJECT.get(language, _SUBJECT["en"])
    return words[event].format(panel=notice["panel"], what=words[notice["kind"]])


# --------------------------------------------------------------------------- senders


class Sender(Protocol):
    """Delivers one notice; raises on failure (the dispatcher retries and logs)."""

    name: str

    def send(self, event: str, notice: Notice) -> None: ...


def webhook_body(event: str, notice: Notice) -> dict[str, Any]:
    """The JSON a webhook receives (see docs/console-monitoring.md).

    ``text`` at the top level lets chat webhooks (Mattermost, Rocket.Chat, Slack)
    show the sentence as it is.
    """
    return {"text": notice["text"], "event": event, "notice": dict(notice)}


class WebhookSender:
    """POSTs :func:`webhook_body` as JSON to ``url``; any answer but 2xx is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, event: str, notice: Notice) -> None:
        data = json.dumps(webhook_body(event, notice), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
        # urlopen raises HTTPError for 4xx/5xx answers; 3xx are followed.
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            answer.read()


class MailSender:
    """Sends each notice as a plain-text e-mail through an SMTP server."""

    name = "mail"

    def __init__(self, host: str, port: int, starttls: bool, user: str | None, password_file: Path | None,
                 mail_from: str, mail_to: list[str], language: str = "fr", timeout: float = 20.0) -> None:
        self.host, self.port, self.starttls = host, port, starttls
        self.user, self.password_file = user, password_file
        self.mail_from, self.mail_to = mail_from, list(mail_to)
        self.language = language
        self.timeout = timeout

    def message(self, event: str, notice: Notice) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject(event, notice, self.language)
        msg["From"] = self.mail_from
        msg["To"] = ", ".join(self.mail_to)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self.mail_from.rpartition("@")[2] or None)
        fr = self.language == "fr"
        lines = [notice["text"], "",
                 f"{'Panneau' if fr else 'Panel'}: {notice['panel']}",
                 f"{'Règle' if fr else 'Rule'}: {notice['kind']}",
                 f"{'Depuis' if fr else 'Since'}: {format_time(notice['since'])}",
                 f"{'Signalé' if fr else 'Raised'}: {format_time(notice['raised_at'])}"]
        if notice.get("cleared_at") is not None:
            lines.append(f"{'Résolu' if fr else 'Resolved'}: {format_time(notice['cleared_at'])}")
        lines += ["", f"id: {notice['id']}", "-- ", "panel-player console"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, event: str, notice: Notice) -> None:
        msg = self.message(event, notice)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())   # the server's certificate is checked
            if self.user:
                password = ""
                if self.password_file is not None:
                    password = self.password_file.read_text(encoding="utf-8").strip()
                smtp.login(self.user, password)
            smtp.send_message(msg)


def senders_from(settings: NoticeSettings, webhook_timeout: float = 10.0) -> list[Sender]:
    """The senders the settings ask for: a webhook if ``webhook_url``, e-mail if ``smtp_host`` and ``mail_to``."""
    senders: list[Sender] = []
    if settings.webhook_url:
        senders.append(WebhookSender(settings.webhook_url, webhook_timeout))
    if settings.smtp_host:
        if not settings.mail_to:
            log.warning("console.notices.smtp_host is set but mail_to is empty: no notice will be e-mailed")
        else:
            mail_from = settings.mail_from or f"panel-player@{socket.gethostname()}"
            senders.append(MailSender(settings.smtp_host, settings.smtp_port, settings.smtp_starttls,
                                      settings.smtp_user, settings.smtp_password_file, mail_from,
                                      settings.mail_to, settings.language))
    return senders


class _Dispatcher:
    """One sender's queue and worker thread: sends, retries with backoff, counts."""

    def __init__(self, sender: Sender, retries: int, backoff: float) -> None:
        self.sender = sender
        self.retries = retries
        self.backoff = backoff
        self.counts = {"ok": 0, "failed": 0, "dropped": 0}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Notice] | None] = queue.Queue(QUEUE_SIZE)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notices-{sender.name}", daemon=True)
        self._thread.start()

    def put(self, event: str, notice: Notice) -> None:
        try:
            self._queue.put_nowait((event, dict(notice)))
        except queue.Full:
            log.warning("notice %s (%s) not sent by %s: %d notices already waiting",
                        notice["id"], event, self.sender.name, QUEUE_SIZE)
            self._count("dropped")

    def _count(self, result: str) -> None:
        with self._lock:
            self.counts[result] += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._stopping.is_set():      # closing: what is left is not sent
                    self._count("dropped")
                    continue
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, event: str, notice: Notice) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self.sender.send(event, notice)
            except Exception as exc:  # any failure of a receiver is logged, never raised
                last = attempt == self.retries
                log.warning("notice %s (%s) not sent by %s (attempt %d of %d): %s%s", notice["id"], event,
                            self.sender.name, attempt + 1, self.retries + 1, exc, "" if last else
                            f"; next attempt in {delay:g} s")
                if last or self._stopping.wait(delay):
                    self._count("failed")
                    return
                delay *= 2
            else:
                self._count("ok")
                return

    def close(self, timeout: float) -> None:
        """Lets what is queued go out for up to ``timeout`` s, then stops: no more retry waits, the rest dropped."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(1.0)


# --------------------------------------------------------------------------- engine


class NoticeEngine:
    """Raises and clears notices from the fleet's rows; see the module docstring."""

    def __init__(self, fleet: Fleet, settings: NoticeSettings, senders: list[Sender],
                 clock: Callable[[], float] = time.time, retries: int = RETRIES,
                 backoff: float = BACKOFF_S) -> None:
        self.fleet = fleet
        self.settings = settings
        self.clock = clock
        self.language = settings.language if settings.language in _RAISED else "en"
        self._active: dict[str, Notice] = {}
        self._lock = threading.Lock()
        self._dispatchers = [_Dispatcher(s, retries, backoff) for s in senders]

    # -- public

    def evaluate(self) -> list[Notice]:
        """Applies the rules to every panel now; returns the notices raised or cleared by this call."""
        now = self.clock()
        changes: list[tuple[str, Notice]] = []
        with self._lock:
            seen: set[str] = set()
            for row in self.fleet.rows():
                for kind in KINDS:
                    key = f"{row['panel']}:{kind}"
                    current = self._active.get(key)
                    holds, since = self._rule(kind, row, now, current is not None)
                    if holds:
                        seen.add(key)
                        if current is None:
                            notice = self._raise(kind, row, since, now)
                            self._active[key] = notice
                            changes.append(("raised", notice))
                    elif current is not None:
                        changes.append(("resolved", self._clear(current, row, now)))
                        del self._active[key]
            for key in [k for k in self._active if k not in seen]:   # panels gone from the fleet
                changes.append(("resolved", self._clear(self._active.pop(key), None, now)))
        for event, notice in changes:
            self.fleet.emit({"kind": "notice", "notice": dict(notice)})
            for dispatcher in self._dispatchers:
                dispatcher.put(event, notice)
        return [dict(n) for _, n in changes]

    def active(self) -> list[Notice]:
        """The notices in force, oldest first."""
        with self._lock:
            return [dict(n) for n in sorted(self._active.values(), key=lambda n: (n["raised_at"], n["id"]))]

    @property
    def sent(self) -> dict[str, dict[str, int]]:
        """Per sender (``webhook``, ``mail``): deliveries ``ok``, ``failed`` (after the retries) and
        ``dropped`` (queue full, or left when closing)."""
        out: dict[str, dict[str, int]] = {}
        for d in self._dispatchers:
            with d._lock:
                counts = out.setdefault(d.sender.name, {"ok": 0, "failed": 0, "dropped": 0})
                for result, n in d.counts.items():
                    counts[result] += n
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Stops the sender threads after they have sent what is queued (bounded by ``timeout`` each)."""
        for dispatcher in self._dispatchers:
            dispatcher.close(timeout)

    # -- rules

    def _rule(self, kind: str, row: dict[str, Any], now: float, active: bool) -> tuple[bool, float]:
        """Whether ``kind`` holds for ``row`` now, and since when."""
        s = self.settings
        state = row.get("state")
        since = row.get("state_since")
        if kind in ("offline", "stale"):
            limit = (s.offline_minutes if kind == "offline" else s.stale_minutes) * 60.0
            if state != kind or since is None:
                return False, now
            if active:                      # raised: holds as long as the state lasts
                return True, since
            return now - since > limit, since
        received = row.get("received")
        first = received if isinstance(received, (int, float)) else now
        if kind == "hot":
            temp = row.get("cpu_temp_c")
            if not isinstance(temp, (int, float)) or isinstance(temp, bool):
                return False, now
            limit_c = s.temp_c - HOT_HYSTERESIS_C if active else s.temp_c
            return temp > limit_c, first
        # door
        return bool(s.door) and row.get("door_open") is True, first

    def _raise(self, kind: str, row: dict[str, Any], since: float, now: float) -> Notice:
        minutes = self.settings.offline_minutes if kind == "offline" else self.settings.stale_minutes
        lang = self.language
        text = _RAISED[lang][kind].format(
            panel=row["panel"], since=format_time(since), minutes=_minutes(minutes, lang),
            temp=_number(float(row.get("cpu_temp_c") or 0.0), lang),
            limit=_number(self.settings.temp_c, lang))
        notice: Notice = {"id": f"{row['panel']}:{kind}", "panel": row["panel"], "kind": kind,
                          "since": since, "raised_at": now, "cleared_at": None, "text": text}
        log.info("notice raised: %s", text)
        return notice

    def _clear(self, notice: Notice, row: dict[str, Any] | None, now: float) -> Notice:
        lang = self.language
        state = row.get("state") if row is not None else "gone"
        temp = row.get("cpu_temp_c") if row is not None else None
        notice["cleared_at"] = now
        kind = notice["kind"]
        unread = row is None or (kind == "hot" and not isinstance(temp, (int, float))) or (
            kind == "door" and row.get("door_open") is not False)
        template = _CLEARED_UNREAD[lang] if unread else _CLEARED[lang][kind]
        notice["text"] = template.format(
            panel=notice["panel"], what=_SUBJECT[lang][kind], state=_STATES[lang].get(str(state), str(state)),
            duration=format_duration(now - notice["since"], lang),
            temp=_number(float(temp), lang) if isinstance(temp, (int, float)) else "?",
            limit=_number(self.settings.temp_c, lang))
        log.info("notice cleared: %s", notice["text"])
        return notice

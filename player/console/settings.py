"""The ``console:`` section of panelctl's YAML config.

Every key is optional::

    console:
      listen_host: 127.0.0.1           # put a TLS reverse proxy in front for other hosts
      listen_port: 8470
      users_file: ~/.config/panelctl/console-users
      secret_file: ~/.config/panelctl/console-secret   # created (0600, 32 random bytes) if missing
      db: ~/.local/share/panelctl/console.db           # a file path: SQLite; or postgresql://user@host/db
      retention_days: 30
      heartbeat_interval: 30           # the panels' heartbeat.interval
      stale_factor: 3.0                # stale once a heartbeat is older than factor x interval
      secure_cookies: false            # true behind HTTPS
      screenshot_dir: ~/.local/share/panelctl/screens
      metrics_token_file: null         # a bearer token for /metrics
      notices:
        offline_minutes: 10
        stale_minutes: 10
        temp_c: 75.0
        door: true
        webhook_url: null
        smtp_host: null
        smtp_port: 25
        smtp_starttls: false
        smtp_user: null
        smtp_password_file: null
        mail_from: null
        mail_to: []
        language: fr

Relative paths are taken from ``base`` (the config file's folder); ``~`` is expanded.

Example::

    settings = load_console_settings({"listen_port": 9000}, base=Path("/etc/panelctl"))
    settings.listen_port     # 9000
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

KEYS = ("listen_host", "listen_port", "users_file", "secret_file", "db", "retention_days",
        "heartbeat_interval", "stale_factor", "secure_cookies", "screenshot_dir", "notices",
        "metrics_token_file")
NOTICE_KEYS = ("offline_minutes", "stale_minutes", "temp_c", "door", "webhook_url", "smtp_host", "smtp_port",
               "smtp_starttls", "smtp_user", "smtp_password_file", "mail_from", "mail_to", "language")
LANGUAGES = ("fr", "en")
SECRET_BYTES = 32


@dataclass(frozen=True)
class NoticeSettings:
    """When and where the console sends notices (see docs/console-monitoring.md)."""

    offline_minutes: float = 10
    stale_minutes: float = 10
    temp_c: float = 75.0
    door: bool = True
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_file: Path | None = None
    mail_from: str | None = None
    mail_to: list[str] = field(default_factory=list)
    language: str = "fr"


@dataclass(frozen=True)
class ConsoleSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8470
    users_file: Path = Path("~/.config/panelctl/console-users").expanduser()
    secret_file: Path = Path("~/.config/panelctl/console-secret").expanduser()
    db: str = str(Path("~/.local/share/panelctl/console.db").expanduser())
    retention_days: int = 30
    heartbeat_interval: float = 30.0
    stale_factor: float = 3.0
    secure_cookies: bool = False
    screenshot_dir: Path = Path("~/.local/share/panelctl/screens").expanduser()
    notices: NoticeSettings = field(default_factory=NoticeSettings)
    metrics_token_file: Path | None = None

    @property
    def db_is_sqlite(self) -> bool:
        return not self.db.startswith(("postgresql://", "postgres://"))


class _Reader:
    """Reads typed values out of one mapping, collecting every problem with its key path."""

    def __init__(self, raw: dict[str, Any], path: str, base: Path | None, problems: list[str]) -> None:
        self.raw, self.path, self.base, self.problems = raw, path, base, problems

    def _bad(self, key: str, expected: str) -> None:
        self.problems.append(f"{self.path}.{key}: expected {expected}, got {self.raw[key]!r}")

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def text(self, key: str, default: str | None) -> str | None:
        if not self.has(key):
            return default
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            self._bad(key, "a non-empty string")
            return default
        return value.strip()

    def path_value(self, key: str, default: Path | None) -> Path | None:
        text = self.text(key, None)
        if text is None:
            return default
        return resolve(text, self.base)

    def number(self, key: str, default: float, low: float, high: float, integer: bool = False) -> float:
        if not self.has(key):
            return default
        value = self.raw[key]
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            self._bad(key, f"{kind} from {low:g} to {high:g}")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.raw[key]
        if not isinstance(value, bool):
            self._bad(key, "true or false")
            return default
        return value

    def unknown(self, keys: tuple[str, ...]) -> None:
        for key in self.raw:
            if key not in keys:
                self.problems.append(f"{self.path}.{key}: unknown key (known: {', '.join(keys)})")


def resolve(text: str, base: Path | None) -> Path:
    """``~`` expanded; a relative path taken from ``base`` when given."""
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _postgres_problem(url: str) -> str | None:
    """What is wrong with a ``postgresql://`` URL for ``console.db``, or None.

    ``postgresql://user@host[:port]/database`` or, over a unix socket,
    ``postgresql:///database?host=/run/postgresql``; libpq reads the rest (``.pgpass``...).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number
    except ValueError as exc:
        return f"console.db: not a valid PostgreSQL URL ({exc})"
    name = parts.path.lstrip("/")
    if not name and "dbname=" not in parts.query:
        return ("console.db: the PostgreSQL URL names no database: expected postgresql://user@host/database "
                "or postgresql:///database?host=/run/postgresql")
    return None


def load_console_settings(raw: dict[str, Any] | None, base: Path | None = None) -> ConsoleSettings:
    """Read the ``console:`` section (``None`` or ``{}``: every default).

    Raises :class:`ConfigError` naming each bad key, e.g.
    ``console.listen_port: expected an integer from 1 to 65535, got 'x'``.
    """
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"console: expected a mapping of settings, got {raw!r}"])
    r = _Reader(raw, "console", base, problems)
    r.unknown(KEYS)
    d = ConsoleSettings()
    db = r.text("db", None)
    if db is None:
        db_value = d.db
    elif db.startswith(("postgresql://", "postgres://")):
        problem = _postgres_problem(db)
        if problem:
            problems.append(problem)
        db_value = db if problem is None else d.db
    elif "://" in db:
        problems.append(f"console.db: expected a file path (SQLite) or a postgresql:// URL (PostgreSQL), "
                        f"got {db!r}")
        db_value = d.db
    else:
        db_value = str(resolve(db, base))
    notices_raw = raw.get("notices")
    notices = NoticeSettings()
    if notices_raw is not None:
        if not isinstance(notices_raw, dict):
            problems.append(f"console.notices: expected a mapping, got {notices_raw!r}")
        else:
            notices = _notices(_Reader(notices_raw, "console.notices", base, problems))
    settings = ConsoleSettings(
        listen_host=r.text("listen_host", d.listen_host) or d.listen_host,
        listen_port=int(r.number("listen_port", d.listen_port, 1, 65535, integer=True)),
        users_file=r.path_value("users_file", d.users_file) or d.users_file,
        secret_file=r.path_value("secret_file", d.secret_file) or d.secret_file,
        db=db_value,
        retention_days=int(r.number("retention_days", d.retention_days, 2, 3650, integer=True)),
        heartbeat_interval=float(r.number("heartbeat_interval", d.heartbeat_interval, 1, 3600)),
        stale_factor=float(r.number("stale_factor", d.stale_factor, 1, 100)),
        secure_cookies=r.flag("secure_cookies", d.secure_cookies),
        screenshot_dir=r.path_value("screenshot_dir", d.screenshot_dir) or d.screenshot_dir,
        notices=notices,
        metrics_token_file=r.path_value("metrics_token_file", None),
    )
    if problems:
        raise ConfigError(problems)
    return settings


def _notices(r: _Reader) -> NoticeSettings:
    r.unknown(NOTICE_KEYS)
    d = NoticeSettings()
    mail_to: list[str] = []
    if r.has("mail_to"):
        value = r.raw["mail_to"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
            r._bad("mail_to", "a list of e-mail addresses")
        else:
            mail_to = [v.strip() for v in value]
    language = r.text("language", d.language) or d.language
    if language not in LANGUAGES:
        r.problems.append(f"{r.path}.language: expected one of {', '.join(LANGUAGES)}, got {language!r}")
        language = d.language
    webhook = r.text("webhook_url", None)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        r.problems.append(f"{r.path}.webhook_url: expected an http:// or https:// URL, got {webhook!r}")
        webhook = None
    return NoticeSettings(
        offline_minutes=r.number("offline_minutes", d.offline_minutes, 1, 10080),
        stale_minutes=r.number("stale_minutes", d.stale_minutes, 1, 10080),
        temp_c=float(r.number("temp_c", d.temp_c, 0, 150)),
        door=r.flag("door", d.door),
        webhook_url=webhook,
        smtp_host=r.text("smtp_host", None),
        smtp_port=int(r.number("smtp_port", d.smtp_port, 1, 65535, integer=True)),
        smtp_starttls=r.flag("smtp_starttls", d.smtp_starttls),
        smtp_user=r.text("smtp_user", None),
        smtp_password_file=r.path_value("smtp_password_file", None),
        mail_from=r.text("mail_from", None),
        mail_to=mail_to,
        language=language,
    )


def read_or_create_secret(path: Path) -> bytes:
    """The console's signing secret: read from ``path``, or created there (0600, 32 random bytes)."""
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return data

"""Who may use the console: the users file, password checks, roles and CSRF tokens.

The users file holds one user a line, ``name:role:argon2-hash`` (``role`` is ``viewer``
or ``operator``); it is written atomically with mode 0600 by ``panelctl console user``.
Passwords are hashed with Argon2id (argon2-cffi's defaults); nothing here hashes by hand.

Example::

    users = UsersFile(Path("~/.config/panelctl/console-users").expanduser())
    users.add("marie", "operator", "correct horse battery staple")
    user = users.check("marie", "correct horse battery staple")   # User(name='marie', role='operator')

A session (Starlette's signed cookie) carries the user name, the role and a CSRF token
(:func:`new_csrf_token`); every POST must send that token back (the hidden ``csrf``
field of the forms, or the ``X-CSRF-Token`` header of the page's own requests) and it is
compared with :func:`hmac.compare_digest` (:func:`csrf_ok`).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ConfigError
from ..store import atomic_write

ROLES = ("viewer", "operator")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Checked against when the name is unknown, so that a wrong name costs the same time
# as a wrong password (no way to tell which names exist from the delay).
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"user name {name!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: viewer (sees the fleet) or operator (may also send alerts and playlists)")
    return role


class UsersFile:
    """The ``name:role:hash`` file; read at each check, so that edits apply at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, tuple[str, str]]:
        """``{name: (role, hash)}``; an absent file is no users. :class:`ConfigError` on a bad line."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError([f"cannot read the console users file {self.path}: {exc.strerror or exc}"]) from None
        users: dict[str, tuple[str, str]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep1, rest = line.partition(":")
            role, sep2, hashed = rest.partition(":")
            if not (sep1 and sep2) or role not in ROLES or not hashed.startswith("$argon2"):
                raise ConfigError([f"{self.path}, line {n}: expected name:viewer|operator:argon2-hash"])
            users[name] = (role, hashed)
        return users

    def _write(self, users: dict[str, tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{name}:{role}:{hashed}\n" for name, (role, hashed) in sorted(users.items()))
        atomic_write(self.path, text.encode("utf-8"), mode=0o600)

    def add(self, name: str, role: str, password: str) -> bool:
        """Add ``name`` or replace its role and password; True when it is new."""
        check_name(name)
        check_role(role)
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
        users = self.read()
        new = name not in users
        users[name] = (role, _hasher.hash(password))
        self._write(users)
        return new

    def remove(self, name: str) -> bool:
        users = self.read()
        if name not in users:
            return False
        del users[name]
        self._write(users)
        return True

    def list(self) -> list[User]:
        return [User(name, role) for name, (role, _) in sorted(self.read().items())]

    def check(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right, else None (same cost for an unknown name)."""
        entry = self.read().get(name)
        hashed = entry[1] if entry else _DUMMY_HASH
        try:
            _hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if entry is None:
            return None
        return User(name, entry[0])


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: object, given: object) -> bool:
    """True when the session's token and the one sent match (constant-time comparison)."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))

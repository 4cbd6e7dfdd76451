"""Signed messages: JWS (RFC 7515) compact serialisation, EdDSA with Ed25519 (RFC 8037).

Alerts (JSON and CAP), cancels, playlists and commands may travel inside a JWS whose
payload is the message's exact bytes and whose protected header says who signed it,
when, and for which topic::

    BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)
    header = {"alg":"EdDSA","kid":"mairie-2026","iat":1764750000.125,"topic":"signage/all/alerts/crue-1"}

* ``kid`` names the key in the panel's ``trust.keys``;
* ``topic`` must be the topic the message arrived on: a message signed for one
  panel cannot be replayed on ``all``, an alert cannot be replayed as a cancel;
* ``iat`` (seconds since 1970, any fraction) orders the messages of one topic: the
  panel accepts a message only if it was signed after the last one it accepted on
  that topic (:class:`ReplayGuard`, kept in ``state_dir`` across restarts). The
  panel's own clock is never compared with it, so a panel whose clock is wrong
  still accepts what is new and refuses what is old.

A cancel is a signed empty payload (``header..signature``): retained on the broker,
it tells a panel that connects later that the alert is over.

The cryptography is the ``cryptography`` package's Ed25519; this module only
frames it. Example::

    key, kid = load_private_key(Path("central.key"))
    data = sign(b'{"level":"critical","title":"CRUE"}', key=key, kid=kid,
                topic="signage/all/alerts/crue-1", iat=time.time())
    signed = open_envelope(data, {kid: public_key}, "signage/all/alerts/crue-1")
    signed.payload     # b'{"level":"critical","title":"CRUE"}'
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ContentError

if TYPE_CHECKING:  # imported where used: reading a config does not load the cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
CATEGORIES = ("alerts", "playlists", "commands")
_B64 = rb"[A-Za-z0-9_-]"
_ENVELOPE = re.compile(rb"(" + _B64 + rb"+)\.(" + _B64 + rb"*)\.(" + _B64 + rb"+)")
MAX_HEADER = 1024  # bytes of decoded header
SIGNATURE_BYTES = 64
KEY_BYTES = 32


class SignatureError(ContentError):
    """A signed message that cannot be accepted; the message says why, for the events."""

    def __init__(self, reason: str) -> None:
        super().__init__([reason], "signature")
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    """A verified message: its payload, and who signed it, when, for which topic."""

    payload: bytes
    kid: str
    iat: float
    topic: str
    signature: bytes


# -- base64url without padding (RFC 7515 §2) ---------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, what: str) -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) else text
    if not re.fullmatch(_B64 + rb"*", raw) or len(raw) % 4 == 1:
        raise SignatureError(f"{what} is not base64url")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not base64url") from None
    if b64url(decoded).encode("ascii") != raw:  # spare bits set: another spelling of the same bytes
        raise SignatureError(f"{what} is not canonical base64url")
    return decoded


# -- keys ---------------------------------------------------------------------------------------

def public_key_bytes(text: str, what: str = "key") -> bytes:
    """The 32 bytes of an Ed25519 public key given in base64url (a JWK's ``x``)."""
    raw = b64url_decode(text, what)
    if len(raw) != KEY_BYTES:
        raise SignatureError(f"{what} is {len(raw)} bytes, an Ed25519 public key is {KEY_BYTES}")
    return raw


def public_keys(raw: Mapping[str, bytes]) -> dict[str, Ed25519PublicKey]:
    """Key objects for :func:`open_envelope` from ``{kid: 32 bytes}``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return {kid: Ed25519PublicKey.from_public_bytes(key) for kid, key in raw.items()}


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The public key as a JWK (RFC 8037): what a ``.pub`` file holds."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return {"kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": b64url(key.public_bytes(Encoding.Raw, PublicFormat.Raw))}


def _jwk(path: Path, private: bool) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError([f"{path}: not a JSON Web Key (JSON expected)"]) from None
    if not isinstance(data, dict) or data.get("kty") != "OKP" or data.get("crv") != "Ed25519":
        raise ConfigError([f'{path}: not an Ed25519 JSON Web Key ("kty": "OKP", "crv": "Ed25519")'])
    kid = data.get("kid")
    if not isinstance(kid, str) or not re.fullmatch(KID_PATTERN, kid):
        raise ConfigError([f"{path}: kid must match {KID_PATTERN}"])
    for name in ("x", "d") if private else ("x",):
        if not isinstance(data.get(name), str):
            raise ConfigError([f'{path}: "{name}" missing'])
    return data


def load_public_key(path: Path) -> tuple[bytes, str]:
    """A ``.pub`` file (a JWK): the key's 32 bytes and its id."""
    data = _jwk(path, private=False)
    try:
        return public_key_bytes(data["x"], f'{path}: "x"'), data["kid"]
    except SignatureError as exc:
        raise ConfigError([exc.reason]) from None


def load_private_key(path: Path) -> tuple[Ed25519PrivateKey, str]:
    """A ``.key`` file (a JWK with ``d``): the signing key and its id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _jwk(path, private=True)
    try:
        raw = b64url_decode(data["d"], f'{path}: "d"')
    except SignatureError as exc:
        raise ConfigError([exc.reason]) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError([f'{path}: "d" is {len(raw)} bytes, an Ed25519 private key is {KEY_BYTES}'])
    return Ed25519PrivateKey.from_private_bytes(raw), data["kid"]


def new_key_files(folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub`` in ``folder``; ``name`` is the key id.

    Refuses to overwrite an existing key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    if not re.fullmatch(KID_PATTERN, name):
        raise ConfigError([f"key name {name!r}: expected {KID_PATTERN} (it becomes the key id)"])
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise ConfigError([f"{path} exists: choose another name (keys are never overwritten)"])
    key = Ed25519PrivateKey.generate()
    jwk = public_jwk(key.public_key(), name)
    jwk["d"] = b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(jwk) + "\n")
    del jwk["d"]
    public.write_text(json.dumps(jwk) + "\n", encoding="utf-8")
    return private, public


# -- envelopes ------------------------------------------------------------------------------------

def is_envelope(data: bytes) -> bool:
    """Whether ``data`` has the shape of a compact JWS (JSON starts with ``{``, CAP with ``<``)."""
    return _ENVELOPE.fullmatch(data) is not None


def header_bytes(kid: str, topic: str, iat: float) -> bytes:
    """The protected header, in the exact form panelctl signs (keys in this order, no spaces)."""
    return json.dumps({"alg": "EdDSA", "kid": kid, "iat": iat, "topic": topic},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(payload: bytes, *, key: Ed25519PrivateKey, kid: str, topic: str, iat: float) -> bytes:
    """``payload`` in a compact JWS signed by ``key`` for ``topic`` at ``iat``."""
    if not re.fullmatch(KID_PATTERN, kid):
        raise ValueError(f"kid {kid!r} must match {KID_PATTERN}")
    if not math.isfinite(iat) or iat < 0:
        raise ValueError("iat must be a finite number of seconds >= 0")
    signing_input = f"{b64url(header_bytes(kid, topic, round(iat, 3)))}.{b64url(payload)}".encode("ascii")
    return signing_input + b"." + b64url(key.sign(signing_input)).encode("ascii")


def open_envelope(data: bytes, keys: Mapping[str, Ed25519PublicKey], topic: str) -> Signed:
    """Verify a compact JWS that arrived on ``topic``; raises :class:`SignatureError` saying why."""
    from cryptography.exceptions import InvalidSignature
    m = _ENVELOPE.fullmatch(data)
    if m is None:
        raise SignatureError("not a signed message (a JWS in compact form is expected)")
    head_b64, payload_b64, sig_b64 = m.groups()
    if len(head_b64) > MAX_HEADER * 4 // 3 + 4:
        raise SignatureError("signature header too long")
    header_raw = b64url_decode(head_b64, "signature header")
    try:
        header = json.loads(header_raw)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("signature header is not JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("signature header is not a JSON object")
    if header.get("alg") != "EdDSA":
        raise SignatureError(f"signature algorithm {str(header.get('alg'))[:20]!r} refused: only EdDSA")
    if "crit" in header or "b64" in header:
        raise SignatureError("signature header extensions (crit, b64) are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not re.fullmatch(KID_PATTERN, kid):
        raise SignatureError("signature key id missing or malformed")
    iat = header.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat) or iat < 0:
        raise SignatureError("signature time (iat) missing or not a number of seconds")
    if header.get("topic") != topic:
        raise SignatureError("signed for another topic" if isinstance(header.get("topic"), str)
                             else "signature header has no topic")
    key = keys.get(kid)
    if key is None:
        raise SignatureError(f"signed with key {kid!r}, which this panel does not trust")
    signature = b64url_decode(sig_b64, "signature")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature is {len(signature)} bytes, Ed25519 gives {SIGNATURE_BYTES}")
    try:
        key.verify(signature, head_b64 + b"." + payload_b64)
    except InvalidSignature:
        raise SignatureError(f"bad signature (key {kid!r}): the message was changed or not signed by it") from None
    payload = b64url_decode(payload_b64, "signed payload")
    if is_envelope(payload):
        raise SignatureError("a signed message inside a signed message is refused")
    return Signed(payload=payload, kid=kid, iat=float(iat), topic=topic, signature=signature)


# -- replays ------------------------------------------------------------------------------------------

class ReplayGuard:
    """The last signed message accepted on each topic, so that an older one is refused.

    ``check`` says whether a verified message is ``"new"`` (signed after the last one
    accepted on its topic), ``"same"`` (that very message again: a retained copy
    redelivered at a reconnection), or raises :class:`SignatureError` for a replay.
    A topic whose message ended (an alert that expired) refuses even its own copy.
    At most ``max_topics`` topics are remembered; when the oldest are forgotten, the
    latest time among them becomes a floor below which messages on unknown topics
    are refused, so that forgetting never lets a replay through.
    """

    def __init__(self, max_topics: int = 4096) -> None:
        self.max_topics = max_topics
        self.seen: dict[str, tuple[float, str, bool]] = {}  # topic -> (iat, signature prefix, ended)
        self.floor = 0.0
        self.changed = False

    @staticmethod
    def _mark(signature: bytes) -> str:
        return b64url(signature[:12])

    def check(self, signed: Signed) -> str:
        last = self.seen.get(signed.topic)
        if last is None:
            if signed.iat <= self.floor:
                raise SignatureError("signed before the oldest message this panel remembers: refused as a "
                                     "possible replay")
            return "new"
        iat, mark, ended = last
        if signed.iat > iat:
            return "new"
        if signed.iat == iat and self._mark(signed.signature) == mark and not ended:
            return "same"
        if signed.iat == iat and self._mark(signed.signature) == mark:
            raise SignatureError("replay of a message that has ended (expired) on this panel")
        raise SignatureError("replay: signed before the last message accepted on this topic")

    def accept(self, signed: Signed) -> None:
        self.seen.pop(signed.topic, None)
        self.seen[signed.topic] = (signed.iat, self._mark(signed.signature), False)
        self.changed = True
        if len(self.seen) > self.max_topics:
            drop = sorted(self.seen.items(), key=lambda kv: kv[1][0])[:len(self.seen) - self.max_topics]
            for topic, (iat, _, _) in drop:
                del self.seen[topic]
                self.floor = max(self.floor, iat)

    def ended(self, topic: str) -> None:
        """The message last accepted on ``topic`` is over (an alert expired): its copy is a replay."""
        last = self.seen.get(topic)
        if last is not None and not last[2]:
            self.seen[topic] = (last[0], last[1], True)
            self.changed = True

    def to_json(self) -> dict[str, Any]:
        return {"floor": self.floor, "seen": {t: list(v) for t, v in self.seen.items()}}

    @classmethod
    def from_json(cls, data: Any, max_topics: int = 4096) -> ReplayGuard:
        guard = cls(max_topics)
        if isinstance(data, dict):
            floor = data.get("floor")
            if isinstance(floor, (int, float)) and math.isfinite(floor):
                guard.floor = float(floor)
            seen = data.get("seen")
            if isinstance(seen, dict):
                for topic, value in seen.items():
                    if (isinstance(topic, str) and isinstance(value, list) and len(value) == 3
                            and isinstance(value[0], (int, float)) and isinstance(value[1], str)
                            and isinstance(value[2], bool)):
                        guard.seen[topic] = (float(value[0]), value[1], value[2])
        return guard

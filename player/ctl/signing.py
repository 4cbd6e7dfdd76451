"""panelctl's signatures: every alert, cancel, playlist and command it publishes, sealed.

With ``--key FILE`` (or ``$PANELCTL_KEY``, or ``key_file`` in panelctl.yaml) each
payload goes out inside a compact JWS (:mod:`player.trust`) signed for the topic it
is published on. The signing times of one panelctl process strictly increase, so an
alert and its cancel sent in the same millisecond keep their order.

Example::

    signer = Signer.from_file(Path("central-2026.key"))
    client.publish(topic, signer.seal(topic, payload), retain=True)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..trust import is_envelope, load_private_key, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Signer:
    def __init__(self, key: Ed25519PrivateKey, kid: str) -> None:
        self.key = key
        self.kid = kid
        self._last = 0.0

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        key, kid = load_private_key(path)
        return cls(key, kid)

    def seal(self, topic: str, payload: bytes, iat: float | None = None) -> bytes:
        """``payload`` signed for ``topic``, now (after the last one) or at ``iat`` if given."""
        if iat is None:
            iat = max(round(time.time(), 3), round(self._last + 0.001, 3))
            self._last = iat
        return sign(payload, key=self.key, kid=self.kid, topic=topic, iat=iat)


def seal(signer: Signer | None, topic: str, payload: bytes) -> bytes:
    """``payload`` as published: sealed when panelctl signs, as is otherwise."""
    return payload if signer is None else signer.seal(topic, payload)


def unwrap(payload: bytes) -> tuple[bytes, str | None]:
    """A retained message's payload and the key id it claims, read without checking the
    signature (the panels check it): for ``panelctl alert list``."""
    import json

    from ..trust import SignatureError, b64url_decode

    if not is_envelope(payload):
        return payload, None
    head, body, _ = payload.split(b".")
    try:
        header = json.loads(b64url_decode(head, "header"))
        kid = header.get("kid") if isinstance(header, dict) else None
        return b64url_decode(body, "payload"), kid if isinstance(kid, str) else None
    except (SignatureError, ValueError, UnicodeDecodeError):
        return payload, None

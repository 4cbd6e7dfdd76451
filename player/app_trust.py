"""Signed messages on the main loop: the gate every alert, playlist and command passes.

:meth:`TrustGate.admit` takes a message from the inbox before its part sees it.
A signed one (a compact JWS, see :mod:`player.trust`) is verified against
``trust.keys`` and the replay guard and goes on as its payload, marked with the
key id; an unsigned one goes on only if ``trust.require`` does not name its kind.
A refusal is answered with the kind's own event (``alert.rejected``,
``playlist.rejected``, ``command.failed``) and changes nothing on screen.
The replay guard is stored in ``state_dir`` after the frame, like the alerts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from .trust import ReplayGuard, SignatureError, is_envelope, open_envelope, public_keys

if TYPE_CHECKING:
    from .app import Player
    from .net.protocol import Inbound

log = logging.getLogger("panel-player")

CATEGORY = {"alert": "alerts", "playlist": "playlists", "cmd": "commands"}
WHAT = {"alert": "alert or cancel", "playlist": "playlist", "cmd": "command"}
STATE_NAME = "trust-seen"


class TrustGate:
    def __init__(self, player: Player) -> None:
        self.p = player
        self.cfg = player.cfg.trust
        self.keys = public_keys(dict(self.cfg.keys)) if self.cfg.keys else {}
        self.guard = ReplayGuard.from_json(player.store.load_json(STATE_NAME))

    def admit(self, msg: Inbound) -> Inbound | None:
        """The message to hand on (its payload unwrapped when signed), or None if refused."""
        kind = msg.route.kind
        category = CATEGORY.get(kind)
        if category is None:
            return msg  # assets are checked by their sha256, which a signed playlist names
        if not is_envelope(msg.payload):
            if self.cfg.requires(category):
                self.refuse(msg, f"unsigned {WHAT[kind]}: this panel accepts only signed {category} "
                                 "(trust.require)")
                return None
            return msg
        if not self.keys:  # signed by a server, before this panel was given its keys
            from .trust import b64url_decode

            try:
                payload = b64url_decode(msg.payload.split(b".")[1], "signed payload")
            except SignatureError as exc:
                self.refuse(msg, exc.reason)
                return None
            return dataclasses.replace(msg, payload=payload)
        try:
            signed = open_envelope(msg.payload, self.keys, msg.route.topic)
            status = self.guard.check(signed)
        except SignatureError as exc:
            self.refuse(msg, exc.reason)
            return None
        if status == "same" and kind == "cmd":  # delivered twice, or captured and sent again
            self.refuse(msg, "replay: this command was already run")
            return None
        if status == "new":
            self.guard.accept(signed)
        return dataclasses.replace(msg, payload=signed.payload, signed_by=signed.kid)

    def refuse(self, msg: Inbound, reason: str) -> None:
        from .net.protocol import event_alert_rejected, event_command_failed, event_playlist_rejected

        kind = msg.route.kind
        if kind == "alert":
            self.p.event(event_alert_rejected(msg.route.alert or msg.route.topic, reason))
        elif kind == "playlist":
            self.p.event(event_playlist_rejected(f"{msg.route.topic}: {reason}"))
        else:
            request, cmd = _command_names(msg.payload)
            self.p.event(event_command_failed(request, cmd, reason))

    def alert_ended(self, topic: str) -> None:
        """An alert expired: the retained copy of its signed message is a replay from now on."""
        self.guard.ended(topic)

    def trusted(self, kid: str | None) -> bool:
        """Whether a stored alert signed with ``kid`` (None: unsigned) may stay after a restart."""
        if kid is None:
            return not self.cfg.requires("alerts")
        return kid in self.keys

    def save_if_unsaved(self) -> None:
        if not self.guard.changed:
            return
        self.guard.changed = False
        try:
            self.p.store.save_json(STATE_NAME, self.guard.to_json())
        except OSError as exc:
            self.p.report_error(f"cannot persist the signed messages seen: {exc}")


def _command_names(payload: bytes) -> tuple[str | None, str | None]:
    """The request id and command of a refused signed command, to answer it; None if unreadable."""
    from .trust import b64url_decode

    try:
        data: Any = json.loads(b64url_decode(payload.split(b".")[1], "payload") if is_envelope(payload) else payload)
    except (SignatureError, ValueError, IndexError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    request, cmd = data.get("id"), data.get("cmd")
    return (request[:128] if isinstance(request, str) else None, cmd[:32] if isinstance(cmd, str) else None)

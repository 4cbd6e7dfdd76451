"""Signed messages (player/trust.py): the envelope, the keys, the replay guard, the config.

The worked example of docs/protocol.md is signed here and compared byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from player.config import config_from_data
from player.errors import ConfigError
from player.trust import (ReplayGuard, SignatureError, b64url, header_bytes, is_envelope, load_private_key,
                          load_public_key, new_key_files, open_envelope, public_key_bytes, public_keys, sign)

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "signage/all/alerts/crue-1"
EXAMPLE_SEED = hashlib.sha256(b"panel-player documentation example key").digest()
KEY = Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED)
KEYS = public_keys({"mairie-2026": KEY.public_key().public_bytes_raw()})
OTHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"another key").digest())
ALERT = '{"level":"critical","title":"ALERTE CRUE","body":"Évacuez les berges.","ttl":3600}'.encode()


def signed(payload: bytes = ALERT, *, key: Ed25519PrivateKey = KEY, kid: str = "mairie-2026",
           topic: str = TOPIC, iat: float = 1764750000.125) -> bytes:
    return sign(payload, key=key, kid=kid, topic=topic, iat=iat)


def fenced_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```[a-z]*\n(.*?)\n```", text, re.S)]


# -- the worked example ------------------------------------------------------------------

def test_the_worked_example_of_protocol_md_byte_for_byte() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("### Worked example"):text.index("## Commands")]
    key_file, payload, header, message, cancel = fenced_blocks(section)
    jwk = json.loads(key_file)
    assert base64.urlsafe_b64decode(jwk["d"] + "=") == EXAMPLE_SEED
    assert jwk["x"] == b64url(KEY.public_key().public_bytes_raw())
    assert payload.encode() == ALERT and f"UTF-8, {len(ALERT)} bytes" in section
    assert message.encode() == signed()
    assert f"one line, {len(message)} bytes" in section
    assert base64.urlsafe_b64decode(message.split(".")[0] + "==").decode() == header
    assert cancel.encode() == signed(b"", iat=1764753600.5)
    assert open_envelope(message.encode(), KEYS, TOPIC).payload == ALERT
    assert open_envelope(cancel.encode(), KEYS, TOPIC).payload == b""


# -- verification --------------------------------------------------------------------------------

def test_a_signed_message_opens_with_its_key_id_time_and_topic() -> None:
    opened = open_envelope(signed(), KEYS, TOPIC)
    assert (opened.payload, opened.kid, opened.iat, opened.topic) == (ALERT, "mairie-2026", 1764750000.125, TOPIC)
    assert is_envelope(signed()) and not is_envelope(ALERT) and not is_envelope(b"<alert/>")


def reason(data: bytes, keys: Any = KEYS, topic: str = TOPIC) -> str:
    with pytest.raises(SignatureError) as exc:
        open_envelope(data, keys, topic)
    return exc.value.reason


def header_of(fields: dict[str, Any]) -> str:
    return b64url(json.dumps(fields).encode())


def test_each_refusal_says_why() -> None:
    good = signed()
    head, body, sig = good.split(b".")
    assert reason(good, topic="signage/panels/p1/alerts/crue-1") == "signed for another topic"
    assert reason(signed(key=OTHER)) == ("bad signature (key 'mairie-2026'): the message was changed "
                                         "or not signed by it")
    assert reason(head + b"." + b64url(b'{"level":"info","title":"x"}').encode() + b"." + sig).startswith(
        "bad signature")
    assert reason(signed(kid="ancienne")) == "signed with key 'ancienne', which this panel does not trust"
    assert reason(head + b"." + body + b"." + sig[:40]) == "signature is 30 bytes, Ed25519 gives 64"
    assert reason(head + b"." + body + b"." + sig[:-1]) in ("signature is not base64url",
                                                           "signature is not canonical base64url",
                                                           "signature is 63 bytes, Ed25519 gives 64")
    # The last character carries spare bits: another spelling of the same signature is refused.
    respelled = sig[:-1] + (b"B" if sig.endswith(b"A") else b"A")
    assert reason(head + b"." + body + b"." + respelled) in ("signature is not canonical base64url",
                                                            "bad signature (key 'mairie-2026'): the message was "
                                                            "changed or not signed by it")
    assert reason(b"%%%.abc.def") == "not a signed message (a JWS in compact form is expected)"
    assert reason(b64url(b"not json").encode() + b"." + body + b"." + sig) == "signature header is not JSON"
    assert reason(header_of({"alg": "HS256", "kid": "mairie-2026"}).encode() + b"." + body + b"." + sig) == \
        "signature algorithm 'HS256' refused: only EdDSA"
    assert reason(header_of({"alg": "none"}).encode() + b"." + body + b"." + sig).startswith(
        "signature algorithm 'none' refused")
    for kid in ("../../etc/passwd", "a/b", "", "x" * 65):
        h = header_of({"alg": "EdDSA", "kid": kid, "iat": 1, "topic": TOPIC})
        assert reason(h.encode() + b"." + body + b"." + sig) == "signature key id missing or malformed"
    h = header_of({"alg": "EdDSA", "kid": "mairie-2026", "iat": "hier", "topic": TOPIC})
    assert reason(h.encode() + b"." + body + b"." + sig) == "signature time (iat) missing or not a number of seconds"
    h = header_of({"alg": "EdDSA", "kid": "mairie-2026", "iat": 1, "topic": TOPIC, "crit": ["exp"]})
    assert reason(h.encode() + b"." + body + b"." + sig).startswith("signature header extensions")
    h = header_of({"alg": "EdDSA", "kid": "mairie-2026", "iat": 1})
    assert reason(h.encode() + b"." + body + b"." + sig) == "signature header has no topic"
    nested = signed(signed())
    assert reason(nested) == "a signed message inside a signed message is refused"


def test_a_megabyte_envelope_is_refused_without_trouble() -> None:
    big = signed(b"{" + b" " * 1_000_000 + b"}")
    assert len(big) > 1_000_000
    # A valid signature: refused downstream as a payload too large; a broken one here.
    assert open_envelope(big, KEYS, TOPIC).payload.startswith(b"{ ")
    junk = b"A" * 1_000_000 + b"." + b"B" * 10 + b"." + b"C" * 86
    assert reason(junk) == "signature header too long"


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=400),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/", max_size=400).map(
        str.encode),
    st.builds(lambda cut, flip: _mutate(signed(), cut, flip), st.integers(0, 321), st.integers(0, 255)),
))
def test_generated_junk_and_mutations_are_refused_with_a_reason_and_never_crash(data: bytes) -> None:
    if data == signed():
        return
    with pytest.raises(SignatureError) as exc:
        open_envelope(data, KEYS, TOPIC)
    assert exc.value.reason


def _mutate(message: bytes, cut: int, flip: int) -> bytes:
    """Truncated at ``cut``, or one character of it replaced by another base64url one."""
    if flip % 2:
        return message[:cut]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = cut % len(message)
    replacement = alphabet[flip % len(alphabet)]
    if message[i:i + 1] in (b".",) or message[i] == replacement:
        replacement = alphabet[(flip + 1) % len(alphabet)]
        if message[i:i + 1] == b".":
            return message[:cut]
    return message[:i] + bytes([replacement]) + message[i + 1:]


# -- replays -----------------------------------------------------------------------------------------

def opened(iat: float, payload: bytes = ALERT, topic: str = TOPIC) -> Any:
    return open_envelope(signed(payload, iat=iat, topic=topic), KEYS, topic)


def test_replay_guard_orders_each_topic() -> None:
    guard = ReplayGuard()
    alert, cancel = opened(100.0), opened(200.0, b"")
    assert guard.check(alert) == "new"
    guard.accept(alert)
    assert guard.check(alert) == "same"  # the retained copy at a reconnection
    assert guard.check(cancel) == "new"
    guard.accept(cancel)
    with pytest.raises(SignatureError, match="replay: signed before the last message accepted"):
        guard.check(alert)
    other = opened(50.0, topic="signage/all/alerts/orage")
    assert guard.check(other) == "new"  # another topic has its own order


def test_an_expired_alert_cannot_come_back_even_as_its_own_copy() -> None:
    guard = ReplayGuard()
    alert = opened(100.0)
    guard.accept(alert)
    guard.ended(TOPIC)
    with pytest.raises(SignatureError, match="ended"):
        guard.check(alert)
    assert guard.check(opened(101.0)) == "new"  # a new version is welcome


def test_the_guard_survives_a_restart_and_forgets_without_letting_replays_in() -> None:
    guard = ReplayGuard(max_topics=3)
    for i in range(5):
        guard.accept(opened(100.0 + i, topic=f"signage/all/alerts/a{i}"))
    restored = ReplayGuard.from_json(json.loads(json.dumps(guard.to_json())), max_topics=3)
    assert restored.floor == 101.0 and len(restored.seen) == 3
    with pytest.raises(SignatureError, match="oldest message this panel remembers"):
        restored.check(opened(100.0, topic="signage/all/alerts/a0"))
    with pytest.raises(SignatureError, match="replay"):
        restored.check(opened(102.5, topic="signage/all/alerts/a3"))
    assert restored.check(opened(104.0, topic="signage/all/alerts/a4")) == "same"
    assert ReplayGuard.from_json({"seen": {"t": ["bad"]}, "floor": "x"}).seen == {}


# -- keys ---------------------------------------------------------------------------------------------

def test_new_key_files_private_0600_public_readable_never_overwritten(tmp_path: Path) -> None:
    private, public = new_key_files(tmp_path, "central-2026")
    assert os.stat(private).st_mode & 0o777 == 0o600
    key, kid = load_private_key(private)
    raw, pub_kid = load_public_key(public)
    assert kid == pub_kid == "central-2026" and key.public_key().public_bytes_raw() == raw
    assert "d" not in json.loads(public.read_text())
    with pytest.raises(ConfigError, match="exists"):
        new_key_files(tmp_path, "central-2026")
    with pytest.raises(ConfigError, match="key name"):
        new_key_files(tmp_path, "../evil")


def trust_config(tmp_path: Path, trust: Any) -> Any:
    return config_from_data({"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]},
                             "trust": trust})


def test_trust_config_files_inline_keys_and_require(tmp_path: Path) -> None:
    _, public = new_key_files(tmp_path, "central-2026")
    inline = b64url(KEY.public_key().public_bytes_raw())
    cfg = trust_config(tmp_path, {"keys": [str(public), {"kid": "mairie-2026", "key": inline}]}).trust
    assert cfg.kids == ["central-2026", "mairie-2026"]
    assert cfg.require == {"alerts", "playlists", "commands"}  # all three once keys are set
    cfg = trust_config(tmp_path, {"keys": [str(public)], "require": ["alerts"]}).trust
    assert cfg.require == {"alerts"}
    assert trust_config(tmp_path, {}).trust.require == frozenset()


def test_bad_trust_config_names_its_keys(tmp_path: Path) -> None:
    _, public = new_key_files(tmp_path, "central-2026")
    bad_json = tmp_path / "bad.pub"
    bad_json.write_text("not json")
    with pytest.raises(ConfigError) as exc:
        trust_config(tmp_path, {"keys": [str(public), str(public), str(tmp_path / "missing.pub"), str(bad_json),
                                         {"kid": "x/y", "key": "abc"}, {"kid": "court", "key": "abcd"}, 5],
                                "require": ["alerts", "alertes"]})
    errors = exc.value.errors
    assert 'trust.keys[1]: key id "central-2026" is listed twice' in errors
    assert any(e.startswith(f"trust.keys[2]: {tmp_path / 'missing.pub'}: cannot read") for e in errors)
    assert f"trust.keys[3]: {bad_json}: not a JSON Web Key (JSON expected)" in errors
    assert any(e.startswith('trust.keys[4].kid: "x/y" does not match') for e in errors)
    assert "trust.keys[5].key: key is 3 bytes, an Ed25519 public key is 32" in errors
    assert "trust.keys[6]: expected the path of a .pub file or {kid, key}, got 5" in errors
    assert any(e.startswith('trust.require: expected some of alerts, playlists, commands, got "alertes"')
               for e in errors)
    with pytest.raises(ConfigError) as exc:
        trust_config(tmp_path, {"require": ["alerts"]})
    assert exc.value.errors == ["trust.require: needs trust.keys: no signature could be checked"]


# -- edges pinned down one by one (each kills a mutant the tests above let live) -------------------

def test_signature_error_names_itself_and_header_bytes_keep_unicode() -> None:
    exc = SignatureError("why")
    assert exc.what == "signature" and exc.errors == ["why"] and str(exc) == "invalid signature: why"
    assert header_bytes("k", "signage/all/alerts/crue-é", 1.5) == \
        '{"alg":"EdDSA","kid":"k","iat":1.5,"topic":"signage/all/alerts/crue-é"}'.encode()


def test_sign_accepts_time_zero_rounds_to_the_millisecond_and_refuses_bad_input() -> None:
    for iat in (0, 0.5):
        assert open_envelope(signed(iat=iat), KEYS, TOPIC).iat == iat  # 1970 itself is a valid time
    assert open_envelope(signed(iat=1.23456), KEYS, TOPIC).iat == 1.235
    for iat in (-0.001, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^iat must be a finite number of seconds >= 0$"):
            signed(iat=iat)
    with pytest.raises(ValueError, match="^kid 'a/b' must match "):
        signed(kid="a/b")


def test_header_length_limit_and_refusals_of_header_fields() -> None:
    head, body, sig = signed().split(b".")
    limit = 1024 * 4 // 3 + 4  # 1369 characters of base64url
    assert reason(b"A" * limit + b"." + body + b"." + sig) == "signature header is not base64url"
    assert reason(b"A" * (limit + 1) + b"." + body + b"." + sig) == "signature header too long"
    assert reason(b"A" * (limit - 1) + b"." + body + b"." + sig) != "signature header too long"
    assert reason(b64url(b"[1, 2]").encode() + b"." + body + b"." + sig) == "signature header is not a JSON object"
    assert reason(b"A." + body + b"." + sig) == "signature header is not base64url"
    h = header_of({"alg": "EdDSA", "kid": "mairie-2026", "iat": 1, "topic": TOPIC, "b64": False})
    assert reason(h.encode() + b"." + body + b"." + sig) == \
        "signature header extensions (crit, b64) are not supported"
    long_alg = "HS256-" + "x" * 30
    assert reason(header_of({"alg": long_alg}).encode() + b"." + body + b"." + sig) == \
        f"signature algorithm {long_alg[:20]!r} refused: only EdDSA"
    for iat in (-1, True, None, float("inf")):
        h = header_of({"alg": "EdDSA", "kid": "mairie-2026", "iat": iat, "topic": TOPIC})
        assert reason(h.encode() + b"." + body + b"." + sig) == \
            "signature time (iat) missing or not a number of seconds"
    assert reason(head + b".A." + sig) in ("signature is not base64url", "bad signature (key 'mairie-2026'): "
                                           "the message was changed or not signed by it")


def test_a_bad_payload_encoding_is_refused_after_the_signature() -> None:
    # Signed over a payload part that is not canonical base64url: the signature holds, the payload does not.
    head = b64url(header_bytes("mairie-2026", TOPIC, 5.0)).encode()
    signing_input = head + b".QR"  # "QR" has spare bits set: "QQ" is the canonical spelling
    message = signing_input + b"." + b64url(KEY.sign(signing_input)).encode()
    assert reason(message) == "signed payload is not canonical base64url"


def test_replay_guard_floor_marks_changes_and_eviction_by_time() -> None:
    guard = ReplayGuard()
    assert guard.max_topics == 4096 and guard.floor == 0.0 and guard.changed is False
    assert ReplayGuard.from_json({}).max_topics == 4096 and ReplayGuard.from_json({}, max_topics=7).max_topics == 7
    assert guard.check(opened(0.5)) == "new"  # above the initial floor of 0
    guard.ended("signage/all/alerts/unknown")  # nothing accepted there: nothing changes
    assert guard.changed is False and guard.seen == {}
    guard.accept(opened(10.0))
    assert guard.changed is True
    guard.changed = False
    guard.ended(TOPIC)
    assert guard.changed is True and guard.seen[TOPIC][2] is True
    guard.changed = False
    guard.ended(TOPIC)  # already ended: not a change
    assert guard.changed is False
    # Same time, another signature, on an ended topic: an older-or-equal replay, not "the ended copy".
    with pytest.raises(SignatureError, match="^invalid signature: replay: signed before the last message accepted on this topic$"):
        guard.check(opened(10.0, payload=b"{}"))
    # Eviction drops the oldest by signing time, not by topic name or arrival.
    small = ReplayGuard(max_topics=2)
    small.accept(opened(30.0, topic="signage/all/alerts/a"))
    small.accept(opened(10.0, topic="signage/all/alerts/b"))
    assert len(small.seen) == 2 and small.floor == 0.0  # exactly max_topics: nothing forgotten
    small.accept(opened(20.0, topic="signage/all/alerts/c"))
    assert set(small.seen) == {"signage/all/alerts/a", "signage/all/alerts/c"} and small.floor == 10.0
    with pytest.raises(SignatureError, match="^invalid signature: signed before the oldest message this panel remembers: refused "
                                             "as a possible replay$"):
        small.check(opened(10.0, topic="signage/all/alerts/new"))  # at the floor: refused
    # Accepting again on a known topic moves it to the end without growing the guard.
    small.accept(opened(40.0, topic="signage/all/alerts/a"))
    assert list(small.seen) == ["signage/all/alerts/c", "signage/all/alerts/a"]
    assert ReplayGuard._mark(b"\x01" * 64) == b64url(b"\x01" * 12)


def test_key_files_refusals_say_why(tmp_path: Path) -> None:
    def refusal(content: str, private: bool = False) -> str:
        path = tmp_path / "k.jwk"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError) as exc:
            (load_private_key if private else load_public_key)(path)
        return exc.value.errors[0].removeprefix(f"{path}: ")

    okp = '"kty": "OKP", "crv": "Ed25519"'
    x = b64url(KEY.public_key().public_bytes_raw())
    assert refusal("[1]") == 'not an Ed25519 JSON Web Key ("kty": "OKP", "crv": "Ed25519")'
    assert refusal('{"kty": "OKP", "crv": "X25519", "kid": "a", "x": "AA"}').startswith("not an Ed25519")
    assert refusal('{"kty": "EC", "crv": "Ed25519", "kid": "a", "x": "AA"}').startswith("not an Ed25519")
    assert refusal('{' + okp + ', "kid": 5, "x": "AA"}').startswith("kid must match ")
    assert refusal('{' + okp + ', "kid": "a"}') == '"x" missing'
    assert refusal('{' + okp + ', "kid": "a", "x": "' + x + '"}', private=True) == '"d" missing'
    assert refusal('{' + okp + ', "kid": "a", "x": "AAAA"}') == '"x" is 3 bytes, an Ed25519 public key is 32'
    assert refusal('{' + okp + ', "kid": "a", "x": "A"}') == '"x" is not base64url'
    assert refusal('{' + okp + ', "kid": "a", "x": "' + x + '", "d": "A"}', private=True) == '"d" is not base64url'
    assert refusal('{' + okp + ', "kid": "a", "x": "' + x + '", "d": "AAAA"}', private=True) == \
        '"d" is 3 bytes, an Ed25519 private key is 32'
    assert refusal("").startswith("not a JSON Web Key")
    with pytest.raises(ConfigError, match="cannot read"):
        load_public_key(tmp_path / "absent.pub")
    with pytest.raises(SignatureError, match="^invalid signature: key is 3 bytes, an Ed25519 public key is 32$"):
        public_key_bytes("AAAA")
    raw = KEY.public_key().public_bytes_raw()
    assert public_keys({"a": raw})["a"].public_bytes_raw() == raw


def test_base64url_spelling_and_what_a_restored_guard_refuses(tmp_path: Path) -> None:
    from player.trust import b64url_decode
    assert b64url(b"\x00\x00\x17") == "AAAX" and b64url(b"\xff") == "_w"
    for text in ("ab+c", "ab/c", "ab=c", "abcde"):
        with pytest.raises(SignatureError, match=r"^invalid signature: x is not base64url$"):
            b64url_decode(text, "x")
    guard = ReplayGuard()
    guard.accept(opened(100.0))
    guard.ended(TOPIC)
    with pytest.raises(SignatureError, match=r"^invalid signature: replay of a message that has ended "
                                             r"\(expired\) on this panel$"):
        guard.check(opened(100.0))
    bad_entries = {"a": [1, "m", "no"], "b": 5, "c": [1, 2, True], "d": ["1", "m", True], "e": [1, "m"]}
    assert ReplayGuard.from_json({"seen": bad_entries}).seen == {}
    assert ReplayGuard.from_json({"seen": {"ok": [1, "m", True]}}).seen == {"ok": (1.0, "m", True)}
    missing = tmp_path / "absent.pub"
    with pytest.raises(ConfigError) as exc:
        load_public_key(missing)
    assert exc.value.errors == [f"{missing}: cannot read (No such file or directory)"]

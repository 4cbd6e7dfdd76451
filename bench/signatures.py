"""Signed alerts: the signature gate in this process, then real ``panel-player run`` processes (png 320x180).

What checking a signature costs, next to the unsigned path, same run.

1. The gate alone, in this process: for ``n`` distinct alerts, each on its own topic,
   the signed path (``open_envelope`` + the replay guard + ``parse_alert_message``)
   against the unsigned one (``parse_alert_message``), best of 5 rounds; the
   difference is the verification per alert.
2. The real process: a ``panel-player run`` with ``trust.keys`` receives ``count``
   signed alerts (each shown, then cancelled), and another without keys the same
   alerts unsigned; the CPU time each process spent (kernel schedstat), per alert and
   cancel. Rendering the alert screen is most of it; the difference is the signatures.

``python -m bench alert_latency`` measures the latency with signatures on.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import common
from fixtures_broker import Broker  # noqa: E402,I001
from fixtures_player import PREFIX, PanelProcess, text_playlist  # noqa: E402

DRIVES = ("the signature gate in this process, then two real `panel-player run` processes (png output 320x180, "
          "with and without trust.keys) on a real mosquitto")
SEED = b"bench signatures signing key....."[:32]


def _alert(i: int) -> bytes:
    return json.dumps({"level": "critical", "title": f"ALERTE CRUE n° {i + 1}",
                       "body": f"Évacuez les berges avant {12 + i % 10} h."}, ensure_ascii=False).encode()


def gate(n: int) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from player.alerts import AlertsConfig, parse_alert_message
    from player.trust import ReplayGuard, open_envelope, public_keys, sign

    key = Ed25519PrivateKey.from_private_bytes(SEED)
    keys = public_keys({"bench": key.public_key().public_bytes_raw()})
    topics = [f"{PREFIX}/all/alerts/a{i}" for i in range(n)]
    plain = [_alert(i) for i in range(n)]
    sealed = [sign(p, key=key, kid="bench", topic=t, iat=1000.0 + i) for i, (p, t) in enumerate(zip(plain, topics))]
    now, cfg = datetime.now(timezone.utc), AlertsConfig()

    def unsigned() -> None:
        for i, payload in enumerate(plain):
            parse_alert_message(f"a{i}", "all", "", payload, now=now, config=cfg, location=None)

    def signed() -> None:
        guard = ReplayGuard()
        for i, data in enumerate(sealed):
            opened = open_envelope(data, keys, topics[i])
            if guard.check(opened) == "new":
                guard.accept(opened)
            parse_alert_message(f"a{i}", "all", "", opened.payload, now=now, config=cfg, location=None)

    def best(fn: Any) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / n * 1e6

    return {"unsigned_us": best(unsigned), "signed_us": best(signed)}


def _process(broker: Broker, folder: Path, count: int, signed: bool) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from player.trust import b64url, sign

    key = Ed25519PrivateKey.from_private_bytes(SEED)
    folder.mkdir(parents=True)
    extra: dict[str, Any] = {}
    if signed:
        extra["trust"] = {"keys": [{"kid": "bench", "key": b64url(key.public_key().public_bytes_raw())}],
                          "require": ["alerts"]}
    p = PanelProcess(broker, folder, "bench", size=(320, 180), extra=extra)
    topic = f"{PREFIX}/panels/bench/alerts/sig"
    iat = [0.0]

    def seal(data: bytes) -> bytes:
        if not signed:
            return data
        iat[0] = max(round(time.time(), 3), round(iat[0] + 0.001, 3))
        return sign(data, key=key, kid="bench", topic=topic, iat=iat[0])

    try:
        mark = p.sub.mark()
        p.publish("panels/bench/playlist", text_playlist("sig", 1, "#003366"), retain=True)
        p.wait_event("playlist.applied", after=mark, timeout=20)
        time.sleep(1.0)
        assert p.proc is not None
        before = common.cpu_seconds(p.proc.pid)
        for i in range(count):
            mark = p.sub.mark()
            broker.publish(topic, seal(_alert(i)), retain=True)
            p.wait_event("alert.displayed", after=mark, where=lambda e: e.get("alert") == "sig")
            broker.publish(topic, seal(b""), retain=True)
            p.wait_event("alert.ended", after=mark, where=lambda e: e.get("alert") == "sig")
        return (common.cpu_seconds(p.proc.pid) - before) / count * 1e3
    finally:
        p.stop()
        p.close()


def run(n: int = 2000, count: int = 100) -> dict[str, Any]:
    micro = gate(n)
    with tempfile.TemporaryDirectory(prefix="signatures-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        try:
            unsigned_ms = _process(broker, folder / "unsigned", count, signed=False)
            signed_ms = _process(broker, folder / "signed", count, signed=True)
        finally:
            broker.stop()
    common.report("signed alerts: the cost of checking signatures (same run)", [
        ("gate alone, unsigned path (parse)", f"{micro['unsigned_us']:.1f} µs per alert, best of 5 × {n}"),
        ("gate alone, signed path (verify + replay guard + parse)", f"{micro['signed_us']:.1f} µs per alert"),
        ("verification per alert", f"{micro['signed_us'] - micro['unsigned_us']:.1f} µs"),
        ("real player 320x180, unsigned: CPU per alert + cancel", f"{unsigned_ms:.2f} ms over {count}"),
        ("real player 320x180, signed: CPU per alert + cancel", f"{signed_ms:.2f} ms over {count}"),
    ])
    # No goal: the latency with signatures on is judged by alert_latency's signed row.
    return {**micro, "process_unsigned_ms": unsigned_ms, "process_signed_ms": signed_ms, "goals": []}

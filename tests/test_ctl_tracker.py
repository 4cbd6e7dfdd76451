"""panelctl's reading of the panels' answers (player.ctl.track.Tracker) and of the
fleet (player.ctl.status.read_fleet), against a real mosquitto.

Panels are stood in for by a plain MQTT client publishing on their topics, exactly
as the player does (QoS 1; online and heartbeat retained, events not).
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from fixtures_broker import connect_client

from player.ctl.client import CtlClient
from player.ctl.settings import CtlSettings
from player.ctl.status import read_fleet
from player.ctl.track import Answer, Progress, Tracker

PREFIX = "signage"


def applied_or_rejected(pid: str, event: dict[str, Any]) -> tuple[str, str] | None:
    if event.get("type") == "playlist.applied" and event.get("version") == 7:
        return ("applied", "")
    if event.get("type") == "playlist.rejected":
        if event.get("reason") == "boom":
            raise RuntimeError("a matcher that fails on one event")
        return ("rejected", str(event.get("reason")))
    return None


class Panels:
    """Publishes events as panels would."""

    def __init__(self, broker: Any) -> None:
        self.client = connect_client(broker, "fake-panels")

    def send(self, pid: str, payload: bytes | dict[str, Any], leaf: str = "events", retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(f"{PREFIX}/panels/{pid}/{leaf}", data, qos=1, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_answers_are_collected_once_each_and_noise_is_ignored(broker: Any) -> None:
    panels = Panels(broker)
    err = io.StringIO()
    with CtlClient(CtlSettings(port=broker.port, prefix=PREFIX)) as client:
        tracker = Tracker(client, PREFIX, expected={"p1", "p2", "p3"}, possible={"p4"},
                          match=applied_or_rejected, success="applied", progress=Progress(err))
        tracker.answers["p3"] = Answer("unchanged", "already shows it", 0.0)  # known before the push
        tracker.start()
        panels.send("p1", b"{not json")                                   # ignored
        panels.send("p1", [1, 2])                                         # not an object: ignored
        panels.send("p1", {"type": "heartbeat"})                          # not an answer
        panels.send("p1", {"type": "playlist.rejected", "reason": "boom"})  # the matcher fails
        panels.send("p1", {"type": "playlist.applied", "version": 7})
        panels.send("p1", {"type": "playlist.rejected", "reason": "late"})  # p1 has answered already
        panels.send("p9", {"type": "playlist.applied", "version": 7})       # not awaited: counted apart
        panels.send("p2", {"type": "playlist.rejected", "reason": "unknown layout"})
        started = time.monotonic()
        answers = tracker.wait(timeout=1.0)  # p4 never answers: the wait ends at the time-out
        waited = time.monotonic() - started
    panels.close()

    assert answers["p1"].outcome == "applied"
    assert answers["p2"] == Answer("rejected", "unknown layout", answers["p2"].after_s)
    assert answers["p3"].outcome == "unchanged"
    assert answers["p9"].outcome == "applied"
    assert "p4" not in answers
    assert 0.0 <= answers["p1"].after_s <= answers["p2"].after_s < 1.0
    assert 0.3 < waited < 2.0
    # The last line says where things ended (without a terminal, no count-down left in it).
    assert err.getvalue().splitlines()[-1] == "2/5 applied, 1 rejected, 1 other"


def test_the_wait_ends_as_soon_as_the_last_awaited_panel_answers(broker: Any) -> None:
    panels = Panels(broker)
    with CtlClient(CtlSettings(port=broker.port, prefix=PREFIX)) as client:
        ids = {f"p{i}" for i in range(200)}
        tracker = Tracker(client, PREFIX, expected=ids, possible=set(), match=applied_or_rejected,
                          success="applied", progress=Progress(io.StringIO()))
        tracker.start()
        for pid in sorted(ids):
            panels.client.publish(f"{PREFIX}/panels/{pid}/events",
                                  json.dumps({"type": "playlist.applied", "version": 7}), qos=1)
        started = time.monotonic()
        answers = tracker.wait(timeout=30)
        waited = time.monotonic() - started
        # Afterwards, messages queue up for next_message again.
        panels.send("p1", {"type": "playlist.applied", "version": 7})
        later = client.next_message(time.monotonic() + 5)
    panels.close()
    assert set(answers) == ids and all(a.outcome == "applied" for a in answers.values())
    assert waited < 5, "must not wait for a progress tick or the time-out once everyone answered"
    assert later is not None and later.topic == f"{PREFIX}/panels/p1/events"


def test_reading_the_fleet_leaves_no_subscription_behind(broker: Any) -> None:
    panels = Panels(broker)
    panels.send("p1", b"true", leaf="online", retain=True)
    panels.send("p1", {"panel": "p1", "playlist": {"id": "hiver", "version": 3}}, leaf="heartbeat", retain=True)
    with CtlClient(CtlSettings(port=broker.port, prefix=PREFIX)) as client:
        fleet = read_fleet(client, PREFIX)
        assert fleet["p1"].online is True and fleet["p1"].heartbeat is not None
        # A push waits for answers after this: the heartbeats that follow each apply
        # must not reach panelctl too. The marker, published after the heartbeat by the
        # same client, must be the first message to arrive.
        marker = f"{PREFIX}/ctl/test/marker"
        client.subscribe([marker])
        panels.send("p1", {"panel": "p1", "playlist": {"id": "hiver", "version": 4}}, leaf="heartbeat",
                    retain=True)
        panels.client.publish(marker, b"after", qos=1).wait_for_publish(5)
        first = client.next_message(time.monotonic() + 5)
    panels.close()
    assert first is not None and first.topic == marker

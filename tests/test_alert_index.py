"""The retained alert index and the panel's exact alert subscriptions (docs/protocol.md,
"Alert index" and "Cancels never lost"): a panel gets every active alert after any
(re)start, and ends the ones cancelled while it was away, on a broker that delivers
retained messages only to exact subscriptions (RabbitMQ 3.10, MQTT 3.1.1) as on mosquitto.

Real brokers (mosquitto with MQTT 5 and with 3.1.1, RabbitMQ 3.10 with 3.1.1), the real
:class:`MqttLink`, and real player processes for what a person in the street would see.
"""

from __future__ import annotations

import json
import queue
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fixtures_broker import connect_client
from fixtures_player import PREFIX, PanelProcess
from test_e2e_alerts import ALERT_AT, CRITICAL, SIZE, for_alert

from player.net.link import MAX_INDEX_IDS, LinkSettings, MqttLink, parse_alert_index
from player.net.protocol import Inbound, LinkState, Rejected, RetainedSynced
from player.net.topics import Topics

P = PREFIX
T = Topics(P)
DOT_SENTENCE = ('alert id "crue.1": "." is not allowed: brokers that map MQTT topics to AMQP routing keys '
                '(RabbitMQ) turn it into a topic level, and the alert would never reach the panels; use "-" or "_"')


def index(*ids: str) -> bytes:
    """An alert index as panelctl publishes it."""
    return json.dumps({"alerts": sorted(ids), "ts": "2026-12-03T12:00:00Z"}).encode()


def alert(title: str, level: str = "critical") -> bytes:
    return json.dumps({"level": level, "title": title}).encode()


# -- the index payload ----------------------------------------------------------------


def test_parse_alert_index() -> None:
    assert parse_alert_index(index("crue-1", "canicule")) == (["canicule", "crue-1"], [])
    assert parse_alert_index(b"") == ([], [])  # the index deleted: nothing listed
    assert parse_alert_index(b'{"alerts": ["a", "a", "b"]}') == (["a", "b"], [])
    ids, problems = parse_alert_index(b'{"alerts": ["ok-1", "crue.1", 7, "a/b"]}')
    assert ids == ["ok-1"]
    assert problems[0] == "alert index: " + DOT_SENTENCE
    assert len(problems) == 3
    assert parse_alert_index(b"not json")[1][0].startswith("alert index is not JSON")
    assert parse_alert_index(b'{"alerts": "crue-1"}') == ([], ['alert index: "alerts" must be a list of alert ids'])
    assert parse_alert_index(b"[]") == ([], ['alert index: "alerts" must be a list of alert ids'])
    many = json.dumps({"alerts": [f"a{i}" for i in range(MAX_INDEX_IDS + 10)]}).encode()
    ids, problems = parse_alert_index(many)
    assert len(ids) == MAX_INDEX_IDS and problems == [f"alert index lists {MAX_INDEX_IDS + 10} alerts, "
                                                      f"at most {MAX_INDEX_IDS} are read"]


# -- the link, on both brokers ----------------------------------------------------------------


class Links:
    """MqttLinks on the test's broker (its protocol and login), stopped at the end."""

    def __init__(self, broker: Any, protocol: str) -> None:
        self.broker = broker
        self.protocol = protocol
        self.made: list[MqttLink] = []

    def make(self, panel: str = "p1", groups: tuple[str, ...] = ("centre",), held: set[str] | None = None,
             start: bool = True) -> tuple[MqttLink, queue.Queue[object]]:
        b = self.broker
        settings = LinkSettings(host=b.host, port=b.port, prefix=P, protocol=self.protocol,
                                username=b.username, password_file=b.password_file if b.username else None,
                                reconnect_min=0.1, reconnect_max=1.0)
        inbox: queue.Queue[object] = queue.Queue()
        link = MqttLink(settings, panel, list(groups), inbox)
        self.made.append(link)
        if held is not None:
            link.want_alerts(held)
        if start:
            link.start()
        return link, inbox


@pytest.fixture(params=["mosquitto", "mosquitto-3.1.1", "rabbitmq"])
def links(request: pytest.FixtureRequest) -> Iterator[Links]:
    """Links on mosquitto (MQTT 5, then 3.1.1) and on RabbitMQ (3.1.1)."""
    broker = request.getfixturevalue("rabbit" if request.param == "rabbitmq" else "broker")
    made = Links(broker, "5" if request.param == "mosquitto" else "3.1.1")
    yield made
    for link in made.made:
        link.stop()


def collect(inbox: queue.Queue[object], until: Callable[[list[object]], bool], timeout: float = 8.0,
            quiet: float = 0.0) -> list[object]:
    """Inbox items until ``until(items)`` holds, then ``quiet`` seconds more of them."""
    items: list[object] = []
    deadline = time.monotonic() + timeout
    while not until(items):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout} s; saw {items}")
        try:
            items.append(inbox.get(timeout=left))
        except queue.Empty:
            pass
    end = time.monotonic() + quiet
    while (left := end - time.monotonic()) > 0:
        try:
            items.append(inbox.get(timeout=left))
        except queue.Empty:
            break
    return items


def alerts_in(items: list[object]) -> list[tuple[str, bytes]]:
    return [(i.route.topic, i.payload) for i in items if isinstance(i, Inbound) and i.route.kind == "alert"]


def synced(items: list[object]) -> list[RetainedSynced]:
    return [i for i in items if isinstance(i, RetainedSynced)]


def is_rabbit(broker: Any) -> bool:
    return getattr(broker, "kind", "mosquitto") == "rabbitmq"


def test_the_indexes_of_its_scopes_bring_a_starting_panel_every_retained_alert(links: Links) -> None:
    any_broker = links.broker
    wanted = {T.all_alert("crue-1"): alert("CRUE"), T.group_alert("centre", "pont-2"): alert("PONT", "warning"),
              T.panel_alert_of("p1", "porte"): alert("PORTE", "info")}
    for topic, payload in wanted.items():
        any_broker.publish(topic, payload, retain=True)
    any_broker.publish(T.group_alert("ailleurs", "autre"), alert("AUTRE"), retain=True)  # another group's

    # Without the indexes: RabbitMQ gives a wildcard subscription no retained message.
    _, bare = links.make("p0")
    seen = alerts_in(collect(bare, lambda items: bool(synced(items)), quiet=0.5))
    if is_rabbit(any_broker):
        assert seen == []
    else:
        # mosquitto: the wildcards bring them (p0 is in group centre too; porte is p1's own)
        assert sorted(seen) == sorted((t, v) for t, v in wanted.items() if "/p1/" not in t)

    any_broker.publish(T.alert_index("all"), index("crue-1"), retain=True)
    any_broker.publish(T.alert_index("group", "centre"), index("pont-2"), retain=True)
    any_broker.publish(T.alert_index("group", "ailleurs"), index("autre"), retain=True)
    any_broker.publish(T.alert_index("panel", "p1"), index("porte"), retain=True)
    link, inbox = links.make("p1")
    items = collect(inbox, lambda items: set(dict(alerts_in(items))) == set(wanted), quiet=1.0)
    # Each exactly once, also on mosquitto where the wildcard and the exact subscription both
    # deliver the retained message: the second copy is the same delivery.
    assert sorted(alerts_in(items)) == sorted(wanted.items())
    assert all(i.retained for i in items if isinstance(i, Inbound))
    assert link.exact_alert_topics() == frozenset(wanted)
    assert not [i for i in items if isinstance(i, Rejected)]


def test_held_alerts_are_confirmed_before_the_sync_marker(links: Links) -> None:
    any_broker = links.broker
    """Reconciliation needs every active alert's retained message before the marker: the
    connection's one SUBSCRIBE names each held alert's exact topic."""
    kept, gone = T.all_alert("crue-1"), T.group_alert("centre", "pont-2")
    any_broker.publish(kept, alert("CRUE"), retain=True)
    link, inbox = links.make("p1", held={kept, gone, T.group_alert("quittee", "x-1")})
    first = collect(inbox, lambda items: bool(synced(items)))
    (mark,) = synced(first)
    assert mark.alert_topics == frozenset({kept})  # pont-2: nothing on the broker, so it is gone
    assert not mark.remembered  # the panel's first connection: no marker of its own yet
    assert alerts_in(first) == [(kept, alert("CRUE"))]
    # A group the panel is no longer in (its config changed) is not subscribed to.
    assert link.exact_alert_topics() == frozenset({kept, gone})
    link.stop()

    link, inbox = links.make("p1", held={kept})
    (mark,) = synced(collect(inbox, lambda items: bool(synced(items))))
    assert mark.remembered and mark.alert_topics == frozenset({kept})

    # Without naming it (the panel before this design): RabbitMQ says nothing of it.
    link, inbox = links.make("p2")
    (mark,) = synced(collect(inbox, lambda items: bool(synced(items))))
    assert mark.alert_topics == (frozenset() if is_rabbit(any_broker) else frozenset({kept}))


def test_a_live_message_on_overlapping_subscriptions_is_one_delivery(links: Links) -> None:
    any_broker = links.broker
    topic = T.all_alert("crue-1")
    any_broker.publish(topic, alert("CRUE"), retain=True)
    any_broker.publish(T.alert_index("all"), index("crue-1"), retain=True)
    link, inbox = links.make("p1")
    collect(inbox, lambda items: bool(alerts_in(items)) and bool(synced(items)), quiet=0.5)
    assert topic in link.exact_alert_topics()
    any_broker.publish(topic, alert("CRUE 2"), retain=True)
    any_broker.publish(topic, b"", retain=True)
    items = collect(inbox, lambda items: (topic, b"") in alerts_in(items), quiet=0.8)
    assert alerts_in(items) == [(topic, alert("CRUE 2")), (topic, b"")]


def test_the_panel_follows_index_changes_and_reports_a_bad_index(links: Links) -> None:
    any_broker = links.broker
    link, inbox = links.make("p1")
    collect(inbox, lambda items: bool(synced(items)))
    any_broker.publish(T.alert_index("all"), index("a-1", "b-2"), retain=True)
    deadline = time.monotonic() + 5
    while link.exact_alert_topics() != {T.all_alert("a-1"), T.all_alert("b-2")}:
        assert time.monotonic() < deadline, link.exact_alert_topics()
        time.sleep(0.02)
    link.want_alerts({T.all_alert("b-2")})  # b-2 became active on the panel
    any_broker.publish(T.alert_index("all"), b'{"alerts": ["crue.1"], "ts": "x"}', retain=True)
    bad = collect(inbox, lambda items: any(isinstance(i, Rejected) for i in items))[-1]
    assert isinstance(bad, Rejected) and bad.reason == "alert index: " + DOT_SENTENCE
    assert bad.topic == T.alert_index("all")
    # a-1 left the index: no longer subscribed; b-2 is held by the panel: kept.
    assert link.exact_alert_topics() == {T.all_alert("b-2")}
    # An alert published after the index changed still arrives (the wildcard), once.
    any_broker.publish(T.all_alert("b-2"), alert("B"), retain=True)
    items = collect(inbox, lambda items: bool(alerts_in(items)), quiet=0.5)
    assert alerts_in(items) == [(T.all_alert("b-2"), alert("B"))]
    assert not any(isinstance(i, LinkState) and not i.connected for i in items)


# -- real players on RabbitMQ (MQTT 3.1.1) --------------------------------------------------------


def send_alert(broker: Any, scope_topic: str, alert_id: str, ids: list[str], payload: bytes) -> None:
    """As panelctl sends one: the retained alert, then the scope's index listing it."""
    broker.publish(f"{scope_topic}/alerts/{alert_id}", payload, retain=True)
    broker.publish(f"{scope_topic}/alert-index", index(*ids), retain=True)


def cancel_alert(broker: Any, scope_topic: str, alert_id: str, ids: list[str]) -> None:
    broker.publish(f"{scope_topic}/alerts/{alert_id}", b"", retain=True)
    broker.publish(f"{scope_topic}/alert-index", index(*ids), retain=True)


def test_rabbitmq_a_panel_started_after_a_retained_alert_shows_it(rabbit: Any, panel: Any) -> None:
    send_alert(rabbit, f"{P}/all", "crue-1", ["crue-1"], alert("ALERTE CRUE"))
    p: PanelProcess = panel("p1", size=SIZE, start=False)
    p.start(wait_online=False)
    shown = p.wait_event("alert.displayed", where=for_alert("crue-1"), timeout=20)
    assert shown["alert"] == "crue-1"
    p.wait_colour(CRITICAL, at=ALERT_AT)


def discard_session(broker: Any, client_id: str) -> None:
    """Take the panel's client id over with a clean session, which ends its stored session
    (its queued messages too): only what the broker retains can tell it what happened."""
    client = connect_client(broker, client_id, broker.protocol)
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("how", ["connection dropped", "player restarted", "player restarted, session kept"])
def test_rabbitmq_a_reconnecting_panel_keeps_its_retained_alerts_and_ends_the_cancelled_one(
        rabbit: Any, panel: Any, how: str) -> None:
    p: PanelProcess = panel("p1", groups=["centre"], size=SIZE)
    send_alert(rabbit, f"{P}/all", "crue-1", ["crue-1"], alert("ALERTE CRUE"))
    send_alert(rabbit, f"{P}/groups/centre", "pont-2", ["pont-2"], alert("PONT FERMÉ", "warning"))
    p.wait_event("alert.displayed", where=for_alert("crue-1"), timeout=10)
    p.wait_colour(CRITICAL, at=ALERT_AT)
    time.sleep(0.5)  # pont-2 (warning, not on screen under the critical one) is in too

    mark = p.sub.mark()
    if how == "connection dropped":
        p.signal(signal.SIGSTOP)
        try:
            discard_session(rabbit, "p1")  # the broker closes the stopped panel's connection
            cancel_alert(rabbit, f"{P}/groups/centre", "pont-2", [])
        finally:
            p.signal(signal.SIGCONT)
    else:
        p.stop()
        if how == "player restarted":
            discard_session(rabbit, "p1")
        cancel_alert(rabbit, f"{P}/groups/centre", "pont-2", [])
        p.start(wait_online=False)
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("pont-2"), timeout=20)
    assert ended["reason"] == "cancelled"
    # Its session gone, only the reconciliation can tell; kept, RabbitMQ queued the cancel for it.
    by_reconciliation = "pont-2 ended: cancelled while this panel was offline" in p.log_text()
    assert by_reconciliation == (how != "player restarted, session kept"), p.log_text()
    time.sleep(1.0)
    assert not [e for e in p.events(mark) if e["type"] in ("error", "alert.rejected")
                or (e["type"] == "alert.ended" and e["alert"] == "crue-1")], p.events(mark)
    assert p.pixel(*ALERT_AT) == CRITICAL


def test_mosquitto_an_alert_id_with_a_dot_is_refused_with_the_sentence(broker: Any, panel: Any) -> None:
    p: PanelProcess = panel("p1")
    mark = p.sub.mark()
    broker.publish(f"{P}/all/alerts/crue.1", alert("ALERTE CRUE"), retain=True)
    rejected = p.wait_event("alert.rejected", after=mark)
    assert rejected == {"type": "alert.rejected", "alert": "crue.1", "reason": DOT_SENTENCE, "ts": rejected["ts"]}
    assert not [e for e in p.events(mark) if e["type"] == "alert.displayed"]


def test_rabbitmq_signed_alert_and_its_signed_cancel_reach_a_panel_through_exact_topics(
        rabbit: Any, panel: Any) -> None:
    """With trust.keys: the index is a hint (unsigned, accepted), the alerts it leads to are
    checked as always; the signed cancel stays retained and a restarting panel reads it on
    the alert's exact topic."""
    from test_e2e_trust import CENTRAL, inline

    from player.ctl.signing import Signer

    signer = Signer(CENTRAL, "central")
    topic = f"{P}/all/alerts/crue-1"
    rabbit.publish(topic, signer.seal(topic, alert("ALERTE CRUE")), retain=True)
    rabbit.publish(T.alert_index("all"), index("crue-1"), retain=True)
    p: PanelProcess = panel("p1", size=SIZE, extra={"trust": {"keys": [inline("central", CENTRAL)]}})
    p.wait_event("alert.displayed", where=for_alert("crue-1"), timeout=15)
    p.wait_colour(CRITICAL, at=ALERT_AT)

    p.stop()
    discard_session(rabbit, "p1")
    rabbit.publish(topic, signer.seal(topic, b""), retain=True)  # a signed cancel stays on the broker
    rabbit.publish(T.alert_index("all"), index(), retain=True)
    mark = p.sub.mark()
    p.start(wait_online=False)
    ended = p.wait_event("alert.ended", after=mark, where=for_alert("crue-1"), timeout=20)
    assert ended["reason"] == "cancelled"
    assert "cancelled while this panel was offline" not in p.log_text()  # read, not inferred
    assert not [e for e in p.events(mark) if e["type"] in ("alert.rejected", "error")], p.events(mark)

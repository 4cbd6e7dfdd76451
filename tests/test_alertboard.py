"""The alert board: levels, turns, ttl on the monotonic clock, expires on the wall clock,
cancel and CAP update/cancel, the same id on two scopes, persistence across restarts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.alertboard import MAX_ENDED, AlertBoard
from player.alerts import LEVELS, Alert, AlertsConfig, Cancel, CapRef, parse_alert_message

WALL = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
from conftest import CAP_SAMPLES as SAMPLES  # noqa: E402


def alert(alert_id: str, level: str = "critical", scope: str = "all", scope_name: str = "",
          **kw: object) -> Alert:
    return Alert(id=alert_id, scope=scope, scope_name=scope_name, level=level,  # type: ignore[arg-type]
                 title=alert_id.upper(), **kw)


def ids(alerts: list[Alert]) -> list[str]:
    return [a.id for a in alerts]


def test_empty_board() -> None:
    board = AlertBoard()
    assert board.current(0.0) is None and board.top_level() is None and board.active() == []
    assert board.next_deadline(0.0, WALL) is None and board.expire(0.0, WALL) == []


def test_highest_level_is_shown_then_the_next_when_it_ends() -> None:
    board = AlertBoard()
    assert board.apply(alert("pluie", "warning"), 0.0, WALL) == "added"
    assert board.current(0.0).id == "pluie"  # type: ignore[union-attr]
    board.apply(alert("crue", "critical"), 1.0, WALL)
    board.apply(alert("marche", "info"), 2.0, WALL)
    assert board.top_level() == "critical"
    assert board.current(3.0).id == "crue"  # type: ignore[union-attr]
    assert ids(board.active()) == ["crue", "pluie", "marche"]
    assert ids(board.cancel("crue")) == ["crue"]
    assert board.top_level() == "warning" and board.current(4.0).id == "pluie"  # type: ignore[union-attr]
    board.cancel("pluie")
    assert board.current(5.0).id == "marche"  # type: ignore[union-attr]
    board.cancel("marche")
    assert board.current(6.0) is None  # the playlist resumes


def test_alerts_of_the_top_level_take_turns_in_a_stable_order() -> None:
    board = AlertBoard(turn_seconds=8)
    for i, name in enumerate(["a", "b", "c"]):
        board.apply(alert(name), float(i), WALL)
    board.apply(alert("low", "warning"), 3.0, WALL)
    # the newest arrival shows at once, then the turns go on in arrival order
    seen = [board.current(t).id for t in (2.0, 9.9, 10.0, 17.9, 18.0, 26.0, 34.0, 42.0)]  # type: ignore[union-attr]
    assert seen == ["c", "c", "a", "a", "b", "c", "a", "b"]
    assert board.next_deadline(42.0, WALL) == 50.0
    # jumping ahead several turns at once lands where the rotation would be
    assert board.current(42.0 + 8 * 4 + 1).id == "c"  # type: ignore[union-attr]


def test_a_lone_alert_needs_no_turn_deadline() -> None:
    board = AlertBoard(turn_seconds=8)
    board.apply(alert("a"), 0.0, WALL)
    board.apply(alert("low", "info"), 0.0, WALL)
    assert board.current(100.0).id == "a" and board.next_deadline(100.0, WALL) is None  # type: ignore[union-attr]


def test_when_the_shown_alert_ends_its_successor_shows() -> None:
    board = AlertBoard(turn_seconds=8)
    for i, name in enumerate(["a", "b", "c"]):
        board.apply(alert(name), 0.0, WALL)
    assert board.current(0.0).id == "c"  # type: ignore[union-attr]
    assert board.current(8.0).id == "a"  # type: ignore[union-attr]
    board.cancel("a")
    assert board.current(9.0).id == "b"  # type: ignore[union-attr]
    assert board.next_deadline(9.0, WALL) == 17.0


def test_update_keeps_the_place_in_turn_and_shows_at_once() -> None:
    board = AlertBoard(turn_seconds=8)
    board.apply(alert("a"), 0.0, WALL)
    board.apply(alert("b"), 0.0, WALL)
    assert board.apply(replace(alert("a"), title="A v2"), 5.0, WALL) == "updated"
    assert board.current(5.0).title == "A v2"  # type: ignore[union-attr]
    assert ids(board.active()) == ["a", "b"]
    assert board.current(13.0).id == "b"  # type: ignore[union-attr]


def test_ttl_runs_on_the_monotonic_clock_while_the_wall_clock_jumps() -> None:
    board = AlertBoard()
    board.apply(alert("crue", ttl=60.0), 1000.0, datetime(1970, 1, 1, tzinfo=timezone.utc))  # clock not set yet
    synced = WALL  # NTP then sets the wall clock 56 years forward
    assert board.expire(1059.9, synced) == []
    assert board.next_deadline(1030.0, synced) == 1060.0
    assert ids(board.expire(1060.0, synced)) == ["crue"]
    assert board.current(1060.0) is None


def test_expires_runs_on_the_wall_clock() -> None:
    board = AlertBoard()
    board.apply(alert("crue", expires=WALL + timedelta(minutes=10)), 0.0, WALL)
    assert board.next_deadline(0.0, WALL) == 600.0
    assert board.expire(5000.0, WALL + timedelta(minutes=9)) == []  # the monotonic clock does not matter
    assert board.next_deadline(5000.0, WALL + timedelta(minutes=9)) == 5060.0
    assert ids(board.expire(5001.0, WALL + timedelta(minutes=10))) == ["crue"]


def test_ttl_and_expires_whichever_comes_first() -> None:
    board = AlertBoard()
    board.apply(alert("a", ttl=3600.0, expires=WALL + timedelta(seconds=30)), 0.0, WALL)
    assert board.next_deadline(0.0, WALL) == 30.0
    assert ids(board.expire(30.0, WALL + timedelta(seconds=30))) == ["a"]


def test_a_fresh_publish_restarts_the_ttl_but_a_retained_redelivery_does_not() -> None:
    board = AlertBoard()
    a = alert("crue", ttl=100.0)
    board.apply(a, 0.0, WALL)
    assert board.apply(a, 50.0, WALL, retained=True) == "unchanged"  # broker reconnect
    assert board.next_deadline(50.0, WALL) == 100.0
    assert board.apply(a, 50.0, WALL) == "updated"  # published again by the server
    assert board.next_deadline(50.0, WALL) == 150.0
    assert ids(board.expire(150.0, WALL)) == ["crue"]
    # after it expired, the broker's retained copy does not bring it back ...
    assert board.apply(a, 200.0, WALL, retained=True) == "ignored" and board.active() == []
    # ... but a changed one, or a live publish, does
    assert board.apply(a, 201.0, WALL) == "added"


def test_cancel_by_scope() -> None:
    board = AlertBoard(groups=("centre-ville",))
    board.apply(alert("crue", scope="all"), 0.0, WALL)
    board.apply(alert("crue", scope="group", scope_name="centre-ville"), 0.0, WALL)
    assert board.cancel("crue", "group", "other") == []
    assert [a.scope for a in board.cancel("crue", "group", "centre-ville")] == ["group"]
    assert board.is_active("crue")
    assert [a.scope for a in board.cancel("crue")] == ["all"]
    assert not board.is_active("crue") and board.cancel("nothing") == []


def test_same_id_on_two_scopes_the_most_specific_shows() -> None:
    board = AlertBoard(groups=("centre-ville", "quais"))
    board.apply(replace(alert("crue", "critical"), title="Crue"), 0.0, WALL)
    board.apply(alert("crue", "warning", scope="group", scope_name="quais"), 1.0, WALL)
    board.apply(alert("crue", "critical", scope="group", scope_name="centre-ville"), 2.0, WALL)
    assert len(board.stored()) == 3
    assert [(a.scope, a.scope_name) for a in board.active()] == [("group", "centre-ville")]
    board.apply(alert("crue", "warning", scope="panel", scope_name="mairie-entree"), 3.0, WALL)
    assert board.current(3.0).scope == "panel" and board.top_level() == "warning"  # type: ignore[union-attr]
    board.cancel("crue", "panel", "mairie-entree")
    assert board.current(4.0).scope_name == "centre-ville"  # type: ignore[union-attr]
    board.cancel("crue", "group", "centre-ville")
    assert board.current(5.0).scope_name == "quais"  # type: ignore[union-attr]
    board.cancel("crue", "group", "quais")
    assert board.current(6.0).title == "Crue"  # type: ignore[union-attr]


def test_cap_update_replaces_and_cancel_ends_across_topics() -> None:
    board = AlertBoard()
    sender = "prefecture-38@interieur.gouv.fr"
    first = alert("cap-a", "warning", source="cap", cap_sender=sender, cap_identifier="FR-1")
    board.apply(first, 0.0, WALL)
    board.apply(alert("other", "warning"), 0.0, WALL)
    ref1 = CapRef(sender, "FR-1", "2026-11-26T10:00:00+01:00")
    assert board.resolve_cap_references([ref1]) == [("all", "", "cap-a")]
    update = alert("cap-b", "critical", source="cap", cap_sender=sender, cap_identifier="FR-2",
                   cap_references=(ref1,))
    status, replaced = board.apply_replacing(update, 1.0, WALL)
    assert status == "updated" and ids(replaced) == ["cap-a"]
    assert ids(board.active()) == ["cap-b", "other"]
    # a Cancel naming only the original message still finds its update
    ended = board.apply_cancel(Cancel(ids=("cap-c",), references=(ref1,)))
    assert ids(ended) == ["cap-b"] and ids(board.active()) == ["other"]
    # the retained copies of what was withdrawn stay withdrawn on redelivery
    assert board.apply(first, 5.0, WALL, retained=True) == "ignored"
    assert board.apply(update, 5.0, WALL, retained=True) == "ignored"


def test_cap_chain_from_messages() -> None:
    """Alert, Update, Cancel parsed from CAP XML and applied in turn."""
    def msg(identifier: str, msg_type: str, refs: str = "", headline: str = "Crue") -> bytes:
        ref = f"<references>{refs}</references>" if refs else ""
        info = ("" if msg_type == "Cancel" else
                f"<info><event>Crue</event><severity>Severe</severity><headline>{headline}</headline></info>")
        return (f'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}</identifier>'
                f"<sender>p38</sender><sent>2026-11-26T10:00:00+01:00</sent><status>Actual</status>"
                f"<msgType>{msg_type}</msgType><scope>Public</scope>{ref}{info}</alert>").encode()

    def receive(board: AlertBoard, topic_id: str, payload: bytes, mono: float) -> None:
        result = parse_alert_message(topic_id, "all", "", payload, now=WALL, config=AlertsConfig(), location=None)
        if isinstance(result, Alert):
            board.apply(result, mono, WALL)
        elif isinstance(result, Cancel):
            board.apply_cancel(result)

    board = AlertBoard()
    receive(board, "crue-1", msg("ID1", "Alert"), 0.0)
    receive(board, "crue-2", msg("ID2", "Update", "p38,ID1,2026-11-26T10:00:00+01:00", "Crue aggravée"), 1.0)
    assert [(a.id, a.title) for a in board.active()] == [("crue-2", "Crue aggravée")]
    receive(board, "crue-3", msg("ID3", "Cancel", "p38,ID2,2026-11-26T10:00:00+01:00"), 2.0)
    assert board.active() == []


def test_shared_tsunami_sample_cancels_the_warnings_it_references() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"the shared CAP samples folder {SAMPLES} is absent")
    board = AlertBoard()
    for n in (1, 2):
        board.apply(alert(f"paaq-{n}", cap_sender="wcatwc@noaa.gov", cap_identifier=f"PAAQ-{n}-mg5a94"), 0.0, WALL)
    board.apply(alert("unrelated", "info"), 0.0, WALL)
    payload = (SAMPLES / "google-PAAQ-4-mg5a94.xml").read_bytes()
    result = parse_alert_message("paaq-4", "all", "", payload, now=WALL, config=AlertsConfig(), location=None)
    assert isinstance(result, Cancel)
    assert ids(board.apply_cancel(result)) == ["paaq-1", "paaq-2"]
    assert ids(board.active()) == ["unrelated"]


# -- persistence ------------------------------------------------------------------

def restart(board: AlertBoard, mono: float, wall: datetime, clock_synced: bool, *, saved_synced: bool = True,
            new_mono: float = 0.0, new_wall: datetime | None = None) -> AlertBoard:
    records = json.loads(json.dumps(board.to_records(mono, wall, clock_synced=saved_synced)))  # as on disk
    return AlertBoard.from_records(records, new_mono, new_wall or wall, clock_synced)


def test_round_trip_keeps_every_field_and_the_order() -> None:
    board = AlertBoard()
    full = Alert(id="crue", scope="group", scope_name="quais", level="critical", title="CRUE", body="Évacuez",
                 expires=WALL + timedelta(hours=2), ttl=3600.0, asset="ab" * 32, exercise=True, source="cap",
                 cap_identifier="FR-1", cap_sender="p38", cap_sent=WALL,
                 cap_references=(CapRef("p38", "FR-0", "2026-11-26T09:00:00+01:00"),))
    board.apply(alert("first", "warning"), 0.0, WALL)
    board.apply(full, 1.0, WALL)
    board.apply(alert("last", "warning"), 2.0, WALL)
    again = restart(board, 10.0, WALL, True)
    assert again.stored() == board.stored()
    assert ids(again.active()) == ["crue", "first", "last"]


def test_expired_alerts_are_not_restored_and_stay_ended() -> None:
    board = AlertBoard()
    board.apply(alert("short", ttl=60.0), 0.0, WALL)
    board.apply(alert("until-noon", expires=WALL + timedelta(hours=2)), 0.0, WALL)
    board.apply(alert("forever", "info"), 0.0, WALL)
    later = WALL + timedelta(hours=3)  # power was off for three hours
    again = restart(board, 10.0, WALL, True, new_wall=later)
    assert ids(again.active()) == ["forever"]
    assert again.apply(alert("short", ttl=60.0), 0.0, later, retained=True) == "ignored"


def test_ttl_after_a_reboot_with_a_synchronised_clock_uses_the_wall_deadline() -> None:
    board = AlertBoard()
    board.apply(alert("crue", ttl=3600.0), 100.0, WALL)
    # saved 600 s after receipt; the panel restarts 1000 s later with NTP time
    again = restart(board, 700.0, WALL + timedelta(seconds=600), True, new_mono=5.0,
                    new_wall=WALL + timedelta(seconds=1600))
    assert again.next_deadline(5.0, WALL + timedelta(seconds=1600)) == pytest.approx(5.0 + 2000.0)


def test_ttl_after_a_reboot_without_clock_uses_the_remaining_seconds() -> None:
    board = AlertBoard()
    board.apply(alert("crue", ttl=3600.0), 100.0, WALL)
    epoch = datetime(1970, 1, 1, 0, 0, 30, tzinfo=timezone.utc)  # no RTC, no network yet
    again = restart(board, 700.0, WALL, False, new_mono=5.0, new_wall=epoch)
    assert again.next_deadline(5.0, epoch) == pytest.approx(5.0 + 3000.0)
    assert again.current(5.0).id == "crue"  # type: ignore[union-attr]


def test_a_deadline_saved_before_the_clock_was_set_is_not_trusted() -> None:
    board = AlertBoard()
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    board.apply(alert("crue", ttl=3600.0), 0.0, epoch)
    records = board.to_records(600.0, epoch, clock_synced=False)
    assert records[0]["ttl_deadline"] is None and records[0]["ttl_remaining"] == 3000.0
    again = AlertBoard.from_records(records, 0.0, WALL, True)  # after the reboot NTP answered
    assert again.next_deadline(0.0, WALL) == 3000.0


def test_restored_retained_redelivery_keeps_the_remaining_ttl() -> None:
    board = AlertBoard()
    a = alert("crue", ttl=3600.0)
    board.apply(a, 0.0, WALL)
    again = restart(board, 3000.0, WALL + timedelta(seconds=3000), True, new_wall=WALL + timedelta(seconds=3010))
    assert again.apply(a, 0.0, WALL + timedelta(seconds=3010), retained=True) == "unchanged"
    assert again.next_deadline(0.0, WALL + timedelta(seconds=3010)) == pytest.approx(590.0)


def test_bad_records_are_skipped() -> None:
    good = AlertBoard()
    good.apply(alert("ok"), 0.0, WALL)
    record = good.to_records(0.0, WALL)[0]
    records = [record, "junk", {}, {**record, "id": "a/b"}, {**record, "level": "urgent"},
               {**record, "v": 99}, {**record, "id": "x", "expires": "tomorrow"},
               {**record, "id": "y", "ttl": 5, "ttl_remaining": "lots", "ttl_deadline": None},
               {**record, "id": "z", "cap_references": [[1, 2]]}]
    board = AlertBoard.from_records(records, 0.0, WALL, True)
    assert ids(board.active()) == ["ok"]


def test_ended_memory_is_bounded() -> None:
    board = AlertBoard()
    for i in range(MAX_ENDED + 10):
        board.apply(alert(f"a{i}", ttl=1.0), 0.0, WALL)
    assert len(board.expire(1.0, WALL)) == MAX_ENDED + 10
    records = board.to_records(2.0, WALL)
    assert len(records) == MAX_ENDED and all(r["ended"] for r in records)
    assert board.apply(alert("a0", ttl=1.0), 3.0, WALL, retained=True) == "added"  # forgotten: the oldest
    assert board.apply(alert(f"a{MAX_ENDED + 9}", ttl=1.0), 3.0, WALL, retained=True) == "ignored"


operations = st.lists(st.tuples(
    st.sampled_from(["apply", "retained", "cancel", "tick"]), st.sampled_from(["a", "b", "c", "d"]),
    st.sampled_from(LEVELS), st.sampled_from([("all", ""), ("group", "quais"), ("panel", "p1")]),
    st.sampled_from([None, 5.0, 20.0]), st.floats(0, 30)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_any_sequence_keeps_the_board_consistent(ops: list[tuple]) -> None:
    board, mono = AlertBoard(turn_seconds=4, groups=("quais",)), 0.0
    for op, name, level, (scope, scope_name), ttl, step in ops:
        mono += step
        wall = WALL + timedelta(seconds=mono)
        a = alert(name, level, scope, scope_name, ttl=ttl)
        if op in ("apply", "retained"):
            assert board.apply(a, mono, wall, retained=op == "retained") in ("added", "updated", "unchanged",
                                                                              "ignored")
        elif op == "cancel":
            board.cancel(name, scope, scope_name)
        for gone in board.expire(mono, wall):
            assert gone.ttl is not None
        shown = board.current(mono)
        active = board.active()
        assert len({x.id for x in active}) == len(active)  # one per id
        if shown is None:
            assert active == [] and board.top_level() is None
        else:
            assert shown in active and shown.level == board.top_level() == active[0].level
        deadline = board.next_deadline(mono, wall)
        assert deadline is None or deadline > mono  # what is due was just handled
        again = AlertBoard.from_records(board.to_records(mono, wall), mono, wall, True, turn_seconds=4,
                                        groups=("quais",))
        assert again.stored() == board.stored()


# -- pinned down one by one (each kills a mutant the tests above let live) ----------------------

def test_a_cancel_ends_each_of_its_ids_on_its_own_scope_only() -> None:
    board = AlertBoard(groups=("quais",))
    for name in ("a", "b", "c"):
        board.apply(alert(name, scope="group", scope_name="quais"), 0.0, WALL)
        board.apply(alert(name, scope="all"), 0.0, WALL)
    board.apply(alert("a", scope="group", scope_name="gare"), 0.0, WALL)
    ended = board.apply_cancel(Cancel(ids=("a", "b"), scope="group", scope_name="quais"))
    assert sorted((a.id, a.scope, a.scope_name) for a in ended) == [("a", "group", "quais"), ("b", "group", "quais")]
    assert sorted((a.id, a.scope, a.scope_name) for a in board.stored()) == [
        ("a", "all", ""), ("a", "group", "gare"), ("b", "all", ""), ("c", "all", ""), ("c", "group", "quais")]


def test_when_the_shown_alert_ends_the_next_in_arrival_order_follows_not_the_first() -> None:
    board = AlertBoard(turn_seconds=8)
    for name in ("a", "b", "c"):
        board.apply(alert(name), 0.0, WALL)
    assert [board.current(t).id for t in (0.0, 8.0, 16.0)] == ["c", "a", "b"]  # type: ignore[union-attr]
    board.cancel("b")
    assert board.current(17.0).id == "c"  # type: ignore[union-attr]  # b's successor, not the first (a)


def test_when_the_top_level_drops_its_first_alert_in_arrival_order_shows() -> None:
    board = AlertBoard(turn_seconds=8)
    board.apply(alert("w1", "warning"), 0.0, WALL)
    board.apply(alert("crit", "critical"), 1.0, WALL)
    board.apply(alert("w2", "warning"), 2.0, WALL)
    assert board.current(2.0).id == "crit"  # type: ignore[union-attr]
    board.cancel("crit")
    # Another level now: its turns start from the first arrival, not from after the critical one.
    assert board.current(3.0).id == "w1"  # type: ignore[union-attr]


def test_restored_board_keeps_its_turn_length_groups_and_what_was_withdrawn() -> None:
    assert AlertBoard.from_records([], 0.0, WALL, True).turn_seconds == 8.0
    board = AlertBoard.from_records([], 0.0, WALL, True, turn_seconds=5.0, groups=("quais",))
    assert board.turn_seconds == 5.0 and board.groups == ("quais",)
    sender = "prefecture-38@interieur.gouv.fr"
    first = alert("cap-a", "warning", source="cap", cap_sender=sender, cap_identifier="FR-1")
    original = AlertBoard()
    original.apply(first, 0.0, WALL)
    ref = CapRef(sender, "FR-1", "2026-11-26T10:00:00+01:00")
    original.apply_cancel(Cancel(ids=("cap-x",), references=(ref,)))  # withdrawn by reference
    again = restart(original, 10.0, WALL, True)
    assert again.active() == []
    assert again.apply(first, 0.0, WALL, retained=True) == "ignored"  # still withdrawn after the restart


def test_records_keep_the_signer_and_default_the_source_and_skip_bad_ones_anywhere() -> None:
    board = AlertBoard()
    board.apply(alert("signed", signed_by="mairie-2026"), 0.0, WALL)
    again = restart(board, 1.0, WALL, True)
    assert again.stored()[0].signed_by == "mairie-2026"
    record = board.to_records(0.0, WALL)[0]
    plain = {k: v for k, v in record.items() if k not in ("source", "signed_by")}
    restored = AlertBoard.from_records([plain], 0.0, WALL, True).stored()
    assert [(a.source, a.signed_by) for a in restored] == [("json", None)]
    bad_first = [["not", "a", "record"], {**record, "id": "t", "ttl": True}, 7,
                 {**record, "id": "u", "signed_by": 5}, record]
    assert ids(AlertBoard.from_records(bad_first, 0.0, WALL, True).active()) == ["signed"]


def test_a_record_whose_time_is_up_to_the_second_is_not_restored() -> None:
    board = AlertBoard()
    board.apply(alert("ttl", ttl=60.0), 0.0, WALL)
    board.apply(alert("expires", expires=WALL + timedelta(seconds=60)), 0.0, WALL)
    board.apply(alert("stays", ttl=61.0), 0.0, WALL)
    again = restart(board, 60.0, WALL + timedelta(seconds=60), False, saved_synced=False,
                    new_wall=WALL + timedelta(seconds=60))
    assert ids(again.active()) == ["stays"]


def test_cancelling_on_one_scope_keeps_what_was_withdrawn_on_another() -> None:
    board = AlertBoard(groups=("quais",))
    sender = "prefecture-38@interieur.gouv.fr"
    first = alert("cap-a", "warning", source="cap", cap_sender=sender, cap_identifier="FR-1")
    board.apply(first, 0.0, WALL)
    board.apply_cancel(Cancel(ids=("cap-x",), references=(CapRef(sender, "FR-1", "t"),)))
    board.cancel("cap-a", "group", "quais")  # the same id emptied on another scope
    board.cancel("cap-a", "all", "elsewhere")
    assert board.apply(first, 1.0, WALL, retained=True) == "ignored"  # still withdrawn on "all"
    board.cancel("cap-a", "all", "")  # the topic itself emptied: a later copy is new
    assert board.apply(first, 2.0, WALL, retained=True) == "added"


def test_turn_length_must_be_positive_and_defaults_to_eight_seconds() -> None:
    assert AlertBoard().turn_seconds == 8.0 and AlertBoard(0.5).turn_seconds == 0.5
    for bad in (0, -1):
        with pytest.raises(ValueError, match="^turn_seconds must be positive$"):
            AlertBoard(bad)


def test_the_most_specific_copy_shows_whatever_the_arrival_order() -> None:
    board = AlertBoard(groups=("centre-ville", "quais"))
    board.apply(alert("crue", "warning", scope="panel", scope_name="p1"), 0.0, WALL)
    board.apply(alert("crue", "warning", scope="group", scope_name="centre-ville"), 1.0, WALL)
    board.apply(alert("crue", "warning", scope="group", scope_name="quais"), 2.0, WALL)
    board.apply(alert("crue", "warning", scope="all"), 3.0, WALL)
    assert [(a.scope, a.scope_name) for a in board.active()] == [("panel", "p1")]
    board.cancel("crue", "panel", "p1")
    assert [(a.scope, a.scope_name) for a in board.active()] == [("group", "centre-ville")]


def test_a_cancel_does_not_reach_another_scope_with_the_same_name() -> None:
    board = AlertBoard(groups=("quais",))
    board.apply(alert("a", scope="panel", scope_name="quais"), 0.0, WALL)
    board.apply(alert("a", scope="group", scope_name="quais"), 0.0, WALL)
    ended = board.apply_cancel(Cancel(ids=("a",), scope="group", scope_name="quais"))
    assert [(a.scope, a.scope_name) for a in ended] == [("group", "quais")]
    assert [(a.scope, a.scope_name) for a in board.stored()] == [("panel", "quais")]


def test_a_fresh_publish_brings_back_a_withdrawn_alert_and_a_turn_is_due_when_the_shown_one_left() -> None:
    board = AlertBoard()
    sender = "prefecture-38@interieur.gouv.fr"
    first = alert("cap-a", "warning", source="cap", cap_sender=sender, cap_identifier="FR-1")
    board.apply(first, 0.0, WALL)
    board.apply_cancel(Cancel(ids=("cap-x",), references=(CapRef(sender, "FR-1", "t"),)))
    assert board.apply(first, 1.0, WALL) == "added"  # not a retained copy: a new publication
    board.apply(alert("b", "warning"), 2.0, WALL)
    board.apply(alert("c", "warning"), 3.0, WALL)
    assert board.current(3.0).id == "c"  # type: ignore[union-attr]
    board.cancel("c")
    assert board.next_deadline(4.0, WALL) == 4.0  # the one shown ended: the next turn is due now


def test_restoring_more_withdrawn_alerts_than_remembered_keeps_the_latest() -> None:
    board = AlertBoard()
    board.apply(alert("x"), 0.0, WALL)
    record = board.to_records(0.0, WALL)[0]
    records = [{**record, "id": f"a{i}", "title": f"A{i}", "ended": True} for i in range(MAX_ENDED + 5)]
    again = AlertBoard.from_records(records, 0.0, WALL, True)
    assert again.active() == []
    assert again.apply(alert("a0"), 1.0, WALL, retained=True) == "added"  # forgotten: among the oldest
    assert again.apply(alert("a4"), 1.0, WALL, retained=True) == "added"
    assert again.apply(alert("a5"), 1.0, WALL, retained=True) == "ignored"  # the oldest one kept
    assert again.apply(alert(f"a{MAX_ENDED + 4}"), 1.0, WALL, retained=True) == "ignored"

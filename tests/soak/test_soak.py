"""The soak (soak/, `make soak`) in small: a short run proves the whole chain works and
finds nothing wrong, and doctored records prove the checker would find something.

The full soak (thousands of connections, minutes) is `make soak`, not part of the suite.
Nothing here asserts on time: the run is bounded by its duration and its safety limits.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from soak import check, memory
from soak.run import Soak, build_parser

# -- the checker on records made by hand ------------------------------------------------

# Users 1 and 2 are friends; group 7 has members 1, 2, 3. User 1 has two devices.
MEMBERS = {7: [1, 2, 3]}
ROWS: list[check.Row] = [
    (1, 1, "u1d0-0", 10, 2),  # 1:1 from user 1's device 0 to user 2
    (2, 2, "u2d0-0", 11, 7),  # group message from user 2
    (3, 3, "u3d0-0", 11, 7),  # group message from user 3
]


def device(key: str, user: int, acked: dict[str, int],
           sessions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"key": key, "user": user, "prefix": f"{key}-", "acked": acked, "unacked": [],
            "ack_conflicts": [], "sessions": sessions}


def good_devices() -> list[dict[str, Any]]:
    return [
        # Sent id 1 (acked), got 2 live, dropped, got 3 by sync after reconnecting.
        device("u1d0", 1, {"u1d0-0": 1}, [
            {"live": [2], "syncs": [{"since": 0, "rows": [], "next": 0}]},
            {"live": [], "syncs": [{"since": 2, "rows": [3], "next": 3}]}]),
        # User 1's other device gets its own user's message 1 too.
        device("u1d1", 1, {}, [{"live": [1, 2, 3], "syncs": []}]),
        device("u2d0", 2, {"u2d0-0": 2}, [
            {"live": [], "syncs": [{"since": 0, "rows": [1, 3], "next": 3}]}]),
        device("u3d0", 3, {"u3d0-0": 3}, [{"live": [2], "syncs": []}]),
    ]


def test_the_checker_passes_a_clean_record() -> None:
    verdict = check.check(ROWS, MEMBERS, good_devices())
    assert verdict.ok, verdict.as_dict()
    assert verdict.stats["expected_deliveries"] == 8
    assert verdict.stats["delivered_live"] + verdict.stats["delivered_by_sync"] == 8


def doctored(change: Any) -> check.Verdict:
    devices = good_devices()
    change(devices)
    return check.check(ROWS, MEMBERS, devices)


def test_the_checker_catches_a_missing_delivery() -> None:
    verdict = doctored(lambda d: d[3]["sessions"][0]["live"].clear())
    assert verdict.violations == {"missing": 1}
    assert "u3d0" in verdict.examples["missing"][0]


def test_the_checker_catches_a_message_delivered_twice() -> None:
    verdict = doctored(lambda d: d[1]["sessions"][0]["live"].append(3))
    assert verdict.violations["delivered_twice_on_one_connection"] == 1
    # Again on a later connection, live (no sync asked for it): also a duplicate.
    verdict = doctored(lambda d: d[1]["sessions"].append({"live": [3], "syncs": []}))
    assert verdict.violations == {"delivered_twice": 1}


def test_a_sync_may_resend_what_an_interrupted_sync_left_above_the_cursor() -> None:
    def resync(devices: list[dict[str, Any]]) -> None:
        # The device got 3 live during a sync that never finished; its cursor stayed at
        # 2, so the next connection's sync brings 3 again: the client asked for it.
        devices[0]["sessions"][1]["syncs"][0]["since"] = 2
        devices[0]["sessions"][0]["live"].append(3)

    verdict = doctored(resync)
    assert verdict.ok, verdict.as_dict()
    assert verdict.stats["resent_when_asked"] == 1


def test_the_checker_catches_disorder_and_strangers() -> None:
    verdict = doctored(lambda d: d[1]["sessions"][0]["live"].reverse())
    assert verdict.violations["live_out_of_order"] == 2
    verdict = doctored(lambda d: d[3]["sessions"][0]["live"].insert(0, 1))
    assert verdict.violations == {"received_by_non_recipient": 1}  # 1:1 of users 1 and 2


def test_across_nodes_only_each_sender_s_messages_must_keep_their_order() -> None:
    """Two nodes' messages race through Redis (docs/scaling.md): in a cluster, ids from
    different senders may arrive crossed, but one sender's never."""
    rows = [*ROWS, (4, 2, "u2d0-1", 11, 7)]
    devices = good_devices()
    devices[0]["sessions"][0]["live"] = [3, 2, 4]  # 3 (user 3) before 2 (user 2): crossed
    devices[0]["sessions"][1]["syncs"][0]["rows"] = []
    devices[1]["sessions"][0]["live"] = [1, 3, 2, 4]
    devices[2]["sessions"][0]["syncs"][0]["rows"] = [1, 3]
    devices[3]["sessions"][0]["live"] = [2, 4]
    devices[2]["acked"]["u2d0-1"] = 4
    assert check.check(rows, MEMBERS, devices, check.PER_SENDER).ok
    assert check.check(rows, MEMBERS, devices).violations["live_out_of_order"] == 2
    devices[0]["sessions"][0]["live"] = [3, 4, 2]  # user 2's 4 before their 2: wrong
    verdict = check.check(rows, MEMBERS, devices, check.PER_SENDER)
    assert verdict.violations == {"live_out_of_order": 1}


def test_the_checker_catches_storage_and_ack_faults() -> None:
    twice = [*ROWS, (4, 2, "u2d0-0", 11, 7)]
    verdict = check.check(twice, MEMBERS, good_devices())
    assert verdict.violations["stored_twice"] == 1
    assert verdict.violations["stored_not_acked"] == 1  # acked as 2, and 4 never
    devices = good_devices()
    devices[2]["acked"]["u2d0-1"] = 99
    devices[3]["unacked"] = ["u3d0-1"]
    verdict = check.check(ROWS, MEMBERS, devices)
    assert verdict.violations == {"acked_not_stored": 1, "never_acked": 1}


def test_rss_slope() -> None:
    flat = [(float(t), 100_000 + (t % 3)) for t in range(0, 120, 2)]
    assert abs(memory.slope_mib_per_min(flat)) < 0.01
    growing = [(float(t), 100_000 + 1024 * t // 60) for t in range(0, 120, 2)]
    assert memory.slope_mib_per_min(growing) == pytest.approx(1.0, abs=0.02)


def test_bounded_growth_apart_is_not_judged_a_leak() -> None:
    """SQLite's page caches filling toward their ceiling are taken out before the slope
    is judged; what grows besides them still shows."""
    caches = [(float(t), 4096 + 2048 * t // 60) for t in range(0, 240, 10)]  # +2 MiB/min
    rss = [(float(t) + 1, 100_000 + 2048 * t // 60) for t in range(0, 240, 2)]
    judged = memory.less(rss, caches)
    assert memory.slope_mib_per_min(rss) == pytest.approx(2.0, abs=0.05)
    assert abs(memory.slope_mib_per_min(judged)) < 0.2
    leak = [(t, kib + 1024 * int(t) // 60) for t, kib in rss]  # and 1 MiB/min more
    assert memory.slope_mib_per_min(memory.less(leak, caches)) == pytest.approx(1.0, abs=0.2)
    summary = memory.summary(rss, 0.0, 60.0, 240.0, judged=judged)
    assert summary["rss_steady_slope_mib_per_min"] == pytest.approx(2.0, abs=0.05)
    assert all(abs(x) < 0.3 for x in summary["half_slopes_mib_per_min"])  # type: ignore[attr-defined]


# -- a short real soak ------------------------------------------------------------------

def short_soak(*extra: str) -> tuple[dict[str, Any], Soak]:
    args = build_parser().parse_args([
        "--duration", "6", "--connections", "60", "--groups", "6", "--group-size", "6",
        "--rate", "40", "--disconnect", "0.05", "--quiet",
        # more changes than the big soak's defaults, so a few seconds make enough
        "--edit-every", "3", "--recall-every", "7", "--react-chance", "0.01",
        "--delete-chance", "0.005", *extra])
    soak = Soak(args)
    return soak.run(), soak


def test_a_short_soak_on_sqlite_loses_nothing() -> None:
    # On a store that already holds a (small) year of history (--history, bench/seed.py):
    # the check judges only the soak's own messages.
    report, soak = short_soak("--history", "3000")
    assert report["violations"] == {}, report["examples"]
    assert report["sent"] > 0
    assert report["stored"] == report["acked"] == report["sent"]
    assert report["edits_acked"] == report["edits_logged"] > 0
    # Recalls (every seventh message) and reactions (1 in 100 deliveries) were made, and
    # every change reached every device of every reader once (no violation above).
    assert report["recalls_acked"] > 0 and report["reactions_acked"] > 0
    assert report["changes_logged"] == (report["edits_acked"] + report["recalls_acked"]
                                        + report["reactions_acked"] + report["deletes_acked"])
    assert report["changes_live"] + report["changes_by_sync"] \
        == report["change_deliveries_expected"] > 0
    assert report["reconnects"] > 0
    # (a message its user deleted for themselves is owed to none of their devices; those
    # that got it before are counted apart)
    assert report["delivered_live"] + report["delivered_by_sync"] \
        == report["deliveries_expected"] + report["delivered_then_deleted"]
    # The watcher inside the server saw SQLite's memory, under its ceiling.
    assert 0 < report["rss"]["sqlite_peak_mib"] <= report["rss"]["sqlite_ceiling_mib"]

    # The same real records, doctored: the checker must see each fault.
    assert soak.facts is not None
    # (a message deleted for its reader before one of their devices got it is owed to that
    # device no more: the check needs the deletes, as the soak's own check had them)
    rows, members, devices, hidden = soak.facts
    assert check.check(rows, members, devices, hidden=hidden).ok
    # (a session whose last live message is still owed to it: not one deleted for its
    # user, nor one its device was sent again by a later sync: it asked again)
    def received(device: dict[str, Any]) -> list[int]:
        return [i for s in device["sessions"]
                for i in s["live"] + [r for p in s["syncs"] for r in p["rows"]]]

    receiver, session = next((d, s) for d in devices for s in d["sessions"]
                             if s["live"] and (d["user"], s["live"][-1]) not in hidden
                             and received(d).count(s["live"][-1]) == 1)
    lost = copy.deepcopy(devices)
    lost[devices.index(receiver)]["sessions"][receiver["sessions"].index(session)]["live"].pop()
    assert check.check(rows, members, lost, hidden=hidden).violations["missing"] == 1
    doubled = copy.deepcopy(devices)
    twice = doubled[devices.index(receiver)]["sessions"][receiver["sessions"].index(session)]
    twice["live"].append(twice["live"][-1])
    verdict = check.check(rows, members, doubled, hidden=hidden)
    assert verdict.violations["delivered_twice_on_one_connection"] == 1


def test_the_checker_catches_an_edit_applied_twice_or_not_at_all() -> None:
    devices = good_devices()
    devices[0]["edits"] = {"u1d0-e0": (1, "fixed")}
    devices[0]["edits_acked"] = {"u1d0-e0": 5}
    devices[0]["sessions"][0]["changes"] = [5]
    log: list[check.ChangeRow] = [(5, 1, "u1d0-e0", 1, 60)]
    assert check.check_edits(check.Verdict(), log, {1: "fixed"}, devices).ok
    stale = check.check_edits(check.Verdict(), log, {1: "old text"}, devices)
    assert stale.violations["edit_not_applied"] == 1
    lost = check.check_edits(check.Verdict(), [], {1: "fixed"}, devices)
    assert lost.violations["edit_not_logged_once"] == 1
    devices[0]["sessions"][0]["changes"] = [5, 5]
    twice = check.check_edits(check.Verdict(), log, {1: "fixed"}, devices)
    assert twice.violations["change_twice_on_one_connection"] == 1


def test_a_short_soak_on_mariadb_loses_nothing(mysql_addr: tuple[str, int]) -> None:
    host, port = mysql_addr
    report, _ = short_soak("--db", f"mysql://root@{host}:{port}/test")
    assert report["violations"] == {}, report["examples"]
    assert report["stored"] == report["acked"] == report["sent"] > 0
    assert report["recalls_acked"] > 0
    assert report["changes_live"] + report["changes_by_sync"] \
        == report["change_deliveries_expected"] > 0


# -- the checker of recalls, reactions and deletes, on records made by hand -----------

# Change 5: user 2 reacts 👍 to group message 3; change 6: user 3 recalls message 3
# (reactions go with it); change 7: user 1 deletes message 2 for themselves.
CHANGE_LOG: list[tuple[int, int, str | None, int, int, int | None]] = [
    (5, 2, "u2d0-r3", 3, 62, None), (6, 3, "u3d0-c0", 3, 61, None),
    (7, 1, "u1d0-x2", 2, 63, 1)]


def change_facts(**changes: Any) -> check.ChangeFacts:
    facts = check.ChangeFacts(log=list(CHANGE_LOG), contents={3: "", 2: "hi"},
                              recalled={3}, reactions={(3, "👍", 2)}, hidden={(1, 2)})
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def changing_devices() -> list[dict[str, Any]]:
    """Every device of every reader gets each change once: 5 and 6 go to the group's
    members (users 1, 2, 3; user 1 on both devices), 7 to user 1's two devices only."""
    devices = good_devices()
    by_key = {d["key"]: d for d in devices}
    by_key["u2d0"]["actions"] = {"u2d0-r3": [62, 3, "👍"]}
    by_key["u2d0"]["actions_acked"] = {"u2d0-r3": [5, 100.0]}
    by_key["u3d0"]["actions"] = {"u3d0-c0": [61, 3, ""]}
    by_key["u3d0"]["actions_acked"] = {"u3d0-c0": [6, 200.0]}
    by_key["u1d0"]["actions"] = {"u1d0-x2": [63, 2, ""]}
    by_key["u1d0"]["actions_acked"] = {"u1d0-x2": [7, 300.0]}
    by_key["u1d0"]["sessions"][0]["changes"] = [5, 6]
    # u1d0 came back after the delete: its sync asked at 400 brings change 7.
    by_key["u1d0"]["sessions"][1]["syncs"][0].update(
        asked=400.0, recalled=[3], changes_since=6, changes=[7], change_text=[])
    by_key["u1d1"]["sessions"][0]["changes"] = [5, 6, 7]
    by_key["u2d0"]["sessions"][0]["changes"] = [5, 6]
    by_key["u3d0"]["sessions"][0]["changes"] = [5, 6]
    return devices


def changes_verdict(devices: list[dict[str, Any]], **facts: Any) -> check.Verdict:
    return check.check_changes(check.Verdict(), change_facts(**facts), ROWS, MEMBERS,
                               devices)


def test_the_change_checker_passes_a_clean_record() -> None:
    verdict = changes_verdict(changing_devices())
    assert verdict.ok, verdict.as_dict()
    assert verdict.stats["changes_expected"] == 2 * 4 + 2
    # A device that syncs from nothing (since 0, changes_since 0) gets every message as
    # it is now: the changes before that page's changes_next are not owed to it.
    devices = changing_devices()
    fresh = next(d for d in devices if d["key"] == "u3d0")["sessions"][0]
    fresh["changes"] = []
    fresh["syncs"] = [{"since": 0, "rows": [2], "next": 2, "changes_since": 0,
                       "changes": [], "changes_next": 6}]
    assert changes_verdict(devices).ok
    fresh["syncs"][0]["changes_next"] = 5
    assert changes_verdict(devices).violations == {"change_missing": 1}


def test_the_change_checker_catches_each_fault() -> None:
    def doctored_changes(change: Any, **facts: Any) -> check.Verdict:
        devices = changing_devices()
        change({d["key"]: d for d in devices})
        return changes_verdict(devices, **facts)

    # a reader's device that never got a change, or got it twice across connections
    missing = doctored_changes(lambda d: d["u3d0"]["sessions"][0]["changes"].pop())
    assert missing.violations == {"change_missing": 1}
    again = doctored_changes(lambda d: d["u1d0"]["sessions"][1].update(changes=[5]))
    assert again.violations["change_delivered_twice"] == 1
    # a delete reaching another user's device
    leaked = doctored_changes(lambda d: d["u2d0"]["sessions"][0]["changes"].append(7))
    assert leaked.violations == {"change_to_non_reader": 1}
    # acked but not applied, or applied twice
    assert changes_verdict(changing_devices(), recalled=set()).violations == {
        "recall_not_applied": 1}
    assert changes_verdict(changing_devices(), contents={3: "still here", 2: "hi"}
                           ).violations == {"recall_not_applied": 1}
    assert changes_verdict(changing_devices(), reactions=set()).violations == {
        "reaction_not_applied": 1}
    assert changes_verdict(changing_devices(), hidden=set()).violations == {
        "delete_not_applied": 1}
    twice = [*CHANGE_LOG, (8, 2, "u2d0-r3", 3, 62, None)]
    verdict = changes_verdict(changing_devices(), log=twice)
    assert verdict.violations["change_not_logged_once"] == 1
    # a sync asked after the recall that still shows the text, in a row or a change
    def shown(d: dict[str, Any]) -> None:
        d["u1d0"]["sessions"][1]["syncs"][0].update(rows=[3], recalled=[])
    assert doctored_changes(shown).violations["recalled_text_after_recall"] == 1
    # a sync after the delete that still returns the deleted message to its user
    def returned(d: dict[str, Any]) -> None:
        d["u1d0"]["sessions"][1]["syncs"][0]["rows"].append(2)
    assert doctored_changes(returned).violations["deleted_message_synced"] == 1


def test_a_message_deleted_for_a_user_is_owed_to_that_user_only() -> None:
    devices = good_devices()
    for session in devices[1]["sessions"]:  # u1d1 never got message 2
        session["live"] = [i for i in session["live"] if i != 2]
    assert check.check(ROWS, MEMBERS, devices).violations["missing"] == 1
    assert check.check(ROWS, MEMBERS, devices, hidden={(1, 2)}).ok
    assert check.check(ROWS, MEMBERS, devices, hidden={(2, 2)}).violations["missing"] == 1

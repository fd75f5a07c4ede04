"""The soak's verdict: what the clients recorded against what the database holds.

Pure functions over plain data, so a test can hand them a doctored record and see the
violation reported (tests/soak/test_soak.py).

What the clients record, per device (one device = one user's login, reconnecting many
times; see soak/worker.py):

- ``acked``: every ack it received, cid -> server id; ``unacked``: cids it sent and never
  saw acked; ``ack_conflicts``: a cid acked twice with two different ids;
- ``sessions``: one entry per WebSocket connection, in order: the ids it received live
  (``live``, in arrival order) and the sync pages it received (``syncs``: ``since``, the
  ``rows``' ids in order, ``next``).

The rules (docs/chat-protocol.md):

1. every acked message is stored once: one row per (sender, cid), with the acked id;
2. every stored message was acked to its sender (a message the server stored but never
   acked would be resent by no one and is a lost ack);
3. every device of every recipient (the other side of a 1:1 chat, every member of the
   group, the sender's other devices) received each message: live or by sync;
4. once: never twice on one connection, and never again later unless the client asked
   for it again (a sync page may re-send an id above the page's ``since``: the client's
   cursor moves only with sync pages, so after a reconnect it asks again for what came
   live before; asking again is the client's choice, and it deduplicates by id);
5. in order: on one connection the live ids grow, and the rows of each sync page grow and
   are all above the page's ``since``. Across several nodes (`check(...,
   live_order=PER_SENDER)`) live ids grow per sending device only: two nodes' messages
   race through Redis (docs/scaling.md, "What is not guaranteed (yet)");
6. nobody receives a message of a conversation they are not in.

And for the changes the devices make (docs/chat-protocol.md, "Changing a message"):
edits of their own messages (cmd 60, `check_edits`), recalls of their own (61),
reactions (62) and deletes for their user (63) (`check_changes`):

7. every acked change is applied once: one row of the change log (`message_changes`)
   for its (user, cid), with the change id that was acked, and the message shows it (the
   edited text; a recall's erased text; the reaction; the delete in `message_hidden`);
   every logged change of a soak device was acked to it;
8. no connection is sent one change twice;
9. every change reaches every device of every reader exactly once, live or by sync:
   the readers are those of its message (both sides of a 1:1 chat, the group's members),
   for a delete only its user (all of that user's devices, and nobody else); a change is
   re-sent only in a sync page above that page's ``changes_since``, as for messages.
   A device that syncs from nothing (``since`` and ``changes_since`` 0: it holds no
   message) gets every message as it is now, so the changes up to that page's
   ``changes_next`` are not owed to it;
10. a recalled message's text never shows again: no sync asked for after the recall was
    acked returns the message, or a change of it, with text;
11. a message deleted for a user is in no sync of that user's devices asked for after
    the delete was acked, and their devices need not receive it at all (`check`'s
    `hidden`); every other reader still gets it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: One stored message as the checker needs it: (id, sender, cid, cmd, dstid).
Row = tuple[int, int, str | None, int, int]
#: One row of the change log: (change id, actor, cid, message id, kind).
ChangeRow = tuple[int, int, str | None, int, int]
#: The kinds of change (the wire commands).
EDIT, RECALL, REACT, DELETE = 60, 61, 62, 63

SINGLE, GROUP = 10, 11
#: What "in order" means for live frames: all of one connection's (one node), or those
#: of each sending device (a cluster).
ALL, PER_SENDER = "all", "per-sender"
EXAMPLES_PER_KIND = 5


@dataclass
class Verdict:
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)

    def violate(self, kind: str, example: str) -> None:
        self.violations[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append(example)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"violations": dict(self.violations), "examples": self.examples,
                "stats": dict(self.stats)}


def _recipients(rows: Iterable[Row], members: Mapping[int, Iterable[int]]
                ) -> dict[int, list[int]]:
    """user -> the ids of the messages that user may see, in id order."""
    by_user: dict[int, list[int]] = defaultdict(list)
    member_lists = {group: list(users) for group, users in members.items()}
    for id_, sender, _cid, cmd, dstid in sorted(rows):
        if cmd == SINGLE:
            by_user[sender].append(id_)
            if dstid != sender:
                by_user[dstid].append(id_)
        elif cmd == GROUP:
            for user in member_lists.get(dstid, ()):
                by_user[user].append(id_)
    return by_user


def check(rows: Sequence[Row], members: Mapping[int, Iterable[int]],
          devices: Sequence[Mapping[str, Any]], live_order: str = ALL,
          hidden: Collection[tuple[int, int]] = ()) -> Verdict:
    """Check the devices' records against the stored `rows` and the groups' `members`;
    `live_order` is ALL for one server, PER_SENDER for several nodes; `hidden`: the
    (user, message id) pairs deleted for a user, which that user's devices need not get."""
    verdict = Verdict()
    by_id = {row[0]: row for row in rows}
    verdict.stats["stored"] = len(rows)

    # 1. stored once, with the id that was acked.
    by_key: dict[tuple[int, str], list[int]] = defaultdict(list)
    for id_, sender, cid, _cmd, _dstid in rows:
        if cid is None:
            verdict.violate("stored_without_cid", f"message {id_} from user {sender}")
            continue
        by_key[(sender, cid)].append(id_)
    for (sender, cid), ids in by_key.items():
        if len(ids) > 1:
            verdict.violate("stored_twice", f"user {sender} cid {cid}: ids {sorted(ids)}")

    owner_of_prefix = {}
    for device in devices:
        owner_of_prefix[device["prefix"]] = device
        verdict.stats["acked"] += len(device["acked"])
        for cid in device["unacked"]:
            verdict.violate("never_acked", f"device {device['key']} cid {cid}")
        for cid, first, second in device.get("ack_conflicts", ()):
            verdict.violate("acked_with_two_ids", f"{device['key']} cid {cid}: {first}, {second}")
        for cid, id_ in device["acked"].items():
            row = by_id.get(id_)
            if row is None:
                verdict.violate("acked_not_stored", f"{device['key']} cid {cid} id {id_}")
            elif (row[1], row[2]) != (device["user"], cid):
                verdict.violate("acked_wrong_row",
                                f"{device['key']} cid {cid} acked as {id_}, which is "
                                f"user {row[1]} cid {row[2]}")

    # 2. every stored message was acked to the device that sent it.
    for id_, sender, cid, _cmd, _dstid in rows:
        if cid is None:
            continue
        prefix = cid.rsplit("-", 1)[0] + "-"
        device = owner_of_prefix.get(prefix)
        if device is None or device["user"] != sender:
            verdict.violate("stored_by_no_device", f"message {id_}: user {sender} cid {cid}")
        elif device["acked"].get(cid) != id_:
            verdict.violate("stored_not_acked", f"message {id_}: {device['key']} cid {cid}")

    # 3-6. deliveries, per device.
    visible = _recipients(rows, members)
    hidden = set(hidden)
    for device in devices:
        user = device["user"]
        _check_device(device, visible.get(user, []), by_id, verdict, live_order,
                      {m for u, m in hidden if u == user})
    return verdict


def _own(device: Mapping[str, Any], row: Row) -> bool:
    """Sent by this very device: it gets the ack, not a copy."""
    cid = row[2]
    return row[1] == device["user"] and cid is not None and cid.startswith(device["prefix"])


class _DeviceCheck:
    """Walks one device's connections in order, counting what it received how."""

    def __init__(self, device: Mapping[str, Any], visible: Sequence[int],
                 by_id: Mapping[int, Row], verdict: Verdict, live_order: str = ALL) -> None:
        self.device = device
        self.live_order = live_order
        self.key = device["key"]
        self.visible = set(visible)
        self.by_id = by_id
        self.verdict = verdict
        self.seen: set[int] = set()  # on any connection so far
        self.on_this_connection: set[int] = set()
        self.number = 0

    def receive(self, id_: int, road: str, since: int | None) -> None:
        verdict, key, number = self.verdict, self.key, self.number
        row = self.by_id.get(id_)
        if row is None:
            verdict.violate("received_not_stored", f"{key} got id {id_} ({road})")
            return
        if id_ not in self.visible:
            verdict.violate("received_by_non_recipient", f"{key} got id {id_} ({road})")
            return
        if _own(self.device, row):
            verdict.stats["own_messages_echoed"] += 1
            return
        if id_ in self.on_this_connection:
            verdict.violate("delivered_twice_on_one_connection",
                            f"{key} session {number}: id {id_} again ({road})")
            return
        self.on_this_connection.add(id_)
        if id_ in self.seen:
            if road == "sync" and since is not None and id_ > since:
                verdict.stats["resent_when_asked"] += 1
            else:
                verdict.violate("delivered_twice", f"{key} session {number}: id {id_} "
                                                   f"again ({road}, since={since})")
            return
        self.seen.add(id_)
        verdict.stats["delivered_live" if road == "live" else "delivered_by_sync"] += 1

    def _streams(self, live: Sequence[int]) -> list[Sequence[int]]:
        """The sequences whose ids must grow: the whole connection, or per sender."""
        if self.live_order == ALL:
            return [live]
        by_sender: dict[str, list[int]] = defaultdict(list)
        for id_ in live:
            row = self.by_id.get(id_)
            cid = row[2] if row is not None else None
            by_sender[cid.rsplit("-", 1)[0] if cid else ""].append(id_)
        return list(by_sender.values())

    def session(self, session: Mapping[str, Any]) -> None:
        verdict, key, number = self.verdict, self.key, self.number
        self.on_this_connection = set()
        live = session["live"]
        for stream in self._streams(live):
            for before, after in zip(stream, stream[1:], strict=False):
                if after <= before:
                    verdict.violate("live_out_of_order",
                                    f"{key} session {number}: {after} after {before}")
        for id_ in live:
            self.receive(id_, "live", None)
        for page in session["syncs"]:
            since, page_rows = page["since"], page["rows"]
            for before, after in zip(page_rows, page_rows[1:], strict=False):
                if after <= before:
                    verdict.violate("sync_out_of_order",
                                    f"{key} session {number}: {after} after {before}")
            for id_ in page_rows:
                if id_ <= since:
                    verdict.violate("sync_row_not_after_since",
                                    f"{key} session {number}: id {id_} since {since}")
                self.receive(id_, "sync", since)
        self.number += 1


def _check_device(device: Mapping[str, Any], visible: Sequence[int],
                  by_id: Mapping[int, Row], verdict: Verdict, live_order: str = ALL,
                  hidden: Collection[int] = ()) -> None:
    walk = _DeviceCheck(device, visible, by_id, verdict, live_order)
    for session in device["sessions"]:
        walk.session(session)
    expected = {id_ for id_ in visible if not _own(device, by_id[id_]) and id_ not in hidden}
    # Received before its user deleted it: counted apart from the deliveries owed.
    verdict.stats["delivered_then_deleted"] += len(walk.seen & set(hidden))
    missing = expected - walk.seen
    verdict.stats["expected_deliveries"] += len(expected)
    for id_ in sorted(missing)[:EXAMPLES_PER_KIND]:
        row = by_id[id_]
        verdict.violate("missing", f"{device['key']} (user {device['user']}) never got id "
                                   f"{id_} (cmd {row[3]} from user {row[1]} to {row[4]})")
    if len(missing) > EXAMPLES_PER_KIND:
        verdict.violations["missing"] += len(missing) - EXAMPLES_PER_KIND


def check_edits(verdict: Verdict, changes: Sequence[ChangeRow], contents: Mapping[int, str],
                devices: Sequence[Mapping[str, Any]]) -> Verdict:
    """Rules 7 and 8 against the change log (`changes`) and the edited messages' stored
    text (`contents`, message id -> content); adds to `verdict`."""
    logged: dict[tuple[int, str], list[int]] = defaultdict(list)
    for change, actor, cid, _message, kind in changes:
        if kind == 60 and cid is not None:
            logged[(actor, cid)].append(change)
    verdict.stats["edits_logged"] = sum(len(v) for v in logged.values())
    for device in devices:
        edits = device.get("edits", {})
        acked = device.get("edits_acked", {})
        verdict.stats["edits_acked"] += len(acked)
        for cid, change in acked.items():
            found = logged.get((device["user"], cid), [])
            message_id, content = edits.get(cid, (None, None))
            if found != [change]:
                verdict.violate("edit_not_logged_once",
                                f"{device['key']} edit {cid} acked as change {change}, "
                                f"logged as {found}")
            elif message_id is not None and contents.get(message_id) != content:
                verdict.violate("edit_not_applied",
                                f"{device['key']} edit {cid} of message {message_id}")
        for (actor, cid), found in logged.items():
            if actor == device["user"] and cid.startswith(device["prefix"]) \
                    and cid not in acked and cid not in device["unacked"]:
                verdict.violate("edit_not_acked", f"{device['key']} edit {cid}: {found}")
        for session in device["sessions"]:
            seen = session.get("changes", [])
            for change, times in Counter(seen).items():
                if times > 1:
                    verdict.violate("change_twice_on_one_connection",
                                    f"{device['key']} change {change} x{times}")
    return verdict


@dataclass
class ChangeFacts:
    """What the database holds of the changes, read with its own driver (soak/run.py)."""

    log: list[tuple[int, int, str | None, int, int, int | None]]  # + only_user
    contents: dict[int, str]  # message id -> its text now, for changed messages
    recalled: set[int]  # message ids recalled
    reactions: set[tuple[int, str, int]]  # (message id, emoji, user)
    hidden: set[tuple[int, int]]  # (user, message id) deleted for that user


def check_changes(verdict: Verdict, facts: ChangeFacts, rows: Sequence[Row],
                  members: Mapping[int, Iterable[int]],
                  devices: Sequence[Mapping[str, Any]]) -> Verdict:
    """Rules 7 to 11 for recalls, reactions and deletes, and rule 9 (every change on
    every device of every reader, once) and 10 for every change, edits included; adds to
    `verdict`. (`check_edits` does rule 7 for the edits.)"""
    logged: dict[tuple[int, str], list[int]] = defaultdict(list)
    by_change = {entry[0]: entry for entry in facts.log}
    for change, actor, cid, _message, _kind, _only in facts.log:
        if cid is not None:
            logged[(actor, cid)].append(change)
    by_id = {row[0]: row for row in rows}
    member_sets = {group: set(users) for group, users in members.items()}
    recall_acked: dict[int, float] = {}  # message id -> when its recall was acked
    delete_acked: dict[tuple[int, int], float] = {}  # (user, message id) -> when
    applied = {RECALL: "recall_not_applied", REACT: "reaction_not_applied",
               DELETE: "delete_not_applied"}
    for device in devices:
        user, key = device["user"], device["key"]
        actions = device.get("actions", {})
        acked = device.get("actions_acked", {})
        for cid, (change, at) in acked.items():
            kind, message, emoji = actions.get(cid, (None, None, ""))
            verdict.stats[f"changes_acked:{kind}"] += 1
            found = logged.get((user, cid), [])
            if change is None or found != [change]:
                verdict.violate("change_not_logged_once",
                                f"{key} {cid} acked as change {change}, logged as {found}")
                continue
            if kind == RECALL:
                recall_acked[message] = min(at, recall_acked.get(message, at))
                done = message in facts.recalled and facts.contents.get(message) == ""
            elif kind == REACT:
                done = (message, emoji, user) in facts.reactions
            else:
                delete_acked[(user, message)] = at
                done = (user, message) in facts.hidden
            if not done:
                verdict.violate(applied.get(kind, "change_not_applied"),
                                f"{key} {cid} of message {message}")
        for (actor, cid), found in logged.items():
            if actor == user and cid.startswith(device["prefix"]) and cid not in acked \
                    and cid not in device.get("edits", {}) and cid not in device["unacked"]:
                verdict.violate("change_not_acked", f"{key} {cid}: {found}")

    def readers(change: int) -> set[int]:
        _id, _actor, _cid, message, kind, only_user = by_change[change]
        if kind == DELETE:
            return {only_user} if only_user is not None else set()
        row = by_id.get(message)
        if row is None:
            return set()
        _mid, sender, _mcid, cmd, dstid = row
        return {sender, dstid} if cmd == SINGLE else member_sets.get(dstid, set())

    reader_sets = {change: readers(change) for change in by_change}
    verdict.stats["changes_logged"] = len(by_change)
    for device in devices:
        _check_device_changes(device, reader_sets, by_change, recall_acked, delete_acked,
                              verdict)
    return verdict


def _check_device_changes(device: Mapping[str, Any], reader_sets: Mapping[int, set[int]],
                          by_change: Mapping[int, tuple[Any, ...]],
                          recall_acked: Mapping[int, float],
                          delete_acked: Mapping[tuple[int, int], float],
                          verdict: Verdict) -> None:
    user, key = device["user"], device["key"]
    seen: set[int] = set()
    # A sync from nothing (since 0, changes_since 0: a device that holds no message, as
    # after a first connect that got none) returns every message as it is now and
    # starts the change log at its newest change: the changes up to there are not owed
    # (the last such page counts: a device whose cursors are still 0 at a checkpoint
    # syncs from nothing again).
    baseline = max((page.get("changes_next", 0) for session in device["sessions"]
                    for page in session["syncs"]
                    if page["since"] == 0 and page.get("changes_since") == 0), default=0)
    for number, session in enumerate(device["sessions"]):
        here: set[int] = set()
        received = [(c, "live", None) for c in session.get("changes", [])]
        for page in session["syncs"]:
            received += [(c, "sync", page.get("changes_since")) for c in page.get("changes", [])]
            asked = page.get("asked", 0.0)
            # 10 and 11: what a sync asked for after a recall or a delete returns.
            shown_recalled = set(page.get("recalled", []))
            for id_ in page["rows"]:
                if id_ in recall_acked and asked > recall_acked[id_] \
                        and id_ not in shown_recalled:
                    verdict.violate("recalled_text_after_recall",
                                    f"{key} session {number}: message {id_} with its text")
                if (user, id_) in delete_acked and asked > delete_acked[(user, id_)]:
                    verdict.violate("deleted_message_synced",
                                    f"{key} session {number}: message {id_}")
            for change in page.get("change_text", []):
                message = by_change[change][3] if change in by_change else None
                if message in recall_acked and asked > recall_acked[message]:
                    verdict.violate("recalled_text_after_recall",
                                    f"{key} session {number}: change {change} of message "
                                    f"{message} with its text")
        for change, road, since in received:
            if change not in by_change:
                verdict.violate("change_received_not_logged", f"{key} change {change}")
                continue
            if user not in reader_sets[change]:
                verdict.violate("change_to_non_reader", f"{key} (user {user}) got change "
                                                        f"{change} ({road})")
                continue
            if change in here:
                verdict.violate("change_twice_on_one_connection",
                                f"{key} session {number}: change {change} again ({road})")
                continue
            here.add(change)
            if change in seen:
                if road == "sync" and since is not None and change > since:
                    verdict.stats["changes_resent_when_asked"] += 1
                else:
                    verdict.violate("change_delivered_twice",
                                    f"{key} session {number}: change {change} again "
                                    f"({road}, changes_since={since})")
                continue
            seen.add(change)
            verdict.stats["changes_live" if road == "live" else "changes_by_sync"] += 1
    # Those up to the baseline that it got anyway (live, before a checkpoint that synced
    # from nothing again: its cursors were still 0) count as delivered, not as owed.
    expected = {change for change, users in reader_sets.items()
                if user in users and (change > baseline or change in seen)}
    verdict.stats["changes_expected"] += len(expected)
    missing = sorted(expected - seen)
    for change in missing[:EXAMPLES_PER_KIND]:
        _id, actor, cid, message, kind, _only = by_change[change]
        verdict.violate("change_missing", f"{key} (user {user}) never got change {change} "
                                          f"(cmd {kind} of message {message} by {actor})")
    if len(missing) > EXAMPLES_PER_KIND:
        verdict.violations["change_missing"] += len(missing) - EXAMPLES_PER_KIND

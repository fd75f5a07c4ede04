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
   for it again (a sync page re-sends an id above the page's ``since`` when the earlier
   connection ended before its own sync was done: the client's cursor could not move past
   it, so asking again is the client's choice, and it deduplicates by id);
5. in order: on one connection the live ids grow, and the rows of each sync page grow and
   are all above the page's ``since``. Across several nodes (`check(...,
   live_order=PER_SENDER)`) live ids grow per sending device only: two nodes' messages
   race through Redis (docs/scaling.md, "What is not guaranteed (yet)");
6. nobody receives a message of a conversation they are not in.

And for the edits the devices make of their own messages (cmd 60, `check_edits`):

7. every acked edit is applied once: one row of the change log (`message_changes`) for
   its (user, cid), with the change id that was acked, and the message holds its text;
   every logged edit of a soak device was acked to it;
8. no connection is sent one change twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: One stored message as the checker needs it: (id, sender, cid, cmd, dstid).
Row = tuple[int, int, str | None, int, int]
#: One row of the change log: (change id, actor, cid, message id, kind).
ChangeRow = tuple[int, int, str | None, int, int]

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
          devices: Sequence[Mapping[str, Any]], live_order: str = ALL) -> Verdict:
    """Check the devices' records against the stored `rows` and the groups' `members`;
    `live_order` is ALL for one server, PER_SENDER for several nodes."""
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
    for device in devices:
        _check_device(device, visible.get(device["user"], []), by_id, verdict, live_order)
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
                verdict.stats["resent_after_interrupted_sync"] += 1
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
                  by_id: Mapping[int, Row], verdict: Verdict, live_order: str = ALL) -> None:
    walk = _DeviceCheck(device, visible, by_id, verdict, live_order)
    for session in device["sessions"]:
        walk.session(session)
    expected = {id_ for id_ in visible if not _own(device, by_id[id_])}
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

"""The soak's client device (soak/worker.py) keeps its sync cursor as the web client does:
it moves only with sync pages, and a checkpoint sync asks again for what came live
(docs/chat-protocol.md, "The sync cursor")."""

from __future__ import annotations

import collections
import json
import random
from types import SimpleNamespace
from typing import Any

from soak.worker import CHECKPOINT_EVERY, RATES, Device


class Wire:
    """Stands in for the device's WebSocket: keeps what it sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_nowait(self, frame: str) -> None:
        self.sent.append(json.loads(frame))


def device() -> tuple[Device, Wire]:
    worker = SimpleNamespace(stats=collections.Counter(), lags=[], rates=dict(RATES),
                             rng=random.Random(1), reconnect_times=[], catchup_times=[])
    spec = {"key": "u1d1", "user": 1, "token": "t", "friends": [2], "groups": []}
    one = Device(spec, worker)  # type: ignore[arg-type]
    wire = Wire()
    one.connection = wire
    one.session = {"live": [], "syncs": []}
    return one, wire


def page(since: int, following: int, more: bool = False) -> dict[str, Any]:
    return {"cmd": 21, "since": since, "rows": [], "next": following, "more": more,
            "changes": [], "changes_next": 0}


def live(message_id: int) -> dict[str, Any]:
    return {"cmd": 10, "id": message_id, "userid": 2, "dstid": 1, "ts": 0,
            "cid": f"u2d0-{message_id}"}


def test_live_ids_never_move_the_cursor_a_checkpoint_page_does() -> None:
    one, wire = device()
    one.on_frame({"cmd": 50, "users": []})  # the snapshot: the first sync, from 0
    assert [f["since"] for f in wire.sent if f["cmd"] == 20] == [0]
    one.on_frame(page(0, 10))
    assert (one.cursor, one.synced) == (10, True)
    # Live ids, one overtaking a lower one still being committed on another node (12):
    # the cursor stays, or a reconnect now would never ask for 12.
    ids = [11, 13, *range(14, 14 + CHECKPOINT_EVERY - 3)]
    for message_id in ids:
        one.on_frame(live(message_id))
    assert one.cursor == 10
    assert [f["since"] for f in wire.sent if f["cmd"] == 20] == [0]
    one.on_frame(live(12))  # the CHECKPOINT_EVERY-th: ask again from the cursor
    assert [f["since"] for f in wire.sent if f["cmd"] == 20] == [0, 10]
    # It names what it holds above its cursor: all the live ids.
    assert sorted(wire.sent[-1]["held"]) == sorted(ids + [12])
    one.on_frame(page(10, 12 + CHECKPOINT_EVERY - 2))
    assert (one.cursor, one.synced) == (12 + CHECKPOINT_EVERY - 2, True)
    assert one.held == set()


def test_live_changes_count_toward_the_checkpoint_and_leave_the_change_cursor() -> None:
    one, wire = device()
    one.on_frame({"cmd": 50, "users": []})
    one.on_frame(page(0, 5) | {"changes_next": 7})
    for change in range(8, 8 + CHECKPOINT_EVERY):
        one.on_frame({"cmd": 62, "id": 5, "change": change, "emoji": "👍", "on": True})
    assert one.change_cursor == 7
    asked = [f for f in wire.sent if f["cmd"] == 20]
    assert [(f["since"], f["changes_since"]) for f in asked] == [(0, 0), (5, 7)]

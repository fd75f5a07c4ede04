"""One client process of the soak: many devices, each a fastim.ws connection to /chat.

Each device behaves like a careful chat client (docs/chat-protocol.md):

- it gives every message a unique ``cid`` and keeps it until the ack comes; after a
  reconnect (or a ``busy``/``store_failed`` error) it sends it again with the same cid;
- on every connect it waits for the presence snapshot, then syncs from its cursor, page by
  page, and keeps what arrives live meanwhile;
- its cursor (the ``since`` of its next sync) moves only with sync pages' ``next``,
  never to a live id: across nodes a live id can overtake a lower one still being
  committed, and a cursor moved past it would skip that one if the connection ended
  before it came (docs/chat-protocol.md, "The sync cursor"). So every CHECKPOINT_EVERY
  live messages or changes it asks again from its cursor (a checkpoint: the server sends
  only what this connection lacks, and the page moves the cursor). The same holds for
  its change-log cursor (``changes_since``, the message lifecycle);
- it changes messages as people do: it edits some of its own messages and recalls some
  (at once, well within the recall window); it reacts to some of the messages it
  receives and deletes some for its user (only a user's first device deletes, so a
  delete is never repeated by the user's other device); how many: `--edit-every`,
  `--recall-every`, `--react-chance`, `--delete-chance` of soak/run.py. Each change is
  kept until its ack and resent with its cid, like a message. Whom a message's sender
  will recall is known from its cid, so nobody reacts to it or deletes it: that race
  would end in a `recalled` refusal, which the soak counts as a fault.

It records every ack and every id received, per connection, for soak/check.py. The
process talks to the coordinator (soak/run.py) by lines: it prints ``connected``,
``drained`` and ``done`` and waits for ``go`` and ``sync`` on stdin.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from fastim.ws import ConnectionClosed, connect

#: Errors after which the message is sent again with the same cid.
RETRYABLE = ("busy", "store_failed", "unavailable")
#: Live messages and changes between two checkpoint syncs, as the web client
#: (asset/js/app.js): one page, well within the ids the server keeps (SYNC_HOLD).
CHECKPOINT_EVERY = 200
#: At most this many ids in a sync's `held` (the server's ChatLimits.max_held).
HELD_MOST = 1000
#: A device edits its own message number n when n % edit_every == 0 (cmd 60) and
#: recalls it when n % recall_every == 1 and it is not edited (cmd 61); it reacts to a
#: message it received live with chance react_chance (cmd 62), and a user's first
#: device deletes one for its user with chance delete_chance (cmd 63). The defaults
#: (soak/run.py's options set them):
RATES = {"edit_every": 10, "recall_every": 20, "react_chance": 0.002,
         "delete_chance": 0.002}
#: The emoji a device reacts with: by its number, so a user's two devices never make
#: the same reaction (the second would change nothing).
EMOJI = ("👍", "❤️", "😂", "🎉")


def message_number(cid: str | None) -> int | None:
    """n of a soak message's cid ``u<user>d<device>-<n>``, None for anything else."""
    if not cid:
        return None
    number = cid.rpartition("-")[2]
    return int(number) if number.isdigit() else None


def edited_by_sender(cid: str | None, rates: dict[str, Any]) -> bool:
    n = message_number(cid)
    return n is not None and n % rates["edit_every"] == 0


def recalled_by_sender(cid: str | None, rates: dict[str, Any]) -> bool:
    """Whether the sender of the message with this cid will recall it."""
    n = message_number(cid)
    return n is not None and n % rates["recall_every"] == 1 \
        and not edited_by_sender(cid, rates)


class Device:
    """One login of one user, reconnecting as often as the soak tells it to."""

    def __init__(self, spec: dict[str, Any], worker: Worker) -> None:
        self.key: str = spec["key"]
        self.user: int = spec["user"]
        self.token: str = spec["token"]
        self.friends: list[int] = spec["friends"]
        self.groups: list[int] = spec["groups"]
        self.prefix = f"{self.key}-"  # every cid of this device starts with it
        self.worker = worker
        self.connection: Any = None
        self.ready = False  # the snapshot came: messages may be sent
        self.synced = False  # this connection's sync has reached its end
        self.live_count = 0  # messages and changes that came live since the last sync
        self.cursor = 0
        self.change_cursor = 0
        # The ids it received above its cursor: a sync names them (`held`), so what came
        # live on a connection that then ended is not sent again.
        self.held: set[int] = set()
        self.number = int(self.key.rpartition("d")[2])  # u<user>d<number>
        # Message numbers start at a place of the device's own: which messages its sender
        # edits or recalls follows from n (`edited_by_sender`), and at 10,000 connections
        # a device sends only two or three in a minute, so had every device counted from
        # 0 its first message would always be edited and its second recalled (75% of
        # messages changed, not 15%: each change a write transaction of its own).
        self.count = random.Random(self.key).randrange(1000)
        self.pending: dict[str, dict[str, Any]] = {}  # cid -> frame, when sent, resent?
        self.retry: set[str] = set()
        self.acked: dict[str, int] = {}
        # Edits (cmd 60) of its own messages: edit cid -> (message id, content), and the
        # change id each was acked with (soak/check.py, `check_edits`).
        self.edits: dict[str, tuple[int, str]] = {}
        self.edits_acked: dict[str, int] = {}
        # Recalls, reactions and deletes: cid -> [kind, message id, emoji], and when
        # acked cid -> [change id, the time the ack came (time.time())].
        self.actions: dict[str, list[Any]] = {}
        self.actions_acked: dict[str, list[Any]] = {}
        self.conflicts: list[tuple[str, int, int]] = []
        self.sessions: list[dict[str, Any]] = []
        self.session: dict[str, Any] = {}
        self.sync_done: asyncio.Event = asyncio.Event()
        self.connected_once: asyncio.Event = asyncio.Event()
        self.closing_on_purpose = False
        self.offline_for = 0.0  # a long absence after the next drop (--long-offline)
        # When the server (not this client) ended the last connection: a node drained
        # (1012) or killed behind the proxy. The time until the next presence snapshot is
        # the reconnect, until that connection's sync ends the catch-up.
        self.lost_at: float | None = None

    # -- the connection's life ---------------------------------------------------------

    async def live(self) -> None:
        """Connect, read until the connection ends, wait, connect again: until the end."""
        worker = self.worker
        failures = 0
        while not worker.finished:
            try:
                connection = await connect(worker.url.format(token=self.token),
                                           ping_interval=None, compression=None,
                                           open_timeout=20)
            except Exception as exc:  # refused, reset, timed out, 401
                worker.stats["connect_failures"] += 1
                worker.stats[f"connect_failure:{type(exc).__name__}"] += 1
                failures += 1
                await asyncio.sleep(min(5.0, 0.2 * 2 ** failures) * random.random())
                continue
            failures = 0
            self.connection = connection
            self.ready = self.synced = False
            self.closing_on_purpose = False
            self.session = {"live": [], "syncs": []}
            self.sessions.append(self.session)
            worker.stats["connections"] += 1
            try:
                while True:
                    self.on_frame(json.loads(await connection.recv()))
            except ConnectionClosed as closed:
                if not self.closing_on_purpose and not worker.finished:
                    worker.stats[f"closed_by_server:{closed.code}"] += 1
                    self.lost_at = time.monotonic()
            self.connection = None
            self.ready = self.synced = False
            if worker.finished:
                return
            # Wait a while before coming back, as a phone leaving a tunnel would; in the
            # drain phase come back at once.
            delay, self.offline_for = self.offline_for or random.uniform(0.2, 2.0), 0.0
            while delay > 0 and worker.churn:  # the drain calls everyone back at once
                await asyncio.sleep(min(delay, 0.5))
                delay -= 0.5
            await asyncio.sleep(0.05)
            worker.stats["reconnects"] += 1

    def disconnect(self, abrupt: bool) -> None:
        """End the connection: a clean close handshake, or a TCP reset with no close frame
        (as when a phone loses its network)."""
        connection = self.connection
        if connection is None:
            return
        self.closing_on_purpose = True
        self.ready = False
        if abrupt:
            self.worker.stats["aborts"] += 1
            transport = connection._transport  # no public abort: a real network drop
            if transport is not None:
                transport.abort()
        else:
            self.worker.stats["clean_closes"] += 1
            asyncio.get_running_loop().create_task(connection.close(1000, "bye"))

    def _send(self, frame: str) -> bool:
        connection = self.connection
        if connection is None:
            return False
        try:
            connection.send_nowait(frame)
        except ConnectionClosed:
            return False
        return True

    # -- what the client sends ---------------------------------------------------------

    def send_new(self, rng: random.Random, group_share: float) -> None:
        cid = f"{self.prefix}{self.count}"
        self.count += 1
        if self.groups and (not self.friends or rng.random() < group_share):
            cmd, dstid = 11, rng.choice(self.groups)
        else:
            cmd, dstid = 10, rng.choice(self.friends)
        frame = json.dumps({"cmd": cmd, "dstid": dstid, "media": 1, "cid": cid,
                            "content": f"soak message {cid} 😀"})
        self.pending[cid] = {"frame": frame, "sent": time.monotonic(), "resent": False}
        self.worker.stats["sent"] += 1
        self._send(frame)

    def resend(self, cids: list[str]) -> None:
        for cid in cids:
            entry = self.pending.get(cid)
            if entry is not None and self._send(entry["frame"]):
                entry["resent"] = True
                entry["sent"] = time.monotonic()
                self.worker.stats["resent"] += 1

    def start_sync(self) -> None:
        self.synced = False
        self.live_count = 0
        self.sync_done.clear()
        self._ask_sync(self.cursor)

    def _ask_sync(self, since: int) -> None:
        # When it was asked: what was acked before then must show in the answer.
        self.session["asked"] = time.time()
        held = sorted(i for i in self.held if i > since)[-HELD_MOST:]
        self._send(json.dumps({"cmd": 20, "since": since, "limit": 200,
                               "changes_since": self.change_cursor, "held": held}))

    # -- what the server sends ---------------------------------------------------------

    def on_frame(self, frame: dict[str, Any]) -> None:
        cmd = frame.get("cmd")
        if cmd in (10, 11) and "id" in frame:
            id_ = int(frame["id"])
            self.session["live"].append(id_)
            self.held.add(id_)
            self.count_live()
            self.worker.lags.append(time.time() * 1000 - frame["ts"])
            self.maybe_change(frame)
        elif cmd in (60, 61, 62, 63) and "change" in frame:
            change = int(frame["change"])
            self.session.setdefault("changes", []).append(change)
            if frame.get("content"):
                self.session.setdefault("change_text", []).append(change)
            self.count_live()
        elif cmd == 1:
            self.on_ack(frame)
        elif cmd == 21:
            self.on_sync_page(frame)
        elif cmd == 50 and "users" in frame:
            # From the snapshot on, messages come live; what came before, by sync.
            self.ready = True
            self.connected_once.set()
            if self.lost_at is not None:
                self.worker.reconnect_times.append(time.monotonic() - self.lost_at)
            self.start_sync()
            self.resend(list(self.pending))
        elif cmd == 2:
            self.on_error(frame)

    def count_live(self) -> None:
        """One more message or change came live: at CHECKPOINT_EVERY, once the sync is
        over, ask again from the cursor (only a sync page moves it)."""
        self.live_count += 1
        if self.synced and self.live_count >= CHECKPOINT_EVERY:
            self.worker.stats["checkpoints"] += 1
            self.start_sync()

    def maybe_change(self, frame: dict[str, Any]) -> None:
        """React to, or delete for its user, some of the messages received live; never
        one its sender will recall, nor its own device's."""
        cid = frame.get("cid")
        rates = self.worker.rates
        if str(cid or "").startswith(self.prefix) or recalled_by_sender(cid, rates):
            return
        rng = self.worker.rng
        id_ = int(frame["id"])
        if rng.random() < rates["react_chance"]:
            emoji = EMOJI[self.number % len(EMOJI)]
            self.act(f"{self.prefix}r{id_}", {"cmd": 62, "id": id_, "emoji": emoji,
                                              "on": True}, emoji)
        elif self.number == 0 and rng.random() < rates["delete_chance"]:
            self.act(f"{self.prefix}x{id_}", {"cmd": 63, "id": id_})

    def act(self, cid: str, body: dict[str, Any], emoji: str = "") -> None:
        """Send a recall, a reaction or a delete; kept until acked, like a message."""
        frame = json.dumps({**body, "cid": cid})
        self.actions[cid] = [body["cmd"], body["id"], emoji]
        self.pending[cid] = {"frame": frame, "sent": time.monotonic(), "resent": False}
        self.worker.stats[{61: "recalls", 62: "reactions", 63: "deletes"}[body["cmd"]]] += 1
        self._send(frame)

    def edit(self, cid: str, message_id: int) -> None:
        """Edit one of its own messages (every EDIT_EVERY-th acked): the edit is kept
        until its ack and sent again with the same cid, like a message."""
        edit_cid = f"{self.prefix}e{cid.removeprefix(self.prefix)}"
        content = f"soak edit of {cid} ✏️"
        frame = json.dumps({"cmd": 60, "id": message_id, "content": content,
                            "cid": edit_cid})
        self.edits[edit_cid] = (message_id, content)
        self.pending[edit_cid] = {"frame": frame, "sent": time.monotonic(), "resent": False}
        self.worker.stats["edits"] += 1
        self._send(frame)

    def on_ack(self, frame: dict[str, Any]) -> None:
        cid, id_ = str(frame["cid"]), int(frame["id"])
        if "change" in frame:  # a change's ack
            change = None if frame["change"] is None else int(frame["change"])
            if cid in self.edits:
                self.edits_acked[cid] = change  # type: ignore[assignment]
            elif cid not in self.actions_acked:
                self.actions_acked[cid] = [change, time.time()]
            self.pending.pop(cid, None)
            self.retry.discard(cid)
            return
        known = self.acked.get(cid)
        if known is not None and known != id_:
            self.conflicts.append((cid, known, id_))
        self.acked[cid] = id_
        self.worker.stats["acks_dup" if frame.get("dup") else "acks"] += 1
        entry = self.pending.pop(cid, None)
        self.retry.discard(cid)
        if entry is not None and not entry["resent"]:
            self.worker.ack_latencies.append(time.monotonic() - entry["sent"])
        if known is None and edited_by_sender(cid, self.worker.rates):
            self.edit(cid, id_)
        elif known is None and recalled_by_sender(cid, self.worker.rates):
            self.act(f"{self.prefix}c{message_number(cid)}", {"cmd": 61, "id": id_})

    def on_sync_page(self, frame: dict[str, Any]) -> None:
        rows = [int(row["id"]) for row in frame["rows"]]
        changes = frame.get("changes", [])
        self.session["syncs"].append({
            "since": frame["since"], "rows": rows, "next": frame["next"],
            "asked": self.session.get("asked", 0.0),
            # rows shown as recalled (no text left), and the changes' part of the page
            "recalled": [int(r["id"]) for r in frame["rows"]
                         if r.get("recalled") and not r.get("content")],
            "changes_since": self.change_cursor,
            "changes": [int(c["change"]) for c in changes],
            "change_text": [int(c["change"]) for c in changes if c.get("content")],
            "changes_next": frame.get("changes_next", self.change_cursor)})
        self.worker.stats["sync_pages"] += 1
        # Everything up to `next` is now held: in these rows, or sent live before them.
        self.cursor = max(self.cursor, int(frame["next"]))
        self.held.update(rows)
        self.held = {i for i in self.held if i > self.cursor}
        self.change_cursor = max(self.change_cursor,
                                 int(frame.get("changes_next", self.change_cursor)))
        if frame["more"] or frame.get("changes_more"):
            self._ask_sync(int(frame["next"]))
            return
        self.synced = True
        if self.lost_at is not None:
            self.worker.catchup_times.append(time.monotonic() - self.lost_at)
            self.lost_at = None
        self.sync_done.set()

    def on_error(self, frame: dict[str, Any]) -> None:
        error = frame.get("error", "?")
        self.worker.stats[f"error:{error}"] += 1
        cid = frame.get("cid")
        if error in RETRYABLE:
            if cid is not None and str(cid) in self.pending:
                self.retry.add(str(cid))
            elif error == "unavailable" and self.ready and not self.synced:
                self.start_sync()  # the sync itself failed: ask again
        else:
            self.worker.refusals.append(f"{self.key}: {frame}")

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "user": self.user, "prefix": self.prefix,
                "acked": self.acked, "unacked": sorted(self.pending),
                "edits": self.edits, "edits_acked": self.edits_acked,
                "actions": self.actions, "actions_acked": self.actions_acked,
                "ack_conflicts": self.conflicts, "sessions": self.sessions}


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.url = f"ws://127.0.0.1:{spec['port']}/chat?token={{token}}"
        self.rng = random.Random(spec["seed"])
        random.seed(spec["seed"] + 1)  # reconnect delays and close kinds
        self.rates = {name: spec.get(name, default) for name, default in RATES.items()}
        self.devices = [Device(d, self) for d in spec["devices"]]
        self.stats: Counter[str] = Counter()
        self.ack_latencies: list[float] = []
        self.lags: list[float] = []
        # Seconds from a connection the server ended to the next snapshot, and to the
        # end of that connection's sync (Device.lost_at).
        self.reconnect_times: list[float] = []
        self.catchup_times: list[float] = []
        self.refusals: list[str] = []
        self.finished = False
        self.churn = True  # random disconnects on (off while draining)
        self.sending = False

    async def run(self) -> None:
        lives = []
        gate = asyncio.Semaphore(50)  # connect in waves: each upgrade checks a token

        async def start(device: Device) -> None:
            async with gate:
                lives.append(asyncio.create_task(device.live()))
                await device.connected_once.wait()

        await asyncio.gather(*(start(device) for device in self.devices))
        await self._say("connected")
        await self._expect("go")
        self.sending = True
        ticker = asyncio.create_task(self._send_steadily())
        churner = asyncio.create_task(self._churn())
        retrier = asyncio.create_task(self._retry())
        await asyncio.sleep(self.spec["duration"])
        self.sending = False
        self.churn = False
        await ticker
        await churner
        await self._drain()
        await self._say("drained")
        await self._expect("sync")
        retrier.cancel()
        # The final sync: everyone else is acked, so every message is stored and each
        # device's page now ends at the newest message it may see.
        # (200 at a time: one after the other, 5,000 devices' round trips took minutes)
        gate = asyncio.Semaphore(200)

        async def final_sync(device: Device) -> None:
            async with gate:
                await self._final_sync(device)

        await asyncio.gather(*(final_sync(device) for device in self.devices))
        self.finished = True
        for device in self.devices:
            if device.connection is not None:
                device.closing_on_purpose = True
                await device.connection.close(1000, "soak over")
        await asyncio.gather(*lives, return_exceptions=True)
        with open(self.spec["out"], "w", encoding="utf-8") as out:
            json.dump({"devices": [d.record() for d in self.devices],
                       "stats": self.stats, "ack_latencies": self.ack_latencies,
                       "lags": self.lags, "refusals": self.refusals[:50],
                       "reconnect_times": self.reconnect_times,
                       "catchup_times": self.catchup_times}, out)
        await self._say("done")

    async def _send_steadily(self) -> None:
        """This worker's share of the rate, spread evenly over time, from random devices
        that are connected."""
        rate = self.spec["rate"]
        group_share = self.spec["group_share"]
        tick = 0.02
        credit = 0.0
        last = time.monotonic()
        while self.sending:
            await asyncio.sleep(tick)
            now = time.monotonic()
            credit += rate * (now - last)
            last = now
            while credit >= 1:
                credit -= 1
                for _ in range(5):  # skip devices that are between connections
                    device = self.rng.choice(self.devices)
                    if device.ready:
                        device.send_new(self.rng, group_share)
                        break
                else:
                    self.stats["send_skipped"] += 1

    async def _churn(self) -> None:
        """Each connected device drops with probability `disconnect` every second: half
        with a clean close handshake, half with a TCP reset."""
        probability = self.spec["disconnect"]
        group_share = self.spec["group_share"]
        while self.churn:
            await asyncio.sleep(1.0)
            for device in self.devices:
                if device.ready and self.rng.random() < probability:
                    if self.rng.random() < 0.5:
                        # Drop with a message in flight: it may or may not be stored,
                        # and the resend after the reconnect (same cid) must not
                        # store it twice.
                        device.send_new(self.rng, group_share)
                        self.stats["sent_just_before_drop"] += 1
                    if self.rng.random() < self.spec.get("long_offline", 0.0):
                        # Away long enough to miss more than a sync page (200 messages).
                        device.offline_for = 90.0
                    device.disconnect(abrupt=self.rng.random() < 0.5)

    async def _retry(self) -> None:
        """Messages refused as busy go again after a pause; so do messages unacked for
        long on a live connection (a safety net: the server acks every stored message)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for device in self.devices:
                if not device.ready:
                    continue
                stale = [cid for cid, entry in device.pending.items()
                         if now - entry["sent"] > 10.0]
                again = sorted(device.retry | set(stale))
                device.retry.clear()
                device.resend(again)

    async def _drain(self) -> None:
        """Until every device is connected, synced and has no message waiting for its ack
        (bounded: what is still pending then is reported as never acked)."""
        deadline = time.monotonic() + self.spec["drain_timeout"]
        while time.monotonic() < deadline:
            if all(d.ready and d.synced and not d.pending for d in self.devices):
                return
            await asyncio.sleep(0.2)
        self.stats["drain_timed_out"] += 1

    async def _final_sync(self, device: Device) -> None:
        deadline = time.monotonic() + 30
        while not device.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not device.ready:
            self.stats["final_sync_not_connected"] += 1
            return
        device.start_sync()
        try:
            await asyncio.wait_for(device.sync_done.wait(), 30)
        except TimeoutError:
            self.stats["final_sync_timed_out"] += 1

    async def _say(self, line: str) -> None:
        print(line, flush=True)

    async def _expect(self, word: str) -> None:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != word:
            raise SystemExit(f"worker expected {word!r}, got {line!r}")


def main(spec_path: str) -> int:
    from fastim.ws import install_uvloop

    install_uvloop()
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    asyncio.run(Worker(spec).run())
    return 0

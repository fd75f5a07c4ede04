"""The soak's coordinator: start the server, build the population, run the client
processes through their phases, sample the server's memory, and check the result.

Phases (each worker process, all in step):

1. connect: every device opens its WebSocket (the worker prints ``connected``);
2. chat (``go``): `duration` seconds of messages at the steady `rate`, with random
   disconnects (clean closes and TCP resets) and reconnects;
3. drain: no new messages, no more disconnects; every device reconnects, syncs, and
   resends until each of its messages is acked (``drained``);
4. final sync (``sync``): once every worker has drained, every message is stored, so each
   device's last sync ends at the newest message it may see (``done``).

Then the server stops, and soak/check.py compares the records with the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastim.chat.session import RECENT_IDS
from fastim.store import open_store
from fastim.store.sqlite import CACHE_KIB, CACHED_STATEMENTS
from soak import check, limits, memory, population

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# -- the database -------------------------------------------------------------------------

async def _seed_history(url: str, messages: int) -> int:
    """A year-old store under the soak (bench/seed.py: its own users, friends and groups,
    apart from the soak's); returns the last seeded message id."""
    from bench.seed import seed

    store = await open_store(url)
    try:
        await seed(store, messages)
        await store.analyze()
        return int(await store.read(lambda tx: tx.value("SELECT MAX(id) FROM messages")) or 0)
    finally:
        await store.close()


class Database:
    """The soak's own database: a SQLite file in the temp dir, or a fresh MariaDB database
    `soak_<random>` on the server the --db URL names (dropped at the end)."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.mysql_name: str | None = None
        self.after_id = 0  # messages up to this id were seeded (--history), not the soak's
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp}/soak.db"
            return
        parts = urlsplit(backend)
        if parts.scheme != "mysql":
            raise SystemExit(f"--db must be sqlite or a mysql:// URL, not {backend!r}")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 3306
        self.user, self.password = parts.username or "root", parts.password or ""
        self.mysql_name = f"soak_{secrets.token_hex(4)}"
        with self._mysql() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.mysql_name}` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_unicode_ci")
        auth = f"{self.user}:{self.password}@"
        self.url = f"mysql://{auth}{self.host}:{self.port}/{self.mysql_name}"

    def _mysql(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, database=database,
                               charset="utf8mb4", autocommit=True)

    def facts(self) -> tuple[list[check.Row], dict[int, list[int]]]:
        """Every stored message (id, sender, cid, cmd, dstid) and every group's members,
        read with the database's own driver, not through fastim's store."""
        messages = ("SELECT id, sender, cid, cmd, dstid FROM messages "
                    f"WHERE id > {int(self.after_id)} ORDER BY id")
        memberships = "SELECT community_id, user_id FROM memberships"
        rows, pairs = self._query(messages, memberships)
        members: dict[int, list[int]] = {}
        for group, user in pairs:
            members.setdefault(int(group), []).append(int(user))
        return ([(int(i), int(s), c, int(m), int(d)) for i, s, c, m, d in rows], members)

    def edits(self) -> tuple[list[check.ChangeRow], dict[int, str]]:
        """The change log and the text of every edited message (`check.check_edits`)."""
        changes = "SELECT id, actor, cid, message_id, kind FROM message_changes ORDER BY id"
        contents = ("SELECT id, content FROM messages WHERE id IN "
                    "(SELECT message_id FROM message_changes WHERE kind = 60)")
        log, texts = self._query(changes, contents)
        return ([(int(i), int(a), c, int(m), int(k)) for i, a, c, m, k in log],
                {int(i): text for i, text in texts})

    def _query(self, *statements: str) -> list[list[Any]]:
        """The rows of each statement, read with the database's own driver (not through
        fastim's store), in one connection."""
        if self.mysql_name is None:
            import sqlite3

            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                return [conn.execute(statement).fetchall() for statement in statements]
            finally:
                conn.close()
        results = []
        with self._mysql(self.mysql_name) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                results.append(list(cur.fetchall()))
        return results

    def changes(self) -> check.ChangeFacts:
        """The change log with each delete's user, and what the changes left: the text of
        every changed message, the recalled ones, the reactions, the deletes for a user
        (`check.check_changes`)."""
        queries = {
            "log": "SELECT id, actor, cid, message_id, kind, only_user FROM message_changes "
                   "ORDER BY id",
            "contents": "SELECT id, content FROM messages WHERE id IN "
                        "(SELECT message_id FROM message_changes)",
            "recalled": "SELECT message_id FROM message_meta WHERE recalled = 1",
            "reactions": "SELECT message_id, emoji, user_id FROM message_reactions",
            "hidden": "SELECT user_id, message_id FROM message_hidden",
        }
        found = dict(zip(queries, self._query(*queries.values()), strict=True))
        return check.ChangeFacts(
            log=[(int(i), int(a), c, int(m), int(k), None if o is None else int(o))
                 for i, a, c, m, k, o in found["log"]],
            contents={int(i): text for i, text in found["contents"]},
            recalled={int(m) for (m,) in found["recalled"]},
            reactions={(int(m), e, int(u)) for m, e, u in found["reactions"]},
            hidden={(int(u), int(m)) for u, m in found["hidden"]})

    def drop(self) -> None:
        if self.mysql_name is not None:
            with self._mysql() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.mysql_name}`")


# -- the run ------------------------------------------------------------------------------

#: A connection's record of the ids it was sent (fastim/chat/session.py ChatSession.recent,
#: a list of ints) grows to 2 x RECENT_IDS entries, is cut back to RECENT_IDS, and from then
#: on swings between the two: its largest size (the list's array at about 2,100 bytes) is
#: reached with the first cut, after 2 x RECENT_IDS live messages. Memory is judged once the
#: average connection is well past that (half as long again: connections receive at
#: different rates).
SENT_IDS_SETTLED = 3 * RECENT_IDS


#: SQLite's own memory in the server has a ceiling: the app opens its store with 8
#: connections (fastim/app.py), each with a page cache of at most CACHE_KIB (the pages
#: plus SQLite's header for each, counted here as a quarter more) and at most
#: CACHED_STATEMENTS prepared statements (a few KiB each: 4 counted).
SERVER_POOL_SIZE = 8
SQLITE_CEILING_KIB = SERVER_POOL_SIZE * (CACHE_KIB * 5 // 4 + CACHED_STATEMENTS * 4)


def deliveries_per_connection(args: argparse.Namespace) -> float:
    """Messages a second one connection receives, on average, in this workload: a group
    message goes to every device of every member but the sending one, a 1:1 message to
    the devices of both sides but the sending one."""
    users = max(2, args.connections // args.devices)
    size = min(args.group_size, users) if args.groups else 0
    share = args.group_share if size else 0.0
    per_message = (share * (size * args.devices - 1)
                   + (1 - share) * (2 * args.devices - 1))
    return args.rate * per_message / (users * args.devices)


def warmup_seconds(args: argparse.Namespace) -> float:
    if args.warmup is not None:
        return float(args.warmup)
    rate = deliveries_per_connection(args)
    return max(30.0, SENT_IDS_SETTLED / rate) if rate > 0 else 30.0


#: Seconds of chat after the warm-up in a default run: the memory verdict's window.
JUDGED_SECONDS = 240.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        prepare(args)
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="fastim-soak-"))
        self.server: subprocess.Popen[bytes] | None = None  # the (first) node
        self.nodes: list[subprocess.Popen[bytes]] = []  # every node, the first included
        self.proxy: Any = None  # deploy.haproxy.HAProxy with --cluster
        self.workers: list[subprocess.Popen[str]] = []
        self.commands: list[list[str]] = []  # each node's command line, for --restart
        self.ports: list[int] = []
        self.node_env: dict[str, str] = {}
        self.server_log: Any = None
        self.restarts: list[dict[str, Any]] = []  # what --restart did, when
        self.cpu_of_replaced = 0.0  # CPU seconds of nodes a restart replaced
        self.restart_failed: BaseException | None = None
        self.client_cpu = 0.0  # seconds of CPU the client processes spent, go to done
        self.marks: dict[str, float] = {}
        self.server_cpu = 0.0  # seconds of CPU the server spent from `go` to `done`
        # (rows, members, devices, hidden): what the check judged, kept for the tests
        self.facts: tuple[list[check.Row], dict[int, list[int]], list[dict[str, Any]],
                          set[tuple[int, int]]] | None = None

    def watch_folder(self) -> Path:
        return Path(self.args.trace_memory or self.args.watch_sqlite or self.tmp / "watch")

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def run(self) -> dict[str, Any]:
        args = self.args
        database = Database(args.db, self.tmp)
        try:
            return self._run(database)
        finally:
            self._stop_all()
            database.drop()
            if not args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                self.log(f"kept {self.tmp}")

    def _run(self, database: Database) -> dict[str, Any]:
        args = self.args
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        users = max(2, args.connections // args.devices)
        if args.history:
            self.log(f"seeding a year of history: {args.history:,} messages (bench/seed.py)")
            database.after_id = asyncio.run(_seed_history(database.url, args.history))
        self.log(f"seeding {users} users into {database.url.split('@')[-1]}")
        people = asyncio.run(population.seed_users(database.url, users, args.devices))
        port = free_port()
        server_log = open(self.tmp / "server.log", "wb")  # noqa: SIM115 - closed with the server
        # The server always runs under the watcher (a thread reading SQLite's and malloc's
        # figures every 2 s; it changes nothing the server does): the verdict needs
        # SQLite's share of RSS.
        launcher = (["-m", "soak.traced_server", str(args.trace_memory), "trace"]
                    if args.trace_memory else
                    ["-m", "soak.traced_server", str(self.watch_folder()), "watch"])
        serve = ["serve", "--host", "127.0.0.1", "--db", database.url,
                 "--resource-dir", str(self.tmp / "resource")]
        if args.cluster:
            # N nodes on one Redis prefix behind HAProxy (docs/scaling.md): the clients
            # know only the proxy. The first node runs under the watcher like a single
            # server, and its memory is the one judged.
            serve += ["--redis", f"{args.redis}?prefix=soak-{secrets.token_hex(3)}",
                      "--trusted-proxy", "127.0.0.1",
                      # longer than the proxy's checks (1 s x fall 2) take to see
                      # the drain, so no new client is sent to a closing node
                      "--drain-delay", "3"]
        ports = [port] + [free_port() for _ in range(max(0, args.cluster - 1))]
        self.ports = ports
        for number, node_port in enumerate(ports):
            node_args = [*serve, "--port", str(node_port),
                         "--data-dir", str(self.tmp / f"data{number or ''}")]
            # a restarted node runs without the watcher (its memory is not judged)
            self.commands.append([sys.executable, "-m", "fastim", *node_args])
            command = [sys.executable, *(launcher if number == 0 else ["-m", "fastim"]),
                       *node_args]
            self.nodes.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=server_log,
                                               stderr=subprocess.STDOUT))
        self.node_env, self.server_log = env, server_log
        self.server = self.nodes[0]
        for node, node_port in zip(self.nodes, ports, strict=True):
            wait_listening(node_port, node)
        if args.cluster:
            from deploy.haproxy import Checks, HAProxy

            self.proxy = HAProxy(self.tmp / "haproxy", ("127.0.0.1", free_port()),
                                 [("127.0.0.1", p) for p in ports], Checks(interval=1.0),
                                 maxconn=args.connections + limits.PROXY_SPARE)
            self.proxy.start()
            port = self.proxy.listen[1]
        sampler = memory.Sampler(self.server.pid, args.rss_interval)
        sampler.start()
        where = (f"{len(self.nodes)} nodes behind HAProxy on port {port}" if args.cluster
                 else f"server pid {self.server.pid} on port {port}")
        self.log(f"{where}; {args.rest_logins} REST "
                 f"logins, friends and {args.groups} groups through REST")
        started = time.monotonic()
        asyncio.run(population.build(people, port, devices=args.devices, friends=args.friends,
                                     groups=args.groups, group_size=args.group_size,
                                     seed=args.seed, rest_logins=args.rest_logins))
        setup_seconds = time.monotonic() - started

        # Devices go to workers round robin, so a user's devices sit in different processes.
        specs: list[dict[str, Any]] = [
            {"port": port, "seed": args.seed * 1000 + w, "duration": args.duration,
             "rate": args.rate / args.workers, "group_share": args.group_share,
             "disconnect": args.disconnect, "drain_timeout": args.drain_timeout,
             "long_offline": args.long_offline,
             "edit_every": args.edit_every, "recall_every": args.recall_every,
             "react_chance": args.react_chance, "delete_chance": args.delete_chance,
             "out": str(self.tmp / f"worker{w}.json"), "devices": []}
            for w in range(args.workers)]
        n = 0
        for user in people.users:
            for device in range(args.devices):
                specs[n % args.workers]["devices"].append({
                    "key": f"u{user}d{device}", "user": user,
                    "token": people.tokens[(user, device)],
                    "friends": people.friends.get(user, []),
                    "groups": people.groups_of(user)})
                n += 1
        for w, spec in enumerate(specs):
            path = self.tmp / f"worker{w}.spec.json"
            path.write_text(json.dumps(spec))
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "soak", "worker", str(path)], env=env, cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

        self.log(f"{len(self.workers)} workers connecting {n} devices")
        self._all_say("connected")
        self.marks["go"] = time.monotonic()
        self.log(f"chatting for {args.duration:.0f} s at {args.rate:.0f} messages/s")
        self.server_cpu = self._nodes_cpu()
        self.client_cpu = sum(memory.cpu_seconds(w.pid) for w in self.workers)
        self._tell_all("go")
        restarts = None
        if args.restart:
            restarts = threading.Thread(target=self._restart_nodes, daemon=True)
            restarts.start()
        if args.trace_memory:
            warmup = warmup_seconds(args)
            time.sleep(warmup)
            self.server.send_signal(signal.SIGUSR1)  # snap0: after warm-up
            time.sleep(max(0.0, args.duration - warmup))
            self.server.send_signal(signal.SIGUSR1)  # snap1: at the end of the chat
        self._all_say("drained")
        self.marks["drained"] = time.monotonic()
        self.log(f"drained in {self.marks['drained'] - self.marks['go'] - args.duration:.1f} s; "
                 "final sync")
        self._tell_all("sync")
        self._all_say("done")
        self.marks["done"] = time.monotonic()
        self.client_cpu = sum(memory.cpu_seconds(w.pid) for w in self.workers) \
            - self.client_cpu
        if restarts is not None:
            restarts.join()
            if self.restart_failed is not None:
                raise RuntimeError("--restart failed") from self.restart_failed
        for worker in self.workers:
            worker.wait(30)
        sampler.stop()
        self.server_cpu = self._nodes_cpu() - self.server_cpu
        self._stop_server()

        records = [json.loads((self.tmp / f"worker{w}.json").read_text())
                   for w in range(len(self.workers))]
        rows, members = database.facts()
        devices = [device for record in records for device in record["devices"]]
        changed = database.changes()
        self.facts = (rows, members, devices, changed.hidden)  # for tests/soak/test_soak.py
        verdict = check.check(rows, members, devices,
                              check.PER_SENDER if args.cluster else check.ALL,
                              hidden=changed.hidden)
        changes, contents = database.edits()
        check.check_edits(verdict, changes, contents, devices)
        check.check_changes(verdict, changed, rows, members, devices)
        return self._report(records, verdict, sampler, setup_seconds, n, users)

    def _all_say(self, word: str) -> None:
        for worker in self.workers:
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            if line != word:
                raise RuntimeError(f"a worker said {line!r} instead of {word!r} "
                                   f"(exit code {worker.poll()})")

    def _tell_all(self, word: str) -> None:
        for worker in self.workers:
            assert worker.stdin is not None
            worker.stdin.write(word + "\n")
            worker.stdin.flush()

    def _nodes_cpu(self) -> float:
        """CPU seconds of every node together (one server, or the cluster's nodes), those
        replaced by a restart included (up to their last reading)."""
        return self.cpu_of_replaced + sum(memory.cpu_seconds(node.pid) for node in self.nodes)

    def _restart_nodes(self) -> None:
        """--restart, in the chat phase (from a quarter of it on): `drain` restarts every
        node in turn (SIGTERM: the node drains and exits; the same command starts it
        again on the same port, and the next one waits until the proxy sends it
        clients again); `kill` SIGKILLs the last node once and starts it again 5 s later.
        Each event's time goes into the report (`restarts`)."""
        try:
            self._restart_each()
        except BaseException as exc:  # reported by the main thread after the chat
            self.restart_failed = exc

    def _restart_each(self) -> None:
        args = self.args
        time.sleep(args.duration / 4)
        order = (range(len(self.nodes)) if args.restart == "drain"
                 else [len(self.nodes) - 1])
        for number in order:
            node = self.nodes[number]
            event: dict[str, Any] = {"node": number, "how": args.restart,
                                     "at_s": round(time.monotonic() - self.marks["go"], 1)}
            self.cpu_of_replaced += memory.cpu_seconds(node.pid)
            began = time.monotonic()
            node.send_signal(signal.SIGTERM if args.restart == "drain" else signal.SIGKILL)
            node.wait(60)
            event["down_after_s"] = round(time.monotonic() - began, 1)
            if args.restart == "kill":
                time.sleep(5.0)
            self.nodes[number] = subprocess.Popen(
                self.commands[number], env=self.node_env, cwd=ROOT, stdout=self.server_log,
                stderr=subprocess.STDOUT)
            wait_listening(self.ports[number], self.nodes[number])
            event["back_after_s"] = round(time.monotonic() - began, 1)
            self.restarts.append(event)
            self.log(f"node {number}: {args.restart} at {event['at_s']} s, down in "
                     f"{event['down_after_s']} s, listening again after "
                     f"{event['back_after_s']} s")
            time.sleep(10.0)  # the proxy's checks see it up (rise 2 x 1 s), clients settle

    def _stop_server(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for node in self.nodes:
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self._stop_server()

    def _report(self, records: list[dict[str, Any]], verdict: check.Verdict,
                sampler: memory.Sampler, setup_seconds: float, connections: int,
                users: int) -> dict[str, Any]:
        args = self.args
        stats: dict[str, int] = {}
        for record in records:
            for key, value in record["stats"].items():
                stats[key] = stats.get(key, 0) + value
        latencies = [x for record in records for x in record["ack_latencies"]]
        lags = [x for record in records for x in record["lags"]]
        refusals = [x for record in records for x in record["refusals"]]
        reconnects = [x for record in records for x in record.get("reconnect_times", [])]
        catchups = [x for record in records for x in record.get("catchup_times", [])]
        for refusal in refusals:
            verdict.violate("refused", refusal)
        for name in ("drain_timed_out", "final_sync_not_connected", "final_sync_timed_out"):
            if stats.get(name):
                verdict.violate(name, f"{stats[name]} worker(s)/device(s)")
        go, end = self.marks["go"], self.marks["go"] + args.duration
        warmup = warmup_seconds(args)
        # What the watcher read inside the server (soak/traced_server.py), every 2 s:
        # (seconds, SQLite's memory, malloc in use, malloc free but kept, malloc mapped,
        # in MiB; full collections so far).
        watched = [(float(t), *(int(n) for n in rest)) for t, *rest in
                   (line.split() for line in
                    (self.watch_folder() / "sqlite-memory.txt").read_text().splitlines())]
        sqlite_kib = [(w[0], w[1] // 1024) for w in watched]
        rss = memory.summary(sampler.samples, go, go + warmup, end, sampler.parts,
                             judged=memory.less(sampler.samples, sqlite_kib))
        halves = [float(x) for x in rss["half_slopes_mib_per_min"]]  # type: ignore[attr-defined]
        # A restarted first node is a new process: the sampler lost it (docs/reliability.md).
        enough = int(rss["steady_samples"]) >= 20  # type: ignore[call-overload]
        judged = enough and not any(r["node"] == 0 for r in self.restarts)
        rss["warmup_s"] = round(warmup, 1)
        rss["threshold_mib_per_min"] = args.rss_slope_max
        # A leak tied to messages, deliveries or reconnects grows all the time under a
        # steady load, so in both halves; a high-water mark (buffers swelling during a
        # stall of the shared machine, kept by the allocator) is a step in one of them.
        # Judged on RSS less SQLite's own memory: that fills toward a ceiling of its own
        # (the page caches) over minutes, and is checked against the ceiling instead.
        growing = judged and min(halves) > args.rss_slope_max
        rss["verdict"] = ("not judged (the first node was restarted)" if enough and not judged
                          else "not judged (fewer than 20 steady samples)" if not judged else
                          "growing" if growing else "flat")
        if growing:
            verdict.violate("memory_growing", f"{halves[0]:.2f} then {halves[1]:.2f} MiB/min "
                                              f"after warm-up, less SQLite's memory "
                                              f"(threshold {args.rss_slope_max})")
        in_chat = [w for w in watched if go <= w[0] <= end]
        sqlite_peak = max((w[1] for w in in_chat), default=0) / 2**20
        rss["sqlite_ceiling_mib"] = round(SQLITE_CEILING_KIB / 1024, 1)
        rss["sqlite_peak_mib"] = round(sqlite_peak, 1)
        if sqlite_peak * 1024 > SQLITE_CEILING_KIB:
            verdict.violate("sqlite_memory_over_ceiling",
                            f"{sqlite_peak:.1f} MiB > {SQLITE_CEILING_KIB / 1024:.1f} MiB")
        steady_watch = [w for w in in_chat if w[0] >= go + warmup]
        rss["full_collections_after_warmup"] = (
            steady_watch[-1][5] - steady_watch[0][5] if len(steady_watch) > 1 else 0)
        rss["watched_mib"] = [(round(w[0] - go, 1), *(round(n / 2**20, 1) for n in w[1:5]),
                               *w[5:]) for w in watched]
        return {
            "backend": "sqlite" if args.db == "sqlite" else "mariadb",
            "nodes": len(self.nodes),
            "connections": connections, "users": users, "devices_per_user": args.devices,
            "workers": args.workers, "open_files_limit": args.open_files,
            "source_ports_at_worst": args.ports_at_worst,
            "groups": args.groups, "group_size": args.group_size,
            "duration_s": args.duration, "target_rate": args.rate,
            "disconnect_per_s": args.disconnect, "seed": args.seed,
            "setup_s": round(setup_seconds, 1),
            "drain_s": round(self.marks["drained"] - go - args.duration, 1),
            "sent": stats.get("sent", 0),
            "sent_per_s": round(stats.get("sent", 0) / args.duration, 1),
            "stored": verdict.stats["stored"],
            "acked": verdict.stats["acked"],
            "edits_acked": verdict.stats["edits_acked"],
            "edits_logged": verdict.stats["edits_logged"],
            "recalls_acked": verdict.stats["changes_acked:61"],
            "reactions_acked": verdict.stats["changes_acked:62"],
            "deletes_acked": verdict.stats["changes_acked:63"],
            "changes_logged": verdict.stats["changes_logged"],
            "change_deliveries_expected": verdict.stats["changes_expected"],
            "changes_live": verdict.stats["changes_live"],
            "changes_by_sync": verdict.stats["changes_by_sync"],
            "changes_resent_when_asked":
                verdict.stats["changes_resent_when_asked"],
            "deliveries_expected": verdict.stats["expected_deliveries"],
            "delivered_live": verdict.stats["delivered_live"],
            "delivered_by_sync": verdict.stats["delivered_by_sync"],
            "resent_when_asked": verdict.stats["resent_when_asked"],
            "delivered_then_deleted": verdict.stats["delivered_then_deleted"],
            "reconnects": stats.get("reconnects", 0),
            "clean_closes": stats.get("clean_closes", 0), "aborts": stats.get("aborts", 0),
            "resends": stats.get("resent", 0), "dup_acks": stats.get("acks_dup", 0),
            "ack_ms_p50": round(1000 * percentile(latencies, 0.5), 1),
            "ack_ms_p99": round(1000 * percentile(latencies, 0.99), 1),
            "delivery_lag_ms_p50": round(statistics.median(lags), 1) if lags else None,
            "delivery_lag_ms_p99": round(percentile(lags, 0.99), 1),
            "server_cpu_s": round(self.server_cpu, 1),
            "server_cpu_share": round(self.server_cpu / (self.marks["done"] - go), 2),
            "client_cpu_s": round(self.client_cpu, 1),
            "client_cpu_share": round(self.client_cpu / (self.marks["done"] - go), 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "restarts": self.restarts,
            "reconnect_s_p50": round(percentile(reconnects, 0.5), 2),
            "reconnect_s_p99": round(percentile(reconnects, 0.99), 2),
            "reconnect_s_max": round(max(reconnects, default=0.0), 2),
            "catchup_s_p50": round(percentile(catchups, 0.5), 2),
            "catchup_s_p99": round(percentile(catchups, 0.99), 2),
            "catchup_s_max": round(max(catchups, default=0.0), 2),
            "lost_by_server": len(catchups),
            "client_stats": stats,
            "rss": rss,
            "violations": dict(verdict.violations),
            "examples": verdict.examples,
        }


def print_report(report: dict[str, Any]) -> None:
    rss = report["rss"]
    nodes = report.get("nodes", 1)
    where = f" on {nodes} nodes behind HAProxy" if nodes > 1 else ""
    lines = [
        f"backend {report['backend']}{where}: {report['connections']} connections "
        f"({report['users']} users x {report['devices_per_user']} devices), "
        f"{report['groups']} groups of {report['group_size']}, {report['duration_s']:.0f} s; "
        f"{report.get('workers')} client processes, open files {report.get('open_files_limit')}",
        f"sent {report['sent']} ({report['sent_per_s']}/s), stored {report['stored']}, "
        f"acked {report['acked']}; resends {report['resends']}, dup acks {report['dup_acks']}",
        f"deliveries {report['deliveries_expected']}: live {report['delivered_live']}, "
        f"by sync {report['delivered_by_sync']}, re-sent when the client asked again "
        f"{report['resent_when_asked']}",
        f"changes acked: edits {report['edits_acked']}, recalls {report['recalls_acked']}, "
        f"reactions {report['reactions_acked']}, deletes for me {report['deletes_acked']} "
        f"(logged {report['changes_logged']}); change deliveries "
        f"{report['change_deliveries_expected']}: live {report['changes_live']}, by sync "
        f"{report['changes_by_sync']}, re-sent when the client asked again "
        f"{report['changes_resent_when_asked']}",
        f"reconnects {report['reconnects']} (clean closes {report['clean_closes']}, "
        f"TCP resets {report['aborts']}); server CPU {report['server_cpu_s']} s "
        f"({report['server_cpu_share']:.0%} of a core), clients' CPU "
        f"{report['client_cpu_s']} s ({report['client_cpu_share']:.0%} of a core); "
        f"load average {report['load_average']}",
        f"ack latency p50 {report['ack_ms_p50']} ms, p99 {report['ack_ms_p99']} ms; "
        f"delivery lag p50 {report['delivery_lag_ms_p50']} ms, "
        f"p99 {report['delivery_lag_ms_p99']} ms",
        f"server RSS: before chat {rss['before_chat_mib']} MiB, after warm-up "
        f"{rss['warmup_end_mib']} MiB, end {rss['end_mib']} MiB, peak {rss['peak_mib']} MiB; "
        f"steady slope {rss['steady_slope_mib_per_min']} MiB/min over "
        f"{rss['steady_minutes']} min after {rss['warmup_s']} s of warm-up, less SQLite's "
        f"memory (halves {rss['half_slopes_mib_per_min']}; RSS itself "
        f"{rss['rss_steady_slope_mib_per_min']}): {rss['verdict']}; SQLite's memory peak "
        f"{rss['sqlite_peak_mib']} MiB (ceiling {rss['sqlite_ceiling_mib']}); "
        f"{rss['full_collections_after_warmup']} full collections after warm-up",
    ]
    if report["restarts"] or report["lost_by_server"]:
        lines.append(
            f"restarts {report['restarts']}; {report['lost_by_server']} connections ended by "
            f"the server: back (snapshot) after p50 {report['reconnect_s_p50']} s, p99 "
            f"{report['reconnect_s_p99']} s, max {report['reconnect_s_max']} s; synced "
            f"after p50 {report['catchup_s_p50']} s, p99 {report['catchup_s_p99']} s, max "
            f"{report['catchup_s_max']} s")
    if report["violations"]:
        lines.append(f"VIOLATIONS: {report['violations']}")
        for kind, examples in report["examples"].items():
            for example in examples:
                lines.append(f"  {kind}: {example}")
    else:
        lines.append("violations: 0")
    print("\n".join(lines), flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of chat (default: the warm-up and 4 minutes more, so "
                             "that memory is judged: 1,459 s at the default workload)")
    parser.add_argument("--connections", type=int, default=10_000,
                        help="WebSocket connections: users x devices (default %(default)s)")
    parser.add_argument("--devices", type=int, default=2,
                        help="devices (logins, connections) per user (default %(default)s)")
    parser.add_argument("--friends", type=int, default=4,
                        help="friends per user, in a ring (default %(default)s)")
    parser.add_argument("--groups", type=int, default=None,
                        help="groups (default: enough for each user to be in 2, "
                             "users x 2 / group size: 1,000 for 10,000 connections)")
    parser.add_argument("--group-size", type=int, default=20,
                        help="members per group (default %(default)s)")
    parser.add_argument("--group-share", type=float, default=0.5,
                        help="share of messages sent to a group rather than a friend "
                             "(default %(default)s)")
    parser.add_argument("--rate", type=float, default=150.0,
                        help="messages a second, all clients together (default %(default)s)")
    parser.add_argument("--disconnect", type=float, default=0.005,
                        help="chance a second that a connected device drops; half clean "
                             "closes, half TCP resets (default %(default)s)")
    parser.add_argument("--long-offline", type=float, default=0.0,
                        help="share of drops after which the device stays away 90 s, to "
                             "come back to a sync of several pages (default %(default)s; "
                             "see docs/reliability.md, 'Found')")
    parser.add_argument("--edit-every", type=int, default=10, metavar="N",
                        help="a device edits its own message number n when n %% N == 0 "
                             "(default %(default)s)")
    parser.add_argument("--recall-every", type=int, default=20, metavar="N",
                        help="and recalls it when n %% N == 1 and it is not edited "
                             "(default %(default)s)")
    parser.add_argument("--react-chance", type=float, default=0.002,
                        help="chance a device reacts to a message it receives live "
                             "(default %(default)s)")
    parser.add_argument("--delete-chance", type=float, default=0.002,
                        help="chance a user's first device deletes a message it receives "
                             "for its user (default %(default)s)")
    parser.add_argument("--history", type=int, default=0, metavar="MESSAGES",
                        help="start from a database seeded like a year of use with this "
                             "many messages (bench/seed.py; e.g. 1000000), so the load and "
                             "fault checks run against an old store (default: empty)")
    parser.add_argument("--db", default="sqlite",
                        help="sqlite (a file in a temp dir), or a MariaDB/MySQL server URL "
                             "such as mysql://root@127.0.0.1:3306/test: the soak creates "
                             "its own database soak_<random> there and drops it after")
    parser.add_argument("--cluster", type=int, default=0, metavar="N",
                        help="run N nodes sharing --redis behind HAProxy instead of one "
                             "server (needs a MariaDB --db and Debian's haproxy; "
                             "docs/scaling.md)")
    parser.add_argument("--restart", choices=["drain", "kill"], default=None,
                        help="with --cluster, from a quarter of the chat on: drain "
                             "(SIGTERM) and restart every node in turn, or kill -9 the last "
                             "node and start it again 5 s later (docs/scaling.md)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for --cluster (a prefix of the soak's own is added; "
                             "default %(default)s)")
    parser.add_argument("--rest-logins", type=int, default=20,
                        help="devices that log in through POST /user/login (each costs a "
                             "default scrypt); the others get seeded sessions "
                             "(default %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="client processes (default: one per core this process may "
                             "use, soak/limits.py)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="longest wait for the last acks after the chat (default %(default)s)")
    parser.add_argument("--rss-interval", type=float, default=2.0,
                        help="seconds between server RSS samples (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of chat before memory must stay flat (default: the "
                             "time a connection takes to receive 384 messages at this "
                             "workload's rate, at least 30; see docs/reliability.md)")
    parser.add_argument("--rss-slope-max", type=float, default=1.0,
                        help="largest RSS slope after warm-up, MiB/min, still called flat "
                             "(default %(default)s)")
    parser.add_argument("--trace-memory", type=Path, default=None, metavar="DIR",
                        help="run the server under tracemalloc and write snapshots after "
                             "warm-up and at the end to DIR (diagnostics: see "
                             "soak/traced_server.py)")
    parser.add_argument("--watch-sqlite", type=Path, default=None, metavar="DIR",
                        help="keep, in DIR, what the watcher inside the server read every "
                             "2 s (SQLite's memory, malloc's, full collections; always "
                             "in the report)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (server log, records)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    from soak import __doc__ as about

    parser = argparse.ArgumentParser(prog="python -m soak", description=about,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def prepare(args: argparse.Namespace) -> None:
    """Fill in the defaults that depend on the run's size and the machine, and raise the
    limits the run needs (soak/limits.py) before any process starts: each inherits them."""
    if args.workers is None:
        args.workers = limits.default_workers()
    users = max(2, args.connections // args.devices)
    if args.groups is None:
        args.groups = max(1, users * 2 // max(1, args.group_size))
    if args.duration is None:
        # Memory is judged after the warm-up, on at least 20 samples; 4 minutes of them.
        args.duration = warmup_seconds(args) + JUDGED_SECONDS
    needed = limits.open_files_needed(args.connections, args.workers, args.cluster)
    soft, _ = limits.raise_open_files(needed)
    ports = limits.check_ephemeral_ports(args.connections,
                                         args.connections * args.disconnect / 2)
    args.open_files = soft
    args.ports_at_worst = ports


def main(args: argparse.Namespace) -> int:
    if args.connections < 2 or args.devices < 1 or (args.workers or 1) < 1 \
            or (args.duration is not None and args.duration <= 0):
        raise SystemExit("need at least 2 connections, 1 device, 1 worker, a positive duration")
    if args.restart and not args.cluster:
        raise SystemExit("--restart needs --cluster: a node restarted behind the proxy")
    if args.cluster and (args.cluster < 2 or args.db == "sqlite"):
        raise SystemExit("--cluster needs at least 2 nodes and a MariaDB --db (nodes in "
                         "several processes share one database server)")
    report = Soak(args).run()
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if report["violations"] else 0

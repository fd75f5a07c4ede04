"""One measurement: start a pinned server, drive it with the pinned load generator, read /proc."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.peers import Peer
from bench.procstat import cpu_seconds, cpu_times, rss_bytes
from bench.scenarios import Scenario

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
LOADGEN_CPU = "1"
UNSUPPORTED_EXIT = 3


@dataclass
class Settings:
    duration: float          # measured window, seconds
    warmup: float            # unmeasured warm-up, seconds
    max_messages: int        # count bound of each window
    idle_settle: float       # wait after the idle connections opened, before reading RSS
    logs: Path               # server stderr goes here
    payload_file: Path       # the chat message of the deflate scenario
    pin: bool = True         # taskset: server on core 0, generator on core 1
    static_dir: Path | None = None  # the files the HTTP servers serve under /static/
    wrk: str | None = None   # the HTTP load generator (Debian package wrk)


@dataclass
class Measurement:
    peer: str
    scenario: str
    rep: int
    status: str = "ok"       # "ok", "n/a" (the server cannot do it) or "error"
    note: str = ""
    values: dict[str, float] = field(default_factory=dict)
    extensions: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "scenario": self.scenario, "rep": self.rep,
                "status": self.status, "note": self.note, "extensions": self.extensions,
                **self.values}


class _Lines:
    """Lines of a child's stdout, read by a thread so that every wait has a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line; None at end of stream; TimeoutError when none came in time."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output within {timeout:.0f} s") from None


def _pinned(cpu: str, cmd: list[str], pin: bool) -> list[str]:
    # taskset execs the command, so the child's PID is the server's own.
    return ["taskset", "-c", cpu, *cmd] if pin and shutil.which("taskset") else cmd


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _loadgen_args(scenario: Scenario, port: int, settings: Settings) -> list[str]:
    base = f"ws://127.0.0.1:{port}"
    timing = ["-warmup", f"{settings.warmup}s", "-duration", f"{settings.duration}s",
              "-max-messages", str(settings.max_messages)]
    if scenario.kind == "echo":
        args = ["-mode", "echo", "-url", f"{base}/echo", "-conns", str(scenario.conns),
                "-inflight", str(scenario.inflight), *timing]
        if scenario.deflate:
            return args + ["-deflate", "-payload-file", str(settings.payload_file)]
        return args + ["-size", str(scenario.size)]
    if scenario.kind == "broadcast":
        return ["-mode", "broadcast", "-url", f"{base}/broadcast", "-conns",
                str(scenario.conns), "-size", str(scenario.size), *timing]
    return ["-mode", "idle", "-url", f"{base}/echo", "-conns", str(scenario.conns),
            "-hold", "60s"]


def measure(peer: Peer, scenario: Scenario, rep: int, loadgen: Path,
            settings: Settings) -> Measurement:
    """Run `scenario` once against a fresh `peer` server and return what was measured."""
    result = Measurement(peer.name, scenario.key, rep)
    static = None
    if scenario.kind == "http":
        if not peer.http:
            result.status, result.note = "n/a", peer.no_http
            return result
        if settings.wrk is None or settings.static_dir is None:
            result.status, result.note = "n/a", "wrk is not installed (apt-get install wrk)"
            return result
        static = settings.static_dir
    log_path = settings.logs / f"{peer.name}-{scenario.key}-{rep}.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            _pinned(SERVER_CPU, peer.command(loadgen, scenario.deflate, static), settings.pin),
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        )
    try:
        first = _Lines(server.stdout).next(timeout=30)  # type: ignore[arg-type]
        if first is None or not first.startswith("READY "):
            server.wait(5)
            if server.returncode == UNSUPPORTED_EXIT and first and first.startswith("UNSUPPORTED"):
                result.status, result.note = "n/a", first.removeprefix("UNSUPPORTED ")
            else:
                result.status = "error"
                result.note = f"server did not start: {first!r} {_log_tail(log_path)}"
            return result
        port = int(first.split()[1])
        if scenario.kind == "http":
            _drive_wrk(server.pid, scenario, port, settings, result)
        else:
            _drive(server.pid, scenario, port, loadgen, settings, result)
        if server.poll() is not None:
            result.status = "error"
            result.note = f"server exited with {server.returncode}: {_log_tail(log_path)}"
    except (TimeoutError, OSError, ValueError) as error:
        result.status, result.note = "error", str(error)
    finally:
        _stop(server)
    return result


def _drive(pid: int, scenario: Scenario, port: int, loadgen: Path, settings: Settings,
           result: Measurement) -> None:
    baseline_rss = 0
    if scenario.kind == "idle":
        time.sleep(0.5)
        baseline_rss = rss_bytes(pid)
    gen = subprocess.Popen(
        _pinned(LOADGEN_CPU, [str(loadgen), *_loadgen_args(scenario, port, settings)],
                settings.pin),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    lines = _Lines(gen.stdout)  # type: ignore[arg-type]
    timeout = settings.warmup + settings.duration + 120
    cpu_start = cpu_stop = (0.0, 0.0)
    try:
        while (line := lines.next(timeout)) is not None:
            event = json.loads(line)
            kind = event.get("event")
            if kind == "start":
                cpu_start = cpu_times(pid)
            elif kind == "stop":
                cpu_stop = cpu_times(pid)
            elif kind == "opened":
                time.sleep(settings.idle_settle)  # let every handler start before weighing
                rss = rss_bytes(pid)
                result.values["rss_per_conn_kib"] = (rss - baseline_rss) / event["conns"] / 1024
                result.values["server_rss_mib"] = rss / 1024 / 1024
                assert gen.stdin is not None
                gen.stdin.write("\n")
                gen.stdin.flush()
            elif kind == "error" and "invalid compression negotiation" in event["error"]:
                # gorilla's client only does permessage-deflate without context takeover
                # both ways and insists that the answer repeat client_no_context_takeover,
                # which RFC 7692 §7.1.1.2 lets a server leave out (aiohttp does).
                result.status = "n/a"
                result.note = ("its permessage-deflate answer omits client_no_context_takeover, "
                               "which the gorilla client requires")
            elif kind == "error":
                result.status, result.note = "error", f"load generator: {event['error']}"
            elif kind == "result":
                _record(event, cpu_stop[0] - cpu_start[0], cpu_stop[1] - cpu_start[1],
                        scenario, result)
    finally:
        if gen.poll() is None:
            gen.kill()
        gen.wait()


def _record(event: dict[str, Any], server_user: float, server_system: float,
            scenario: Scenario, result: Measurement) -> None:
    if event.get("errors"):
        result.status = "error"
        result.note = f"{event['errors']} connection(s) failed: {event.get('error', '')}"
        return
    result.extensions = event.get("extensions", "")
    if scenario.deflate and "permessage-deflate" not in result.extensions:
        result.status, result.note = "n/a", "server did not negotiate permessage-deflate"
        return
    if scenario.kind == "idle":
        result.values["open_seconds"] = event["open_seconds"]
        return
    messages = event["messages"]
    seconds = event["seconds"]
    server_cpu = server_user + server_system
    result.values.update(
        rate=event["msgs_per_s"],
        p50_us=event["p50_us"],
        p99_us=event["p99_us"],
        gen_cpu_util=event.get("gen_cpu_util", 0.0),
        server_cpu_util=server_cpu / seconds if seconds else 0.0,
        # the rate at which the generator's own core would be full at its measured cost
        # per message: the generator's ceiling for this row
        gen_limit=event["msgs_per_s"] / event["gen_cpu_util"] if event.get("gen_cpu_util") else 0.0,
        # server CPU time per message (per delivery for broadcast): the steadier figure
        cpu_us_per_msg=server_cpu / messages * 1e6 if messages else float("nan"),
        # its user part alone: the library's own work, without the system calls' (the
        # same read and write per message for every peer), which a VM can make dominant
        user_us_per_msg=server_user / messages * 1e6 if messages else float("nan"),
    )
    if scenario.kind == "echo":
        result.values["mbytes_per_s"] = event["mbytes_per_s"]
    if not messages:
        result.status, result.note = "error", "no message completed in the window"


# -- HTTP: wrk ---------------------------------------------------------------------------

_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}
_SIZE = {"B": 1.0, "KB": 1024.0, "MB": 1024.0**2, "GB": 1024.0**3}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_wrk(text: str) -> dict[str, float]:
    """The figures of a `wrk --latency` report: requests, seconds, rate, p50/p99 (µs),
    MB/s, and errors (non-2xx answers and socket errors)."""
    values: dict[str, float] = {}
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if done:
        values["requests"] = float(done.group(1))
        values["seconds"] = float(done.group(2)) * _UNITS[done.group(3)] / 1e6
    rate = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if rate:
        values["rate"] = float(rate.group(1))
    for percent, key in (("50", "p50_us"), ("99", "p99_us")):
        found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        if found:
            values[key] = float(found.group(1)) * _UNITS[found.group(2)]
    transfer = re.search(r"Transfer/sec:\s*([\d.]+)(B|KB|MB|GB)", text)
    if transfer:
        values["mbytes_per_s"] = float(transfer.group(1)) * _SIZE[transfer.group(2)] / 1e6
    errors = 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if non2xx:
        errors += float(non2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        text)
    if sockets:
        errors += sum(float(n) for n in sockets.groups())
    values["errors"] = errors
    return values


def _run_wrk(scenario: Scenario, port: int, seconds: float, settings: Settings) -> str:
    assert settings.wrk is not None
    # wrk takes whole seconds; one thread, as the generator has one core.
    cmd = [settings.wrk, "-t1", f"-c{scenario.conns}", f"-d{max(1, math.ceil(seconds))}s",
           "--latency", f"http://127.0.0.1:{port}{scenario.path}"]
    done = subprocess.run(_pinned(LOADGEN_CPU, cmd, settings.pin), capture_output=True,
                          text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise OSError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _drive_wrk(pid: int, scenario: Scenario, port: int, settings: Settings,
               result: Measurement) -> None:
    """Warm the server up with wrk, then measure one wrk run: its report, the server's CPU
    time over it (from /proc) and wrk's own (its rusage, as a reaped child)."""
    _run_wrk(scenario, port, settings.warmup, settings)
    cpu_start, gen_start = cpu_seconds(pid), _children_cpu()
    report = parse_wrk(_run_wrk(scenario, port, settings.duration, settings))
    server_cpu, gen_cpu = cpu_seconds(pid) - cpu_start, _children_cpu() - gen_start
    requests, seconds = report.get("requests", 0.0), report.get("seconds", 0.0)
    if report["errors"]:
        result.status = "error"
        result.note = f"wrk saw {report['errors']:.0f} errors or non-2xx answers"
        return
    if not requests or not seconds:
        result.status, result.note = "error", "no request completed in the window"
        return
    rate = report.get("rate", requests / seconds)
    result.values.update(
        rate=rate,
        p50_us=report.get("p50_us", float("nan")),
        p99_us=report.get("p99_us", float("nan")),
        mbytes_per_s=report.get("mbytes_per_s", float("nan")),
        gen_cpu_util=gen_cpu / seconds,
        server_cpu_util=server_cpu / seconds,
        gen_limit=rate / (gen_cpu / seconds) if gen_cpu else 0.0,
        cpu_us_per_msg=server_cpu / requests * 1e6,
    )

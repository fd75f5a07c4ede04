"""`python -m bench.profile SCENARIO`: where a server spends its time under one scenario.

Runs a benchmark server (fastim by default) under py-spy (`pip install py-spy`; it is in the
`bench` extra), pinned to the server core, drives it with the scenario's load generator
(the Go one, or wrk for HTTP) pinned to the other core, then prints the functions with
the most samples: their own (self) and with what they call (inclusive).

    python -m bench.profile echo-64c-32B
    python -m bench.profile http-json-64c --peer aiohttp --seconds 6
    python -m bench.profile pipelined-64x16-32B --native-stacks out.txt

py-spy samples wall-clock stacks of the running process: on a shared machine a process
that waits for a core shows in whatever frame it was in, so compare shares, not times.
System calls show as the Python line that made them (for example Connection._flush for
write(2)); time inside uvloop's C code shows as the line that runs the loop.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import peers as peer_list
from bench import scenarios as scenario_list
from bench.__main__ import find_wrk
from bench.build import build_loadgen
from bench.payloads import write_chat_message, write_static_file
from bench.runner import LOADGEN_CPU, REPO_ROOT, SERVER_CPU, Settings, _loadgen_args, _pinned


def top(raw: Path, count: int) -> str:
    """The `count` functions with the most samples in a py-spy raw (collapsed) file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(count)]
    out += ["", "inclusive:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(count)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", help="a scenario key (python -m bench --list)")
    parser.add_argument("--peer", default="fastim", help="the server to profile")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--native-stacks", type=Path, help="keep py-spy's raw output here")
    args = parser.parse_args(argv)

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.access(py_spy, os.X_OK):
        print("bench.profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    (scenario,) = [s for s in scenario_list.SCENARIOS if s.key == args.scenario] or [None]
    if scenario is None or scenario.kind == "idle":
        print(f"bench.profile: no such load scenario {args.scenario!r}", file=sys.stderr)
        return 2
    (peer,) = [p for p in peer_list.PEERS if p.name == args.peer and p.role != "ceiling"]
    loadgen = build_loadgen()
    work = Path(tempfile.mkdtemp(prefix="fastim-profile-"))
    static = write_static_file(work, scenario_list.STATIC_NAME, scenario_list.STATIC_SIZE)
    raw = args.native_stacks or work / "stacks.txt"
    server_cmd = peer.command(loadgen, scenario.deflate,
                              static if scenario.kind == "http" else None)
    spy = subprocess.Popen(
        _pinned(SERVER_CPU, [py_spy, "record", "--nonblocking", "-r", str(args.rate), "-f",
                             "raw", "-o", str(raw), "--", *server_cmd], True),
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    try:
        assert spy.stdout is not None
        line = spy.stdout.readline()
        while line and not line.startswith("READY "):  # py-spy's banner comes first
            line = spy.stdout.readline()
        if not line.startswith("READY "):
            print(f"bench.profile: the server did not start: {line!r}", file=sys.stderr)
            return 1
        port = int(line.split()[1])
        if scenario.kind == "http":
            wrk = find_wrk()
            if wrk is None:
                print("bench.profile: wrk is not installed", file=sys.stderr)
                return 2
            load = [wrk, "-t1", f"-c{scenario.conns}", f"-d{max(1, round(args.seconds))}s",
                    f"http://127.0.0.1:{port}{scenario.path}"]
        else:
            settings = Settings(duration=args.seconds, warmup=0.5, max_messages=0,
                                idle_settle=0, logs=work,
                                payload_file=write_chat_message(work))
            load = [str(loadgen), *_loadgen_args(scenario, port, settings)]
        subprocess.run(_pinned(LOADGEN_CPU, load, True), stdout=subprocess.DEVNULL,
                       timeout=args.seconds + 120)
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output and stops the server
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    time.sleep(0.1)
    print(top(raw, args.top) if raw.exists() else "bench.profile: py-spy wrote nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())

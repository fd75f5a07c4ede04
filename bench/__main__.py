"""`python -m bench`: run the WebSocket benchmark (docs/performance.md) and write its report.

    python -m bench --quick                        # short windows, one repetition
    python -m bench --scenarios echo-64c,pipelined --peers fastim,picows --reps 5
    python -m bench --list                         # the scenarios and peers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import peers as peer_list
from bench import scenarios as scenario_list
from bench.build import BuildError, build_loadgen
from bench.payloads import write_chat_message, write_static_file
from bench.procstat import machine, raise_nofile
from bench.report import aggregate, cell_notes, chart, markdown
from bench.runner import Measurement, Settings, measure

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 s windows, 0.3 s warm-up, 1 repetition (unless given)")
    parser.add_argument("--scenarios", help="comma-separated scenario keys or prefixes")
    parser.add_argument("--peers", help="comma-separated peers (default: all)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; quick: 1)")
    parser.add_argument("--duration", type=float, help="measured window, s (default 4)")
    parser.add_argument("--warmup", type=float, help="warm-up before each window, s (default 1)")
    parser.add_argument("--max-messages", type=int, default=50_000_000,
                        help="count bound of each window")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the Go reference server (the generator's ceiling)")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory for the JSON, markdown, chart and server logs")
    parser.add_argument("--chart", type=Path, help="where to write the PNG (default: in --out)")
    parser.add_argument("--list", action="store_true", help="list scenarios and peers, then exit")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.duration is None:
        args.duration = 1.0 if args.quick else 4.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 1.0
    return args


def fastim_note() -> str | None:
    """Why fastim cannot be measured in this checkout, or None when it can."""
    try:
        from fastim.ws import serve  # noqa: F401
    except ImportError as error:
        return (f"fastim.ws skipped: no serve() in this checkout ({error}); "
                "ratios to fastim are blank until the ws branch is merged")
    return None


def find_wrk() -> str | None:
    """wrk, the HTTP load generator; installed with apt-get (Debian's `wrk`) when missing
    and the harness runs as root."""
    wrk = shutil.which("wrk")
    if wrk is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk with apt-get", file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=False,
                       stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
    return wrk


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = scenario_list.select(args.scenarios)
    peers = peer_list.select(args.peers, ceiling=not args.no_ceiling)
    if args.list:
        for s in scenario_list.SCENARIOS:
            print(f"{s.key:24} {s.title}")
        print("peers:", ", ".join(p.name for p in peer_list.PEERS))
        return 0

    notes: list[str] = []
    skip = fastim_note()
    if skip and any(p.role == "fastim" for p in peers):
        print(f"bench: {skip}", file=sys.stderr)
        notes.append(skip)
        peers = [p for p in peers if p.role != "fastim"]
    try:
        loadgen = build_loadgen()
    except BuildError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    pin = not args.no_pin and shutil.which("taskset") is not None
    if pin and len(os.sched_getaffinity(0)) < 2:
        pin = False
    if not pin:
        notes.append("not pinned: server and generator shared the cores")
    # 10,000 idle connections need 10,000 descriptors in the server and in the generator.
    nofile = raise_nofile(max(s.conns for s in scenarios) + 1024)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / f"logs-{stamp}"
    logs.mkdir()
    wrk = None
    if any(s.kind == "http" for s in scenarios):
        wrk = find_wrk()
        if wrk is None:
            notes.append("HTTP rows not measured: wrk is not installed (apt-get install wrk)")
    settings = Settings(duration=args.duration, warmup=args.warmup,
                        max_messages=args.max_messages, idle_settle=1.0, logs=logs,
                        payload_file=write_chat_message(args.out), pin=pin,
                        static_dir=write_static_file(args.out, scenario_list.STATIC_NAME,
                                                     scenario_list.STATIC_SIZE),
                        wrk=wrk)
    host = machine()
    print(f"bench: {len(scenarios)} scenarios × {len(peers)} servers × {args.reps} reps; "
          f"{args.duration:g} s windows; nproc {host['nproc']}, {host['cpu']}; "
          f"load {host['loadavg']}; RLIMIT_NOFILE {nofile}", file=sys.stderr)

    measurements: list[Measurement] = []
    # Repetitions on the outside, servers innermost: every peer meets the machine in the
    # same state as fastim within a repetition, which is what makes the ratios fair.
    for rep in range(1, args.reps + 1):
        for scenario in scenarios:
            for peer in peers:
                m = measure(peer, scenario, rep, loadgen, settings)
                measurements.append(m)
                shown = {k: round(v, 2) for k, v in m.values.items()}
                print(f"  rep {rep} {scenario.key:22} {peer.name:10} {m.status:5} "
                      f"{shown} {m.note}", file=sys.stderr, flush=True)

    table = aggregate(measurements)
    notes += cell_notes(table, scenarios, peers)
    text = markdown(table, scenarios, peers, args.reps, notes)
    chart_path = args.chart or args.out / f"bench-{stamp}.png"
    drew = chart(table, scenarios, peers, chart_path,
                 f"{time.strftime('%Y-%m-%d')}, {host['nproc']} CPUs ({host['cpu']}), "
                 f"median of {args.reps}, {args.duration:g} s windows")
    header = (f"### WebSocket benchmark, {time.strftime('%Y-%m-%d %H:%M')}\n\n"
              f"Machine: {host['nproc']} CPUs ({host['cpu']}), {host['memory']}, "
              f"Linux {host['kernel']}, load average at start {host['loadavg']}. "
              f"Windows of {args.duration:g} s after {args.warmup:g} s of warm-up, "
              f"{args.reps} repetition(s); server on CPU 0, generator on CPU 1"
              f"{'' if pin else ' (not pinned)'}.\n\n")
    report = header + text + (f"\nChart: {chart_path}\n" if drew else "")
    (args.out / f"bench-{stamp}.md").write_text(report)
    (args.out / f"bench-{stamp}.json").write_text(json.dumps(
        {"machine": host, "settings": {"duration": args.duration, "warmup": args.warmup,
                                       "reps": args.reps, "pinned": pin},
         "measurements": [m.as_dict() for m in measurements]}, indent=1))
    print(report)
    print(f"bench: results in {args.out}/bench-{stamp}.{{md,json}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

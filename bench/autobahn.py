"""`python -m bench.autobahn`: fastim.ws through Autobahn|Testsuite, as client and as server.

    python -m bench.autobahn client        # the suite plays the server (fuzzingserver)
    python -m bench.autobahn server        # the suite plays the client (fuzzingclient)
    python -m bench.autobahn client --cases '12.*,13.*' --option client_max_window_bits=12

The suite is Python 2 code; bench/autobahn-setup.sh unpacks a Python 2.7 from Debian 11's
packages and installs the suite into it (docs/performance.md, "Conformance suite"). The
reports land in bench/results/autobahn/{client,server}/ (index.html to read them); this
prints the count of each verdict and every case that is neither OK nor INFORMATIONAL, and
exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from fastim.ws import ConnectionClosed, InvalidHandshake, connect
from soak.run import free_port, wait_listening

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "autobahn"
DEFAULT_WSTEST = Path(os.environ.get("FASTIM_PY27", "/opt/fastim-py27")) / "usr" / "bin" / "wstest"
AGENT = "fastim"
# Section 9's largest messages are 16 MiB; the default max_size (1 MiB) would refuse them.
MAX_SIZE = 16 * 1024 * 1024
# Only verdicts that say fastim did wrong; INFORMATIONAL and UNIMPLEMENTED are the suite's.
BAD = {"FAILED", "NON-STRICT", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"}


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`--option client_max_window_bits=12` -> connect(compression_options={...: 12})."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        options[name] = int(value) if value.isdigit() else (value or True)
    return options


async def echo_case(url: str, compression_options: dict[str, Any]) -> None:
    """One case: echo every message until the suite closes (what its cases expect)."""
    try:
        async with connect(url, max_size=MAX_SIZE, compression_options=compression_options,
                           open_timeout=30) as ws:
            async for message in ws:
                await ws.send(message)
    except (ConnectionClosed, InvalidHandshake, OSError):
        pass  # the suite judges what it saw on the wire; the report says the rest


async def drive_cases(base: str, compression_options: dict[str, Any]) -> int:
    async with connect(f"{base}/getCaseCount") as ws:
        count = int(await ws.recv())
    for case in range(1, count + 1):
        await echo_case(f"{base}/runCase?case={case}&agent={AGENT}", compression_options)
        if case % 50 == 0:
            print(f"  {case} of {count} cases", flush=True)
    async with connect(f"{base}/updateReports?agent={AGENT}") as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()  # the suite closes when the reports are written
    return count


def run_client(args: argparse.Namespace) -> Path:
    outdir = RESULTS / "client"
    port = free_port()
    spec = {"url": f"ws://127.0.0.1:{port}", "outdir": str(outdir),
            "cases": args.cases.split(","), "exclude-cases": [], "exclude-agent-cases": {}}
    spec_path = RESULTS / "fuzzingserver.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2))
    suite = subprocess.Popen([str(args.wstest), "-m", "fuzzingserver", "-s", str(spec_path)],
                             cwd=RESULTS, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, suite)
        count = asyncio.run(drive_cases(f"ws://127.0.0.1:{port}", parse_options(args.option)))
        print(f"ran {count} cases")
    finally:
        suite.terminate()
        suite.wait(10)
    return outdir


def run_server(args: argparse.Namespace) -> Path:
    outdir = RESULTS / "server"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fastim.ws", "echo", "--host", "127.0.0.1",
                               "--port", str(port), "--max-size", str(MAX_SIZE)])
    spec = {"outdir": str(outdir), "servers": [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}"}],
            "cases": args.cases.split(","), "exclude-cases": [], "exclude-agent-cases": {}}
    spec_path = RESULTS / "fuzzingclient.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2))
    try:
        wait_listening(port, server)
        subprocess.run([str(args.wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                       cwd=RESULTS, stdout=subprocess.DEVNULL, check=True)
    finally:
        server.terminate()
        server.wait(10)
    return outdir


def summarise(outdir: Path) -> int:
    """Print the verdicts of index.json; 1 if a case went wrong on fastim's side."""
    cases = json.loads((outdir / "index.json").read_text())[AGENT]
    verdicts: Counter[str] = Counter()
    wrong = []
    for case_id, result in cases.items():
        for verdict in {result["behavior"], result["behaviorClose"]}:
            verdicts[verdict] += 1
            if verdict in BAD:
                wrong.append((case_id, result["behavior"], result["behaviorClose"]))
    print(f"{len(cases)} cases; verdicts (behaviour and close, each counted once a case): "
          + ", ".join(f"{name} {count}" for name, count in verdicts.most_common()))
    informational = sorted(k for k, r in cases.items() if r["behavior"] == "INFORMATIONAL")
    if informational:
        print("INFORMATIONAL: " + ", ".join(informational))
    for case_id, behavior, close in sorted(set(wrong)):
        print(f"  {case_id}: {behavior} / close {close}")
    print(f"report: {outdir / 'index.html'}")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autobahn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("side", choices=("client", "server"), help="which side fastim plays")
    parser.add_argument("--cases", default="*", help="comma-separated case patterns (default *)")
    parser.add_argument("--option", action="append", default=[],
                        help="client: a compression option, NAME[=VALUE] (repeatable)")
    parser.add_argument("--wstest", type=Path, default=DEFAULT_WSTEST,
                        help=f"the suite's wstest (default {DEFAULT_WSTEST})")
    args = parser.parse_args(argv)
    if not args.wstest.exists():
        raise SystemExit(f"{args.wstest} is missing: run bench/autobahn-setup.sh first")
    outdir = run_client(args) if args.side == "client" else run_server(args)
    return summarise(outdir)


if __name__ == "__main__":
    sys.exit(main())

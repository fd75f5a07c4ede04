"""A quick smoke test of the benchmark harness (docs/performance.md): it must measure, not just run.

One short echo run against the websockets peer (an extra of `test`) through the real
load generator, plus the pure parts: /proc readers, medians, ratios, the table.
Skips when Go and gorilla/websocket are not installed (`make bench` installs them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.build import BuildError, build_loadgen
from bench.payloads import chat_message_bytes
from bench.peers import PEERS
from bench.procstat import cpu_seconds, rss_bytes
from bench.report import aggregate, markdown
from bench.runner import Measurement, Settings, measure
from bench.scenarios import SCENARIOS, select


def test_proc_readers_see_this_process() -> None:
    sum(i * i for i in range(200_000))  # some CPU time to see
    assert cpu_seconds(os.getpid()) > 0
    assert rss_bytes(os.getpid()) > 1024 * 1024


def test_scenarios_cover_the_issue() -> None:
    keys = {s.key for s in SCENARIOS}
    for conns in (1, 64):
        for size in ("32B", "1KiB", "64KiB", "1MiB"):
            assert f"echo-{conns}c-{size}" in keys
    assert {"pipelined-64x16-32B", "broadcast-100", "broadcast-1000", "idle-10000",
            "deflate-chat-64c"} <= keys
    assert [s.key for s in select("broadcast")] == ["broadcast-100", "broadcast-1000"]
    # The sweep: every size from 32 B to 16 MiB, run only when asked for.
    sweep = [s.size for s in select("sweep")]
    assert sweep[0] == 32 and sweep[-1] == 16 * 1024 * 1024 and len(sweep) == 8
    assert not any(s.key.startswith("sweep") for s in select(None))
    with pytest.raises(SystemExit):
        select("nonsense")
    assert b'"cmd":11' in chat_message_bytes()


def test_medians_and_ratios_in_the_table() -> None:
    runs = [Measurement("fastim", "echo-64c-32B", rep, values={"rate": rate, "cpu_us_per_msg": cpu})
            for rep, (rate, cpu) in enumerate([(100.0, 5.0), (300.0, 3.0), (200.0, 4.0)])]
    runs += [Measurement("picows", "echo-64c-32B", 1, values={"rate": 100.0, "cpu_us_per_msg": 8.0}),
             Measurement("websockets", "echo-64c-32B", 1,
                         values={"rate": 40.0, "cpu_us_per_msg": 12.0}),
             Measurement("aiohttp", "echo-64c-32B", 1, status="error", note="boom")]
    table = aggregate(runs)
    assert table["echo-64c-32B"]["fastim"].values["rate"] == 200.0  # the median
    peers = [p for p in PEERS if p.name in ("fastim", "picows", "aiohttp")]
    text = markdown(table, select("echo-64c-32B"), peers, 3, [])
    row = next(line for line in text.splitlines() if line.startswith("| echo, 64 conns, 32 B (msg/s)"))
    # fastim ÷ picows throughput; ‡: against fastim (async for), the callback server not run
    assert "100 (×2.00‡)" in row and "error²" in row
    cpu = next(line for line in text.splitlines() if line.startswith("| echo, 64 conns, 32 B (µs)"))
    assert "8 (×2.00‡)" in cpu                             # picows ÷ fastim CPU per message

    # With the callback server in the run, picows (a callback API) is compared with it and
    # websockets (a coroutine API) with fastim (async for).
    runs.append(Measurement("fastim-cb", "echo-64c-32B", 1,
                            values={"rate": 400.0, "cpu_us_per_msg": 2.0}))
    peers = [p for p in PEERS if p.name in ("fastim", "fastim-cb", "websockets", "picows")]
    text = markdown(aggregate(runs), select("echo-64c-32B"), peers, 3, [])
    assert "picows against fastim (callback)" in text
    row = next(line for line in text.splitlines() if line.startswith("| echo, 64 conns, 32 B (msg/s)"))
    assert "| 100 (×4.00) |" in row and "| 40 (×5.00) |" in row
    cpu = next(line for line in text.splitlines() if line.startswith("| echo, 64 conns, 32 B (µs)"))
    assert "| 8 (×4.00) |" in cpu and "| 12 (×3.00) |" in cpu


@pytest.mark.parametrize("name", ["websockets", "fastim-cb"])
def test_one_short_echo_run_measures_the_server(tmp_path: Path, name: str) -> None:
    """A peer, and fastim's callback server (`--echo callback`)."""
    try:
        loadgen = build_loadgen(install=False)
    except BuildError as error:
        pytest.skip(str(error))
    settings = Settings(duration=0.3, warmup=0.1, max_messages=1_000_000, idle_settle=0.1,
                        logs=tmp_path, payload_file=tmp_path / "unused.json")
    peer = next(p for p in PEERS if p.name == name)
    result = measure(peer, select("echo-1c-32B")[0], 1, loadgen, settings)
    assert result.status == "ok", result.note
    assert result.values["rate"] > 0
    assert result.values["cpu_us_per_msg"] > 0   # the server's own CPU time was read
    assert 0 <= result.values["user_us_per_msg"] <= result.values["cpu_us_per_msg"]
    assert result.values["p50_us"] <= result.values["p99_us"]


WRK_REPORT = """Running 1s test @ http://127.0.0.1:8080/json
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.42ms  310.21us   9.80ms   92.31%
    Req/Sec    45.32k     1.21k   46.90k    80.00%
  Latency Distribution
     50%    1.38ms
     75%    1.49ms
     90%    1.63ms
     99%  512.00us
  45321 requests in 1.00s, 7.61MB read
  Non-2xx or 3xx responses: 2
Requests/sec:  45276.73
Transfer/sec:      7.60MB
"""


def test_wrk_report_is_read() -> None:
    from bench.runner import parse_wrk

    values = parse_wrk(WRK_REPORT)
    assert values["requests"] == 45321 and values["seconds"] == 1.0
    assert values["rate"] == 45276.73
    assert values["p50_us"] == 1380.0 and values["p99_us"] == 512.0
    assert round(values["mbytes_per_s"], 2) == 7.97  # 7.60 MiB
    assert values["errors"] == 2


def test_http_scenarios_and_their_servers() -> None:
    http = select("http")
    assert [s.key for s in http] == ["http-json-64c", "http-static-27KiB-64c"]
    assert all(s.rate_label == "req/s" for s in http)
    fastim = next(p for p in PEERS if p.name == "fastim")
    command = fastim.command(Path("loadgen"), False, Path("/tmp/static"))
    assert "bench.servers.fastim_http_server" in command and "/tmp/static" in command
    assert not next(p for p in PEERS if p.name == "picows").http

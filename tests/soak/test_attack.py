"""`python -m soak.attack` (`make attack`) in small: the second outside attack replayed
against a real `fastim serve` process, and every attack must hold.

The floods are the quick ones (`--quick`); nothing here asserts on time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soak import attack

#: Every attack of the second outside attack: each must print `held`.
MUST_HOLD = {
    "http-1.0-upgrade",
    "content-length-list",
    "pipelined-http",
    "ws-ping-flood",
    "chat-parser-escapes",
    "percent-encoded-token",
    "gif-trailer",
    "image-url",
    "history-total-pagesize",
    "connections-per-user",
    "per-user-rate",
    "acks-before-rate-close",
    "passwd-guessing",
    "register-flood",
    "password-rules",
    "invisible-lookalike-names",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """A real `python -m fastim serve` on SQLite: (port, pid, the file its log goes to)."""
    with attack.fresh_server(tmp_path) as running:
        yield running


def test_every_attack_is_listed_here() -> None:
    assert set(attack.ALL) == MUST_HOLD


def test_every_attack_holds(server: tuple[int, int, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    port, pid, log = server
    status = attack.main(["--port", str(port), "--log", str(log), "--quick",
                          "--time-limit", "240"])
    lines = capsys.readouterr().out.splitlines()
    verdicts = {line.split()[1]: line.split()[0] for line in lines[1:-1]}
    assert set(verdicts) == set(attack.ALL), lines
    assert lines[0] == f"attacking 127.0.0.1:{port} (server pid {pid})"
    assert {name for name in MUST_HOLD if verdicts[name] != "held"} == set(), lines
    assert status == 0


@pytest.mark.parametrize("host", ["192.0.2.1", "10.0.0.1", "2001:db8::1"])
def test_a_target_off_this_machine_is_refused(host: str) -> None:
    with pytest.raises(SystemExit) as refused:
        attack.main(["--host", host, "--port", "1", "--time-limit", "1"])
    assert "not a loopback address" in str(refused.value.code)


def test_loopback_targets_are_taken() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        attack.require_loopback(host, 1)

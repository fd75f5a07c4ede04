"""`python -m bench.store` (docs/store.md): it seeds, measures every row and reports the
growth, here on two tiny SQLite databases (seconds, not the minutes of a real run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import store as bench_store


def test_the_store_benchmark_reports_every_row(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_store.main(["--messages", "1200", "--small", "400", "--backends", "sqlite",
                             "--friends", "30", "--groups", "4", "--group-size", "8",
                             "--repeat", "3", "--dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for row in ("history, first page", "unread (U)", "unread (L)", "sync page from 0 (U)",
                "reads (a group)", "login (store part)", "connect (store part)",
                "full sync (U)"):
        assert f"| {row} |" in table
    assert "400 and 1,200 messages" in table
    # A second run reuses the seeded files.
    assert bench_store.main(["--messages", "1200", "--small", "400", "--backends", "sqlite",
                             "--friends", "30", "--groups", "4", "--group-size", "8",
                             "--repeat", "3", "--dir", str(tmp_path)]) == 0
    assert "seeded" not in capsys.readouterr().err

"""`python -m soak.traced_server DIR serve ...`: `fastim serve` with tracemalloc on.

For finding where memory grows (`python -m soak --trace-memory DIR`): each SIGUSR1 writes
a snapshot to DIR/snapN.bin; `python -m soak.traced_server --diff A B` prints the source
lines whose allocations grew most between two snapshots. Tracing slows the server down
and adds its own memory, so a traced run's RSS verdict means nothing.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def diff(before: str, after: str, top: int = 15) -> list[str]:
    old = tracemalloc.Snapshot.load(before)
    new = tracemalloc.Snapshot.load(after)
    stats = new.compare_to(old, "lineno")
    return [str(stat) for stat in stats[:top]]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--diff"]:
        print("\n".join(diff(argv[1], argv[2])))
        return 0
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(1)
    taken = 0

    def snapshot(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        tracemalloc.take_snapshot().dump(str(folder / f"snap{taken}.bin"))
        taken += 1

    signal.signal(signal.SIGUSR1, snapshot)
    from fastim.__main__ import main as fastim_main

    return fastim_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m soak.traced_server DIR MODE serve ...`: `fastim serve` watched from inside.

For finding where memory grows. In both modes a thread writes, every 2 s, a line
`monotonic-seconds sqlite-bytes` to DIR/sqlite-memory.txt: what SQLite's allocator holds
(`sqlite3_memory_used()`, mostly the page caches of the store's connections), which RSS
counts but tracemalloc cannot see. MODE `trace` also runs tracemalloc: each SIGUSR1 writes
a snapshot to DIR/snapN.bin, and `python -m soak.traced_server --diff A B` prints the
source lines whose allocations grew most between two snapshots (tracing slows the server
and adds memory of its own, so a traced run's RSS verdict means nothing). MODE `watch`
only watches SQLite.
"""

from __future__ import annotations

import ctypes
import gc
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from types import FrameType


def diff(before: str, after: str, top: int = 15) -> list[str]:
    old = tracemalloc.Snapshot.load(before)
    new = tracemalloc.Snapshot.load(after)
    stats = new.compare_to(old, "lineno")
    return [str(stat) for stat in stats[:top]]


def watch_sqlite(path: Path) -> None:
    """Python's sqlite3 module links the system's libsqlite3: ask the same library."""
    library = ctypes.CDLL("libsqlite3.so.0")
    library.sqlite3_memory_used.restype = ctypes.c_int64
    with open(path, "a", encoding="ascii") as out:
        while True:
            out.write(f"{time.monotonic():.2f} {library.sqlite3_memory_used()}\n")
            out.flush()
            time.sleep(2.0)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--diff"]:
        print("\n".join(diff(argv[1], argv[2])))
        return 0
    folder, mode = Path(argv[0]), argv[1]
    folder.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=watch_sqlite, args=(folder / "sqlite-memory.txt",),
                     daemon=True).start()
    if mode == "trace":
        tracemalloc.start(1)
        taken = 0

        def snapshot(signum: int, frame: FrameType | None) -> None:
            nonlocal taken
            # Cyclic garbage (a closed connection and its transport, futures, timers)
            # waits for a full collection, which a big heap makes rare: collect first,
            # so the snapshot holds what is really kept, and log what was waiting.
            waiting = gc.collect()
            with open(folder / "collected.txt", "a", encoding="ascii") as out:
                out.write(f"snap{taken}: {waiting} objects collected first\n")
            tracemalloc.take_snapshot().dump(str(folder / f"snap{taken}.bin"))
            taken += 1

        signal.signal(signal.SIGUSR1, snapshot)
    from fastim.__main__ import main as fastim_main

    return fastim_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

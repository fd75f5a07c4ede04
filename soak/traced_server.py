"""`python -m soak.traced_server DIR MODE serve ...`: `fastim serve` watched from inside.

For finding where memory grows; `python -m soak` always runs the server under it. In
both modes a thread writes, every 2 s, a line `monotonic-seconds sqlite-bytes malloc-used
malloc-free malloc-mapped full-collections collected` to DIR/sqlite-memory.txt: what
SQLite's allocator holds (`sqlite3_memory_used()`, mostly the page caches of the store's
connections), which RSS counts but tracemalloc cannot see; glibc's `mallinfo2()`: bytes
malloc has handed out (SQLite's, the C parts of Python and its extensions; not Python's
small objects, which live in arenas of their own), bytes it holds free in its heaps (kept,
not given back to the system), and bytes in big blocks mapped one by one; and how many
full collections the cycle collector has made. The watcher only reads: the server runs as
`fastim serve` does. The experiment SOAK_GC_EVERY=N (an environment variable; it changes
what is measured) runs a full collection every N seconds, writes what it freed as `collected`
and the most common kinds of it to DIR/garbage.txt: what was cyclic garbage.

MODE `trace` also runs tracemalloc: each SIGUSR1 writes a snapshot to DIR/snapN.bin, and
`python -m soak.traced_server --diff A B` prints the source lines whose allocations grew
most between two snapshots (tracing slows the server and adds memory of its own, so a
traced run's RSS verdict means nothing). MODE `watch` only watches.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
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


class MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33+), every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_bytes() -> tuple[int, int, int]:
    """(in use, free but kept, mapped one by one) of glibc's malloc; zeros elsewhere."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return (0, 0, 0)
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return (info.uordblks, info.fordblks, info.hblkhd)


def census(path: Path, now: float) -> int:
    """A full collection that keeps what it frees (gc.DEBUG_SAVEALL) and writes the most
    common kinds of it to `path`: which objects were cyclic garbage."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        collected = gc.collect()
        kinds = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}"
                                    for o in gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{now:.2f} {collected} {kinds.most_common(25)}\n")
    return collected


def watch_sqlite(path: Path) -> None:
    """Python's sqlite3 module links the system's libsqlite3: ask the same library."""
    try:
        library = ctypes.CDLL("libsqlite3.so.0")
        library.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite_bytes = library.sqlite3_memory_used
    except OSError:  # not the system's library: nothing to read, say 0
        def sqlite_bytes() -> int:
            return 0
    # Experiment only (it changes what is measured): SOAK_GC_EVERY=N runs a full
    # collection every N seconds, to tell cyclic garbage from memory really kept.
    collect_every = float(os.environ.get("SOAK_GC_EVERY", "0"))
    last_collect = time.monotonic()
    folder = path.parent
    with open(path, "a", encoding="ascii") as out:
        while True:
            used, free, mapped = malloc_bytes()
            now = time.monotonic()
            collected = -1
            if collect_every and now - last_collect >= collect_every:
                collected = census(folder / "garbage.txt", now)
                last_collect = now
            full = gc.get_stats()[2]["collections"]
            out.write(f"{now:.2f} {sqlite_bytes()} "
                      f"{used} {free} {mapped} {full} {collected}\n")
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

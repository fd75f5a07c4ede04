"""The server's resident memory over the soak, and whether it stays flat.

A sampler thread reads VmRSS from /proc/PID/status every few seconds. After a warm-up
(connections opening, each connection's record of sent ids reaching its size) the steady
part should not grow: its least-squares slope, in MiB per minute, is compared with a
threshold (see docs/reliability.md for why the default is what it is). SQLite's own memory
(its page caches, which fill over minutes as the database grows) is bounded apart: the
slope is judged on RSS less what SQLite reports holding, and that is checked against its
ceiling instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


def rss_kib(pid: int) -> dict[str, int] | None:
    """VmRSS of `pid` in KiB, and its parts (RssAnon: the heap, Python's and SQLite's
    page cache alike; RssFile and RssShmem: mapped files, such as SQLite's WAL index),
    or None once the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name = line.split(":", 1)[0]
                if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    found[name] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return found if "VmRSS" in found else None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far (/proc/PID/stat fields 14 and 15)."""
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sampler:
    pid: int
    interval: float = 2.0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, KiB)
    parts: list[dict[str, int]] = field(default_factory=list)  # the breakdown of each
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kib = rss_kib(self.pid)
            if kib is None:
                return
            self.samples.append((time.monotonic(), kib["VmRSS"]))
            self.parts.append(kib)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def slope_mib_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) points, in MiB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return cov / var * 60 / 1024


def less(samples: list[tuple[float, int]],
         other: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """`samples` (seconds, KiB) minus, at each, the latest of `other` (seconds, KiB) taken
    at or before it (the first one before any): RSS without a part measured apart, such as
    SQLite's own memory, which has a ceiling of its own."""
    if not other:
        return list(samples)
    out = []
    index = 0
    for t, kib in samples:
        while index + 1 < len(other) and other[index + 1][0] <= t:
            index += 1
        out.append((t, kib - other[index][1]))
    return out


def summary(samples: list[tuple[float, int]], start: float, warmup_end: float,
            end: float, parts: list[dict[str, int]] | None = None,
            judged: list[tuple[float, int]] | None = None) -> dict[str, object]:
    """RSS at the start of the chat, after warm-up and at the end, and the steady slope of
    `judged` (RSS itself unless given: RSS less what is bounded apart)."""
    steady_judged = [(t, m) for t, m in (samples if judged is None else judged)
                     if warmup_end <= t <= end]
    chat = [(t, m) for t, m in samples if start <= t <= end]
    steady = [(t, m) for t, m in chat if t >= warmup_end]

    def at(points: list[tuple[float, int]], index: int) -> float | None:
        return round(points[index][1] / 1024, 1) if points else None

    return {
        "samples": len(samples),
        "before_chat_mib": at([(t, m) for t, m in samples if t < start] or chat, -1),
        "chat_start_mib": at(chat, 0),
        "warmup_end_mib": at(steady, 0),
        "end_mib": at(chat, -1),
        "peak_mib": round(max(m for _, m in chat) / 1024, 1) if chat else None,
        "steady_samples": len(steady),
        "steady_minutes": round((steady[-1][0] - steady[0][0]) / 60, 2) if steady else 0,
        "steady_slope_mib_per_min": round(slope_mib_per_min(steady_judged), 3),
        "half_slopes_mib_per_min": [round(slope_mib_per_min(half), 3) for half in
                                    (steady_judged[:len(steady_judged) // 2],
                                     steady_judged[len(steady_judged) // 2:])],
        "rss_steady_slope_mib_per_min": round(slope_mib_per_min(steady), 3),
        "timeline_mib": [(round(t - start, 1), round(m / 1024, 1)) for t, m in samples],
        # (seconds, RssAnon, RssFile, RssShmem) in MiB: which kind of memory grew
        "parts_mib": [(round(t - start, 1), *(round(p.get(k, 0) / 1024, 1) for k in
                                              ("RssAnon", "RssFile", "RssShmem")))
                      for (t, _), p in zip(samples, parts or [], strict=False)],
    }

"""Medians over repetitions, ratios to fastim, the markdown tables and the PNG chart."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import Peer
from bench.runner import Measurement
from bench.scenarios import Scenario

# A row is limited by the generator, not the server, when the generator's core was this busy
# while the server's was not.
SATURATED = 0.9


@dataclass
class Cell:
    """The median of one peer's repetitions of one scenario."""

    status: str
    note: str = ""
    values: dict[str, float] = field(default_factory=dict)
    runs: int = 0

    def get(self, key: str) -> float | None:
        value = self.values.get(key)
        return None if value is None or math.isnan(value) else value

    @property
    def generator_bound(self) -> bool:
        gen, srv = self.get("gen_cpu_util"), self.get("server_cpu_util")
        return gen is not None and srv is not None and gen >= SATURATED and srv < SATURATED


Table = dict[str, dict[str, Cell]]  # scenario key -> peer name -> cell


def aggregate(measurements: list[Measurement]) -> Table:
    grouped: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        grouped.setdefault((m.scenario, m.peer), []).append(m)
    table: Table = {}
    for (scenario, peer), runs in grouped.items():
        ok = [m for m in runs if m.status == "ok"]
        if not ok:
            table.setdefault(scenario, {})[peer] = Cell(runs[0].status, runs[0].note)
            continue
        keys = {k for m in ok for k in m.values}
        medians = {k: statistics.median(m.values[k] for m in ok if k in m.values) for k in keys}
        note = "" if len(ok) == len(runs) else f"{len(runs) - len(ok)} of {len(runs)} runs failed"
        table.setdefault(scenario, {})[peer] = Cell("ok", note, medians, len(ok))
    return table


def _si(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _ratio(fastim: float | None, peer: float | None, higher_is_better: bool,
           mark: str = "") -> str:
    """fastim's advantage over the peer: > 1 means fastim is better."""
    if fastim is None or peer is None or fastim <= 0 or peer <= 0:
        return ""
    ratio = fastim / peer if higher_is_better else peer / fastim
    return f" (×{ratio:.2f}{mark})"


Render = Callable[[Cell], str]


def _value(key: str, fmt: Callable[[float], str]) -> Render:
    def render(cell: Cell) -> str:
        value = cell.get(key)
        return "—" if value is None else fmt(value)
    return render


def _rate(cell: Cell) -> str:
    text = _value("rate", _si)(cell)
    return text + " †" if cell.generator_bound else text


def _latency(cell: Cell) -> str:
    return f"{_value('p50_us', _num)(cell)} / {_value('p99_us', _num)(cell)}"


def _saturation(cell: Cell) -> str:
    return (f"{_value('server_cpu_util', '{:.2f}'.format)(cell)} / "
            f"{_value('gen_cpu_util', '{:.2f}'.format)(cell)} / "
            f"{_value('gen_limit', _si)(cell)}")


def _base(cells: dict[str, Cell], peer: Peer) -> tuple[Cell | None, str]:
    """The fastim cell `peer` is compared with: the server of its own style (`versus`),
    or, when that one was not run, fastim (async for), marked ‡."""
    if peer.versus in cells or peer.versus == "fastim":
        return cells.get(peer.versus), ""
    return cells.get("fastim"), "‡"


def versus_note(peers: list[Peer]) -> str:
    """Which fastim server each peer's ratios are computed against."""
    labels = {p.name: p.label for p in peers}
    groups: dict[str, list[str]] = {}
    for p in peers:
        if p.role == "peer":
            groups.setdefault(p.versus, []).append(p.label)
    parts = [f"{', '.join(names)} against {labels.get(versus, versus)}"
             for versus, names in groups.items()]
    return "; ".join(parts)


def _table(title: str, table: Table, scenarios: list[Scenario], peers: list[Peer], unit: str,
           render: Render, ratio_key: str | None = None,
           higher_is_better: bool = True) -> list[str]:
    rows = [title, "", "| scenario | " + " | ".join(p.label for p in peers) + " |",
            "|---|" + "---:|" * len(peers)]
    for s in scenarios:
        cells = table.get(s.key, {})
        texts = []
        for peer in peers:
            cell = cells.get(peer.name)
            if cell is None:
                texts.append("—")
                continue
            if cell.status != "ok":
                texts.append("n/a¹" if cell.status == "n/a" else "error²")
                continue
            text = render(cell)
            fastim, mark = _base(cells, peer)
            if (ratio_key and peer.role == "peer" and fastim is not None
                    and fastim.status == "ok"):
                text += _ratio(fastim.get(ratio_key), cell.get(ratio_key), higher_is_better,
                               mark)
            texts.append(text)
        label = s.rate_label if unit == "rate" else unit
        rows.append(f"| {s.title} ({label}) | " + " | ".join(texts) + " |")
    return rows + [""]


def markdown(table: Table, scenarios: list[Scenario], peers: list[Peer], reps: int,
             notes: list[str]) -> str:
    """The report's tables; `notes` are listed under them."""
    flow = [s for s in scenarios if s.kind != "idle"]
    idle = [s for s in scenarios if s.kind == "idle"]
    runs = f"median of {reps} run{'s' if reps > 1 else ''}"
    out: list[str] = []
    versus = versus_note(peers)
    if versus and any(p.name != "fastim" and p.role == "fastim" for p in peers):
        out += [f"Each ratio compares a peer with the fastim server written in the same "
                f"style: {versus}.", ""]
    if flow:
        out += _table(f"#### Throughput ({runs}; (×r) = fastim ÷ peer in the same run, "
                      "> 1 means fastim is faster)", table, flow, peers, "rate", _rate,
                      "rate", higher_is_better=True)
        out += _table("#### Server CPU time per message, µs (per delivery for broadcast, per "
                      "request for HTTP; (×r) = peer ÷ fastim, > 1 means fastim spends less)",
                      table, flow, peers,
                      "µs", _value("cpu_us_per_msg", _num), "cpu_us_per_msg",
                      higher_is_better=False)
        out += _table("#### Latency p50 / p99, µs", table, flow, peers, "µs", _latency)
        out += _table("#### Core use in the window: server / generator (1.00 = one full core) / "
                      "generator's limit (its rate ÷ its core use: where its core would be full)",
                      table, flow, peers, "cores", _saturation)
    if idle:
        out += _table("#### Idle connections: server memory per connection, KiB "
                      "((×r) = peer ÷ fastim)", table, idle, peers, "KiB/conn",
                      _value("rss_per_conn_kib", _num), "rss_per_conn_kib",
                      higher_is_better=False)
        out += _table("#### Idle connections: time to open them all, s ((×r) = peer ÷ fastim)",
                      table, idle, peers, "s", _value("open_seconds", _num), "open_seconds",
                      higher_is_better=False)
    out += ["† the generator's core was saturated (≥ 90 %) while the server's was not: the "
            "generator set this rate, so the server CPU time per message is the figure to "
            "compare.",
            "‡ against fastim (async for): the fastim server of this peer's style was not "
            "run.",
            "¹ n/a: the server cannot run this scenario (see the notes).",
            "² error: see the notes.", ""]
    out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def cell_notes(table: Table, scenarios: list[Scenario], peers: list[Peer]) -> list[str]:
    """One note per cell that is not a clean result, saying why."""
    notes = []
    for s in scenarios:
        for peer in peers:
            cell = table.get(s.key, {}).get(peer.name)
            if cell is not None and cell.note:
                notes.append(f"{peer.label}, {s.title}: {cell.status}: {cell.note}")
    return notes


def chart(table: Table, scenarios: list[Scenario], peers: list[Peer], path: Path,
          title: str = "") -> bool:
    """Draw the main rows: throughput relative to fastim, and server CPU per message.

    Returns False (and draws nothing) when matplotlib is missing or no main row has data."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    main = [s for s in scenarios if s.main and s.kind != "idle"
            and any(c.status == "ok" for c in table.get(s.key, {}).values())]
    shown = [p for p in peers if p.role != "ceiling"]
    if not main or not shown:
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 9), constrained_layout=True)
    width = 0.8 / len(shown)
    xs = range(len(main))
    labels = []
    for s in main:
        label = textwrap.fill(s.title, 17)
        fastim = table.get(s.key, {}).get("fastim")
        if fastim is None or fastim.status != "ok":
            label += "\n(no fastim: vs fastest)"
        labels.append(label)
    for i, peer in enumerate(shown):
        rel, cpu = [], []
        for s in main:
            cells = table.get(s.key, {})
            cell = cells.get(peer.name)
            fastim = cells.get("fastim")
            if fastim is not None and fastim.status == "ok":
                base = fastim.get("rate") or 0.0
            else:  # no fastim in this row: relative to the fastest Python server
                base = max((c.get("rate") or 0.0 for name, c in cells.items()
                            if c.status == "ok" and name != "go-ref"), default=0.0)
            ok = cell is not None and cell.status == "ok" and base > 0
            rel.append((cell.get("rate") or 0.0) / base if ok and cell else 0.0)
            cpu.append((cell.get("cpu_us_per_msg") or 0.0) if ok and cell else 0.0)
        offsets = [x + (i - (len(shown) - 1) / 2) * width for x in xs]
        top.bar(offsets, rel, width, label=peer.label)
        bottom.bar(offsets, cpu, width, label=peer.label)
    top.set_ylabel("throughput relative to fastim (async for)")
    top.axhline(1.0, color="grey", linewidth=0.8)
    top.set_xticks(list(xs), labels, fontsize=8)
    top.legend(fontsize=8)
    top.set_title("Throughput relative to fastim (async for) in the same run (higher is better)")
    bottom.set_ylabel("server CPU µs per message or request")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    bottom.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    bottom.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    bottom.set_xticks(list(xs), labels, fontsize=8)
    bottom.set_title("Server CPU time per message, per delivery for broadcast, per request "
                     "for HTTP (lower is better; log scale)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True

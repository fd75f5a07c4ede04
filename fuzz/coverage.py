"""`python -m fuzz coverage [TARGET ...] [--markdown]`: what the corpora reach.

Each target's corpus (fuzz/corpus/TARGET/) is replayed under coverage.py in a process of
its own, started before fastim is imported (so module-level lines count too). One line per
target: the module it is there to exercise, and the share of that module's lines and
branches the corpus alone reaches. Then one line per module for all targets together.
An input that raises is reported (and makes the exit status 1): it is a finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"


def corpus(target: str) -> list[Path]:
    """The inputs of `target`'s corpus, in a stable order."""
    directory = CORPUS / target
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _replay_under_coverage(target: str, data_file: str) -> int:
    """Child process: replay one corpus with coverage on; the data goes to `data_file`."""
    import coverage

    cov = coverage.Coverage(data_file=data_file, branch=True, source=["fastim"],
                            config_file=False)
    cov.start()
    try:
        from fuzz.targets import TARGETS

        failures = 0
        for path in corpus(target):
            try:
                TARGETS[target](path.read_bytes())
            except Exception:
                failures += 1
                print(f"{target}: {path.relative_to(ROOT)} raised:", file=sys.stderr)
                traceback.print_exc()
    finally:
        cov.stop()
        cov.save()
    return 1 if failures else 0


def _summary(data_files: list[str], module: str, tmp: Path) -> dict[str, float]:
    import coverage

    cov = coverage.Coverage(data_file=str(tmp / "combined"), branch=True, config_file=False)
    cov.combine(data_files, keep=True)
    out = tmp / "report.json"
    cov.json_report(include=[str(ROOT / module)], outfile=str(out))
    files = json.loads(out.read_text())["files"]
    summary = next(iter(files.values()))["summary"] if files else {}
    lines = summary.get("num_statements", 0)
    branches = summary.get("num_branches", 0)
    return {
        "lines": 100.0 * summary.get("covered_lines", 0) / lines if lines else 0.0,
        "branches": 100.0 * summary.get("covered_branches", 0) / branches if branches else 0.0,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        return _replay_under_coverage(argv[1], argv[2])
    from fuzz.targets import MODULES

    markdown = "--markdown" in argv
    targets = [name for name in argv if not name.startswith("--")] or list(MODULES)
    status = 0
    rows: list[tuple[str, str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="fuzz-coverage-") as name:
        tmp = Path(name)
        data: dict[str, str] = {}
        for target in targets:
            data[target] = str(tmp / f"data-{target}")
            status |= subprocess.call(
                [sys.executable, "-m", "fuzz", "coverage", "--one", target, data[target]],
                cwd=ROOT)
            rows.append((target, MODULES[target], len(corpus(target)),
                         _summary([data[target]], MODULES[target], tmp)))
        for module in dict.fromkeys(MODULES[t] for t in targets):
            together = [t for t in targets if MODULES[t] == module]
            if len(together) > 1:
                rows.append(("+".join(together), module, sum(len(corpus(t)) for t in together),
                             _summary([data[t] for t in together], module, tmp)))
    if markdown:
        print("| target | module | inputs | lines | branches |")
        print("|---|---|---|---|---|")
        for target, module, inputs, cov in rows:
            print(f"| {target} | `{module}` | {inputs} | {cov['lines']:.0f}% "
                  f"| {cov['branches']:.0f}% |")
    else:
        width = max(len(row[0]) for row in rows)
        print(f"{'target':{width}}  {'module':26} {'inputs':>6} {'lines':>6} {'branches':>8}")
        for target, module, inputs, cov in rows:
            print(f"{target:{width}}  {module:26} {inputs:6} {cov['lines']:5.0f}% "
                  f"{cov['branches']:7.0f}%")
    return status

"""`python -m fuzz TARGET [libFuzzer flags]`: fuzz one target with atheris.

    python -m fuzz http-parser -max_total_time=60
    python -m fuzz all -max_total_time=30        # each target in turn, in subprocesses
    python -m fuzz coverage [--markdown]         # what each corpus reaches (coverage.py)
    python -m fuzz merge all                     # keep what runs found that reaches new code
    python -m fuzz seeds                         # (re)write the seed corpora from docs and tests

Each target starts from its seed corpus, fuzz/corpus/TARGET/, with its dictionary
fuzz/TARGET.dict; what a run finds goes to .fuzz-corpus/TARGET/ (not in git), and
`merge` adds to the seed corpus the inputs that reach code it did not (-merge=1).

Crashes are written as crash-* files (libFuzzer's -artifact_prefix decides where);
each one found becomes a regression case in tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where runs put the inputs they find (not in git); see _defaults().
SCRATCH = ROOT / ".fuzz-corpus"


def _defaults(name: str, flags: list[str]) -> list[str]:
    """The target's dictionary and corpora, unless the flags name their own dictionary.

    libFuzzer writes what it finds into the first corpus directory: that is a scratch one
    (.fuzz-corpus/TARGET, or the first directory given), so a run never changes the
    repository; fuzz/corpus/TARGET, the seeds, comes after it and is only read.
    `python -m fuzz merge` keeps what is worth keeping."""
    defaults = []
    dictionary = ROOT / "fuzz" / f"{name}.dict"
    if dictionary.is_file() and not any(flag.startswith("-dict=") for flag in flags):
        defaults.append(f"-dict={dictionary}")
    if any(flag.startswith("-merge=") for flag in flags):
        return defaults
    if not any(not flag.startswith("-") for flag in flags):
        scratch = SCRATCH / name
        scratch.mkdir(parents=True, exist_ok=True)
        defaults.append(str(scratch))
    seeds = ROOT / "fuzz" / "corpus" / name
    if seeds.is_dir():
        defaults.append(str(seeds))
    return defaults


def _merge(names: list[str], flags: list[str]) -> int:
    """Add to fuzz/corpus/TARGET the inputs of .fuzz-corpus/TARGET that reach new
    coverage (libFuzzer's -merge=1), for each target named (or all)."""
    from fuzz.targets import TARGETS

    failed = 0
    for name in names if names and names != ["all"] else list(TARGETS):
        scratch = SCRATCH / name
        if not scratch.is_dir():
            continue
        seeds = ROOT / "fuzz" / "corpus" / name
        seeds.mkdir(parents=True, exist_ok=True)
        print(f"== merge {name}", flush=True)
        failed |= subprocess.call([sys.executable, "-m", "fuzz", name, "-merge=1", *flags,
                                   str(seeds), str(scratch)], cwd=ROOT)
    return failed


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        from fuzz.targets import TARGETS

        print("targets:", ", ".join(TARGETS))
        return 0 if argv else 2
    name, flags = argv[0], argv[1:]
    if name == "coverage":
        from fuzz.coverage import main as coverage_main

        return coverage_main(flags)
    if name == "merge":
        names = [flag for flag in flags if not flag.startswith("-")]
        return _merge(names, [flag for flag in flags if flag.startswith("-")])
    if name == "seeds":
        from fuzz.seeds import main as seeds_main

        return seeds_main()
    if name == "all":
        from fuzz.targets import TARGETS

        failed = 0
        for target in TARGETS:
            print(f"== {target}", flush=True)
            failed |= subprocess.call([sys.executable, "-m", "fuzz", target, *flags])
        return failed
    import atheris

    with atheris.instrument_imports():
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    # libFuzzer starts its child processes (-merge=1, -fork) through the shell with
    # argv[0] as the program: this file is not one, the interpreter with -m is.
    program = f"{shlex.quote(sys.executable)} -m fuzz {shlex.quote(name)}"
    # Corpus directories after every flag: libFuzzer writes into the first one given,
    # which must be the scratch (or the caller's) directory, never the seeds.
    defaults = _defaults(name, flags)
    options = [arg for arg in (*defaults, *flags) if arg.startswith("-")]
    directories = [arg for arg in (*flags, *defaults) if not arg.startswith("-")]
    atheris.Setup([program, *options, *directories], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

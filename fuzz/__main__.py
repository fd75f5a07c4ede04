"""`python -m fuzz TARGET [libFuzzer flags]`: fuzz one target with atheris.

    python -m fuzz http-parser -max_total_time=60
    python -m fuzz all -max_total_time=30        # each target in turn, in subprocesses

Crashes are written as crash-* files (libFuzzer's -artifact_prefix decides where);
each one found becomes a regression case in tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        from fuzz.targets import TARGETS

        print("targets:", ", ".join(TARGETS))
        return 0 if argv else 2
    name, flags = argv[0], argv[1:]
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
    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

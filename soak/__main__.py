"""The soak's command line: `python -m soak [options]` runs it; `python -m soak worker
SPEC` is one client process (started by the soak itself)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        from soak.worker import main as worker_main

        return worker_main(argv[1])
    from soak.run import build_parser
    from soak.run import main as run_main

    return run_main(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""Event loop choice: uvloop where it imports, asyncio's own loop otherwise.

uvloop runs the same code with less CPU per message (docs/performance.md measures every
server on it), and it is optional: a plain `pip install` on Windows has no uvloop.

Importing fastim.ws never changes the event loop; programs opt in with run() or
install_uvloop(), as the CLI does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["new_event_loop", "install_uvloop", "run"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop if uvloop is installed, else a new asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def install_uvloop() -> bool:
    """Make uvloop the default event loop policy, if it imports; return whether it did."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on the loop new_event_loop() makes."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)

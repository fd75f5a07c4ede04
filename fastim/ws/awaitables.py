"""Awaitables that have already finished: what `Connection.send()` returns when the frame
was written in the call and nothing is left to wait for.

An `async def` that returns at once still costs, at every call, a coroutine object, its
frame and its finalizer; `await` on a `Done` gives its value at once. A `Done` is also a
`collections.abc.Coroutine` (send, throw, close), so that `asyncio.create_task()` and
`ensure_future()` take it as they take the coroutine an `async def` returns. It holds
nothing but its value: one object can be awaited any number of times.

`fastim.ws._speedups.done` is the same in C and is used where it was built (as the C
masking is, frames._SPEEDUPS): there `await` on it is one C call.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, NoReturn, TypeVar

from fastim.ws import frames

T = TypeVar("T")


class Done(Coroutine[Any, Any, T]):
    """An awaitable that has already finished with `value`."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # (a generator that returns at once: `await` gives the value)

    def send(self, value: Any) -> NoReturn:
        raise StopIteration(self.value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> NoReturn:
        # A finished coroutine raises what is thrown into it: throw(exception), or the
        # older throw(type[, value[, traceback]]).
        if isinstance(typ, BaseException):
            raise typ
        if isinstance(val, BaseException):
            raise val
        raise typ() if val is None else typ(val)

    def close(self) -> None:
        pass


# `_speedups.done` where it was built, else Done.
done: Callable[[Any], Coroutine[Any, Any, Any]] = frames.from_speedups(
    "done", Done, frames._SPEEDUPS
)

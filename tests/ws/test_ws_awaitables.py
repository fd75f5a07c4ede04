"""fastim.ws.awaitables: Done, in Python and in C (_speedups.done), behaves as a coroutine
that has already returned its value."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import sys
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from fastim.ws import _speedups, frames
from fastim.ws.awaitables import Done

KINDS: dict[str, Callable[[Any], Coroutine[Any, Any, Any]]] = {
    "python": Done, "c": _speedups.done}


@pytest.fixture(params=sorted(KINDS))
def done(request: pytest.FixtureRequest) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    return KINDS[request.param]


@pytest.mark.parametrize("value", [None, 0, "text", b"bytes", (1, 2), ValueError("a value")])
def test_await_gives_the_value_every_time(
    done: Callable[[Any], Coroutine[Any, Any, Any]], value: Any
) -> None:
    finished = done(value)

    async def main() -> list[Any]:
        return [await finished, await finished]

    assert asyncio.run(main()) == [value, value]


def test_asyncio_takes_it_as_a_coroutine(done: Callable[[Any], Coroutine[Any, Any, Any]]) -> None:
    finished = done("value")
    assert isinstance(finished, collections.abc.Coroutine)
    assert asyncio.iscoroutine(finished)

    async def main() -> list[Any]:
        task = asyncio.create_task(finished)
        return [await task, await asyncio.ensure_future(finished),
                *await asyncio.gather(finished, done(None))]

    assert asyncio.run(main()) == ["value", "value", "value", None]


def test_send_throw_close_as_a_finished_coroutine(
    done: Callable[[Any], Coroutine[Any, Any, Any]]
) -> None:
    finished = done((1, 2))
    with pytest.raises(StopIteration) as stopped:
        finished.send(None)
    assert stopped.value.value == (1, 2)
    with pytest.raises(KeyError, match="thrown"):
        finished.throw(KeyError("thrown"))
    with pytest.raises(KeyError):
        finished.throw(KeyError)
    finished.close()
    with pytest.raises(StopIteration):  # still finished, with the same value
        finished.send(None)


def test_a_cycle_through_the_value_is_collected() -> None:
    class Holder:
        pass

    holder = Holder()
    holder.done = _speedups.done(holder)  # type: ignore[attr-defined]
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


def test_the_c_one_where_built_else_python(monkeypatch: pytest.MonkeyPatch) -> None:
    assert frames.from_speedups("done", Done, True) is _speedups.done
    assert frames.from_speedups("done", Done, False) is Done  # FASTIM_WS_SPEEDUPS=0
    assert frames.from_speedups("not built", Done, True) is Done  # an extension built before
    # As when no compiler was there at install time: the extension does not import.
    monkeypatch.setitem(sys.modules, "fastim.ws._speedups", None)
    assert frames.from_speedups("done", Done, True) is Done


def test_throw_takes_the_old_three_argument_form() -> None:
    finished = Done(None)
    with pytest.raises(KeyError, match="given"):
        finished.throw(KeyError, KeyError("given"))
    with pytest.raises(KeyError, match="made"):
        finished.throw(KeyError, "made")
    with pytest.raises(KeyError, match="made"):
        _speedups.done(None).throw(KeyError, "made")
    with pytest.raises(TypeError):
        _speedups.done(None).throw("not an exception")

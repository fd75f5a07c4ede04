"""Type stub of the optional C extension fastim/ws/_speedups.c."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

def mask(data: bytes | bytearray | memoryview, key: bytes | bytearray, /) -> bytes:
    """XOR `data` with the 4-byte `key` repeated (RFC 6455 §5.3)."""

def alloc(size: int, /) -> bytes:
    """A bytes object of `size` octets, not yet filled (mask_into fills it)."""

def mask_into(
    target: bytes | bytearray,
    offset: int,
    data: bytes | bytearray | memoryview,
    key: bytes | bytearray | None,
    /,
) -> None:
    """target[offset + i] = data[i] XOR key[(offset + i) % 4]; a copy when key is None."""

def parse_message(data: bytes, masked: bool, max_size: int | None, /) -> str | bytes | None:
    """The message of `data` when it is one whole small data frame (frames._parse_message_python)."""

def encode_message(message: object, key: bytes | None, limit: int, /) -> bytes | None:
    """The whole frame of a small str or bytes message (frames._encode_message_python)."""

class Done(Coroutine[Any, Any, _T]):
    """An awaitable that has already finished with `value` (awaitables.Done in C)."""

    def __init__(self, value: _T = ...) -> None: ...
    def __await__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...

def done(value: _T, /) -> Done[_T]:
    """An awaitable that has already finished with `value`."""

def hand_over(waiter: asyncio.Future[Any], message: object, loop: asyncio.AbstractEventLoop, /) -> bool:
    """Give the task awaiting `waiter` its message and run it now (connection._hand_over_python)."""

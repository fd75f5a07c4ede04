"""A case-insensitive multi-dict for HTTP header fields (RFC 9110 §5.1, §5.3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Headers:
    """Header fields as received: names compare case-insensitively, repeats are kept.

    ``headers["content-type"]`` and ``headers.get(...)`` give the first value;
    ``headers.get_all(name)`` gives every value in order; ``headers.raw`` is the list of
    ``(name, value)`` pairs exactly as received (names in their original case).
    """

    __slots__ = ("raw", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self.raw: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier field of the same name."""
        self.raw.append((name, value))
        key = name.lower()
        values = self._index.get(key)
        if values is None:
            self._index[key] = [value]
        else:
            values.append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field `name`, or `default`."""
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of field `name`, in the order received (empty list if absent)."""
        return list(self._index.get(name.lower(), ()))

    def get_tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every `name` field, lower-cased (RFC 9110 §5.6.1)."""
        tokens = []
        for value in self._index.get(name.lower(), ()):
            for token in value.split(","):
                token = token.strip().lower()
                if token:
                    tokens.append(token)
        return tokens

    def __getitem__(self, name: str) -> str:
        values = self._index.get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        """Iterate over the distinct field names, lower-cased."""
        return iter(self._index)

    def __len__(self) -> int:
        return len(self.raw)

    def items(self) -> list[tuple[str, str]]:
        """All ``(name, value)`` pairs as received."""
        return list(self.raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self.raw] == [(n.lower(), v) for n, v in other.raw]

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"

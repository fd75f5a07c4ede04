"""Group names compared by what they look like: a normalised *skeleton*.

Two group names clash when their skeletons are equal, so ``group``, ``Group``,
``group\\u200b`` (a zero-width space) and ``grоup`` (a Cyrillic о) are one name and the
second to be created gets 409. The skeleton of a name (:func:`skeleton`):

1. NFKC (compatibility forms: full-width ``ｇｒｏｕｐ``, ligatures, mathematical letters);
2. case folding (``Group`` is ``group``);
3. the invisible characters dropped (`fastim.accounts.fields.INVISIBLE_RANGES`: zero-width
   spaces and joiners, U+FEFF, bidi controls, variation selectors, the Hangul fillers),
   and runs of white space made one space;
4. each character replaced by a representative of its class of confusables (Unicode
   TS #39, ``confusables.txt``, as shipped by the ``confusable-homoglyphs`` package:
   Latin ``o``, Cyrillic ``о``, Greek ``ο`` ... are one class);
5. NFKC and case folding again.

Step 4 uses only the single-character confusables, joined into classes; the
multi-character ones (``rn`` for ``m``) are not applied. Case folding comes first, so
that case never matters; the price is that a capital ``I`` is folded to ``i`` before
it could be taken for an ``l``.

The database stores the SHA-256 of the skeleton (`name_key`: a short fixed-length key,
whatever NFKC makes of a name) under a unique index, so concurrent creations of two
look-alike names cannot both succeed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from pathlib import Path

from fastim.accounts.fields import INVISIBLE_RANGES


def _invisible(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in INVISIBLE_RANGES)


@functools.cache
def confusable_classes() -> dict[str, str]:
    """Each character that has single-character confusables -> its class's representative
    (the smallest code point of the class)."""
    import confusable_homoglyphs

    table = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json")
                       .read_text(encoding="utf-8"))
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = ch
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ch, ch) != root:  # path compression
            parent[ch], ch = root, parent[ch]
        return root

    for char, homoglyphs in table.items():
        if len(char) != 1:
            continue
        for entry in homoglyphs:
            other = entry["c"]
            if len(other) == 1:
                a, b = find(char), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {ch: find(ch) for ch in list(parent)}


def skeleton(name: str) -> str:
    """What ``name`` looks like, for comparing group names (see the module docstring)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = " ".join("".join(ch for ch in text if not _invisible(ch)).split())
    classes = confusable_classes()
    text = "".join(classes.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFKC", text).casefold()


def name_key(name: str) -> str:
    """The key under which a group name is unique: the SHA-256 (hex) of its skeleton."""
    return hashlib.sha256(skeleton(name).encode("utf-8")).hexdigest()

"""Phone numbers as people type them, stored in one canonical form (issue 24).

``+86 138 0000 0001``, ``+86-138-0000-0001``, ``0086 13800000001``, ``138-0000-0001``,
``(138) 0000 0001`` and ``13800000001`` are one number. The canonical form is E.164
(ITU-T E.164: a country code, then the national significant number, at most 15
digits) with China's country code implied, because fastim descends from a Chinese
tutorial and its first users type Chinese numbers without one:

* a number without a country code is a Chinese number, stored as its national
  significant number: the digits alone, ``13800000001`` (what every account held before
  this module, and what a Chinese user reads as their number);
* ``+86`` or ``0086`` is removed, so ``+8613800000001`` is that same ``13800000001``;
* any other country keeps its code after a ``+``: ``+1 415 555 0100`` is
  ``+14155550100``; ``00`` in front (the international prefix dialled from China and
  most of Europe) means ``+``;
* one leading ``0`` of a national number is the trunk prefix, not part of the number
  (``010 1234 5678`` is Beijing's ``+86 10 1234 5678``), so it is dropped;
* what may separate the digits: spaces (any kind), ``-``, ``.``, ``/`` and
  parentheses. Full-width digits and plus (``１３８``, ``＋``) count as their ASCII
  forms (NFKC). Anything else -- letters, a second ``+`` -- is refused;
* the national part is 5 to 15 digits, as fastim always allowed.

It lives in the store because it is the form of a key: the unique key on
``users.mobile`` holds canonical numbers, so one number has one account. The accounts
check what people type with it; migration 12 (fastim/store/migrations.py) rewrote the
numbers stored before, and docs/api.md says what it did with two accounts whose numbers
turned out to be the same.
"""

from __future__ import annotations

import re
import unicodedata

#: China's country code: numbers without one are Chinese (see the module docstring).
DEFAULT_COUNTRY = "86"
#: Digits of a national number, as fastim allowed them from the start.
NATIONAL_MIN, NATIONAL_MAX = 5, 15
#: What people put between the digits of a number.
SEPARATORS = re.compile(r"[\s\-./()]+")
DIGITS = re.compile(r"[0-9]+")


def canonical_mobile(raw: str) -> str | None:
    """The canonical form of a phone number as typed, or None when it is not one."""
    text = SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if text.startswith("00"):
        text = "+" + text[2:]
    international = text.startswith("+")
    digits = text[1:] if international else text
    if not DIGITS.fullmatch(digits):
        return None
    if international and not digits.startswith(DEFAULT_COUNTRY):
        # Another country: E.164 as it is, the country code included (at most 15 digits).
        return "+" + digits if NATIONAL_MIN <= len(digits) <= NATIONAL_MAX else None
    national = digits[len(DEFAULT_COUNTRY):] if international else digits
    if national.startswith("0") and not national.startswith("00"):
        national = national[1:]  # the trunk prefix
    return national if NATIONAL_MIN <= len(national) <= NATIONAL_MAX else None


def as_typed(raw: str) -> str:
    """The number as typed without its separators: the key of an account whose stored
    number another account's took at migration 12 (it still logs in with it)."""
    return SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))

"""Validation of request fields, with messages a person can act on.

Every reader takes the merged request values (query + JSON or form body, see
``Request.values()``) and returns a clean Python value or raises a 400
:class:`~fastim.errors.AppError` naming the field. Nothing here touches the database, so a
request that fails validation changes nothing.

Text rules, shared by every text field: it must be a string (not a number, list or
object); valid Unicode (JSON can smuggle lone surrogates like ``"\\ud800"``, which neither
database can store); no control characters (newline and tab are allowed in multi-line
fields); NFC-normalised, so the same text typed on two keyboards is the same text; leading
and trailing blanks trimmed on single-line fields; length counted in characters (emoji and
CJK count as one each, as ``VARCHAR(n)`` counts them in utf8mb4).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from fastim.accounts.common_passwords import is_common_password
from fastim.errors import AppError, bad_request
from fastim.store.phones import canonical_mobile

NICKNAME_MAX = 32
MEMO_MAX = 140
GROUP_NAME_MAX = 64
URL_MAX = 255
DEVICE_MAX = 64
PASSWORD_MIN = 8
PASSWORD_MAX = 128
PAGE_SIZE_DEFAULT = 100  # fastIM's PageArg default
PAGE_SIZE_MAX = 500
PAGE_FROM_MAX = 1_000_000
ID_MAX = 2**63 - 1
SEXES = ("M", "W", "U")  # fastIM: man, woman, unknown

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): characters that render
# as nothing -- zero-width spaces and joiners, the BOM, bidi controls, variation
# selectors, tags -- plus the Hangul fillers, which are letters (Lo) drawn blank, and the
# blank Braille pattern. A name or password made only of these and of white space looks
# empty.
INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Bidirectional formatting characters (Unicode UAX #9): they reorder what follows them,
# so "abc\u202Etxt.exe" is shown as "abcexe.txt". Refused in names.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def is_invisible(ch: str) -> bool:
    """Whether ``ch`` renders as nothing (see INVISIBLE_RANGES) or as blank space."""
    if ch.isspace():
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in INVISIBLE_RANGES)


def blank(value: str) -> bool:
    """Whether ``value`` shows nothing at all: only white space and invisible characters."""
    return all(is_invisible(ch) for ch in value)


# Pictures may only point at this server's own static or uploaded files: no "javascript:",
# no third-party trackers, no path tricks.
LOCAL_URL = re.compile(r"/(?:asset|resource)/[A-Za-z0-9._~%/-]+")


def _present(values: Mapping[str, Any], name: str) -> bool:
    return values.get(name) is not None


def text(
    values: Mapping[str, Any],
    name: str,
    *,
    max_len: int,
    min_len: int = 0,
    required: bool = False,
    default: str = "",
    multiline: bool = False,
) -> str:
    """A text field (see the module docstring for the rules)."""
    raw = values.get(name)
    if raw is None or (required and raw == ""):
        if required:
            raise bad_request(f"{name} is required")
        return default
    return clean_text(raw, name, max_len=max_len, min_len=min_len, multiline=multiline)


def clean_text(
    raw: Any, name: str, *, max_len: int, min_len: int = 0, multiline: bool = False
) -> str:
    """Check and normalise one text value (already known to be present)."""
    if not isinstance(raw, str):
        raise bad_request(f"{name} must be a string")
    allowed = "\n\t" if multiline else ""
    for ch in raw:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise bad_request(f"{name} is not valid Unicode")
        if category == "Cc" and ch not in allowed:
            raise bad_request(f"{name} must not contain control characters")
    value = unicodedata.normalize("NFC", raw)
    if not multiline:
        value = value.strip()
    if len(value) < min_len or len(value) > max_len:
        if min_len:
            raise bad_request(f"{name} must be {min_len} to {max_len} characters")
        raise bad_request(f"{name} must be at most {max_len} characters")
    return value


def optional_text(
    values: Mapping[str, Any],
    name: str,
    *,
    max_len: int,
    min_len: int = 0,
    multiline: bool = False,
) -> str | None:
    """A text field that may be absent (None), e.g. in a partial profile update."""
    if not _present(values, name):
        return None
    return clean_text(values[name], name, max_len=max_len, min_len=min_len, multiline=multiline)


def mobile(values: Mapping[str, Any], name: str = "mobile") -> str:
    """A required mobile number as people type it (``+86 138 0000 0001``,
    ``138-0000-0001``), in its canonical form (:mod:`fastim.store.phones`)."""
    value = text(values, name, max_len=32, required=True)
    canonical = canonical_mobile(value)
    if canonical is None:
        raise bad_request(f"{name} must be a phone number: 5 to 15 digits, optionally after +")
    return canonical


def password_given(values: Mapping[str, Any], name: str = "passwd") -> str:
    """A password presented to be checked (login, ``oldpasswd``): required, a string, and
    NFC-normalised exactly as :func:`password` normalised it when it was set, so that the
    same characters typed on another keyboard (``"e\u0301"`` or ``"\u00e9"``) match. No
    other rule applies: an existing password is checked, not judged."""
    raw = values.get(name)
    if raw is None or raw == "":
        raise bad_request(f"{name} is required")
    if not isinstance(raw, str):
        raise bad_request(f"{name} must be a string")
    if any(unicodedata.category(ch) == "Cs" for ch in raw):
        raise bad_request(f"{name} is not valid Unicode")
    return unicodedata.normalize("NFC", raw)


def password(values: Mapping[str, Any], name: str = "passwd") -> str:
    """A new password: 8 to 128 characters, kept as typed apart from NFC; not only white
    space or invisible characters, and not one of the most common passwords
    (:mod:`fastim.accounts.common_passwords`; NIST SP 800-63B §5.1.1.2)."""
    raw = values.get(name)
    if raw is None or raw == "":
        raise bad_request(f"{name} is required")
    if not isinstance(raw, str):
        raise bad_request(f"{name} must be a string")
    for ch in raw:
        if unicodedata.category(ch) in ("Cs", "Cc"):
            raise bad_request(f"{name} must not contain control characters or invalid Unicode")
    value = unicodedata.normalize("NFC", raw)
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise bad_request(f"{name} must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if blank(value):
        raise bad_request(f"{name} must not be only spaces or invisible characters")
    if is_common_password(value):
        raise bad_request(f"{name} is one of the most common passwords, which are guessed "
                          "first: choose another")
    return value


def display_name(values: Mapping[str, Any], field: str, *, max_len: int) -> str:
    """A required name (a nickname, a group's name): a text field of 1 to ``max_len``
    characters that shows something -- not only white space or invisible characters
    (U+200B, U+FEFF, U+3164 ...) -- and holds no bidi control (U+202E ...), which would
    make it display as something else."""
    value = text(values, field, min_len=1, max_len=max_len, required=True)
    if blank(value):
        raise bad_request(f"{field} must show something: not only spaces or invisible "
                          "characters")
    if any(ch in BIDI_CONTROLS for ch in value):
        raise bad_request(f"{field} must not contain bidirectional control characters")
    return value


def nickname(values: Mapping[str, Any], *, required: bool = True) -> str | None:
    """The display name, 1 to 32 characters (:func:`display_name`)."""
    if not required and not _present(values, "nickname"):
        return None
    return display_name(values, "nickname", max_len=NICKNAME_MAX)


def memo(values: Mapping[str, Any], *, required: bool = False) -> str | None:
    """A free-text note of up to 140 characters (several lines allowed)."""
    if not required and not _present(values, "memo"):
        return None
    return text(values, "memo", max_len=MEMO_MAX, multiline=True)


def sex(values: Mapping[str, Any]) -> str | None:
    """One of M, W, U (absent: None)."""
    if not _present(values, "sex"):
        return None
    value = clean_text(values["sex"], "sex", max_len=8)
    if value not in SEXES:
        raise bad_request("sex must be one of M, W, U")
    return value


def local_url(values: Mapping[str, Any], name: str) -> str | None:
    """An image path on this server (/asset/... or /resource/...), or "" for none."""
    if not _present(values, name):
        return None
    value = clean_text(values[name], name, max_len=URL_MAX)
    if value == "":
        return value
    if not LOCAL_URL.fullmatch(value) or ".." in value or "//" in value:
        raise bad_request(f"{name} must be a path on this server under /asset/ or /resource/")
    return value


def integer(
    values: Mapping[str, Any],
    name: str,
    *,
    minimum: int,
    maximum: int,
    default: int | None = None,
) -> int:
    """An integer given as a JSON number or a string of digits (form fields are strings)."""
    raw = values.get(name)
    if raw is None or raw == "":
        if default is None:
            raise bad_request(f"{name} is required")
        return default
    return clean_integer(raw, name, minimum=minimum, maximum=maximum)


def clean_integer(raw: Any, name: str, *, minimum: int, maximum: int) -> int:
    """Check one integer value (already known to be present)."""
    if isinstance(raw, bool):
        raise bad_request(f"{name} must be an integer")
    if isinstance(raw, str):
        digits = raw.strip()
        if not re.fullmatch(r"-?[0-9]{1,20}", digits):
            raise bad_request(f"{name} must be an integer")
        value = int(digits)
    elif isinstance(raw, int):
        value = raw
    else:
        raise bad_request(f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}")
    return value


def identifier(values: Mapping[str, Any], name: str) -> int | None:
    """An optional positive id (absent: None)."""
    if values.get(name) is None or values.get(name) == "":
        return None
    return clean_integer(values[name], name, minimum=1, maximum=ID_MAX)


def page(values: Mapping[str, Any]) -> tuple[int, int]:
    """fastIM's PageArg: ``pagefrom`` (page number from 0) and ``pagesize`` -> (offset, limit)."""
    size = integer(values, "pagesize", minimum=1, maximum=PAGE_SIZE_MAX, default=PAGE_SIZE_DEFAULT)
    number = integer(values, "pagefrom", minimum=0, maximum=PAGE_FROM_MAX, default=0)
    return number * size, size


def caller_matches(values: Mapping[str, Any], user_id: int) -> None:
    """fastIM sent ``userid`` with every call and trusted it. fastim acts as the token's user;
    a ``userid`` naming someone else is refused (403), so old clients fail loudly."""
    claimed = identifier(values, "userid")
    if claimed is not None and claimed != user_id:
        raise AppError(403, "userid does not match the logged-in user")

"""The most common passwords, refused as new passwords (NIST SP 800-63B §5.1.1.2: check
new secrets against "passwords obtained from previous breach corpuses").

The list is not ours: it is the ranked ``passwords`` list that ships with ``zxcvbn`` (the
Python port of Dropbox's password strength estimator, MIT), drawn from leaked password
corpora and ordered by how often each occurs. The first :data:`TOP` of them are refused,
compared case-insensitively ("Password1" is "password1"). Only the list is used, not
zxcvbn's strength score: the score also marks down long, otherwise good passphrases
("correct horse") and its rules are harder to explain in an error message than "this is
one of the 10,000 most common passwords".

The list is read once, at the first check, and kept as a set (about 1 MB).
"""

from __future__ import annotations

import functools

#: How many of the most common passwords are refused.
TOP = 10_000


@functools.cache
def common_passwords() -> frozenset[str]:
    """The :data:`TOP` most common passwords, lower-case."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranked: list[str] = FREQUENCY_LISTS["passwords"]
    return frozenset(word.casefold() for word in ranked[:TOP])


def is_common_password(password: str) -> bool:
    """Whether ``password`` is one of the :data:`TOP` most common ones."""
    return password.casefold() in common_passwords()

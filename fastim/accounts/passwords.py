"""Password hashing with a memory-hard KDF from the standard library.

A hash is stored with its salt and the KDF parameters that made it (``kdf`` column), e.g.
``scrypt:16384:8:1`` (n, r, p). Verification always uses the stored parameters, so the
default can be raised later: :func:`needs_rehash` tells the login code to re-hash with
the current parameters once it has the plain password in hand. ``pbkdf2_sha256:ITERATIONS``
is understood too, for deployments whose OpenSSL lacks scrypt.

These functions are CPU-bound (tens of milliseconds by design); callers run them on a
worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt with n=2**14, r=8, p=1 uses 16 MiB and ~30-50 ms per hash: the classic
# interactive-login setting of the scrypt paper.
DEFAULT_KDF = "scrypt:16384:8:1"
SALT_BYTES = 16
KEY_BYTES = 32
# Bounds on parameters read back from the database: a tampered row must not make one
# login allocate gigabytes or spin for minutes.
MAX_SCRYPT_N = 2**20
MAX_PBKDF2_ITERATIONS = 10_000_000


class KDFError(ValueError):
    """A ``kdf`` string that is malformed or out of bounds."""


def _parse(kdf: str) -> tuple[str, tuple[int, ...]]:
    name, _, rest = kdf.partition(":")
    try:
        params = tuple(int(p) for p in rest.split(":")) if rest else ()
    except ValueError:
        raise KDFError(f"bad KDF parameters {kdf!r}") from None
    if name == "scrypt":
        if len(params) != 3:
            raise KDFError("scrypt needs n:r:p")
        n, r, p = params
        if n < 2 or n & (n - 1) or n > MAX_SCRYPT_N or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise KDFError(f"scrypt parameters out of bounds: {kdf!r}")
    elif name == "pbkdf2_sha256":
        if len(params) != 1 or not 1 <= params[0] <= MAX_PBKDF2_ITERATIONS:
            raise KDFError(f"bad pbkdf2_sha256 iterations: {kdf!r}")
    else:
        raise KDFError(f"unknown KDF {name!r}")
    return name, params


def check_kdf(kdf: str) -> str:
    """Return ``kdf`` if it is a valid parameter string, else raise :class:`KDFError`."""
    _parse(kdf)
    return kdf


def derive(password: str, salt: bytes, kdf: str) -> bytes:
    """The key ``kdf`` derives from ``password`` and ``salt``."""
    name, params = _parse(kdf)
    secret = password.encode("utf-8")
    if name == "scrypt":
        n, r, p = params
        # OpenSSL refuses more than 32 MiB unless told; allow what these parameters need.
        maxmem = 128 * r * (n + p + 2) + (1 << 20)
        return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=KEY_BYTES)
    (iterations,) = params
    return hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, dklen=KEY_BYTES)


def hash_password(password: str, kdf: str = DEFAULT_KDF) -> tuple[str, str]:
    """Hash a new password with a fresh random salt; return (hash hex, salt hex)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return derive(password, salt, kdf).hex(), salt.hex()


def verify_password(password: str, passwd_hex: str, salt_hex: str, kdf: str) -> bool:
    """Whether ``password`` matches the stored hash; the comparison takes constant time."""
    try:
        salt = bytes.fromhex(salt_hex)
        expected = bytes.fromhex(passwd_hex)
        actual = derive(password, salt, kdf)
    except (ValueError, KDFError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored_kdf: str, current_kdf: str) -> bool:
    """Whether a hash made with ``stored_kdf`` should be redone with ``current_kdf``."""
    return stored_kdf != current_kdf

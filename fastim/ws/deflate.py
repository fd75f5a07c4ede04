"""permessage-deflate (RFC 7692): WebSocket messages compressed with raw DEFLATE.

Three jobs, each in its own part of this module:

1. Reading the `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a comma-separated list of
   offers, each a name followed by `; param` or `; param=value` where the value is a token or
   a quoted-string. `parse_extensions()`.
2. Negotiation (RFC 7692 §5, §7.1). The client offers (`client_offer()`), the server picks the
   first acceptable offer and answers (`negotiate_server()`), the client checks the answer
   (`accept_client_response()`). Both ends then hold a `PerMessageDeflate` with the agreed
   parameters.
3. The payload transformation (RFC 7692 §7.2): `PerMessageDeflate.compress()` for an outgoing
   message, `PerMessageDeflate.decompress()` for each frame of an incoming compressed message.

Vocabulary. RFC 7692 names every parameter after the side that *compresses*:
`server_max_window_bits` is the LZ77 window of the server's compressor (and so of the client's
decompressor), `client_no_context_takeover` says the client resets its compressor after each
message. `PerMessageDeflate` translates that to `local_*` (what we compress with) and
`remote_*` (what the peer compresses with, hence what we decompress with).

Memory per connection (one endpoint, after one message each way; measured with tracemalloc on
CPython 3.11.7 with zlib 1.2.13 by tests/ws/test_deflate.py::test_memory_per_connection, which
prints them with `pytest -s`):

    defaults (window bits 12 both ways, mem_level 5, context takeover)      49.3 KiB
        compressor    38.0 KiB: window 2 * 4 KiB + hash chains 2 * 4 KiB
                                + hash heads 2 * 2**(5+7) B + output buffer 4 * 2**(5+6) B
                                + ~6 KiB of zlib state
        decompressor  11.3 KiB: window 4 KiB + ~7 KiB of inflate state
    same, when the client did not offer client_max_window_bits, so the      77.3 KiB
        server must inflate with a 32 KiB window (decompressor 39.2 KiB)
    zlib's own defaults (window bits 15, mem_level 8)                        301 KiB
    no_context_takeover both ways, between messages                         0.1 KiB
    a client with the default offer, when the server names no window, so   189.3 KiB
        both sides use 15 bits (compressor 150.0, decompressor 39.2; by
        test_client_memory_per_connection); 77.3 KiB with an offer bounded to 12

What the memory buys, on 2000 chat messages in fastIM's JSON format (167 bytes on average):
83% of the bytes saved with the defaults, 86% with zlib's defaults (window 15, mem_level 8;
mem_level alone makes no difference at this size), 72% with window 9 and mem_level 1, and
31% without context takeover, where every message is compressed on its own.

zlib allocates lazily here: a connection that never sends or receives a compressed message
costs nothing, and with no_context_takeover the compressor/decompressor of a side exists only
while that side's message is being processed.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastim.ws.exceptions import InvalidHandshake, ProtocolError
from fastim.ws.frames import CloseCode

__all__ = [
    "EXTENSION_NAME",
    "DEFAULT_WINDOW_BITS",
    "DeflateOptions",
    "PerMessageDeflate",
    "NegotiationError",
    "ExtensionHeaderError",
    "deflate_options",
    "parse_extensions",
    "negotiate_server",
    "client_offer",
    "accept_client_response",
]

EXTENSION_NAME = "permessage-deflate"

# 2**12 = 4 KiB of LZ77 window: chat messages are a few hundred bytes, so a 4 KiB window still
# holds the last dozen or so messages to refer back to, at an eighth of zlib's default memory.
DEFAULT_WINDOW_BITS = 12
DEFAULT_MEM_LEVEL = 5
DEFAULT_LEVEL = 6
DEFAULT_THRESHOLD = 32

# RFC 7692 §7.2.1: a sync flush ends with an empty stored block, whose last four bytes are
# always 00 00 ff ff; the sender strips them and the receiver appends them again (§7.2.2).
_EMPTY_STORED_BLOCK_TAIL = b"\x00\x00\xff\xff"

# zlib refuses windowBits 8 for raw deflate *compression* (since zlib 1.2.9 deflateInit2
# returns Z_STREAM_ERROR; Python raises ValueError). We compress with 9 instead. That still
# honours a negotiated 8: zlib never emits a match distance above MAX_DIST = w_size - 262
# (MIN_LOOKAHEAD), i.e. 250 bytes for a 512-byte window, so the stream is decodable with a
# 256-byte window. tests/ws/test_deflate.py checks it against zlib's own 8-bit inflater.
_ZLIB_MIN_COMPRESS_WINDOW_BITS = 9


class ExtensionHeaderError(ValueError):
    """A `Sec-WebSocket-Extensions` value does not follow RFC 6455 §9.1's grammar."""


class NegotiationError(InvalidHandshake):
    """permessage-deflate could not be negotiated because a peer broke RFC 7692.

    On the server, `status` is 400 and the handshake must be answered with it. On the client,
    `status` is the status the server answered with (101): the response was well formed HTTP
    but its extension answer is not, so the client fails the connection (RFC 7692 §5).
    """


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeflateOptions:
    """Tuning of permessage-deflate for one endpoint; the defaults suit many small messages.

    The four negotiation parameters use RFC 7692's names, which are named after the side that
    compresses, so one `DeflateOptions` reads the same on the server and on the client:

    `server_no_context_takeover` / `client_no_context_takeover`
        Ask that the server's / the client's compressor be reset after every message
        (RFC 7692 §7.1.1). Costs compression ratio, saves the memory of that compressor and
        the peer's decompressor between messages. A peer may ask for either itself.
    `server_max_window_bits` (8-15)
        Server: the LZ77 window its compressor uses, announced in the response (default 12).
        Client: None (default) asks nothing and decompresses whatever the server chose; a
        number asks the server to stay within it, and a server that does not is refused.
    `client_max_window_bits` (8-15)
        Server: the window it asks of a client that offered `client_max_window_bits`
        (browsers do), so its decompressor needs only that much memory (default 12).
        Client: None (default) offers the parameter without a value, as browsers do: the
        server may then name any window from 8 to 15 and the client compresses within it,
        or with 15 when the server names none (RFC 7692 §7.1.2.2). A number is a bounded
        offer: the client promises to compress within that window, whatever the server
        answers, so a server may keep a smaller decompressor. See docs/compression.md for
        what each costs a client in memory.
    `mem_level` (1-9)
        zlib's memory level for the compressor (hash table and output buffer): 5 by default,
        16 KiB instead of the 128 KiB of zlib's default 8, with no loss of ratio measured
        on chat-sized messages.
    `level` (0-9, or -1 for zlib's default)
        zlib's compression level.
    `threshold`
        Messages shorter than this many bytes are sent uncompressed: too small to gain.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    mem_level: int = DEFAULT_MEM_LEVEL
    level: int = DEFAULT_LEVEL
    threshold: int = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("server_max_window_bits", "client_max_window_bits"):
            bits = getattr(self, name)
            if bits is not None and not 8 <= bits <= 15:
                raise ValueError(f"{name} must be between 8 and 15, not {bits}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be between 1 and 9, not {self.mem_level}")
        if not -1 <= self.level <= 9:
            raise ValueError(f"level must be between -1 and 9, not {self.level}")
        if self.threshold < 0:
            raise ValueError(f"threshold must be 0 or more, not {self.threshold}")


def deflate_options(
    compression: str | None, settings: Mapping[str, Any] | DeflateOptions | None = None
) -> DeflateOptions | None:
    """The DeflateOptions that serve()/connect()'s `compression=` and `compression_options=`
    ask for, or None when compression is off.

    `compression` is "deflate" or None; `settings` is a DeflateOptions or a dict of its
    fields, e.g. `{"threshold": 0, "client_no_context_takeover": True}`. Raises ValueError
    for another compression and TypeError for a field DeflateOptions does not have, so that
    serve() and connect() refuse bad options at once.
    """
    if compression is None:
        return None
    if compression != "deflate":
        raise ValueError(f"unknown compression {compression!r}; use 'deflate' or None")
    if isinstance(settings, DeflateOptions):
        return settings
    return DeflateOptions(**(settings or {}))


# --------------------------------------------------------------------------------------------
# 1. The Sec-WebSocket-Extensions header (RFC 6455 §9.1, list and token rules of RFC 7230)
# --------------------------------------------------------------------------------------------

Param = tuple[str, str | None]
Extension = tuple[str, list[Param]]

# RFC 7230 §3.2.6: tchar.
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"


def _is_token(text: str) -> bool:
    return bool(text) and all(char in _TCHARS for char in text)


def _skip_ows(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _OWS:
        pos += 1
    return pos


def _read_token(text: str, pos: int, what: str) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] in _TCHARS:
        pos += 1
    if pos == start:
        found = repr(text[pos]) if pos < len(text) else "end of header"
        raise ExtensionHeaderError(f"expected {what} at position {pos}, found {found}")
    return text[start:pos], pos


def _is_qdtext_or_pair_char(char: str) -> bool:
    # RFC 7230 §3.2.6: qdtext and quoted-pair allow HTAB, SP, VCHAR and obs-text (0x80-0xff);
    # any other control character is an error.
    return char == "\t" or " " <= char <= "~" or "\x80" <= char <= "\xff"


def _read_quoted_string(text: str, pos: int) -> tuple[str, int]:
    # RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE,
    # quoted-pair = "\\" ( HTAB / SP / VCHAR / obs-text )
    pos += 1  # the opening DQUOTE
    chars: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(chars), pos + 1
        if char == "\\":
            pos += 1
            if pos == len(text):
                break
            char = text[pos]
        if not _is_qdtext_or_pair_char(char):
            raise ExtensionHeaderError(f"invalid character {char!r} in quoted-string")
        chars.append(char)
        pos += 1
    raise ExtensionHeaderError("unterminated quoted-string")


def _parse_extension_list(text: str) -> list[Extension]:
    extensions: list[Extension] = []
    pos = 0
    while True:
        pos = _skip_ows(text, pos)
        if pos == len(text):
            return extensions
        if text[pos] == ",":  # RFC 7230 §7: empty list elements are ignored
            pos += 1
            continue
        name, pos = _read_token(text, pos, "an extension name")
        params: list[Param] = []
        pos = _skip_ows(text, pos)
        while pos < len(text) and text[pos] == ";":
            pos = _skip_ows(text, pos + 1)
            param, pos = _read_token(text, pos, "a parameter name")
            value: str | None = None
            pos = _skip_ows(text, pos)
            if pos < len(text) and text[pos] == "=":
                pos = _skip_ows(text, pos + 1)
                if pos < len(text) and text[pos] == '"':
                    value, pos = _read_quoted_string(text, pos)
                    # RFC 6455 §9.1: the unquoted value MUST conform to the token rule.
                    if not _is_token(value):
                        raise ExtensionHeaderError(
                            f"quoted value of {param} is not a token: {value!r}"
                        )
                else:
                    value, pos = _read_token(text, pos, f"a value for {param}")
                pos = _skip_ows(text, pos)
            params.append((param, value))
        extensions.append((name, params))
        if pos < len(text):
            if text[pos] != ",":
                raise ExtensionHeaderError(f"unexpected {text[pos]!r} at position {pos}")
            pos += 1


def parse_extensions(values: Iterable[str]) -> list[Extension]:
    """Parse the values of every `Sec-WebSocket-Extensions` header line, in order.

    Returns `[(name, [(param, value_or_None), ...]), ...]` with quoted values unquoted.
    Several header lines mean the same as one line joined with commas (RFC 7230 §3.2.2).
    Raises ExtensionHeaderError on anything outside the grammar of RFC 6455 §9.1.
    """
    extensions: list[Extension] = []
    for value in values:
        extensions.extend(_parse_extension_list(value))
    return extensions


def _format_extension(name: str, params: Iterable[Param]) -> str:
    return "; ".join([name, *(p if v is None else f"{p}={v}" for p, v in params)])


# --------------------------------------------------------------------------------------------
# 2. Negotiation (RFC 7692 §7.1)
# --------------------------------------------------------------------------------------------

# RFC 7692 §7.1.2.1: a decimal integer from 8 to 15, without leading zeros.
_WINDOW_BITS = re.compile(r"(?:[89]|1[0-5])\Z")


class _Malformed(Exception):
    """A parameter is duplicated or has an invalid value: the peer is broken."""


class _UnknownParameter(Exception):
    """A parameter RFC 7692 does not define: the offer is declined (§7.1)."""


@dataclass
class _Params:
    """The permessage-deflate parameters of one offer or one response."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    # An offer may carry client_max_window_bits without a value (§7.1.2.2): "the client
    # supports being told a window"; client_window_param records that the name was there.
    client_window_param: bool = False
    client_max_window_bits: int | None = None


def _window_bits(name: str, value: str | None) -> int:
    if value is None or not _WINDOW_BITS.match(value):
        raise _Malformed(f"{name} must be an integer from 8 to 15, not {value!r}")
    return int(value)


def _read_params(params: list[Param], *, in_response: bool) -> _Params:
    """Check the parameters of one permessage-deflate offer or response (RFC 7692 §7.1)."""
    result = _Params()
    seen: set[str] = set()
    unknown: str | None = None
    for name, value in params:
        if name in seen:
            raise _Malformed(f"duplicate parameter {name}")
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:  # §7.1.1.1, §7.1.1.2: these parameters have no value
                raise _Malformed(f"{name} takes no value, got {value!r}")
            setattr(result, name, True)
        elif name == "server_max_window_bits":
            result.server_max_window_bits = _window_bits(name, value)
        elif name == "client_max_window_bits":
            result.client_window_param = True
            # §7.1.2.2: only an offer may leave the value out.
            if value is not None or in_response:
                result.client_max_window_bits = _window_bits(name, value)
        elif unknown is None:
            unknown = name
    # Reported after the loop so that a duplicate or bad value anywhere still counts as
    # malformed rather than being hidden behind a merely unknown name.
    if unknown is not None:
        raise _UnknownParameter(unknown)
    return result


def _permessage_deflate_params(
    extensions: list[Extension], in_response: bool
) -> list[_Params | None]:
    """The checked parameters of each permessage-deflate entry; None for an unknown one."""
    offers: list[_Params | None] = []
    for name, params in extensions:
        if name != EXTENSION_NAME:
            continue
        try:
            offers.append(_read_params(params, in_response=in_response))
        except _UnknownParameter:
            offers.append(None)
    return offers


def negotiate_server(
    offers: list[str], options: DeflateOptions | None = None
) -> tuple[str | None, PerMessageDeflate | None]:
    """Server side: choose among the client's offers and answer (RFC 7692 §5, §7.1).

    `offers` are the values of the request's `Sec-WebSocket-Extensions` header lines. Returns
    the value of the response's `Sec-WebSocket-Extensions` and the connection's
    PerMessageDeflate, or (None, None) when no permessage-deflate offer is acceptable.

    Every offer of another extension is declined by leaving it out of the answer. A
    permessage-deflate offer with a parameter RFC 7692 does not define is declined too (§7.1),
    and the next one is tried. A header that breaks RFC 6455 §9.1's grammar, or a
    permessage-deflate offer with a duplicated parameter or an invalid value, fails the
    handshake: NegotiationError (an InvalidHandshake) with status 400. RFC 7692 §7.1 would
    have such an offer merely declined; fastim answers 400 because a client that
    sends it is broken, and saying so beats silently running uncompressed.

    Any well-formed offer is acceptable: each parameter a client can ask for is one the server
    can honour (for `server_max_window_bits=8`, see _ZLIB_MIN_COMPRESS_WINDOW_BITS).
    """
    options = options or DeflateOptions()
    try:
        deflate_offers = _permessage_deflate_params(parse_extensions(offers), in_response=False)
    except ExtensionHeaderError as exc:
        raise NegotiationError(400, f"invalid Sec-WebSocket-Extensions header: {exc}") from None
    except _Malformed as exc:
        raise NegotiationError(400, f"invalid {EXTENSION_NAME} offer: {exc}") from None
    for offer in deflate_offers:
        if offer is not None:
            return _accept_offer(offer, options)
    return None, None


def _accept_offer(offer: _Params, options: DeflateOptions) -> tuple[str, PerMessageDeflate]:
    response: list[Param] = []

    # §7.1.1.1: a server accepts server_no_context_takeover by repeating it. It may also
    # impose it on itself unasked.
    server_no_context_takeover = offer.server_no_context_takeover or options.server_no_context_takeover
    if server_no_context_takeover:
        response.append(("server_no_context_takeover", None))

    # §7.1.1.2: client_no_context_takeover in an offer is only a hint; repeating it in the
    # response makes it binding, which lets the server drop its decompressor between messages.
    client_no_context_takeover = offer.client_no_context_takeover or options.client_no_context_takeover
    if client_no_context_takeover:
        response.append(("client_no_context_takeover", None))

    # §7.1.2.1: the server compresses with at most what the client asked for, and may announce
    # a smaller window even unasked, so that the client's decompressor needs less memory.
    server_bits = options.server_max_window_bits or DEFAULT_WINDOW_BITS
    if offer.server_max_window_bits is not None:
        server_bits = min(server_bits, offer.server_max_window_bits)
    if offer.server_max_window_bits is not None or server_bits < 15:
        response.append(("server_max_window_bits", str(server_bits)))

    # §7.1.2.2: the server may limit the client's window only if the client offered
    # client_max_window_bits; if not, the response MUST NOT carry it and the client may use 15.
    client_bits = 15
    if offer.client_window_param:
        client_bits = min(
            offer.client_max_window_bits or 15,
            options.client_max_window_bits or DEFAULT_WINDOW_BITS,
        )
        if client_bits < 15:
            response.append(("client_max_window_bits", str(client_bits)))

    extension = PerMessageDeflate(
        local_max_window_bits=server_bits,
        remote_max_window_bits=client_bits,
        local_no_context_takeover=server_no_context_takeover,
        remote_no_context_takeover=client_no_context_takeover,
        mem_level=options.mem_level,
        level=options.level,
        threshold=options.threshold,
    )
    return _format_extension(EXTENSION_NAME, response), extension


def client_offer(options: DeflateOptions | None = None) -> str:
    """Client side: the value of `Sec-WebSocket-Extensions` to send (RFC 7692 §7.1).

    With the defaults: `permessage-deflate; client_max_window_bits`, as browsers send it: the
    client can be told a window (RFC 7692 §7.1.2.2) and takes any from 8 to 15. With
    `client_max_window_bits=N` (below 15) the offer carries N, the client's promise to
    compress within 2**N bytes. `server_max_window_bits` is only offered when set, since a
    server that cannot honour it must decline compression (§7.1.2.1).
    """
    options = options or DeflateOptions()
    params: list[Param] = []
    if options.server_no_context_takeover:
        params.append(("server_no_context_takeover", None))
    if options.client_no_context_takeover:
        params.append(("client_no_context_takeover", None))
    if options.server_max_window_bits is not None and options.server_max_window_bits < 15:
        params.append(("server_max_window_bits", str(options.server_max_window_bits)))
    client_bits = options.client_max_window_bits or 15
    params.append(("client_max_window_bits", str(client_bits) if client_bits < 15 else None))
    return _format_extension(EXTENSION_NAME, params)


def accept_client_response(
    response_value: str, options: DeflateOptions | None = None
) -> PerMessageDeflate:
    """Client side: check the server's `Sec-WebSocket-Extensions` answer to client_offer().

    Call it only when the 101 response carries the header (several lines joined with ", ").
    Returns the connection's PerMessageDeflate. Raises NegotiationError (status 101, the
    status the server answered with) when the answer is not a valid acceptance of our offer:
    the client must then fail the connection (RFC 6455 §4.1, RFC 7692 §5 and §7.1).
    """
    options = options or DeflateOptions()

    def fail(reason: str) -> NegotiationError:
        return NegotiationError(101, f"invalid {EXTENSION_NAME} response: {reason}")

    try:
        extensions = parse_extensions([response_value])
    except ExtensionHeaderError as exc:
        raise fail(str(exc)) from None
    if [name for name, _ in extensions] != [EXTENSION_NAME]:
        # RFC 6455 §4.1: the server may only accept extensions we offered, and we offered one.
        raise fail(f"expected exactly one {EXTENSION_NAME}, got {response_value!r}")
    try:
        answer = _read_params(extensions[0][1], in_response=True)
    except (_Malformed, _UnknownParameter) as exc:
        # §7.1: a parameter not defined for a response fails the connection on the client.
        kind = "unknown parameter" if isinstance(exc, _UnknownParameter) else "bad parameter"
        raise fail(f"{kind}: {exc}") from None

    if options.server_no_context_takeover and not answer.server_no_context_takeover:
        raise fail("server_no_context_takeover was requested but not accepted")  # §7.1.1.1

    asked_server_bits = options.server_max_window_bits
    if asked_server_bits == 15:
        asked_server_bits = None  # not offered, see client_offer()
    remote_bits = 15
    if answer.server_max_window_bits is None:
        if asked_server_bits is not None:
            raise fail("server_max_window_bits was requested but not accepted")  # §7.1.2.1
    else:
        if asked_server_bits is not None and answer.server_max_window_bits > asked_server_bits:
            raise fail(f"server_max_window_bits above the {asked_server_bits} requested")
        remote_bits = answer.server_max_window_bits

    # §7.1.2.2: a client_max_window_bits in the answer limits our compressor's window. A
    # server "may either ignore" the value we offered, so an answer above it is no error:
    # we keep to the smaller of the two, which is within both our promise and its limit.
    # Without it in the answer, the limit is 15.
    local_bits = min(options.client_max_window_bits or 15, answer.client_max_window_bits or 15)

    return PerMessageDeflate(
        local_max_window_bits=local_bits,
        remote_max_window_bits=remote_bits,
        local_no_context_takeover=(
            answer.client_no_context_takeover or options.client_no_context_takeover
        ),
        remote_no_context_takeover=answer.server_no_context_takeover,
        mem_level=options.mem_level,
        level=options.level,
        threshold=options.threshold,
    )


# --------------------------------------------------------------------------------------------
# 3. Compressing and decompressing messages (RFC 7692 §7.2)
# --------------------------------------------------------------------------------------------


class PerMessageDeflate:
    """The negotiated permessage-deflate state of one connection.

    `local_*` parameters govern what this endpoint compresses, `remote_*` what the peer
    compresses and this endpoint decompresses. The ws core calls `compress()` for an outgoing
    data message of at least `threshold` bytes and sets RSV1 on its first frame only, and
    calls `decompress()` for every frame of an incoming message whose first frame had RSV1.
    """

    def __init__(
        self,
        *,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        mem_level: int = DEFAULT_MEM_LEVEL,
        level: int = DEFAULT_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.mem_level = mem_level
        self.level = level
        self.threshold = threshold
        # Created on first use (zlib allocates its buffers then) and, without context
        # takeover, dropped after each message: idle connections hold no zlib memory.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # Progress through the incoming message being decompressed.
        self._message_payload_bytes = 0
        self._message_inflated_bytes = 0

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover})"
        )

    @property
    def shared_compression(self) -> tuple[int, int, int] | None:
        """A key for the bytes this endpoint compresses a message to, when nothing else
        decides them; None when they depend on this connection's history.

        Without context takeover on our side (RFC 7692 §7.1.1.1 for a server), every
        message is compressed by a fresh compressor, and zlib gives the same bytes for the
        same message and settings: two connections with equal keys send the same payload,
        so one compression can serve both (fastim.ws.prepare). With context takeover the
        compressor's window holds this connection's earlier messages (§7.2.3.2).
        """
        if not self.local_no_context_takeover:
            return None
        window_bits = max(self.local_max_window_bits, _ZLIB_MIN_COMPRESS_WINDOW_BITS)
        return (self.level, self.mem_level, window_bits)

    def compress(self, message: bytes) -> bytes:
        """Compress one whole outgoing message (RFC 7692 §7.2.1).

        Returns the payload to send, split into frames as the caller likes; RSV1 goes on the
        first frame only. With context takeover the compressor keeps its window, so later
        messages may refer back to this one (§7.2.3.2).
        """
        if self._compressor is None:
            self._compressor = zlib.compressobj(
                self.level,
                zlib.DEFLATED,
                -max(self.local_max_window_bits, _ZLIB_MIN_COMPRESS_WINDOW_BITS),  # raw deflate
                self.mem_level,
            )
        # A sync flush ends the data on a byte boundary with an empty stored block (§7.2.1).
        data = self._compressor.compress(message) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.local_no_context_takeover:
            self._compressor = None  # §7.1.1: start from an empty window next message
        # The flush always ends in 00 00 ff ff; §7.2.1 removes it. An empty message leaves
        # the single byte 00 (§7.2.3.6).
        assert data.endswith(_EMPTY_STORED_BLOCK_TAIL)
        return data[: -len(_EMPTY_STORED_BLOCK_TAIL)]

    def decompress(self, payload: bytes, fin: bool, max_size: int | None) -> bytes:
        """Decompress the payload of one frame of an incoming compressed message (§7.2.2).

        Call it for each frame of the message in order, `fin` set on the last one; it returns
        the bytes this frame inflates to, so UTF-8 can be checked as the message arrives.

        `max_size` bounds the whole inflated message (None: no bound). zlib is never asked for
        more than `max_size + 1` bytes in total, so a small "zip bomb" payload costs at most
        that much memory before ProtocolError(MESSAGE_TOO_BIG, 1009) is raised. A payload
        that is not valid DEFLATE raises ProtocolError(INVALID_DATA, 1007).
        """
        self._message_payload_bytes += len(payload)
        inflated = self._inflate(payload, max_size) if payload else b""
        if fin:
            # A message whose payload is empty in every frame carries no DEFLATE data at all;
            # appending the tail to nothing would leave the inflater stuck half way through a
            # stored-block header, so it is an empty message and zlib is not touched.
            if self._message_payload_bytes:
                # §7.2.2: put back the 00 00 ff ff the sender stripped.
                inflated += self._inflate(_EMPTY_STORED_BLOCK_TAIL, max_size)
            self._message_payload_bytes = 0
            self._message_inflated_bytes = 0
            if self.remote_no_context_takeover:
                self._decompressor = None  # §7.1.1: the peer starts afresh every message
        return inflated

    def _inflate(self, data: bytes, max_size: int | None) -> bytes:
        pieces: list[bytes] = []
        while data:
            if self._decompressor is None or self._decompressor.eof:
                # A fresh inflater, also after a DEFLATE block with BFINAL set (§7.2.3.4): zlib
                # ends the stream there, and a peer's compressor that finished its stream has
                # no window left to refer back to, so the next bytes start a new stream.
                self._decompressor = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            # Never ask zlib for more than one byte past the limit: enough to know the
            # message is too big, without inflating the rest of a bomb.
            # (zlib takes a C ssize_t: a caller's "no limit" of sys.maxsize must not overflow.)
            budget = 0 if max_size is None else max_size - self._message_inflated_bytes + 1
            budget = min(budget, sys.maxsize)
            try:
                piece = self._decompressor.decompress(data, budget)
            except zlib.error as exc:
                raise ProtocolError(
                    CloseCode.INVALID_DATA, f"invalid compressed data: {exc}"
                ) from None
            self._message_inflated_bytes += len(piece)
            if max_size is not None and self._message_inflated_bytes > max_size:
                raise ProtocolError(
                    CloseCode.MESSAGE_TOO_BIG,
                    f"compressed message inflates past the {max_size} byte limit",
                )
            pieces.append(piece)
            # Below the budget zlib consumed all input, unless the stream ended (BFINAL):
            # then what follows it is a new stream.
            data = self._decompressor.unused_data if self._decompressor.eof else b""
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
